//! The embedded store under write faults, as an operator sees them: while its file cannot be
//! written, writes answer 503 (nothing stored) and `/readyz` is not ready, naming the
//! `queue_store` check (the `workers` check always fails here, where the test drives delivery);
//! once the cause is gone the store reopens itself (no restart), and every
//! acknowledged report reaches Puhuri, which ends with the last total acknowledged.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use puhuri_gateway::domain::Clock;
use puhuri_gateway::sim::demo;
use puhuri_gateway::startup::Workers;
use serde_json::{Value, json};

use crate::helpers::*;

fn setup() -> Setup {
    Setup {
        redis: false,
        workers: Workers::Manual,
    }
}

async fn report(app: &TestApp, amount: u32) -> reqwest::Response {
    app.post_usage(
        &alpha_token(),
        &json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": amount}}),
    )
    .await
}

/// `/readyz`: its status and the `queue_store` check.
async fn readiness(app: &TestApp) -> (u16, Value) {
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    let check = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "queue_store")
        .cloned()
        .unwrap();
    (status, check)
}

async fn wait_ready(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, check) = readiness(app).await;
        if check["ok"] == true {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready after the cause was removed: {check}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reports until one is refused; returns the totals acknowledged (202) on the way.
async fn report_until_refused(app: &TestApp, from: u32) -> Vec<u32> {
    let mut acknowledged = Vec::new();
    for amount in from..from + 200 {
        let response = report(app, amount).await;
        match response.status().as_u16() {
            202 => acknowledged.push(amount),
            503 => {
                // the write whose commit failed may be on disk: its outcome is unknown
                let problem: Value = response.json().await.unwrap();
                assert!(
                    matches!(
                        problem["code"].as_str(),
                        Some("store_outcome_unknown" | "unavailable")
                    ),
                    "{problem}"
                );
                return acknowledged;
            }
            other => panic!("unexpected {other}"),
        }
    }
    panic!("no write was refused while the store file could not be written");
}

/// The fault scenario: `break_it` makes the store's file unwritable, `fix_it` undoes it.
async fn writes_fail_then_recover(app: &TestApp, break_it: impl FnOnce(), fix_it: impl FnOnce()) {
    let token = alpha_token();
    let first = report(app, 10).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    // (the `workers` check fails in these tests: delivery is driven by the test)
    assert_eq!(readiness(app).await.1["ok"], true);

    break_it();
    let mut acknowledged = vec![10];
    acknowledged.extend(report_until_refused(app, 11).await);
    let (status, check) = readiness(app).await;
    assert_eq!(status, 503, "not ready while writes fail: {check}");
    assert_eq!(check["ok"], false);
    // still refused: the store does not pretend to work (`unavailable` when the file cannot
    // even be reopened, `store_outcome_unknown` when it can and the commit fails again)
    assert_eq!(report(app, 500).await.status(), 503);

    fix_it();
    wait_ready(app).await;
    let last = report(app, 77).await;
    assert_eq!(last.status(), 202, "writes work again without a restart");
    acknowledged.push(77);

    app.drain().await;
    let first = app.job(&token, first["job_id"].as_str().unwrap()).await;
    assert!(
        matches!(first["state"].as_str(), Some("succeeded" | "superseded")),
        "the first acknowledged report is kept: {first}"
    );
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let usages = app
        .sim_get(&format!("state/usages/{}", demo::RESOURCE_OK_UUID))
        .await;
    let held = usages
        .as_array()
        .unwrap()
        .iter()
        .find(|u| {
            u["type"] == "cpu_k_hours" && u["billing_period"].as_str().unwrap().starts_with(&month)
        })
        .map(|u| u["usage"].as_str().unwrap().to_owned());
    assert_eq!(
        held.as_deref(),
        Some("77.00"),
        "acknowledged: {acknowledged:?}"
    );
    let counts = app.store.counts().await.unwrap();
    let open: u64 = counts
        .iter()
        .filter(|(s, _)| !s.is_terminal())
        .map(|(_, n)| n)
        .sum();
    assert_eq!(open, 0, "every acknowledged job ended: {counts:?}");
}

fn run(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `chattr +i` makes a file unwritable even for root (and through an open descriptor), unlike
/// `chmod`, which stops neither.
#[tokio::test]
async fn an_unwritable_store_file_made_writable_again() {
    let app = spawn_app_with(setup(), "").await;
    let file = app.data_dir().join("jobs.redb");
    let name = file.to_str().unwrap().to_owned();
    if !run("chattr", &["+i", &name]) {
        eprintln!("SKIPPED: `chattr +i` is not available or not permitted here");
        return;
    }
    run("chattr", &["-i", &name]);
    let undo = name.clone();
    writes_fail_then_recover(
        &app,
        || assert!(run("chattr", &["+i", &name])),
        || assert!(run("chattr", &["-i", &undo])),
    )
    .await;
}

/// A tmpfs mounted for the test (lazily unmounted on drop), or `None` where mounting is not
/// permitted.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let target = dir.to_str()?;
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                target,
            ],
        )
        .then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        run("umount", &["-l", self.0.to_str().unwrap()]);
    }
}

/// The data directory on a small tmpfs, filled up, then freed.
#[tokio::test]
async fn a_full_disk_freed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = Tmpfs::mount(dir.path(), "8m") else {
        eprintln!("SKIPPED: mounting a tmpfs is not permitted here");
        return;
    };
    let app = spawn_app_in(setup(), "", Clock::system(), dir).await;
    let filler = app.data_dir().join("filler");
    let fill = filler.clone();
    writes_fail_then_recover(
        &app,
        move || {
            use std::io::Write;
            let mut f = std::fs::File::create(&fill).unwrap();
            let block = vec![0u8; 64 * 1024];
            while f.write_all(&block).is_ok() {}
            let _ = f.sync_all();
        },
        || std::fs::remove_file(&filler).unwrap(),
    )
    .await;
}

/// Redis paused (SIGSTOP) after a report was sent to it: the gateway cannot know whether it was
/// stored, so it does not say "nothing was stored" (`unavailable`) but `store_outcome_unknown`,
/// with `Retry-After`; the retry with the same `Idempotency-Key` then finds the job Redis did
/// store, and Puhuri ends with that total.
#[tokio::test]
async fn a_write_redis_did_not_answer_is_outcome_unknown_and_its_keyed_retry_finds_the_job() {
    let redis = crate::support::redis::RedisServer::start();
    let extra = crate::support::stores::redis_table(
        &redis.url(),
        &crate::support::redis::unique_prefix("unknown"),
    );
    let app = spawn_app_with(setup(), &extra).await;
    let token = alpha_token();
    // The client keeps one connection, so every request lands on the same HTTP worker thread;
    // this report opens that thread's Redis connection and loads the enqueue script.
    assert_eq!(report(&app, 5).await.status(), 202);
    let send = || {
        app.client
            .post(app.url("/v1/usage"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "acct-r1")
            .json(&json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": 31}}))
            .send()
    };

    redis.pause();
    let unknown = send().await.unwrap();
    redis.resume();
    assert!(unknown.headers().contains_key("retry-after"));
    let problem = assert_problem(unknown, 503, "store_outcome_unknown").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("Idempotency-Key"), "{detail}");
    assert!(!detail.contains("nothing was stored"), "{detail}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let retry = send().await.unwrap();
    assert_eq!(
        retry.status(),
        200,
        "Redis had stored the report: the keyed retry finds it"
    );
    let job: Value = retry.json().await.unwrap();
    app.drain().await;
    let job = app.job(&token, job["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let usages = app
        .sim_get(&format!("state/usages/{}", demo::RESOURCE_OK_UUID))
        .await;
    let held = usages.as_array().unwrap().iter().find(|u| {
        u["type"] == "cpu_k_hours" && u["billing_period"].as_str().unwrap().starts_with(&month)
    });
    assert_eq!(held.unwrap()["usage"], "31.00");
}
