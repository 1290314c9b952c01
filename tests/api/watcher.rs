//! The watcher, end to end: the simulator changes (a new order, an approval, a team member), the
//! gateway's leader polls it and a real receiver started by the test gets the events, once, at
//! the endpoint of the site bound to that offering only. Then the leader is killed (another
//! replica takes over) or the gateway restarts: no event is lost or repeated.

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::{Mode, Receiver, SECRET_A, verifies};
use crate::resilience::{GatewayProcess, external_config};
use crate::support::redis::{shared, unique_prefix};
use crate::support::stores::redis_table;
use puhuri_gateway::sim::{self, SimOptions, demo};
use puhuri_gateway::startup::Workers;

const WATCHED: &str = r#"events = ["order.created", "order.state_changed", "resource.team_changed", "offering_user.changed"]"#;

/// Two sites with an endpoint each on the one receiver: `lumi-ops` (the LUMI offering, path
/// `/lumi`) and `slurm-ops` (the second offering, path `/slurm`); a fast watcher.
fn watched_sites(dir: &Path, receiver: &Receiver) -> String {
    let secret = dir.join("hook.secret");
    std::fs::write(&secret, SECRET_A).unwrap();
    let site = |id: &str, offering: &str, path: &str| {
        format!(
            r#"
[[sites]]
id = "{id}"
offerings = ["{offering}"]
scopes = ["orders:write", "read", "events:read"]

[[sites.keys]]
kid = "{id}-hs"
algorithm = "HS256"
secret_file = "{hs}"

[[sites.callbacks]]
name = "ops"
url = "{url}"
secret_files = ["{secret}"]
{WATCHED}
"#,
            hs = fixture("hs256.secret").display(),
            url = receiver.url(path),
            secret = secret.display(),
        )
    };
    format!(
        "\n[events]\nallowed_origins = [\"http://127.0.0.1:{port}\"]\nbackoff_base = \"50ms\"\n\
         backoff_cap = \"200ms\"\n\n[watcher]\ninterval = \"300ms\"\nmin_interval = \"100ms\"\n\
         lease = \"2s\"\n{lumi}{slurm}",
        port = receiver.port,
        lumi = site("lumi-ops", ALPHA_OFFERING, "/lumi"),
        slurm = site("slurm-ops", BETA_OFFERING, "/slurm"),
    )
}

fn token(site: &str) -> String {
    let mut c = claims(site);
    c["scope"] = json!("orders:write read events:read");
    sign(Algorithm::HS256, &format!("{site}-hs"), "hs256.secret", &c)
}

/// The receiver's accepted events of `type` about `uuid` (an order's or a resource's).
fn about(receiver: &Receiver, event_type: &str, uuid: &str) -> Vec<Value> {
    receiver
        .events()
        .into_iter()
        .filter(|e| e["type"] == event_type)
        .filter(|e| e["data"]["uuid"] == uuid || e["data"]["resource_uuid"] == uuid)
        .collect()
}

async fn wait_about(receiver: &Receiver, event_type: &str, uuid: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(e) = about(receiver, event_type, uuid).into_iter().next() {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {event_type} about {uuid}; got {:#?}",
            receiver.events()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// GET calls to the orders list so far (one per watched offering per poll).
async fn order_polls(control_url: &str) -> usize {
    let calls: Value = reqwest::get(format!(
        "{control_url}calls?path_prefix=/api/marketplace-orders/&method=GET"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    calls
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["path"] == "/api/marketplace-orders/")
        .count()
}

/// Waits until the watcher has polled `n` more times (two offerings: two list calls a poll).
async fn after_polls(control_url: &str, n: usize) {
    let start = order_polls(control_url).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while order_polls(control_url).await < start + 2 * n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watcher stopped polling"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn new_order(control_url: &str, offering: &str) -> (String, String) {
    let request = reqwest::Client::new()
        .post(format!("{control_url}orders"))
        .json(&json!({ "offering_uuid": offering }));
    let body = crate::support::client::expect(request, 201).await.body;
    (
        body[0]["uuid"].as_str().unwrap().to_owned(),
        body[0]["resource_uuid"].as_str().unwrap().to_owned(),
    )
}

/// No event id reached the receiver twice.
fn assert_none_repeated(receiver: &Receiver) {
    let mut ids: Vec<String> = receiver.accepted().into_iter().map(|r| r.id).collect();
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        all,
        "an event arrived twice: {:#?}",
        receiver.events()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_and_teams_reach_the_bound_site_once() {
    let receiver = Receiver::start(Mode::Up);
    let dir = tempfile::tempdir().unwrap();
    let extra = watched_sites(dir.path(), &receiver);
    let app = spawn_app_in(
        Setup {
            redis: false,
            workers: Workers::Start,
        },
        &extra,
        puhuri_gateway::domain::Clock::system(),
        dir,
    )
    .await;
    // approved orders stay `executing` (Waldur's own processing off), so one approval is one change
    app.sim_post("settings", &json!({ "self_processing_delay_ms": null }))
        .await;
    after_polls(&app.sim, 1).await;

    let (order, resource) = new_order(&app.sim, ALPHA_OFFERING).await;
    let created = wait_about(&receiver, "order.created", &order).await;
    assert_eq!(created["path"], "/lumi", "{created:#}");
    assert_eq!(created["data"]["state"], "pending-provider");
    assert_eq!(created["data"]["type"], "Create");
    assert_eq!(created["data"]["offering_uuid"], ALPHA_OFFERING);
    assert_eq!(created["data"]["resource_uuid"], resource);

    let approve = app
        .post_json(
            &format!("/v1/orders/{order}/approve"),
            &token("lumi-ops"),
            &json!({}),
        )
        .await;
    assert_eq!(approve.status(), 202);
    let changed = wait_about(&receiver, "order.state_changed", &order).await;
    assert_eq!(changed["data"]["state"], "executing", "{changed:#}");
    assert_eq!(changed["data"]["previous_state"], "pending-provider");

    // carol joins project A: the team of every LUMI resource there changes
    let grant = app
        .sim_post(
            "roles",
            &json!({"user_uuid": demo::USER_CAROL_UUID, "project_uuid": demo::PROJECT_A_UUID}),
        )
        .await;
    assert_eq!(grant.status(), 201);
    let team = wait_about(&receiver, "resource.team_changed", &resource).await;
    assert_eq!(
        team["data"]["added"],
        json!([demo::USER_CAROL_UUID]),
        "{team:#}"
    );
    assert!(
        team["data"]["users"]
            .as_array()
            .unwrap()
            .contains(&json!(demo::USER_CAROL_UUID))
    );

    after_polls(&app.sim, 3).await;
    assert_eq!(about(&receiver, "order.created", &order).len(), 1);
    assert_eq!(about(&receiver, "order.state_changed", &order).len(), 1);
    assert_eq!(
        about(&receiver, "resource.team_changed", &resource).len(),
        1
    );
    // the other offering's site heard nothing of the LUMI offering
    for e in receiver.events().iter().filter(|e| e["path"] == "/slurm") {
        assert_ne!(e["data"]["offering_uuid"], ALPHA_OFFERING, "{e:#}");
    }
    // and something of its own: a new order there reaches only it
    let (slurm_order, _) = new_order(&app.sim, BETA_OFFERING).await;
    let there = wait_about(&receiver, "order.created", &slurm_order).await;
    assert_eq!(there["path"], "/slurm");
    assert_eq!(about(&receiver, "order.created", &slurm_order).len(), 1);
    for r in receiver.accepted() {
        assert!(verifies(&r, SECRET_A));
    }
    assert_none_repeated(&receiver);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("puhuri_gateway_watcher_polls_total{outcome=\"ok\"}"),
        "{text}"
    );
    assert!(text.contains("puhuri_gateway_watcher_upstream_calls_total"));
}

/// `redis`: the store's `[redis]` table (or empty: embedded in the directory).
fn process_config(
    dir: &Path,
    sim: &sim::SimServer,
    receiver: &Receiver,
    store: &str,
) -> std::path::PathBuf {
    let extra = format!("{store}\n{}", watched_sites(dir, receiver));
    external_config(dir, sim, &extra)
}

fn start_sim() -> sim::SimServer {
    sim::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        SimOptions {
            token: demo::TOKEN.to_string(),
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_another_replica_takes_over_and_nothing_is_lost_or_repeated() {
    let receiver = Receiver::start(Mode::Up);
    let sim = start_sim();
    let control = sim.control_url();
    let redis = shared();
    let prefix = unique_prefix("watch");
    let dir = tempfile::tempdir().unwrap();
    let store = redis_table(&redis.url(), &prefix);
    let config = process_config(dir.path(), &sim, &receiver, &store);
    let mut a = GatewayProcess::start(&config, &dir.path().join("a.log")).await;
    let mut b = GatewayProcess::start(&config, &dir.path().join("b.log")).await;

    let (first, _) = new_order(&control, ALPHA_OFFERING).await;
    wait_about(&receiver, "order.created", &first).await;
    after_polls(&control, 2).await;

    // the leader is the replica whose id (host-pid-...) holds the lease
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let holder: String = redis::cmd("GET")
        .arg(format!(
            "{}leader:watcher",
            puhuri_gateway::queue::open::redis_prefix(&prefix)
        ))
        .query(&mut conn)
        .unwrap();
    let (leader, survivor) = if holder.contains(&format!("-{}-", a.child.id())) {
        (&mut a, &mut b)
    } else {
        assert!(holder.contains(&format!("-{}-", b.child.id())), "{holder}");
        (&mut b, &mut a)
    };
    leader.kill();
    // changes while nobody leads
    let (second, _) = new_order(&control, ALPHA_OFFERING).await;
    let (third, _) = new_order(&control, BETA_OFFERING).await;
    wait_about(&receiver, "order.created", &second).await;
    wait_about(&receiver, "order.created", &third).await;
    let taken: String = redis::cmd("GET")
        .arg(format!(
            "{}leader:watcher",
            puhuri_gateway::queue::open::redis_prefix(&prefix)
        ))
        .query(&mut conn)
        .unwrap();
    assert!(
        taken.contains(&format!("-{}-", survivor.child.id())),
        "{taken}"
    );
    after_polls(&control, 3).await;
    for order in [&first, &second, &third] {
        assert_eq!(about(&receiver, "order.created", order).len(), 1, "{order}");
    }
    assert_none_repeated(&receiver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_restart_repeats_no_event() {
    let receiver = Receiver::start(Mode::Up);
    let sim = start_sim();
    let control = sim.control_url();
    let dir = tempfile::tempdir().unwrap();
    let config = process_config(dir.path(), &sim, &receiver, "");
    let mut gateway = GatewayProcess::start(&config, &dir.path().join("1.log")).await;
    let (before, _) = new_order(&control, ALPHA_OFFERING).await;
    wait_about(&receiver, "order.created", &before).await;
    after_polls(&control, 2).await;
    let delivered = receiver.accepted().len();
    gateway.kill();
    drop(gateway);

    let _again = GatewayProcess::start(&config, &dir.path().join("2.log")).await;
    after_polls(&control, 3).await;
    assert_eq!(
        receiver.accepted().len(),
        delivered,
        "nothing new happened, and nothing was sent again: {:#?}",
        receiver.events()
    );
    let (after, _) = new_order(&control, ALPHA_OFFERING).await;
    wait_about(&receiver, "order.created", &after).await;
    after_polls(&control, 2).await;
    assert_eq!(about(&receiver, "order.created", &before).len(), 1);
    assert_eq!(about(&receiver, "order.created", &after).len(), 1);
    assert_none_repeated(&receiver);
}
