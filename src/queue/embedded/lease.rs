//! Leasing in the embedded store: the earliest due line head, under the shared delivery limits.

use std::time::Duration;

use chrono::Utc;

use super::index::{is_pending, set_state};
use super::{Done, EmbeddedStore, IN_FLIGHT_RETRY_MS, dur_ms, time};
use crate::queue::{COALESCE_FIELD, DeliveryLimits, JobState, Known, LeaseResult, StoreResult};

impl EmbeddedStore {
    /// Leases the earliest due line head: `lease` without the delivered values.
    pub(super) async fn lease_job(
        &self,
        worker: &str,
        lease_for: Duration,
        limits: DeliveryLimits,
    ) -> StoreResult<LeaseResult> {
        let worker = worker.to_owned();
        let lease_ms = dur_ms(lease_for);
        let ttl_ms = dur_ms(self.delivered_ttl);
        self.write(move |idx, tx, now| {
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
                return Ok(Done::Skip(LeaseResult::Idle { next_due_in }));
            };
            if limits.max_in_flight > 0 && idx.leases.len() >= limits.max_in_flight as usize {
                return Ok(Done::Skip(LeaseResult::Throttled {
                    retry_in: Duration::from_millis(IN_FLIGHT_RETRY_MS as u64),
                }));
            }
            if let Some((spacing_us, keep_grid)) = limits.start_spacing_us() {
                let now_us = Utc::now().timestamp_micros();
                if idx.next_start_us > now_us {
                    let wait_ms = (idx.next_start_us - now_us + 999) / 1000;
                    return Ok(Done::Skip(LeaseResult::Throttled {
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
