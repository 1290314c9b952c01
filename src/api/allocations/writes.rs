//! An allocator's writes, each a queued job delivered with the site's own identity: create an
//! allocation (an order followed until the resource exists), review or cancel an order as
//! consumer, rename / re-describe / set the end date of a resource, change its options or
//! limits, terminate it. Options and limits are checked against the offering's rules first
//! (`domain::allocation`): a wrong value is a 422 naming it, and nothing is stored.

use actix_web::{HttpRequest, HttpResponse, patch, post, web};
use serde::Deserialize;
use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::{bound_offering, bound_order, bound_project, bound_resource};
use crate::api::AppState;
use crate::api::body::{JsonBody, NoBody, Object, OptionalJsonBody, exact_object};
use crate::api::reads::uuid_in_path;
use crate::api::responses::{
    BodilessWriteErrors, KeyedWriteHeaders, PathlessWriteErrors, Queued, WriteErrors, WriteHeaders,
};
use crate::api::submit::{IDEMPOTENCY_KEY, submit};
use crate::auth::scoped::{AllocationsWrite, Authorized};
use crate::domain::WaldurUuid;
use crate::domain::allocation::{
    LimitRules, OptionRules, ResourceDescription, ResourceName, RuleViolation,
    check_standard_attributes, whole_limits,
};
use crate::domain::operations::{
    AllocationCreate, AllocationLimits, AllocationOptions, AllocationOrderAction,
    AllocationTerminate, AllocationUpdate, ConsumerAction, EndDate, Operation,
};
use crate::domain::text::Comment;
use crate::error::{ApiError, FieldError};
use crate::upstream::{PublicOffering, Resource};

/// A new allocation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "project_uuid": "b0000000000040008000000000000012",
    "offering_uuid": "0f000000000040008000000000000004",
    "plan_uuid": "91000000000040008000000000000004",
    "attributes": {"name": "Climate 2027", "is_industry": false, "is_training": false,
                   "is_commercial": false, "used_ai_tech": ["Deep Learning"]},
    "limits": {"cpu_k_hours": 100, "gpu_k_hours": 5, "gb_k_hours": 10},
    "approve_as_consumer": true
}))]
pub struct CreateAllocationRequest {
    /// The project (one the site allocates for).
    pub project_uuid: String,
    /// The offering (one the site may order from).
    pub offering_uuid: String,
    /// One of the offering's plans.
    pub plan_uuid: Option<String>,
    /// `name`, `description` and the offering's options (LUMI's: `is_industry`, `is_training`,
    /// `is_commercial`, `used_ai_tech`). Numbers go on exactly as written, so one a JSON value
    /// would change (`1e3`, `-0`, `1.50`, more digits than a double holds) is a 422 naming it and
    /// the spelling it would become.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Object<Box<RawValue>>>,
    /// Component type -> limit, for the offering's limit-type components (whole numbers, not
    /// negative; `2000.0` is 2000, a fraction is refused).
    #[schema(value_type = Option<Object>)]
    pub limits: Option<BTreeMap<String, Box<RawValue>>>,
    /// Approve the order as consumer when it waits for the consumer's review (default false).
    #[serde(default)]
    pub approve_as_consumer: bool,
    /// A comment for the reviewers (at most 2,000 characters).
    #[schema(max_length = 2000)]
    pub request_comment: Option<String>,
}

/// The 422 naming each violation.
fn refused(v: Vec<RuleViolation>) -> ApiError {
    ApiError::validation(
        v.into_iter()
            .map(|v| FieldError::new(v.field, v.message))
            .collect(),
    )
}

/// `value` with every number spelled one way, for the request's fingerprint: an
/// `Idempotency-Key` retried with `100.0` where it first said `100` is the same request. Only a
/// whole number a double holds exactly (below 2^53) changes spelling; other numbers keep their
/// own, so two different values never share a fingerprint. (The numbers were checked at the door:
/// kept as written, [`exact_object`], or whole limits.)
fn same_numbers(value: &Value) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < EXACT => json!(f as i64),
            _ => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(same_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), same_numbers(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn uuid_field(value: &str, field: &str) -> Result<WaldurUuid, ApiError> {
    WaldurUuid::parse(value).map_err(|m| ApiError::field(field, m))
}

/// A comment for Puhuri's reviewers: a [`Comment`] (at most 2,000 characters), refused in this
/// API's allocator wording.
fn comment_field(value: Option<String>, field: &str) -> Result<Option<Comment>, ApiError> {
    value
        .map(Comment::parse)
        .transpose()
        .map_err(|_| ApiError::field(field, "at most 2,000 characters"))
}

/// Create an allocation: a Create order in the offering for the project, followed until the
/// resource exists.
///
/// An `Idempotency-Key` is required. The job stays `queued`/`retrying` while the order waits
/// for reviews and is processed (it is approved as consumer when asked and allowed), and ends
/// `succeeded` with `order_uuid` and `resource_uuid` in its result once the resource exists; a
/// rejected, canceled or erred order fails the job with Waldur's reason.
#[utoipa::path(
    tag = "allocations",
    security(("bearer" = [])),
    params(KeyedWriteHeaders),
    request_body = CreateAllocationRequest,
    responses(
        Queued,
        PathlessWriteErrors<AllocationsWrite>,
    )
)]
#[post("/allocations")]
pub async fn create_allocation(
    identity: Authorized<AllocationsWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<CreateAllocationRequest>,
) -> Result<HttpResponse, ApiError> {
    if !req.headers().contains_key(&IDEMPOTENCY_KEY) {
        return Err(ApiError::field(
            "Idempotency-Key",
            "is required to create an allocation (a retry with the same key and body is the same job)",
        ));
    }
    let request = body.into_inner();
    let project = uuid_field(&request.project_uuid, "project_uuid")?;
    let offering_uuid = uuid_field(&request.offering_uuid, "offering_uuid")?;
    let plan = request
        .plan_uuid
        .as_deref()
        .map(|p| uuid_field(p, "plan_uuid"))
        .transpose()?;
    let request_comment = comment_field(request.request_comment, "request_comment")?;
    let attributes = match request.attributes {
        Some(Object(raw)) => exact_object("attributes", raw.get())?,
        None => Map::new(),
    };
    let limits = whole_limits("limits", &request.limits.unwrap_or_default()).map_err(refused)?;
    bound_project(&state, &identity, &project).await?;
    let offering = bound_offering(&state, &identity, &offering_uuid).await?;
    let mut found = check_standard_attributes("attributes", &attributes);
    found.extend(
        OptionRules::for_offering(&offering.fields.options)
            .check_attributes("attributes", &attributes),
    );
    let sent_limits = same_numbers(&Value::Object(limits.clone()));
    let limits = match limit_rules(&offering.fields).limits("limits", limits) {
        Ok(limits) if found.is_empty() => limits,
        Ok(_) => return Err(refused(found)),
        Err(more) => return Err(refused(found.into_iter().chain(more).collect())),
    };
    if let Some(plan) = &plan
        && !(offering.fields.plans.iter()).any(|p| p.uuid == plan.as_str())
    {
        return Err(ApiError::field(
            "plan_uuid",
            "is not a plan of the offering",
        ));
    }
    let sent = json!({
        "project_uuid": project.as_str(), "offering_uuid": offering_uuid.as_str(),
        "plan_uuid": plan.as_ref().map(|p| p.as_str()),
        "attributes": same_numbers(&Value::Object(attributes.clone())),
        "limits": sent_limits,
        "approve_as_consumer": request.approve_as_consumer, "request_comment": request_comment,
    });
    let op = Operation::AllocationCreate(AllocationCreate {
        identity: identity.site.identity.clone(),
        project_uuid: project,
        offering_uuid,
        plan_uuid: plan,
        attributes,
        limits,
        approve_as_consumer: request.approve_as_consumer,
        request_comment,
        marker: uuid::Uuid::new_v4().simple().to_string(),
    });
    submit(&state, &identity, &req, op, sent).await
}

/// A consumer's review comment.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ConsumerRejectRequest {
    /// Shown as the consumer's rejection comment (at most 2,000 characters).
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

async fn order_action(
    state: &AppState,
    identity: &Authorized<AllocationsWrite>,
    req: &HttpRequest,
    path: &str,
    action: ConsumerAction,
    comment: Option<Comment>,
) -> Result<HttpResponse, ApiError> {
    let order = uuid_in_path(path, "order")?;
    bound_order(state, identity, &order).await?;
    let sent = json!({ "action": action.name(), "comment": comment });
    let op = Operation::AllocationOrder(AllocationOrderAction {
        identity: identity.site.identity.clone(),
        order_uuid: order,
        action,
        comment,
    });
    submit(state, identity, req, op, sent).await
}

/// Approve an order as consumer (`approve_by_consumer`).
#[utoipa::path(tag = "allocations", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The order's uuid", example = "0d00000000004000800000000000000b"), WriteHeaders),
    responses(Queued, BodilessWriteErrors<AllocationsWrite>))]
#[post("/allocations/orders/{uuid}/approve")]
pub async fn approve_order(
    identity: Authorized<AllocationsWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    _body: NoBody,
) -> Result<HttpResponse, ApiError> {
    order_action(
        &state,
        &identity,
        &req,
        &path,
        ConsumerAction::Approve,
        None,
    )
    .await
}

/// Reject an order as consumer (`reject_by_consumer`).
#[utoipa::path(tag = "allocations", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The order's uuid", example = "0d00000000004000800000000000000c"), WriteHeaders),
    request_body(content = ConsumerRejectRequest, content_type = "application/json", example = json!({"comment": "not this year"})),
    responses(Queued, WriteErrors<AllocationsWrite>))]
#[post("/allocations/orders/{uuid}/reject")]
pub async fn reject_order(
    identity: Authorized<AllocationsWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: OptionalJsonBody<ConsumerRejectRequest>,
) -> Result<HttpResponse, ApiError> {
    let comment = comment_field(body.0.comment, "comment")?;
    order_action(
        &state,
        &identity,
        &req,
        &path,
        ConsumerAction::Reject,
        comment,
    )
    .await
}

/// Cancel an order (`cancel`; Basic and Support offerings only).
#[utoipa::path(tag = "allocations", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The order's uuid", example = "0d00000000004000800000000000000d"), WriteHeaders),
    responses(Queued, BodilessWriteErrors<AllocationsWrite>))]
#[post("/allocations/orders/{uuid}/cancel")]
pub async fn cancel_order(
    identity: Authorized<AllocationsWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    _body: NoBody,
) -> Result<HttpResponse, ApiError> {
    order_action(&state, &identity, &req, &path, ConsumerAction::Cancel, None).await
}

/// A resource's name, description and end date.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Climate 2027 (extended)", "end_date": "2027-12-31"}))]
pub struct UpdateAllocationRequest {
    /// 1-150 characters.
    #[schema(min_length = 1, max_length = 150)]
    pub name: Option<String>,
    /// At most 4,096 characters.
    #[schema(max_length = 4096)]
    pub description: Option<String>,
    /// `YYYY-MM-DD`, or `null` to clear it.
    #[serde(default, deserialize_with = "some_or_null")]
    #[schema(value_type = Option<String>, format = Date)]
    pub end_date: Option<Option<String>>,
}

fn some_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Rename, re-describe or change the end date of a resource (`PATCH marketplace-resources/`).
#[utoipa::path(tag = "allocations", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The resource's uuid", example = "7e00000000004000800000000000000a"), WriteHeaders),
    request_body = UpdateAllocationRequest,
    responses(Queued, WriteErrors<AllocationsWrite>))]
#[patch("/allocations/resources/{uuid}")]
pub async fn update_allocation(
    identity: Authorized<AllocationsWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody<UpdateAllocationRequest>,
) -> Result<HttpResponse, ApiError> {
    let resource = uuid_in_path(&path, "resource")?;
    let r = body.into_inner();
    let mut errors: Vec<FieldError> = Vec::new();
    let nothing = r.name.is_none() && r.description.is_none() && r.end_date.is_none();
    let sent_name = r.name.clone();
    let sent_description = r.description.clone();
    let name = (r.name.map(ResourceName::parse).transpose())
        .map_err(|m| errors.push(FieldError::new("name", m)))
        .ok()
        .flatten();
    let description = (r.description.map(ResourceDescription::parse).transpose())
        .map_err(|m| errors.push(FieldError::new("description", m)))
        .ok()
        .flatten();
    let end_date = r
        .end_date
        .map(|date| date.map(EndDate::parse).transpose())
        .transpose()
        .map_err(|m| errors.push(FieldError::new("end_date", m)))
        .ok()
        .flatten();
    if nothing {
        errors.push(FieldError::new(
            "name",
            "give a name, description or end_date",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    bound_resource(&state, &identity, &resource).await?;
    let sent = json!({"name": sent_name, "description": sent_description, "end_date": end_date});
    let op = Operation::AllocationUpdate(AllocationUpdate {
        identity: identity.site.identity.clone(),
        resource_uuid: resource,
        name,
        description,
        end_date,
    });
    submit(&state, &identity, &req, op, sent).await
}

/// New options for a resource.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"options": {"is_training": true, "used_ai_tech": ["Machine Learning"]}}))]
pub struct OptionsRequest {
    /// Option name -> value, by the offering's rules. Numbers go on exactly as written (a
    /// number a JSON value would change is a 422, as in an allocation's `attributes`).
    #[schema(value_type = Object)]
    pub options: Object<Box<RawValue>>,
}

/// Change a resource's options (`update_options`): applied at once, or, where the offering
/// creates orders on option changes, an order followed to its end. An empty `options` is a 422
/// (nothing to change).
#[utoipa::path(tag = "allocations", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The resource's uuid", example = "7e00000000004000800000000000000a"), WriteHeaders),
    request_body = OptionsRequest,
    responses(Queued, WriteErrors<AllocationsWrite>))]
#[post("/allocations/resources/{uuid}/options")]
pub async fn update_options(
    identity: Authorized<AllocationsWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody<OptionsRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = Change {
        field: "options",
        empty: "give at least one option to change",
        operation: |offering, identity, resource_uuid, options| {
            let found =
                OptionRules::for_offering(&offering.options).check_options("options", &options);
            if !found.is_empty() {
                return Err(found);
            }
            Ok(Operation::AllocationOptions(AllocationOptions {
                identity,
                resource_uuid,
                options,
            }))
        },
    };
    let Object(raw) = body.into_inner().options;
    let options = exact_object("options", raw.get())?;
    change.submit(&state, &identity, &req, &path, options).await
}

/// New limits for a resource.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"limits": {"cpu_k_hours": 200, "gpu_k_hours": 5, "gb_k_hours": 10}}))]
pub struct LimitsRequest {
    /// Component type -> limit (limit-type components, whole numbers, not negative; `2000.0` is
    /// 2000, a fraction is refused).
    #[schema(value_type = Object)]
    pub limits: BTreeMap<String, Box<RawValue>>,
}

/// Change a resource's limits (`update_limits`): an Update order, followed to its end.
///
/// Only the components named change: Waldur's `update_limits` replaces the whole set, so at
/// delivery the gateway reads the resource's current limits, puts the asked ones over them and
/// sends them all (`{"limits": {"cpu_k_hours": 200}}` keeps the other components' limits). An
/// empty `limits` is a 422 (nothing to change).
#[utoipa::path(tag = "allocations", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The resource's uuid", example = "7e00000000004000800000000000000a"), WriteHeaders),
    request_body = LimitsRequest,
    responses(Queued, WriteErrors<AllocationsWrite>))]
#[post("/allocations/resources/{uuid}/limits")]
pub async fn update_limits(
    identity: Authorized<AllocationsWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody<LimitsRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = Change {
        field: "limits",
        empty: "give at least one limit to change",
        operation: |offering, identity, resource_uuid, limits| {
            let limits = limit_rules(offering).limits("limits", limits)?;
            Ok(Operation::AllocationLimits(AllocationLimits {
                identity,
                resource_uuid,
                limits,
            }))
        },
    };
    let limits = whole_limits("limits", &body.into_inner().limits).map_err(refused)?;
    change.submit(&state, &identity, &req, &path, limits).await
}

/// A change of a resource's options or limits: what differs between the two. The steps are the
/// same: a non-empty map (422 `empty` otherwise), a resource of the site's binding, the
/// offering's rules (a 422 per violation), the request as sent (numbers as numbers) for the
/// Idempotency-Key, then the job.
struct Change {
    /// The body's field: `options` or `limits`.
    field: &'static str,
    empty: &'static str,
    operation: ChangeOperation,
}

/// The offering, identity name, resource uuid and the asked values -> the queued operation, or
/// what breaks the offering's rules.
type ChangeOperation = fn(
    &PublicOffering,
    String,
    WaldurUuid,
    Map<String, Value>,
) -> Result<Operation, Vec<RuleViolation>>;

impl Change {
    async fn submit(
        self,
        state: &AppState,
        identity: &Authorized<AllocationsWrite>,
        req: &HttpRequest,
        path: &str,
        values: Map<String, Value>,
    ) -> Result<HttpResponse, ApiError> {
        let resource = uuid_in_path(path, "resource")?;
        if values.is_empty() {
            return Err(ApiError::field(self.field, self.empty));
        }
        let r = bound_resource(state, identity, &resource).await?;
        let offering = offering_of(state, identity, &r).await?;
        let sent = json!({ self.field: same_numbers(&Value::Object(values.clone())) });
        let op = (self.operation)(&offering, identity.site.identity.clone(), resource, values)
            .map_err(refused)?;
        submit(state, identity, req, op, sent).await
    }
}

/// Terminate a resource: a Terminate order, followed until the resource is `Terminated`.
#[utoipa::path(tag = "allocations", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "The resource's uuid", example = "7e00000000004000800000000000000a"), WriteHeaders),
    responses(Queued, BodilessWriteErrors<AllocationsWrite>))]
#[post("/allocations/resources/{uuid}/terminate")]
pub async fn terminate(
    identity: Authorized<AllocationsWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    _body: NoBody,
) -> Result<HttpResponse, ApiError> {
    let resource = uuid_in_path(&path, "resource")?;
    bound_resource(&state, &identity, &resource).await?;
    let op = Operation::AllocationTerminate(AllocationTerminate {
        identity: identity.site.identity.clone(),
        resource_uuid: resource,
    });
    submit(&state, &identity, &req, op, json!({})).await
}

/// The limit-type components of the offering.
fn limit_rules(offering: &PublicOffering) -> LimitRules {
    LimitRules::from_types(
        (offering.components.iter())
            .filter(|c| !c.type_.is_empty())
            .map(|c| (c.type_.as_str(), c.billing_type.as_deref())),
    )
}

/// The public offering of a resource (its rules), read with the site's identity.
async fn offering_of(
    state: &AppState,
    identity: &Authorized<AllocationsWrite>,
    resource: &Resource,
) -> Result<PublicOffering, ApiError> {
    let uuid = &resource.offering_uuid;
    let client = super::client(state, identity)?;
    client
        .get(&format!("marketplace-public-offerings/{uuid}/"), &[])
        .await
        .map_err(crate::api::submit::lookup_failed)
}

#[cfg(test)]
mod tests {
    use super::same_numbers;
    use serde_json::{Value, json};

    fn text(json: &str) -> String {
        same_numbers(&serde_json::from_str::<Value>(json).unwrap()).to_string()
    }

    #[test]
    fn a_fingerprint_spells_a_whole_number_one_way_and_keeps_different_values_apart() {
        assert_eq!(
            text(r#"{"a": 100.0, "b": [-0.0]}"#),
            text(r#"{"a": 100, "b": [0]}"#)
        );
        assert_eq!(text("1.5"), "1.5");
        // above 2^53 a double no longer tells neighbours apart: each keeps its own spelling
        assert_ne!(text("9007199254740993"), text("9007199254740992"));
        assert_ne!(text("12345678901234567891"), text("12345678901234567890"));
        assert_eq!(same_numbers(&json!("100")), json!("100"));
    }
}
