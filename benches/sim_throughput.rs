//! Throughput of the Waldur simulator: simple authenticated GETs over real HTTP on 127.0.0.1.
//!
//! The simulator runs in-process on its own runtime; the client runs on another runtime and
//! issues batches of GETs with 32 requests in flight. Criterion reports requests per second
//! (`Throughput::Elements`). Target: at least 5,000 GETs/s on a 2-core machine.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use puhuri_gateway::sim::{self, SimOptions, demo};
use std::time::Duration;

const BATCH: u64 = 2_000;
const CONCURRENCY: usize = 32;

fn bench(c: &mut Criterion) {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let server = server_rt.block_on(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        sim::start(listener, SimOptions::default()).expect("start")
    });
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let targets = [
        format!(
            "{}marketplace-orders/{}/",
            server.api_url(),
            demo::ORDER_PENDING_UUID
        ),
        format!(
            "{}marketplace-offering-users/{}/",
            server.api_url(),
            demo::OFFERING_USER_ALICE_UUID
        ),
        format!(
            "{}marketplace-provider-resources/{}/?field=uuid&field=state",
            server.api_url(),
            demo::RESOURCE_OK_UUID
        ),
    ];
    let auth = format!("Token {}", demo::TOKEN);

    let mut group = c.benchmark_group("sim");
    group
        .throughput(Throughput::Elements(BATCH))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(15));
    group.bench_function("get_32_concurrent", |b| {
        b.to_async(&client_rt).iter(|| {
            let client = client.clone();
            let targets = targets.clone();
            let auth = auth.clone();
            async move {
                let ok = futures_util::stream::iter(0..BATCH)
                    .map(|i| {
                        let req = client
                            .get(&targets[(i % 3) as usize])
                            .header("Authorization", &auth);
                        async move { req.send().await.map(|r| r.status().is_success()) }
                    })
                    .buffer_unordered(CONCURRENCY)
                    .filter(|r| futures_util::future::ready(matches!(r, Ok(true))))
                    .count()
                    .await;
                assert_eq!(ok as u64, BATCH, "every request succeeds");
            }
        })
    });
    group.finish();
    server_rt.block_on(server.stop());
}

criterion_group!(benches, bench);
criterion_main!(benches);
