//! The deterministic demo data set the simulator starts with (and returns to on `POST /__sim/reset`).
//!
//! Every object has a fixed UUID exported here, so tests, the sandbox and site integrators can
//! name objects without listing first. Dates are computed from the clock at reset time (the
//! current month matters for plan periods and usage), everything else is constant.
//!
//! The picture:
//! - Demo service provider (token [`TOKEN`]) of organisation "LUMI Consortium (demo)" with
//!   - the LUMI offering (`Marketplace.Basic`, components `cpu_k_hours`, `gpu_k_hours`,
//!     `gb_k_hours`, plan "LUMI Common", SP may create offering users), and
//!   - a second offering "LUMI Slurm (demo)" (`Marketplace.Slurm`, same components, SP may not
//!     create offering users) — Waldur only allows `set_state_erred` on Slurm offerings.
//! - Resources of the LUMI offering: [`RESOURCE_OK_UUID`] (OK, with usage), [`RESOURCE_CREATING_UUID`]
//!   (Creating, its Create order [`ORDER_PENDING_UUID`] is pending-provider),
//!   [`RESOURCE_PROVISIONING_UUID`] (Creating, its Create order [`ORDER_EXECUTING_UUID`] is
//!   executing), [`RESOURCE_ERRED_UUID`] (Erred); of the second offering: [`RESOURCE_SLURM_UUID`]
//!   (Creating, Create order [`ORDER_SLURM_EXECUTING_UUID`] executing).
//! - Another service provider (token [`OTHER_SP_TOKEN`]) with its own offering, resource and a
//!   pending order that the demo token must never see.
//! - Consumer organisations, projects, users with SSH keys and project roles.

use super::state::*;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use std::str::FromStr;

pub use super::demo_ids::*;

pub(super) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("literal decimal")
}

fn lumi_components(prefix: &str) -> Vec<Component> {
    [
        ("cpu_k_hours", "CPU allocation", "CPU kH"),
        ("gpu_k_hours", "GPU allocation", "GPU kH"),
        ("gb_k_hours", "Storage allocation", "GB kH"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (t, n, u))| Component {
        uuid: format!("{prefix}{:02}", i + 1),
        type_: t.to_string(),
        name: n.to_string(),
        measured_unit: u.to_string(),
        billing_type: "usage".to_string(),
        description: String::new(),
    })
    .collect()
}

fn lumi_plan(uuid: &str) -> Plan {
    Plan {
        uuid: uuid.to_string(),
        name: "LUMI Common".to_string(),
        description: "Default LUMI plan, billed monthly by usage.".to_string(),
        prices: vec![
            ("cpu_k_hours".to_string(), dec("1.00")),
            ("gpu_k_hours".to_string(), dec("20.00")),
            ("gb_k_hours".to_string(), dec("0.01")),
        ],
    }
}

fn at(d: NaiveDate, hour: u32) -> DateTime<Utc> {
    d.and_hms_opt(hour, 0, 0).expect("valid time").and_utc()
}

/// Build the demo world relative to `now`.
/// How long after approval the simulated Waldur finishes a `Marketplace.Basic` order by itself
/// (Waldur runs its order processor as a background task right after the approval). Changed per
/// instance with `POST /__sim/settings`.
pub const SELF_PROCESSING_DELAY_MS: u64 = 500;

pub fn world(now: DateTime<Utc>) -> World {
    let today = now.date_naive();
    let this_month = month_start(today);
    let m3 = months_back(today, 3);
    let m2 = months_back(today, 2);
    let m1 = months_back(today, 1);
    let long_ago = at(months_back(today, 12), 9);

    let mut w = World::default();
    w.self_processing_delay = Some(chrono::Duration::milliseconds(
        SELF_PROCESSING_DELAY_MS as i64,
    ));
    let customer = |uuid: &str, name: &str, abbr: &str, slug: &str| Customer {
        uuid: uuid.into(),
        name: name.into(),
        abbreviation: abbr.into(),
        slug: slug.into(),
    };
    w.customers = vec![
        customer(
            SP_CUSTOMER_UUID,
            "LUMI Consortium (demo)",
            "LUMI",
            "lumi-demo",
        ),
        customer(
            OTHER_SP_CUSTOMER_UUID,
            "Other Provider Org",
            "OPO",
            "other-provider",
        ),
        customer(
            CONSUMER_CUSTOMER_UUID,
            "University of Example",
            "UEX",
            "uex",
        ),
        customer(
            CONSUMER2_CUSTOMER_UUID,
            "Research Institute X",
            "RIX",
            "rix",
        ),
    ];
    w.service_providers = vec![
        ServiceProvider {
            uuid: SERVICE_PROVIDER_UUID.into(),
            customer: SP_CUSTOMER_UUID.into(),
            description: "Demo LUMI service provider".into(),
            created: long_ago,
        },
        ServiceProvider {
            uuid: OTHER_SP_UUID.into(),
            customer: OTHER_SP_CUSTOMER_UUID.into(),
            description: "Another provider".into(),
            created: long_ago,
        },
    ];
    w.offerings = vec![
        Offering {
            uuid: LUMI_OFFERING_UUID.into(),
            name: "LUMI".into(),
            slug: "lumi".into(),
            description: "LUMI supercomputer (demo)".into(),
            customer: SP_CUSTOMER_UUID.into(),
            type_: "Marketplace.Basic".into(),
            state: "Active".into(),
            components: lumi_components("c10000000000400080000000000000"),
            plans: vec![lumi_plan(LUMI_PLAN_UUID)],
            sp_can_create_offering_user: true,
            published_options: Value::Null,
            option_change_orders: false,
            created: long_ago,
        },
        Offering {
            uuid: SECOND_OFFERING_UUID.into(),
            name: "LUMI Slurm (demo)".into(),
            slug: "lumi-slurm".into(),
            description: "Second offering of the demo provider".into(),
            customer: SP_CUSTOMER_UUID.into(),
            type_: "Marketplace.Slurm".into(),
            state: "Active".into(),
            components: lumi_components("c20000000000400080000000000000"),
            plans: vec![lumi_plan(SECOND_PLAN_UUID)],
            sp_can_create_offering_user: false,
            published_options: Value::Null,
            option_change_orders: false,
            created: long_ago,
        },
        Offering {
            uuid: OTHER_OFFERING_UUID.into(),
            name: "Other Cloud".into(),
            slug: "other-cloud".into(),
            description: "The other provider's offering".into(),
            customer: OTHER_SP_CUSTOMER_UUID.into(),
            type_: "Marketplace.Basic".into(),
            state: "Active".into(),
            components: lumi_components("c30000000000400080000000000000"),
            plans: vec![Plan {
                name: "Other plan".into(),
                ..lumi_plan(OTHER_PLAN_UUID)
            }],
            sp_can_create_offering_user: true,
            published_options: Value::Null,
            option_change_orders: false,
            created: long_ago,
        },
    ];
    let project = |uuid: &str, name: &str, slug: &str, customer: &str| Project {
        uuid: uuid.into(),
        name: name.into(),
        slug: slug.into(),
        description: format!("{name} (demo project)"),
        customer: customer.into(),
        created: long_ago,
    };
    w.projects = vec![
        project(
            PROJECT_A_UUID,
            "Climate modelling",
            "climate",
            CONSUMER_CUSTOMER_UUID,
        ),
        project(
            PROJECT_B_UUID,
            "Protein folding",
            "protein",
            CONSUMER2_CUSTOMER_UUID,
        ),
        project(
            PROJECT_OTHER_UUID,
            "Other provider client",
            "other-client",
            CONSUMER_CUSTOMER_UUID,
        ),
        project(
            PROJECT_SP_UUID,
            "LUMI staff sandbox",
            "lumi-staff",
            SP_CUSTOMER_UUID,
        ),
    ];
    let user = |uuid: &str, username: &str, first: &str, last: &str, org: &str| User {
        uuid: uuid.into(),
        username: username.into(),
        first_name: first.into(),
        last_name: last.into(),
        email: format!("{username}@example.org"),
        organization: org.into(),
        is_active: true,
        date_joined: long_ago,
    };
    w.users = vec![
        user(
            SP_OWNER_USER_UUID,
            "lumi-sp-bot",
            "LUMI",
            "Robot",
            "LUMI Consortium (demo)",
        ),
        user(
            OTHER_SP_OWNER_USER_UUID,
            "other-sp-bot",
            "Other",
            "Robot",
            "Other Provider Org",
        ),
        user(
            USER_ALICE_UUID,
            "alice",
            "Alice",
            "Andersson",
            "University of Example",
        ),
        user(USER_BOB_UUID, "bob", "Bob", "Berg", "University of Example"),
        user(
            USER_CAROL_UUID,
            "carol",
            "Carol",
            "Carlsson",
            "Research Institute X",
        ),
        user(
            USER_DAVE_UUID,
            "dave",
            "Dave",
            "Dahl",
            "University of Example",
        ),
    ];
    let key = |uuid: &str, user: &str, name: &str, n: u8| SshKey {
        uuid: uuid.into(),
        name: name.into(),
        public_key: format!(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemoKey{n:02}DemoKeyDemoKeyDemoKeyDemoKey0{n:02} {name}"
        ),
        user: user.into(),
        fingerprint_md5: format!("de:m0:00:00:00:00:00:00:00:00:00:00:00:00:00:{n:02}"),
        fingerprint_sha256: format!("SHA256:demoFingerprint{n:02}demoFingerprintdemoFinger"),
        fingerprint_sha512: format!("SHA512:demoFingerprint{n:02}"),
        is_shared: false,
        type_: "ssh-ed25519".into(),
    };
    w.keys = vec![
        key(KEY_SP_OWNER_UUID, SP_OWNER_USER_UUID, "lumi-sp-bot@ops", 1),
        key(KEY_ALICE_UUID, USER_ALICE_UUID, "alice@laptop", 11),
        key(KEY_BOB_UUID, USER_BOB_UUID, "bob@workstation", 12),
        key(KEY_CAROL_UUID, USER_CAROL_UUID, "carol@lab", 13),
        key(KEY_DAVE_UUID, USER_DAVE_UUID, "dave@home", 14),
    ];
    let grant = |user: &str, project: &str, role: &str| RoleGrant {
        user: user.into(),
        project: project.into(),
        role: role.into(),
        created: long_ago,
    };
    w.roles = vec![
        grant(USER_ALICE_UUID, PROJECT_A_UUID, "PROJECT.MANAGER"),
        grant(USER_BOB_UUID, PROJECT_A_UUID, "PROJECT.MEMBER"),
        grant(USER_BOB_UUID, PROJECT_B_UUID, "PROJECT.MEMBER"),
        grant(USER_CAROL_UUID, PROJECT_B_UUID, "PROJECT.ADMIN"),
        grant(USER_DAVE_UUID, PROJECT_OTHER_UUID, "PROJECT.MEMBER"),
        grant(SP_OWNER_USER_UUID, PROJECT_SP_UUID, "PROJECT.ADMIN"),
        grant(SP_OWNER_USER_UUID, PROJECT_CONSUMER_UUID, "PROJECT.MEMBER"),
    ];

    let limits = obj(json!({"cpu_k_hours": 1000, "gpu_k_hours": 100, "gb_k_hours": 5000}));
    let resource = |uuid: &str,
                    name: &str,
                    offering: &str,
                    plan: &str,
                    project: &str,
                    state: &str,
                    backend_id: &str,
                    created: DateTime<Utc>| Resource {
        uuid: uuid.into(),
        name: name.into(),
        slug: name.to_lowercase().replace(' ', "-"),
        description: String::new(),
        offering: offering.into(),
        project: project.into(),
        plan: Some(plan.into()),
        state: state.into(),
        backend_id: backend_id.into(),
        limits: limits.clone(),
        attributes: obj(json!({"name": name})),
        options: Map::new(),
        report: vec![],
        current_usages: Map::new(),
        error_message: String::new(),
        error_traceback: String::new(),
        end_date: None,
        created,
        modified: created,
    };
    let t_ok = at(m3, 10);
    let t_recent = now - Duration::days(1);
    w.resources = vec![
        resource(
            RESOURCE_OK_UUID,
            "climate-2026",
            LUMI_OFFERING_UUID,
            LUMI_PLAN_UUID,
            PROJECT_A_UUID,
            "OK",
            "project_465000001",
            t_ok,
        ),
        resource(
            RESOURCE_CREATING_UUID,
            "protein-gpu",
            LUMI_OFFERING_UUID,
            LUMI_PLAN_UUID,
            PROJECT_B_UUID,
            "Creating",
            "",
            t_recent,
        ),
        resource(
            RESOURCE_PROVISIONING_UUID,
            "climate-extra",
            LUMI_OFFERING_UUID,
            LUMI_PLAN_UUID,
            PROJECT_A_UUID,
            "Creating",
            "",
            t_recent - Duration::hours(2),
        ),
        resource(
            RESOURCE_ERRED_UUID,
            "protein-storage",
            LUMI_OFFERING_UUID,
            LUMI_PLAN_UUID,
            PROJECT_B_UUID,
            "Erred",
            "project_465000002",
            at(m2, 10),
        ),
        resource(
            RESOURCE_SLURM_UUID,
            "climate-slurm",
            SECOND_OFFERING_UUID,
            SECOND_PLAN_UUID,
            PROJECT_A_UUID,
            "Creating",
            "",
            t_recent - Duration::hours(1),
        ),
        resource(
            OTHER_RESOURCE_UUID,
            "other-vm",
            OTHER_OFFERING_UUID,
            OTHER_PLAN_UUID,
            PROJECT_OTHER_UUID,
            "OK",
            "other-1",
            t_ok,
        ),
    ];
    if let Some(r) = w.resource_mut(RESOURCE_ERRED_UUID) {
        r.error_message = "Allocation failed on the backend (demo).".into();
    }
    if let Some(r) = w.resource_mut(RESOURCE_OK_UUID) {
        r.report = vec![("Access".into(), "ssh lumi.example.org".into())];
    }

    let order = |uuid: &str, r: &Resource, state: &str, created_by: &str| Order {
        uuid: uuid.into(),
        offering: r.offering.clone(),
        project: r.project.clone(),
        resource: r.uuid.clone(),
        plan: r.plan.clone(),
        type_: "Create".into(),
        state: state.into(),
        attributes: r.attributes.clone(),
        limits: r.limits.clone(),
        created_by: created_by.into(),
        error_message: String::new(),
        error_traceback: String::new(),
        provider_rejection_comment: String::new(),
        consumer_rejection_comment: String::new(),
        request_comment: None,
        backend_id: String::new(),
        completed_at: None,
        created: r.created,
        modified: r.created,
        provider_reviewed_by: None,
        provider_reviewed_at: None,
        completes_at: None,
    };
    let res = |uuid: &str| w.resource(uuid).expect("demo resource").clone();
    let mut orders = vec![
        order(
            ORDER_OK_DONE_UUID,
            &res(RESOURCE_OK_UUID),
            "done",
            USER_ALICE_UUID,
        ),
        order(
            ORDER_PENDING_UUID,
            &res(RESOURCE_CREATING_UUID),
            "pending-provider",
            USER_CAROL_UUID,
        ),
        order(
            ORDER_EXECUTING_UUID,
            &res(RESOURCE_PROVISIONING_UUID),
            "executing",
            USER_ALICE_UUID,
        ),
        order(
            ORDER_ERRED_UUID,
            &res(RESOURCE_ERRED_UUID),
            "erred",
            USER_CAROL_UUID,
        ),
        order(
            ORDER_SLURM_EXECUTING_UUID,
            &res(RESOURCE_SLURM_UUID),
            "executing",
            USER_ALICE_UUID,
        ),
        order(
            OTHER_ORDER_UUID,
            &res(OTHER_RESOURCE_UUID),
            "pending-provider",
            USER_DAVE_UUID,
        ),
    ];
    orders[0].completed_at = Some(t_ok + Duration::hours(1));
    orders[3].error_message = "Allocation failed on the backend (demo).".into();
    w.orders = orders;

    // One open plan period per resource that has been provisioned (started with the resource).
    w.plan_periods = vec![
        PlanPeriod {
            uuid: PLAN_PERIOD_OK_UUID.into(),
            resource: RESOURCE_OK_UUID.into(),
            plan: LUMI_PLAN_UUID.into(),
            start: t_ok,
            end: None,
        },
        PlanPeriod {
            uuid: "99000000000040008000000000000004".into(),
            resource: RESOURCE_ERRED_UUID.into(),
            plan: LUMI_PLAN_UUID.into(),
            start: at(m2, 10),
            end: None,
        },
        PlanPeriod {
            uuid: "99000000000040008000000000000009".into(),
            resource: OTHER_RESOURCE_UUID.into(),
            plan: OTHER_PLAN_UUID.into(),
            start: t_ok,
            end: None,
        },
    ];

    // Usage of the OK resource: last month (final) and this month (so far).
    let usage = |n: u8, month: NaiveDate, t: &str, amount: &str| Usage {
        uuid: format!("ee0000000000400080000000000000{n:02}"),
        resource: RESOURCE_OK_UUID.into(),
        plan_period: PLAN_PERIOD_OK_UUID.into(),
        type_: t.into(),
        billing_period: month,
        usage: dec(amount),
        date: if month == this_month {
            now
        } else {
            at(month, 12)
        },
        description: String::new(),
        recurring: false,
        created: at(month, 12),
    };
    w.usages = vec![
        usage(1, m1, "cpu_k_hours", "310.25"),
        usage(2, m1, "gpu_k_hours", "12.00"),
        usage(3, this_month, "cpu_k_hours", "42.50"),
    ];
    if let Some(r) = w.resource_mut(RESOURCE_OK_UUID) {
        r.current_usages = obj(json!({"cpu_k_hours": 42.5}));
    }

    let ou = |uuid: &str, offering: &str, user: &str, username: &str| OfferingUser {
        uuid: uuid.into(),
        offering: offering.into(),
        user: user.into(),
        username: Some(username.into()),
        state: "OK".into(),
        created: long_ago,
        modified: long_ago,
    };
    w.offering_users = vec![
        ou(
            OFFERING_USER_ALICE_UUID,
            LUMI_OFFERING_UUID,
            USER_ALICE_UUID,
            "alice_lumi",
        ),
        // Exists, but its offering does not let the provider create offering users, so Waldur
        // lists it nowhere.
        ou(
            HIDDEN_OFFERING_USER_UUID,
            SECOND_OFFERING_UUID,
            USER_ALICE_UUID,
            "alice_slurm",
        ),
        ou(
            OTHER_OFFERING_USER_UUID,
            OTHER_OFFERING_UUID,
            USER_DAVE_UUID,
            "dave_other",
        ),
    ];
    w
}
