//! The consumer side of the simulator, as a resource allocator uses it: ordering an allocation
//! with LUMI's options and limits, consumer review and its skipping, update_limits and
//! update_options (both answer kinds), and the record of which token each call carried.

use super::T;
use puhuri_gateway::sim::demo;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A simulator with the demo allocator.
async fn setup() -> T {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let sim = puhuri_gateway::sim::start_with_allocator(
        listener,
        puhuri_gateway::sim::SimOptions::default(),
    )
    .expect("start");
    let t = T {
        sim,
        c: reqwest::Client::new(),
        token: demo::TOKEN.to_string(),
    };
    // The provider reviews each order itself (the demo's approves at once by default).
    let r = t
        .ctl(
            Method::POST,
            "settings",
            Some(json!({"auto_approve_offerings": []})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    t
}

impl T {
    /// As the allocation offering's provider (the other demo provider).
    async fn other_post(&self, path: &str) -> super::Resp {
        self.call_as(
            Some(demo::OTHER_SP_TOKEN),
            Method::POST,
            path,
            Some(json!({})),
        )
        .await
    }
    async fn alloc(&self, method: Method, path: &str, body: Option<Value>) -> super::Resp {
        self.call_as(Some(demo::ALLOCATOR_TOKEN), method, path, body)
            .await
    }
}

fn order_body(t: &T, project: &str) -> Value {
    let api = t.sim.api_url();
    json!({
        "project": format!("{api}projects/{project}/"),
        "offering": format!("{api}marketplace-public-offerings/{}/", demo::ALLOCATION_OFFERING_UUID),
        "plan": format!("{api}marketplace-public-offerings/{}/plans/{}/", demo::ALLOCATION_OFFERING_UUID, demo::ALLOCATION_PLAN_UUID),
        "attributes": {"name": "Climate 2027", "is_industry": false, "used_ai_tech": ["Deep Learning"]},
        "limits": {"cpu_k_hours": 100, "gpu_k_hours": 5, "gb_k_hours": 10}
    })
}

#[tokio::test]
async fn an_allocator_orders_and_the_order_is_followed_to_ok() {
    let t = setup().await;
    // The allocation offering is public, with limit-type components and the LUMI plan.
    let o = t
        .alloc(
            Method::GET,
            &format!(
                "marketplace-public-offerings/{}/",
                demo::ALLOCATION_OFFERING_UUID
            ),
            None,
        )
        .await;
    assert_eq!(o.status, StatusCode::OK, "{}", o.raw);
    assert_eq!(o.body["components"][0]["billing_type"], "limit");
    assert_eq!(o.body["plans"][0]["uuid"], demo::ALLOCATION_PLAN_UUID);

    // Its own organisation's project: consumer review skipped, waiting for the provider.
    let created = t
        .alloc(
            Method::POST,
            "marketplace-orders/",
            Some(order_body(&t, demo::ALLOCATOR_PROJECT_UUID)),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    assert_eq!(created.body["state"], "pending-provider");
    let order = created.body["uuid"].as_str().unwrap().to_string();
    let resource = created.body["marketplace_resource_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    // The provider approves; Waldur finishes a Basic order by itself.
    let ok = t
        .other_post(&format!("marketplace-orders/{order}/approve_by_provider/"))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.raw);
    let mut state = Value::Null;
    for _ in 0..100 {
        let r = t
            .alloc(
                Method::GET,
                &format!("marketplace-resources/{resource}/"),
                None,
            )
            .await;
        state = r.body["state"].clone();
        if state == "OK" {
            assert_eq!(r.body["limits"]["cpu_k_hours"], 100);
            assert_eq!(r.body["attributes"]["used_ai_tech"][0], "Deep Learning");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(state, "OK");

    // update_limits: an Update order; unchanged limits are a 400; a second pending one too.
    let same = t
        .alloc(
            Method::POST,
            &format!("marketplace-resources/{resource}/update_limits/"),
            Some(json!({"limits": {"cpu_k_hours": 100, "gpu_k_hours": 5, "gb_k_hours": 10}})),
        )
        .await;
    assert_eq!(same.status, StatusCode::BAD_REQUEST, "{}", same.raw);
    let upd = t
        .alloc(
            Method::POST,
            &format!("marketplace-resources/{resource}/update_limits/"),
            Some(json!({"limits": {"cpu_k_hours": 200, "gpu_k_hours": 5, "gb_k_hours": 10}})),
        )
        .await;
    assert_eq!(upd.status, StatusCode::OK, "{}", upd.raw);
    let update_order = upd.body["order_uuid"].as_str().unwrap().to_string();
    let again = t
        .alloc(
            Method::POST,
            &format!("marketplace-resources/{resource}/update_limits/"),
            Some(json!({"limits": {"cpu_k_hours": 300}})),
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.raw);
    assert_eq!(
        again.body,
        json!(["Pending order for resource already exists."])
    );
    let o = t
        .alloc(
            Method::GET,
            &format!("marketplace-orders/{update_order}/"),
            None,
        )
        .await;
    assert_eq!(o.body["type"], "Update");
    assert_eq!(o.body["state"], "pending-provider");

    // update_options applied at once where the offering does not order option changes.
    let opts = t
        .alloc(
            Method::POST,
            &format!("marketplace-resources/{resource}/update_options/"),
            Some(json!({"options": {"is_training": true}})),
        )
        .await;
    // The resource is Updating while its limits order is pending: 409.
    assert_eq!(opts.status, StatusCode::OK, "{}", opts.raw);

    // Every call of the allocator carried its token; none carried the provider's.
    let calls = t.ctl(Method::GET, "calls", None).await;
    let calls = calls.body.as_array().cloned().unwrap_or_default();
    assert!(!calls.is_empty());
    for c in &calls {
        let path = c["path"].as_str().unwrap_or("");
        if path.contains("approve_by_provider") {
            assert_eq!(c["token"], "other-sp", "{c}");
        } else {
            assert_eq!(c["token"], "allocator", "{c}");
        }
        assert!(!c.to_string().contains(demo::ALLOCATOR_TOKEN));
    }
}

#[tokio::test]
async fn option_changes_can_be_orders_and_review_is_asked_where_the_allocator_is_a_member() {
    let t = setup().await;
    let s = t
        .ctl(
            Method::POST,
            "settings",
            Some(json!({"option_change_orders": {demo::ALLOCATION_OFFERING_UUID: true}, "self_processing_delay_ms": 0})),
        )
        .await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.raw);
    // A project where the allocator's user is only a member: consumer review is asked.
    let created = t
        .alloc(
            Method::POST,
            "marketplace-orders/",
            Some(order_body(&t, demo::ALLOCATOR_REVIEW_PROJECT_UUID)),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    assert_eq!(created.body["state"], "pending-consumer");
    let order = created.body["uuid"].as_str().unwrap().to_string();
    let resource = created.body["marketplace_resource_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t
        .alloc(
            Method::POST,
            &format!("marketplace-orders/{order}/approve_by_consumer/"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let r = t
        .other_post(&format!("marketplace-orders/{order}/approve_by_provider/"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let r = t
        .alloc(
            Method::GET,
            &format!("marketplace-resources/{resource}/"),
            None,
        )
        .await;
    assert_eq!(r.body["state"], "OK", "{}", r.raw);
    // update_options answers with an order (201) and applies the options when it is done.
    let r = t
        .alloc(
            Method::POST,
            &format!("marketplace-resources/{resource}/update_options/"),
            Some(json!({"options": {"is_commercial": true}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    let update = r.body["order_uuid"].as_str().unwrap().to_string();
    let r = t
        .alloc(Method::GET, &format!("marketplace-orders/{update}/"), None)
        .await;
    assert_eq!(r.body["state"], "pending-consumer");
    t.alloc(
        Method::POST,
        &format!("marketplace-orders/{update}/approve_by_consumer/"),
        None,
    )
    .await;
    t.other_post(&format!("marketplace-orders/{update}/approve_by_provider/"))
        .await;
    let r = t
        .alloc(
            Method::GET,
            &format!("marketplace-resources/{resource}/"),
            None,
        )
        .await;
    assert_eq!(r.body["options"]["is_commercial"], true, "{}", r.raw);
    // The allocator sees nothing of other organisations' projects.
    let r = t
        .alloc(
            Method::GET,
            &format!("projects/{}/", demo::PROJECT_A_UUID),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.raw);
    let r = t
        .alloc(
            Method::GET,
            &format!("marketplace-resources/{}/", demo::RESOURCE_OK_UUID),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.raw);
}
