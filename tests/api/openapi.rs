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
