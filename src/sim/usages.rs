//! Component usage: listing and `set_usage`, the upsert at the heart of usage reporting.
//!
//! `set_usage` stores one record per (resource, component, billing month) and REPLACES its amount,
//! as Waldur does. Validation follows Waldur's serializer, field errors first (`usages[i].amount`,
//! `resource`), then object validation: resource state, unknown components, closed period.
//!
//! Billing months: `date` in the body (default: now) selects the month. The current and the
//! previous calendar month are open; older months are closed (`{"plan_period":["Billing period is
//! closed."]}`); a month after the current one is refused (`{"date":[...]}`). The control API can
//! close or reopen any month (`POST /__sim/periods/close`, `/open`).

use super::render;
use super::state::*;
use super::{Filters, Reply, Req, Res};
use actix_web::http::{Method, StatusCode};
use chrono::{DateTime, NaiveDate};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use std::str::FromStr;

pub fn list(w: &World, r: &Req) -> Res {
    r.allow(&[Method::GET])?;
    let mut f = Filters::new(r);
    let resources = f.uuids("resource_uuid");
    let offerings = f.uuids("offering_uuid");
    f.check()?;
    let types = r.q_all("type");
    let period = match r.q("billing_period") {
        None | Some("") => None,
        Some(s) => match parse_date(s) {
            Some(d) => Some(month_start(d)),
            None => {
                return Err(Reply::field("billing_period", "Enter a valid date."));
            }
        },
    };
    let mut found: Vec<&Usage> = w
        .usages
        .iter()
        .filter(|u| {
            w.resource(&u.resource)
                .is_some_and(|x| w.sees_resource(&r.caller, x))
        })
        .filter(|u| resources.is_empty() || resources.contains(&u.resource))
        .filter(|u| {
            offerings.is_empty()
                || w.resource(&u.resource)
                    .is_some_and(|x| offerings.contains(&x.offering))
        })
        .filter(|u| types.is_empty() || types.contains(&u.type_.as_str()))
        .filter(|u| period.is_none_or(|p| u.billing_period == p))
        .collect();
    super::order_by_created(r, &mut found, |x| x.created);
    r.list(found.into_iter().map(|u| render::usage(w, u)).collect())
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|d| d.date_naive()))
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
                .ok()
                .map(|d| d.date())
        })
}

/// DRF `DecimalField(max_digits=20, decimal_places=2)`.
fn parse_amount(v: Option<&Value>) -> Result<Decimal, &'static str> {
    let s = match v {
        None => return Err("This field is required."),
        Some(Value::Null) => return Err("This field may not be null."),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err("A valid number is required."),
    };
    let d = Decimal::from_str(&s)
        .or_else(|_| Decimal::from_scientific(&s))
        .map_err(|_| "A valid number is required.")?;
    let scale = d.scale() as usize;
    let digits = d.mantissa().unsigned_abs().to_string().len().max(scale);
    if scale > 2 {
        return Err("Ensure that there are no more than 2 decimal places.");
    }
    if digits > 20 {
        return Err("Ensure that there are no more than 20 digits in total.");
    }
    if digits - scale > 18 {
        return Err("Ensure that there are no more than 18 digits before the decimal point.");
    }
    // Negative amounts are accepted and stored, as Waldur does: only the gateway refuses them.
    Ok(d)
}

struct Item {
    type_: String,
    amount: Decimal,
    description: String,
    recurring: bool,
}

pub fn set_usage(w: &mut World, r: &Req) -> Res {
    r.allow(&[Method::POST])?;
    let body = r.json()?;
    let mut errors = Map::new();

    // Field validation: usages.
    let mut items = vec![];
    match body.get("usages") {
        None => {
            errors.insert("usages".into(), json!(["This field is required."]));
        }
        Some(Value::Array(list)) => {
            let mut item_errors = vec![];
            for v in list {
                let mut e = Map::new();
                let Some(obj) = v.as_object() else {
                    item_errors.push(json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}));
                    continue;
                };
                let type_ = match obj.get("type") {
                    Some(Value::String(t)) if !t.is_empty() => t.clone(),
                    Some(Value::String(_)) => {
                        e.insert("type".into(), json!(["This field may not be blank."]));
                        String::new()
                    }
                    None => {
                        e.insert("type".into(), json!(["This field is required."]));
                        String::new()
                    }
                    Some(_) => {
                        e.insert("type".into(), json!(["Not a valid string."]));
                        String::new()
                    }
                };
                let amount = match parse_amount(obj.get("amount")) {
                    Ok(d) => d,
                    Err(msg) => {
                        e.insert("amount".into(), json!([msg]));
                        Decimal::ZERO
                    }
                };
                let description = obj
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let recurring = obj
                    .get("recurring")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    || obj.get("missing_usage_policy").and_then(Value::as_str) == Some("reuse");
                item_errors.push(Value::Object(e));
                items.push(Item {
                    type_,
                    amount,
                    description,
                    recurring,
                });
            }
            if item_errors
                .iter()
                .any(|e| e.as_object().is_some_and(|m| !m.is_empty()))
            {
                errors.insert("usages".into(), Value::Array(item_errors));
            }
        }
        Some(_) => {
            errors.insert(
                "usages".into(),
                json!({"non_field_errors": ["Expected a list of items but got type \"dict\"."]}),
            );
        }
    }

    // Field validation: resource / plan_period (uuids).
    let mut resource: Option<String> = None;
    let mut plan_period: Option<String> = None;
    match body.get("resource") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            // Any existing resource passes field validation (Waldur's queryset is every
            // resource); whether the caller may report on it is checked after validation.
            let id = s.replace('-', "").to_lowercase();
            if w.resource(&id).is_some() {
                resource = Some(id);
            } else {
                errors.insert(
                    "resource".into(),
                    json!([format!("Object with uuid={s} does not exist.")]),
                );
            }
        }
        Some(_) => {
            errors.insert("resource".into(), json!(["Invalid value."]));
        }
    }
    match body.get("plan_period") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            let id = s.replace('-', "").to_lowercase();
            match w.plan_periods.iter().find(|p| p.uuid == id) {
                Some(p) if w.resource(&p.resource).is_some() => {
                    plan_period = Some(id);
                }
                _ => {
                    errors.insert(
                        "plan_period".into(),
                        json!([format!("Object with uuid={s} does not exist.")]),
                    );
                }
            }
        }
        Some(_) => {
            errors.insert("plan_period".into(), json!(["Invalid value."]));
        }
    }
    let date = match body.get("date") {
        None | Some(Value::Null) => r.now,
        Some(Value::String(s)) => match parse_date(s) {
            Some(d) => {
                if month_start(d) == month_start(r.now.date_naive()) {
                    r.now
                } else {
                    d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
                }
            }
            None => {
                errors.insert(
                    "date".into(),
                    json!(["Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."]),
                );
                r.now
            }
        },
        Some(_) => {
            errors.insert("date".into(), json!(["Datetime has wrong format."]));
            r.now
        }
    };
    if !errors.is_empty() {
        return Err(Reply::bad(Value::Object(errors)));
    }

    // Object validation.
    let resource = match (resource, &plan_period) {
        (Some(res), _) => res,
        (None, Some(p)) => w
            .plan_periods
            .iter()
            .find(|x| x.uuid == *p)
            .map(|x| x.resource.clone())
            .expect("checked"),
        (None, None) => {
            return Err(Reply::bad(json!({"non_field_errors": [
                "Either plan_period or resource should be provided."
            ]})));
        }
    };
    let res = w.resource(&resource).expect("checked").clone();
    if !matches!(res.state.as_str(), "OK" | "Updating" | "Terminating") {
        return Err(Reply::field("resource", "Resource is not in valid state."));
    }
    let valid: Vec<String> = w
        .offering(&res.offering)
        .map(|o| {
            o.components
                .iter()
                .filter(|c| c.billing_type == "usage" || c.billing_type == "limit")
                .map(|c| c.type_.clone())
                .collect()
        })
        .unwrap_or_default();
    let mut invalid: Vec<&str> = items
        .iter()
        .map(|i| i.type_.as_str())
        .filter(|t| !valid.iter().any(|v| v == t))
        .collect();
    invalid.sort_unstable();
    invalid.dedup();
    if !invalid.is_empty() {
        return Err(Reply::bad(json!({"non_field_errors": [
            format!("These components are invalid: {}.", invalid.join(", "))
        ]})));
    }
    let month = month_start(date.date_naive());
    let today = r.now.date_naive();
    if month > month_start(today) {
        return Err(Reply::field(
            "date",
            "Usage cannot be reported for a future billing period.",
        ));
    }
    if w.month_closed(month, today) {
        return Err(Reply::field("plan_period", "Billing period is closed."));
    }
    // Waldur's view checks the permission to report usage on the resource's offering after
    // the serializer validated: a resource the token may not report on is a 403, not a 400.
    if !w.may_act_as_provider(&r.caller, &res.offering) {
        return Err(Reply::forbidden());
    }

    // Save: upsert per (resource, component, month), replacing the amount.
    let period = match plan_period {
        Some(p) => p,
        None => w.current_plan_period(&resource, r.now).unwrap_or_default(),
    };
    let mut current = Map::new();
    for item in items {
        // The schema types `current_usages` values as numbers.
        let as_number = render::dec2(item.amount).parse::<f64>().unwrap_or(0.0);
        current.insert(item.type_.clone(), json!(as_number));
        if let Some(u) = w.usage_record_mut(&resource, &item.type_, month) {
            u.usage = item.amount;
            u.date = date;
            u.description = item.description;
            u.recurring = item.recurring;
            u.plan_period = period.clone();
        } else {
            w.push_usage(Usage {
                uuid: new_uuid(),
                resource: resource.clone(),
                plan_period: period.clone(),
                type_: item.type_,
                billing_period: month,
                usage: item.amount,
                date,
                description: item.description,
                recurring: item.recurring,
                created: r.now,
            });
        }
    }
    if let Some(x) = w.resource_mut(&resource) {
        x.current_usages = current;
    }
    Ok(Reply::empty(StatusCode::CREATED))
}
