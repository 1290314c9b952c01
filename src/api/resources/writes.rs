//! The queued writes on a resource: backend id, state, report and limits.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::body::{JsonBody, Object};
use actix_web::{HttpRequest, HttpResponse, post, put, web};
use serde::Deserialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::site_resource;
use crate::api::AppState;
use crate::api::responses::{Queued, WriteErrors, WriteHeaders};
use crate::api::submit::{lookup_failed, refuse_unknown_components, resource_uuid, submit};
use crate::auth::scoped::{Authorized, ResourcesWrite};
use crate::domain::operations::{
    Operation, Report, ReportSection, ResourceBackendId, ResourceLimits, ResourceReport,
    ResourceState, SettableState,
};
use crate::domain::usage::{check_limit_count, whole_limit_text};
use crate::domain::{BackendId, ComponentType};
use crate::error::{ApiError, FieldError};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"backend_id": "project_465000003"}))]
pub struct BackendIdRequest {
    /// The site's own id for the resource (1–255 characters, no control characters).
    #[schema(min_length = 1, max_length = 255)]
    pub backend_id: String,
}

/// Set the site's own id for a resource (`set_backend_id`).
///
/// After delivery the resource can be named `backend_id:<id>` in paths and usage reports.
#[utoipa::path(
    tag = "resources",
    security(("bearer" = [])),
    params(("resource" = String, Path, description = "The resource's uuid, or `backend_id:<id>`", example = "7e000000000040008000000000000003"), WriteHeaders),
    request_body = BackendIdRequest,
    responses(
        Queued,
        WriteErrors<ResourcesWrite>,
    )
)]
#[post("/resources/{resource}/backend-id")]
pub async fn set_backend_id(
    identity: Authorized<ResourcesWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody<BackendIdRequest>,
) -> Result<HttpResponse, ApiError> {
    let backend_id =
        BackendId::parse(&body.backend_id).map_err(|m| ApiError::field("backend_id", m))?;
    let sent = serde_json::json!({"backend_id": backend_id.as_str()});
    let resource = site_resource(&state, &identity, &path).await?;
    // Lookups by the old or the new id must not be answered from the cache from now on.
    state
        .directory
        .forget_backend_id(&resource.uuid, Some(backend_id.as_str()));
    let op = Operation::ResourceBackendId(ResourceBackendId {
        resource_uuid: resource_uuid(&resource)?,
        backend_id,
    });
    submit(&state, &identity, &req, op, sent).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"state": "ok"}))]
pub struct StateRequest {
    /// `ok` (Waldur's `set_as_ok`; clears the error) or `erred` (`set_as_erred`).
    #[schema(value_type = crate::api::names::SettableResourceState)]
    pub state: String,
    /// With `erred`: why (at most 2,000 characters), stored as the resource's `error_message`.
    #[schema(max_length = 2000)]
    pub message: Option<String>,
}

/// Set a resource OK or erred.
#[utoipa::path(
    tag = "resources",
    security(("bearer" = [])),
    params(("resource" = String, Path, description = "The resource's uuid, or `backend_id:<id>`", example = "7e000000000040008000000000000004"), WriteHeaders),
    request_body = StateRequest,
    responses(
        Queued,
        WriteErrors<ResourcesWrite>,
    )
)]
#[post("/resources/{resource}/state")]
pub async fn set_state(
    identity: Authorized<ResourcesWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody<StateRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let mut errors = Vec::new();
    let target = SettableState::parse(&request.state)
        .map_err(|m| errors.push(FieldError::new("state", m)))
        .ok();
    let message = ResourceState::message(target, request.message)
        .map_err(|m| errors.push(FieldError::new("message", m)))
        .ok();
    let (Some(target), Some(message), true) = (target, message, errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let sent = serde_json::json!({"state": request.state, "message": message});
    let resource = site_resource(&state, &identity, &path).await?;
    let op = Operation::ResourceState(ResourceState {
        resource_uuid: resource_uuid(&resource)?,
        state: target,
        message,
    });
    submit(&state, &identity, &req, op, sent).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"report": [{"header": "Access", "body": "ssh lumi.csc.fi; project_465000123"}]}))]
pub struct ReportRequest {
    /// Replaces the whole report. 1 to 50 sections (Waldur refuses an empty report); a header of
    /// 1–255 characters and a body of 1–20,000 characters each.
    #[schema(value_type = Vec<ReportSectionRequest>)]
    pub report: Vec<Object<ReportSectionRequest>>,
}

/// One section of a resource's report, as the customer sees it in Puhuri.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSectionRequest {
    /// The section's title: 1–255 characters, not only spaces.
    #[schema(min_length = 1, max_length = 255)]
    pub header: String,
    /// The section's text: 1–20,000 characters, not only spaces.
    #[schema(min_length = 1, max_length = 20000)]
    pub body: String,
}

/// Replace a resource's report (`submit_report`): what the customer sees about the allocation.
#[utoipa::path(
    tag = "resources",
    security(("bearer" = [])),
    params(("resource" = String, Path, description = "The resource's uuid, or `backend_id:<id>`", example = "7e000000000040008000000000000001"), WriteHeaders),
    request_body = ReportRequest,
    responses(
        Queued,
        WriteErrors<ResourcesWrite>,
    )
)]
#[put("/resources/{resource}/report")]
pub async fn submit_report(
    identity: Authorized<ResourcesWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody<ReportRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let mut errors = Vec::new();
    if let Err(m) = Report::check_count(request.report.len()) {
        errors.push(FieldError::new("report", m));
    }
    let mut sections = Vec::with_capacity(request.report.len());
    for (i, Object(section)) in request.report.into_iter().enumerate() {
        match ReportSection::parse(section.header, section.body) {
            Ok(s) => sections.push(s),
            Err(wrong) => errors.extend(
                wrong
                    .into_iter()
                    .map(|(part, m)| FieldError::new(format!("report[{i}].{part}"), m)),
            ),
        }
    }
    let report = match Report::parse(sections) {
        Ok(report) if errors.is_empty() => report,
        _ => return Err(ApiError::validation(errors)),
    };
    let sent = serde_json::json!({
        "report": report.sections().iter().map(|s| [s.header(), s.body()]).collect::<Vec<_>>()
    });
    let resource = site_resource(&state, &identity, &path).await?;
    let op = Operation::ResourceReport(ResourceReport {
        resource_uuid: resource_uuid(&resource)?,
        report,
    });
    submit(&state, &identity, &req, op, sent).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"limits": {"cpu_k_hours": 2000, "gpu_k_hours": 100}}))]
pub struct LimitsRequest {
    /// Component type → a whole number ≥ 0. Each type must be a component of the offering.
    #[schema(value_type = crate::api::component_maps::ComponentLimits)]
    pub limits: BTreeMap<String, Box<RawValue>>,
}

/// Set a resource's limits (`set_limits`; no order is created).
#[utoipa::path(
    tag = "resources",
    security(("bearer" = [])),
    params(("resource" = String, Path, description = "The resource's uuid, or `backend_id:<id>`", example = "7e000000000040008000000000000001"), WriteHeaders),
    request_body = LimitsRequest,
    responses(
        Queued,
        WriteErrors<ResourcesWrite>,
    )
)]
#[put("/resources/{resource}/limits")]
pub async fn set_limits(
    identity: Authorized<ResourcesWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody<LimitsRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let mut errors = Vec::new();
    if let Err(m) = check_limit_count(request.limits.len()) {
        errors.push(FieldError::new("limits", m));
    }
    let mut limits = BTreeMap::new();
    for (type_, value) in &request.limits {
        match whole_limit_text(value.get()) {
            Ok(n) => {
                limits.insert(type_.as_str(), n);
            }
            Err(m) => errors.push(FieldError::new(format!("limits.{type_}"), m)),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let resource = site_resource(&state, &identity, &path).await?;
    let offering = state
        .directory
        .offering(&resource.offering_uuid)
        .await
        .map_err(lookup_failed)?;
    let known: BTreeSet<&str> = offering
        .components
        .iter()
        .map(|c| c.type_.as_str())
        .collect();
    refuse_unknown_components(limits.keys().copied(), &known, "component", |t| {
        format!("limits.{t}")
    })?;
    let sent = serde_json::json!({ "limits": limits });
    // Each type is one of the offering's; one outside the component grammar is refused as it
    // would be in a usage report.
    let mut typed = BTreeMap::new();
    for (type_, n) in limits {
        let t = ComponentType::parse(type_)
            .map_err(|m| ApiError::field(format!("limits.{type_}"), m))?;
        typed.insert(t, n);
    }
    let op = Operation::ResourceLimits(ResourceLimits {
        resource_uuid: resource_uuid(&resource)?,
        limits: typed,
    });
    submit(&state, &identity, &req, op, sent).await
}
