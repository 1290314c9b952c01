//! Jobs stored by earlier versions, whose payloads held plain strings where the operations now
//! hold domain values: each must read back as its operation and store the same JSON again, or a
//! job queued before an upgrade would not be delivered as it was accepted.

use serde_json::Value;

use super::Operation;

/// One payload of every operation, as versions with string fields stored them (the forms the
/// API accepted: uuids normalized to 32 digits, amounts with two places).
const OLD_PAYLOADS: &[(&str, &str)] = &[
    (
        "usage.report",
        r#"{"month":"2026-11","resource_uuid":"5f0c6b7e0b3b4a43b0f8d9a1c2e3f4a5","usages":{"cpu_k_hours":"12.50","gb_k_hours":"0.00","gpu_k_hours":"1520.25"}}"#,
    ),
    (
        "usage.report",
        r#"{"description":"LUMI accounting, 2026-11-23","month":"2026-11","resource_uuid":"7e000000000040008000000000000001","usages":{"cpu_k_hours":"99999999999999.99"}}"#,
    ),
    (
        "order.approve",
        r#"{"order_uuid":"0d000000000040008000000000000002"}"#,
    ),
    (
        "order.approve",
        r#"{"attributes":{"name":"x","n":1.5},"order_uuid":"0d000000000040008000000000000002"}"#,
    ),
    (
        "order.reject",
        r#"{"order_uuid":"0d000000000040008000000000000002"}"#,
    ),
    (
        "order.reject",
        r#"{"comment":"No capacity this quarter","order_uuid":"0d000000000040008000000000000002"}"#,
    ),
    (
        "order.done",
        r#"{"order_uuid":"0d000000000040008000000000000003"}"#,
    ),
    (
        "order.erred",
        r#"{"message":"No free project quota","order_uuid":"0d000000000040008000000000000005","traceback":""}"#,
    ),
    (
        "order.erred",
        r#"{"message":"No free project quota","order_uuid":"0d000000000040008000000000000005","traceback":"quota check failed\n\tat line 3"}"#,
    ),
    (
        "resource.backend_id",
        r#"{"backend_id":"project_465000003","resource_uuid":"7e000000000040008000000000000003"}"#,
    ),
    (
        "resource.state",
        r#"{"resource_uuid":"7e000000000040008000000000000004","state":"ok"}"#,
    ),
    (
        "resource.state",
        r#"{"message":"disk array lost","resource_uuid":"7e000000000040008000000000000004","state":"erred"}"#,
    ),
    (
        "resource.report",
        r#"{"report":[{"body":"ssh lumi.csc.fi; project_465000123","header":"Access"},{"body":"b","header":"h"}],"resource_uuid":"7e000000000040008000000000000001"}"#,
    ),
    (
        "resource.limits",
        r#"{"limits":{"cpu_k_hours":2000,"gpu_k_hours":0},"resource_uuid":"7e000000000040008000000000000001"}"#,
    ),
    (
        "offering_user.username",
        r#"{"offering_uuid":"0f000000000040008000000000000001","user_uuid":"a0000000000040008000000000000012","username":"bob_lumi"}"#,
    ),
    (
        "user.username",
        r#"{"service_provider_uuid":"5e000000000040008000000000000001","user_uuid":"a0000000000040008000000000000012","username":"bob@lumi.fi"}"#,
    ),
    (
        "allocation.create",
        r#"{"approve_as_consumer":true,"attributes":{"is_industry":false,"name":"Climate 2027"},"identity":"alloc","limits":{"cpu_k_hours":100},"marker":"5d0000000000400080000000000000aa","offering_uuid":"0f000000000040008000000000000004","plan_uuid":"91000000000040008000000000000004","project_uuid":"b0000000000040008000000000000012","request_comment":"for the climate group"}"#,
    ),
    (
        "allocation.create",
        r#"{"approve_as_consumer":false,"attributes":{},"identity":"alloc","limits":{},"marker":"5d0000000000400080000000000000ab","offering_uuid":"0f000000000040008000000000000004","project_uuid":"b0000000000040008000000000000012"}"#,
    ),
    (
        "allocation.order",
        r#"{"action":"approve","comment":"ok","identity":"alloc","order_uuid":"0d000000000040008000000000000009"}"#,
    ),
    (
        "allocation.update",
        r#"{"description":"d","end_date":null,"identity":"alloc","name":"n","resource_uuid":"7e000000000040008000000000000009"}"#,
    ),
    (
        "allocation.update",
        r#"{"end_date":"2027-12-31","identity":"alloc","resource_uuid":"7e000000000040008000000000000009"}"#,
    ),
    (
        "allocation.options",
        r#"{"identity":"alloc","options":{"used_ai_tech":["Deep Learning"]},"resource_uuid":"7e000000000040008000000000000009"}"#,
    ),
    (
        "allocation.limits",
        r#"{"identity":"alloc","limits":{"cpu_k_hours":200},"resource_uuid":"7e000000000040008000000000000009"}"#,
    ),
    (
        "allocation.terminate",
        r#"{"identity":"alloc","resource_uuid":"7e000000000040008000000000000009"}"#,
    ),
];

#[test]
fn old_payloads_read_back_and_store_the_same_json() {
    let mut seen = std::collections::BTreeSet::new();
    for (operation, text) in OLD_PAYLOADS {
        let stored: Value = serde_json::from_str(text).unwrap();
        let op =
            Operation::from_job(operation, &stored).unwrap_or_else(|e| panic!("{operation}: {e}"));
        assert_eq!(op.name(), *operation);
        // What the store writes is the payload's JSON text: the same bytes as before.
        assert_eq!(
            serde_json::to_string(&op.payload()).unwrap(),
            serde_json::to_string(&stored).unwrap(),
            "{operation}"
        );
        seen.insert(*operation);
    }
    let every: std::collections::BTreeSet<&str> = <Operation as strum::VariantNames>::VARIANTS
        .iter()
        .copied()
        .collect();
    assert_eq!(seen, every, "a stored payload of every operation");
}

#[test]
fn a_payload_that_breaks_a_rule_is_unreadable() {
    for (operation, text) in [
        (
            "usage.report",
            r#"{"month":"2026-11","resource_uuid":"r1","usages":{"cpu":"1.00"}}"#,
        ),
        (
            "usage.report",
            r#"{"month":"2026-11","resource_uuid":"7e000000000040008000000000000001","usages":{"cpu k":"1.00"}}"#,
        ),
        (
            "usage.report",
            r#"{"month":"2026-11","resource_uuid":"7e000000000040008000000000000001","usages":{"cpu":"-1"}}"#,
        ),
        (
            "resource.backend_id",
            r#"{"backend_id":" x","resource_uuid":"7e000000000040008000000000000003"}"#,
        ),
        (
            "order.erred",
            r#"{"message":"","order_uuid":"0d000000000040008000000000000005","traceback":""}"#,
        ),
        (
            "resource.report",
            r#"{"report":[],"resource_uuid":"7e000000000040008000000000000001"}"#,
        ),
        (
            "user.username",
            r#"{"service_provider_uuid":"5e000000000040008000000000000001","user_uuid":"a0000000000040008000000000000012","username":"bob lumi"}"#,
        ),
    ] {
        let stored: Value = serde_json::from_str(text).unwrap();
        assert!(Operation::from_job(operation, &stored).is_err(), "{text}");
    }
}
