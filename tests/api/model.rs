//! A bounded randomized model test of "Puhuri ends with the total the site sent last": random
//! interleavings of reports, deliveries, lost answers (a call Puhuri takes after the gateway
//! stopped waiting), another writer changing Puhuri's value, workers that die after their call
//! landed (their lease reclaimed), operator retries and cancels, on both stores. At the end the
//! site sends each component's total once more (often a value it sent before, so "unchanged" is
//! decided against possibly stale knowledge), the queue settles, an operator retries what failed
//! or died (older reports included), and then for every component Puhuri holds that last total
//! and every accepted job has ended in a state that tells the truth.
//!
//! Bounded: a few seeds of a few dozen steps each. The seed is in every failure message; set
//! `MODEL_SEED` to replay one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use puhuri_gateway::queue::{JobFilter, JobState, LeaseResult};
use puhuri_gateway::sim::demo;
use puhuri_gateway::startup::Workers;
use puhuri_gateway::worker::StepOutcome;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::helpers::*;

/// Quick retries, a short upstream timeout (a 1.2 s answer is a lost one), one attempt per job
/// (so lost answers make `dead` jobs an operator can retry), and no trust in knowledge without a
/// read, so another writer's change is corrected by the next report.
const SETTINGS: &str = r#"
[upstream]
timeout = "1s"
connect_timeout = "1s"

[delivery]
lease = "3s"
max_attempts = 1
backoff_base = "10ms"
backoff_cap = "50ms"
usage_known_for = "0s"
"#;

const STEPS: usize = 30;
const LOST_ANSWERS_AT_MOST: usize = 3;

struct Model<'a> {
    app: &'a TestApp,
    rng: StdRng,
    seed: u64,
    token: String,
    /// Every value the site sent per component, in order.
    sent: BTreeMap<&'static str, Vec<String>>,
    /// Every accepted job, with the component and value it carries.
    accepted: Vec<(String, &'static str, String)>,
    canceled: BTreeSet<String>,
    lost_answers: usize,
    log: Vec<String>,
}

impl Model<'_> {
    fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!(
            "seed {}: {what}\nsteps:\n  {}",
            self.seed,
            self.log.join("\n  ")
        )
    }

    async fn report(&mut self, component: &'static str, value: String) {
        let body = json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {component: value}});
        let response = self.app.post_usage(&self.token, &body).await;
        if response.status() != 202 {
            self.fail(format!("report {component}={value}: {}", response.status()));
        }
        let job: Value = response.json().await.unwrap();
        let id = job["job_id"].as_str().unwrap().to_string();
        self.log.push(format!("report {component}={value} -> {id}"));
        self.sent.entry(component).or_default().push(value.clone());
        self.accepted.push((id, component, value));
    }

    fn value(&mut self) -> String {
        format!(
            "{}.{:02}",
            self.rng.random_range(0..40),
            self.rng.random_range(0..100)
        )
    }

    fn component(&mut self) -> &'static str {
        demo::COMPONENTS[self.rng.random_range(0..2)]
    }

    /// One delivery step; returns when the worker had nothing to do.
    async fn deliver(&mut self) -> Option<Duration> {
        let outcome = self
            .app
            .worker
            .try_execute_one()
            .await
            .unwrap_or_else(|e| self.fail(format!("store: {e}")));
        self.log.push(format!("deliver: {outcome:?}"));
        match outcome {
            StepOutcome::Idle { next_due_in } => Some(next_due_in.unwrap_or(Duration::ZERO)),
            StepOutcome::Throttled { retry_in } => Some(retry_in),
            _ => None,
        }
    }

    /// Puhuri takes the call after the gateway's timeout.
    async fn lost_answer(&mut self) {
        self.fault(json!({"kind": "latency", "path_prefix": "marketplace-component-usages/set_usage", "latency_ms": 1200})).await;
        self.log.push("lost answer:".into());
        self.deliver().await;
        self.app
            .client
            .delete(format!("{}faults", self.app.sim))
            .send()
            .await
            .unwrap();
        // the call Puhuri took lands before anything else happens
        tokio::time::sleep(Duration::from_millis(400)).await;
        self.lost_answers += 1;
    }

    async fn fault(&self, fault: Value) {
        let response = self.app.sim_post("faults", &fault).await;
        assert!(response.status().is_success());
    }

    /// Another writer sets a value in Puhuri.
    async fn other_writer(&mut self, component: &str, amount: &str) {
        self.log.push(format!("other writer {component}={amount}"));
        self.app.set_usage_in_puhuri(component, amount).await;
    }

    /// A worker leases a job, its call lands in Puhuri, and it dies: the lease is reclaimed.
    async fn worker_dies_after_its_call(&mut self) {
        let leased = self
            .app
            .store
            .lease("doomed-worker", Duration::from_millis(1), no_limits())
            .await
            .unwrap();
        let LeaseResult::Leased(job) = leased else {
            return;
        };
        if let Some(usages) = job.payload["usages"].as_object() {
            for (component, amount) in usages {
                self.app
                    .set_usage_in_puhuri(component, amount.as_str().unwrap())
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let reclaimed = self.app.store.reclaim_expired().await.unwrap();
        self.log.push(format!(
            "worker died after delivering {} ({reclaimed} reclaimed)",
            job.id
        ));
    }

    /// An operator retries a job if it failed or died (an older one is refused when a newer
    /// report carries one of its components).
    async fn operator_retry(&mut self) {
        if self.accepted.is_empty() {
            return;
        }
        let (id, _, _) = self.accepted[self.rng.random_range(0..self.accepted.len())].clone();
        let job = self.app.job(&self.token, &id).await;
        if matches!(job["state"].as_str(), Some("failed" | "dead")) {
            let response = self
                .app
                .client
                .post(self.app.url(&format!("/v1/jobs/{id}/retry")))
                .bearer_auth(alpha_token())
                .send()
                .await
                .unwrap();
            self.log
                .push(format!("operator retry {id}: {}", response.status()));
        }
    }

    /// An operator cancels a job still waiting.
    async fn cancel(&mut self) {
        let waiting: Vec<String> = self
            .accepted
            .iter()
            .map(|(id, _, _)| id.clone())
            .filter(|id| !self.canceled.contains(id))
            .collect();
        if waiting.is_empty() {
            return;
        }
        let id = waiting[self.rng.random_range(0..waiting.len())].clone();
        let response = self
            .app
            .client
            .post(self.app.url(&format!("/v1/jobs/{id}/cancel")))
            .bearer_auth(alpha_token())
            .send()
            .await
            .unwrap();
        self.log.push(format!("cancel {id}: {}", response.status()));
        match response.status().as_u16() {
            200 => {
                self.canceled.insert(id);
            }
            409 => {} // no longer waiting
            other => self.fail(format!("cancel {id}: {other}")),
        }
    }

    /// Delivers until no job is waiting (retries are quick), bounded.
    async fn settle(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(pause) = self.deliver().await {
                let open = self
                    .app
                    .store
                    .counts()
                    .await
                    .unwrap()
                    .iter()
                    .filter(|(s, _)| !s.is_terminal())
                    .map(|(_, n)| *n)
                    .sum::<u64>();
                if open == 0 {
                    return;
                }
                if Instant::now() > deadline {
                    self.fail(format!("{open} jobs still open"));
                }
                tokio::time::sleep(
                    pause.clamp(Duration::from_millis(5), Duration::from_millis(100)),
                )
                .await;
            }
        }
    }
}

fn no_limits() -> puhuri_gateway::queue::DeliveryLimits {
    puhuri_gateway::queue::DeliveryLimits {
        max_in_flight: 0,
        max_per_second: 0,
        jitter_allowance_us: 0,
    }
}

/// What Puhuri holds for the demo resource this month, per component.
async fn held(app: &TestApp) -> BTreeMap<String, String> {
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    app.sim_get(&format!("state/usages/{}", demo::RESOURCE_OK_UUID))
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["billing_period"].as_str().unwrap().starts_with(&month))
        .map(|u| {
            (
                u["type"].as_str().unwrap().to_string(),
                u["usage"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn run(redis: bool, seed: u64) {
    let app = spawn_app_with(
        Setup {
            redis,
            workers: Workers::Manual,
        },
        SETTINGS,
    )
    .await;
    let mut m = Model {
        app: &app,
        rng: StdRng::seed_from_u64(seed),
        seed,
        token: alpha_token(),
        sent: BTreeMap::new(),
        accepted: Vec::new(),
        canceled: BTreeSet::new(),
        lost_answers: 0,
        log: Vec::new(),
    };
    for _ in 0..STEPS {
        match m.rng.random_range(0..100) {
            0..30 => {
                let (c, v) = (m.component(), m.value());
                m.report(c, v).await;
            }
            30..55 => {
                m.deliver().await;
            }
            55..63 if m.lost_answers < LOST_ANSWERS_AT_MOST => m.lost_answer().await,
            63..73 => {
                let (c, v) = (m.component(), m.value());
                m.other_writer(c, &v).await;
            }
            73..83 => m.worker_dies_after_its_call().await,
            83..91 => m.operator_retry().await,
            91..100 => m.cancel().await,
            _ => {}
        }
    }
    // The site's last totals: often a value it sent before.
    let mut last = BTreeMap::new();
    for component in &demo::COMPONENTS[..2] {
        let earlier = m.sent.get(component).cloned().unwrap_or_default();
        let value = if !earlier.is_empty() && m.rng.random_bool(0.6) {
            earlier[m.rng.random_range(0..earlier.len())].clone()
        } else {
            m.value()
        };
        m.report(component, value.clone()).await;
        last.insert(
            component.to_string(),
            format!("{:.2}", value.parse::<f64>().unwrap()),
        );
    }
    m.settle().await;
    // An operator then retries what failed or died: nothing older may replace a last total.
    for _ in 0..3 {
        m.operator_retry().await;
    }
    m.settle().await;

    let held = held(&app).await;
    for (component, value) in &last {
        if held.get(component) != Some(value) {
            m.fail(format!(
                "Puhuri holds {component}={:?}, the site sent {value} last",
                held.get(component)
            ));
        }
    }
    let jobs = app
        .store
        .list(&JobFilter {
            limit: 1000,
            ..JobFilter::default()
        })
        .await
        .unwrap()
        .jobs;
    let ids: BTreeSet<String> = m.accepted.iter().map(|(id, _, _)| id.clone()).collect();
    for (id, component, _) in &m.accepted {
        let Some(job) = jobs.iter().find(|j| j.id.to_string() == *id) else {
            m.fail(format!("accepted job {id} was lost"));
        };
        let truthful = match job.state {
            JobState::Succeeded => true,
            JobState::Canceled => m.canceled.contains(id),
            JobState::Superseded => job
                .superseded_by
                .is_some_and(|by| ids.contains(&by.to_string())),
            // given up after its attempts, each of which had no definite answer
            JobState::Dead => job.attempts >= 1,
            _ => false,
        };
        if !truthful {
            m.fail(format!(
                "job {id} ({component}) ended {:?}: {job:?}",
                job.state
            ));
        }
    }
    // (the report before it may be superseded by it: one resource and month, one coalesce key)
    let (id, ..) = m.accepted.last().unwrap();
    let job = jobs.iter().find(|j| j.id.to_string() == *id).unwrap();
    if job.state != JobState::Succeeded {
        m.fail(format!("the last report {id} ended {:?}", job.state));
    }
}

fn seeds() -> Vec<u64> {
    match std::env::var("MODEL_SEED") {
        Ok(s) => vec![s.parse().expect("MODEL_SEED is a number")],
        Err(_) => {
            let base = chrono::Utc::now().timestamp_micros() as u64;
            (0..3).map(|i| base.wrapping_add(i * 7919)).collect()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_interleavings_end_with_the_last_total_embedded() {
    for seed in seeds() {
        run(false, seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_interleavings_end_with_the_last_total_redis() {
    for seed in seeds() {
        run(true, seed).await;
    }
}
