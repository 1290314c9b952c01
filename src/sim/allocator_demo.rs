//! The demo resource allocator: a consumer's token, its organisation and projects, and the
//! offering it orders allocations from (see [`super::demo_ids`] for the uuids).

use super::demo_ids::*;
use super::state::*;
use chrono::{DateTime, Utc};
use serde_json::Value;

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
}
