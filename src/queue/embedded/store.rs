//! The [`JobStore`] operations of the embedded store, each one write step or one read.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use redb::ReadableTable;
use uuid::Uuid;

use super::index::{finish, is_pending, leave_line, promote_head, set_state};
use super::{
    DEFAULT_PAGE, DELIVERED, DELIVERED_AT, Done, EmbeddedStore, LIST_SCAN_CAP, MAX_PAGE, STATE,
    Stored, decode, dur_ms, now_ms, storage, time,
};
use crate::queue::{
    COALESCE_FIELD, Completion, DeliveryLimits, EnqueueOutcome, JobFilter, JobId, JobPage,
    JobRecord, JobState, JobStore, Known, LeaseFence, LeaseResult, NewJob, StoreError, StoreResult,
};

/// Collects an absorbed job's usages, in line order: a later job's values replace an earlier's.
fn absorb_usages(
    absorbed: &mut Option<serde_json::Map<String, serde_json::Value>>,
    older: &serde_json::Value,
) {
    if let Some(old) = older.get(COALESCE_FIELD).and_then(|u| u.as_object()) {
        absorbed
            .get_or_insert_with(serde_json::Map::new)
            .extend(old.clone());
    }
}

/// The new job's usages over the absorbed ones: values the new job does not carry are kept.
fn merge_usages(
    absorbed: Option<serde_json::Map<String, serde_json::Value>>,
    newer: &mut serde_json::Value,
) {
    let (Some(mut merged), Some(payload)) = (absorbed, newer.as_object_mut()) else {
        return;
    };
    if let Some(new) = payload.get(COALESCE_FIELD).and_then(|u| u.as_object()) {
        merged.extend(new.clone());
    }
    payload.insert(COALESCE_FIELD.to_owned(), serde_json::Value::Object(merged));
}

#[async_trait]
impl JobStore for EmbeddedStore {
    async fn enqueue(&self, mut job: NewJob) -> StoreResult<EnqueueOutcome> {
        let id = Uuid::now_v7();
        self.write(move |idx, tx, now| {
            if let Some(i) = &job.idempotency {
                let key = (job.site.clone(), i.key.clone());
                let known = match idx.idem.get(&key).copied() {
                    Some(existing) => tx.get(existing)?.map(|s| (existing, s)),
                    None => None,
                };
                if let Some((existing, s)) = known {
                    if s.fingerprint.as_deref() == Some(i.fingerprint.as_str()) {
                        return Ok(Done::Skip(EnqueueOutcome::Existing(s.record)));
                    }
                    return Err(StoreError::IdempotencyConflict { existing });
                }
            }
            let mut payload = std::mem::take(&mut job.payload);
            let mut absorbed = None;
            let mut superseded = 0;
            // coalescing: absorb pending jobs of this object with the same key
            if let Some(ck) = &job.coalesce_key {
                let line: Vec<JobId> = idx
                    .lines
                    .get(&job.object_key)
                    .map(|l| l.iter().copied().collect())
                    .unwrap_or_default();
                for old in line {
                    let mut s = tx.must(old)?;
                    if s.record.coalesce_key.as_ref() != Some(ck) || !is_pending(s.record.state) {
                        continue;
                    }
                    absorb_usages(&mut absorbed, &s.record.payload);
                    if let Some(l) = idx.lines.get_mut(&job.object_key) {
                        l.retain(|x| *x != old);
                    }
                    idx.remove_ready(old);
                    s.record.superseded_by = Some(id);
                    superseded += 1;
                    set_state(idx, &mut s, JobState::Superseded, now);
                    finish(idx, &mut s, now);
                    tx.put(&s)?;
                }
            }
            merge_usages(absorbed, &mut payload);
            idx.seq += 1;
            let s = Stored {
                record: JobRecord::queued(id, &job, payload, time(now)),
                fingerprint: job.idempotency.as_ref().map(|i| i.fingerprint.clone()),
                seq: idx.seq,
                finished_at: None,
            };
            tx.put(&s)?;
            if let Some(i) = job.idempotency {
                idx.idem.insert((job.site, i.key), id);
            }
            idx.count(JobState::Queued, 1);
            idx.lines
                .entry(job.object_key.clone())
                .or_default()
                .push_back(id);
            promote_head(idx, tx, &job.object_key, now)?;
            Ok(Done::Commit(EnqueueOutcome::Created(s.record, superseded)))
        })
        .await
    }

    async fn get(&self, id: JobId) -> StoreResult<Option<JobRecord>> {
        self.read(
            move |jobs, _| match jobs.get(id.as_u128()).map_err(storage)? {
                Some(v) => Ok(Some(decode(v.value())?.record)),
                None => Ok(None),
            },
        )
        .await
    }

    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage> {
        let filter = filter.clone();
        let limit = match filter.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        self.read(move |jobs, _| {
            let range = match filter.before {
                Some(b) => jobs.range(..b.as_u128()),
                None => jobs.range::<u128>(..),
            }
            .map_err(storage)?;
            let mut out = Vec::new();
            let mut last = None;
            for (scanned, entry) in range.rev().enumerate() {
                if scanned >= LIST_SCAN_CAP {
                    // the page may be short; continue after the last id scanned
                    return Ok(JobPage {
                        jobs: out,
                        next_cursor: last,
                    });
                }
                let (k, v) = entry.map_err(storage)?;
                last = Some(Uuid::from_u128(k.value()));
                let r = decode(v.value())?.record;
                if filter.site.as_ref().is_some_and(|s| *s != r.site)
                    || filter.state.is_some_and(|s| s != r.state)
                    || filter.operation.as_ref().is_some_and(|o| *o != r.operation)
                {
                    continue;
                }
                if out.len() == limit {
                    let next_cursor = out.last().map(|j: &JobRecord| j.id);
                    return Ok(JobPage {
                        jobs: out,
                        next_cursor,
                    });
                }
                out.push(r);
            }
            Ok(JobPage {
                jobs: out,
                next_cursor: None,
            })
        })
        .await
    }

    async fn lease_fenced(
        &self,
        worker: &str,
        fence: LeaseFence,
        lease_for: Duration,
        limits: DeliveryLimits,
    ) -> StoreResult<LeaseResult> {
        self.lease_job(worker, fence, lease_for, limits).await
    }

    async fn heartbeat(&self, id: JobId, worker: &str, lease_for: Duration) -> StoreResult<bool> {
        let worker = worker.to_owned();
        let lease_ms = dur_ms(lease_for);
        self.write(move |idx, tx, now| {
            let Some(mut s) = tx.get(id)? else {
                return Ok(Done::Skip(false));
            };
            if s.record.state != JobState::Running || s.record.worker.as_ref() != Some(&worker) {
                return Ok(Done::Skip(false));
            }
            let until = now.saturating_add(lease_ms);
            idx.add_lease(id, until);
            s.record.lease_until = Some(time(until));
            s.record.updated_at = time(now);
            tx.put(&s)?;
            Ok(Done::Commit(true))
        })
        .await
    }

    async fn complete(&self, id: JobId, worker: &str, outcome: Completion) -> StoreResult<bool> {
        let worker = worker.to_owned();
        let ttl_ms = dur_ms(self.delivered_ttl);
        self.write(move |idx, tx, now| {
            let Some(mut s) = tx.get(id)? else {
                return Ok(Done::Skip(false));
            };
            if s.record.state != JobState::Running || s.record.worker.as_ref() != Some(&worker) {
                return Ok(Done::Skip(false));
            }
            idx.remove_lease(id);
            let state = match outcome {
                Completion::Follow { at, progress } => {
                    let at_ms = at.timestamp_millis();
                    s.record.last_status = None;
                    s.record.last_error = None;
                    s.record.failure_code = None;
                    s.record.result = Some(progress);
                    s.record.attempts = s.record.attempts.saturating_sub(1);
                    s.record.next_attempt_at = Some(time(at_ms));
                    s.record.worker = None;
                    s.record.lease_until = None;
                    set_state(idx, &mut s, JobState::Retrying, now);
                    idx.add_ready(id, at_ms);
                    tx.put(&s)?;
                    return Ok(Done::Commit(true));
                }
                Completion::Retry {
                    at,
                    status,
                    code,
                    error,
                } => {
                    let at_ms = at.timestamp_millis();
                    s.record.last_status = status;
                    s.record.last_error = Some(error);
                    s.record.failure_code = code;
                    s.record.next_attempt_at = Some(time(at_ms));
                    s.record.worker = None;
                    s.record.lease_until = None;
                    set_state(idx, &mut s, JobState::Retrying, now);
                    // still the head of its line: back in the ready set, due at `at`
                    idx.add_ready(id, at_ms);
                    tx.put(&s)?;
                    return Ok(Done::Commit(true));
                }
                Completion::Succeeded {
                    status,
                    result,
                    delivered,
                } => {
                    s.record.last_status = status;
                    s.record.last_error = None;
                    s.record.failure_code = None;
                    s.record.result = Some(result);
                    if let Some(ck) = s
                        .record
                        .coalesce_key
                        .as_ref()
                        .filter(|_| !delivered.is_empty())
                    {
                        let mut map = tx.known(ck, now, ttl_ms)?;
                        map.extend(delivered.into_iter().map(|(k, v)| (k, v.encode())));
                        tx.put_known(ck, &map, Some(now))?;
                    }
                    JobState::Succeeded
                }
                Completion::Failed {
                    status,
                    code,
                    error,
                } => {
                    s.record.last_status = status;
                    s.record.last_error = Some(error);
                    s.record.failure_code = code;
                    JobState::Failed
                }
                Completion::Dead {
                    status,
                    code,
                    error,
                } => {
                    s.record.last_status = status;
                    s.record.last_error = Some(error);
                    s.record.failure_code = code;
                    JobState::Dead
                }
            };
            set_state(idx, &mut s, state, now);
            finish(idx, &mut s, now);
            idx.note_newest(&s.record);
            tx.put(&s)?;
            leave_line(idx, tx, id, &s.record.object_key, now)?;
            Ok(Done::Commit(true))
        })
        .await
    }

    async fn release(&self, id: JobId, worker: &str) -> StoreResult<bool> {
        let worker = worker.to_owned();
        self.write(move |idx, tx, now| {
            let Some(mut s) = tx.get(id)? else {
                return Ok(Done::Skip(false));
            };
            if s.record.state != JobState::Running || s.record.worker.as_ref() != Some(&worker) {
                return Ok(Done::Skip(false));
            }
            super::lease::give_back(idx, &mut s, now);
            tx.put(&s)?;
            Ok(Done::Commit(true))
        })
        .await
    }

    async fn reclaim_expired(&self) -> StoreResult<u32> {
        self.write(move |idx, tx, now| {
            let expired: Vec<JobId> = idx
                .leases
                .iter()
                .take_while(|(until, _)| *until <= now)
                .map(|(_, id)| *id)
                .collect();
            let mut n = 0;
            for id in expired {
                idx.remove_lease(id);
                let Some(mut s) = tx.get(id)? else { continue };
                if s.record.state != JobState::Running {
                    continue;
                }
                s.record.last_error = Some(format!(
                    "the lease of worker {} expired",
                    s.record.worker.as_deref().unwrap_or("?")
                ));
                s.record.failure_code = Some(crate::queue::LEASE_EXPIRED.to_string());
                s.record.worker = None;
                s.record.lease_until = None;
                s.record.next_attempt_at = None;
                set_state(idx, &mut s, JobState::Retrying, now);
                idx.add_ready(id, now);
                tx.put(&s)?;
                n += 1;
            }
            Ok(if n > 0 {
                Done::Commit(n)
            } else {
                Done::Skip(0)
            })
        })
        .await
    }

    async fn retry(&self, id: JobId) -> StoreResult<JobRecord> {
        self.transition(
            id,
            |st| matches!(st, JobState::Failed | JobState::Dead),
            |idx, tx, s, now| {
                let id = s.record.id;
                if let Some(newer) = idx.newer_than(tx, &s.record)? {
                    return Err(StoreError::Outdated { newer });
                }
                if let Some(at) = s.finished_at.take() {
                    idx.terminal.remove(&(at, id));
                }
                s.record.attempts = 0;
                s.record.worker = None;
                s.record.lease_until = None;
                s.record.next_attempt_at = None;
                set_state(idx, s, JobState::Queued, now);
                idx.seq += 1;
                s.seq = idx.seq;
                // at the back of its object's line
                tx.put(s)?;
                idx.lines
                    .entry(s.record.object_key.clone())
                    .or_default()
                    .push_back(id);
                promote_head(idx, tx, &s.record.object_key, now)
            },
        )
        .await
    }

    async fn cancel(&self, id: JobId) -> StoreResult<JobRecord> {
        self.transition(id, is_pending, |idx, tx, s, now| {
            set_state(idx, s, JobState::Canceled, now);
            finish(idx, s, now);
            // a canceled report is still one the site sent: an older one is not retried over it
            idx.note_newest(&s.record);
            tx.put(s)?;
            leave_line(idx, tx, s.record.id, &s.record.object_key, now)
        })
        .await
    }

    async fn delivered(&self, coalesce_key: &str) -> StoreResult<BTreeMap<String, Known>> {
        let ck = coalesce_key.to_owned();
        let ttl_ms = dur_ms(self.delivered_ttl);
        self.read(move |_, db| {
            let txn = db.begin_read().map_err(storage)?;
            let at = txn.open_table(DELIVERED_AT).map_err(storage)?;
            let cutoff = now_ms().saturating_sub(ttl_ms);
            if at
                .get(ck.as_str())
                .map_err(storage)?
                .is_some_and(|at| at.value() <= cutoff)
            {
                // expired, not yet purged
                return Ok(BTreeMap::new());
            }
            let t = txn.open_table(DELIVERED).map_err(storage)?;
            let stored: BTreeMap<String, String> = match t.get(ck.as_str()).map_err(storage)? {
                Some(v) => serde_json::from_str(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("embedded store: {e}")))?,
                None => BTreeMap::new(),
            };
            Ok(stored
                .into_iter()
                .map(|(k, v)| {
                    let known = Known::decode(&v);
                    (k, known)
                })
                .collect())
        })
        .await
    }

    async fn purge_terminal(&self, retention: Duration) -> StoreResult<u32> {
        let retention_ms = dur_ms(retention);
        let ttl_ms = dur_ms(self.delivered_ttl);
        self.write(move |idx, tx, now| {
            // delivered maps whose last write is older than their time to live
            let delivered_cutoff = now.saturating_sub(ttl_ms);
            let mut expired = Vec::new();
            for entry in tx.delivered_at.iter().map_err(storage)? {
                let (k, at) = entry.map_err(storage)?;
                if at.value() <= delivered_cutoff {
                    expired.push(k.value().to_owned());
                }
            }
            for ck in &expired {
                tx.delivered.remove(ck.as_str()).map_err(storage)?;
                tx.delivered_at.remove(ck.as_str()).map_err(storage)?;
            }
            let cutoff = now.saturating_sub(retention_ms);
            let old: Vec<(i64, JobId)> = idx
                .terminal
                .iter()
                .take_while(|(at, _)| *at <= cutoff)
                .copied()
                .collect();
            for &(at, id) in &old {
                idx.terminal.remove(&(at, id));
                let Some(s) = tx.get(id)? else { continue };
                idx.count(s.record.state, -1);
                if let Some(key) = s.record.idempotency_key {
                    let k = (s.record.site, key);
                    if idx.idem.get(&k) == Some(&id) {
                        idx.idem.remove(&k);
                    }
                }
                tx.delete(id)?;
            }
            let n = old.len() as u32;
            Ok(if n > 0 || !expired.is_empty() {
                Done::Commit(n)
            } else {
                Done::Skip(0)
            })
        })
        .await
    }

    async fn counts(&self) -> StoreResult<BTreeMap<JobState, u64>> {
        // the index lock is held across commits (fsync): take it off the async threads
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let idx = inner.index.lock();
            JobState::ALL
                .iter()
                .map(|&s| (s, idx.counts.get(&s).copied().unwrap_or(0)))
                .collect()
        })
        .await
        .map_err(|e| storage(format!("store task failed: {e}")))
    }

    async fn oldest_due_age(&self) -> StoreResult<Duration> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let idx = inner.index.lock();
            let earliest = idx.ready.first().map(|(due, _)| *due);
            let late_ms = earliest.map_or(0, |due| (now_ms() - due).max(0));
            Duration::from_millis(late_ms as u64)
        })
        .await
        .map_err(|e| storage(format!("store task failed: {e}")))
    }

    /// A read while writes work; after a failed write, a probe write (reopening the file if it
    /// was closed), since only a write shows that writes work again.
    async fn ping(&self) -> StoreResult<()> {
        if self.inner.failure().is_none() {
            return self.read(|_, _| Ok(())).await;
        }
        self.write(|_, tx, now| {
            tx.probe.insert("probe", now).map_err(storage)?;
            Ok(Done::Commit(()))
        })
        .await
        .map_err(|e| match self.inner.failure() {
            Some(why) => storage(format!("writes fail: {why}")),
            None => e,
        })
    }

    /// One process owns the embedded store: its caller always leads.
    async fn lead(&self, _name: &str, _holder: &str, _ttl: Duration) -> StoreResult<bool> {
        Ok(true)
    }

    async fn state(&self, key: &str) -> StoreResult<Option<String>> {
        let key = key.to_owned();
        self.read(move |_, db| {
            let txn = db.begin_read().map_err(storage)?;
            let t = txn.open_table(STATE).map_err(storage)?;
            Ok(t.get(key.as_str())
                .map_err(storage)?
                .map(|v| v.value().to_owned()))
        })
        .await
    }

    async fn save_state(
        &self,
        _name: &str,
        _holder: &str,
        key: &str,
        value: &str,
    ) -> StoreResult<bool> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |_, tx, _| {
            tx.state
                .insert(key.as_str(), value.as_str())
                .map_err(storage)?;
            Ok(Done::Commit(true))
        })
        .await
    }

    async fn take_rate_slot(&self, limits: DeliveryLimits) -> StoreResult<Option<Duration>> {
        let Some((spacing_us, keep_grid)) = limits.start_spacing_us() else {
            return Ok(None);
        };
        // The slots live in the in-memory index, as for leases: nothing to commit.
        self.write(move |idx, _, _| {
            let now_us = chrono::Utc::now().timestamp_micros();
            if idx.next_start_us > now_us {
                let wait_ms = (idx.next_start_us - now_us + 999) / 1000;
                return Ok(Done::Skip(Some(Duration::from_millis(
                    wait_ms.max(1) as u64
                ))));
            }
            let late = now_us - idx.next_start_us;
            let slot = if keep_grid && late < spacing_us {
                idx.next_start_us
            } else {
                now_us
            };
            idx.next_start_us = slot + spacing_us;
            Ok(Done::Skip(None))
        })
        .await
    }
}
