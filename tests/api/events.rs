//! Events to a site's endpoint, with a real HTTP receiver started by each test: signed and
//! verifiable (by the test's own check, by Standard Webhooks' Python library and by the README's
//! openssl lines), once; retried
//! in order while the receiver is down; `dead`, listed and replayed when it always fails; and an
//! endpoint URL outside the allow-list refused at start.

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::{Mode, Receiver, SECRET_A, SECRET_B, verifies};
use crate::support::external;
use puhuri_gateway::sim::demo;
use puhuri_gateway::startup::Workers;

pub(crate) const SITE: &str = "hooked";

/// A site `hooked` bound to alpha's offering, whose endpoint `main` is the receiver, signed with
/// both test secrets (a rotation); `events` is the `[events]` table's extra lines.
pub(crate) fn hooked_site(dir: &Path, receiver: &Receiver, events: &str) -> String {
    let a = dir.join("hook-a.secret");
    let b = dir.join("hook-b.secret");
    std::fs::write(&a, SECRET_A).unwrap();
    std::fs::write(&b, format!("{SECRET_B}\n")).unwrap();
    format!(
        r#"
[events]
allowed_origins = ["http://127.0.0.1:{port}"]
backoff_base = "50ms"
backoff_cap = "200ms"
{events}

[[sites]]
id = "{SITE}"
offerings = ["{ALPHA_OFFERING}"]
scopes = ["resources:write", "read", "events:read"]

[[sites.keys]]
kid = "hooked-hs"
algorithm = "HS256"
secret_file = "{hs}"

[[sites.callbacks]]
name = "main"
url = "{url}"
secret_files = ["{a}", "{b}"]
events = ["job.succeeded", "job.failed", "job.dead"]
"#,
        port = receiver.port,
        url = receiver.url("/puhuri/events"),
        hs = fixture("hs256.secret").display(),
        a = a.display(),
        b = b.display(),
    )
}

pub(crate) fn hooked_token() -> String {
    let mut c = claims(SITE);
    c["scope"] = json!("resources:write read events:read");
    sign(Algorithm::HS256, "hooked-hs", "hs256.secret", &c)
}

pub(crate) async fn spawn_hooked(receiver: &Receiver, events: &str, redis: bool) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let extra = hooked_site(dir.path(), receiver, events);
    spawn_in(dir, &extra, redis).await
}

pub(crate) async fn spawn_hooked_with(extra: &str, redis: bool) -> TestApp {
    spawn_in(tempfile::tempdir().unwrap(), extra, redis).await
}

pub(crate) async fn spawn_in(dir: tempfile::TempDir, extra: &str, redis: bool) -> TestApp {
    spawn_app_in(
        Setup {
            redis,
            workers: Workers::Start,
        },
        extra,
        puhuri_gateway::domain::Clock::system(),
        dir,
    )
    .await
}

pub(crate) async fn set_backend_id(app: &TestApp, token: &str, value: &str) -> String {
    let response = app
        .post_json(
            &format!("/v1/resources/{}/backend-id", demo::RESOURCE_CREATING_UUID),
            token,
            &json!({ "backend_id": value }),
        )
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    body["job_id"].as_str().unwrap().to_owned()
}

async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app.get_as(&format!("/v1/events{query}"), token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Polls `GET /v1/events{query}` until `done` holds (at most 20 s).
async fn wait_listed(
    app: &TestApp,
    token: &str,
    query: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let body = list(app, token, query).await;
        if done(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not listed as expected: {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Verifies each delivery with the Standard Webhooks reference library for Python (when it is
/// installed: `.ci/requirements.txt`); returns whether it ran.
fn python_verifies(received: &[crate::receiver::Received], secret: &str) -> bool {
    if !external::require(
        "Python package standardwebhooks (.ci/requirements.txt)",
        external::python_has("standardwebhooks"),
    ) {
        return false;
    }
    let deliveries: Vec<Value> = received
        .iter()
        .map(|r| {
            json!({"body": r.body, "headers": {
                "webhook-id": r.id, "webhook-timestamp": r.timestamp, "webhook-signature": r.signature
            }})
        })
        .collect();
    let script = "import json, sys\n\
                  from standardwebhooks.webhooks import Webhook\n\
                  wh = Webhook(sys.argv[1])\n\
                  for d in json.load(sys.stdin):\n    wh.verify(d['body'], d['headers'])\n\
                  print('verified', len(sys.argv))\n";
    let mut child = std::process::Command::new(external::python())
        .args(["-c", script, secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&deliveries).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "standardwebhooks refused a delivery: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Runs the README's shell verification (openssl) on a delivery; returns whether it ran.
fn readme_shell_verifies(r: &crate::receiver::Received, secret: &str) -> bool {
    let available = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !external::require("openssl (the README's shell verification)", available) {
        return false;
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("KEY=$(printf")
        .expect("the README's shell verification");
    let snippet = &readme[start..start + readme[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body.json"), &r.body).unwrap();
    let run = |sig: &str| {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(snippet)
            .current_dir(dir.path())
            .env("SECRET", secret)
            .env("ID", &r.id)
            .env("TS", &r.timestamp)
            .env("SIG", sig)
            .output()
            .unwrap()
    };
    let good = run(&r.signature);
    assert!(
        good.status.success() && String::from_utf8_lossy(&good.stdout).contains("verified"),
        "{}{}",
        String::from_utf8_lossy(&good.stdout),
        String::from_utf8_lossy(&good.stderr)
    );
    let bad = run("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    assert!(
        !bad.status.success(),
        "the README's check refuses a wrong signature"
    );
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_outcome_arrives_signed_verifiable_and_once() {
    let receiver = Receiver::start(Mode::Up);
    let app = spawn_hooked(&receiver, "", false).await;
    let token = hooked_token();
    let job = set_backend_id(&app, &token, "project_hooked_1").await;

    let got = receiver
        .wait_for(Duration::from_secs(20), |r| !r.is_empty())
        .await;
    let event = got[0].json();
    assert_eq!(event["type"], "job.succeeded", "{event}");
    assert_eq!(event["version"], 1);
    assert_eq!(event["data"]["job_id"], job);
    assert_eq!(event["data"]["state"], "succeeded");
    assert_eq!(event["id"], got[0].id, "webhook-id is the event's id");
    assert!(got[0].id.starts_with("evt_"));
    // both secrets of the rotation sign; each verifies on its own
    assert_eq!(got[0].signature.split(' ').count(), 2);
    assert!(verifies(&got[0], SECRET_A) && verifies(&got[0], SECRET_B));
    assert!(!verifies(
        &got[0],
        "whsec_bm90LXRoZS1zZWNyZXQtYXQtYWxsLTAwMDA="
    ));
    python_verifies(&got, SECRET_A);
    python_verifies(&got, SECRET_B);
    readme_shell_verifies(&got[0], SECRET_A);
    readme_shell_verifies(&got[0], SECRET_B);

    // listed as delivered after one attempt, and never sent again
    let listed = wait_listed(&app, &token, "?type=job.succeeded", |b| {
        b["deliveries"][0]["state"] == "succeeded"
    })
    .await;
    assert_eq!(
        listed["deliveries"].as_array().unwrap().len(),
        1,
        "{listed:#}"
    );
    assert_eq!(listed["deliveries"][0]["attempts"], 1);
    assert_eq!(listed["deliveries"][0]["endpoint"], "main");
    assert_eq!(listed["deliveries"][0]["event"]["id"], event["id"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.all().len(),
        1,
        "delivered once: {:#?}",
        receiver.all()
    );
    // counted apart from the deliveries to Puhuri
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(
            "puhuri_gateway_event_delivery_attempts_total{type=\"job.succeeded\",outcome=\"succeeded\"}"
        ),
        "{text}"
    );
    // another site never sees it
    let other = app.get_as("/v1/events", &alpha_token()).await;
    assert_problem(other, 403, "insufficient_scope").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_every_event_afterwards_in_order() {
    let receiver = Receiver::start(Mode::Down);
    let app = spawn_hooked(&receiver, "", true).await;
    let token = hooked_token();
    let mut jobs = Vec::new();
    for n in 0..3 {
        jobs.push(set_backend_id(&app, &token, &format!("project_order_{n}")).await);
    }
    // refused a few times while down
    receiver
        .wait_for(Duration::from_secs(20), |r| r.len() >= 3)
        .await;
    receiver.set(Mode::Up);
    let got = receiver
        .wait_for(Duration::from_secs(20), |r| {
            r.iter().filter(|x| x.answered < 300).count() >= 3
        })
        .await;
    let order: Vec<String> = got
        .iter()
        .filter(|r| r.answered < 300)
        .map(|r| r.json()["data"]["job_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        order, jobs,
        "the events of one resource arrive in the order of its jobs"
    );
    let listed = wait_listed(&app, &token, "", |b| {
        b["deliveries"]
            .as_array()
            .is_some_and(|d| d.len() == 3 && d.iter().all(|x| x["state"] == "succeeded"))
    })
    .await;
    // the oldest event took several attempts; the 503s are visible on it
    let oldest = &listed["deliveries"][2];
    assert!(oldest["attempts"].as_u64().unwrap() >= 2, "{oldest:#}");
    for r in &got {
        assert!(verifies(r, SECRET_A));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_always_fails_leaves_events_dead_listed_and_replayable() {
    let receiver = Receiver::start(Mode::Broken);
    let app = spawn_hooked(&receiver, "max_attempts = 3", false).await;
    let token = hooked_token();
    let job = set_backend_id(&app, &token, "project_dead_1").await;

    let dead = wait_listed(&app, &token, "?state=dead", |b| {
        b["deliveries"].as_array().is_some_and(|d| d.len() == 1)
    })
    .await;
    let delivery = &dead["deliveries"][0];
    assert_eq!(delivery["attempts"], 3, "{delivery:#}");
    assert_eq!(delivery["last_status"], 500);
    assert_eq!(delivery["event"]["data"]["job_id"], job);
    assert_eq!(receiver.all().len(), 3);
    let event_id = delivery["event"]["id"].as_str().unwrap().to_owned();

    // the receiver is mended; the site replays from that event
    receiver.set(Mode::Up);
    let replay = app
        .post_json(
            "/v1/events/replay",
            &token,
            &json!({ "event_id": event_id }),
        )
        .await;
    assert_eq!(replay.status(), 200);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["replayed"], 1, "{replay}");
    let got = receiver
        .wait_for(Duration::from_secs(20), |r| {
            r.iter().any(|x| x.answered < 300)
        })
        .await;
    let ok: Vec<_> = got.iter().filter(|r| r.answered < 300).collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].id, event_id, "a replay is the same event");
    assert!(verifies(ok[0], SECRET_A));
    // the dead delivery stays listed as it ended, beside the replay's
    let all = list(&app, &token, "").await;
    let states: Vec<&str> = all["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    assert!(states.contains(&"dead"), "{all:#}");
    // an event the site never had is not found
    let nope = app
        .post_json(
            "/v1/events/replay",
            &token,
            &json!({ "event_id": "evt_nope" }),
        )
        .await;
    assert_problem(nope, 404, "not_found").await;
    // a replay needs exactly one starting point
    let bad = app.post_json("/v1/events/replay", &token, &json!({})).await;
    assert_problem(bad, 422, "validation_failed").await;
    let since = app
        .post_json(
            "/v1/events/replay",
            &token,
            &json!({ "since": "2000-01-01T00:00:00Z" }),
        )
        .await;
    let since: Value = since.json().await.unwrap();
    assert_eq!(since["replayed"], 1, "each event once: {since}");
}

#[test]
fn an_endpoint_url_outside_the_allow_list_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let receiver_port = 9; // never contacted: the check is at load
    let secret = dir.path().join("s");
    std::fs::write(&secret, SECRET_A).unwrap();
    let site = |url: &str| {
        format!(
            "{}\n[events]\nallowed_origins = [\"http://127.0.0.1:{receiver_port}\"]\n\n\
             [[sites]]\nid = \"{SITE}\"\nofferings = [\"{ALPHA_OFFERING}\"]\n\n\
             [[sites.keys]]\nkid = \"hooked-hs\"\nalgorithm = \"HS256\"\nsecret_file = \"{}\"\n\n\
             [[sites.callbacks]]\nname = \"main\"\nurl = \"{url}\"\nsecret_files = [\"{}\"]\n",
            base_config_toml(dir.path()),
            fixture("hs256.secret").display(),
            secret.display()
        )
    };
    let ok = load_config(
        &site(&format!("http://127.0.0.1:{receiver_port}/x")),
        dir.path(),
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
    for (url, why) in [
        ("http://127.0.0.1:9999/x", "allowed_origins"),
        ("https://127.0.0.1:9/x", "allowed_origins"),
        ("http://evil.example.org:9/x", "allowed_origins"),
        ("ftp://127.0.0.1:9/x", "http:// or https://"),
        ("http://user:pw@127.0.0.1:9/x", "credentials"),
    ] {
        let error = load_config(&site(url), dir.path()).unwrap_err();
        assert!(
            error.contains("sites[3].callbacks[0].url") && error.contains(why),
            "{url}: {error}"
        );
        assert_eq!(error.lines().count(), 1, "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_outcome_of_a_retried_job_is_an_event_of_its_own() {
    let receiver = Receiver::start(Mode::Up);
    let app = spawn_hooked(&receiver, "", false).await;
    let token = hooked_token();
    // Puhuri refuses the action: the job fails, and fails again when an operator retries it.
    app.sim_post(
        "faults",
        &json!({"kind": "error", "path_prefix": "/api/marketplace-provider-resources/", "method": "POST", "status": 400}),
    )
    .await;
    let job = set_backend_id(&app, &token, "project_refused_1").await;
    let first = wait_listed(&app, &token, "?type=job.failed", |b| {
        b["deliveries"].as_array().is_some_and(|d| d.len() == 1)
    })
    .await;
    assert_eq!(first["deliveries"][0]["event"]["data"]["job_id"], job);

    let retried = app
        .client
        .post(app.url(&format!("/v1/jobs/{job}/retry")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 202);
    let both = wait_listed(&app, &token, "?type=job.failed", |b| {
        b["deliveries"].as_array().is_some_and(|d| d.len() == 2)
    })
    .await;
    let ids: Vec<&str> = both["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event"]["id"].as_str().unwrap())
        .collect();
    assert_ne!(ids[0], ids[1], "two outcomes, two events: {both:#}");
    let got = receiver
        .wait_for(Duration::from_secs(20), |r| r.len() >= 2)
        .await;
    let mut received: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    received.sort_unstable();
    received.dedup();
    assert_eq!(received.len(), 2, "each outcome arrives: {got:#?}");
    // and each once
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.all().len(), 2, "{:#?}", receiver.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_lists_filters_are_checked_like_the_contract_says() {
    let receiver = Receiver::start(Mode::Up);
    let app = spawn_hooked(&receiver, "", false).await;
    let token = hooked_token();
    let long = "a".repeat(40);
    for query in [
        "?endpoint=UP%20PER".to_owned(),
        format!("?endpoint={long}"),
        "?endpoint=".to_owned(),
        "?type=job.nope".to_owned(),
        "?state=gone".to_owned(),
        "?limit=0".to_owned(),
        "?limit=501".to_owned(),
        "?limit=many".to_owned(),
        "?cursor=not-a-uuid".to_owned(),
        "?colour=red".to_owned(),
    ] {
        let response = app.get_as(&format!("/v1/events{query}"), &token).await;
        assert_problem(response, 400, "invalid_query").await;
    }
    let good = "a".repeat(32);
    for query in [
        "?endpoint=main",
        &format!("?endpoint={good}"),
        "?endpoint=no_such-1&type=job.failed&state=dead&limit=500",
    ] {
        let response = app.get_as(&format!("/v1/events{query}"), &token).await;
        assert_eq!(response.status(), 200, "{query}");
    }
}
