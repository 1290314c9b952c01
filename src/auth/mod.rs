//! Site authentication: who is calling, and what may it do.
//!
//! A site system presents `Authorization: Bearer <JWT>`. [`SiteRegistry`] holds every configured
//! site's verification keys by `kid`; [`SiteIdentity`] is the actix extractor handlers take, so a
//! handler that names it cannot run for an unauthenticated caller. Scope checks are one call,
//! [`SiteIdentity::require`], and the site's offerings scope every object it touches.

pub mod issue;
pub mod keys;
mod registry;

use std::collections::BTreeSet;
use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use registry::{SiteRegistry, TokenRejection};

use crate::api::AppState;
use crate::error::ApiError;

/// What a token may allow. Writes are split by area so each site system gets only what it needs.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
pub enum Scope {
    #[serde(rename = "usage:write")]
    UsageWrite,
    #[serde(rename = "orders:write")]
    OrdersWrite,
    #[serde(rename = "resources:write")]
    ResourcesWrite,
    #[serde(rename = "users:write")]
    UsersWrite,
    #[serde(rename = "read")]
    Read,
    #[serde(rename = "jobs:admin")]
    JobsAdmin,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::UsageWrite,
        Scope::OrdersWrite,
        Scope::ResourcesWrite,
        Scope::UsersWrite,
        Scope::Read,
        Scope::JobsAdmin,
    ];

    pub fn all_vec() -> Vec<Scope> {
        Scope::ALL.to_vec()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::UsageWrite => "usage:write",
            Scope::OrdersWrite => "orders:write",
            Scope::ResourcesWrite => "resources:write",
            Scope::UsersWrite => "users:write",
            Scope::Read => "read",
            Scope::JobsAdmin => "jobs:admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|sc| sc.as_str() == s)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured site, as the request path sees it.
#[derive(Debug)]
pub struct Site {
    pub id: String,
    /// Offering uuids, 32 lowercase hex digits.
    pub offerings: BTreeSet<String>,
    pub scopes: BTreeSet<Scope>,
}

/// An authenticated caller: the site, the scopes its token grants (within the site's), and when
/// the token expires.
#[derive(Clone, Debug)]
pub struct SiteIdentity {
    pub site: Arc<Site>,
    pub scopes: BTreeSet<Scope>,
    pub expires_at: DateTime<Utc>,
    pub kid: String,
}

impl SiteIdentity {
    pub fn id(&self) -> &str {
        &self.site.id
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// 403 unless the token grants `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::MissingScope(scope))
        }
    }

    /// Whether an offering (any uuid spelling) is one of this site's.
    pub fn owns_offering(&self, offering_uuid: &str) -> bool {
        let normalized = offering_uuid.replace('-', "").to_ascii_lowercase();
        self.site.offerings.contains(&normalized)
    }
}

/// The span field the request middleware declares for the calling site.
pub const SITE_SPAN_FIELD: &str = "site";

impl FromRequest for SiteIdentity {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).inspect_err(crate::telemetry::metrics::auth_failure))
    }
}

fn authenticate(req: &HttpRequest) -> Result<SiteIdentity, ApiError> {
    if let Some(identity) = req.extensions().get::<SiteIdentity>() {
        return Ok(identity.clone());
    }
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state is not configured"))?;
    let header = req.headers().get(actix_web::http::header::AUTHORIZATION);
    let token = bearer_token(header)?;
    let identity = state.sites.verify(token).map_err(ApiError::from)?;
    if let Some(span) = req.extensions().get::<tracing::Span>() {
        span.record(SITE_SPAN_FIELD, identity.id());
    }
    req.extensions_mut().insert(identity.clone());
    Ok(identity)
}

/// Extracts the token from `Authorization: Bearer <token>`.
fn bearer_token(header: Option<&actix_web::http::header::HeaderValue>) -> Result<&str, ApiError> {
    let value = header.ok_or(ApiError::MissingToken)?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::InvalidToken(TokenRejection::MalformedHeader))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(ApiError::InvalidToken(TokenRejection::MalformedHeader))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(ApiError::InvalidToken(TokenRejection::MalformedHeader));
    }
    Ok(token)
}
