//! Site authentication: who is calling, and what may it do.
//!
//! A site system presents `Authorization: Bearer <JWT>`. [`SiteRegistry`] holds every configured
//! site's verification keys by `kid`; [`SiteIdentity`] is the actix extractor handlers take, so a
//! handler that names it cannot run for an unauthenticated caller. Scope checks are one call,
//! [`SiteIdentity::require`], and the site's offerings scope every object it touches.

pub mod issue;
pub mod keys;
mod registry;
pub mod scoped;

use std::collections::BTreeSet;
use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use chrono::{DateTime, Utc};

pub use crate::domain::Scope;
pub use crate::error::TokenRejection;
pub use registry::SiteRegistry;

use crate::error::ApiError;

/// One configured site, as the request path sees it.
#[derive(Debug)]
pub struct Site {
    pub id: String,
    /// Offering uuids, 32 lowercase hex digits.
    pub offerings: BTreeSet<String>,
    pub scopes: BTreeSet<Scope>,
    /// The Puhuri identity the site's jobs are delivered with (`sp` for a service provider's).
    pub identity: String,
    /// Allocator sites: the customers and projects (uuids) it allocates for.
    pub customers: BTreeSet<String>,
    pub projects: BTreeSet<String>,
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
    /// The gateway itself acting for `site` outside any request (warming the site's lists at
    /// start): no token, so no scopes; it may only read, as the site could.
    pub fn of_gateway_for(site: Arc<Site>) -> SiteIdentity {
        SiteIdentity {
            site,
            scopes: BTreeSet::new(),
            expires_at: Utc::now(),
            kid: String::new(),
        }
    }

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
    let sites = req
        .app_data::<web::Data<SiteRegistry>>()
        .ok_or_else(|| ApiError::internal("the site registry is not configured"))?;
    let header = req.headers().get(actix_web::http::header::AUTHORIZATION);
    let token = bearer_token(header)?;
    let identity = sites.verify(token).map_err(ApiError::from)?;
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
