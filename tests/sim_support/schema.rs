//! Every in-scope operation's JSON answer, validated against the operation's response schema in
//! Waldur's OpenAPI document (`../shared/upstream/waldur-openapi-schema-8.0.5.yaml`, or
//! `$WALDUR_OPENAPI_SCHEMA`). Without the schema file the test is skipped with a message, unless
//! `GATEWAY_TESTS_REQUIRE_EXTERNAL` is set (as `.ci/run` does), where it fails.
//!
//! OpenAPI 3.0 → JSON Schema: `nullable: true` becomes `anyOf: [<schema>, {type: null}]`;
//! `format` is not asserted (Waldur prints dash-less UUIDs that a strict `uuid` format rejects).
//!
//! One deliberate patch: the 8.0.5 schema types `ComponentUsage.usage` as `integer`, but the
//! serializer behind it is a model `DecimalField` (Waldur prints `"12.50"`, and the same field in
//! `BaseComponentUsage` is a decimal string). The simulator follows the real server; the test
//! validates that one field against the decimal-string definition instead.

use super::*;
use serde_json::Map;

fn schema_path() -> String {
    std::env::var("WALDUR_OPENAPI_SCHEMA").unwrap_or_else(|_| {
        format!(
            "{}/../shared/upstream/waldur-openapi-schema-8.0.5.yaml",
            env!("CARGO_MANIFEST_DIR")
        )
    })
}

fn load_schema() -> Value {
    let path = schema_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "\n\n*** The Waldur OpenAPI schema is required for this test and could not be read ***\n\
             path: {path}\nerror: {e}\n\
             Set WALDUR_OPENAPI_SCHEMA to the path of waldur-openapi-schema-8.0.5.yaml.\n\n"
        )
    });
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("schema parses as YAML");
    serde_json::to_value(yaml).expect("schema converts to JSON")
}

/// Rewrite OpenAPI 3.0 `nullable: true` into a JSON Schema union, everywhere.
fn rewrite_nullable(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (_, child) in m.iter_mut() {
                rewrite_nullable(child);
            }
            if m.get("nullable") == Some(&Value::Bool(true)) {
                m.remove("nullable");
                let inner = Value::Object(std::mem::take(m));
                m.insert("anyOf".into(), json!([inner, {"type": "null"}]));
            }
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_nullable),
        _ => {}
    }
}

/// Operations whose JSON answer CONTRACT.md documents although the schema declares none:
/// `set_offerings_username` answers 201 `{"detail": "Offering users have been set."}`.
const BODY_NOT_IN_SCHEMA: &[&str] =
    &["/api/marketplace-service-providers/{uuid}/set_offerings_username/"];

struct Checker {
    doc: Value,
    components: Value,
}

impl Checker {
    fn new() -> Self {
        let mut doc = load_schema();
        let mut components = doc["components"].take();
        // See the module docs: ComponentUsage.usage is a decimal string on the wire.
        components["schemas"]["ComponentUsage"]["properties"]["usage"] =
            components["schemas"]["BaseComponentUsage"]["properties"]["usage"].clone();
        rewrite_nullable(&mut components);
        Self { doc, components }
    }

    fn response_schema(&self, path: &str, method: &str, status: u16) -> Option<Value> {
        let op = &self.doc["paths"][path][method];
        assert!(
            op.is_object(),
            "operation {method} {path} is not in the schema"
        );
        let resp = &op["responses"][status.to_string()];
        assert!(
            resp.is_object(),
            "{method} {path} has no {status} response in the schema"
        );
        let s = resp["content"]["application/json"]["schema"].clone();
        (!s.is_null()).then_some(s)
    }

    fn check(&self, path: &str, method: &str, status: u16, body: &Value, raw: &str) -> usize {
        let Some(mut schema) = self.response_schema(path, method, status) else {
            // CONTRACT.md (from Waldur's view code) documents a body the schema omits here.
            if BODY_NOT_IN_SCHEMA.contains(&path) {
                assert!(body.is_object(), "{method} {path}: {raw}");
            } else {
                assert!(
                    raw.is_empty(),
                    "{method} {path}: schema declares no body, got {raw}"
                );
            }
            return 0;
        };
        rewrite_nullable(&mut schema);
        let mut root = match schema {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("allOf".into(), json!([other]));
                m
            }
        };
        root.insert("components".into(), self.components.clone());
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(false)
            .build(&Value::Object(root))
            .unwrap_or_else(|e| panic!("schema for {method} {path} compiles: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .take(10)
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} → {status}: body does not match the schema:\n{}\nbody: {}",
            errors.join("\n"),
            serde_json::to_string_pretty(body).unwrap()
        );
        // Objects must be non-trivial: the simulator really carries the fields.
        1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_matches_the_waldur_schema() {
    if !external::require(
        "Waldur's OpenAPI schema (../shared/upstream, or WALDUR_OPENAPI_SCHEMA)",
        std::path::Path::new(&schema_path()).is_file(),
    ) {
        return;
    }
    let checker = tokio::task::spawn_blocking(Checker::new).await.unwrap();
    let t = setup().await;
    let api = t.sim.api_url();
    let sp = demo::SERVICE_PROVIDER_UUID;
    let res_ok = demo::RESOURCE_OK_UUID;
    let offering_url = format!(
        "{api}marketplace-public-offerings/{}/",
        demo::LUMI_OFFERING_UUID
    );

    // (method, schema path, concrete path, body)
    let mut ops: Vec<(&str, String, String, Option<Value>)> = vec![
        ("get", "/api/users/".into(), "users/".into(), None),
        ("get", "/api/keys/".into(), "keys/".into(), None),
        (
            "get",
            "/api/marketplace-provider-resources/".into(),
            "marketplace-provider-resources/?page_size=50".into(),
            None,
        ),
        (
            "get",
            "/api/marketplace-provider-resources/{uuid}/".into(),
            format!(
                "marketplace-provider-resources/{}/",
                demo::RESOURCE_CREATING_UUID
            ),
            None,
        ),
        (
            "get",
            "/api/marketplace-provider-resources/{uuid}/team/".into(),
            format!("marketplace-provider-resources/{res_ok}/team/"),
            None,
        ),
        (
            "get",
            "/api/marketplace-provider-resources/{uuid}/plan_periods/".into(),
            format!("marketplace-provider-resources/{res_ok}/plan_periods/"),
            None,
        ),
        (
            "post",
            "/api/marketplace-provider-resources/{uuid}/set_backend_id/".into(),
            format!("marketplace-provider-resources/{res_ok}/set_backend_id/"),
            Some(json!({"backend_id": "b1"})),
        ),
        (
            "post",
            "/api/marketplace-provider-resources/{uuid}/submit_report/".into(),
            format!("marketplace-provider-resources/{res_ok}/submit_report/"),
            Some(json!({"report": [{"header": "h", "body": "b"}]})),
        ),
        (
            "post",
            "/api/marketplace-provider-resources/{uuid}/set_limits/".into(),
            format!("marketplace-provider-resources/{res_ok}/set_limits/"),
            Some(json!({"limits": {"cpu_k_hours": 5}})),
        ),
        (
            "post",
            "/api/marketplace-provider-resources/{uuid}/set_as_erred/".into(),
            format!("marketplace-provider-resources/{res_ok}/set_as_erred/"),
            Some(json!({"error_message": "x"})),
        ),
        (
            "post",
            "/api/marketplace-provider-resources/{uuid}/set_state_ok/".into(),
            format!("marketplace-provider-resources/{res_ok}/set_state_ok/"),
            None,
        ),
        (
            "post",
            "/api/marketplace-provider-resources/{uuid}/set_as_ok/".into(),
            format!("marketplace-provider-resources/{res_ok}/set_as_ok/"),
            None,
        ),
        (
            "post",
            "/api/marketplace-component-usages/set_usage/".into(),
            "marketplace-component-usages/set_usage/".into(),
            Some(
                json!({"resource": res_ok, "usages": [{"type": "cpu_k_hours", "amount": "12.5"}]}),
            ),
        ),
        (
            "get",
            "/api/marketplace-component-usages/".into(),
            format!("marketplace-component-usages/?resource_uuid={res_ok}"),
            None,
        ),
        (
            "get",
            "/api/marketplace-orders/".into(),
            "marketplace-orders/".into(),
            None,
        ),
        (
            "get",
            "/api/marketplace-orders/{uuid}/".into(),
            format!("marketplace-orders/{}/", demo::ORDER_PENDING_UUID),
            None,
        ),
        (
            "post",
            "/api/marketplace-orders/{uuid}/set_backend_id/".into(),
            format!(
                "marketplace-orders/{}/set_backend_id/",
                demo::ORDER_PENDING_UUID
            ),
            Some(json!({"backend_id": "o1"})),
        ),
        (
            "post",
            "/api/marketplace-orders/{uuid}/approve_by_provider/".into(),
            format!(
                "marketplace-orders/{}/approve_by_provider/",
                demo::ORDER_PENDING_UUID
            ),
            Some(json!({})),
        ),
        (
            "post",
            "/api/marketplace-orders/{uuid}/set_state_done/".into(),
            format!(
                "marketplace-orders/{}/set_state_done/",
                demo::ORDER_PENDING_UUID
            ),
            None,
        ),
        (
            "post",
            "/api/marketplace-orders/{uuid}/set_state_erred/".into(),
            format!(
                "marketplace-orders/{}/set_state_erred/",
                demo::ORDER_SLURM_EXECUTING_UUID
            ),
            Some(json!({"error_message": "e", "error_traceback": "t"})),
        ),
        (
            "post",
            "/api/marketplace-orders/".into(),
            "marketplace-orders/".into(),
            Some(
                json!({"project": format!("{api}projects/{}/", demo::PROJECT_CONSUMER_UUID), "offering": offering_url, "attributes": {"name": "schema-check"}}),
            ),
        ),
        (
            "post",
            "/api/marketplace-provider-resources/{uuid}/terminate/".into(),
            format!("marketplace-provider-resources/{res_ok}/terminate/"),
            Some(json!({})),
        ),
        (
            "get",
            "/api/marketplace-offering-users/".into(),
            "marketplace-offering-users/".into(),
            None,
        ),
        (
            "post",
            "/api/marketplace-offering-users/".into(),
            "marketplace-offering-users/".into(),
            Some(
                json!({"offering_uuid": demo::LUMI_OFFERING_UUID, "user_uuid": demo::USER_CAROL_UUID}),
            ),
        ),
        (
            "get",
            "/api/marketplace-offering-users/{uuid}/".into(),
            format!(
                "marketplace-offering-users/{}/",
                demo::OFFERING_USER_ALICE_UUID
            ),
            None,
        ),
        (
            "patch",
            "/api/marketplace-offering-users/{uuid}/".into(),
            format!(
                "marketplace-offering-users/{}/",
                demo::OFFERING_USER_ALICE_UUID
            ),
            Some(json!({"username": "alice2"})),
        ),
        (
            "get",
            "/api/marketplace-service-providers/".into(),
            "marketplace-service-providers/".into(),
            None,
        ),
        (
            "get",
            "/api/marketplace-service-providers/{service_provider_uuid}/users/".into(),
            format!("marketplace-service-providers/{sp}/users/"),
            None,
        ),
        (
            "get",
            "/api/marketplace-service-providers/{service_provider_uuid}/keys/".into(),
            format!("marketplace-service-providers/{sp}/keys/"),
            None,
        ),
        (
            "get",
            "/api/marketplace-service-providers/{service_provider_uuid}/projects/".into(),
            format!("marketplace-service-providers/{sp}/projects/"),
            None,
        ),
        (
            "get",
            "/api/marketplace-service-providers/{service_provider_uuid}/project_permissions/"
                .into(),
            format!("marketplace-service-providers/{sp}/project_permissions/"),
            None,
        ),
        (
            "post",
            "/api/marketplace-service-providers/{uuid}/set_offerings_username/".into(),
            format!("marketplace-service-providers/{sp}/set_offerings_username/"),
            Some(json!({"user_uuid": demo::USER_BOB_UUID, "username": "bob_x"})),
        ),
        (
            "get",
            "/api/marketplace-provider-offerings/{uuid}/list_customer_projects/".into(),
            format!(
                "marketplace-provider-offerings/{}/list_customer_projects/",
                demo::LUMI_OFFERING_UUID
            ),
            None,
        ),
        (
            "get",
            "/api/marketplace-provider-offerings/{uuid}/list_customer_users/".into(),
            format!(
                "marketplace-provider-offerings/{}/list_customer_users/",
                demo::LUMI_OFFERING_UUID
            ),
            None,
        ),
        (
            "get",
            "/api/marketplace-provider-offerings/".into(),
            "marketplace-provider-offerings/".into(),
            None,
        ),
        (
            "get",
            "/api/marketplace-provider-offerings/{uuid}/".into(),
            format!(
                "marketplace-provider-offerings/{}/",
                demo::LUMI_OFFERING_UUID
            ),
            None,
        ),
        (
            "get",
            "/api/marketplace-public-offerings/".into(),
            "marketplace-public-offerings/".into(),
            None,
        ),
        (
            "get",
            "/api/marketplace-public-offerings/{uuid}/".into(),
            format!("marketplace-public-offerings/{}/", demo::LUMI_OFFERING_UUID),
            None,
        ),
        (
            "get",
            "/api/marketplace-public-offerings/{uuid}/plans/{plan_uuid}/".into(),
            format!(
                "marketplace-public-offerings/{}/plans/{}/",
                demo::LUMI_OFFERING_UUID,
                demo::LUMI_PLAN_UUID
            ),
            None,
        ),
        (
            "get",
            "/api/marketplace-resources/{uuid}/".into(),
            format!("marketplace-resources/{}/", demo::RESOURCE_ERRED_UUID),
            None,
        ),
        (
            "put",
            "/api/marketplace-resources/{uuid}/".into(),
            format!("marketplace-resources/{}/", demo::RESOURCE_ERRED_UUID),
            Some(json!({"name": "n"})),
        ),
        (
            "patch",
            "/api/marketplace-resources/{uuid}/".into(),
            format!("marketplace-resources/{}/", demo::RESOURCE_ERRED_UUID),
            Some(json!({"end_date": null})),
        ),
        (
            "post",
            "/api/marketplace-resources/{uuid}/terminate/".into(),
            format!(
                "marketplace-resources/{}/terminate/",
                demo::RESOURCE_ERRED_UUID
            ),
            Some(json!({})),
        ),
    ];
    // After creating an order in the consumer project: approve it as consumer, then reject as provider.
    let mut validated = 0;
    let mut created_order: Option<String> = None;
    for (method, schema_path, path, body) in ops.drain(..) {
        let r = t
            .call_as(
                Some(demo::TOKEN),
                method.to_uppercase().parse().unwrap(),
                &path,
                body,
            )
            .await;
        assert!(
            r.status.is_success(),
            "{method} {path} → {}: {}",
            r.status,
            r.raw
        );
        validated += checker.check(&schema_path, method, r.status.as_u16(), &r.body, &r.raw);
        if schema_path == "/api/marketplace-orders/" && method == "post" {
            created_order = r.body["uuid"].as_str().map(str::to_string);
        }
        if r.body.is_array() {
            assert!(
                !r.body.as_array().unwrap().is_empty(),
                "{path}: use data that lists something"
            );
        }
    }
    let order = created_order.expect("order created");
    for (method, schema_path, path) in [
        (
            "post",
            "/api/marketplace-orders/{uuid}/approve_by_consumer/",
            format!("marketplace-orders/{order}/approve_by_consumer/"),
        ),
        (
            "post",
            "/api/marketplace-orders/{uuid}/reject_by_provider/",
            format!("marketplace-orders/{order}/reject_by_provider/"),
        ),
    ] {
        let r = t
            .call_as(Some(demo::TOKEN), Method::POST, &path, Some(json!({})))
            .await;
        assert!(r.status.is_success(), "{path}: {}", r.raw);
        validated += checker.check(schema_path, method, r.status.as_u16(), &r.body, &r.raw);
    }
    // update_options: 409 on an Erred resource, then on one made OK; cancel of a Basic order.
    let r = t
        .post(
            &format!(
                "marketplace-resources/{}/update_options/",
                demo::RESOURCE_SLURM_UUID
            ),
            json!({"options": {}}),
        )
        .await;
    assert_eq!(r.status, 409);
    t.post(
        &format!(
            "marketplace-orders/{}/approve_by_provider/",
            demo::ORDER_PENDING_UUID
        ),
        json!({}),
    )
    .await;
    let r = t
        .post(
            &format!(
                "marketplace-orders/{}/set_state_done/",
                demo::ORDER_EXECUTING_UUID
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = t
        .post(
            &format!(
                "marketplace-resources/{}/update_options/",
                demo::RESOURCE_PROVISIONING_UUID
            ),
            json!({"options": {"is_industry": false}}),
        )
        .await;
    validated += checker.check(
        "/api/marketplace-resources/{uuid}/update_options/",
        "post",
        r.status.as_u16(),
        &r.body,
        &r.raw,
    );
    let r = t
        .post("marketplace-orders/", json!({"project": format!("{api}projects/{}/", demo::PROJECT_SP_UUID), "offering": offering_url}))
        .await;
    let o = r.body["uuid"].as_str().unwrap().to_string();
    let r = t
        .post(&format!("marketplace-orders/{o}/cancel/"), json!({}))
        .await;
    assert_eq!(r.status, 202);
    checker.check(
        "/api/marketplace-orders/{uuid}/cancel/",
        "post",
        202,
        &r.body,
        &r.raw,
    );
    let r = t
        .post(
            &format!("marketplace-orders/{}/reject_by_consumer/", o),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert!(validated >= 30, "validated {validated} bodies");
    t.sim.stop().await;
}
