//! The Waldur (Puhuri Core) client: one typed function per call the gateway makes, the service
//! provider's token on every request, and errors classified as transient or permanent.
//!
//! Paths and bodies follow `upstream/CONTRACT.md`: trailing slashes always, uuids as 32 hex digits,
//! decimals as strings, `Authorization: Token <token>`.

pub mod directory;
pub mod error;
mod flights;
mod link;
mod offering_users;
pub mod scans;
pub mod token;
mod types;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

pub use error::{TransientCause, UpstreamError};
pub use link::link_target;
pub use token::{TokenState, TokenStatus};
pub use types::{
    ActionAnswer, Component, ComponentUsage, Forwarded, InProgress, Offering, OfferingComponent,
    OfferingInfo, OfferingUserInfo, Order, Page, Plan, PlanPeriod, PlanPrice, PluginOptions,
    Project, ProjectRole, PublicOffering, ReportSection, Resource, ResourceInfo,
    ResourceProjection, SshKey, TeamMember, User, Uuid, lenient,
};

#[derive(Clone)]
pub struct WaldurClient {
    http: reqwest::Client,
    base: Url,
    token_status: Arc<TokenStatus>,
    /// A 403 is an answer the caller expects and handles ([`WaldurClient::expecting_refusal`]).
    refusal_expected: bool,
}

impl std::fmt::Debug for WaldurClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaldurClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl WaldurClient {
    /// `base` is the API root ending in `/api/`.
    pub fn new(
        base: Url,
        token: &SecretString,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<WaldurClient, String> {
        let mut auth = HeaderValue::from_str(&format!("Token {}", token.expose_secret()))
            .map_err(|_| "the service provider's token has characters a header cannot carry")?;
        // Marked sensitive so reqwest and hyper never print it.
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, auth);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("puhuri-gateway/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(WaldurClient {
            http,
            base,
            token_status: Arc::default(),
            refusal_expected: false,
        })
    }

    /// Share `status` with other clients of the same token (the process has one per runtime).
    pub fn with_token_status(mut self, status: Arc<TokenStatus>) -> WaldurClient {
        self.token_status = status;
        self
    }

    /// Whether Puhuri is accepting this client's identity's token.
    /// The same client for calls where Puhuri's 403 is an answer the caller expects and reads
    /// another way (an offering's people views, which only an owner of the provider's
    /// organisation may read): such a 403 neither marks the token refused (`/readyz`, the
    /// `puhuri_gateway_upstream_token_refused_total` counter an operator alerts on) nor logs an
    /// error. A 401 still does: it says the token itself is not accepted.
    pub fn expecting_refusal(&self) -> WaldurClient {
        WaldurClient {
            refusal_expected: true,
            ..self.clone()
        }
    }

    pub fn token_status(&self) -> &Arc<TokenStatus> {
        &self.token_status
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Url {
        self.base
            .join(path.trim_start_matches('/'))
            .expect("paths built by this module are valid")
    }

    /// One call; any status but 2xx is an error. Returns the status, headers and JSON body
    /// (`Value::Null` when empty), unread: the typed calls below read it as their views, and a
    /// caller uses this one directly only for an answer it keeps without reading it (an
    /// allocation's `PATCH marketplace-resources/{uuid}/` answer, kept in the job's result).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(StatusCode, HeaderMap, Value), UpstreamError> {
        let mut request = self.http.request(method, self.url(path));
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| UpstreamError::from_transport(&e))?;
        let status = response.status();
        if self.refusal_expected && status == StatusCode::FORBIDDEN {
            tracing::debug!(
                path,
                "Puhuri answered 403 where the caller reads another way"
            );
        } else {
            self.token_status.record(status.as_u16());
        }
        if status == StatusCode::UNAUTHORIZED
            || (status == StatusCode::FORBIDDEN && !self.refusal_expected)
        {
            let identity = self.token_status.identity();
            if identity == error::SP_IDENTITY {
                tracing::error!(
                    status = status.as_u16(),
                    path,
                    identity,
                    "Puhuri did not accept the service provider's token for this call: check \
                     upstream.token_file and the token user's service-provider role"
                );
            } else {
                tracing::error!(
                    status = status.as_u16(),
                    path,
                    identity,
                    "Puhuri did not accept the token of the Puhuri identity `{identity}` for this \
                     call: check upstream.identities.{identity}.token_file and the token user's \
                     roles"
                );
            }
        }
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| UpstreamError::from_transport(&e))?;
        if !status.is_success() {
            return Err(
                UpstreamError::from_status(status.as_u16(), retry_after(&headers), &bytes)
                    .of_identity(self.token_status.identity()),
            );
        }
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|_| {
                UpstreamError::malformed(
                    status.as_u16(),
                    format!(
                        "the answer was not JSON: {}",
                        error::plain_excerpt(&bytes).unwrap_or_default()
                    ),
                )
            })?
        };
        Ok((status, headers, value))
    }

    /// One object (or any answer) read as `T`; an answer without `T`'s required fields is
    /// [`UpstreamError::Malformed`].
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, UpstreamError> {
        let (status, _, value) = self.call(Method::GET, path, query, None).await?;
        parse(status.as_u16(), value)
    }

    /// POSTs `body`; Waldur's answer read as `T`.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, UpstreamError> {
        let (status, _, value) = self.call(Method::POST, path, &[], Some(body)).await?;
        parse(status.as_u16(), value)
    }

    /// A list that Waldur does not paginate (a bare array), each item read as `T`.
    async fn get_list<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, UpstreamError> {
        let (status, _, value) = self.call(Method::GET, path, &[], None).await?;
        items(status.as_u16(), value)
    }

    /// One page of a list endpoint, each item read as `T`, with Waldur's `X-Result-Count` and
    /// `Link` headers read.
    pub async fn get_page<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Page<T>, UpstreamError> {
        let (status, headers, value) = self.call(Method::GET, path, query, None).await?;
        let items = items(status.as_u16(), value)?;
        let total = headers
            .get("x-result-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let next = headers
            .get_all(header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| link_target(v, "next"));
        let next_query = next.map(|target| match target.split_once('?') {
            Some((_, query)) => query.split('#').next().unwrap_or("").to_string(),
            None => String::new(),
        });
        Ok(Page {
            items,
            total,
            has_next: next_query.is_some(),
            next_query,
        })
    }

    // --- resources -------------------------------------------------------------------------

    /// The resource as the service provider sees it, for the resource view.
    pub async fn provider_resource(&self, uuid: &str) -> Result<Resource, UpstreamError> {
        self.get(&format!("marketplace-provider-resources/{uuid}/"), &[])
            .await
    }

    /// The resource as the provider sees it, for scoping and delivery.
    pub async fn resource_info(&self, uuid: &str) -> Result<ResourceInfo, UpstreamError> {
        self.get(&format!("marketplace-provider-resources/{uuid}/"), &[])
            .await
    }

    /// Resources of the given offerings with this backend id (Waldur filters exactly).
    pub async fn resources_by_backend_id(
        &self,
        backend_id: &str,
        offerings: &[String],
    ) -> Result<Vec<ResourceInfo>, UpstreamError> {
        let mut query = vec![
            ("backend_id", backend_id.to_string()),
            ("page_size", "100".to_string()),
        ];
        query.extend(offerings.iter().map(|o| ("offering_uuid", o.clone())));
        for field in ["uuid", "offering_uuid", "state", "backend_id"] {
            query.push(("field", field.to_string()));
        }
        let page = self
            .get_page("marketplace-provider-resources/", &query)
            .await?;
        Ok(page.items)
    }

    /// A resource's team (`ProjectUser[]`, not paginated).
    pub async fn resource_team(&self, uuid: &str) -> Result<Vec<TeamMember>, UpstreamError> {
        self.get_list(&format!("marketplace-provider-resources/{uuid}/team/"))
            .await
    }

    /// A resource's current plan periods with this month's component usages (not paginated).
    pub async fn plan_periods(&self, uuid: &str) -> Result<Vec<PlanPeriod>, UpstreamError> {
        self.get_list(&format!(
            "marketplace-provider-resources/{uuid}/plan_periods/"
        ))
        .await
    }

    /// A provider action on a resource (`set_backend_id`, `submit_report`, `set_as_ok`,
    /// `set_as_erred`, `set_limits`): the status and Waldur's answer.
    pub async fn resource_action(
        &self,
        uuid: &str,
        action: &str,
        body: &Value,
    ) -> Result<(u16, ActionAnswer), UpstreamError> {
        self.post_action(
            &format!("marketplace-provider-resources/{uuid}/{action}/"),
            body,
        )
        .await
    }

    /// POSTs an action's body to `path`: the status and Waldur's answer.
    pub async fn order_action_path(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<(u16, ActionAnswer), UpstreamError> {
        self.post_action(path, body).await
    }

    /// POSTs an action's body: the status and Waldur's answer, read leniently
    /// ([`ActionAnswer`]).
    async fn post_action(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<(u16, ActionAnswer), UpstreamError> {
        self.call(Method::POST, path, &[], Some(body))
            .await
            .map(|(status, _, value)| {
                let answer = ActionAnswer::deserialize(value).unwrap_or_default();
                (status.as_u16(), answer)
            })
    }

    // --- orders ------------------------------------------------------------------------------

    pub async fn order(&self, uuid: &str) -> Result<Order, UpstreamError> {
        self.get(&format!("marketplace-orders/{uuid}/"), &[]).await
    }

    /// An order transition (`approve_by_provider`, `reject_by_provider`, `set_state_done`,
    /// `set_state_erred`).
    pub async fn order_action(
        &self,
        uuid: &str,
        action: &str,
        body: &Value,
    ) -> Result<(u16, ActionAnswer), UpstreamError> {
        self.post_action(&format!("marketplace-orders/{uuid}/{action}/"), body)
            .await
    }

    /// The service provider of an organisation (at most one).
    pub async fn service_provider_of(
        &self,
        customer_uuid: &str,
    ) -> Result<Option<String>, UpstreamError> {
        let page: Page<Uuid> = self
            .get_page(
                "marketplace-service-providers/",
                &[("customer_uuid", customer_uuid.to_string())],
            )
            .await?;
        Ok(page.items.into_iter().next().map(|sp| sp.uuid))
    }

    /// Every item of a list in pages of 100 (at most `max_pages` pages), following the
    /// `rel="next"` link of Waldur's `Link` header whatever its form: the first page is asked
    /// without `page=`, and each next one with the query of the `next` URL exactly as Waldur wrote
    /// it (so its page parameter, its order of keys and whatever else it carries are kept). Only
    /// the query is taken: the request goes to this client's own base URL, so a Waldur that
    /// names itself differently behind a proxy cannot send the token elsewhere.
    pub async fn get_all<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        max_pages: usize,
    ) -> Result<Vec<T>, UpstreamError> {
        let mut items = Vec::new();
        let mut next: Vec<(String, String)> = (query.iter())
            .map(|(k, v)| (k.to_string(), v.clone()))
            .chain([("page_size".to_string(), "100".to_string())])
            .collect();
        for _ in 0..max_pages {
            let q: Vec<(&str, String)> =
                next.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let got = self.get_page(path, &q).await?;
            items.extend(got.items);
            let Some(query) = got.next_query else {
                return Ok(items);
            };
            next = url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
        }
        Err(UpstreamError::malformed(
            200,
            format!("the list at {path} is longer than {max_pages} pages"),
        ))
    }

    /// Every item of a list in pages of `page_size`, following `rel="next"` as [`Self::get_all`]
    /// does, or `None` when the list is longer than `max_pages` pages: a list too large for
    /// the caller's bound, which is not a failure of Puhuri.
    pub async fn get_bounded<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        page_size: u64,
        max_pages: usize,
    ) -> Result<Option<Vec<T>>, UpstreamError> {
        let mut items = Vec::new();
        let mut next: Vec<(String, String)> = (query.iter())
            .map(|(k, v)| (k.to_string(), v.clone()))
            .chain([("page_size".to_string(), page_size.to_string())])
            .collect();
        for _ in 0..max_pages {
            let q: Vec<(&str, String)> =
                next.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let got = self.get_page(path, &q).await?;
            if got
                .total
                .is_some_and(|t| t > page_size.saturating_mul(max_pages as u64))
            {
                return Ok(None);
            }
            items.extend(got.items);
            let Some(query) = got.next_query else {
                return Ok(Some(items));
            };
            next = url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
        }
        Ok(None)
    }

    // --- offerings ---------------------------------------------------------------------------

    /// The offering as the service provider sees it, for the offering view.
    pub async fn provider_offering(&self, uuid: &str) -> Result<Offering, UpstreamError> {
        self.get(&format!("marketplace-provider-offerings/{uuid}/"), &[])
            .await
    }

    /// The offering as the provider sees it, for the directory's decisions.
    pub async fn offering_info(&self, uuid: &str) -> Result<OfferingInfo, UpstreamError> {
        self.get(&format!("marketplace-provider-offerings/{uuid}/"), &[])
            .await
    }

    // --- usage -------------------------------------------------------------------------------

    /// `set_usage`: the amounts replace the month's values (an upsert), so a repeat is harmless.
    pub async fn set_usage(
        &self,
        resource_uuid: &str,
        date: &str,
        usages: &[(String, String)],
        description: Option<&str>,
    ) -> Result<u16, UpstreamError> {
        let usages: Vec<Value> = usages
            .iter()
            .map(|(type_, amount)| {
                let mut item = json!({"type": type_, "amount": amount});
                if let Some(d) = description {
                    item["description"] = json!(d);
                }
                item
            })
            .collect();
        let body = json!({"resource": resource_uuid, "date": date, "usages": usages});
        self.call(
            Method::POST,
            "marketplace-component-usages/set_usage/",
            &[],
            Some(&body),
        )
        .await
        .map(|(status, _, _)| status.as_u16())
    }

    pub async fn component_usages(
        &self,
        resource_uuid: &str,
        billing_period: &str,
    ) -> Result<Vec<ComponentUsage>, UpstreamError> {
        let query = [
            ("resource_uuid", resource_uuid.to_string()),
            ("billing_period", billing_period.to_string()),
            ("page_size", "100".to_string()),
        ];
        Ok(self
            .get_page("marketplace-component-usages/", &query)
            .await?
            .items)
    }
}

/// A list answer (a JSON array), each item read as `T`.
fn items<T: DeserializeOwned>(status: u16, value: Value) -> Result<Vec<T>, UpstreamError> {
    match value {
        Value::Array(_) => parse(status, value),
        _ => Err(UpstreamError::malformed(
            status,
            "a list answer was not an array",
        )),
    }
}

/// A 2xx answer read as `T`; one without `T`'s required fields, or with another shape, is
/// [`UpstreamError::Malformed`] (never a panic).
fn parse<T: DeserializeOwned>(status: u16, value: Value) -> Result<T, UpstreamError> {
    serde_json::from_value(value).map_err(|e| {
        UpstreamError::malformed(
            status,
            format!("the answer did not have the expected shape: {e}"),
        )
    })
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds.min(24 * 3600)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}
