//! The demo resource allocator: a consumer's token, its organisation and projects, and the
//! offering it orders allocations from (see [`super::demo_ids`] for the uuids).

use super::demo_ids::*;
use super::state::*;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// Adds the allocator's objects to the demo world.
pub fn add(w: &mut World, long_ago: DateTime<Utc>) {
    w.customers.push(Customer {
        uuid: ALLOCATOR_CUSTOMER_UUID.into(),
        name: "National allocator (demo)".into(),
        abbreviation: "NAL".into(),
        slug: "national-allocator".into(),
    });
    w.customers.push(Customer {
        uuid: ALLOCATOR_PARTNER_CUSTOMER_UUID.into(),
        name: "Partner University (demo)".into(),
        abbreviation: "PUD".into(),
        slug: "partner-university".into(),
    });
    w.users.push(User {
        uuid: ALLOCATOR_USER_UUID.into(),
        username: "allocator-bot".into(),
        first_name: "Allocator".into(),
        last_name: "Robot".into(),
        email: "allocator-bot@example.org".into(),
        organization: "National allocator (demo)".into(),
        is_active: true,
        date_joined: long_ago,
    });
    for (uuid, name, slug, customer) in [
        (
            ALLOCATOR_PROJECT_UUID,
            "National allocation 2027",
            "national-2027",
            ALLOCATOR_CUSTOMER_UUID,
        ),
        (
            ALLOCATOR_REVIEW_PROJECT_UUID,
            "Partner allocation",
            "partner",
            ALLOCATOR_PARTNER_CUSTOMER_UUID,
        ),
    ] {
        w.projects.push(Project {
            uuid: uuid.into(),
            name: name.into(),
            slug: slug.into(),
            description: format!("{name} (demo project)"),
            customer: customer.into(),
            created: long_ago,
        });
    }
    w.roles.push(RoleGrant {
        user: ALLOCATOR_USER_UUID.into(),
        project: ALLOCATOR_REVIEW_PROJECT_UUID.into(),
        role: "PROJECT.MEMBER".into(),
        created: long_ago,
    });
    let components = [
        ("cpu_k_hours", "CPU allocation", "CPU kH"),
        ("gpu_k_hours", "GPU allocation", "GPU kH"),
        ("gb_k_hours", "Storage allocation", "GB kH"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (t, n, u))| Component {
        uuid: format!("c400000000004000800000000000000{}", i + 1),
        type_: t.to_string(),
        name: n.to_string(),
        measured_unit: u.to_string(),
        billing_type: "limit".to_string(),
        description: String::new(),
    })
    .collect();
    let prices: Vec<(String, rust_decimal::Decimal)> = ["cpu_k_hours", "gpu_k_hours", "gb_k_hours"]
        .iter()
        .map(|t| (t.to_string(), rust_decimal::Decimal::new(1, 0)))
        .collect();
    w.offerings.push(Offering {
        uuid: ALLOCATION_OFFERING_UUID.into(),
        name: "LUMI allocations (demo)".into(),
        slug: "lumi-allocations".into(),
        description: "LUMI allocations ordered by a resource allocator (demo)".into(),
        customer: OTHER_SP_CUSTOMER_UUID.into(),
        type_: "Marketplace.Basic".into(),
        state: "Active".into(),
        components,
        plans: vec![Plan {
            uuid: ALLOCATION_PLAN_UUID.into(),
            name: "LUMI Common".into(),
            description: "Default plan for all LUMI".into(),
            prices,
        }],
        sp_can_create_offering_user: false,
        published_options: Value::Null,
        option_change_orders: false,
        created: long_ago,
    });
    // Its provider approves every order at once (tests that follow a provider's review turn
    // this off with `POST /__sim/settings {"auto_approve_offerings": []}`).
    w.auto_approve_offerings
        .insert(ALLOCATION_OFFERING_UUID.to_string());
    let limits = |c: i64, g: i64, s: i64| -> Map<String, Value> {
        json!({"cpu_k_hours": c, "gpu_k_hours": g, "gb_k_hours": s})
            .as_object()
            .cloned()
            .unwrap_or_default()
    };
    let attributes = |name: &str| -> Map<String, Value> {
        json!({"name": name, "is_industry": false, "is_training": false, "is_commercial": false,
               "used_ai_tech": ["Machine Learning"]})
        .as_object()
        .cloned()
        .unwrap_or_default()
    };
    let resources = [
        (
            ALLOCATOR_RESOURCE_UUID,
            ALLOCATOR_ORDER_DONE_UUID,
            "Climate 2026",
            "OK",
            "done",
        ),
        (
            "7e00000000004000800000000000000b",
            ALLOCATOR_ORDER_TO_APPROVE_UUID,
            "Waiting 1",
            "Creating",
            "pending-consumer",
        ),
        (
            "7e00000000004000800000000000000c",
            ALLOCATOR_ORDER_TO_REJECT_UUID,
            "Waiting 2",
            "Creating",
            "pending-consumer",
        ),
        (
            "7e00000000004000800000000000000d",
            ALLOCATOR_ORDER_TO_CANCEL_UUID,
            "Waiting 3",
            "Creating",
            "pending-consumer",
        ),
    ];
    for (resource, order, name, state, order_state) in resources {
        w.resources.push(Resource {
            uuid: resource.into(),
            name: name.into(),
            slug: name.to_lowercase().replace(' ', "-"),
            description: String::new(),
            offering: ALLOCATION_OFFERING_UUID.into(),
            project: ALLOCATOR_REVIEW_PROJECT_UUID.into(),
            plan: Some(ALLOCATION_PLAN_UUID.into()),
            state: state.into(),
            backend_id: String::new(),
            limits: limits(100, 5, 10),
            attributes: attributes(name),
            options: Map::new(),
            report: vec![],
            current_usages: Map::new(),
            error_message: String::new(),
            error_traceback: String::new(),
            end_date: None,
            created: long_ago,
            modified: long_ago,
        });
        w.orders.push(Order {
            uuid: order.into(),
            offering: ALLOCATION_OFFERING_UUID.into(),
            project: ALLOCATOR_REVIEW_PROJECT_UUID.into(),
            resource: resource.into(),
            plan: Some(ALLOCATION_PLAN_UUID.into()),
            type_: "Create".into(),
            state: order_state.into(),
            attributes: attributes(name),
            limits: limits(100, 5, 10),
            created_by: ALLOCATOR_USER_UUID.into(),
            error_message: String::new(),
            error_traceback: String::new(),
            provider_rejection_comment: String::new(),
            consumer_rejection_comment: String::new(),
            request_comment: None,
            backend_id: String::new(),
            completed_at: (order_state == "done").then_some(long_ago),
            created: long_ago,
            modified: long_ago,
            provider_reviewed_by: None,
            provider_reviewed_at: None,
            completes_at: None,
        });
    }
}
