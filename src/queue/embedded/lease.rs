//! Leasing in the embedded store: the earliest due line head, under the shared delivery limits.

use std::time::Duration;

use chrono::Utc;

use super::index::{Index, is_pending, set_state};
use super::{Done, EmbeddedStore, IN_FLIGHT_RETRY_MS, Stored, dur_ms, time};
use crate::queue::{
    COALESCE_FIELD, DeliveryLimits, JobState, Known, LeaseFence, LeaseResult, StoreResult,
};

/// Gives a running job back to its line, its attempt not counted (`release`, and a lease its
/// worker never heard of).
pub(super) fn give_back(idx: &mut Index, s: &mut Stored, now: i64) {
    let id = s.record.id;
    idx.remove_lease(id);
    s.record.attempts = s.record.attempts.saturating_sub(1);
    s.record.worker = None;
    s.record.lease_until = None;
    s.record.next_attempt_at = None;
    let state = if s.record.attempts > 0 {
        JobState::Retrying
    } else {
        JobState::Queued
    };
    set_state(idx, s, state, now);
    idx.add_ready(id, now);
}

impl EmbeddedStore {
    /// Leases the earliest due line head: `lease` without the delivered values. `fence`: see
    /// "Fenced leases" in queue/mod.rs.
    pub(super) async fn lease_job(
        &self,
        worker: &str,
        fence: LeaseFence,
        lease_for: Duration,
        limits: DeliveryLimits,
    ) -> StoreResult<LeaseResult> {
        let worker = worker.to_owned();
        let lease_ms = dur_ms(lease_for);
        let ttl_ms = dur_ms(self.delivered_ttl);
        self.write(move |idx, tx, now| {
            // A job given back below is a write even when nothing is leased.
            let mut gave_back = false;
            if fence.number > 0 {
                match idx.fences.get(&worker).copied() {
                    Some((held, _)) if held >= fence.number => {
                        return Ok(Done::Skip(LeaseResult::Idle { next_due_in: None }));
                    }
                    Some((_, Some(held_id))) if fence.previous_lost => {
                        if let Some(mut h) = tx.get(held_id)?
                            && h.record.state == JobState::Running
                            && h.record.worker.as_deref() == Some(worker.as_str())
                        {
                            give_back(idx, &mut h, now);
                            tx.put(&h)?;
                            gave_back = true;
                        }
                    }
                    _ => {}
                }
                idx.fences.insert(worker.clone(), (fence.number, None));
            }
            let unleased = |r: LeaseResult| {
                if gave_back {
                    Done::Commit(r)
                } else {
                    Done::Skip(r)
                }
            };
            let mut found = None;
            while let Some(&(due, id)) = idx.ready.first() {
                if due > now {
                    break;
                }
                let s = tx.must(id)?;
                if is_pending(s.record.state) {
                    found = Some(s);
                    break;
                }
                idx.remove_ready(id); // stale; should not happen
            }
            let Some(mut s) = found else {
                let next_due_in = idx
                    .ready
                    .first()
                    .map(|&(due, _)| Duration::from_millis((due - now).max(0) as u64));
                return Ok(unleased(LeaseResult::Idle { next_due_in }));
            };
            if limits.max_in_flight > 0 && idx.leases.len() >= limits.max_in_flight as usize {
                return Ok(unleased(LeaseResult::Throttled {
                    retry_in: Duration::from_millis(IN_FLIGHT_RETRY_MS as u64),
                }));
            }
            if let Some((spacing_us, keep_grid)) = limits.start_spacing_us() {
                let now_us = Utc::now().timestamp_micros();
                if idx.next_start_us > now_us {
                    let wait_ms = (idx.next_start_us - now_us + 999) / 1000;
                    return Ok(unleased(LeaseResult::Throttled {
                        retry_in: Duration::from_millis(wait_ms.max(1) as u64),
                    }));
                }
                let late = now_us - idx.next_start_us;
                let slot = if keep_grid && late < spacing_us {
                    idx.next_start_us
                } else {
                    now_us
                };
                idx.next_start_us = slot + spacing_us;
            }
            let id = s.record.id;
            if fence.number > 0 {
                idx.fences.insert(worker.clone(), (fence.number, Some(id)));
            }
            let until = now.saturating_add(lease_ms);
            idx.remove_ready(id);
            idx.add_lease(id, until);
            s.record.worker = Some(worker);
            s.record.lease_until = Some(time(until));
            s.record.attempts += 1;
            s.record.next_attempt_at = None;
            set_state(idx, &mut s, JobState::Running, now);
            tx.put(&s)?;
            if let Some(ck) = s.record.coalesce_key.clone() {
                // What is known about the key, handed to the worker; the job's own components are
                // forgotten until its success is recorded ("The last total wins" in queue/mod.rs).
                let mut stored = tx.known(&ck, now, ttl_ms)?;
                s.record.delivered = Some(
                    stored
                        .iter()
                        .map(|(k, v)| (k.clone(), Known::decode(v)))
                        .collect(),
                );
                let carried = s
                    .record
                    .payload
                    .get(COALESCE_FIELD)
                    .and_then(|u| u.as_object());
                let before = stored.len();
                stored.retain(|name, _| !carried.is_some_and(|u| u.contains_key(name)));
                if stored.len() != before {
                    tx.put_known(&ck, &stored, None)?;
                }
            }
            Ok(Done::Commit(LeaseResult::Leased(s.record)))
        })
        .await
    }
}
