//! The in-memory queue structures of the embedded store, derived from the records, and the
//! steps that keep them in line with the records inside a write.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use redb::{Database, ReadableTable};

use super::{JOBS, Stored, Tx, decode, storage, time};
use crate::queue::{JobId, JobState, StoreResult};

/// The in-memory queue structures, derived from the records.
#[derive(Default)]
pub(super) struct Index {
    pub(super) lines: HashMap<String, VecDeque<JobId>>,
    pub(super) ready: BTreeSet<(i64, JobId)>,
    pub(super) ready_at: HashMap<JobId, i64>,
    pub(super) leases: BTreeSet<(i64, JobId)>,
    pub(super) lease_at: HashMap<JobId, i64>,
    pub(super) idem: HashMap<(String, String), JobId>,
    pub(super) terminal: BTreeSet<(i64, JobId)>,
    pub(super) counts: BTreeMap<JobState, u64>,
    /// The earliest time (microseconds) the next lease may start, for `max_per_second`: starts
    /// are spaced evenly with no burst, as in the Redis backend.
    pub(super) next_start_us: i64,
    pub(super) seq: u64,
    /// Per worker, the fencing number of its latest lease call and the job that call leased
    /// ("Fenced leases" in queue/mod.rs). In memory only: a worker's id is its process's.
    pub(super) fences: HashMap<String, (u64, Option<JobId>)>,
    /// Per coalesce key, the newest ended job carrying each component, for an operator's retry
    /// of an older one (see [`JobStore::retry`](crate::queue::JobStore::retry)); jobs still in
    /// a line are found there. Noted when a job ends rather than at enqueue, as in the Redis
    /// store, so accepting a report does not pay for it. Rebuilt from the records at load.
    pub(super) newest: HashMap<String, BTreeMap<String, JobId>>,
}

impl Index {
    /// Notes an ended job as the newest of its coalesce key for each component its payload
    /// carries, unless a newer one is noted (a retried job can end after a newer one).
    pub(super) fn note_newest(&mut self, record: &crate::queue::JobRecord) {
        let (Some(ck), Some(usages)) = (&record.coalesce_key, usages_of(record)) else {
            return;
        };
        let newest = self.newest.entry(ck.clone()).or_default();
        for name in usages.keys() {
            let slot = newest.entry(name.clone()).or_insert(record.id);
            if *slot < record.id {
                *slot = record.id;
            }
        }
    }

    /// A newer job of `record`'s coalesce key that carries one of its components: one that
    /// ended, or one still in the line of `record`'s object.
    pub(super) fn newer_than(
        &self,
        tx: &Tx<'_>,
        record: &crate::queue::JobRecord,
    ) -> StoreResult<Option<JobId>> {
        let (Some(ck), Some(usages)) = (&record.coalesce_key, usages_of(record)) else {
            return Ok(None);
        };
        if let Some(newest) = self.newest.get(ck)
            && let Some(newer) = usages
                .keys()
                .filter_map(|name| newest.get(name).copied())
                .find(|newer| *newer > record.id)
        {
            return Ok(Some(newer));
        }
        let line = self.lines.get(&record.object_key).into_iter().flatten();
        for other in line.filter(|other| **other > record.id) {
            let s = tx.must(*other)?;
            let shares = s.record.coalesce_key.as_ref() == Some(ck)
                && usages_of(&s.record)
                    .is_some_and(|theirs| theirs.keys().any(|name| usages.contains_key(name)));
            if shares {
                return Ok(Some(*other));
            }
        }
        Ok(None)
    }
}

/// The coalesced `usages` object of a job's payload, if it has one.
fn usages_of(
    record: &crate::queue::JobRecord,
) -> Option<&serde_json::Map<String, serde_json::Value>> {
    record
        .payload
        .get(crate::queue::COALESCE_FIELD)
        .and_then(|u| u.as_object())
}

impl Index {
    pub(super) fn add_ready(&mut self, id: JobId, due: i64) {
        self.remove_ready(id);
        self.ready.insert((due, id));
        self.ready_at.insert(id, due);
    }

    pub(super) fn remove_ready(&mut self, id: JobId) {
        if let Some(due) = self.ready_at.remove(&id) {
            self.ready.remove(&(due, id));
        }
    }

    pub(super) fn add_lease(&mut self, id: JobId, until: i64) {
        self.remove_lease(id);
        self.leases.insert((until, id));
        self.lease_at.insert(id, until);
    }

    pub(super) fn remove_lease(&mut self, id: JobId) {
        if let Some(until) = self.lease_at.remove(&id) {
            self.leases.remove(&(until, id));
        }
    }

    pub(super) fn count(&mut self, state: JobState, delta: i64) {
        let n = self.counts.entry(state).or_insert(0);
        *n = n.saturating_add_signed(delta);
    }

    pub(super) fn load(db: &Database) -> StoreResult<Index> {
        let mut idx = Index::default();
        let txn = db.begin_read().map_err(storage)?;
        let jobs = txn.open_table(JOBS).map_err(storage)?;
        let mut pending: Vec<(u64, Stored)> = Vec::new();
        for entry in jobs.iter().map_err(storage)? {
            let (_, v) = entry.map_err(storage)?;
            let s = decode(v.value())?;
            let r = &s.record;
            idx.seq = idx.seq.max(s.seq);
            idx.count(r.state, 1);
            if let Some(key) = &r.idempotency_key {
                idx.idem.insert((r.site.clone(), key.clone()), r.id);
            }
            if r.state.is_terminal() {
                idx.note_newest(r);
                let at = s
                    .finished_at
                    .unwrap_or_else(|| r.updated_at.timestamp_millis());
                idx.terminal.insert((at, r.id));
            } else {
                if r.state == JobState::Running {
                    let until = r.lease_until.map(|t| t.timestamp_millis()).unwrap_or(0);
                    idx.add_lease(r.id, until);
                }
                pending.push((s.seq, s));
            }
        }
        pending.sort_by_key(|(seq, _)| *seq);
        for (_, s) in &pending {
            idx.lines
                .entry(s.record.object_key.clone())
                .or_default()
                .push_back(s.record.id);
        }
        let by_id: HashMap<JobId, &Stored> =
            pending.iter().map(|(_, s)| (s.record.id, s)).collect();
        let heads: Vec<JobId> = idx
            .lines
            .values()
            .filter_map(|l| l.front().copied())
            .collect();
        for head in heads {
            let r = &by_id[&head].record;
            if matches!(r.state, JobState::Queued | JobState::Retrying) {
                let due = r.next_attempt_at.map(|t| t.timestamp_millis()).unwrap_or(0);
                idx.add_ready(head, due);
            }
        }
        Ok(idx)
    }
}

pub(super) fn set_state(idx: &mut Index, s: &mut Stored, state: JobState, now: i64) {
    if s.record.state != state {
        idx.count(s.record.state, -1);
        idx.count(state, 1);
    }
    s.record.state = state;
    s.record.updated_at = time(now);
}

/// Put the head of an object's line in the ready set if it is pending.
pub(super) fn promote_head(
    idx: &mut Index,
    tx: &Tx<'_>,
    object_key: &str,
    now: i64,
) -> StoreResult<()> {
    let Some(head) = idx.lines.get(object_key).and_then(|l| l.front().copied()) else {
        return Ok(());
    };
    if idx.ready_at.contains_key(&head) {
        return Ok(());
    }
    let s = tx.must(head)?;
    if matches!(s.record.state, JobState::Queued | JobState::Retrying) {
        let due = s
            .record
            .next_attempt_at
            .map(|t| t.timestamp_millis())
            .unwrap_or(now);
        idx.add_ready(head, due);
    }
    Ok(())
}

pub(super) fn leave_line(
    idx: &mut Index,
    tx: &Tx<'_>,
    id: JobId,
    object_key: &str,
    now: i64,
) -> StoreResult<()> {
    if let Some(line) = idx.lines.get_mut(object_key) {
        line.retain(|x| *x != id);
        if line.is_empty() {
            idx.lines.remove(object_key);
        }
    }
    idx.remove_ready(id);
    idx.remove_lease(id);
    promote_head(idx, tx, object_key, now)
}

/// Terminal bookkeeping (the caller has set the terminal state and stores the record).
pub(super) fn finish(idx: &mut Index, s: &mut Stored, now: i64) {
    s.finished_at = Some(now);
    s.record.worker = None;
    s.record.lease_until = None;
    s.record.next_attempt_at = None;
    idx.terminal.insert((now, s.record.id));
}

pub(super) fn is_pending(state: JobState) -> bool {
    matches!(state, JobState::Queued | JobState::Retrying)
}
