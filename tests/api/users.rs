//! Usernames (offering users, set_offerings_username) and the people reads.

use puhuri_gateway::sim::demo;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::site_helpers::*;

fn offering_user(user: &str, username: &str) -> Value {
    json!({"offering_uuid": ALPHA_OFFERING, "user_uuid": user, "username": username})
}

async fn offering_users_of(app: &TestApp, user: &str) -> Vec<Value> {
    // The team read shows each member's username on the resource's offering.
    let team: Value = app
        .get_as(
            &format!("/v1/resources/{}/team", demo::RESOURCE_OK_UUID),
            &alpha_token(),
        )
        .await
        .json()
        .await
        .unwrap();
    team.as_array()
        .unwrap()
        .iter()
        .filter(|m| m["user_uuid"] == user)
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_offering_user_is_created_then_updated_then_left_alone() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let created = accepted(
        app.post_json(
            "/v1/offering-users",
            &token,
            &offering_user(demo::USER_BOB_UUID, "bob_lumi"),
        )
        .await,
    )
    .await;
    let job = delivered(&app, &token, &created).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["action"], "created");
    assert_eq!(
        offering_users_of(&app, demo::USER_BOB_UUID).await[0]["offering_user_username"],
        "bob_lumi"
    );

    let same = accepted(
        app.post_json(
            "/v1/offering-users",
            &token,
            &offering_user(demo::USER_BOB_UUID, "bob_lumi"),
        )
        .await,
    )
    .await;
    assert_eq!(
        delivered(&app, &token, &same).await["result"]["action"],
        "unchanged"
    );
    let renamed = accepted(
        app.post_json(
            "/v1/offering-users",
            &token,
            &offering_user(demo::USER_BOB_UUID, "bberg"),
        )
        .await,
    )
    .await;
    assert_eq!(
        delivered(&app, &token, &renamed).await["result"]["action"],
        "updated"
    );
    assert_eq!(
        offering_users_of(&app, demo::USER_BOB_UUID).await[0]["offering_user_username"],
        "bberg"
    );
    // One create in all: the lookups kept it from hitting the uniqueness check.
    let creates: Vec<Value> = app
        .sim_calls("marketplace-offering-users")
        .await
        .into_iter()
        .filter(|c| c["method"] == "POST")
        .collect();
    assert_eq!(creates.len(), 1);
}

#[tokio::test]
async fn an_existing_offering_user_is_patched_not_duplicated() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let job = accepted(
        app.post_json(
            "/v1/offering-users",
            &token,
            &offering_user(demo::USER_ALICE_UUID, "aandersson"),
        )
        .await,
    )
    .await;
    let done = delivered(&app, &token, &job).await;
    assert_eq!(done["result"]["action"], "updated", "{done}");
    assert_eq!(
        done["result"]["offering_user_uuid"],
        demo::OFFERING_USER_ALICE_UUID
    );
    let ou = app
        .sim_get(&format!(
            "state/offering-user/{}",
            demo::OFFERING_USER_ALICE_UUID
        ))
        .await;
    assert_eq!(ou["username"], "aandersson");
    let patches: Vec<Value> = app
        .sim_calls("marketplace-offering-users")
        .await
        .into_iter()
        .filter(|c| c["method"] == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1);
}

#[tokio::test]
async fn usernames_and_ids_are_validated() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    for username in ["", "bob lumi", "bob\u{7}", &"x".repeat(101)] {
        let response = app
            .post_json(
                "/v1/offering-users",
                &token,
                &offering_user(demo::USER_BOB_UUID, username),
            )
            .await;
        let body = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "username");
        let response = put_json(
            &app,
            &format!("/v1/users/{}/username", demo::USER_BOB_UUID),
            &token,
            &json!({"username": username}),
        )
        .await;
        assert_problem(response, 422, "validation_failed").await;
    }
    let response = app
        .post_json(
            "/v1/offering-users",
            &token,
            &json!({"offering_uuid": "x", "user_uuid": "y", "username": "ok"}),
        )
        .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn users_and_offerings_of_others_are_refused() {
    let app = spawn_manual_app().await;
    let alpha = alpha_token();
    let beta = beta_token();
    // Dave is only on the other provider's project.
    let response = app
        .post_json(
            "/v1/offering-users",
            &alpha,
            &offering_user(demo::USER_DAVE_UUID, "dave"),
        )
        .await;
    assert_problem(response, 403, "forbidden").await;
    let response = put_json(
        &app,
        &format!("/v1/users/{}/username", demo::USER_DAVE_UUID),
        &alpha,
        &json!({"username": "dave"}),
    )
    .await;
    assert_problem(response, 403, "forbidden").await;
    // Unknown user: the same answer.
    let response = put_json(
        &app,
        "/v1/users/a00000000000400080000000000000ff/username",
        &alpha,
        &json!({"username": "ghost"}),
    )
    .await;
    assert_problem(response, 403, "forbidden").await;
    // Beta may not name users on alpha's offering, nor Carol (no resource of beta's offering).
    let response = app
        .post_json(
            "/v1/offering-users",
            &beta,
            &offering_user(demo::USER_BOB_UUID, "bob"),
        )
        .await;
    assert_problem(response, 403, "forbidden").await;
    let response = put_json(
        &app,
        &format!("/v1/users/{}/username", demo::USER_CAROL_UUID),
        &beta,
        &json!({"username": "carol"}),
    )
    .await;
    assert_problem(response, 403, "forbidden").await;
    let response = app
        .post_json(
            "/v1/offering-users",
            &alpha_token_with("read orders:write resources:write"),
            &offering_user(demo::USER_BOB_UUID, "bob"),
        )
        .await;
    assert_problem(response, 403, "insufficient_scope").await;
    assert!(app.sim_calls("marketplace-offering-users").await.is_empty());
}

/// Waldur's set_offerings_username renames the user on every offering of the provider: a site
/// bound to only some of them is refused, and nothing reaches Puhuri.
#[tokio::test]
async fn a_provider_wide_username_needs_every_offering_of_the_provider() {
    let app = spawn_manual_app().await;
    for token in [alpha_token(), beta_token()] {
        let response = put_json(
            &app,
            &format!("/v1/users/{}/username", demo::USER_CAROL_UUID),
            &token,
            &json!({"username": "ccarlsson"}),
        )
        .await;
        let body = assert_problem(response, 403, "forbidden").await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("/v1/offering-users"),
            "{body}"
        );
    }
    assert!(app.sim_calls("set_offerings_username").await.is_empty());
    no_jobs(&app, &alpha_token()).await;
}

/// Usernames follow the POSIX portable rule by default: path separators, shell metacharacters
/// and bidirectional overrides are refused before anything is stored.
#[tokio::test]
async fn unsafe_usernames_are_refused_and_nothing_is_stored() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    for username in [
        "../../etc/x;rm",
        "admin\u{202E}nimda",
        "-rf",
        ".profile",
        "bob lumi",
        "böb",
    ] {
        let response = app
            .post_json(
                "/v1/offering-users",
                &token,
                &offering_user(demo::USER_BOB_UUID, username),
            )
            .await;
        let body = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "username", "{username:?}");
        let response = put_json(
            &app,
            &format!("/v1/users/{}/username", demo::USER_CAROL_UUID),
            &provider_token(),
            &json!({"username": username}),
        )
        .await;
        assert_problem(response, 422, "validation_failed").await;
    }
    no_jobs(&app, &token).await;
    assert!(app.sim_calls("marketplace-offering-users").await.is_empty());
}

#[tokio::test]
async fn a_users_username_is_set_across_the_providers_offerings() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let job = accepted(
        put_json(
            &app,
            &format!("/v1/users/{}/username", demo::USER_CAROL_UUID),
            &provider_token(),
            &json!({"username": "ccarlsson"}),
        )
        .await,
    )
    .await;
    let done = delivered(&app, &provider_token(), &job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let calls = app.sim_calls("set_offerings_username").await;
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0]["path"]
            .as_str()
            .unwrap()
            .contains(demo::SERVICE_PROVIDER_UUID)
    );
    assert_eq!(
        calls[0]["body"],
        json!({"user_uuid": demo::USER_CAROL_UUID, "username": "ccarlsson"})
    );
    let team: Value = app
        .get_as(
            &format!("/v1/resources/{}/team", demo::RESOURCE_ERRED_UUID),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    let carol = team
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_uuid"] == demo::USER_CAROL_UUID)
        .unwrap();
    assert_eq!(carol["offering_user_username"], "ccarlsson");
}

fn uuids(v: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn people_reads_are_narrowed_to_the_site() {
    let app = spawn_manual_app().await;
    let alpha = alpha_token();
    let beta = beta_token();

    let (status, headers, users) = get_json(&app, "/v1/users", &alpha).await;
    assert_eq!(status, 200, "{users}");
    assert_eq!(
        uuids(&users, "uuid"),
        [
            demo::USER_ALICE_UUID,
            demo::USER_BOB_UUID,
            demo::USER_CAROL_UUID
        ]
    );
    assert_eq!(headers["x-result-count"], "3");
    // Beta's only resource is in project A: Alice and Bob, not Carol.
    let (_, _, users) = get_json(&app, "/v1/users", &beta).await;
    assert_eq!(
        uuids(&users, "uuid"),
        [demo::USER_ALICE_UUID, demo::USER_BOB_UUID]
    );
    let (_, headers, page) = get_json(&app, "/v1/users?page_size=2&page=2", &alpha).await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert!(headers["link"].to_str().unwrap().contains("rel=\"prev\""));
    let (status, _, _) = get_json(&app, "/v1/users?page=3&page_size=2", &alpha).await;
    assert_eq!(status, 404);
    let (_, _, users) = get_json(&app, "/v1/users?username=bob", &alpha).await;
    assert_eq!(uuids(&users, "uuid"), [demo::USER_BOB_UUID]);

    let (_, _, keys) = get_json(&app, "/v1/ssh-keys", &beta).await;
    assert_eq!(
        uuids(&keys, "uuid"),
        [demo::KEY_ALICE_UUID, demo::KEY_BOB_UUID]
    );
    assert!(
        keys[0]["public_key"]
            .as_str()
            .unwrap()
            .starts_with("ssh-ed25519 ")
    );
    let (_, _, keys) = get_json(
        &app,
        &format!("/v1/ssh-keys?user_uuid={}", demo::USER_CAROL_UUID),
        &beta,
    )
    .await;
    assert!(keys.as_array().unwrap().is_empty());

    let (_, _, projects) = get_json(&app, "/v1/projects", &alpha).await;
    assert_eq!(
        uuids(&projects, "uuid"),
        [demo::PROJECT_A_UUID, demo::PROJECT_B_UUID]
    );
    let (_, _, projects) = get_json(&app, "/v1/projects", &beta).await;
    assert_eq!(uuids(&projects, "uuid"), [demo::PROJECT_A_UUID]);

    let (_, _, roles) = get_json(
        &app,
        &format!("/v1/project-permissions?user_uuid={}", demo::USER_BOB_UUID),
        &beta,
    )
    .await;
    let roles = roles.as_array().unwrap();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["project_uuid"], demo::PROJECT_A_UUID);
    assert_eq!(roles[0]["role"], "PROJECT.MEMBER");
    assert!(!Value::Array(roles.clone()).to_string().contains("/api/"));

    let response = app
        .get_as("/v1/users", &alpha_token_with("users:write"))
        .await;
    assert_problem(response, 403, "insufficient_scope").await;
}

/// Fact 7: Waldur lists offering users only for offerings whose options let the service provider
/// create them, and refuses a create on the others with 400 "It is not allowed to create users
/// for current offering.". A site bound to such an offering (beta: the second offering) sees its
/// username job fail with Waldur's reason, explained, after one create and no retry; for a user
/// with an offering user Waldur hides there, Waldur's uniqueness refusal, explained the same way.
#[tokio::test]
async fn fact_7_a_username_on_an_offering_without_offering_users_fails_with_waldurs_reason() {
    let app = spawn_manual_app().await;
    let token = beta_token();
    let job = accepted(
        app.post_json(
            "/v1/offering-users",
            &token,
            &json!({"offering_uuid": BETA_OFFERING, "user_uuid": demo::USER_BOB_UUID, "username": "bob_slurm"}),
        )
        .await,
    )
    .await;
    let job = delivered(&app, &token, &job).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["last_status"], 400, "{job}");
    assert_eq!(job["failure_code"], "upstream_refused", "{job}");
    let error = job["last_error"].as_str().unwrap();
    assert!(
        error.contains("It is not allowed to create users for current offering.")
            && error.contains("service_provider_can_create_offering_user is off"),
        "{job}"
    );
    let creates: Vec<Value> = app
        .sim_calls("marketplace-offering-users")
        .await
        .into_iter()
        .filter(|c| c["method"] == "POST")
        .collect();
    assert_eq!(creates.len(), 1, "{creates:?}");
    // The look-ups the gateway made showed nothing for that offering, although Alice has an
    // offering user there (Waldur hides it).
    let lookups: Vec<Value> = app
        .sim_calls("marketplace-offering-users")
        .await
        .into_iter()
        .filter(|c| c["method"] == "GET")
        .collect();
    assert!(!lookups.is_empty());
    // Alice has one there already, which Waldur neither lists nor lets the gateway find: the
    // create meets Waldur's uniqueness check, and the job fails with that reason, untouched.
    let job = accepted(
        app.post_json(
            "/v1/offering-users",
            &token,
            &json!({"offering_uuid": BETA_OFFERING, "user_uuid": demo::USER_ALICE_UUID, "username": "alice2"}),
        )
        .await,
    )
    .await;
    let job = delivered(&app, &token, &job).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["failure_code"], "upstream_refused", "{job}");
    let error = job["last_error"].as_str().unwrap();
    assert!(
        error.contains("service_provider_can_create_offering_user is off")
            && error.contains("The fields offering, user must make a unique set."),
        "{error}"
    );
    let hidden: Value = app
        .sim_get(&format!(
            "state/offering-user/{}",
            demo::HIDDEN_OFFERING_USER_UUID
        ))
        .await;
    assert_eq!(hidden["username"], "alice_slurm", "{hidden}");
}

/// The people lists of a site bound to every offering of its provider cost one upstream page
/// each: the gateway asks Puhuri's provider view for the very page (with Waldur's filters and
/// `field=`), and its count and items are Puhuri's. Checked against the simulator's own answer
/// for the same page, on a provider with 40 projects, 90 users and 120 resources.
#[tokio::test]
async fn a_page_of_people_costs_one_upstream_page_for_a_site_with_every_offering() {
    let app = spawn_manual_app().await;
    let token = provider_token();
    let seeded = app
        .sim_post(
            "bulk",
            &json!({"projects": 40, "users": 90, "resources": 120}),
        )
        .await;
    assert_eq!(seeded.status(), 201);
    let sp = demo::SERVICE_PROVIDER_UUID;
    let api = app.puhuri_url();
    // Warm the caches (the provider, whether the site has every offering).
    let (status, _, _) = get_json(&app, "/v1/projects", &token).await;
    assert_eq!(status, 200);
    let bob = demo::USER_BOB_UUID;
    for (path, view, upstream_query, key) in [
        (
            "/v1/projects?page=3&page_size=7",
            "projects",
            "page=3&page_size=7".to_string(),
            "uuid",
        ),
        (
            "/v1/users?page=2&page_size=50",
            "users",
            "page=2&page_size=50".to_string(),
            "uuid",
        ),
        (
            "/v1/ssh-keys?page=4&page_size=20",
            "keys",
            "page=4&page_size=20".to_string(),
            "uuid",
        ),
        (
            "/v1/project-permissions?page=9&page_size=10",
            "project_permissions",
            "page=9&page_size=10".to_string(),
            "user_uuid",
        ),
        (
            &format!("/v1/project-permissions?user_uuid={bob}") as &str,
            "project_permissions",
            format!("user={bob}"),
            "project_uuid",
        ),
    ] {
        app.client
            .delete(format!("{}calls", app.sim))
            .send()
            .await
            .unwrap();
        let (status, headers, body) = get_json(&app, path, &token).await;
        assert_eq!(status, 200, "{path}: {body}");
        let calls = app.sim_calls("/api/").await;
        assert_eq!(calls.len(), 1, "{path}: {calls:?}");
        assert_eq!(
            calls[0]["path"],
            format!("/api/marketplace-service-providers/{sp}/{view}/"),
            "{path}"
        );
        assert!(
            calls[0]["query"].as_str().unwrap().contains("field="),
            "{path}: {calls:?}"
        );
        let direct = app
            .client
            .get(format!(
                "{api}marketplace-service-providers/{sp}/{view}/?{upstream_query}"
            ))
            .header("Authorization", format!("Token {}", demo::TOKEN))
            .send()
            .await
            .unwrap();
        let count = direct.headers()["x-result-count"].clone();
        let direct: Value = direct.json().await.unwrap();
        assert_eq!(headers["x-result-count"], count, "{path}");
        let got: Vec<&Value> = body.as_array().unwrap().iter().map(|x| &x[key]).collect();
        let want: Vec<&Value> = direct.as_array().unwrap().iter().map(|x| &x[key]).collect();
        assert!(!got.is_empty(), "{path}");
        assert_eq!(got, want, "{path}");
    }
    // Bob's roles: projects A and B, filtered by Puhuri (Waldur's `user` filter).
    let (_, _, roles) = get_json(
        &app,
        &format!("/v1/project-permissions?user_uuid={bob}"),
        &token,
    )
    .await;
    assert_eq!(
        uuids(&roles, "project_uuid"),
        [demo::PROJECT_A_UUID, demo::PROJECT_B_UUID]
    );
    let (status, _, _) = get_json(&app, "/v1/projects?page=99&page_size=100", &token).await;
    assert_eq!(status, 404);
}

/// A site with only some of its provider's offerings has its unfiltered SSH keys narrowed by a
/// scan of its members (the offering's user view) of at most 30,000 objects. Past that bound the
/// answer is 422 `list_too_large`, at once (Waldur's count on the first page shows it) and never
/// a 503 "Puhuri cannot be reached".
#[tokio::test]
async fn a_list_past_the_scan_bound_is_too_large_not_unreachable() {
    let app = spawn_manual_app().await;
    let seeded = app
        .sim_post(
            "bulk",
            &json!({"projects": 1, "users": 30_001, "resources": 1, "offering_uuids": [demo::LUMI_OFFERING_UUID]}),
        )
        .await;
    assert_eq!(seeded.status(), 201);
    app.client
        .delete(format!("{}calls", app.sim))
        .send()
        .await
        .unwrap();
    let response = app.get_as("/v1/ssh-keys", &alpha_token()).await;
    let problem = assert_problem(response, 422, "list_too_large").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("30000"),
        "{problem}"
    );
    let scans = app.sim_calls("/list_customer_users/").await;
    assert_eq!(scans.len(), 1, "{scans:?}");
    // The provider-wide site is not affected: one page of the provider's view.
    let (status, headers, _) = get_json(&app, "/v1/projects", &provider_token()).await;
    assert_eq!(status, 200);
    assert!(headers.contains_key("x-result-count"));
}
