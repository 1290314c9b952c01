//! One way to wait in every test binary: ask again until the answer is the wanted one, within a
//! bound, and fail saying what was last seen. A job's view over HTTP is the most asked question,
//! so it has its own function.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How often [`until`] asks.
pub const EVERY: Duration = Duration::from_millis(25);

/// Calls `probe` every [`EVERY`] until it returns `Ok`, and returns that; after `within`,
/// panics with `what` and the last `Err` the probe gave (what it saw).
pub async fn until<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(found) => return found,
            Err(seen) if Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(EVERY).await,
        }
    }
}

/// `GET {base}/v1/jobs/{id}` as the site holding `token` sees it (asserting 200).
pub async fn job_view(client: &reqwest::Client, base: &str, token: &str, id: &str) -> Value {
    let request = client
        .get(format!("{}/v1/jobs/{id}", base.trim_end_matches('/')))
        .bearer_auth(token);
    let view = super::client::expect(request, 200).await.body;
    assert!(
        view.is_object(),
        "GET /v1/jobs/{id}: a job view, not {view}"
    );
    view
}

/// The job's view once its state is one `wanted` accepts (a running gateway delivers it),
/// within `within`.
pub async fn job_where(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    within: Duration,
    wanted: impl Fn(&str) -> bool,
) -> Value {
    until(&format!("job {id}"), within, || async {
        let view = job_view(client, base, token, id).await;
        match view["state"].as_str() {
            Some(state) if wanted(state) => Ok(view),
            _ => Err(view.to_string()),
        }
    })
    .await
}
