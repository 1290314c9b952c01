//! Turning one job into the Puhuri calls that make it true.
//!
//! Each operation is written so that delivering it twice has the effect of delivering it once:
//! - usage is an absolute monthly total (Waldur upserts it), and a value already delivered is not
//!   sent again;
//! - an order transition that Waldur answers with 409 is followed by re-reading the order: if it
//!   is already where the transition leads (a repeat of a delivery whose answer was lost), the job
//!   succeeded; otherwise it failed with Waldur's reason and the order's state;
//! - backend id, report, limits and resource state replace what is there (repeats are harmless);
//! - an offering user is looked up before it is created, and a create that loses a race to the
//!   uniqueness check is turned into an update.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::domain::Month;
use crate::domain::operations::{
    OfferingUsername, Operation, ResourceState, UsageReport, UserUsername, usage_coalesce_key,
};
use crate::queue::{JobRecord, JobStore};
use crate::upstream::directory::Directory;
use crate::upstream::{UpstreamError, WaldurClient};

/// What a successful delivery did.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivered {
    pub status: Option<u16>,
    pub result: Value,
    /// Values now known to be upstream (for coalescing keys).
    pub delivered: BTreeMap<String, String>,
}

pub struct Deliverer {
    client: WaldurClient,
    store: Arc<dyn JobStore>,
    /// The API's directory, so a delivered backend id change is not answered from its cache.
    directory: Option<Arc<Directory>>,
}

/// Order states that mean "this transition already happened".
const APPROVED: &[&str] = &["executing", "done", "pending-start-date"];

impl Deliverer {
    pub fn new(client: WaldurClient, store: Arc<dyn JobStore>) -> Deliverer {
        Deliverer {
            client,
            store,
            directory: None,
        }
    }

    /// Share the API's directory: delivering a backend id forgets its cached lookups.
    pub fn with_directory(mut self, directory: Arc<Directory>) -> Deliverer {
        self.directory = Some(directory);
        self
    }

    pub async fn deliver(&self, job: &JobRecord) -> Result<Delivered, UpstreamError> {
        let operation = Operation::from_job(&job.operation, &job.payload)
            .map_err(|message| UpstreamError::Permanent { status: 0, message })?;
        match operation {
            Operation::UsageReport(report) => {
                self.report_usage(&report, job.delivered.as_ref()).await
            }
            Operation::OrderApprove(o) => {
                let body = match o.attributes {
                    Some(a) => json!({"attributes": a}),
                    None => json!({}),
                };
                self.order_transition(&o.order_uuid, "approve_by_provider", &body, APPROVED)
                    .await
            }
            Operation::OrderReject(o) => {
                let body = match o.comment {
                    Some(c) => json!({"provider_rejection_comment": c}),
                    None => json!({}),
                };
                self.order_transition(&o.order_uuid, "reject_by_provider", &body, &["rejected"])
                    .await
            }
            Operation::OrderDone(o) => {
                self.order_transition(&o.order_uuid, "set_state_done", &json!({}), &["done"])
                    .await
            }
            Operation::OrderErred(o) => {
                // Waldur's view reads both keys: always send both.
                let body = json!({"error_message": o.message, "error_traceback": o.traceback});
                self.order_transition(&o.order_uuid, "set_state_erred", &body, &["erred"])
                    .await
            }
            Operation::ResourceBackendId(r) => {
                let body = json!({"backend_id": r.backend_id});
                let done = self
                    .resource_action(&r.resource_uuid, "set_backend_id", &body)
                    .await?;
                if let Some(directory) = &self.directory {
                    directory.forget_backend_id(&r.resource_uuid, Some(&r.backend_id));
                }
                Ok(done)
            }
            Operation::ResourceState(r) => self.resource_state(&r).await,
            Operation::ResourceReport(r) => {
                let body = json!({"report": r.report});
                self.resource_action(&r.resource_uuid, "submit_report", &body)
                    .await
            }
            Operation::ResourceLimits(r) => {
                let body = json!({"limits": r.limits});
                self.resource_action(&r.resource_uuid, "set_limits", &body)
                    .await
            }
            Operation::OfferingUsername(u) => self.offering_username(&u).await,
            Operation::UserUsername(u) => self.user_username(&u).await,
        }
    }

    /// One order transition; a 409 is answered by re-reading the order.
    async fn order_transition(
        &self,
        uuid: &str,
        action: &str,
        body: &Value,
        already: &[&str],
    ) -> Result<Delivered, UpstreamError> {
        match self.client.order_action(uuid, action, body).await {
            Ok((status, _)) => Ok(done(status, json!({"action": action}))),
            Err(e) if e.is_conflict() => {
                let order = self.client.order(uuid).await?;
                let state = order["state"].as_str().unwrap_or("unknown").to_string();
                if already.contains(&state.as_str()) {
                    Ok(Delivered {
                        status: Some(409),
                        result: json!({"action": action, "already": true, "order_state": state}),
                        delivered: BTreeMap::new(),
                    })
                } else {
                    Err(UpstreamError::Permanent {
                        status: 409,
                        message: format!("{} (the order is {state})", e.message()),
                    })
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn resource_action(
        &self,
        uuid: &str,
        action: &str,
        body: &Value,
    ) -> Result<Delivered, UpstreamError> {
        let (status, answer) = self.client.resource_action(uuid, action, body).await?;
        let mut result = json!({"action": action});
        if let Some(s) = answer.get("status") {
            result["status"] = s.clone();
        }
        Ok(done(status, result))
    }

    async fn resource_state(&self, r: &ResourceState) -> Result<Delivered, UpstreamError> {
        match r.state.as_str() {
            "ok" => {
                self.resource_action(&r.resource_uuid, "set_as_ok", &json!({}))
                    .await
            }
            "erred" => {
                let body = json!({"error_message": r.message.clone().unwrap_or_default()});
                self.resource_action(&r.resource_uuid, "set_as_erred", &body)
                    .await
            }
            other => Err(UpstreamError::Permanent {
                status: 0,
                message: format!("unknown resource state `{other}`"),
            }),
        }
    }

    /// Look up, then update or create; a create that loses the uniqueness race becomes an update.
    async fn offering_username(&self, u: &OfferingUsername) -> Result<Delivered, UpstreamError> {
        if let Some(done) = self.update_offering_user(u).await? {
            return Ok(done);
        }
        match self
            .client
            .create_offering_user(&u.offering_uuid, &u.user_uuid, &u.username)
            .await
        {
            Ok(created) => Ok(done(
                201,
                json!({"action": "created", "offering_user_uuid": created["uuid"]}),
            )),
            Err(e) if e.status() == Some(400) && e.message().contains("unique") => {
                match self.update_offering_user(u).await? {
                    Some(done) => Ok(done),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// `None` when the offering user does not exist.
    async fn update_offering_user(
        &self,
        u: &OfferingUsername,
    ) -> Result<Option<Delivered>, UpstreamError> {
        let found = self
            .client
            .offering_users(&u.offering_uuid, &u.user_uuid)
            .await?;
        let Some(existing) = found.first() else {
            return Ok(None);
        };
        let uuid = existing["uuid"].as_str().unwrap_or_default().to_string();
        if existing["username"].as_str() == Some(u.username.as_str()) {
            return Ok(Some(Delivered {
                status: None,
                result: json!({"action": "unchanged", "offering_user_uuid": uuid}),
                delivered: BTreeMap::new(),
            }));
        }
        self.client
            .set_offering_user_username(&uuid, &u.username)
            .await?;
        Ok(Some(done(
            200,
            json!({"action": "updated", "offering_user_uuid": uuid}),
        )))
    }

    async fn user_username(&self, u: &UserUsername) -> Result<Delivered, UpstreamError> {
        let status = self
            .client
            .set_offerings_username(&u.service_provider_uuid, &u.user_uuid, &u.username)
            .await?;
        Ok(done(status, json!({"action": "set_offerings_username"})))
    }

    /// `known`: the values last delivered for the report's month, when the lease brought them.
    async fn report_usage(
        &self,
        report: &UsageReport,
        known: Option<&BTreeMap<String, String>>,
    ) -> Result<Delivered, UpstreamError> {
        let month = Month::parse(&report.month).map_err(|m| UpstreamError::Permanent {
            status: 0,
            message: format!("month: {m}"),
        })?;
        let key = usage_coalesce_key(&report.resource_uuid, &report.month);
        // If the store cannot say what was delivered, send everything: a repeat is harmless.
        let fetched;
        let already = match known {
            Some(values) => values,
            None => {
                fetched = self.store.delivered(&key).await.unwrap_or_default();
                &fetched
            }
        };
        let (unchanged, changed): (Vec<_>, Vec<_>) = report
            .usages
            .iter()
            .map(|(t, a)| (t.clone(), a.clone()))
            .partition(|(t, a)| already.get(t) == Some(a));
        let unchanged: Vec<String> = unchanged.into_iter().map(|(t, _)| t).collect();
        if changed.is_empty() {
            return Ok(Delivered {
                status: None,
                result: json!({"sent": {}, "unchanged": unchanged}),
                delivered: BTreeMap::new(),
            });
        }
        let status = self
            .client
            .set_usage(
                &report.resource_uuid,
                &month.usage_date(),
                &changed,
                report.description.as_deref(),
            )
            .await?;
        let sent: BTreeMap<String, String> = changed.into_iter().collect();
        Ok(Delivered {
            status: Some(status),
            result: json!({"sent": sent, "unchanged": unchanged}),
            delivered: sent,
        })
    }
}

fn done(status: u16, result: Value) -> Delivered {
    Delivered {
        status: Some(status),
        result,
        delivered: BTreeMap::new(),
    }
}
