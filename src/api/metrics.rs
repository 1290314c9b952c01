//! `/metrics`: Prometheus text format. The families, their labels and units are listed in
//! [`crate::telemetry::metrics`]; counters and histograms are recorded where the work happens.
//! Job counts per state and the age of the oldest due job are read from the store at scrape time
//! (shared by every replica on one Redis, so any replica reports the same numbers).

use std::sync::OnceLock;

use actix_web::{HttpResponse, get, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;
use crate::telemetry::metrics as m;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once (several gateways in one test process share it), and
/// registers the counters that may stay at zero for a long time, so an alert can tell "none"
/// from "not reported".
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            // histograms with buckets (summaries would not aggregate across replicas)
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), m::DURATION_BUCKETS)
                .ok()?
                .install_recorder()
                .ok()?;
            metrics::counter!(m::LEASE_RECLAIMS).increment(0);
            // Only usage reports coalesce (the one operation with a coalescing key).
            metrics::counter!(m::JOBS_SUPERSEDED, "operation" => "usage.report").increment(0);
            for source in ["api", "worker"] {
                metrics::counter!(m::STORE_ERRORS, "source" => source).increment(0);
            }
            Some(handle)
        })
        .as_ref()
}

/// Prometheus metrics.
#[utoipa::path(tag = "health", responses((status = 200, description = "Prometheus text format", content_type = "text/plain"), super::responses::QueryErrors))]
#[get("/metrics")]
pub async fn prometheus(state: web::Data<AppState>) -> HttpResponse {
    match state.store.counts().await {
        Ok(counts) => {
            for (job_state, n) in counts {
                metrics::gauge!(m::JOBS, "state" => job_state.as_str()).set(n as f64);
            }
            metrics::gauge!(m::STORE_UP).set(1.0);
        }
        Err(_) => {
            m::store_error("api");
            metrics::gauge!(m::STORE_UP).set(0.0);
        }
    }
    if let Ok(age) = state.store.oldest_due_age().await {
        metrics::gauge!(m::QUEUE_OLDEST_READY_AGE).set(age.as_secs_f64());
    }
    metrics::gauge!(m::WORKERS_RUNNING).set(if state.workers_running() { 1.0 } else { 0.0 });
    let body = install().map(|h| h.render()).unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}
