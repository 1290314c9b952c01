//! Delivery workers: lease a job, deliver it, record the outcome — forever, until shutdown.
//!
//! [`Worker::try_execute_one`] is one whole step and what tests drive instead of sleeping. The
//! pool runs `delivery.workers` loops of it, plus a housekeeping loop that puts jobs of dead
//! workers back in line and removes expired finished jobs.
//!
//! A worker holds a lease on its job and renews it while the delivery runs, so a slow Puhuri does
//! not let another replica take the job over; a worker that dies stops renewing and its job is
//! reclaimed when the lease expires. On shutdown the loops stop leasing, in-flight deliveries get
//! `delivery.shutdown_grace` to finish, and whatever is still running is released back to the
//! queue without counting the attempt.
//!
//! While the delivery limits hold work back (rate or in-flight), one loop per process at a time
//! asks the store again, at the time the store suggests; the other throttled loops wait for that
//! turn. Sixteen loops polling on their own cost about a thousand lease calls a second at the
//! default rate of 50 deliveries a second. A loop that gets a job passes the turn on at once, and
//! the next loop asks straight away, so free capacity is taken up without waiting a period.

pub mod deliver;
pub mod usage;

use crate::telemetry::metrics as telemetry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Mutex, Notify, watch};
use tokio::task::JoinHandle;

pub use deliver::{Delivered, Deliverer, DeliveryError};

use crate::domain::retry::{RetryDecision, RetryPolicy};
use crate::queue::{
    Completion, DeliveryLimits, JobId, JobRecord, JobState, JobStore, LeaseFence, LeaseResult,
    StoreError,
};
use deliver::Outcome;

/// How long an idle worker waits before looking again when nothing wakes it.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How long a worker waits after the store failed before trying again.
const STORE_ERROR_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, PartialEq)]
pub enum StepOutcome {
    /// A job was delivered (or failed) and its new state recorded.
    Finished {
        id: JobId,
        state: JobState,
    },
    /// A job was leased but its lease was lost before the outcome could be recorded.
    LeaseLost {
        id: JobId,
    },
    Idle {
        next_due_in: Option<Duration>,
    },
    Throttled {
        retry_in: Duration,
    },
}

/// What carries a leased job to its destination: [`Deliverer`] to Puhuri, or another lane's
/// carrier (the events a site's endpoint receives). The worker's leasing, retries, backoff and
/// dead-lettering are the same for every carrier.
#[async_trait::async_trait]
pub trait Carrier: Send + Sync + 'static {
    /// One attempt; a failure's [`deliver::outcome`] decides between retrying and failing.
    async fn carry(&self, job: &JobRecord) -> Result<Delivered, DeliveryError>;
}

#[async_trait::async_trait]
impl Carrier for Deliverer {
    async fn carry(&self, job: &JobRecord) -> Result<Delivered, DeliveryError> {
        self.deliver(job).await
    }
}

/// Told of each job that reached a terminal state through this worker (`succeeded`, `failed`,
/// `dead`), after the outcome is stored. The events lane uses it to emit `job.*` events.
#[async_trait::async_trait]
pub trait Observer: Send + Sync + 'static {
    async fn finished(&self, job: &JobRecord, state: JobState);
}

#[derive(Clone)]
pub struct Worker {
    pub id: String,
    store: Arc<dyn JobStore>,
    deliverer: Arc<dyn Carrier>,
    /// Told of terminal outcomes (see [`Observer`]).
    observer: Option<Arc<dyn Observer>>,
    /// Whether attempts count in the Puhuri delivery metrics (not for other lanes).
    upstream_metrics: bool,
    policy: RetryPolicy,
    limits: DeliveryLimits,
    lease: Duration,
    /// The fencing number of this worker id's latest lease call (see "Fenced leases" in the
    /// queue's module doc); shared by the clones that carry the same id. One id leases one job
    /// at a time.
    fence: Arc<std::sync::atomic::AtomicU64>,
    /// The latest lease call of this id got no answer (see `fence`).
    lost: Arc<AtomicBool>,
}

impl Worker {
    pub fn new(
        id: String,
        store: Arc<dyn JobStore>,
        deliverer: Deliverer,
        policy: RetryPolicy,
        limits: DeliveryLimits,
        lease: Duration,
    ) -> Worker {
        Worker::with_carrier(id, store, Arc::new(deliverer), policy, limits, lease)
    }

    /// A worker of another lane: its jobs go through `carrier`, and its attempts are not counted
    /// in the Puhuri delivery metrics.
    pub fn with_carrier(
        id: String,
        store: Arc<dyn JobStore>,
        carrier: Arc<dyn Carrier>,
        policy: RetryPolicy,
        limits: DeliveryLimits,
        lease: Duration,
    ) -> Worker {
        Worker {
            id,
            store,
            deliverer: carrier,
            observer: None,
            upstream_metrics: true,
            policy,
            limits,
            lease,
            fence: Arc::default(),
            lost: Arc::default(),
        }
    }

    /// Tells `observer` of every terminal outcome this worker records.
    pub fn observed_by(mut self, observer: Arc<dyn Observer>) -> Worker {
        self.observer = Some(observer);
        self
    }

    /// Leaves this lane's attempts out of the Puhuri delivery metrics.
    pub fn without_upstream_metrics(mut self) -> Worker {
        self.upstream_metrics = false;
        self
    }

    /// The same worker under another lease-holder id (one per delivery loop).
    pub fn named(&self, id: String) -> Worker {
        Worker {
            id,
            fence: Arc::default(),
            lost: Arc::default(),
            ..self.clone()
        }
    }

    /// Asks the store for the next due job under this worker's id, lease and limits, fenced: a
    /// call whose answer was lost cannot take effect after the next one, and a job it leased
    /// anyway goes back in line at the next call instead of waiting out its lease.
    async fn lease_next(&self) -> Result<LeaseResult, StoreError> {
        let fence = LeaseFence {
            number: self.fence.fetch_add(1, Ordering::Relaxed) + 1,
            previous_lost: self.lost.swap(false, Ordering::Relaxed),
        };
        self.store
            .lease_fenced(&self.id, fence, self.lease, self.limits)
            .await
            .inspect_err(|_| self.lost.store(true, Ordering::Relaxed))
            .inspect_err(|_| telemetry::store_error("worker"))
    }

    /// Leases one due job, delivers it and records the outcome.
    pub async fn try_execute_one(&self) -> Result<StepOutcome, StoreError> {
        match self.lease_next().await? {
            LeaseResult::Leased(job) => {
                let completion = self.deliver_with_heartbeat(&job).await;
                self.record(&job, completion).await
            }
            LeaseResult::Idle { next_due_in } => Ok(StepOutcome::Idle { next_due_in }),
            LeaseResult::Throttled { retry_in } => Ok(StepOutcome::Throttled { retry_in }),
        }
    }

    async fn record(
        &self,
        job: &JobRecord,
        completion: Completion,
    ) -> Result<StepOutcome, StoreError> {
        let state = completion.state();
        let status = match &completion {
            Completion::Succeeded { status, .. }
            | Completion::Failed { status, .. }
            | Completion::Retry { status, .. }
            | Completion::Dead { status, .. } => *status,
            Completion::Follow { .. } => None,
        };
        match &completion {
            Completion::Succeeded { .. } => {
                tracing::info!(job = %job.id, operation = %job.operation, "delivered")
            }
            Completion::Failed { status, error, .. } => {
                tracing::warn!(job = %job.id, operation = %job.operation, ?status, %error, "Puhuri refused the job")
            }
            Completion::Retry {
                at, status, error, ..
            } => {
                tracing::info!(job = %job.id, operation = %job.operation, ?status, %error, retry_at = %at, "delivery will be retried")
            }
            Completion::Dead { status, error, .. } => {
                tracing::warn!(job = %job.id, operation = %job.operation, ?status, %error, attempts = job.attempts, "retries exhausted")
            }
            Completion::Follow { at, progress } => {
                tracing::info!(job = %job.id, operation = %job.operation, %progress, look_again_at = %at, "Puhuri is still working on it")
            }
        }
        let recorded = self
            .store
            .complete(job.id, &self.id, completion)
            .await
            .inspect_err(|_| telemetry::store_error("worker"))?;
        if recorded {
            // counted once the outcome is stored: a lost lease's attempt is counted by the
            // worker that delivers the job again
            if self.upstream_metrics {
                telemetry::delivery_attempt(&job.operation, state, status);
                if state == JobState::Succeeded {
                    let since = (Utc::now() - job.created_at).to_std().unwrap_or_default();
                    telemetry::delivered(&job.operation, since);
                }
            } else {
                // another lane's jobs: the events to the sites' endpoints
                telemetry::event_attempt(&job.operation, state);
            }
            if let Some(observer) = &self.observer
                && matches!(
                    state,
                    JobState::Succeeded | JobState::Failed | JobState::Dead
                )
            {
                observer.finished(job, state).await;
            }
            Ok(StepOutcome::Finished { id: job.id, state })
        } else {
            tracing::warn!(job = %job.id, "the lease was lost before the outcome was recorded; another worker will deliver it again");
            Ok(StepOutcome::LeaseLost { id: job.id })
        }
    }

    /// Delivers while renewing the lease every third of its length.
    async fn deliver_with_heartbeat(&self, job: &JobRecord) -> Completion {
        let started = std::time::Instant::now();
        let delivery = self.deliverer.carry(job);
        tokio::pin!(delivery);
        let mut beat = tokio::time::interval(self.lease / 3);
        beat.tick().await; // the first tick is immediate
        loop {
            tokio::select! {
                result = &mut delivery => {
                    if self.upstream_metrics {
                        telemetry::upstream_call(&job.operation, started.elapsed());
                    }
                    return self.completion(job, result);
                }
                _ = beat.tick() => {
                    match self.store.heartbeat(job.id, &self.id, self.lease).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(job = %job.id, "lease lost during delivery"),
                        Err(e) => tracing::warn!(job = %job.id, error = %e, "could not renew the lease"),
                    }
                }
            }
        }
    }

    fn completion(&self, job: &JobRecord, result: Result<Delivered, DeliveryError>) -> Completion {
        let failure = match result {
            Ok(done) => {
                return Completion::Succeeded {
                    status: done.status,
                    result: done.result,
                    delivered: done.delivered,
                };
            }
            Err(e) => deliver::outcome(e),
        };
        match failure {
            Outcome::Follow { progress, after } => Completion::Follow {
                at: Utc::now() + chrono::Duration::from_std(after).unwrap_or_default(),
                progress,
            },
            Outcome::Fail {
                status,
                code,
                error,
            } => Completion::Failed {
                status,
                code: Some(code.to_string()),
                error,
            },
            Outcome::Retry {
                status,
                code,
                error: message,
                retry_after,
            } => match self
                .policy
                .decide(job.attempts, job.created_at, Utc::now(), retry_after)
            {
                RetryDecision::RetryAt(at) => Completion::Retry {
                    at,
                    status,
                    code: Some(code.to_string()),
                    error: message,
                },
                RetryDecision::GiveUp => Completion::Dead {
                    status,
                    code: Some(code.to_string()),
                    error: message,
                },
            },
        }
    }
}

/// A unique id for this process's workers: host, process id and a random suffix (a restarted
/// process on the same host never reuses the id of the one that died).
pub fn process_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "gateway".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..8])
}

/// Running delivery loops.
pub struct WorkerPool {
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    running: Arc<AtomicBool>,
}

pub struct PoolSettings {
    pub loops: usize,
    pub retention: Duration,
    pub grace: Duration,
}

impl WorkerPool {
    /// Starts `loops` delivery loops and one housekeeping loop. `wake` is notified when work is
    /// enqueued so idle loops start at once instead of at their next poll.
    pub fn start(
        worker: Arc<Worker>,
        store: Arc<dyn JobStore>,
        wake: Arc<Notify>,
        settings: PoolSettings,
        running: Arc<AtomicBool>,
    ) -> WorkerPool {
        let (shutdown, watch_rx) = watch::channel(false);
        let throttle_turn = Arc::new(Mutex::new(()));
        let mut tasks = Vec::with_capacity(settings.loops + 1);
        for n in 0..settings.loops {
            let signals = LoopSignals {
                wake: wake.clone(),
                throttle_turn: throttle_turn.clone(),
                shutdown: watch_rx.clone(),
            };
            let id = format!("{}#{n}", worker.id);
            tasks.push(tokio::spawn(delivery_loop(
                worker.clone(),
                id,
                signals,
                settings.grace,
            )));
        }
        tasks.push(tokio::spawn(housekeeping_loop(
            store,
            settings.retention,
            watch_rx,
        )));
        running.store(true, Ordering::Relaxed);
        WorkerPool {
            shutdown,
            tasks,
            running,
        }
    }

    /// Stops leasing at once: no delivery starts after this returns. In-flight deliveries keep
    /// running (their grace period starts now); [`WorkerPool::shutdown`] waits for them.
    pub fn stop_leasing(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Stops leasing, lets in-flight deliveries finish within the grace period (counted from
    /// [`WorkerPool::stop_leasing`] when that was called first), releases the rest.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.running.store(false, Ordering::Relaxed);
    }
}

/// What a delivery loop listens to besides the store.
struct LoopSignals {
    /// Notified when work is enqueued.
    wake: Arc<Notify>,
    /// Held by the one throttled loop of this process that is asking the store (module doc).
    throttle_turn: Arc<Mutex<()>>,
    shutdown: watch::Receiver<bool>,
}

async fn delivery_loop(
    worker: Arc<Worker>,
    loop_id: String,
    signals: LoopSignals,
    grace: Duration,
) {
    let LoopSignals {
        wake,
        throttle_turn,
        mut shutdown,
    } = signals;
    // Each loop leases under its own id so one loop's lease is never completed by another.
    let worker = worker.named(loop_id);
    // The next lease, asked for together with the previous job's outcome.
    let mut prefetched: Option<LeaseResult> = None;
    while !*shutdown.borrow() {
        let leased = match prefetched.take() {
            Some(l) => l,
            None => match worker.lease_next().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "the job store is unavailable; waiting");
                    wait(&mut shutdown, &wake, STORE_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        if *shutdown.borrow() {
            // The signal came while the store was answering: the job was leased but not started.
            if let LeaseResult::Leased(job) = leased {
                let _ = worker.store.release(job.id, &worker.id).await;
            }
            return;
        }
        match leased {
            LeaseResult::Leased(job) => {
                let delivery = worker.deliver_with_heartbeat(&job);
                tokio::pin!(delivery);
                let completion = tokio::select! {
                    c = &mut delivery => Some(c),
                    _ = grace_expired(shutdown.clone(), grace) => None,
                };
                let Some(c) = completion else {
                    tracing::info!(job = %job.id, "shutting down: handing the job back");
                    let _ = worker.store.release(job.id, &worker.id).await;
                    return;
                };
                if *shutdown.borrow() {
                    record_or_warn(&worker, &job, c).await;
                    continue;
                }
                // The outcome and the next lease go to the store together: on Redis's shared
                // connection that is one round trip instead of two. The outcome is sent first,
                // so the in-flight count the lease checks no longer holds this job.
                let (_, next) =
                    tokio::join!(record_or_warn(&worker, &job, c), worker.lease_next(),);
                // On an error the next turn leases again and handles it.
                prefetched = next.ok();
            }
            LeaseResult::Idle { next_due_in } => {
                let nap = next_due_in.map_or(IDLE_POLL, |d| d.min(IDLE_POLL));
                wait(&mut shutdown, &wake, nap).await;
            }
            LeaseResult::Throttled { retry_in } => {
                // Not woken by new work: a throttled loop waits for the limit, not for work, and
                // a wake-up per accepted request would cost a lease call per request.
                let (turn, first_wait) = match throttle_turn.try_lock() {
                    Ok(turn) => (turn, Some(retry_in)),
                    // Another loop was asking; it passed the turn on because it got a job (or
                    // found none): ask at once.
                    Err(_) => tokio::select! {
                        turn = throttle_turn.lock() => (turn, None),
                        _ = shutdown.changed() => continue,
                    },
                };
                prefetched = lease_when_allowed(&worker, first_wait, &mut shutdown).await;
                drop(turn);
            }
        }
    }
    // Stopped with a job leased ahead and not started: hand it back.
    if let Some(LeaseResult::Leased(job)) = prefetched {
        let _ = worker.store.release(job.id, &worker.id).await;
    }
}

/// Asks the store for a job until the limits let one through, at the times the store suggests
/// (waiting `first_wait` before the first ask). `None` on shutdown or a store error (the loop's
/// next lease handles it); otherwise a job or the news that there is none.
async fn lease_when_allowed(
    worker: &Worker,
    first_wait: Option<Duration>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<LeaseResult> {
    let mut wait = first_wait;
    loop {
        if let Some(pause) = wait {
            tokio::select! {
                // Only this loop is asking, so a short floor costs little and keeps the start
                // close to the slot at high rates (at 300/s slots are 3.4 ms apart).
                _ = tokio::time::sleep(pause.max(Duration::from_millis(1))) => {}
                _ = shutdown.changed() => return None,
            }
        }
        match worker.lease_next().await {
            Ok(LeaseResult::Throttled { retry_in }) => wait = Some(retry_in),
            Ok(other) => return Some(other),
            Err(_) => return None,
        }
    }
}

async fn record_or_warn(worker: &Worker, job: &JobRecord, completion: Completion) {
    if let Err(e) = worker.record(job, completion).await {
        // The lease will expire and the job will be delivered again.
        tracing::warn!(job = %job.id, error = %e, "could not record the outcome");
    }
}

/// Resolves `grace` after shutdown was signalled; never, otherwise.
async fn grace_expired(mut shutdown: watch::Receiver<bool>, grace: Duration) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
    tokio::time::sleep(grace).await;
}

async fn wait(shutdown: &mut watch::Receiver<bool>, wake: &Notify, at_most: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(at_most) => {}
        _ = wake.notified() => {}
        _ = shutdown.changed() => {}
    }
}

async fn housekeeping_loop(
    store: Arc<dyn JobStore>,
    retention: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut reclaim = tokio::time::interval(Duration::from_secs(1));
    let mut purge = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = reclaim.tick() => {
                match store.reclaim_expired().await {
                    Ok(0) => {}
                    Ok(n) => {
                        telemetry::lease_reclaims(n);
                        tracing::info!(jobs = n, "reclaimed jobs whose worker stopped renewing its lease");
                    }
                    Err(e) => tracing::debug!(error = %e, "reclaim skipped"),
                }
            }
            _ = purge.tick() => {
                if let Err(e) = store.purge_terminal(retention).await {
                    tracing::debug!(error = %e, "purge skipped");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
