//! The [`JobStore`] operations on Redis: each one script (see `scripts.rs`) or a plain read.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::records::{created_record, decode_known, parse_job, payload_args};
use super::scripts::{
    CANCEL, COMPLETE, ENQUEUE, HEARTBEAT, LEAD, LEASE, LIST, PURGE, RATE_SLOT, RECLAIM, RELEASE,
    RETRY, SAVE_STATE,
};
use super::{Call, RedisStore, corrupt};
use crate::queue::protocol;
use crate::queue::{
    Completion, DeliveryLimits, EnqueueOutcome, JobFilter, JobId, JobPage, JobRecord, JobState,
    JobStore, Known, LeaseFence, LeaseResult, NewJob, StoreError, StoreResult,
};

/// Jobs handled per script run by `reclaim_expired` and `purge_terminal` (keeps each script short).
const BATCH: usize = 500;
/// Upper bound on batches per call, so a call always ends.
const MAX_BATCHES: usize = 1000;
/// Index entries one `list` call inspects at most (a selective filter may return a short page
/// with a cursor to continue).
const LIST_SCAN_CAP: usize = 5000;
/// Page size when the filter asks for 0, and the largest page served.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

fn dur_ms(d: Duration) -> String {
    d.as_millis().to_string()
}

fn opt_str(s: Option<&str>) -> String {
    s.unwrap_or("").to_owned()
}

impl RedisStore {
    /// How long the delivered and newest maps of a coalesce key live after their last write, in
    /// ms as the scripts take it (at least 1: `PEXPIRE 0` would delete the map at once).
    fn map_ttl_ms(&self) -> String {
        dur_ms(self.delivered_ttl.max(Duration::from_millis(1)))
    }
}

#[async_trait]
impl JobStore for RedisStore {
    async fn enqueue(&self, mut job: NewJob) -> StoreResult<EnqueueOutcome> {
        let id = Uuid::now_v7();
        let (payload, usages) = payload_args(&mut job.payload);
        let (ikey, ifp) = match &job.idempotency {
            Some(i) => (i.key.clone(), i.fingerprint.clone()),
            None => (String::new(), String::new()),
        };
        let args = vec![
            id.to_string(),
            job.site.clone(),
            job.operation.clone(),
            job.object_key.clone(),
            opt_str(job.coalesce_key.as_deref()),
            payload,
            usages,
            ikey,
            ifp,
        ];
        let reply: Vec<String> = self.run(Call::Write, &ENQUEUE, args).await?;
        let (status, rest) = Self::split_status(reply)?;
        match status.as_str() {
            "created" => created_record(id, job, &rest)
                .map(|(job, superseded)| EnqueueOutcome::Created(job, superseded)),
            "existing" => Ok(EnqueueOutcome::Existing(parse_job(&rest)?)),
            "conflict" => {
                let existing = rest
                    .first()
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .ok_or_else(|| corrupt("bad conflict reply"))?;
                Err(StoreError::IdempotencyConflict { existing })
            }
            other => Err(corrupt(format!("unexpected enqueue reply {other:?}"))),
        }
    }

    async fn get(&self, id: JobId) -> StoreResult<Option<JobRecord>> {
        self.job_by_id(id).await
    }

    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage> {
        let limit = match filter.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let args = vec![
            opt_str(filter.site.as_deref()),
            filter
                .state
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            opt_str(filter.operation.as_deref()),
            filter.before.map(|b| b.to_string()).unwrap_or_default(),
            limit.to_string(),
            LIST_SCAN_CAP.to_string(),
        ];
        let reply: Vec<String> = self.run(Call::Read, &LIST, args).await?;
        let (scan_cursor, mut ids) = Self::split_status(reply)?;
        let more = ids.len() > limit;
        ids.truncate(limit);
        let keys: Vec<String> = ids.iter().map(|id| self.job_key(id)).collect();
        let hashes: Vec<Vec<String>> = if keys.is_empty() {
            Vec::new()
        } else {
            self.with_conn(Call::Read, move |mut conn| {
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.hgetall(k);
                }
                async move { pipe.query_async(&mut conn).await }
            })
            .await?
        };
        let mut jobs = Vec::with_capacity(hashes.len());
        for h in hashes.iter().filter(|h| !h.is_empty()) {
            // a job purged between the two reads is simply left out
            jobs.push(parse_job(h)?);
        }
        let next_cursor = if more {
            ids.last().and_then(|s| Uuid::parse_str(s).ok())
        } else if !scan_cursor.is_empty() {
            Uuid::parse_str(&scan_cursor).ok()
        } else {
            None
        };
        Ok(JobPage { jobs, next_cursor })
    }

    async fn lease_fenced(
        &self,
        worker: &str,
        fence: LeaseFence,
        lease_for: Duration,
        limits: DeliveryLimits,
    ) -> StoreResult<LeaseResult> {
        let mut args = vec![
            worker.to_owned(),
            dur_ms(lease_for),
            limits.max_in_flight.to_string(),
        ];
        match limits.start_spacing_us() {
            Some((spacing, keep_grid)) => {
                args.extend([spacing.to_string(), u8::from(keep_grid).to_string()])
            }
            None => args.extend(["0".to_owned(), "0".to_owned()]),
        }
        args.extend([
            fence.number.to_string(),
            u8::from(fence.previous_lost).to_string(),
        ]);
        let reply: Vec<String> = self.run(Call::Write, &LEASE, args).await?;
        let (status, rest) = Self::split_status(reply)?;
        let ms_arg = || -> StoreResult<i64> {
            rest.first()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| corrupt("bad lease reply"))
        };
        match status.as_str() {
            "leased" => Ok(LeaseResult::Leased(parse_job(&rest)?)),
            "idle" => {
                let ms = ms_arg()?;
                Ok(LeaseResult::Idle {
                    next_due_in: (ms >= 0).then(|| Duration::from_millis(ms as u64)),
                })
            }
            "throttled" => Ok(LeaseResult::Throttled {
                retry_in: Duration::from_millis(ms_arg()?.max(1) as u64),
            }),
            other => Err(corrupt(format!("unexpected lease reply {other:?}"))),
        }
    }

    async fn heartbeat(&self, id: JobId, worker: &str, lease_for: Duration) -> StoreResult<bool> {
        let args = vec![id.to_string(), worker.to_owned(), dur_ms(lease_for)];
        let n: i64 = self.run(Call::Write, &HEARTBEAT, args).await?;
        Ok(n == 1)
    }

    async fn complete(&self, id: JobId, worker: &str, outcome: Completion) -> StoreResult<bool> {
        let status_str = |s: Option<u16>| s.map(|s| s.to_string()).unwrap_or_default();
        let new_state = match &outcome {
            // Not a state: the script's name for "retrying, the attempt given back".
            Completion::Follow { .. } => "following".to_owned(),
            other => other.state().as_str().to_owned(),
        };
        let mut args = vec![id.to_string(), worker.to_owned(), new_state];
        match outcome {
            Completion::Succeeded {
                status,
                result,
                delivered,
            } => {
                args.extend([
                    status_str(status),
                    String::new(),
                    result.to_string(),
                    "0".to_owned(),
                    self.map_ttl_ms(),
                    String::new(),
                ]);
                for (k, v) in delivered {
                    args.push(k);
                    args.push(v.encode());
                }
            }
            Completion::Failed {
                status,
                code,
                error,
            }
            | Completion::Dead {
                status,
                code,
                error,
            } => args.extend([
                status_str(status),
                error,
                "null".to_owned(),
                "0".to_owned(),
                self.map_ttl_ms(),
                code.unwrap_or_default(),
            ]),
            Completion::Follow { at, progress } => args.extend([
                String::new(),
                String::new(),
                progress.to_string(),
                at.timestamp_millis().to_string(),
                "0".to_owned(),
                String::new(),
            ]),
            Completion::Retry {
                at,
                status,
                code,
                error,
            } => args.extend([
                status_str(status),
                error,
                "null".to_owned(),
                at.timestamp_millis().to_string(),
                "0".to_owned(),
                code.unwrap_or_default(),
            ]),
        }
        let n: i64 = self.run(Call::Write, &COMPLETE, args).await?;
        Ok(n == 1)
    }

    async fn release(&self, id: JobId, worker: &str) -> StoreResult<bool> {
        let n: i64 = self
            .run(
                Call::Write,
                &RELEASE,
                vec![id.to_string(), worker.to_owned()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn reclaim_expired(&self) -> StoreResult<u32> {
        let mut total = 0u32;
        for _ in 0..MAX_BATCHES {
            let n: u32 = self
                .run(Call::Write, &RECLAIM, vec![BATCH.to_string()])
                .await?;
            total += n;
            if (n as usize) < BATCH {
                break;
            }
        }
        Ok(total)
    }

    async fn retry(&self, id: JobId) -> StoreResult<JobRecord> {
        let reply: Vec<String> = self.run(Call::Write, &RETRY, vec![id.to_string()]).await?;
        self.state_reply(reply)
    }

    async fn cancel(&self, id: JobId) -> StoreResult<JobRecord> {
        let args = vec![id.to_string(), self.map_ttl_ms()];
        let reply: Vec<String> = self.run(Call::Write, &CANCEL, args).await?;
        self.state_reply(reply)
    }

    async fn delivered(&self, coalesce_key: &str) -> StoreResult<BTreeMap<String, Known>> {
        let key = protocol::delivered_key(&self.prefix, coalesce_key);
        Ok(decode_known(self.hash(key).await?))
    }

    async fn purge_terminal(&self, retention: Duration) -> StoreResult<u32> {
        let mut total = 0u32;
        for _ in 0..MAX_BATCHES {
            let (removed, consumed): (u32, usize) = self
                .run(
                    Call::Write,
                    &PURGE,
                    vec![dur_ms(retention), BATCH.to_string()],
                )
                .await?;
            total += removed;
            if consumed < BATCH {
                break;
            }
        }
        Ok(total)
    }

    async fn counts(&self) -> StoreResult<BTreeMap<JobState, u64>> {
        let key = protocol::counts_key(&self.prefix);
        let raw: HashMap<String, i64> = self.hash(key).await?;
        let mut out: BTreeMap<JobState, u64> = JobState::ALL.iter().map(|&s| (s, 0)).collect();
        for (k, v) in raw {
            if let Some(s) = JobState::parse(&k) {
                out.insert(s, v.max(0) as u64);
            }
        }
        Ok(out)
    }

    async fn oldest_due_age(&self) -> StoreResult<Duration> {
        let ready = format!("{}{}", self.prefix, protocol::FIXED_KEYS[0].segment);
        let (earliest, (secs, micros)): (Vec<(String, f64)>, (i64, i64)) = self
            .with_conn(Call::Read, move |mut conn| {
                let ready = ready.clone();
                async move {
                    redis::pipe()
                        .cmd("ZRANGE")
                        .arg(&ready)
                        .arg(0)
                        .arg(0)
                        .arg("WITHSCORES")
                        .cmd("TIME")
                        .query_async(&mut conn)
                        .await
                }
            })
            .await?;
        let now_ms = secs * 1000 + micros / 1000;
        let late_ms = earliest
            .first()
            .map_or(0, |(_, due)| (now_ms - *due as i64).max(0));
        Ok(Duration::from_millis(late_ms as u64))
    }

    async fn ping(&self) -> StoreResult<()> {
        self.with_conn(Call::Read, |mut conn| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await
        .map(|_| ())
    }

    async fn lead(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let led: i64 = self
            .run(
                Call::Write,
                &LEAD,
                vec![
                    name.to_owned(),
                    holder.to_owned(),
                    dur_ms(ttl.max(Duration::from_millis(1))),
                ],
            )
            .await?;
        Ok(led == 1)
    }

    async fn state(&self, key: &str) -> StoreResult<Option<String>> {
        let key = protocol::state_key(&self.prefix, key);
        self.with_conn(Call::Read, move |mut conn| {
            let key = key.clone();
            async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<String>>(&mut conn)
                    .await
            }
        })
        .await
    }

    async fn save_state(
        &self,
        name: &str,
        holder: &str,
        key: &str,
        value: &str,
    ) -> StoreResult<bool> {
        let saved: i64 = self
            .run(
                Call::Write,
                &SAVE_STATE,
                vec![
                    name.to_owned(),
                    holder.to_owned(),
                    key.to_owned(),
                    value.to_owned(),
                ],
            )
            .await?;
        Ok(saved == 1)
    }

    async fn take_rate_slot(&self, limits: DeliveryLimits) -> StoreResult<Option<Duration>> {
        let Some((spacing, keep_grid)) = limits.start_spacing_us() else {
            return Ok(None);
        };
        let wait_ms: i64 = self
            .run(
                Call::Write,
                &RATE_SLOT,
                vec![
                    spacing.to_string(),
                    if keep_grid { "1" } else { "0" }.to_owned(),
                ],
            )
            .await?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms as u64)))
    }
}
