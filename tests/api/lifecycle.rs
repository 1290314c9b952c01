//! The whole service-provider lifecycle of one allocation, through the gateway only, once per
//! kind of offering: a `Marketplace.Basic` offering, whose orders Waldur finishes by itself
//! shortly after approval (so the site's `done` meets a 409 and succeeds after the re-read), and
//! a site-agent offering (`Marketplace.Slurm`), whose orders wait for the provider. The
//! simulator's control API only sets the offering's type and checks what reached "Puhuri".

use puhuri_gateway::sim::demo;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::site_helpers::*;

async fn step(app: &TestApp, token: &str, response: reqwest::Response) -> Value {
    let job = accepted(response).await;
    let done = delivered(app, token, &job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    done
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Waldur finishes approved orders by itself.
    Basic,
    /// The provider finishes them (`set_state_done`).
    SiteAgent,
}

#[tokio::test]
async fn fact_1_an_order_of_a_basic_offering_goes_from_waiting_to_billed_through_the_gateway() {
    lifecycle(Kind::Basic).await;
}

#[tokio::test]
async fn fact_1_an_order_of_a_site_agent_offering_goes_from_waiting_to_billed_through_the_gateway()
{
    lifecycle(Kind::SiteAgent).await;
}

/// Waits until the simulator holds the order in `state` (Waldur's background processing).
async fn wait_for_order_state(app: &TestApp, uuid: &str, state: &str) {
    let within = std::time::Duration::from_secs(10);
    crate::support::poll::until(&format!("order {uuid} {state}"), within, || async {
        let order = sim_order(app, uuid).await;
        if order["state"] == state {
            Ok(())
        } else {
            Err(order.to_string())
        }
    })
    .await
}

async fn lifecycle(kind: Kind) {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let offering_type = match kind {
        Kind::Basic => "Marketplace.Basic",
        Kind::SiteAgent => "Marketplace.Slurm",
    };
    let response = app
        .sim_post(
            "settings",
            &json!({"self_processing_delay_ms": 200, "offering_types": {ALPHA_OFFERING: offering_type}}),
        )
        .await;
    assert_eq!(response.status(), 200);

    // 1. The order waiting for the provider shows up in the default list.
    let (_, _, waiting) = get_json(&app, "/v1/orders?type=Create", &token).await;
    let order = waiting
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["uuid"] == demo::ORDER_PENDING_UUID)
        .expect("the pending order is listed")
        .clone();
    assert_eq!(order["state"], "pending-provider");
    let resource = order["resource_uuid"].as_str().unwrap().to_string();
    assert_eq!(resource, demo::RESOURCE_CREATING_UUID);

    // 2. Approve.
    let order_path = format!("/v1/orders/{}", demo::ORDER_PENDING_UUID);
    step(
        &app,
        &token,
        post_empty(&app, &format!("{order_path}/approve"), &token).await,
    )
    .await;
    let (_, _, read) = get_json(&app, &order_path, &token).await;
    match kind {
        // Waldur's processor may already have finished it.
        Kind::Basic => assert!(
            read["state"] == "executing" || read["state"] == "done",
            "{read}"
        ),
        Kind::SiteAgent => assert_eq!(read["state"], "executing"),
    }
    let reviewed = sim_order(&app, demo::ORDER_PENDING_UUID).await;
    assert!(reviewed["provider_reviewed_at"].is_string(), "{reviewed}");
    if kind == Kind::Basic {
        wait_for_order_state(&app, demo::ORDER_PENDING_UUID, "done").await;
    }

    // 3. Provision: the site's own id, then name the resource by it from here on.
    step(
        &app,
        &token,
        app.post_json(
            &format!("/v1/resources/{resource}/backend-id"),
            &token,
            &json!({"backend_id": "project_465000999"}),
        )
        .await,
    )
    .await;
    let by_id = "/v1/resources/backend_id:project_465000999";
    let report = json!([{"header": "Access", "body": "ssh lumi.example.org, project_465000999"}]);
    step(
        &app,
        &token,
        put_json(
            &app,
            &format!("{by_id}/report"),
            &token,
            &json!({"report": report}),
        )
        .await,
    )
    .await;

    // 4. Done: the order completes and the resource is OK. On a Basic offering Waldur did it
    //    already: its 409 is followed by a re-read, and the job succeeds.
    let done = step(
        &app,
        &token,
        post_empty(&app, &format!("{order_path}/done"), &token).await,
    )
    .await;
    match kind {
        Kind::Basic => {
            assert_eq!(done["result"]["already"], true, "{done}");
            assert_eq!(done["result"]["order_state"], "done", "{done}");
        }
        Kind::SiteAgent => assert!(done["result"].get("already").is_none(), "{done}"),
    }
    assert_eq!(done["attempts"], 1, "{done}");
    let (_, _, resource_view) = get_json(&app, by_id, &token).await;
    assert_eq!(resource_view["state"], "OK");

    // 5. Usernames for the resource's team.
    let (_, _, team) = get_json(&app, &format!("{by_id}/team"), &token).await;
    let team = team.as_array().unwrap().clone();
    assert!(!team.is_empty());
    for member in &team {
        let user = member["user_uuid"].as_str().unwrap();
        let username = format!("{}_465000999", member["username"].as_str().unwrap());
        step(
            &app,
            &token,
            app.post_json(
                "/v1/offering-users",
                &token,
                &json!({"offering_uuid": ALPHA_OFFERING, "user_uuid": user, "username": username}),
            )
            .await,
        )
        .await;
    }
    let (_, _, team_after) = get_json(&app, &format!("{by_id}/team"), &token).await;
    for member in team_after.as_array().unwrap() {
        assert_eq!(
            member["offering_user_username"],
            format!("{}_465000999", member["username"].as_str().unwrap()),
            "{member}"
        );
    }

    // 6. Monthly usage, by backend id.
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    step(
        &app,
        &token,
        app.post_usage(
            &token,
            &json!({"resource_backend_id": "project_465000999", "month": month, "usages": {"cpu_k_hours": "120.5", "gb_k_hours": 3}}),
        )
        .await,
    )
    .await;
    let (status, _, usage) = get_json(&app, &format!("{by_id}/usage?month={month}"), &token).await;
    assert_eq!(status, 200, "{usage}");
    let cpu = usage["usages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["type"] == "cpu_k_hours")
        .expect("cpu usage read back");
    assert_eq!(cpu["usage"], "120.50");
    assert!(
        !usage["plan_periods"].as_array().unwrap().is_empty(),
        "{usage}"
    );

    // 7. What Puhuri holds.
    let order = sim_order(&app, demo::ORDER_PENDING_UUID).await;
    assert_eq!(order["state"], "done");
    let stored = sim_resource(&app, &resource).await;
    assert_eq!(stored["state"], "OK");
    assert_eq!(stored["backend_id"], "project_465000999");
    assert_eq!(stored["report"], report);
    let usages = app.sim_get(&format!("state/usages/{resource}")).await;
    let amounts: Vec<(String, String)> = usages
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["type"].as_str().unwrap().into(),
                u["usage"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        amounts.contains(&("cpu_k_hours".into(), "120.50".into())),
        "{amounts:?}"
    );
    assert!(
        amounts.contains(&("gb_k_hours".into(), "3.00".into())),
        "{amounts:?}"
    );
}
