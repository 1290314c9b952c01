//! Integration tests of the Waldur simulator: each test starts its own simulator on
//! `127.0.0.1:0` and talks to it over real HTTP with reqwest.

use puhuri_gateway::sim::{self, SimOptions, SimServer, demo};
use reqwest::{Method, header::HeaderMap};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

struct T {
    sim: SimServer,
    c: reqwest::Client,
    token: String,
}

// Only its `send`: the simulator tests check each status where they read it.
#[allow(dead_code)]
#[path = "support/client.rs"]
mod client;

/// An answer of the simulator, read whole.
type Resp = client::Answer;

async fn setup() -> T {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let sim = sim::start(listener, SimOptions::default()).expect("start");
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    T {
        sim,
        c,
        token: demo::TOKEN.to_string(),
    }
}

impl T {
    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else if let Some(p) = path.strip_prefix("__sim/") {
            format!("{}{p}", self.sim.control_url())
        } else {
            format!("{}{path}", self.sim.api_url())
        }
    }
    async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let mut rb = self.c.request(method, self.url(path));
        if let Some(t) = token {
            rb = rb.header("Authorization", format!("Token {t}"));
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        client::send(rb).await
    }
    async fn get(&self, path: &str) -> Resp {
        self.call_as(Some(&self.token.clone()), Method::GET, path, None)
            .await
    }
    async fn post(&self, path: &str, body: Value) -> Resp {
        self.call_as(Some(&self.token.clone()), Method::POST, path, Some(body))
            .await
    }
    async fn other_get(&self, path: &str) -> Resp {
        self.call_as(Some(demo::OTHER_SP_TOKEN), Method::GET, path, None)
            .await
    }
    async fn ctl(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call_as(None, method, &format!("__sim/{path}"), body)
            .await
    }
}

fn uuids(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x["uuid"].as_str().expect("uuid").to_string())
        .collect()
}

#[tokio::test]
async fn auth_errors_have_waldur_bodies() {
    let t = setup().await;
    let r = t
        .call_as(None, Method::GET, "marketplace-orders/", None)
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        json!({"detail": "Authentication credentials were not provided."})
    );
    assert_eq!(r.headers["www-authenticate"], "Token");
    let r = t
        .call_as(
            Some("0000000000000000000000000000000000000000"),
            Method::GET,
            "marketplace-orders/",
            None,
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body, json!({"detail": "Invalid token."}));
    assert_eq!(r.headers["www-authenticate"], "Token");
    // Keyword is case-insensitive.
    let r =
        t.c.get(t.url("users/"))
            .header("Authorization", format!("token {}", demo::TOKEN))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    // A Bearer header is not a token: not provided.
    let r =
        t.c.get(t.url("users/"))
            .header("Authorization", "Bearer abc")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);
    // Trailing slash is required; unknown paths are 404.
    assert_eq!(t.get("users").await.status, 404);
    assert_eq!(
        t.get("no-such-thing/").await.body,
        json!({"detail": "Not found."})
    );
    // A configured token replaces the demo one.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let custom = sim::start(
        listener,
        SimOptions {
            token: "f".repeat(40),
        },
    )
    .unwrap();
    let r =
        t.c.get(format!("{}users/", custom.api_url()))
            .header("Authorization", format!("Token {}", "f".repeat(40)))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    custom.stop().await;
    t.sim.stop().await;
}

#[tokio::test]
async fn pagination_link_and_counts() {
    let t = setup().await;
    let r = t.get("marketplace-provider-resources/?page_size=2").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-result-count"], "5");
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    let link = r.headers["link"].to_str().unwrap().to_string();
    assert!(link.contains("rel=\"next\""), "{link}");
    assert!(link.contains("rel=\"last\""), "{link}");
    assert!(!link.contains("rel=\"prev\""), "{link}");
    assert!(
        link.starts_with(&format!(
            "<http://{}/api/marketplace-provider-resources/?",
            t.sim.addr()
        )),
        "{link}"
    );
    // Follow rel="next" to the end.
    let mut seen = uuids(&r.body);
    let mut next = next_link(&r.headers);
    let mut guard = 0;
    while let Some(url) = next {
        guard += 1;
        assert!(guard < 10);
        let r = t.get(&url).await;
        assert_eq!(r.status, 200);
        seen.extend(uuids(&r.body));
        next = next_link(&r.headers);
        if next.is_none() {
            let link = r.headers["link"].to_str().unwrap();
            assert!(link.contains("rel=\"prev\"") && link.contains("rel=\"first\""));
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);
    // Out-of-range page.
    let r = t
        .get("marketplace-provider-resources/?page_size=2&page=4")
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body, json!({"detail": "Invalid page."}));
    // Clamp: page_size above 300 is silently 300 (a single page: see fact 9 for its Link).
    let r = t
        .get("marketplace-provider-resources/?page_size=100000")
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 5);
    // Default page size 10.
    let r = t.get("users/").await;
    assert_eq!(r.headers["x-result-count"], "6");
    // HEAD: only X-Result-Count.
    let r = t
        .call_as(Some(demo::TOKEN), Method::HEAD, "marketplace-orders/", None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-result-count"], "5");
    assert!(r.raw.is_empty());
    // field= limits the fields.
    let r = t
        .get("marketplace-provider-resources/?field=uuid&field=state&backend_id=project_465000001")
        .await;
    assert_eq!(
        r.body,
        json!([{"uuid": demo::RESOURCE_OK_UUID, "state": "OK"}])
    );
    // team/ and plan_periods/ are plain arrays without pagination headers.
    let r = t
        .get(&format!(
            "marketplace-provider-resources/{}/team/",
            demo::RESOURCE_OK_UUID
        ))
        .await;
    assert!(r.headers.get("x-result-count").is_none());
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    t.sim.stop().await;
}

fn next_link(h: &HeaderMap) -> Option<String> {
    let link = h.get("link")?.to_str().ok()?;
    link.split(", ").find_map(|part| {
        part.strip_suffix("; rel=\"next\"")
            .map(|u| u.trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

#[tokio::test]
async fn filters_on_lists() {
    let t = setup().await;
    let r = t
        .get("marketplace-provider-resources/?state=OK&state=Erred")
        .await;
    let mut got = uuids(&r.body);
    got.sort();
    assert_eq!(
        got,
        vec![
            demo::RESOURCE_OK_UUID.to_string(),
            demo::RESOURCE_ERRED_UUID.to_string()
        ]
    );
    let r = t
        .get(&format!(
            "marketplace-provider-resources/?offering_uuid={}",
            demo::SECOND_OFFERING_UUID
        ))
        .await;
    assert_eq!(uuids(&r.body), vec![demo::RESOURCE_SLURM_UUID]);
    let r = t
        .get(&format!(
            "marketplace-provider-resources/?project_uuid={}",
            demo::PROJECT_B_UUID
        ))
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    let r = t
        .get(&format!(
            "marketplace-orders/?offering_uuid={}&state=pending-provider&state=executing",
            demo::LUMI_OFFERING_UUID
        ))
        .await;
    let mut got = uuids(&r.body);
    got.sort();
    assert_eq!(
        got,
        vec![
            demo::ORDER_PENDING_UUID.to_string(),
            demo::ORDER_EXECUTING_UUID.to_string()
        ]
    );
    let r = t
        .get(&format!(
            "marketplace-orders/?resource_uuid={}&type=Create",
            demo::RESOURCE_OK_UUID
        ))
        .await;
    assert_eq!(uuids(&r.body), vec![demo::ORDER_OK_DONE_UUID]);
    let r = t.get("marketplace-orders/?type=Terminate").await;
    assert_eq!(r.body, json!([]));
    let r = t
        .get(&format!(
            "marketplace-offering-users/?offering_uuid={}&user_uuid={}",
            demo::LUMI_OFFERING_UUID,
            demo::USER_ALICE_UUID
        ))
        .await;
    assert_eq!(uuids(&r.body), vec![demo::OFFERING_USER_ALICE_UUID]);
    assert_eq!(r.body[0]["username"], "alice_lumi");
    let r = t
        .get(&format!(
            "marketplace-service-providers/?customer_uuid={}",
            demo::SP_CUSTOMER_UUID
        ))
        .await;
    assert_eq!(uuids(&r.body), vec![demo::SERVICE_PROVIDER_UUID]);
    let r = t.get("keys/").await;
    assert_eq!(
        uuids(&r.body),
        vec![demo::KEY_SP_OWNER_UUID],
        "own keys only"
    );
    let r = t.get("users/?username=alice").await;
    assert_eq!(uuids(&r.body), vec![demo::USER_ALICE_UUID]);
    t.sim.stop().await;
}

#[tokio::test]
async fn another_providers_objects_are_not_found() {
    let t = setup().await;
    for path in [
        format!(
            "marketplace-provider-resources/{}/",
            demo::OTHER_RESOURCE_UUID
        ),
        format!(
            "marketplace-provider-resources/{}/team/",
            demo::OTHER_RESOURCE_UUID
        ),
        format!("marketplace-orders/{}/", demo::OTHER_ORDER_UUID),
        format!(
            "marketplace-offering-users/{}/",
            demo::OTHER_OFFERING_USER_UUID
        ),
        format!(
            "marketplace-provider-offerings/{}/",
            demo::OTHER_OFFERING_UUID
        ),
        format!("marketplace-resources/{}/", demo::OTHER_RESOURCE_UUID),
    ] {
        let r = t.get(&path).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.body, json!({"detail": "Not found."}));
    }
    let r = t
        .post(
            &format!(
                "marketplace-orders/{}/approve_by_provider/",
                demo::OTHER_ORDER_UUID
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = t
        .post(
            &format!(
                "marketplace-provider-resources/{}/set_as_erred/",
                demo::OTHER_RESOURCE_UUID
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404);
    // Lists exclude them.
    let r = t.get("marketplace-orders/?page_size=100").await;
    assert!(!uuids(&r.body).contains(&demo::OTHER_ORDER_UUID.to_string()));
    // The SP catalogue is public, but another SP's private views are forbidden.
    let r = t
        .get(&format!(
            "marketplace-service-providers/{}/users/",
            demo::OTHER_SP_UUID
        ))
        .await;
    assert_eq!(r.status, 403);
    // The public catalogue shows every active offering.
    let r = t.get("marketplace-public-offerings/").await;
    assert_eq!(r.headers["x-result-count"], "3");
    // The other token sees its own objects and not ours.
    let r = t.other_get("marketplace-provider-resources/").await;
    assert_eq!(uuids(&r.body), vec![demo::OTHER_RESOURCE_UUID]);
    let r = t
        .other_get(&format!("marketplace-orders/{}/", demo::ORDER_PENDING_UUID))
        .await;
    assert_eq!(r.status, 404);
    // set_usage on someone else's resource: it exists, but this token may not report on it
    // (fact 2: Waldur's 403, not a 400).
    let r = t
        .post("marketplace-component-usages/set_usage/", json!({"resource": demo::OTHER_RESOURCE_UUID, "usages": [{"type": "cpu_k_hours", "amount": "1"}]}))
        .await;
    assert_eq!(r.status, 403, "{}", r.raw);
    assert_eq!(
        r.body,
        json!({"detail": "You do not have permission to perform this action."})
    );
    // A uuid that names no resource at all is still the field error.
    let r = t
        .post("marketplace-component-usages/set_usage/", json!({"resource": "7e000000000040008000000000000fff", "usages": [{"type": "cpu_k_hours", "amount": "1"}]}))
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["resource"][0]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    t.sim.stop().await;
}

#[tokio::test]
async fn order_state_machine_and_side_effects() {
    let t = setup().await;
    let approve = format!(
        "marketplace-orders/{}/approve_by_provider/",
        demo::ORDER_PENDING_UUID
    );
    let r = t
        .post(&approve, json!({"attributes": {"note": "ok"}}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"detail": "Order has been approved and is being processed."})
    );
    let r = t.post(&approve, json!({})).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.body,
        json!({"detail": "Valid states for operation: pending-provider."})
    );
    let o = t
        .get(&format!("marketplace-orders/{}/", demo::ORDER_PENDING_UUID))
        .await
        .body;
    assert_eq!(o["state"], "executing");
    assert_eq!(o["attributes"]["note"], "ok");
    // Done → resource OK (and it gets a plan period).
    let r = t
        .post(
            &format!(
                "marketplace-orders/{}/set_state_done/",
                demo::ORDER_PENDING_UUID
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.raw.is_empty());
    let res = t
        .get(&format!(
            "marketplace-provider-resources/{}/",
            demo::RESOURCE_CREATING_UUID
        ))
        .await
        .body;
    assert_eq!(res["state"], "OK");
    let pp = t
        .get(&format!(
            "marketplace-provider-resources/{}/plan_periods/",
            demo::RESOURCE_CREATING_UUID
        ))
        .await
        .body;
    assert_eq!(pp.as_array().unwrap().len(), 1);
    let r = t
        .post(
            &format!(
                "marketplace-orders/{}/set_state_done/",
                demo::ORDER_PENDING_UUID
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.body,
        json!({"detail": "Valid states for operation: executing."})
    );

    // set_state_erred is Slurm-only: 405 on the Basic offering, works on the Slurm one.
    let r = t
        .post(
            &format!(
                "marketplace-orders/{}/set_state_erred/",
                demo::ORDER_EXECUTING_UUID
            ),
            json!({"error_message": "boom", "error_traceback": "tb"}),
        )
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(
        r.body,
        json!({"detail": "The order's offering with Marketplace.Basic type does not support this action"})
    );
    let r = t
        .post(
            &format!(
                "marketplace-orders/{}/set_state_erred/",
                demo::ORDER_SLURM_EXECUTING_UUID
            ),
            json!({"error_message": "boom", "error_traceback": "tb"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let o = t
        .get(&format!(
            "marketplace-orders/{}/",
            demo::ORDER_SLURM_EXECUTING_UUID
        ))
        .await
        .body;
    assert_eq!(
        (o["state"].as_str(), o["error_message"].as_str()),
        (Some("erred"), Some("boom"))
    );
    let res = t
        .get(&format!(
            "marketplace-provider-resources/{}/",
            demo::RESOURCE_SLURM_UUID
        ))
        .await
        .body;
    assert_eq!(res["state"], "Erred");

    // Order backend_id.
    let r = t
        .post(
            &format!(
                "marketplace-orders/{}/set_backend_id/",
                demo::ORDER_EXECUTING_UUID
            ),
            json!({"backend_id": "job-1"}),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"status": "Order backend_id has been changed."})
    );

    // Create order in the SP's own project: pending-provider, resource Creating; reject → Terminated.
    let offering_url = format!(
        "{}marketplace-public-offerings/{}/",
        t.sim.api_url(),
        demo::LUMI_OFFERING_UUID
    );
    let plan_url = format!(
        "{}marketplace-public-offerings/{}/plans/{}/",
        t.sim.api_url(),
        demo::LUMI_OFFERING_UUID,
        demo::LUMI_PLAN_UUID
    );
    let project_url = |p: &str| format!("{}projects/{p}/", t.sim.api_url());
    let r = t
        .post("marketplace-orders/", json!({"project": project_url(demo::PROJECT_SP_UUID), "offering": offering_url, "plan": plan_url, "attributes": {"name": "staff-alloc"}, "limits": {"cpu_k_hours": 10}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(r.body["state"], "pending-provider");
    assert_eq!(r.body["type"], "Create");
    let order = r.body["uuid"].as_str().unwrap().to_string();
    let res_uuid = r.body["marketplace_resource_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let res = t
        .get(&format!("marketplace-provider-resources/{res_uuid}/"))
        .await
        .body;
    assert_eq!(
        (res["state"].as_str(), res["name"].as_str()),
        (Some("Creating"), Some("staff-alloc"))
    );
    assert_eq!(res["limits"], json!({"cpu_k_hours": 10}));
    let r = t
        .post(
            &format!("marketplace-orders/{order}/reject_by_provider/"),
            json!({"provider_rejection_comment": "no"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let res = t
        .get(&format!("marketplace-provider-resources/{res_uuid}/"))
        .await
        .body;
    assert_eq!(res["state"], "Terminated");
    let r = t
        .post(
            &format!("marketplace-orders/{order}/reject_by_provider/"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409);

    // Consumer flow in a client's project: pending-consumer → approve_by_consumer → pending-provider → cancel.
    let r = t
        .post(
            "marketplace-orders/",
            json!({"project": project_url(demo::PROJECT_SP_UUID), "offering": offering_url}),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = t
        .post("marketplace-orders/", json!({"offering": offering_url}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body, json!({"project": ["This field is required."]}));
    let r = t
        .post(
            "marketplace-orders/",
            json!({"project": project_url(demo::PROJECT_OTHER_UUID), "offering": offering_url}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"project": ["Invalid hyperlink - Object does not exist."]})
    );
    let cancel = format!("marketplace-orders/{}/cancel/", demo::ORDER_EXECUTING_UUID);
    let r = t.post(&cancel, json!({})).await;
    // The demo SP is not a consumer of project A: forbidden.
    assert_eq!(r.status, 403);
    t.sim.stop().await;
}

#[tokio::test]
async fn consumer_approval_and_cancel() {
    let t = setup().await;
    // In a project where the token user is only a member, the order waits for the consumer.
    let offering_url = format!(
        "{}marketplace-public-offerings/{}/",
        t.sim.api_url(),
        demo::LUMI_OFFERING_UUID
    );
    let r = t
        .post("marketplace-orders/", json!({"project": format!("{}projects/{}/", t.sim.api_url(), demo::PROJECT_CONSUMER_UUID), "offering": offering_url}))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["state"], "pending-consumer");
    let order = r.body["uuid"].as_str().unwrap().to_string();
    let res_uuid = r.body["marketplace_resource_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t
        .post(
            &format!("marketplace-orders/{order}/approve_by_provider/"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409);
    let r = t
        .post(
            &format!("marketplace-orders/{order}/approve_by_consumer/"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["detail"], "Order has been approved.");
    let r = t
        .post(
            &format!("marketplace-orders/{order}/approve_by_consumer/"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.body,
        json!({"detail": "Valid states for operation: pending-consumer."})
    );
    assert_eq!(
        t.get(&format!("marketplace-orders/{order}/")).await.body["state"],
        "pending-provider"
    );
    let r = t
        .post(&format!("marketplace-orders/{order}/cancel/"), json!({}))
        .await;
    assert_eq!(r.status, 202);
    assert!(r.raw.is_empty());
    assert_eq!(
        t.get(&format!("marketplace-orders/{order}/")).await.body["state"],
        "canceled"
    );
    let res = t
        .get(&format!("marketplace-provider-resources/{res_uuid}/"))
        .await
        .body;
    assert_eq!(res["state"], "Terminated");
    let r = t
        .post(&format!("marketplace-orders/{order}/cancel/"), json!({}))
        .await;
    assert_eq!(r.status, 409);
    // reject_by_consumer on a fresh one.
    let r = t
        .post("marketplace-orders/", json!({"project": format!("{}projects/{}/", t.sim.api_url(), demo::PROJECT_CONSUMER_UUID), "offering": offering_url}))
        .await;
    let order = r.body["uuid"].as_str().unwrap().to_string();
    let r = t
        .post(
            &format!("marketplace-orders/{order}/reject_by_consumer/"),
            json!({"consumer_rejection_comment": "later"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let o = t.get(&format!("marketplace-orders/{order}/")).await.body;
    assert_eq!(
        (
            o["state"].as_str(),
            o["consumer_rejection_comment"].as_str()
        ),
        (Some("rejected"), Some("later"))
    );
    // Cancel is Basic/Support only: 405 on the Slurm offering.
    let r = t
        .post(
            &format!(
                "marketplace-orders/{}/cancel/",
                demo::ORDER_SLURM_EXECUTING_UUID
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 403, "the demo SP is not a consumer of project A");
    t.sim.stop().await;
}

#[tokio::test]
async fn resource_provider_actions() {
    let t = setup().await;
    let base = format!("marketplace-provider-resources/{}/", demo::RESOURCE_OK_UUID);
    let r = t
        .post(
            &format!("{base}set_backend_id/"),
            json!({"backend_id": "project_465000999"}),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"status": "Resource backend_id has been changed."})
    );
    let r = t
        .post(
            &format!("{base}set_backend_id/"),
            json!({"backend_id": "project_465000999"}),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"status": "Resource backend_id is not changed."})
    );
    // Waldur's view raises on a body without `backend_id`: Django's HTML 500.
    let r = t.post(&format!("{base}set_backend_id/"), json!({})).await;
    assert_eq!(r.status.as_u16(), 500);
    assert!(r.raw.contains("Server Error (500)"), "{}", r.raw);
    let r = t
        .get("marketplace-provider-resources/?backend_id=project_465000999")
        .await;
    assert_eq!(uuids(&r.body), vec![demo::RESOURCE_OK_UUID]);

    let r = t
        .post(
            &format!("{base}submit_report/"),
            json!({"report": [{"header": "H", "body": "B"}]}),
        )
        .await;
    assert_eq!(r.body, json!({"status": "Report is submitted"}));
    let r = t
        .post(
            &format!("{base}submit_report/"),
            json!({"report": [{"header": "", "body": "B"}]}),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"report": [{"header": ["This field may not be blank."]}]})
    );
    let res = t.get(&base).await.body;
    assert_eq!(res["report"], json!([{"header": "H", "body": "B"}]));

    let r = t
        .post(
            &format!("{base}set_limits/"),
            json!({"limits": {"cpu_k_hours": 2000}}),
        )
        .await;
    assert_eq!(r.body, json!({"status": "The resource limits are updated"}));
    assert_eq!(
        t.get(&base).await.body["limits"],
        json!({"cpu_k_hours": 2000})
    );

    let r = t.post(&format!("{base}set_state_ok/"), json!({})).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.body,
        json!({"detail": "Valid states for operation: Creating, Updating, Terminating, Erred."})
    );
    let r = t.post(&format!("{base}set_as_ok/"), json!({})).await;
    assert_eq!(r.status, 200, "OK → OK is a no-op");
    let r = t
        .post(
            &format!("{base}set_as_erred/"),
            json!({"error_message": "disk", "error_traceback": ""}),
        )
        .await;
    assert_eq!(r.status, 200);
    let res = t.get(&base).await.body;
    assert_eq!(
        (res["state"].as_str(), res["error_message"].as_str()),
        (Some("Erred"), Some("disk"))
    );
    let r = t.post(&format!("{base}set_state_ok/"), json!({})).await;
    assert_eq!(
        r.body,
        json!({"status": "Resource state has been set to OK."})
    );
    assert_eq!(t.get(&base).await.body["error_message"], "");

    // Terminate: a Terminate order pending the provider; a second one is refused.
    let r = t.post(&format!("{base}terminate/"), json!({})).await;
    assert_eq!(r.status, 200);
    let order = r.body["order_uuid"].as_str().unwrap().to_string();
    assert_eq!(order.len(), 32);
    let r = t.post(&format!("{base}terminate/"), json!({})).await;
    assert_eq!(
        (r.status.as_u16(), r.body.clone()),
        (400, json!(["Pending order for resource already exists."]))
    );
    let o = t.get(&format!("marketplace-orders/{order}/")).await.body;
    assert_eq!(
        (o["type"].as_str(), o["state"].as_str()),
        (Some("Terminate"), Some("pending-provider"))
    );
    t.post(
        &format!("marketplace-orders/{order}/approve_by_provider/"),
        json!({}),
    )
    .await;
    assert_eq!(t.get(&base).await.body["state"], "Terminating");
    t.post(
        &format!("marketplace-orders/{order}/set_state_done/"),
        json!({}),
    )
    .await;
    assert_eq!(t.get(&base).await.body["state"], "Terminated");
    let r = t.post(&format!("{base}terminate/"), json!({})).await;
    assert_eq!(r.status, 409);

    // Team: project members with their offering-user names.
    let team = t
        .get(&format!(
            "marketplace-provider-resources/{}/team/",
            demo::RESOURCE_CREATING_UUID
        ))
        .await
        .body;
    let names: Vec<&str> = team
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["bob", "carol"]);
    let team = t
        .get(&format!(
            "marketplace-provider-resources/{}/team/",
            demo::RESOURCE_ERRED_UUID
        ))
        .await
        .body;
    assert_eq!(team[0]["role"], "PROJECT.MEMBER");
    // Unknown action and wrong method.
    assert_eq!(t.get(&format!("{base}nope/")).await.status, 404);
    assert_eq!(t.get(&format!("{base}set_as_ok/")).await.status, 405);
    t.sim.stop().await;
}

#[tokio::test]
async fn consumer_resource_updates() {
    let t = setup().await;
    let base = format!("marketplace-resources/{}/", demo::RESOURCE_OK_UUID);
    let r = t
        .call_as(
            Some(demo::TOKEN),
            Method::PATCH,
            &base,
            Some(json!({"description": "d"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"name": "climate-2026", "description": "d", "end_date": null})
    );
    let r = t
        .call_as(
            Some(demo::TOKEN),
            Method::PUT,
            &base,
            Some(json!({"description": "x"})),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body.clone()),
        (400, json!({"name": ["This field is required."]}))
    );
    let r = t
        .call_as(
            Some(demo::TOKEN),
            Method::PUT,
            &base,
            Some(json!({"name": "renamed", "end_date": "2030-01-31"})),
        )
        .await;
    assert_eq!(r.body["end_date"], "2030-01-31");
    let r = t
        .post(
            &format!("{base}update_options/"),
            json!({"options": {"is_training": true, "used_ai_tech": ["Deep Learning"]}}),
        )
        .await;
    assert_eq!(r.body, json!({"status": "Resource options are submitted"}));
    let res = t
        .get(&format!(
            "marketplace-provider-resources/{}/",
            demo::RESOURCE_OK_UUID
        ))
        .await
        .body;
    assert_eq!(res["options"]["is_training"], true);
    assert_eq!(res["name"], "renamed");
    let r = t
        .post(
            &format!(
                "marketplace-resources/{}/update_options/",
                demo::RESOURCE_ERRED_UUID
            ),
            json!({"options": {}}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body.clone()),
        (409, json!({"detail": "Valid states for operation: OK."}))
    );
    let r = t
        .post(
            &format!(
                "marketplace-resources/{}/terminate/",
                demo::RESOURCE_ERRED_UUID
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body["order_uuid"].is_string());
    t.sim.stop().await;
}

#[tokio::test]
async fn set_usage_upsert_and_validation() {
    let t = setup().await;
    let month = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-01")
        .to_string();
    let set = |amount: Value| json!({"resource": demo::RESOURCE_OK_UUID, "usages": [{"type": "gpu_k_hours", "amount": amount}]});
    let r = t
        .post(
            "marketplace-component-usages/set_usage/",
            set(json!("10.50")),
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(r.raw.is_empty());
    let r = t
        .post("marketplace-component-usages/set_usage/", set(json!(7)))
        .await;
    assert_eq!(r.status, 201);
    let q = format!(
        "marketplace-component-usages/?resource_uuid={}&billing_period={month}&type=gpu_k_hours",
        demo::RESOURCE_OK_UUID
    );
    let list = t.get(&q).await.body;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "one record per (resource, component, month)"
    );
    assert_eq!(
        list[0]["usage"], "7.00",
        "the amount is replaced, not added"
    );
    assert_eq!(list[0]["billing_period"], month);
    let res = t
        .get(&format!(
            "marketplace-provider-resources/{}/",
            demo::RESOURCE_OK_UUID
        ))
        .await
        .body;
    assert_eq!(res["current_usages"], json!({"gpu_k_hours": 7.0}));
    // The plan period shows this month's components.
    let pp = t
        .get(&format!(
            "marketplace-provider-resources/{}/plan_periods/",
            demo::RESOURCE_OK_UUID
        ))
        .await
        .body;
    assert_eq!(pp[0]["uuid"], demo::PLAN_PERIOD_OK_UUID);
    assert_eq!(pp[0]["plan_name"], "LUMI Common");
    assert_eq!(pp[0]["components"].as_array().unwrap().len(), 2);
    // plan_period instead of resource.
    let r = t
        .post("marketplace-component-usages/set_usage/", json!({"plan_period": demo::PLAN_PERIOD_OK_UUID, "usages": [{"type": "gb_k_hours", "amount": "1"}]}))
        .await;
    assert_eq!(r.status, 201);

    // Validation errors.
    let bad = |body: Value, expected: Value| {
        let t = &t;
        async move {
            let r = t
                .post("marketplace-component-usages/set_usage/", body.clone())
                .await;
            assert_eq!(r.status, 400, "{body}");
            assert_eq!(r.body, expected, "{body}");
        }
    };
    bad(
        json!({"resource": demo::RESOURCE_OK_UUID, "usages": [{"type": "x", "amount": "1"}, {"type": "cpu_k_hours", "amount": "1"}, {"type": "a_comp", "amount": "1"}]}),
        json!({"non_field_errors": ["These components are invalid: a_comp, x."]}),
    )
    .await;
    bad(
        json!({"resource": demo::RESOURCE_CREATING_UUID, "usages": [{"type": "cpu_k_hours", "amount": "1"}]}),
        json!({"resource": ["Resource is not in valid state."]}),
    )
    .await;
    bad(
        json!({"resource": demo::RESOURCE_OK_UUID, "usages": [{"type": "cpu_k_hours", "amount": "1.234"}]}),
        json!({"usages": [{"amount": ["Ensure that there are no more than 2 decimal places."]}]}),
    )
    .await;
    bad(
        json!({"resource": demo::RESOURCE_OK_UUID, "usages": [{"type": "cpu_k_hours", "amount": "1"}, {"type": "cpu_k_hours", "amount": "abc"}]}),
        json!({"usages": [{}, {"amount": ["A valid number is required."]}]}),
    )
    .await;
    bad(
        json!({"usages": [{"type": "cpu_k_hours", "amount": "1"}]}),
        json!({"non_field_errors": ["Either plan_period or resource should be provided."]}),
    )
    .await;
    // Closed period: three months back is closed by the default rule.
    let old = (chrono::Utc::now().date_naive() - chrono::Months::new(3))
        .format("%Y-%m-15T00:00:00Z")
        .to_string();
    bad(
        json!({"resource": demo::RESOURCE_OK_UUID, "date": old, "usages": [{"type": "cpu_k_hours", "amount": "1"}]}),
        json!({"plan_period": ["Billing period is closed."]}),
    )
    .await;
    // The previous month is open; the date selects it.
    let prev = chrono::Utc::now().date_naive() - chrono::Months::new(1);
    let r = t
        .post("marketplace-component-usages/set_usage/", json!({"resource": demo::RESOURCE_OK_UUID, "date": prev.format("%Y-%m-20T00:00:00Z").to_string(), "usages": [{"type": "cpu_k_hours", "amount": "400"}]}))
        .await;
    assert_eq!(r.status, 201);
    let q = format!(
        "marketplace-component-usages/?resource_uuid={}&billing_period={}&type=cpu_k_hours",
        demo::RESOURCE_OK_UUID,
        prev.format("%Y-%m-01")
    );
    assert_eq!(t.get(&q).await.body[0]["usage"], "400.00");
    // The control API closes the current month.
    let r = t
        .ctl(
            Method::POST,
            "periods/close",
            Some(json!({"month": &month[..7]})),
        )
        .await;
    assert_eq!(r.status, 200);
    bad(
        set(json!("1")),
        json!({"plan_period": ["Billing period is closed."]}),
    )
    .await;
    t.ctl(
        Method::POST,
        "periods/open",
        Some(json!({"month": &month[..7]})),
    )
    .await;
    assert_eq!(
        t.post("marketplace-component-usages/set_usage/", set(json!("1")))
            .await
            .status,
        201
    );
    // Control view of usage records.
    let r = t
        .ctl(
            Method::GET,
            &format!("state/usages/{}", demo::RESOURCE_OK_UUID),
            None,
        )
        .await;
    assert!(r.body.as_array().unwrap().len() >= 5);
    t.sim.stop().await;
}

/// An offering's own people views (Waldur 8.0.5 `list_customer_projects`, `list_customer_users`):
/// projects with a live resource of the offering and the users with a role in them; 403 where
/// the token's user does not own the provider's organisation; 404 for another provider's
/// offering.
#[tokio::test]
async fn an_offerings_people_views() {
    let t = setup().await;
    let view = |o: &str, v: &str| format!("marketplace-provider-offerings/{o}/{v}/");
    let sorted = |body: &Value, key: &str| -> Vec<String> {
        let mut v: Vec<String> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x[key].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let (lumi, second) = (demo::LUMI_OFFERING_UUID, demo::SECOND_OFFERING_UUID);
    let r = t.get(&view(lumi, "list_customer_projects")).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        sorted(&r.body, "uuid"),
        [demo::PROJECT_A_UUID, demo::PROJECT_B_UUID]
    );
    assert_eq!(r.headers["x-result-count"], "2");
    let r = t.get(&view(second, "list_customer_projects")).await;
    assert_eq!(sorted(&r.body, "uuid"), [demo::PROJECT_A_UUID]);
    let r = t.get(&view(second, "list_customer_users")).await;
    assert_eq!(sorted(&r.body, "username"), ["alice", "bob"]);
    let r = t
        .get(&format!(
            "{}?field=uuid&page_size=1&page=2",
            view(lumi, "list_customer_users")
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.headers["x-result-count"], "3");
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0].as_object().unwrap().len(), 1, "{}", r.raw);

    let r = t
        .call_as(
            Some(demo::OTHER_SP_TOKEN),
            Method::GET,
            &view(lumi, "list_customer_projects"),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.raw);
    let r = t
        .ctl(
            Method::POST,
            "settings",
            Some(json!({"read_only_offerings": [lumi]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = t.get(&view(lumi, "list_customer_users")).await;
    assert_eq!(
        (r.status.as_u16(), &r.body),
        (
            403,
            &json!({"detail": "You do not have permission to perform this action."})
        )
    );
    assert_eq!(
        t.get(&view(second, "list_customer_users")).await.status,
        200
    );
    assert_eq!(t.get(&view(lumi, "no_such_view")).await.status, 404);
}

#[tokio::test]
async fn offering_users_and_service_provider_views() {
    let t = setup().await;
    let r = t
        .post("marketplace-offering-users/", json!({"offering_uuid": demo::LUMI_OFFERING_UUID, "user_uuid": demo::USER_BOB_UUID, "username": "bob_lumi"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(
        (r.body["username"].as_str(), r.body["state"].as_str()),
        (Some("bob_lumi"), Some("OK"))
    );
    let ou = r.body["uuid"].as_str().unwrap().to_string();
    let r = t
        .post("marketplace-offering-users/", json!({"offering": format!("{}marketplace-provider-offerings/{}/", t.sim.api_url(), demo::LUMI_OFFERING_UUID), "user": format!("{}users/{}/", t.sim.api_url(), demo::USER_BOB_UUID), "username": "again"}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"non_field_errors": ["The fields offering, user must make a unique set."]})
    );
    let r = t
        .post(
            "marketplace-offering-users/",
            json!({"offering_uuid": demo::SECOND_OFFERING_UUID, "user_uuid": demo::USER_BOB_UUID}),
        )
        .await;
    assert_eq!(
        r.body,
        json!(["It is not allowed to create users for current offering."])
    );
    let r = t
        .call_as(
            Some(demo::TOKEN),
            Method::PATCH,
            &format!("marketplace-offering-users/{ou}/"),
            Some(json!({"username": "bob2"})),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["username"].as_str()),
        (200, Some("bob2"))
    );
    let r = t
        .ctl(Method::GET, &format!("state/offering-user/{ou}"), None)
        .await;
    assert_eq!(r.body["username"], "bob2");

    let sp = demo::SERVICE_PROVIDER_UUID;
    let users = t
        .get(&format!("marketplace-service-providers/{sp}/users/"))
        .await;
    let mut names: Vec<&str> = users
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["alice", "bob", "carol"]);
    assert_eq!(users.headers["x-result-count"], "3");
    let keys = t
        .get(&format!("marketplace-service-providers/{sp}/keys/"))
        .await
        .body;
    assert_eq!(keys.as_array().unwrap().len(), 3);
    let projects = t
        .get(&format!("marketplace-service-providers/{sp}/projects/"))
        .await
        .body;
    let mut p = uuids(&projects);
    p.sort();
    assert_eq!(
        p,
        vec![
            demo::PROJECT_A_UUID.to_string(),
            demo::PROJECT_B_UUID.to_string()
        ]
    );
    let perms = t
        .get(&format!(
            "marketplace-service-providers/{sp}/project_permissions/"
        ))
        .await
        .body;
    assert_eq!(perms.as_array().unwrap().len(), 4);
    // Waldur 8.0.5's filters on these views: roles by `scope_uuid` (the project) and `user`,
    // users by `project_uuid`; `project_uuid`/`user_uuid` are not role filters and are ignored.
    let roles_of = |q: String| {
        let t = &t;
        async move {
            let body = t
                .get(&format!(
                    "marketplace-service-providers/{sp}/project_permissions/?{q}"
                ))
                .await
                .body;
            body.as_array().unwrap().len()
        }
    };
    assert_eq!(roles_of(format!("user={}", demo::USER_BOB_UUID)).await, 2);
    assert_eq!(
        roles_of(format!("scope_uuid={}", demo::PROJECT_B_UUID)).await,
        2
    );
    assert_eq!(
        roles_of(format!("user_uuid={}", demo::USER_BOB_UUID)).await,
        4
    );
    let in_b = t
        .get(&format!(
            "marketplace-service-providers/{sp}/users/?project_uuid={}",
            demo::PROJECT_B_UUID
        ))
        .await
        .body;
    assert_eq!(in_b.as_array().unwrap().len(), 2, "{in_b}");
    assert_eq!(
        t.get("marketplace-service-providers/00000000000000000000000000000000/users/")
            .await
            .status,
        404
    );

    // set_offerings_username: carol gets an offering user on LUMI (her project B has LUMI resources).
    let r = t
        .post(
            &format!("marketplace-service-providers/{sp}/set_offerings_username/"),
            json!({"user_uuid": demo::USER_CAROL_UUID, "username": "carol_x"}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body, json!({"detail": "Offering users have been set."}));
    let r = t
        .get(&format!(
            "marketplace-offering-users/?user_uuid={}",
            demo::USER_CAROL_UUID
        ))
        .await;
    assert_eq!(r.body[0]["username"], "carol_x");
    let r = t
        .post(
            &format!("marketplace-service-providers/{sp}/set_offerings_username/"),
            json!({"user_uuid": "ffffffffffffffffffffffffffffffff", "username": "x"}),
        )
        .await;
    assert_eq!(
        r.body,
        json!(["A user with the uuid [ffffffffffffffffffffffffffffffff] is not found."])
    );
    let r = t
        .post(
            &format!("marketplace-service-providers/{sp}/set_offerings_username/"),
            json!({}),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"user_uuid": ["This field is required."], "username": ["This field is required."]})
    );

    // Offerings with components and plans.
    let o = t
        .get(&format!(
            "marketplace-provider-offerings/{}/",
            demo::LUMI_OFFERING_UUID
        ))
        .await
        .body;
    let types: Vec<&str> = o["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, demo::COMPONENTS.to_vec());
    assert_eq!(o["plans"][0]["name"], "LUMI Common");
    assert_eq!(o["type"], "Marketplace.Basic");
    let o = t
        .get(&format!(
            "marketplace-public-offerings/{}/",
            demo::LUMI_OFFERING_UUID
        ))
        .await
        .body;
    let plan = t.get(o["plans"][0]["url"].as_str().unwrap()).await;
    assert_eq!(plan.body["uuid"], demo::LUMI_PLAN_UUID);
    assert_eq!(
        t.get("marketplace-provider-offerings/").await.headers["x-result-count"],
        "2"
    );
    t.sim.stop().await;
}

#[tokio::test]
async fn faults_error_latency_throttle() {
    let t = setup().await;
    let r = t
        .ctl(Method::POST, "faults", Some(json!({"kind": "error", "status": 502, "rate": 1.0, "path_prefix": "marketplace-orders/", "method": "GET", "times": 2})))
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(t.get("marketplace-orders/").await.status, 502);
    assert_eq!(t.get("users/").await.status, 200, "other paths unaffected");
    assert_eq!(
        t.post(
            &format!(
                "marketplace-orders/{}/set_backend_id/",
                demo::ORDER_EXECUTING_UUID
            ),
            json!({"backend_id": "a"})
        )
        .await
        .status,
        200,
        "other methods unaffected"
    );
    assert_eq!(t.get("marketplace-orders/").await.status, 502);
    assert_eq!(
        t.get("marketplace-orders/").await.status,
        200,
        "only the next 2 calls"
    );

    t.ctl(
        Method::POST,
        "faults",
        Some(json!({"kind": "throttle", "retry_after": 7, "times": 1})),
    )
    .await;
    let r = t.get("users/").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after"], "7");
    assert_eq!(
        r.body,
        json!({"detail": "Request was throttled. Expected available in 7 seconds."})
    );

    t.ctl(
        Method::POST,
        "faults",
        Some(json!({"kind": "latency", "latency_ms": 300})),
    )
    .await;
    let start = Instant::now();
    assert_eq!(t.get("users/").await.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
    let r = t.ctl(Method::GET, "faults", None).await;
    assert_eq!(r.body.as_array().unwrap().len(), 3);
    assert_eq!(t.ctl(Method::DELETE, "faults", None).await.status, 204);
    let start = Instant::now();
    t.get("users/").await;
    assert!(start.elapsed() < Duration::from_millis(300));

    // Rate 0 never fires; invalid specs are refused.
    t.ctl(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "rate": 0.0})),
    )
    .await;
    assert_eq!(t.get("users/").await.status, 200);
    assert_eq!(
        t.ctl(
            Method::POST,
            "faults",
            Some(json!({"kind": "error", "rate": 2.0}))
        )
        .await
        .status,
        400
    );
    assert_eq!(
        t.ctl(Method::POST, "faults", Some(json!({"kind": "explode"})))
            .await
            .status,
        400
    );
    t.sim.stop().await;
}

#[tokio::test]
async fn faults_drop_and_hang() {
    let t = setup().await;
    t.ctl(
        Method::POST,
        "faults",
        Some(json!({"kind": "drop", "path_prefix": "/api/users/", "times": 1})),
    )
    .await;
    let err =
        t.c.get(t.url("users/"))
            .header("Authorization", format!("Token {}", demo::TOKEN))
            .send()
            .await
            .expect_err("the connection is dropped without a response");
    assert!(!err.is_status(), "{err:?}");
    assert!(!err.is_timeout(), "{err:?}");
    assert_eq!(t.get("users/").await.status, 200, "the next call works");

    t.ctl(
        Method::POST,
        "faults",
        Some(json!({"kind": "hang", "hang_ms": 60000, "times": 1})),
    )
    .await;
    let start = Instant::now();
    let err =
        t.c.get(t.url("users/"))
            .header("Authorization", format!("Token {}", demo::TOKEN))
            .timeout(Duration::from_millis(300))
            .send()
            .await
            .expect_err("hangs");
    assert!(err.is_timeout(), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    let calls = t.ctl(Method::GET, "calls", None).await.body;
    let faults: Vec<&str> = calls
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["fault"].as_str())
        .collect();
    assert_eq!(faults, vec!["drop", "hang"]);
    // Stopping does not wait for the hung request.
    let start = Instant::now();
    t.sim.stop().await;
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn calls_are_recorded_and_reset_restores_demo() {
    let t = setup().await;
    t.post(
        &format!(
            "marketplace-orders/{}/approve_by_provider/",
            demo::ORDER_PENDING_UUID
        ),
        json!({"attributes": {"a": 1}}),
    )
    .await;
    t.get("marketplace-orders/?state=executing&page_size=5")
        .await;
    t.call_as(None, Method::GET, "users/", None).await;
    let calls = t.ctl(Method::GET, "calls", None).await.body;
    let calls = calls.as_array().unwrap();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0]["method"], "POST");
    assert_eq!(
        calls[0]["path"],
        format!(
            "/api/marketplace-orders/{}/approve_by_provider/",
            demo::ORDER_PENDING_UUID
        )
    );
    assert_eq!(calls[0]["body"], json!({"attributes": {"a": 1}}));
    assert_eq!(calls[0]["status"], 200);
    assert!(calls[0]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(calls[1]["query"], "state=executing&page_size=5");
    assert_eq!(calls[2]["status"], 401);
    let filtered = t.ctl(Method::GET, "calls?method=POST", None).await.body;
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    assert_eq!(t.ctl(Method::DELETE, "calls", None).await.status, 204);
    assert_eq!(t.ctl(Method::GET, "calls", None).await.body, json!([]));

    let o = t
        .ctl(
            Method::GET,
            &format!("state/order/{}", demo::ORDER_PENDING_UUID),
            None,
        )
        .await;
    assert_eq!(o.body["state"], "executing");
    t.ctl(Method::POST, "faults", Some(json!({"kind": "error"})))
        .await;
    t.get("users/").await;
    assert_eq!(t.ctl(Method::POST, "reset", None).await.status, 200);
    let o = t
        .ctl(
            Method::GET,
            &format!("state/order/{}", demo::ORDER_PENDING_UUID),
            None,
        )
        .await;
    assert_eq!(o.body["state"], "pending-provider");
    assert_eq!(t.ctl(Method::GET, "calls", None).await.body, json!([]));
    assert_eq!(t.ctl(Method::GET, "faults", None).await.body, json!([]));
    assert_eq!(t.get("users/").await.status, 200);
    let r = t
        .ctl(
            Method::GET,
            &format!("state/resource/{}", demo::OTHER_RESOURCE_UUID),
            None,
        )
        .await;
    assert_eq!(r.body["state"], "OK", "the control API sees every object");
    assert_eq!(
        t.ctl(
            Method::GET,
            "state/resource/ffffffffffffffffffffffffffffffff",
            None
        )
        .await
        .status,
        404
    );
    t.sim.stop().await;
}

#[test]
fn demo_uuids_are_32_hex() {
    for u in [
        demo::SERVICE_PROVIDER_UUID,
        demo::SP_CUSTOMER_UUID,
        demo::LUMI_OFFERING_UUID,
        demo::SECOND_OFFERING_UUID,
        demo::OTHER_SP_UUID,
        demo::OTHER_OFFERING_UUID,
        demo::RESOURCE_OK_UUID,
        demo::ORDER_PENDING_UUID,
        demo::USER_ALICE_UUID,
        demo::PROJECT_A_UUID,
    ] {
        assert_eq!(u.len(), 32);
        assert!(
            u.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{u}"
        );
    }
    assert_eq!(demo::TOKEN.len(), 40);
    assert!(demo::TOKEN.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(demo::OTHER_SP_TOKEN.chars().all(|c| c.is_ascii_hexdigit()));
    let w = sim::state::World::default();
    assert!(w.resources.is_empty());
}

#[path = "support/external.rs"]
mod external;

#[path = "sim_support/schema.rs"]
mod schema;

#[tokio::test]
async fn seeded_resources_take_usage_and_keep_one_record_per_key() {
    let t = setup().await;
    let r = t
        .ctl(
            Method::POST,
            "resources",
            Some(json!({"count": 500, "backend_id_prefix": "bench-"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let seeded = r.body.as_array().unwrap().clone();
    assert_eq!(seeded.len(), 500);
    let last = seeded[499]["uuid"].as_str().unwrap().to_string();
    let backend_id = seeded[499]["backend_id"].as_str().unwrap().to_string();
    assert!(backend_id.starts_with("bench-"));

    // The provider sees it, by uuid and by backend_id.
    let res = t
        .get(&format!("marketplace-provider-resources/{last}/"))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["state"], "OK");
    let by_backend = t
        .get(&format!(
            "marketplace-provider-resources/?backend_id={backend_id}"
        ))
        .await;
    assert_eq!(uuids(&by_backend.body), vec![last.clone()]);
    // The other provider does not.
    let hidden = t
        .other_get(&format!("marketplace-provider-resources/{last}/"))
        .await;
    assert_eq!(hidden.status, 404);

    // Usage upserts through the index: two reports for the same key leave one record with the
    // second amount; another month is another record; demo records are untouched.
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    let this_month = today.format("%Y-%m-01").to_string();
    let prev = (today.with_day(1).unwrap() - chrono::Duration::days(1))
        .format("%Y-%m-15")
        .to_string();
    for (amount, date) in [("1.00", None), ("2.50", None), ("9.00", Some(prev))] {
        let mut body =
            json!({"resource": last, "usages": [{"type": "cpu_k_hours", "amount": amount}]});
        if let Some(d) = date {
            body["date"] = json!(d);
        }
        let r = t
            .post("marketplace-component-usages/set_usage/", body)
            .await;
        assert_eq!(r.status, 201, "{}", r.raw);
    }
    let records = t
        .ctl(Method::GET, &format!("state/usages/{last}"), None)
        .await;
    let records = records.body.as_array().unwrap().clone();
    assert_eq!(records.len(), 2, "{records:?}");
    let current = records
        .iter()
        .find(|u| u["billing_period"] == this_month.as_str())
        .expect("this month's record");
    assert_eq!(current["usage"], "2.50");
    let demo_records = t
        .ctl(
            Method::GET,
            &format!("state/usages/{}", demo::RESOURCE_OK_UUID),
            None,
        )
        .await;
    assert_eq!(demo_records.body.as_array().unwrap().len(), 3);

    // Bad seeds change nothing.
    let r = t
        .ctl(Method::POST, "resources", Some(json!({"count": 0})))
        .await;
    assert_eq!(r.status, 400);
    let r = t
        .ctl(
            Method::POST,
            "resources",
            Some(json!({"count": 1, "offering_uuid": "00000000000000000000000000000000"})),
        )
        .await;
    assert_eq!(r.status, 400);
    let all = t.get("marketplace-provider-resources/?page_size=1").await;
    let count: usize = all.headers["x-result-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        count, 505,
        "5 demo resources of this provider and 500 seeded"
    );
}

/// Fact: Waldur finishes `Marketplace.Basic` orders by itself after approval; a later
/// `set_state_done` is 409. The site-agent kind (`Marketplace.Slurm`) waits for the provider.
#[tokio::test]
async fn basic_orders_finish_by_themselves_and_site_agent_orders_wait() {
    let t = setup().await;
    let r = t
        .ctl(
            Method::POST,
            "settings",
            Some(json!({"self_processing_delay_ms": 100})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let order = format!("marketplace-orders/{}/", demo::ORDER_PENDING_UUID);
    let r = t
        .post(&format!("{order}approve_by_provider/"), json!({}))
        .await;
    assert_eq!(r.status, 200);
    // Reviewed by the token's user, at approval.
    let o = t.get(&order).await.body;
    assert!(o["provider_reviewed_at"].is_string(), "{o}");
    assert!(o["provider_reviewed_by_username"].is_string(), "{o}");
    // Fact 3: the marketplace resource is only in `marketplace_resource_uuid`.
    assert_eq!(o["resource_uuid"], Value::Null);
    assert_eq!(o["marketplace_resource_uuid"], demo::RESOURCE_CREATING_UUID);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let o = t.get(&order).await.body;
    assert_eq!(o["state"], "done", "{o}");
    let res = t
        .get(&format!(
            "marketplace-provider-resources/{}/",
            demo::RESOURCE_CREATING_UUID
        ))
        .await
        .body;
    assert_eq!(res["state"], "OK");
    let r = t.post(&format!("{order}set_state_done/"), json!({})).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.body,
        json!({"detail": "Valid states for operation: executing."})
    );

    // The same offering as the site agent's kind: the order waits in `executing`.
    t.ctl(Method::POST, "reset", None).await;
    let r = t
        .ctl(
            Method::POST,
            "settings",
            Some(json!({"offering_types": {demo::LUMI_OFFERING_UUID: "Marketplace.Slurm"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    t.post(&format!("{order}approve_by_provider/"), json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(t.get(&order).await.body["state"], "executing");
    let r = t.post(&format!("{order}set_state_done/"), json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(t.get(&order).await.body["state"], "done");
}

/// Fact 10: Terminate orders carry no plan and no cost. Fact 11: `set_state_erred` puts its
/// message on the order only.
#[tokio::test]
async fn terminate_orders_have_no_plan_and_erred_stays_on_the_order() {
    let t = setup().await;
    let r = t
        .post(
            &format!(
                "marketplace-resources/{}/terminate/",
                demo::RESOURCE_OK_UUID
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let uuid = r.body["order_uuid"].as_str().unwrap().to_string();
    let o = t.get(&format!("marketplace-orders/{uuid}/")).await.body;
    assert_eq!(o["type"], "Terminate");
    assert_eq!(o["plan"], Value::Null);
    assert_eq!(o["cost"], Value::Null);
    assert!(
        o.get("plan_uuid").is_none() && o.get("plan_name").is_none(),
        "{o}"
    );

    let slurm_order = format!("marketplace-orders/{}/", demo::ORDER_SLURM_EXECUTING_UUID);
    let before = t.get(&slurm_order).await.body["marketplace_resource_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t
        .post(
            &format!("{slurm_order}set_state_erred/"),
            json!({"error_message": "sacctmgr failed", "error_traceback": "tb"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let o = t.get(&slurm_order).await.body;
    assert_eq!(o["error_message"], "sacctmgr failed");
    let res = t
        .ctl(Method::GET, &format!("state/resource/{before}"), None)
        .await
        .body;
    assert_ne!(res["error_message"], "sacctmgr failed", "{res}");
}

/// Fact 6: a 500 from Waldur is Django's HTML page.
#[tokio::test]
async fn a_server_error_is_an_html_page() {
    let t = setup().await;
    t.ctl(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 500, "times": 1})),
    )
    .await;
    let r = t.get("marketplace-orders/").await;
    assert_eq!(r.status, 500);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        r.raw.contains("<title>Server Error (500)</title>"),
        "{}",
        r.raw
    );
}

/// Fact 4: negative usage is stored (201). Fact 8: an empty report is 400 and keeps the old one;
/// a report that is not a list is a nested 400.
#[tokio::test]
async fn negative_usage_is_stored_and_an_empty_report_is_refused() {
    let t = setup().await;
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let r = t
        .post(
            "marketplace-component-usages/set_usage/",
            json!({"resource": demo::RESOURCE_OK_UUID, "date": date,
                   "usages": [{"type": "cpu_k_hours", "amount": "-5.00"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let stored = t
        .ctl(
            Method::GET,
            &format!("state/usages/{}", demo::RESOURCE_OK_UUID),
            None,
        )
        .await
        .body;
    assert!(
        stored
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["type"] == "cpu_k_hours" && u["usage"] == "-5.00"),
        "{stored}"
    );

    let base = format!("marketplace-provider-resources/{}/", demo::RESOURCE_OK_UUID);
    let before = t.get(&base).await.body["report"].clone();
    assert!(!before.as_array().unwrap().is_empty());
    let r = t
        .post(&format!("{base}submit_report/"), json!({"report": []}))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body.clone()),
        (
            400,
            json!(["Report object should contain at least one section."])
        )
    );
    assert_eq!(t.get(&base).await.body["report"], before);
    let r = t
        .post(
            &format!("{base}submit_report/"),
            json!({"report": {"x": 1}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body["report"]["non_field_errors"].is_array(), "{}", r.raw);
}

/// Fact 2: an action the token's user lacks the permission for is Waldur's 403
/// `{"detail": "You do not have permission to perform this action."}`, set_usage included, while
/// reads of the same objects still answer.
#[tokio::test]
async fn fact_2_actions_without_permission_are_403() {
    let t = setup().await;
    let forbidden = json!({"detail": "You do not have permission to perform this action."});
    let r = t
        .ctl(
            Method::POST,
            "settings",
            Some(json!({"read_only_offerings": [demo::LUMI_OFFERING_UUID]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        r.body["read_only_offerings"],
        json!([demo::LUMI_OFFERING_UUID])
    );
    let usage = json!({"resource": demo::RESOURCE_OK_UUID, "usages": [{"type": "cpu_k_hours", "amount": "1"}]});
    let r = t
        .post("marketplace-component-usages/set_usage/", usage.clone())
        .await;
    assert_eq!((r.status.as_u16(), &r.body), (403, &forbidden));
    // Nothing was stored.
    let r = t
        .ctl(
            Method::GET,
            &format!("state/usages/{}", demo::RESOURCE_OK_UUID),
            None,
        )
        .await;
    assert!(!r.raw.contains("\"1.00\""), "{}", r.raw);
    for (path, body) in [
        (
            format!(
                "marketplace-provider-resources/{}/set_backend_id/",
                demo::RESOURCE_OK_UUID
            ),
            json!({"backend_id": "x"}),
        ),
        (
            format!(
                "marketplace-orders/{}/approve_by_provider/",
                demo::ORDER_PENDING_UUID
            ),
            json!({}),
        ),
        (
            "marketplace-offering-users/".to_string(),
            json!({"offering_uuid": demo::LUMI_OFFERING_UUID, "user_uuid": demo::USER_DAVE_UUID, "username": "dave"}),
        ),
    ] {
        let r = t.post(&path, body).await;
        assert_eq!((r.status.as_u16(), &r.body), (403, &forbidden), "{path}");
    }
    // Reads still answer.
    let r = t
        .get(&format!(
            "marketplace-provider-resources/{}/",
            demo::RESOURCE_OK_UUID
        ))
        .await;
    assert_eq!(r.status, 200);
    // Another offering of the same provider is not affected.
    let r = t
        .post(
            &format!(
                "marketplace-provider-resources/{}/set_backend_id/",
                demo::RESOURCE_SLURM_UUID
            ),
            json!({"backend_id": "slurm-1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    // Reset gives the permission back.
    t.ctl(Method::POST, "reset", None).await;
    let r = t
        .post("marketplace-component-usages/set_usage/", usage)
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    t.sim.stop().await;
}

/// Fact 5: list filters are validated like Waldur's filter sets: a state that is not one of the
/// names exactly (wrong case included) is a 400 naming the value, a malformed uuid is
/// `["Enter a valid UUID."]`, and a dashed uuid matches like the undashed one.
#[tokio::test]
async fn fact_5_list_filters_are_validated() {
    let t = setup().await;
    let r = t.get("marketplace-provider-resources/?state=ok").await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert_eq!(
        r.body,
        json!({"state": ["Select a valid choice. ok is not one of the available choices."]})
    );
    let r = t.get("marketplace-orders/?state=bogus").await;
    assert_eq!(
        (r.status.as_u16(), r.body),
        (
            400,
            json!({"state": ["Select a valid choice. bogus is not one of the available choices."]})
        )
    );
    let r = t.get("marketplace-orders/?state=Executing").await;
    assert_eq!(r.status, 400);
    let r = t.get("marketplace-orders/?type=create").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["type"][0],
        "Select a valid choice. create is not one of the available choices."
    );
    for (path, name) in [
        (
            "marketplace-provider-resources/?offering_uuid=nope",
            "offering_uuid",
        ),
        ("marketplace-orders/?resource_uuid=7e00", "resource_uuid"),
        (
            "marketplace-component-usages/?resource_uuid=xyz",
            "resource_uuid",
        ),
        ("marketplace-offering-users/?user_uuid=1234", "user_uuid"),
        ("users/?uuid=not-a-uuid", "uuid"),
        (
            "marketplace-service-providers/?customer_uuid=c0",
            "customer_uuid",
        ),
    ] {
        let r = t.get(path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.raw);
        assert_eq!(r.body, json!({ name: ["Enter a valid UUID."] }), "{path}");
    }
    // Every invalid filter is named in one answer.
    let r = t
        .get("marketplace-provider-resources/?state=ok&project_uuid=x")
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.get("state").is_some() && r.body.get("project_uuid").is_some(),
        "{}",
        r.raw
    );
    // A dashed (or upper-case) uuid matches like the undashed one.
    let dashed = |u: &str| {
        format!(
            "{}-{}-{}-{}-{}",
            &u[..8],
            &u[8..12],
            &u[12..16],
            &u[16..20],
            &u[20..]
        )
    };
    let undashed = t
        .get(&format!(
            "marketplace-provider-resources/?offering_uuid={}",
            demo::SECOND_OFFERING_UUID
        ))
        .await;
    assert_eq!(uuids(&undashed.body), vec![demo::RESOURCE_SLURM_UUID]);
    for form in [
        dashed(demo::SECOND_OFFERING_UUID),
        demo::SECOND_OFFERING_UUID.to_uppercase(),
    ] {
        let r = t
            .get(&format!(
                "marketplace-provider-resources/?offering_uuid={form}"
            ))
            .await;
        assert_eq!(r.status, 200, "{form}");
        assert_eq!(r.body, undashed.body, "{form}");
    }
    let r = t
        .get(&format!(
            "marketplace-offering-users/?offering_uuid={}&user_uuid={}",
            dashed(demo::LUMI_OFFERING_UUID),
            dashed(demo::USER_ALICE_UUID)
        ))
        .await;
    assert_eq!(uuids(&r.body), vec![demo::OFFERING_USER_ALICE_UUID]);
    // Exact names pass; an empty value is no filter.
    let r = t
        .get("marketplace-provider-resources/?state=OK&state=")
        .await;
    assert_eq!(r.status, 200);
    t.sim.stop().await;
}

/// Fact 7: `marketplace-offering-users/` shows only offering users of offerings whose
/// `plugin_options.service_provider_can_create_offering_user` is set; the others exist but are
/// neither listed nor retrievable, and creating one there is a 400.
#[tokio::test]
async fn fact_7_offering_users_only_where_the_provider_may_create_them() {
    let t = setup().await;
    let r = t
        .get(&format!(
            "marketplace-provider-offerings/{}/",
            demo::SECOND_OFFERING_UUID
        ))
        .await;
    assert_eq!(
        r.body["plugin_options"]["service_provider_can_create_offering_user"],
        false
    );
    // It exists...
    let r = t
        .ctl(
            Method::GET,
            &format!("state/offering-user/{}", demo::HIDDEN_OFFERING_USER_UUID),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    // ...but is not listed, with or without filters, nor retrievable.
    let r = t.get("marketplace-offering-users/?page_size=100").await;
    let listed = uuids(&r.body);
    assert!(listed.contains(&demo::OFFERING_USER_ALICE_UUID.to_string()));
    assert!(!listed.contains(&demo::HIDDEN_OFFERING_USER_UUID.to_string()));
    let r = t
        .get(&format!(
            "marketplace-offering-users/?offering_uuid={}",
            demo::SECOND_OFFERING_UUID
        ))
        .await;
    assert_eq!(r.body, json!([]));
    assert_eq!(r.headers["x-result-count"], "0");
    let r = t
        .get(&format!(
            "marketplace-offering-users/{}/",
            demo::HIDDEN_OFFERING_USER_UUID
        ))
        .await;
    assert_eq!(r.status, 404);
    // Creating one there is refused.
    let r = t
        .post(
            "marketplace-offering-users/",
            json!({"offering_uuid": demo::SECOND_OFFERING_UUID, "user_uuid": demo::USER_BOB_UUID, "username": "bob"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!(["It is not allowed to create users for current offering."])
    );
    t.sim.stop().await;
}

fn link_of(h: &HeaderMap) -> String {
    h.get("link")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Fact 9: lists are oldest first by default and honour `o=created` / `o=-created`; `Link`
/// always carries `rel="first"` and `rel="last"`, even on a single page, with page 1's URL
/// carrying no `page=` (DRF's helpers, which also sort the query by key).
#[tokio::test]
async fn fact_9_oldest_first_and_waldurs_link_form() {
    let t = setup().await;
    let created = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x["created"].as_str().unwrap().to_string())
            .collect()
    };
    for list in [
        "marketplace-orders/",
        "marketplace-provider-resources/",
        "marketplace-component-usages/",
    ] {
        let default = t.get(&format!("{list}?page_size=100")).await;
        let times = created(&default.body);
        assert!(times.len() > 1, "{list}");
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(times, sorted, "{list}: oldest first by default");
        let asc = t.get(&format!("{list}?page_size=100&o=created")).await;
        assert_eq!(asc.body, default.body, "{list}");
        let desc = t.get(&format!("{list}?page_size=100&o=-created")).await;
        let mut reversed = times.clone();
        reversed.reverse();
        assert_eq!(created(&desc.body), reversed, "{list}");
    }
    // A single page: first and last all the same, page 1 without `page=`, `last` with it.
    let base = format!("http://{}/api/marketplace-orders/", t.sim.addr());
    let r = t
        .get(&format!(
            "marketplace-orders/?state=done&offering_uuid={}",
            demo::LUMI_OFFERING_UUID
        ))
        .await;
    assert_eq!(
        link_of(&r.headers),
        format!(
            "<{base}?offering_uuid={o}&state=done>; rel=\"first\", <{base}?offering_uuid={o}&page=1&state=done>; rel=\"last\"",
            o = demo::LUMI_OFFERING_UUID
        )
    );
    // Without any query, page 1's URL is the bare path.
    let r = t.get("marketplace-orders/").await;
    assert!(
        link_of(&r.headers).starts_with(&format!("<{base}>; rel=\"first\"")),
        "{}",
        link_of(&r.headers)
    );
    // Several pages: first, prev, next, last in that order; prev of page 2 has no `page=`.
    let r = t.get("marketplace-orders/?page_size=2&page=2").await;
    assert_eq!(
        link_of(&r.headers),
        format!(
            "<{base}?page_size=2>; rel=\"first\", <{base}?page_size=2>; rel=\"prev\", <{base}?page=3&page_size=2>; rel=\"next\", <{base}?page=3&page_size=2>; rel=\"last\""
        )
    );
    // The other form on request (to try clients against both): only links that lead elsewhere.
    let r = t
        .ctl(
            Method::POST,
            "settings",
            Some(json!({"link_form": "page_numbers"})),
        )
        .await;
    assert_eq!(r.body["link_form"], "page_numbers", "{}", r.raw);
    let r = t.get("marketplace-orders/?page_size=100").await;
    assert!(r.headers.get("link").is_none());
    let r = t.get("marketplace-orders/?page_size=2").await;
    assert_eq!(
        link_of(&r.headers),
        format!(
            "<{base}?page_size=2&page=2>; rel=\"next\", <{base}?page_size=2&page=3>; rel=\"last\""
        )
    );
    t.sim.stop().await;
}

#[path = "sim_support/waldur_sdk.rs"]
mod waldur_sdk;

#[path = "sim_support/consumer.rs"]
mod consumer;
