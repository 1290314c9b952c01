//! Liveness and readiness, for load balancers and orchestrators. Neither needs a token.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// The process is alive.
#[utoipa::path(tag = "health", responses((status = 200, body = Health), super::responses::QueryErrors))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// `sandbox` (the built-in simulator stands in for Puhuri) or `puhuri`.
    pub mode: &'static str,
    /// Each check and whether it passed.
    pub checks: Vec<Check>,
}

#[derive(Serialize, ToSchema)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `upstream_token`: Puhuri's latest answer did not refuse the service provider's token (401 or
/// 403). A refusal is a configuration problem (a revoked or mistyped token, a user without the
/// service-provider role); the check passes again with the next answer that is not a refusal.
fn upstream_token_check(state: &AppState) -> Check {
    use crate::upstream::TokenState;
    let refused = match state.directory.client().token_status().current() {
        TokenState::Accepted => None,
        TokenState::Refused { status } => Some(status),
    };
    Check {
        name: "upstream_token",
        ok: refused.is_none(),
        detail: refused.map(|status| {
            format!(
                "Puhuri answered {status}: the service provider's token is not being accepted; \
                 check upstream.token_file and the token user's role"
            )
        }),
    }
}

/// The gateway can take work: its queue store answers, its workers run, and Puhuri accepts the
/// service provider's token.
#[utoipa::path(tag = "health", responses(
    (status = 200, body = Readiness),
    (status = 503, body = Readiness, description = "A check failed"),
    super::responses::QueryErrors,
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let workers = state.workers_running();
    let store = state.store.ping().await;
    let checks = vec![
        Check {
            name: "queue_store",
            ok: store.is_ok(),
            detail: store
                .err()
                .map(|_| "the job store does not answer; writes are refused with 503".to_string()),
        },
        Check {
            name: "workers",
            ok: workers,
            detail: (!workers).then(|| "the delivery workers are not running".to_string()),
        },
        upstream_token_check(&state),
    ];
    let ready = checks.iter().all(|c| c.ok);
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        mode: if state.sandbox { "sandbox" } else { "puhuri" },
        checks,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
