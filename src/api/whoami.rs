//! `GET /v1/whoami`: the first thing a site operator checks after getting a token.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::auth::{Scope, SiteIdentity};

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "site": "lumi-accounting",
    "scopes": ["usage:write", "read"],
    "offerings": ["d0d5b2a4a4e54b4fa1d36ac1e4a5b9a1"],
    "token_expires_at": "2026-12-01T00:00:00Z",
    "key_id": "lumi-accounting-2026",
    "sandbox": false
}))]
pub struct WhoAmI {
    pub site: String,
    /// The scopes this token grants (the token's, within what the site is allowed).
    pub scopes: Vec<Scope>,
    /// Offering uuids this site may act on.
    pub offerings: Vec<String>,
    pub token_expires_at: DateTime<Utc>,
    /// The `kid` the token was verified with.
    pub key_id: String,
    /// True when the gateway runs against its built-in simulator, not Puhuri.
    pub sandbox: bool,
}

/// Who the token speaks for.
#[utoipa::path(
    tag = "site",
    security(("bearer" = [])),
    responses(
        (status = 200, body = WhoAmI),
        super::responses::TokenErrors,
    )
)]
#[get("/whoami")]
pub async fn whoami(identity: SiteIdentity, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(WhoAmI {
        site: identity.id().to_string(),
        scopes: identity.scopes.iter().copied().collect(),
        offerings: identity.site.offerings.iter().cloned().collect(),
        token_expires_at: identity.expires_at,
        key_id: identity.kid.clone(),
        sandbox: state.sandbox,
    })
}
