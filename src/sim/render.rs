//! JSON shapes of the objects, as Waldur's serializers print them.
//!
//! Kept apart from the handlers so every endpoint (and the control API's state view) renders an
//! object the same way. Field names and types follow the 8.0.5 OpenAPI schema (checked by the
//! schema test in `tests/sim.rs`); relation URLs are absolute, built from the request's host
//! (`base` is e.g. `http://127.0.0.1:8080/api/`).

use super::state::*;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn ts_opt(t: Option<DateTime<Utc>>) -> Value {
    t.map(|t| Value::String(ts(t))).unwrap_or(Value::Null)
}

pub fn date_opt(d: Option<NaiveDate>) -> Value {
    d.map(|d| Value::String(d.to_string()))
        .unwrap_or(Value::Null)
}

/// A decimal as Waldur's `DecimalField(decimal_places=2)` prints it: `"12.50"`.
pub fn dec2(d: Decimal) -> String {
    let mut x = d.round_dp(2);
    x.rescale(2);
    x.to_string()
}

pub fn customer_fields(w: &World, base: &str, uuid: &str) -> (String, String, String) {
    let c = w.customer(uuid);
    (
        format!("{base}customers/{uuid}/"),
        c.map(|c| c.name.clone()).unwrap_or_default(),
        c.map(|c| c.slug.clone()).unwrap_or_default(),
    )
}

pub fn user(w: &World, base: &str, u: &User) -> Value {
    let _ = w;
    json!({
        "url": format!("{base}users/{}/", u.uuid),
        "uuid": u.uuid,
        "username": u.username,
        "slug": u.username.replace(['.', '@', '+'], "-"),
        "full_name": u.full_name(),
        "native_name": "",
        "first_name": u.first_name,
        "last_name": u.last_name,
        "job_title": "",
        "email": u.email,
        "phone_number": "",
        "organization": u.organization,
        "civil_number": null,
        "description": "",
        "is_staff": false,
        "is_active": u.is_active,
        "is_support": false,
        "registration_method": "default",
        "date_joined": ts(u.date_joined),
        "agreement_date": ts(u.date_joined),
        "preferred_language": "",
        "affiliations": [],
        "identity_provider_name": "",
        "identity_provider_label": "",
        "identity_provider_management_url": "",
        "identity_provider_fields": [],
        "image": null,
        "identity_source": "",
    })
}

pub fn key(base: &str, k: &SshKey) -> Value {
    json!({
        "url": format!("{base}keys/{}/", k.uuid),
        "uuid": k.uuid,
        "name": k.name,
        "public_key": k.public_key,
        "fingerprint_md5": k.fingerprint_md5,
        "fingerprint_sha256": k.fingerprint_sha256,
        "fingerprint_sha512": k.fingerprint_sha512,
        "user_uuid": k.user,
        "is_shared": k.is_shared,
        "type": k.type_,
    })
}

pub fn component(c: &Component) -> Value {
    json!({
        "uuid": c.uuid,
        "billing_type": c.billing_type,
        "type": c.type_,
        "name": c.name,
        "description": c.description,
        "measured_unit": c.measured_unit,
        "unit_factor": 1,
        "limit_period": null,
        "limit_amount": null,
        "article_code": "",
        "max_value": null,
        "min_value": null,
        "max_available_limit": null,
        "is_boolean": false,
        "default_limit": null,
        "factor": null,
        "is_builtin": false,
        "is_prepaid": false,
        "overage_component": null,
        "min_prepaid_duration": null,
        "max_prepaid_duration": null,
    })
}

/// A plan; `public` selects the public-offering URL form.
pub fn plan(w: &World, base: &str, o: &Offering, p: &Plan, public: bool) -> Value {
    let url = if public {
        format!(
            "{base}marketplace-public-offerings/{}/plans/{}/",
            o.uuid, p.uuid
        )
    } else {
        format!("{base}marketplace-plans/{}/", p.uuid)
    };
    let components: Vec<Value> = o
        .components
        .iter()
        .map(|c| {
            let price = p
                .prices
                .iter()
                .find(|(t, _)| *t == c.type_)
                .map(|(_, d)| *d)
                .unwrap_or_default();
            json!({
                "type": c.type_,
                "name": c.name,
                "measured_unit": c.measured_unit,
                "amount": 0,
                "price": dec2(price),
                "future_price": null,
                "discount_threshold": null,
                "discount_rate": null,
            })
        })
        .collect();
    let prices: serde_json::Map<String, Value> = p
        .prices
        .iter()
        .map(|(t, d)| {
            (
                t.clone(),
                json!(d.to_string().parse::<f64>().unwrap_or(0.0)),
            )
        })
        .collect();
    let resources_count = w
        .resources
        .iter()
        .filter(|r| r.plan.as_deref() == Some(p.uuid.as_str()) && r.state != "Terminated")
        .count();
    json!({
        "url": url,
        "uuid": p.uuid,
        "name": p.name,
        "description": p.description,
        "article_code": "",
        "max_amount": null,
        "archived": false,
        "is_active": true,
        "unit_price": "0.00",
        "unit": "month",
        "init_price": 0.0,
        "switch_price": 0.0,
        "backend_id": "",
        "organization_groups": [],
        "components": components,
        "prices": prices,
        "future_prices": {},
        "quotas": {},
        "resources_count": resources_count,
        "plan_type": "usage-based",
        "minimal_price": 0.0,
    })
}

pub fn offering(w: &World, base: &str, o: &Offering, public: bool) -> Value {
    let (curl, cname, _) = customer_fields(w, base, &o.customer);
    let url = if public {
        format!("{base}marketplace-public-offerings/{}/", o.uuid)
    } else {
        format!("{base}marketplace-provider-offerings/{}/", o.uuid)
    };
    let order_count = w.orders.iter().filter(|x| x.offering == o.uuid).count();
    let mut v = json!({
        "url": url,
        "uuid": o.uuid,
        "created": ts(o.created),
        "name": o.name,
        "slug": o.slug,
        "description": o.description,
        "full_description": "",
        "endpoints": [],
        "roles": [],
        "customer": curl,
        "customer_uuid": o.customer,
        "customer_name": cname,
        "project": null,
        "project_uuid": null,
        "project_name": null,
        "category": format!("{base}marketplace-categories/{CATEGORY_UUID}/"),
        "category_uuid": CATEGORY_UUID,
        "category_title": "HPC",
        "attributes": {},
        "options": if o.published_options.is_null() {
            json!({"order": [], "options": {}})
        } else {
            o.published_options.clone()
        },
        "resource_options": {"order": [], "options": {}},
    });
    merge(
        &mut v,
        json!({
            "components": o.components.iter().map(component).collect::<Vec<_>>(),
            "plugin_options": if o.option_change_orders {
                json!({
                    "service_provider_can_create_offering_user": o.sp_can_create_offering_user,
                    "create_orders_on_resource_option_change": true,
                })
            } else {
                json!({"service_provider_can_create_offering_user": o.sp_can_create_offering_user})
            },
            "state": o.state,
            "vendor_details": "",
            "getting_started": "",
            "integration_guide": "",
            "thumbnail": null,
            "order_count": order_count,
            "plans": o.plans.iter().map(|p| plan(w, base, o, p, public)).collect::<Vec<_>>(),
            "screenshots": [],
            "type": o.type_,
            "shared": true,
            "billable": true,
            "scope_uuid": null,
            "scope_name": null,
            "scope_state": null,
            "scope_error_message": null,
            "files": [],
            "quotas": [],
            "paused_reason": "",
            "datacite_doi": "",
            "citation_count": 0,
            "latitude": null,
            "longitude": null,
            "country": "",
            "backend_id": "",
            "organization_groups": [],
            "tags": [],
            "image": null,
            "parent_description": null,
            "parent_uuid": null,
            "parent_name": null,
            "has_compliance_requirements": false,
            "billing_type_classification": "usage",
        }),
    );
    if public {
        v["user_has_consent"] = json!(true);
        v["is_accessible"] = json!(true);
        v["promotion_campaigns"] = json!([]);
    } else {
        v["secret_options"] = json!({});
        v["service_attributes"] = json!({});
    }
    v
}

/// The category every demo offering belongs to.
pub const CATEGORY_UUID: &str = "ca000000000040008000000000000001";

/// Fields that `Resource` and `OrderDetails` share (offering, provider, plan, project).
fn offering_and_plan(w: &World, base: &str, offering: &str, plan: Option<&str>, v: &mut Value) {
    let o = w.offering(offering);
    let (_, pname, pslug) = customer_fields(w, base, o.map(|o| o.customer.as_str()).unwrap_or(""));
    let p = plan.and_then(|p| w.plan(offering, p));
    let extra = json!({
        "offering": format!("{base}marketplace-public-offerings/{offering}/"),
        "offering_name": o.map(|o| o.name.clone()).unwrap_or_default(),
        "offering_uuid": offering,
        "offering_description": o.map(|o| o.description.clone()).unwrap_or_default(),
        "offering_type": o.map(|o| o.type_.clone()).unwrap_or_default(),
        "offering_shared": true,
        "offering_billable": true,
        "offering_plugin_options": {},
        "provider_name": pname,
        "provider_uuid": o.map(|o| o.customer.clone()).unwrap_or_default(),
        "provider_slug": pslug,
        "category_title": "HPC",
        "category_uuid": CATEGORY_UUID,
        "plan": match p { Some(p) => json!(format!("{base}marketplace-public-offerings/{offering}/plans/{}/", p.uuid)), None => Value::Null },
        "plan_unit": if p.is_some() { json!("month") } else { Value::Null },
        "plan_name": p.map(|p| p.name.clone()),
        "plan_uuid": p.map(|p| p.uuid.clone()),
        "plan_description": p.map(|p| p.description.clone()),
    });
    merge(v, extra);
}

fn project_fields(w: &World, project: &str, v: &mut Value) {
    let p = w.project(project);
    let customer = p.map(|p| p.customer.clone()).unwrap_or_default();
    let c = w.customer(&customer);
    merge(
        v,
        json!({
            "project_uuid": project,
            "project_name": p.map(|p| p.name.clone()).unwrap_or_default(),
            "project_description": p.map(|p| p.description.clone()).unwrap_or_default(),
            "project_slug": p.map(|p| p.slug.clone()).unwrap_or_default(),
            "customer_uuid": customer,
            "customer_name": c.map(|c| c.name.clone()).unwrap_or_default(),
            "customer_slug": c.map(|c| c.slug.clone()).unwrap_or_default(),
        }),
    );
}

fn merge(v: &mut Value, extra: Value) {
    if let (Value::Object(a), Value::Object(b)) = (v, extra) {
        a.extend(b);
    }
}

pub fn order(w: &World, base: &str, o: &Order) -> Value {
    let r = w.resource(&o.resource);
    let creator = w.user(&o.created_by);
    let reviewer = o.provider_reviewed_by.as_deref().and_then(|u| w.user(u));
    // `resource_uuid` is the plugin object's uuid; the simulator models no plugin objects (like
    // `Marketplace.Basic`), so it is null and the resource is only `marketplace_resource_uuid`.
    let terminate = o.type_ == "Terminate";
    let mut v = json!({
        "attributes": o.attributes,
        "limits": o.limits,
        "uuid": o.uuid,
        "created": ts(o.created),
        "modified": ts(o.modified),
        "resource_uuid": null,
        "resource_type": null,
        "resource_name": r.map(|r| r.name.clone()).unwrap_or_default(),
        "cost": if terminate { Value::Null } else { json!("0.00") },
        "state": o.state,
        "output": "",
        "marketplace_resource_uuid": o.resource,
        "error_message": o.error_message,
        "error_traceback": o.error_traceback,
        "callback_url": null,
        "completed_at": ts_opt(o.completed_at),
        "request_comment": o.request_comment,
        "attachment": null,
        "type": o.type_,
        "start_date": null,
        "url": format!("{base}marketplace-orders/{}/", o.uuid),
    });
    merge(
        &mut v,
        json!({
            "consumer_reviewed_by": null,
            "consumer_reviewed_by_full_name": null,
            "consumer_reviewed_by_username": null,
            "consumer_reviewed_at": null,
            "provider_reviewed_by": reviewer.map(|u| format!("{base}users/{}/", u.uuid)),
            "provider_reviewed_by_full_name": reviewer.map(|u| u.full_name()),
            "provider_reviewed_by_username": reviewer.map(|u| u.username.clone()),
            "provider_reviewed_at": ts_opt(o.provider_reviewed_at),
            "created_by_username": creator.map(|u| u.username.clone()).unwrap_or_default(),
            "created_by_full_name": creator.map(|u| u.full_name()).unwrap_or_default(),
            "created_by_civil_number": null,
            "created_by_email": creator.map(|u| u.email.clone()),
            "created_by_organization": creator.map(|u| u.organization.clone()),
            "created_by_organization_registry_code": null,
            "old_plan_name": null,
            "new_plan_name": null,
            "old_plan_uuid": null,
            "new_plan_uuid": null,
            "old_cost_estimate": 0.0,
            "new_cost_estimate": null,
            "can_terminate": false,
            "fixed_price": 0.0,
            "activation_price": 0.0,
            "termination_comment": null,
            "backend_id": o.backend_id,
            "order_subtype": null,
            "provider_message": "",
            "consumer_message": "",
            "consumer_rejection_comment": o.consumer_rejection_comment,
            "provider_rejection_comment": o.provider_rejection_comment,
            "issue": null,
        }),
    );
    offering_and_plan(w, base, &o.offering, o.plan.as_deref(), &mut v);
    project_fields(w, &o.project, &mut v);
    if terminate && let Some(m) = v.as_object_mut() {
        for key in ["plan_uuid", "plan_name", "plan_description", "plan_unit"] {
            m.remove(key);
        }
    }
    v
}

pub fn resource(w: &World, base: &str, r: &Resource) -> Value {
    let o = w.offering(&r.offering);
    let report: Vec<Value> = r
        .report
        .iter()
        .map(|(h, b)| json!({"header": h, "body": b}))
        .collect();
    let mut v = json!({
        "attributes": r.attributes,
        "limits": r.limits,
        "uuid": r.uuid,
        "created": ts(r.created),
        "modified": ts(r.modified),
        "url": format!("{base}marketplace-resources/{}/", r.uuid),
        "description": r.description,
        "state": r.state,
        "resource_uuid": null,
        "backend_id": r.backend_id,
        "effective_id": "",
        "resource_type": null,
        "project": format!("{base}projects/{}/", r.project),
        "project_end_date": null,
        "offering_slug": o.map(|o| o.slug.clone()).unwrap_or_default(),
        "backend_metadata": {},
        "is_usage_based": true,
        "is_limit_based": false,
        "name": r.name,
        "slug": r.slug,
        "current_usages": r.current_usages,
        "can_terminate": matches!(r.state.as_str(), "OK" | "Erred"),
    });
    merge(
        &mut v,
        json!({
            "report": report,
            "end_date": date_opt(r.end_date),
            "end_date_requested_by": null,
            "username": null,
            "limit_usage": {},
            "downscaled": false,
            "restrict_member_access": false,
            "paused": false,
            "endpoints": [],
            "error_message": r.error_message,
            "error_traceback": r.error_traceback,
            "options": r.options,
            "available_actions": [],
            "last_sync": ts(r.modified),
            "order_in_progress": w.order_in_progress(&r.uuid).map(|x| order(w, base, x)),
            "creation_order": w.creation_order(&r.uuid).map(|x| order(w, base, x)),
            "user_requires_reconsent": false,
            "renewal_date": null,
            "offering_state": o.map(|o| o.state.clone()).unwrap_or_default(),
            "offering_components": o.map(|o| o.components.iter().map(component).collect::<Vec<_>>()).unwrap_or_default(),
        }),
    );
    offering_and_plan(w, base, &r.offering, r.plan.as_deref(), &mut v);
    project_fields(w, &r.project, &mut v);
    v
}

pub fn resource_update(r: &Resource) -> Value {
    json!({"name": r.name, "description": r.description, "end_date": date_opt(r.end_date)})
}

pub fn usage(w: &World, u: &Usage) -> Value {
    let r = w.resource(&u.resource);
    let comp = r
        .and_then(|r| w.offering(&r.offering))
        .and_then(|o| o.components.iter().find(|c| c.type_ == u.type_));
    let mut v = json!({
        "uuid": u.uuid,
        "created": ts(u.created),
        "description": u.description,
        "type": u.type_,
        "name": comp.map(|c| c.name.clone()).unwrap_or_default(),
        "measured_unit": comp.map(|c| c.measured_unit.clone()).unwrap_or_default(),
        "usage": dec2(u.usage),
        "date": ts(u.date),
        "recurring": u.recurring,
        "resource_name": r.map(|r| r.name.clone()).unwrap_or_default(),
        "resource_uuid": u.resource,
        "offering_name": r.and_then(|r| w.offering(&r.offering)).map(|o| o.name.clone()).unwrap_or_default(),
        "offering_uuid": r.map(|r| r.offering.clone()).unwrap_or_default(),
        "billing_period": u.billing_period.to_string(),
        "modified_by": null,
    });
    if let Some(r) = r {
        project_fields(w, &r.project, &mut v);
        if let Value::Object(m) = &mut v {
            m.remove("project_description");
            m.remove("project_slug");
            m.remove("customer_slug");
        }
    }
    v
}

/// `BaseComponentUsage` (inside plan periods).
pub fn base_usage(w: &World, u: &Usage) -> Value {
    let full = usage(w, u);
    let mut v = json!({});
    for k in [
        "uuid",
        "created",
        "description",
        "type",
        "name",
        "measured_unit",
        "usage",
        "date",
        "recurring",
    ] {
        v[k] = full[k].clone();
    }
    v
}

pub fn plan_period(w: &World, p: &PlanPeriod, current_month: NaiveDate) -> Value {
    let r = w.resource(&p.resource);
    let plan = r.and_then(|r| w.plan(&r.offering, &p.plan));
    let components: Vec<Value> = w
        .usages
        .iter()
        .filter(|u| u.plan_period == p.uuid && u.billing_period == current_month)
        .map(|u| base_usage(w, u))
        .collect();
    json!({
        "uuid": p.uuid,
        "plan_name": plan.map(|p| p.name.clone()).unwrap_or_default(),
        "plan_uuid": p.plan,
        "start": ts(p.start),
        "end": ts_opt(p.end),
        "components": components,
    })
}

pub use super::render_people::*;
