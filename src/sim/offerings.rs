//! Offerings: the provider view (only the caller's own offerings) and the public catalogue (every
//! active offering), both with `components` and `plans`.

use super::render;
use super::state::*;
use super::{Filters, Reply, Req, Res};
use actix_web::http::Method;
use serde_json::Value;

fn visible(r: &Req, o: &Offering, public: bool) -> bool {
    if public {
        matches!(o.state.as_str(), "Active" | "Paused")
    } else {
        o.customer == r.caller.customer
    }
}

pub fn list(w: &World, r: &Req, public: bool) -> Res {
    r.allow(&[Method::GET])?;
    let mut f = Filters::new(r);
    let customer = f.uuid("customer_uuid");
    let states = f.choices("state", &["Draft", "Active", "Paused", "Archived"]);
    let categories = f.uuids("category_uuid");
    f.check()?;
    // `uuid_list`: comma-separated uuids (Waldur's public-offering filter).
    let uuid_list: Vec<String> = r
        .q_all("uuid_list")
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(super::parse_uuid)
        .collect();
    let name_exact = r.q("name_exact").filter(|v| !v.is_empty());
    let types = r.q_all("type");
    let name = r.q("name").map(str::to_lowercase);
    let found: Vec<Value> = w
        .offerings
        .iter()
        .filter(|o| visible(r, o, public))
        .filter(|o| customer.as_ref().is_none_or(|c| o.customer == *c))
        .filter(|o| states.is_empty() || states.contains(&o.state))
        .filter(|o| types.is_empty() || types.contains(&o.type_.as_str()))
        .filter(|o| {
            name.as_deref()
                .is_none_or(|n| o.name.to_lowercase().contains(n))
        })
        .filter(|o| name_exact.is_none_or(|n| o.name == n))
        .filter(|o| uuid_list.is_empty() || uuid_list.contains(&o.uuid))
        // Every demo offering is in the one demo category.
        .filter(|_| categories.is_empty() || categories.iter().any(|c| c == render::CATEGORY_UUID))
        .map(|o| render::offering(w, &r.base, o, public))
        .collect();
    r.list(found)
}

pub fn retrieve(w: &World, r: &Req, id: &str, public: bool) -> Res {
    r.allow(&[Method::GET])?;
    let o = w
        .offering(id)
        .filter(|o| visible(r, o, public))
        .ok_or_else(Reply::not_found)?;
    r.one(render::offering(w, &r.base, o, public))
}

/// `marketplace-public-offerings/{uuid}/plans/[{plan}/]` (plan URLs point here).
pub fn plans(w: &World, r: &Req, id: &str, plan: Option<&str>) -> Res {
    r.allow(&[Method::GET])?;
    let o = w
        .offering(id)
        .filter(|o| visible(r, o, true))
        .ok_or_else(Reply::not_found)?;
    match plan {
        None => Ok(Reply::ok(Value::Array(
            o.plans
                .iter()
                .map(|p| render::plan(w, &r.base, o, p, true))
                .collect(),
        ))),
        Some(p) => {
            let p = o
                .plans
                .iter()
                .find(|x| x.uuid == p)
                .ok_or_else(Reply::not_found)?;
            r.one(render::plan(w, &r.base, o, p, true))
        }
    }
}
