//! `/metrics`: Prometheus text format. Counters of accepted and delivered jobs come from the
//! `metrics` facade where the work happens; job counts per state are read from the store at scrape
//! time (they are shared by every replica on one Redis, so any replica reports the same numbers).

use std::sync::OnceLock;

use actix_web::{HttpResponse, get, web};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::AppState;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once (several gateways in one test process share it).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .as_ref()
}

/// Prometheus metrics.
#[utoipa::path(tag = "health", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
#[get("/metrics")]
pub async fn prometheus(state: web::Data<AppState>) -> HttpResponse {
    if let Ok(counts) = state.store.counts().await {
        for (job_state, n) in counts {
            metrics::gauge!("puhuri_gateway_jobs", "state" => job_state.as_str()).set(n as f64);
        }
        metrics::gauge!("puhuri_gateway_store_up").set(1.0);
    } else {
        metrics::gauge!("puhuri_gateway_store_up").set(0.0);
    }
    metrics::gauge!("puhuri_gateway_workers_running").set(if state.workers_running() {
        1.0
    } else {
        0.0
    });
    let body = install().map(|h| h.render()).unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}
