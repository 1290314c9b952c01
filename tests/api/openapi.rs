//! The committed `openapi/openapi.json` is exactly what the code generates.

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let generated = puhuri_gateway::api::openapi::document_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date: run `cargo run -- openapi > openapi/openapi.json` \
         (or UPDATE_OPENAPI=1 cargo test --test api openapi) and commit it"
    );
}

#[test]
fn every_v1_operation_declares_bearer_security_and_problem_errors() {
    for (path, method, op) in documented_operations() {
        if !path.starts_with("/v1/") {
            continue;
        }
        assert!(
            op["security"].as_array().is_some_and(|s| !s.is_empty()),
            "{method} {path} has no security requirement"
        );
        assert!(
            op["responses"]["401"].is_object(),
            "{method} {path} does not document 401"
        );
    }
}

#[test]
fn every_schema_reference_resolves() {
    let text = puhuri_gateway::api::openapi::document_json();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            schemas.contains_key(name),
            "`{name}` is referenced but not defined"
        );
    }
}

/// The state and type enums the document gives for Waldur's objects are exactly Waldur 8.0.5's.
#[test]
fn waldur_enums_equal_waldur_8_0_5() {
    let path = std::env::var("WALDUR_OPENAPI_SCHEMA").unwrap_or_else(|_| {
        format!(
            "{}/../shared/upstream/waldur-openapi-schema-8.0.5.yaml",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    if !crate::support::external::require(
        "Waldur's OpenAPI schema (../shared/upstream, or WALDUR_OPENAPI_SCHEMA)",
        std::path::Path::new(&path).is_file(),
    ) {
        return;
    }
    let waldur: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let waldur = serde_json::to_value(waldur).unwrap();
    let ours: serde_json::Value =
        serde_json::from_str(&puhuri_gateway::api::openapi::document_json()).unwrap();
    for (our_name, waldur_name) in [
        ("OrderState", "OrderState"),
        ("OrderType", "RequestTypes"),
        ("ResourceState", "ResourceState"),
        ("OfferingState", "OfferingState"),
        ("OfferingUserState", "OfferingUserState"),
    ] {
        assert_eq!(
            ours["components"]["schemas"][our_name]["enum"],
            waldur["components"]["schemas"][waldur_name]["enum"],
            "{our_name}"
        );
    }
}

/// Each operation's documented `insufficient_scope` example is the answer it gives a token
/// without that scope: the 403 names the scope the route really requires (`allocations:read`
/// for an allocator's reads, `events:read` for events...), not another set's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_missing_scope_is_the_routes_answer() {
    use crate::helpers::{assert_problem, claims, sign, spawn_app};
    let app = spawn_app().await;
    let mut checked = 0;
    for (path, method, op) in documented_operations() {
        let Some(example) = op["responses"]["403"]["content"]["application/problem+json"]
                ["examples"]["insufficient_scope"]["value"]
                .as_object()
                .or_else(|| {
                    op["responses"]["403"]["content"]["application/problem+json"]["example"]
                        .as_object()
                        .filter(|e| e["code"] == "insufficient_scope")
                })
            else {
                continue;
            };
        let detail = example["detail"].as_str().unwrap();
        // A token with every other scope than the one the example names.
        let all = [
            "read",
            "usage:write",
            "orders:write",
            "resources:write",
            "users:write",
            "events:read",
            "allocations:read",
            "allocations:write",
        ];
        let named = all
            .iter()
            .find(|s| detail.contains(&format!("`{s}`")))
            .unwrap_or_else(|| panic!("{method} {path}: {detail} names no known scope"));
        let mut token_claims = claims("alpha");
        token_claims["scope"] = all
            .iter()
            .filter(|s| *s != named)
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
            .into();
        let token = sign(
            jsonwebtoken::Algorithm::EdDSA,
            "alpha-ed",
            "ed25519.key",
            &token_claims,
        );
        let url = filled(&path);
        let response = app
            .client
            .request(method.to_uppercase().parse().unwrap(), app.url(&url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 403, "insufficient_scope").await;
        assert_eq!(problem["detail"], detail, "{method} {path}");
        checked += 1;
    }
    assert!(
        checked > 30,
        "only {checked} operations document a missing scope"
    );
}

/// A documented path with each `{parameter}` filled with one uuid (the demo resource's).
fn filled(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if s.starts_with('{') {
                "7e000000000040008000000000000001"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Each operation whose 400 gives the example of a query it does not take answers that query
/// with exactly that problem (the query is checked before any route runs), and every operation
/// that takes no query parameter documents it (`/healthz`, `/readyz` and `/metrics` too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_unknown_query_is_the_routes_answer() {
    use crate::helpers::{alpha_token, assert_problem, spawn_app};
    let app = spawn_app().await;
    let mut checked = 0;
    for (path, method, op) in documented_operations() {
        let takes_a_query = op["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
        if takes_a_query {
            continue;
        }
        let content = &op["responses"]["400"]["content"]["application/problem+json"];
        let example = content["examples"]["invalid_query"]["value"]
            .as_object()
            .or_else(|| content["example"].as_object())
            .unwrap_or_else(|| {
                panic!("{method} {path} takes no query and does not document the 400 for one")
            });
        let detail = example["detail"].as_str().unwrap();
        let key = detail.split('`').nth(1).unwrap();
        let url = filled(&path);
        let response = app
            .client
            .request(
                method.to_uppercase().parse().unwrap(),
                app.url(&format!("{url}?{key}=1")),
            )
            .bearer_auth(alpha_token())
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 400, "invalid_query").await;
        assert_eq!(problem["detail"], detail, "{method} {path}");
        checked += 1;
    }
    assert!(checked > 20, "only {checked} operations take no query");
}

/// Every operation of the generated document: its path, method and operation object.
fn documented_operations() -> Vec<(String, String, serde_json::Value)> {
    let doc: serde_json::Value =
        serde_json::from_str(&puhuri_gateway::api::openapi::document_json()).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((path.clone(), method.clone(), op.clone()));
        }
    }
    out
}
