//! Usage reports: a resource's monthly totals per component, delivered as Waldur's `set_usage`.
//!
//! A report is the month's running total, not an increment: Puhuri replaces the stored value, so
//! sending the same total twice changes nothing, and a newer total for the same resource,
//! component and month replaces an older one still waiting in the queue.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::body::{JsonBody, Object};
use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::AppState;
use super::jobs::JobView;
use super::responses::{BatchErrors, Queued, WriteErrors, WriteHeaders};
use super::submit::{
    ResourceRef, lookup_failed, refuse_unknown_components, resolve_resource, submit,
};
use crate::auth::SiteIdentity;
use crate::auth::scoped::{Authorized, UsageWrite};
use crate::domain::operations::{Operation, UsageReport};
use crate::domain::text::Description;
use crate::domain::usage;
use crate::domain::{Amount, BackendId, ComponentType, Month, WaldurUuid};
use crate::error::{ApiError, FieldError, Problem};

/// The most components one report names ([`usage::check_component_count`]).
pub const MAX_COMPONENTS: usize = usage::MAX_COMPONENTS;

/// A usage report for one resource and month.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "resource_backend_id": "project_465000001",
    "usages": {"cpu_k_hours": "1520.25", "gpu_k_hours": 12.5, "gb_k_hours": "300"},
    "description": "LUMI accounting, 2026-11-23"
}))]
pub struct UsageRequest {
    /// Puhuri's uuid of the resource. Give this or `resource_backend_id`.
    #[schema(
        pattern = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    pub resource_uuid: Option<String>,
    /// The site's own id for the resource (its `backend_id` in Puhuri).
    pub resource_backend_id: Option<String>,
    /// The billing month, `YYYY-MM` (2000-01 to 2999-12). Default: the current month (UTC).
    #[schema(pattern = "^2[0-9]{3}-(0[1-9]|1[0-2])$")]
    pub month: Option<String>,
    /// The month's total per component type, as a JSON number or a decimal string. Not negative;
    /// more than two decimals are rounded half-to-even.
    #[schema(value_type = super::component_maps::UsageAmounts)]
    pub usages: BTreeMap<String, Box<RawValue>>,
    /// A note stored with the usage in Puhuri (at most 1,000 characters).
    #[schema(max_length = 1000)]
    pub description: Option<String>,
}

/// A validated report, before the resource is resolved.
struct ParsedUsage {
    resource: ResourceRef,
    month: Month,
    usages: BTreeMap<ComponentType, Amount>,
    description: Option<Description>,
}

impl ParsedUsage {
    /// The report as the site sent it, in canonical form (what an `Idempotency-Key` is bound
    /// to): the resource as named, `month` as sent (`null` when absent, never the month it was
    /// bound to at arrival), the amounts as decimals, the description.
    fn sent(&self, request: &UsageRequest) -> serde_json::Value {
        let resource = match &self.resource {
            ResourceRef::Uuid(u) => serde_json::json!({ "uuid": u.as_str() }),
            ResourceRef::BackendId(b) => serde_json::json!({ "backend_id": b }),
        };
        let usages: BTreeMap<&str, String> = self
            .usages
            .iter()
            .map(|(t, a)| (t.as_str(), a.to_waldur()))
            .collect();
        serde_json::json!({
            "resource": resource,
            "month": request.month,
            "usages": usages,
            "description": self.description,
        })
    }

    /// [`ParsedUsage::sent`] when the request has an `Idempotency-Key` (its only use), else
    /// `null`: a report without one does not build it.
    fn sent_if_keyed(&self, request: &UsageRequest, req: &HttpRequest) -> serde_json::Value {
        if req.headers().contains_key(&super::submit::IDEMPOTENCY_KEY) {
            self.sent(request)
        } else {
            serde_json::Value::Null
        }
    }
}

/// Checks every field and reports every problem at once, each with its path. A report without
/// `month` is for the month (UTC) of `now`.
fn parse(
    request: &UsageRequest,
    at: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ParsedUsage, Vec<FieldError>> {
    let mut errors = Vec::new();
    let field = |name: &str| format!("{at}{name}");
    let resource = match (&request.resource_uuid, &request.resource_backend_id) {
        (Some(uuid), None) => match WaldurUuid::parse(uuid) {
            Ok(u) => Some(ResourceRef::Uuid(u)),
            Err(m) => {
                errors.push(FieldError::new(field("resource_uuid"), m));
                None
            }
        },
        (None, Some(backend_id)) => match BackendId::parse(backend_id) {
            Ok(b) => Some(ResourceRef::BackendId(b)),
            Err(m) => {
                errors.push(FieldError::new(field("resource_backend_id"), m));
                None
            }
        },
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                field("resource_uuid"),
                "give resource_uuid or resource_backend_id, not both",
            ));
            None
        }
        (None, None) => {
            errors.push(FieldError::new(
                field("resource_uuid"),
                "give resource_uuid or resource_backend_id",
            ));
            None
        }
    };
    let month = Month::reported(request.month.as_deref(), now)
        .map_err(|m| errors.push(FieldError::new(field("month"), m)))
        .ok();
    if let Err(m) = usage::check_component_count(request.usages.len()) {
        errors.push(FieldError::new(field("usages"), m));
    }
    let mut usages = BTreeMap::new();
    for (type_, value) in &request.usages {
        let path = field(&format!("usages.{type_}"));
        match (
            ComponentType::parse(type_),
            Amount::from_json_text(value.get()),
        ) {
            (Ok(t), Ok(a)) => {
                usages.insert(t, a);
            }
            (Err(m), _) | (_, Err(m)) => errors.push(FieldError::new(path, m)),
        }
    }
    let description = match request.description.clone().map(Description::parse) {
        None => Some(None),
        Some(Ok(d)) => Some(Some(d)),
        Some(Err(m)) => {
            errors.push(FieldError::new(field("description"), m));
            None
        }
    };
    match (resource, month, description, errors.is_empty()) {
        (Some(resource), Some(month), Some(description), true) => Ok(ParsedUsage {
            resource,
            month,
            usages,
            description,
        }),
        _ => Err(errors),
    }
}

/// Resolves the resource of a parsed report, checks the site may report for it and that every
/// component is a usage component of its offering, and returns the operation to queue.
async fn prepare(
    state: &AppState,
    identity: &SiteIdentity,
    parsed: ParsedUsage,
    at: &str,
) -> Result<Operation, ApiError> {
    let resource = resolve_resource(state, identity, &parsed.resource).await?;
    let offering = state
        .directory
        .offering(&resource.offering_uuid)
        .await
        .map_err(lookup_failed)?;
    let usage_types: BTreeSet<&str> = offering
        .components
        .iter()
        .filter(|c| c.billing_type == "usage")
        .map(|c| c.type_.as_str())
        .collect();
    refuse_unknown_components(
        parsed.usages.keys().map(ComponentType::as_str),
        &usage_types,
        "usage component",
        |t| format!("{at}usages.{t}"),
    )?;
    Ok(Operation::UsageReport(UsageReport {
        resource_uuid: super::submit::resource_uuid(&resource)?,
        month: parsed.month,
        usages: parsed.usages,
        description: parsed.description,
    }))
}

/// Report a resource's usage for a month.
///
/// Answers 202 with the job once the report is stored; it is delivered to Puhuri as `set_usage`
/// with retries. Send `Idempotency-Key` to make retries of this call safe, and `Prefer: wait=N`
/// to wait up to N seconds for the delivery.
#[utoipa::path(
    tag = "usage",
    security(("bearer" = [])),
    request_body = UsageRequest,
    params(WriteHeaders),
    responses(
        Queued,
        WriteErrors<UsageWrite>,
    )
)]
#[post("/usage")]
pub async fn report_usage(
    identity: Authorized<UsageWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<UsageRequest>,
) -> Result<HttpResponse, ApiError> {
    let parsed = parse(&body, "", state.clock.now()).map_err(ApiError::validation)?;
    let sent = parsed.sent_if_keyed(&body, &req);
    let op = prepare(&state, &identity, parsed, "").await?;
    submit(&state, &identity, &req, op, sent).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reports": [
    {"resource_backend_id": "project_465000001", "usages": {"cpu_k_hours": "1520.25", "gpu_k_hours": 12.5}},
    {"resource_uuid": "7e000000000040008000000000000001", "month": "2026-10", "usages": {"gb_k_hours": "300"}}
]}))]
pub struct UsageBatchRequest {
    /// Up to `limits.max_batch` (default 1,000) reports, each an object.
    #[schema(value_type = Vec<UsageRequest>)]
    pub reports: Vec<Object<UsageRequest>>,
}

/// The outcome of one report of a batch.
#[derive(Serialize, ToSchema)]
pub struct BatchItem {
    /// The report's position in the request.
    pub index: usize,
    /// What a single `POST /v1/usage` would have answered.
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchResponse {
    pub accepted: usize,
    pub rejected: usize,
    pub results: Vec<BatchItem>,
}

/// Report usage for many resources at once.
///
/// Every report is first checked against the documented grammar: if any breaks it, the answer is
/// a 422 naming each such field (`reports[3].month`) and nothing is stored. Then each report is
/// resolved and stored on its own: the answer is 200 with a result per report, each with the
/// status a single report would have had (a resource that is not the site's, a component its
/// offering lacks). With `Idempotency-Key: K`, report `i` uses the key `K#i`.
#[utoipa::path(
    tag = "usage",
    security(("bearer" = [])),
    request_body = UsageBatchRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of the batch safe: report `i` uses the key `K#i`")),
    responses(
        (status = 200, body = BatchResponse),
        BatchErrors,
    )
)]
#[post("/usage/batch")]
pub async fn report_usage_batch(
    identity: Authorized<UsageWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<UsageBatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let reports = body.into_inner().reports;
    let max = state.config.limits.max_batch;
    if reports.is_empty() || reports.len() > max {
        return Err(ApiError::field(
            "reports",
            format!("must hold 1 to {max} reports"),
        ));
    }
    // A report that breaks the documented grammar makes the whole batch a 422 naming every such
    // field (`reports[3].month`), and nothing is stored: per-report results are for what only
    // Puhuri's state decides (the resource, its offering's components).
    let now = state.clock.now();
    let mut parsed = Vec::with_capacity(reports.len());
    let mut malformed: Vec<FieldError> = Vec::new();
    for (index, Object(report)) in reports.iter().enumerate() {
        match parse(report, &format!("reports[{index}]."), now) {
            Ok(p) => parsed.push((p.sent_if_keyed(report, &req), p)),
            Err(errors) => malformed.extend(errors),
        }
    }
    if !malformed.is_empty() {
        return Err(ApiError::validation(malformed));
    }
    let key = super::submit::idempotency_key(req.headers())?;
    let mut results = Vec::with_capacity(reports.len());
    for (index, (sent, report)) in parsed.into_iter().enumerate() {
        let at = format!("reports[{index}].");
        let outcome = match prepare(&state, &identity, report, &at).await {
            Ok(op) => {
                let item_key = key.as_ref().map(|k| format!("{k}#{index}"));
                // Report `i` of a batch is bound to its key as a single report would be.
                super::submit::enqueue(&state, &identity, &op, item_key, "/v1/usage", &sent).await
            }
            Err(e) => Err(e),
        };
        results.push(match outcome {
            Ok((job, created)) => BatchItem {
                index,
                status: if created { 202 } else { 200 },
                job: Some(JobView::from(job)),
                error: None,
            },
            Err(e) => {
                use actix_web::ResponseError;
                BatchItem {
                    index,
                    status: e.status_code().as_u16(),
                    job: None,
                    error: Some(e.problem()),
                }
            }
        });
    }
    let accepted = results.iter().filter(|r| r.job.is_some()).count();
    Ok(HttpResponse::Ok().json(BatchResponse {
        accepted,
        rejected: results.len() - accepted,
        results,
    }))
}
