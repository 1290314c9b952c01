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
    let doc: serde_json::Value =
        serde_json::from_str(&puhuri_gateway::api::openapi::document_json()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
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
