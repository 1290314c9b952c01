//! `open_store` and the operator commands (`puhuri-gateway jobs ...`) on both backends: the
//! embedded store in a temporary directory and Redis on a redis-server started by the harness.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use puhuri_gateway::admin::{self, JobsCommand};
use puhuri_gateway::config::{Config, RawConfig, StoreConfig};
use puhuri_gateway::queue::{
    Completion, DeliveryLimits, EnqueueOutcome, JobId, JobRecord, JobState, JobStore, LeaseResult,
    NewJob, open_store,
};
use secrecy::SecretString;
use serde_json::json;
use support::redis::shared;
use support::stores::{Backend, bare_prefix, embedded_config, redis_config};

// ---------------------------------------------------------------------------------------------
// fixtures

const LEASE: Duration = Duration::from_secs(30);
const NO_LIMITS: DeliveryLimits = DeliveryLimits {
    max_in_flight: 0,
    max_per_second: 0,
    jitter_allowance_us: 0,
};

fn job(site: &str, operation: &str, object: &str) -> NewJob {
    NewJob {
        site: site.into(),
        operation: operation.into(),
        object_key: object.into(),
        coalesce_key: None,
        payload: json!({"object": object}),
        idempotency: None,
    }
}

async fn add(store: &dyn JobStore, j: NewJob) -> JobRecord {
    match store.enqueue(j).await.unwrap() {
        EnqueueOutcome::Created(r, _) => r,
        other => panic!("expected Created, got {other:?}"),
    }
}

async fn lease_and_complete(store: &dyn JobStore, id: JobId, outcome: Completion) {
    match store.lease("w1", LEASE, NO_LIMITS).await.unwrap() {
        LeaseResult::Leased(r) => assert_eq!(r.id, id, "the expected job is due"),
        other => panic!("expected a lease, got {other:?}"),
    }
    assert!(store.complete(id, "w1", outcome).await.unwrap());
}

/// The jobs every command test works on.
struct Seeded {
    succeeded: JobRecord,
    failed: JobRecord,
    queued: JobRecord,
    running: JobRecord,
    other_site: JobRecord,
}

const LONG_ERROR: &str = "upstream said 400 Bad Request: {\"detail\": \"the offering is \
                          archived and no longer accepts orders of this kind\"}\nmore";

/// Seed the store `config` names, then close it (so the embedded file is free again).
async fn seed(config: &Config) -> Seeded {
    let store = open_store(&config.store, None).await.unwrap();
    let store = &*store;
    let succeeded = add(store, job("site-a", "order.approve", "order:1")).await;
    lease_and_complete(
        store,
        succeeded.id,
        Completion::Succeeded {
            status: Some(200),
            result: json!({"ok": true}),
            delivered: BTreeMap::new(),
        },
    )
    .await;
    let failed = add(store, job("site-a", "order.approve", "order:2")).await;
    lease_and_complete(
        store,
        failed.id,
        Completion::Failed {
            status: Some(400),
            error: LONG_ERROR.into(),
            code: None,
        },
    )
    .await;
    let running = add(store, job("site-a", "usage.report", "resource:3")).await;
    match store.lease("w9", LEASE, NO_LIMITS).await.unwrap() {
        LeaseResult::Leased(r) => assert_eq!(r.id, running.id),
        other => panic!("expected a lease, got {other:?}"),
    }
    let queued = add(store, job("site-a", "usage.report", "resource:4")).await;
    let other_site = add(store, job("site-b", "order.reject", "order:5")).await;
    let get = |id| async move { store.get(id).await.unwrap().unwrap() };
    Seeded {
        succeeded: get(succeeded.id).await,
        failed: get(failed.id).await,
        queued: get(queued.id).await,
        running: get(running.id).await,
        other_site: get(other_site.id).await,
    }
}

fn list(
    state: Option<JobState>,
    operation: Option<&str>,
    site: Option<&str>,
    limit: usize,
    json: bool,
) -> JobsCommand {
    JobsCommand::List {
        state,
        operation: operation.map(str::to_owned),
        site: site.map(str::to_owned),
        limit,
        cursor: None,
        json,
    }
}

async fn run_ok(config: &Config, command: JobsCommand) -> String {
    match admin::run(config, command.clone()).await {
        Ok(out) => out,
        Err(e) => panic!("{command:?} failed: {e}"),
    }
}

async fn run_err(config: &Config, command: JobsCommand) -> String {
    match admin::run(config, command.clone()).await {
        Ok(out) => panic!("{command:?} should fail, printed:\n{out}"),
        Err(e) => e,
    }
}

/// The table's data rows, split into columns on runs of two or more spaces.
fn rows(table: &str) -> Vec<Vec<String>> {
    let mut lines = table.lines();
    let header = lines.next().expect("a header");
    assert!(header.starts_with("ID "), "{table}");
    lines
        .take_while(|l| !l.starts_with("next cursor:"))
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// the command cases, each run on both backends

async fn list_table_and_filters(b: Backend) {
    let s = seed(&b.config).await;
    let out = run_ok(&b.config, list(None, None, None, 50, false)).await;
    let table = rows(&out);
    let ids: Vec<&str> = table.iter().map(|r| r[0].as_str()).collect();
    // newest first
    let want: Vec<String> = [
        &s.other_site,
        &s.queued,
        &s.running,
        &s.failed,
        &s.succeeded,
    ]
    .iter()
    .map(|j| j.id.to_string())
    .collect();
    assert_eq!(ids, want, "{out}");
    assert!(!out.contains("next cursor"), "{out}");
    // columns are aligned: every line has its second column at the same offset
    let offsets: Vec<usize> = out
        .lines()
        .map(|l| l.find("  ").unwrap() + l[l.find("  ").unwrap()..].find(|c| c != ' ').unwrap())
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] == w[1]), "{out}");
    let failed = table
        .iter()
        .find(|r| r[0] == s.failed.id.to_string())
        .unwrap();
    assert_eq!(failed[1], "failed");
    assert_eq!(failed[2], "order.approve");
    assert_eq!(failed[3], "site-a");
    assert_eq!(failed[4], "1");
    assert!(failed[5].ends_with('Z') && failed[5].contains('T'), "{out}");
    // the error is on one line and cut short
    assert!(failed[6].starts_with("upstream said 400"), "{out}");
    assert!(
        failed[6].ends_with('…') && failed[6].chars().count() <= 60,
        "{out}"
    );
    assert!(!out.contains("more"), "{out}");
    let succeeded = table
        .iter()
        .find(|r| r[0] == s.succeeded.id.to_string())
        .unwrap();
    assert_eq!(succeeded[6], "-");

    // filters
    let out = run_ok(
        &b.config,
        list(Some(JobState::Failed), None, None, 50, false),
    )
    .await;
    let ids: Vec<String> = rows(&out).into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids, vec![s.failed.id.to_string()], "{out}");
    let out = run_ok(&b.config, list(None, Some("usage.report"), None, 50, false)).await;
    let ids: Vec<String> = rows(&out).into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(
        ids,
        vec![s.queued.id.to_string(), s.running.id.to_string()],
        "{out}"
    );
    let out = run_ok(&b.config, list(None, None, Some("site-b"), 50, false)).await;
    let ids: Vec<String> = rows(&out).into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids, vec![s.other_site.id.to_string()], "{out}");
    let out = run_ok(
        &b.config,
        list(Some(JobState::Dead), None, Some("site-a"), 50, false),
    )
    .await;
    assert_eq!(out, "no jobs\n");

    // paging: limit and cursor
    let out = run_ok(&b.config, list(None, None, None, 2, false)).await;
    let page: Vec<String> = rows(&out).into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(page, want[..2].to_vec(), "{out}");
    let cursor = out
        .lines()
        .find_map(|l| l.strip_prefix("next cursor: "))
        .expect("a next cursor line")
        .split_whitespace()
        .next()
        .unwrap()
        .parse::<JobId>()
        .unwrap();
    let next = JobsCommand::List {
        state: None,
        operation: None,
        site: None,
        limit: 2,
        cursor: Some(cursor),
        json: false,
    };
    let out = run_ok(&b.config, next).await;
    let page: Vec<String> = rows(&out).into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(page, want[2..4].to_vec(), "{out}");
}

async fn list_json(b: Backend) {
    let s = seed(&b.config).await;
    let out = run_ok(&b.config, list(None, None, Some("site-a"), 3, true)).await;
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON output");
    let jobs = v["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3);
    assert_eq!(jobs[0]["id"], s.queued.id.to_string());
    assert_eq!(jobs[0]["state"], "queued");
    assert_eq!(jobs[1]["state"], "running");
    assert_eq!(jobs[1]["worker"], "w9");
    assert_eq!(jobs[2]["id"], s.failed.id.to_string());
    assert_eq!(jobs[2]["last_error"], LONG_ERROR, "the full error in JSON");
    assert_eq!(v["next_cursor"], s.failed.id.to_string());
    let record: JobRecord = serde_json::from_value(jobs[2].clone()).unwrap();
    assert_eq!(record, s.failed);

    let out = run_ok(
        &b.config,
        list(Some(JobState::Canceled), None, None, 50, true),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, json!({"jobs": [], "next_cursor": null}));
}

async fn show(b: Backend) {
    let s = seed(&b.config).await;
    let out = run_ok(&b.config, JobsCommand::Show { id: s.failed.id }).await;
    assert!(out.contains("\n  \"id\""), "pretty JSON: {out}");
    let record: JobRecord = serde_json::from_str(&out).unwrap();
    assert_eq!(record, s.failed);

    let unknown = uuid::Uuid::now_v7();
    let e = run_err(&b.config, JobsCommand::Show { id: unknown }).await;
    assert!(e.contains(&format!("no job with id {unknown}")), "{e}");
}

async fn retry(b: Backend) {
    let s = seed(&b.config).await;
    let out = run_ok(&b.config, JobsCommand::Retry { id: s.failed.id }).await;
    assert!(
        out.contains(&format!("job {} is queued again", s.failed.id)),
        "{out}"
    );
    assert!(out.contains("was failed"), "{out}");
    let out = run_ok(&b.config, JobsCommand::Show { id: s.failed.id }).await;
    let record: JobRecord = serde_json::from_str(&out).unwrap();
    assert_eq!(record.state, JobState::Queued);
    assert_eq!(record.attempts, 0);

    for (id, state) in [
        (s.succeeded.id, "succeeded"),
        (s.queued.id, "queued"),
        (s.running.id, "running"),
    ] {
        let e = run_err(&b.config, JobsCommand::Retry { id }).await;
        assert!(
            e.contains(&format!(
                "job {id} is {state}; only failed or dead jobs can be retried"
            )),
            "{e}"
        );
    }
    let unknown = uuid::Uuid::now_v7();
    let e = run_err(&b.config, JobsCommand::Retry { id: unknown }).await;
    assert!(e.contains(&format!("no job with id {unknown}")), "{e}");
}

async fn discard(b: Backend) {
    let s = seed(&b.config).await;
    let out = run_ok(&b.config, JobsCommand::Discard { id: s.queued.id }).await;
    assert!(
        out.contains(&format!("job {} is canceled", s.queued.id)),
        "{out}"
    );
    let record: JobRecord =
        serde_json::from_str(&run_ok(&b.config, JobsCommand::Show { id: s.queued.id }).await)
            .unwrap();
    assert_eq!(record.state, JobState::Canceled);

    let e = run_err(&b.config, JobsCommand::Discard { id: s.succeeded.id }).await;
    assert!(
        e.contains(&format!(
            "job {} is succeeded; only queued or retrying jobs can be discarded",
            s.succeeded.id
        )),
        "{e}"
    );
    let e = run_err(&b.config, JobsCommand::Discard { id: s.running.id }).await;
    assert!(
        e.contains(&format!(
            "job {} is running; only queued or retrying jobs can be discarded",
            s.running.id
        )),
        "{e}"
    );
    // discarding twice says what happened the first time
    let e = run_err(&b.config, JobsCommand::Discard { id: s.queued.id }).await;
    assert!(e.contains("is canceled"), "{e}");
    let unknown = uuid::Uuid::now_v7();
    let e = run_err(&b.config, JobsCommand::Discard { id: unknown }).await;
    assert!(e.contains(&format!("no job with id {unknown}")), "{e}");
}

/// The jobs [`operator_rules`] works on.
struct RuleJobs {
    older_backend_id: JobRecord,
    newer_backend_id: JobRecord,
    older_limits: JobRecord,
    newer_limits: JobRecord,
    following: JobRecord,
}

async fn seed_rule_jobs(config: &Config) -> RuleJobs {
    let store = open_store(&config.store, None).await.unwrap();
    let store = &*store;
    let failed = || Completion::Failed {
        status: Some(400),
        error: "refused".into(),
        code: None,
    };
    let succeeded = || Completion::Succeeded {
        status: Some(200),
        result: json!({"ok": true}),
        delivered: BTreeMap::new(),
    };
    // one site's backend id fails; another site bound to the offering sets it later
    let older_backend_id = add(store, job("site-a", "resource.backend_id", "resource:9")).await;
    lease_and_complete(store, older_backend_id.id, failed()).await;
    let newer_backend_id = add(store, job("site-b", "resource.backend_id", "resource:9")).await;
    lease_and_complete(store, newer_backend_id.id, succeeded()).await;
    // an allocator's limits likewise
    let older_limits = add(store, job("alloc", "allocation.limits", "resource:8")).await;
    lease_and_complete(store, older_limits.id, failed()).await;
    let newer_limits = add(store, job("alloc", "allocation.limits", "resource:8")).await;
    lease_and_complete(store, newer_limits.id, succeeded()).await;
    // an allocation whose order Puhuri has, followed by its job
    let following = add(store, job("alloc", "allocation.create", "allocation:1")).await;
    let follow = Completion::Follow {
        at: chrono::Utc::now() + chrono::Duration::hours(1),
        progress: json!({"order_uuid": "0d0000000000400080000000000000ff"}),
    };
    lease_and_complete(store, following.id, follow).await;
    RuleJobs {
        older_backend_id,
        newer_backend_id,
        older_limits,
        newer_limits,
        following,
    }
}

/// The command keeps the API's rules (`queue::operator`): an older value job is not retried
/// over a newer one of the same operation on the same object, whichever site sent it; an
/// allocator's job that follows its order in Puhuri is not discarded.
async fn operator_rules(b: Backend) {
    let jobs = seed_rule_jobs(&b.config).await;
    for (older, newer) in [
        (&jobs.older_backend_id, &jobs.newer_backend_id),
        (&jobs.older_limits, &jobs.newer_limits),
    ] {
        let e = run_err(&b.config, JobsCommand::Retry { id: older.id }).await;
        assert!(e.contains("is not retried"), "{e}");
        assert!(e.contains(&newer.id.to_string()), "{e}");
        let record: JobRecord =
            serde_json::from_str(&run_ok(&b.config, JobsCommand::Show { id: older.id }).await)
                .unwrap();
        assert_eq!(record.state, JobState::Failed);
    }
    let id = jobs.following.id;
    let e = run_err(&b.config, JobsCommand::Discard { id }).await;
    assert!(e.contains("is not discarded"), "{e}");
    assert!(e.contains("0d0000000000400080000000000000ff"), "{e}");
    let record: JobRecord =
        serde_json::from_str(&run_ok(&b.config, JobsCommand::Show { id }).await).unwrap();
    assert_eq!(record.state, JobState::Retrying);
}

macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded_backend {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(crate::support::stores::embedded_backend()).await;
                }
            )*
        }
        mod redis_backend {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(crate::support::stores::redis_backend(stringify!($case))).await;
                }
            )*
        }
    };
}

both_backends!(
    list_table_and_filters,
    list_json,
    show,
    retry,
    discard,
    operator_rules
);

// ---------------------------------------------------------------------------------------------
// open_store

#[tokio::test]
async fn open_store_embedded_creates_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested").join("data");
    let config = StoreConfig::Embedded { dir: dir.clone() };
    let store = open_store(&config, None).await.unwrap();
    let a = add(&*store, job("site-a", "order.approve", "order:1")).await;
    assert!(dir.join("jobs.redb").is_file());
    drop(store);
    let store = open_store(&config, Some(1)).await.unwrap();
    assert_eq!(
        store.get(a.id).await.unwrap().unwrap().state,
        JobState::Queued
    );
}

#[tokio::test]
async fn open_store_embedded_names_a_directory_it_cannot_create() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let dir = file.join("data");
    let e = open_store(&StoreConfig::Embedded { dir: dir.clone() }, None)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("cannot create the data directory"), "{e}");
    assert!(e.contains(&dir.display().to_string()), "{e}");
}

#[tokio::test]
async fn open_store_redis_appends_the_separator_to_the_prefix() {
    let server = shared();
    let prefix = bare_prefix("open");
    let config = redis_config(&server, &prefix);
    let store = open_store(&config.store, Some(1)).await.unwrap();
    store.ping().await.unwrap();
    let a = add(&*store, job("site-a", "order.approve", "order:1")).await;
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg(format!("{prefix}:job:{}", a.id))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(exists, "the job is stored under `{prefix}:`");
    let wrong: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}job:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(wrong.is_empty(), "{wrong:?}");

    // a prefix that already ends with `:` or a hash tag is kept as is
    for kept in [format!("{prefix}-b:"), format!("{{{prefix}-c}}")] {
        let store = open_store(&redis_config(&server, &kept).store, Some(1))
            .await
            .unwrap();
        let b = add(&*store, job("site-a", "order.approve", "order:1")).await;
        let exists: bool = redis::cmd("EXISTS")
            .arg(format!("{kept}job:{}", b.id))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(exists, "stored under `{kept}`");
    }
}

#[tokio::test]
async fn open_store_redis_never_shows_the_url() {
    // nothing listens here; the password must not appear in any message
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://admin:hunter2-secret@127.0.0.1:{port}/0");
    let config = StoreConfig::Redis {
        url: SecretString::from(url.clone()),
        key_prefix: "gw".into(),
        pool_size: 4,
        pool_wait_timeout: Duration::from_millis(300),
        cluster: false,
        wait_replicas: 0,
    };
    let store = open_store(&config, None).await.unwrap();
    let e = store.ping().await.expect_err("unreachable").to_string();
    assert!(!e.contains("hunter2-secret"), "{e}");
    let mut raw = RawConfig::default();
    raw.redis.url = Some(SecretString::from(url));
    let config = Config::from_raw(raw).unwrap();
    let e = run_err(&config, list(None, None, None, 50, false)).await;
    assert!(e.contains("unavailable"), "{e}");
    assert!(!e.contains("hunter2-secret"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// the embedded store held by a running gateway

#[tokio::test]
async fn embedded_store_in_use_points_at_the_http_api() {
    let tmp = tempfile::tempdir().unwrap();
    let config = embedded_config(tmp.path());
    let gateway = open_store(&config.store, None).await.unwrap();
    let a = add(&*gateway, job("site-a", "order.approve", "order:1")).await;
    for command in [
        list(None, None, None, 50, false),
        JobsCommand::Discard { id: a.id },
    ] {
        let e = run_err(&config, command).await;
        assert!(e.contains("is locked"), "{e}");
        assert!(e.contains("file lock"), "{e}");
        assert!(e.contains("jobs.redb"), "{e}");
        assert!(e.contains("GET /v1/jobs"), "{e}");
        assert!(e.contains("jobs:admin"), "{e}");
        assert!(e.contains("stop the gateway"), "{e}");
        assert!(
            e.contains(&format!("http://{}/v1/jobs", config.listen)),
            "{e}"
        );
    }
    // nothing changed, and the command works once the gateway is gone
    assert_eq!(
        gateway.get(a.id).await.unwrap().unwrap().state,
        JobState::Queued
    );
    drop(gateway);
    let out = run_ok(&config, JobsCommand::Discard { id: a.id }).await;
    assert!(out.contains("canceled"), "{out}");
}
