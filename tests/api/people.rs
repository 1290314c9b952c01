//! The people reads of a site bound to some of its provider's offerings: what a page costs
//! upstream, and the same answers whether or not Puhuri lets the token read the offering views.

use puhuri_gateway::sim::demo;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::site_helpers::*;

async fn seeded_app() -> TestApp {
    let app = spawn_manual_app().await;
    let seeded = app
        .sim_post(
            "bulk",
            &json!({"projects": 40, "users": 90, "resources": 120}),
        )
        .await;
    assert_eq!(seeded.status(), 201);
    app
}

async fn forget_calls(app: &TestApp) {
    app.client
        .delete(format!("{}calls", app.sim))
        .send()
        .await
        .unwrap();
}

/// Every item of a gateway list, page by page (100 a page), as `key`s in the order given.
async fn whole_list(app: &TestApp, path: &str, token: &str, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for page in 1.. {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, _, body) =
            get_json(app, &format!("{path}{sep}page={page}&page_size=100"), token).await;
        if status == 404 && page > 1 {
            break;
        }
        assert_eq!(status, 200, "{path}: {body}");
        let items = body.as_array().unwrap();
        out.extend(items.iter().map(|x| x[key].as_str().unwrap().to_string()));
        if items.len() < 100 {
            break;
        }
    }
    out
}

/// Site alpha has one of the provider's two offerings: a page of its projects or users is one
/// page of the offering's own view (Waldur's `list_customer_projects` / `list_customer_users`),
/// with `field=`, and its count and items are Puhuri's. Filtered reads cost two or three calls.
#[tokio::test]
async fn a_page_of_people_costs_one_upstream_page_for_a_site_with_one_offering() {
    let app = seeded_app().await;
    let token = alpha_token();
    let api = app.puhuri_url();
    let offering = demo::LUMI_OFFERING_UUID;
    // Warm the caches (the provider, whether the site has every offering).
    let (status, _, _) = get_json(&app, "/v1/projects", &token).await;
    assert_eq!(status, 200);
    for (path, view, upstream_query) in [
        (
            "/v1/projects?page=2&page_size=7",
            "list_customer_projects",
            "page=2&page_size=7",
        ),
        (
            "/v1/users?page=3&page_size=5",
            "list_customer_users",
            "page=3&page_size=5",
        ),
    ] {
        forget_calls(&app).await;
        let (status, headers, body) = get_json(&app, path, &token).await;
        assert_eq!(status, 200, "{path}: {body}");
        let calls = app.sim_calls("/api/").await;
        assert_eq!(calls.len(), 1, "{path}: {calls:?}");
        assert_eq!(
            calls[0]["path"],
            format!("/api/marketplace-provider-offerings/{offering}/{view}/")
        );
        let query = calls[0]["query"].as_str().unwrap();
        assert!(
            query.contains("field=") && query.contains(upstream_query),
            "{query}"
        );
        let direct = app
            .client
            .get(format!(
                "{api}marketplace-provider-offerings/{offering}/{view}/?{upstream_query}"
            ))
            .header("Authorization", format!("Token {}", demo::TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(
            headers["x-result-count"],
            direct.headers()["x-result-count"],
            "{path}"
        );
        let direct: Value = direct.json().await.unwrap();
        let got: Vec<&Value> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|x| &x["uuid"])
            .collect();
        let want: Vec<&Value> = direct
            .as_array()
            .unwrap()
            .iter()
            .map(|x| &x["uuid"])
            .collect();
        assert!(!got.is_empty(), "{path}");
        assert_eq!(got, want, "{path}");
    }

    let bob = demo::USER_BOB_UUID;
    let project = demo::PROJECT_A_UUID;
    for (path, most_calls, key, want) in [
        ("/v1/users?username=bob".to_string(), 3, "uuid", bob),
        (format!("/v1/ssh-keys?user_uuid={bob}"), 3, "user_uuid", bob),
        (
            format!("/v1/project-permissions?project_uuid={project}"),
            2,
            "project_uuid",
            project,
        ),
        (
            format!("/v1/project-permissions?user_uuid={bob}"),
            2,
            "user_uuid",
            bob,
        ),
    ] {
        forget_calls(&app).await;
        let (status, _, body) = get_json(&app, &path, &token).await;
        assert_eq!(status, 200, "{path}: {body}");
        let items = body.as_array().unwrap();
        assert!(!items.is_empty(), "{path}");
        assert!(items.iter().all(|x| x[key] == want), "{path}: {body}");
        let calls = app.sim_calls("/api/").await;
        assert!(
            !calls.is_empty() && calls.len() <= most_calls,
            "{path}: {} calls: {calls:?}",
            calls.len()
        );
    }
}

/// Waldur lets only an owner of the provider's organisation read an offering's people views.
/// Where Puhuri answers 403 there, the gateway narrows the provider views instead, and the site
/// sees the same people, projects, keys and roles either way.
#[tokio::test]
async fn people_are_the_same_when_puhuri_refuses_the_offering_views() {
    let app = seeded_app().await;
    let token = alpha_token();
    let lists = [
        ("/v1/projects", "uuid"),
        ("/v1/users", "uuid"),
        ("/v1/ssh-keys", "uuid"),
        ("/v1/project-permissions", "project_uuid"),
    ];
    let mut owner = Vec::new();
    for (path, key) in lists {
        let mut items = whole_list(&app, path, &token, key).await;
        items.sort();
        assert!(!items.is_empty(), "{path}");
        owner.push(items);
    }
    assert!(
        !app.sim_calls("list_customer_projects/").await.is_empty(),
        "the owner's reads use the offering views"
    );
    // The token's user may now only look at the offering (not an owner of the organisation).
    let set = app
        .sim_post(
            "settings",
            &json!({"read_only_offerings": [demo::LUMI_OFFERING_UUID]}),
        )
        .await;
    assert_eq!(set.status(), 200);
    forget_calls(&app).await;
    for ((path, key), want) in lists.into_iter().zip(owner) {
        let mut items = whole_list(&app, path, &token, key).await;
        items.sort();
        assert_eq!(items, want, "{path}");
    }
    let refused: Vec<Value> = app
        .sim_calls("/list_customer_")
        .await
        .into_iter()
        .filter(|c| c["status"] == 403)
        .collect();
    assert!(!refused.is_empty(), "the offering views were asked");
    assert!(
        !app.sim_calls("marketplace-service-providers/")
            .await
            .is_empty(),
        "then the provider views were narrowed"
    );
}
