//! Events for the sites: what happened to their jobs, and what Puhuri wants of them, delivered
//! to each site's configured endpoints, signed the Standard Webhooks way.
//!
//! # Lanes
//! Every endpoint has a delivery lane of its own: a job store on the same backend as the upstream
//! jobs ([`crate::queue::lane_store_config`]: a key prefix on the same Redis, or a file of its own
//! beside the embedded store), worked by its own delivery loops ([`crate::worker::WorkerPool`])
//! with its own concurrency and rate limit (`max_in_flight`, `max_per_second` per endpoint, shared
//! by every replica). So an endpoint that is down or slow holds back only its own events: never a
//! delivery to Puhuri (whose rate limit it does not count against), nor another endpoint's.
//!
//! An event to deliver is a job of that lane: its `operation` is the event's type, its payload the
//! event, its object key the event's subject (`order:<uuid>`, `resource:<uuid>`, or for a job's
//! outcome the job's own upstream object), so the events about one object reach an endpoint one at
//! a time, in the order they were emitted, while others pass. Retries, backoff, `dead` after
//! `events.max_attempts` or `events.max_age`, attempts, the last status and error: the queue's
//! machinery, as for upstream jobs. The event's id is the job's idempotency key, so emitting the
//! same event twice (a job outcome seen again, a poll repeated by a new watcher leader) stores it
//! once per endpoint. A replay stores a new delivery of the same event (same id) without that key.
//!
//! # Job outcomes
//! [`JobOutcomes`] is told by the upstream workers of each job that ended `succeeded`, `failed` or
//! `dead`, once that state is stored, and emits `job.<state>` with the job's view. A process that
//! dies between storing the outcome and storing the event loses that one event (the job itself is
//! safe, and `GET /v1/jobs` shows it) until the next start: [`JobOutcomes::catch_up`] then emits
//! the events of the jobs accepted in the last hour that have finished, and the lanes store only
//! those they do not hold yet.

pub mod carrier;
pub mod signing;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::config::{CallbackConfig, Config};
use crate::domain::event::{Event, EventType, event_id};
use crate::domain::retry::RetryPolicy;
use crate::queue::{
    DeliveryLimits, EnqueueOutcome, Idempotency, JobFilter, JobId, JobRecord, JobState, JobStore,
    NewJob, StoreError, StoreResult, lane_store_config, open_store,
};
use crate::worker::{Observer, PoolSettings, Worker, WorkerPool, process_worker_id};

use carrier::EndpointCarrier;

/// The most deliveries one replay stores per endpoint.
pub const MAX_REPLAY: usize = 10_000;

/// One endpoint's lane.
pub struct Lane {
    pub site: String,
    pub endpoint: Arc<CallbackConfig>,
    pub store: Arc<dyn JobStore>,
    wake: Arc<Notify>,
    worker: Worker,
}

impl Lane {
    /// One delivery step, for tests that drive the lane themselves.
    pub fn worker(&self) -> Worker {
        self.worker.clone()
    }
}

/// Every endpoint's lane, and the one way events are emitted.
pub struct EventHub {
    lanes: Vec<Lane>,
}

/// Running delivery loops of every lane.
pub struct EventPools(Vec<WorkerPool>);

impl EventPools {
    /// Stops leasing in every lane.
    pub fn stop_leasing(&self) {
        self.0.iter().for_each(WorkerPool::stop_leasing);
    }

    /// Stops every lane within its grace period.
    pub async fn shutdown(self) {
        for pool in self.0 {
            pool.shutdown().await;
        }
    }
}

impl EventHub {
    /// Opens a lane per configured endpoint (none: an empty hub that emits nothing).
    pub async fn open(config: &Config) -> anyhow::Result<EventHub> {
        let events = &config.events;
        let policy = RetryPolicy {
            base: events.backoff_base,
            cap: events.backoff_cap,
            max_attempts: events.max_attempts,
            max_age: events.max_age,
        };
        // Longer than an attempt can take, so a live worker never loses its lease.
        let lease = events.timeout * 3 + Duration::from_secs(5);
        let mut lanes = Vec::new();
        for site in &config.sites {
            for endpoint in &site.callbacks {
                let lane_name = format!("events/{}/{}", site.id, endpoint.name);
                let store_config = lane_store_config(&config.store, &lane_name, events.workers + 2);
                let store = open_store(&store_config, None).await?;
                let endpoint = endpoint.clone();
                let carrier = EndpointCarrier::new(endpoint.clone(), events.timeout)
                    .map_err(anyhow::Error::msg)?;
                let worker = Worker::with_carrier(
                    format!("{}/{lane_name}", process_worker_id()),
                    store.clone(),
                    Arc::new(carrier),
                    policy,
                    DeliveryLimits {
                        max_in_flight: endpoint.max_in_flight,
                        max_per_second: endpoint.max_per_second,
                        jitter_allowance_us: 0,
                    },
                    lease,
                )
                .without_upstream_metrics();
                lanes.push(Lane {
                    site: site.id.clone(),
                    endpoint,
                    store,
                    wake: Arc::new(Notify::new()),
                    worker,
                });
            }
        }
        Ok(EventHub { lanes })
    }

    /// Starts every lane's delivery loops.
    pub fn start(&self, config: &Config) -> EventPools {
        EventPools(
            self.lanes
                .iter()
                .map(|lane| {
                    WorkerPool::start(
                        Arc::new(lane.worker.clone()),
                        lane.store.clone(),
                        lane.wake.clone(),
                        PoolSettings {
                            loops: config.events.workers,
                            retention: config.events.retention,
                            grace: config.delivery.shutdown_grace,
                        },
                        Arc::new(AtomicBool::new(false)),
                    )
                })
                .collect(),
        )
    }

    /// The lanes of `site`, in configuration order.
    pub fn lanes_of<'a>(&'a self, site: &'a str) -> impl Iterator<Item = &'a Lane> + 'a {
        self.lanes.iter().filter(move |l| l.site == site)
    }

    /// Whether an endpoint of `site` wants events of this type.
    pub fn wants(&self, site: &str, event_type: EventType) -> bool {
        self.lanes_of(site).any(|l| l.endpoint.wants(event_type))
    }

    /// Stores `event` for delivery to every endpoint of `site` that wants its type, in the line of
    /// `object_key`. An event whose id a lane holds already is not stored again there. Returns
    /// how many endpoints got a new delivery; a store that fails is logged and skipped (the others
    /// still get the event), and the first failure is returned after all were tried.
    pub async fn emit(&self, site: &str, object_key: &str, event: &Event) -> StoreResult<usize> {
        let mut stored = 0;
        let mut failure = None;
        for lane in self
            .lanes_of(site)
            .filter(|l| l.endpoint.wants(event.event_type))
        {
            match enqueue(lane, object_key, event, true).await {
                Ok(EnqueueOutcome::Created(..)) => stored += 1,
                Ok(EnqueueOutcome::Existing(_)) => {}
                Err(e) => {
                    tracing::warn!(site, endpoint = %lane.endpoint.name, event = %event.id, error = %e, "could not store an event");
                    failure.get_or_insert(e);
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(stored),
        }
    }

    /// The site's deliveries, newest first, across its endpoints (or only `endpoint`): at most
    /// `filter.limit`, older than `filter.before`. The cursor of the next page is the last one's id.
    pub async fn list(
        &self,
        site: &str,
        endpoint: Option<&str>,
        filter: &JobFilter,
    ) -> StoreResult<Vec<(Arc<CallbackConfig>, JobRecord)>> {
        let mut all = Vec::new();
        for lane in self
            .lanes_of(site)
            .filter(|l| endpoint.is_none_or(|e| l.endpoint.name == e))
        {
            let page = lane
                .store
                .list(&JobFilter {
                    site: Some(site.to_owned()),
                    ..filter.clone()
                })
                .await?;
            all.extend(page.jobs.into_iter().map(|j| (lane.endpoint.clone(), j)));
        }
        all.sort_by_key(|b| std::cmp::Reverse(b.1.id));
        all.truncate(filter.limit);
        Ok(all)
    }

    /// Stores a new delivery, to the same endpoint, of every event of `site` from `from` on
    /// (`endpoint`: only that one), oldest first, so that they arrive in their first order.
    /// Returns the new deliveries' ids; `None` when replaying from an event id that none of
    /// those endpoints carried for the site. At most [`MAX_REPLAY`] per endpoint.
    pub async fn replay(
        &self,
        site: &str,
        endpoint: Option<&str>,
        from: &ReplayFrom,
    ) -> StoreResult<Option<Vec<JobId>>> {
        let mut created = Vec::new();
        let mut found = false;
        for lane in self
            .lanes_of(site)
            .filter(|l| endpoint.is_none_or(|e| l.endpoint.name == e))
        {
            let Some(picked) = pick_for_replay(lane, site, from).await? else {
                continue;
            };
            found = true;
            for original in picked.into_iter().rev() {
                let event: Event = serde_json::from_value(original.payload.clone())
                    .map_err(|e| StoreError::Corrupt(format!("a stored event: {e}")))?;
                let job = enqueue(lane, &original.object_key, &event, false).await?;
                created.push(job.job().id);
            }
        }
        let unknown = matches!(from, ReplayFrom::Event(_)) && !found;
        Ok((!unknown).then_some(created))
    }
}

/// Where a replay starts.
#[derive(Clone, Debug)]
pub enum ReplayFrom {
    /// Every event emitted at or after this time.
    Time(DateTime<Utc>),
    /// This event and every one emitted after it.
    Event(String),
}

/// The lane's deliveries to replay, newest first (each event once: its first delivery in range);
/// `None` when replaying from an event the lane never carried.
async fn pick_for_replay(
    lane: &Lane,
    site: &str,
    from: &ReplayFrom,
) -> StoreResult<Option<Vec<JobRecord>>> {
    let mut seen: Vec<JobRecord> = Vec::new();
    let mut before = None;
    'pages: loop {
        let page = lane
            .store
            .list(&JobFilter {
                site: Some(site.to_owned()),
                before,
                limit: 500,
                ..JobFilter::default()
            })
            .await?;
        for job in page.jobs {
            if let ReplayFrom::Time(t) = from
                && job.created_at < *t
            {
                break 'pages;
            }
            seen.push(job);
            if seen.len() >= MAX_REPLAY * 2 {
                break 'pages;
            }
        }
        match page.next_cursor {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    if let ReplayFrom::Event(id) = from {
        // the oldest delivery of that event starts the range (a replayed event has newer ones)
        let Some(start) = seen
            .iter()
            .rposition(|j| j.payload.get("id").and_then(|v| v.as_str()) == Some(id.as_str()))
        else {
            return Ok(None);
        };
        seen.truncate(start + 1);
    }
    Ok(Some(dedupe(seen)))
}

/// Keeps one delivery per event id (the oldest one, which comes last), newest first, at most
/// [`MAX_REPLAY`].
fn dedupe(picked: Vec<JobRecord>) -> Vec<JobRecord> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<JobRecord> = picked
        .into_iter()
        .rev()
        .filter(|j| {
            let id = j.payload.get("id").and_then(|v| v.as_str()).unwrap_or("");
            seen.insert(id.to_owned())
        })
        .collect();
    out.reverse();
    out.truncate(MAX_REPLAY);
    out
}

async fn enqueue(
    lane: &Lane,
    object_key: &str,
    event: &Event,
    once: bool,
) -> StoreResult<EnqueueOutcome> {
    let payload = serde_json::to_value(event)
        .map_err(|e| StoreError::Corrupt(format!("an event could not be written: {e}")))?;
    let outcome = lane
        .store
        .enqueue(NewJob {
            site: lane.site.clone(),
            operation: event.event_type.as_str().to_owned(),
            object_key: object_key.to_owned(),
            coalesce_key: None,
            payload,
            idempotency: once.then(|| Idempotency {
                key: event.id.clone(),
                fingerprint: event.id.clone(),
            }),
        })
        .await?;
    lane.wake.notify_waiters();
    Ok(outcome)
}

/// Emits `job.succeeded`, `job.failed` and `job.dead` for the upstream workers' jobs.
pub struct JobOutcomes {
    pub hub: Arc<EventHub>,
    /// The upstream jobs' store, to read the job as it ended.
    pub store: Arc<dyn JobStore>,
    /// The job's view as `GET /v1/jobs/{id}` shows it.
    pub view: fn(JobRecord) -> serde_json::Value,
    /// Woken for every job that ends (the watcher: a write of the gateway may have changed
    /// Puhuri).
    pub poke: Option<Arc<Notify>>,
}

impl JobOutcomes {
    /// The event of a finished job (`None`: not a state with an event, or no endpoint of its
    /// site wants it). Its id and content depend only on the stored record, so the same outcome
    /// always makes the same event. The id holds the time the outcome was stored (a finished
    /// job's record does not change until it is retried), so each outcome of a job retried by
    /// an operator is an event of its own although its attempts start again from zero.
    fn event_of(&self, record: JobRecord) -> Option<(String, String, Event)> {
        let event_type = match record.state {
            JobState::Succeeded => EventType::JobSucceeded,
            JobState::Failed => EventType::JobFailed,
            JobState::Dead => EventType::JobDead,
            _ => return None,
        };
        if !self.hub.wants(&record.site, event_type) {
            return None;
        }
        let id = event_id(&[
            "job",
            &record.id.simple().to_string(),
            record.state.as_str(),
            &record.attempts.to_string(),
            &record.updated_at.timestamp_millis().to_string(),
        ]);
        let (site, object_key, time) = (
            record.site.clone(),
            record.object_key.clone(),
            record.updated_at,
        );
        Some((
            site,
            object_key,
            Event::new(id, event_type, time, (self.view)(record)),
        ))
    }

    /// Emits the events of jobs accepted in the last `window` that have finished: those a process
    /// that died between storing a job's outcome and storing its event did not emit. Events
    /// stored already are not stored again (their ids are the lanes' idempotency keys). Run at
    /// start. Returns how many deliveries were stored.
    pub async fn catch_up(&self, window: Duration) -> StoreResult<usize> {
        let since = Utc::now() - chrono::Duration::from_std(window).unwrap_or_default();
        let mut before = None;
        let mut stored = 0;
        for _ in 0..200 {
            let page = self
                .store
                .list(&JobFilter {
                    before,
                    limit: 500,
                    ..JobFilter::default()
                })
                .await?;
            for job in page.jobs {
                if job.created_at < since {
                    return Ok(stored);
                }
                if let Some((site, object_key, event)) = self.event_of(job) {
                    stored += self.hub.emit(&site, &object_key, &event).await?;
                }
            }
            match page.next_cursor {
                Some(c) => before = Some(c),
                None => break,
            }
        }
        Ok(stored)
    }
}

#[async_trait::async_trait]
impl Observer for JobOutcomes {
    async fn finished(&self, job: &JobRecord, state: JobState) {
        if let Some(poke) = &self.poke {
            poke.notify_one();
        }
        let event_type = match state {
            JobState::Succeeded => EventType::JobSucceeded,
            JobState::Failed => EventType::JobFailed,
            JobState::Dead => EventType::JobDead,
            _ => return,
        };
        if !self.hub.wants(&job.site, event_type) {
            return;
        }
        let record = match self.store.get(job.id).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "could not read a finished job for its event");
                return;
            }
        };
        if let Some((site, object_key, event)) = self.event_of(record) {
            let _ = self.hub.emit(&site, &object_key, &event).await;
        }
    }
}
