//! Delivering an allocator's jobs, with the allocator's identity, and following the orders they
//! create until Puhuri has finished them.
//!
//! "Following": while an order waits for a review or is being processed, the delivery answers
//! [`DeliveryError::Following`] with the order's uuid as progress; the worker stores it as the
//! job's `result`, gives the attempt back, and delivers the job again after [`follow_interval`].
//! The next delivery starts from that order instead of ordering again.
//!
//! An order the allocator's own change created (limits, options, termination) that waits for the
//! consumer's review is approved as consumer by the job: asking for the change is the
//! allocator's consent. A new allocation is approved as consumer only when asked
//! (`approve_as_consumer`).
//!
//! A create whose answer was lost (the gateway stopped after Puhuri created the order, before the
//! job recorded it) is recognised by its marker: every Create order the gateway makes carries
//! `[puhuri-gateway <marker>]` at the end of its `request_comment`, which Waldur stores and shows
//! on the order; a delivery without progress first looks for an order of the project and
//! offering with that marker. Changes of an existing resource are recognised by the resource
//! itself: a pending Update/Terminate order of the resource is followed instead of ordering
//! again, limits already equal to the ones asked for need no order, and a `Terminated` resource
//! is terminated.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Delivered, Deliverer, DeliveryError, done};
use crate::domain::allocation::Limits;
use crate::domain::operations::{
    AllocationCreate, AllocationLimits, AllocationOptions, AllocationOrderAction,
    AllocationTerminate, AllocationUpdate, ConsumerAction, Operation,
};
use crate::queue::JobRecord;
use crate::upstream::{Order, Resource, UpstreamError, Uuid, WaldurClient};

/// Order states in which Puhuri is still working (or waiting for someone's review).
const WORKING: &[&str] = &[
    "pending-consumer",
    "pending-provider",
    "pending-project",
    "pending-start-date",
    "executing",
];

/// How long to wait before looking at a followed order again: a tenth of the job's age, between
/// one second and five minutes (an order is usually finished in seconds once approved, but a
/// review may take days).
pub fn follow_interval(job: &JobRecord) -> Duration {
    let age = (chrono::Utc::now() - job.created_at)
        .to_std()
        .unwrap_or_default();
    (age / 10).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

/// The marker text written into a Create order's `request_comment`.
pub fn marker_text(marker: &str) -> String {
    format!("[puhuri-gateway {marker}]")
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

impl Deliverer {
    /// The client of the identity an allocator operation names.
    fn identity_client(&self, operation: &Operation) -> Result<&WaldurClient, DeliveryError> {
        let name = operation.identity().unwrap_or("sp");
        self.identities.get(name).ok_or_else(|| {
            DeliveryError::UnreadablePayload(format!(
                "the job names the Puhuri identity `{name}`, which is not configured"
            ))
        })
    }

    pub(super) async fn deliver_allocation(
        &self,
        job: &JobRecord,
        operation: Operation,
    ) -> Result<Delivered, DeliveryError> {
        let client = self.identity_client(&operation)?.clone();
        let progress = job.result.as_ref().map(|r| text(r, "order_uuid"));
        let progress = progress.filter(|o| !o.is_empty());
        match operation {
            Operation::AllocationCreate(a) => self.create(job, &client, &a, progress).await,
            Operation::AllocationOrder(a) => order_action(&client, &a).await,
            Operation::AllocationUpdate(a) => update(&client, &a).await,
            Operation::AllocationOptions(a) => options(job, &client, &a, progress).await,
            Operation::AllocationLimits(a) => limits(job, &client, &a, progress).await,
            Operation::AllocationTerminate(a) => terminate(job, &client, &a, progress).await,
            other => Err(DeliveryError::UnreadablePayload(format!(
                "{} is not an allocator's operation",
                other.name()
            ))),
        }
    }

    async fn create(
        &self,
        job: &JobRecord,
        client: &WaldurClient,
        a: &AllocationCreate,
        progress: Option<String>,
    ) -> Result<Delivered, DeliveryError> {
        let order_uuid = match progress {
            Some(o) => o,
            None => match find_marked_order(client, a).await? {
                Some(o) => o,
                None => place_order(client, a).await?,
            },
        };
        follow(job, client, &order_uuid, a.approve_as_consumer, None).await
    }
}

/// The Create order of this project and offering whose `request_comment` carries the marker.
async fn find_marked_order(
    client: &WaldurClient,
    a: &AllocationCreate,
) -> Result<Option<String>, UpstreamError> {
    let marker = marker_text(&a.marker);
    let page = client
        .get_page::<Order>(
            "marketplace-orders/",
            &[
                ("project_uuid", a.project_uuid.to_string()),
                ("offering_uuid", a.offering_uuid.to_string()),
                ("type", "Create".to_string()),
                ("o", "-created".to_string()),
                ("page_size", "100".to_string()),
            ],
        )
        .await?;
    Ok(page
        .items
        .iter()
        .find(|o| (o.request_comment.as_deref()).is_some_and(|c| c.contains(&marker)))
        .map(|o| o.uuid.clone()))
}

/// `POST marketplace-orders/` with the project, offering and plan URLs; the new order's uuid.
async fn place_order(client: &WaldurClient, a: &AllocationCreate) -> Result<String, UpstreamError> {
    let base = client.base().as_str().to_string();
    let offering = format!("{base}marketplace-public-offerings/{}/", a.offering_uuid);
    let comment = match &a.request_comment {
        Some(c) if !c.as_str().is_empty() => format!("{c}\n{}", marker_text(&a.marker)),
        _ => marker_text(&a.marker),
    };
    let mut body = json!({
        "project": format!("{base}projects/{}/", a.project_uuid),
        "offering": offering,
        "attributes": a.attributes,
        "limits": a.limits,
        "request_comment": comment,
    });
    if let Some(plan) = &a.plan_uuid {
        body["plan"] = json!(format!(
            "{base}marketplace-public-offerings/{}/plans/{plan}/",
            a.offering_uuid
        ));
    }
    let created: Uuid = client.post("marketplace-orders/", &body).await?;
    let uuid = created.uuid;
    if uuid.is_empty() {
        return Err(UpstreamError::malformed(201, "the new order has no uuid"));
    }
    Ok(uuid)
}

/// Reads the order and decides: finished (the job's result), still working (follow it), or ended
/// without doing what was asked (the job fails with Waldur's reason, its `result` showing the
/// order's final `order_state`: recorded by one more look before the failure). `approve` approves it as
/// consumer when it waits for the consumer's review. `resource` names the resource for changes
/// of an existing one.
async fn follow(
    job: &JobRecord,
    client: &WaldurClient,
    order_uuid: &str,
    approve: bool,
    resource: Option<&str>,
) -> Result<Delivered, DeliveryError> {
    let order = client.order(order_uuid).await?;
    let state = order.state.clone();
    let resource_uuid = resource
        .map(str::to_string)
        .unwrap_or_else(|| order.marketplace_resource_uuid.clone().unwrap_or_default());
    let progress =
        json!({"order_uuid": order_uuid, "order_state": state, "resource_uuid": resource_uuid});
    match state.as_str() {
        "done" => Ok(done(
            200,
            json!({"order_uuid": order_uuid, "order_state": state, "resource_uuid": resource_uuid}),
        )),
        "pending-consumer" if approve => {
            match client
                .order_action(order_uuid, "approve_by_consumer", &json!({}))
                .await
            {
                // A 409 means someone reviewed it meanwhile: the next look says what happened.
                Ok(_) | Err(UpstreamError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            Err(DeliveryError::Following {
                progress,
                after: Duration::from_secs(1),
            })
        }
        s if WORKING.contains(&s) => Err(DeliveryError::Following {
            progress,
            after: follow_interval(job),
        }),
        _ if job.result.as_ref().map(|r| text(r, "order_state")) != Some(state.clone()) => {
            // Ended without doing what was asked: first record the order's final state as the
            // job's result (a failure keeps the result it had), then fail on the next look.
            Err(DeliveryError::Following {
                progress,
                after: Duration::ZERO,
            })
        }
        _ => {
            let reason = [
                &order.provider_rejection_comment,
                &order.consumer_rejection_comment,
                &order.error_message,
            ]
            .into_iter()
            .flatten()
            .find(|r| !r.is_empty())
            .cloned()
            .unwrap_or_else(|| "no reason given".to_string());
            Err(UpstreamError::Refused {
                status: 200,
                message: format!("the order {order_uuid} ended `{state}`: {reason}"),
                body: Value::Null,
            }
            .into())
        }
    }
}

/// The newest order of `type_` of the resource that Puhuri is still working on.
async fn pending_order(
    client: &WaldurClient,
    resource: &str,
    type_: &str,
) -> Result<Option<String>, UpstreamError> {
    let mut query = vec![
        ("resource_uuid", resource.to_string()),
        ("type", type_.to_string()),
        ("o", "-created".to_string()),
    ];
    query.extend(WORKING.iter().map(|s| ("state", s.to_string())));
    let page = client
        .get_page::<Order>("marketplace-orders/", &query)
        .await?;
    Ok(page.items.into_iter().next().map(|o| o.uuid))
}

/// The resource as the allocator sees it (`marketplace-resources/{uuid}/`).
async fn resource(client: &WaldurClient, uuid: &str) -> Result<Resource, UpstreamError> {
    client
        .get(&format!("marketplace-resources/{uuid}/"), &[])
        .await
}

async fn order_action(
    client: &WaldurClient,
    a: &AllocationOrderAction,
) -> Result<Delivered, DeliveryError> {
    let (action, body, target): (&str, Value, &[&str]) = match a.action {
        ConsumerAction::Approve => (
            "approve_by_consumer",
            json!({}),
            &[
                "pending-provider",
                "pending-project",
                "pending-start-date",
                "executing",
                "done",
            ],
        ),
        ConsumerAction::Reject => (
            "reject_by_consumer",
            match &a.comment {
                Some(c) => json!({"consumer_rejection_comment": c}),
                None => json!({}),
            },
            &["rejected"],
        ),
        ConsumerAction::Cancel => ("cancel", json!({}), &["canceled"]),
    };
    match client
        .order_action(a.order_uuid.as_str(), action, &body)
        .await
    {
        Ok((status, _)) => Ok(done(
            status,
            json!({"action": action, "order_uuid": a.order_uuid}),
        )),
        Err(UpstreamError::Conflict { message }) => {
            let state = client.order(a.order_uuid.as_str()).await?.state;
            if target.contains(&state.as_str()) {
                Ok(done(
                    409,
                    json!({"action": action, "order_uuid": a.order_uuid, "already": true, "order_state": state}),
                ))
            } else {
                Err(UpstreamError::Conflict {
                    message: format!("{message} (the order is `{state}`)"),
                }
                .into())
            }
        }
        Err(e) => Err(e.into()),
    }
}

async fn update(client: &WaldurClient, a: &AllocationUpdate) -> Result<Delivered, DeliveryError> {
    let mut body = Map::new();
    if let Some(n) = &a.name {
        body.insert("name".into(), json!(n.as_str()));
    }
    if let Some(d) = &a.description {
        body.insert("description".into(), json!(d.as_str()));
    }
    if let Some(e) = &a.end_date {
        body.insert("end_date".into(), json!(e));
    }
    // Waldur's answer (the resource) is kept in the job's result as it came: the gateway reads
    // nothing of it.
    let (status, _, answer) = client
        .call(
            reqwest::Method::PATCH,
            &format!("marketplace-resources/{}/", a.resource_uuid),
            &[],
            Some(&Value::Object(body)),
        )
        .await?;
    Ok(done(
        status.as_u16(),
        json!({"resource_uuid": a.resource_uuid, "resource": answer}),
    ))
}

async fn options(
    job: &JobRecord,
    client: &WaldurClient,
    a: &AllocationOptions,
    progress: Option<String>,
) -> Result<Delivered, DeliveryError> {
    let resource = a.resource_uuid.as_str();
    let order = match progress {
        Some(o) => Some(o),
        None => pending_order(client, resource, "Update").await?,
    };
    if let Some(order) = order {
        return follow(job, client, &order, true, Some(resource)).await;
    }
    let (status, answer) = client
        .order_action_path(
            &format!("marketplace-resources/{resource}/update_options/"),
            &json!({"options": a.options}),
        )
        .await?;
    match answer.order_uuid.as_deref() {
        // The offering creates orders on option changes: follow it.
        Some(order) => follow(job, client, order, true, Some(resource)).await,
        None => Ok(done(
            status,
            json!({"resource_uuid": resource, "applied": true}),
        )),
    }
}

async fn limits(
    job: &JobRecord,
    client: &WaldurClient,
    a: &AllocationLimits,
    progress: Option<String>,
) -> Result<Delivered, DeliveryError> {
    let uuid = a.resource_uuid.as_str();
    let order = match progress {
        Some(o) => Some(o),
        None => pending_order(client, uuid, "Update").await?,
    };
    if let Some(order) = order {
        return follow(job, client, &order, true, Some(uuid)).await;
    }
    let current = resource(client, uuid).await?.limits;
    let merged = merged_limits(&current, &a.limits);
    if same_limits(&current, &merged) {
        return Ok(done(200, json!({"resource_uuid": uuid, "already": true})));
    }
    let (_, answer) = client
        .order_action_path(
            &format!("marketplace-resources/{uuid}/update_limits/"),
            &json!({"limits": merged}),
        )
        .await?;
    let order = answer.order_uuid.unwrap_or_default();
    follow(job, client, &order, true, Some(uuid)).await
}

/// The resource's limits with the asked ones put over them. Waldur's `update_limits` replaces
/// the whole set, so a change naming only some components would drop the others; the gateway
/// reads the current limits at delivery (after every earlier change of the resource, which are
/// delivered in order) and sends them all, changed ones replaced.
pub fn merged_limits(current: &Map<String, Value>, asked: &Limits) -> Map<String, Value> {
    let mut merged = current.clone();
    merged.extend(asked.iter().map(|(k, v)| (k.clone(), Value::from(*v))));
    merged
}

/// Whether two sets of limits are equal, numbers compared by value (`100` = `100.0`).
fn same_limits(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a.len() == b.len()
        && a.iter().all(|(k, v)| {
            b.get(k)
                .is_some_and(|w| v == w || (v.as_f64().is_some() && v.as_f64() == w.as_f64()))
        })
}

async fn terminate(
    job: &JobRecord,
    client: &WaldurClient,
    a: &AllocationTerminate,
    progress: Option<String>,
) -> Result<Delivered, DeliveryError> {
    let uuid = a.resource_uuid.as_str();
    let order = match progress {
        Some(o) => Some(o),
        None => pending_order(client, uuid, "Terminate").await?,
    };
    if let Some(order) = order {
        return follow(job, client, &order, true, Some(uuid)).await;
    }
    let current = resource(client, uuid).await?;
    if current.state == "Terminated" {
        return Ok(done(
            200,
            json!({"resource_uuid": uuid, "already": true, "resource_state": "Terminated"}),
        ));
    }
    let (_, answer) = client
        .order_action_path(
            &format!("marketplace-resources/{uuid}/terminate/"),
            &json!({}),
        )
        .await?;
    let order = answer.order_uuid.unwrap_or_default();
    follow(job, client, &order, true, Some(uuid)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// Limits as a stored job holds them.
    fn limits(v: Value) -> Limits {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_change_of_some_limits_keeps_the_others() {
        let current = obj(json!({"cpu_k_hours": 100, "gpu_k_hours": 5, "gb_k_hours": 10}));
        let merged = merged_limits(&current, &limits(json!({"cpu_k_hours": 200})));
        assert_eq!(
            Value::Object(merged),
            json!({"cpu_k_hours": 200, "gpu_k_hours": 5, "gb_k_hours": 10})
        );
        let same = merged_limits(&current, &limits(json!({"cpu_k_hours": 100.0})));
        assert!(same_limits(&current, &same));
        assert!(!same_limits(
            &current,
            &merged_limits(&current, &limits(json!({"x": 1})))
        ));
    }
}
