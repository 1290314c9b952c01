//! What a read through the gateway adds over asking Puhuri directly.
//!
//! `cargo bench --bench read_latency`. A gateway in sandbox mode (the simulator in-process, the
//! embedded store) on 127.0.0.1; the same resource is read through the gateway
//! (`GET /v1/resources/{uuid}`: token check, scoping from the directory cache, one upstream GET,
//! mapping to the gateway's shape) and straight from the simulator
//! (`GET /api/marketplace-provider-resources/{uuid}/`). Criterion reports mean/median per
//! request; a separate timed loop of sequential requests prints p50/p99 and the difference.
//! Target: at most 2 ms added at p50.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use puhuri_gateway::config::{Config, Overrides};
use puhuri_gateway::sim::demo;
use puhuri_gateway::startup::{Application, Workers};

const SAMPLES: usize = 2000;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
        .display()
        .to_string()
}

struct Target {
    gateway: String,
    direct: String,
    token: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start() -> Target {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
gateway_id = "bench"
data_dir = "{data}"
[log]
level = "error"
[[sites]]
id = "site"
offerings = ["{offering}"]
[[sites.keys]]
kid = "ed"
algorithm = "EdDSA"
public_key_file = "{key}"
"#,
        data = dir.path().display(),
        offering = demo::LUMI_OFFERING_UUID,
        key = fixture("ed25519.pub"),
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).unwrap();
    let config = Config::load(Some(&path), &Overrides::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = Application::build_with(config, listener, Workers::Manual)
        .await
        .unwrap();
    let port = app.port();
    let sim_api = app
        .simulator_control_url()
        .unwrap()
        .replace("/__sim/", "/api/");
    tokio::spawn(app.run_until_stopped());
    let pem = std::fs::read(fixture("ed25519.key")).unwrap();
    let now = Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": "site", "aud": "bench", "iat": now, "nbf": now, "exp": now + 3600, "scope": "read",
    });
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("ed".into());
    let token =
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_pem(&pem).unwrap()).unwrap();
    Target {
        gateway: format!(
            "http://127.0.0.1:{port}/v1/resources/{}",
            demo::RESOURCE_OK_UUID
        ),
        direct: format!(
            "{sim_api}marketplace-provider-resources/{}/",
            demo::RESOURCE_OK_UUID
        ),
        token,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Target {
    async fn via_gateway(&self) {
        let r = self
            .client
            .get(&self.gateway)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }

    async fn direct(&self) {
        let r = self
            .client
            .get(&self.direct)
            .header("Authorization", format!("Token {}", demo::TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn timed<F, Fut>(mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut out = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        f().await;
        out.push(t.elapsed());
    }
    out.sort();
    out
}

fn read_latency(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let target = rt.block_on(start());
    // Warm up: connections, the directory cache.
    rt.block_on(async {
        for _ in 0..100 {
            target.via_gateway().await;
            target.direct().await;
        }
    });

    let (gateway, direct) = rt.block_on(async {
        let gateway = timed(|| target.via_gateway()).await;
        let direct = timed(|| target.direct()).await;
        (gateway, direct)
    });
    let show = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1000.0);
    let (g50, g99) = (percentile(&gateway, 0.50), percentile(&gateway, 0.99));
    let (d50, d99) = (percentile(&direct, 0.50), percentile(&direct, 0.99));
    println!("\nread_latency over {SAMPLES} sequential GETs of one resource:");
    println!("  via gateway   p50 {}  p99 {}", show(g50), show(g99));
    println!("  direct to sim p50 {}  p99 {}", show(d50), show(d99));
    println!(
        "  added         p50 {}  p99 {}\n",
        show(g50.saturating_sub(d50)),
        show(g99.saturating_sub(d99))
    );

    let mut group = c.benchmark_group("read_resource");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.bench_function("via_gateway", |b| {
        b.to_async(&rt).iter(|| target.via_gateway())
    });
    group.bench_function("direct_to_sim", |b| {
        b.to_async(&rt).iter(|| target.direct())
    });
    group.finish();
}

criterion_group!(benches, read_latency);
criterion_main!(benches);
