//! Turning one job into the Puhuri calls that make it true.
//!
//! Each operation is written so that delivering it twice has the effect of delivering it once:
//! - usage is an absolute monthly total (Waldur upserts it), and a value already delivered is not
//!   sent again;
//! - an order transition that Waldur answers with 409 is followed by re-reading the order: if it
//!   is already where the transition leads (a repeat of a delivery whose answer was lost), the job
//!   succeeded; otherwise it failed with Waldur's reason and the order's state;
//! - backend id, report, limits and resource state replace what is there (repeats are harmless);
//! - an offering user is looked up before it is created, and a create that Waldur refuses is
//!   followed by a second look-up: if the user now exists (another delivery won the race to the
//!   uniqueness check), the create becomes an update. Waldur shows offering users only of
//!   offerings whose plugin options let the service provider create them; on another offering
//!   the refusal says so in front of Waldur's words.
//!
//! `done` and `erred` on an order Waldur has already finished (`Marketplace.Basic` offerings are
//! finished by Waldur itself shortly after approval, and answer `set_state_done` with 409
//! "Valid states for operation: executing.") succeed after the re-read: the job's result carries
//! `"already": true` and the order's real state, so a site that said `erred` about an order Waldur
//! finished as `done` can see it.
//!
//! What a failure means for the job is decided in one place, [`outcome`], on the error's kind:
//! transient failures retry; 401/403 fail at once as a configuration problem
//! (`upstream_unauthorized` / `upstream_forbidden` open `last_error`, and the log says it at error
//! level); any other refusal fails with Waldur's message.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::usage::UsageReads;

mod allocations;
mod outcome;
use crate::domain::WaldurUuid;
use crate::domain::operations::{
    OfferingUsername, Operation, ResourceState, SettableState, UsageReport, UserUsername,
    usage_coalesce_key,
};
use crate::queue::{JobRecord, JobStore, Known};
use crate::upstream::directory::Directory;
use crate::upstream::{UpstreamError, WaldurClient};
pub use outcome::*;

/// What a successful delivery did.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivered {
    pub status: Option<u16>,
    pub result: Value,
    /// Values now known to be upstream, and since when (for coalescing keys).
    pub delivered: BTreeMap<String, Known>,
}

pub struct Deliverer {
    client: WaldurClient,
    /// Every Puhuri identity's client by name (`sp` included): an allocator's job is delivered
    /// with the one it names, and only with that one.
    identities: BTreeMap<String, WaldurClient>,
    store: Arc<dyn JobStore>,
    /// The API's directory, so a delivered backend id change is not answered from its cache.
    directory: Option<Arc<Directory>>,
    /// What Puhuri holds for usage, when the store's knowledge is too old to trust.
    usage: UsageReads,
    usage_known_for: Duration,
}

/// How long a usage value known to be in Puhuri is trusted without a read, unless configured
/// (`delivery.usage_known_for`).
pub const DEFAULT_USAGE_KNOWN_FOR: Duration = Duration::from_secs(600);

/// Order states that mean "this transition already happened".
const APPROVED: &[&str] = &["executing", "done", "erred", "pending-start-date"];
/// Order states in which `done` or `erred` has nothing left to do.
const FINISHED: &[&str] = &["done", "erred"];

impl Deliverer {
    pub fn new(client: WaldurClient, store: Arc<dyn JobStore>) -> Deliverer {
        Deliverer {
            usage: UsageReads::new(client.clone(), None, DEFAULT_USAGE_KNOWN_FOR),
            usage_known_for: DEFAULT_USAGE_KNOWN_FOR,
            identities: BTreeMap::from([("sp".to_string(), client.clone())]),
            client,
            store,
            directory: None,
        }
    }

    /// Share the API's directory: delivering a backend id forgets its cached lookups, and reads
    /// of usage cover a resource's whole offering.
    pub fn with_directory(mut self, directory: Arc<Directory>) -> Deliverer {
        self.directory = Some(directory);
        let known_for = self.usage_known_for;
        self.with_usage_known_for(known_for)
    }

    /// The further Puhuri identities' clients, by name (the service provider's stays `sp`).
    pub fn with_identities(mut self, identities: BTreeMap<String, WaldurClient>) -> Deliverer {
        self.identities.extend(identities);
        self
    }

    /// How long a usage value known to be in Puhuri is trusted without reading it again.
    pub fn with_usage_known_for(mut self, known_for: Duration) -> Deliverer {
        self.usage_known_for = known_for;
        self.usage = UsageReads::new(self.client.clone(), self.directory.clone(), known_for);
        self
    }

    pub async fn deliver(&self, job: &JobRecord) -> Result<Delivered, DeliveryError> {
        let operation = Operation::from_job(&job.operation, &job.payload)
            .map_err(DeliveryError::UnreadablePayload)?;
        self.deliver_operation(job, operation).await
    }

    async fn deliver_operation(
        &self,
        job: &JobRecord,
        operation: Operation,
    ) -> Result<Delivered, DeliveryError> {
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
            // Waldur finishes the orders of some offerings by itself: an order already
            // finished either way is not the site's to finish.
            Operation::OrderDone(o) => {
                self.order_transition(&o.order_uuid, "set_state_done", &json!({}), FINISHED)
                    .await
            }
            Operation::OrderErred(o) => {
                // Waldur's view reads both keys (a missing traceback is a 500 on some versions):
                // always send both.
                let body = json!({"error_message": o.message, "error_traceback": o.traceback});
                self.order_transition(&o.order_uuid, "set_state_erred", &body, FINISHED)
                    .await
            }
            Operation::ResourceBackendId(r) => {
                let body = json!({"backend_id": r.backend_id});
                let done = self
                    .resource_action(&r.resource_uuid, "set_backend_id", &body)
                    .await?;
                if let Some(directory) = &self.directory {
                    directory
                        .forget_backend_id(r.resource_uuid.as_str(), Some(r.backend_id.as_str()));
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
            allocation @ (Operation::AllocationCreate(_)
            | Operation::AllocationOrder(_)
            | Operation::AllocationUpdate(_)
            | Operation::AllocationOptions(_)
            | Operation::AllocationLimits(_)
            | Operation::AllocationTerminate(_)) => self.deliver_allocation(job, allocation).await,
        }
    }

    /// One order transition; a 409 is answered by re-reading the order.
    async fn order_transition(
        &self,
        uuid: &WaldurUuid,
        action: &str,
        body: &Value,
        already: &[&str],
    ) -> Result<Delivered, DeliveryError> {
        match self.client.order_action(uuid.as_str(), action, body).await {
            Ok((status, _)) => Ok(done(status, json!({"action": action}))),
            Err(UpstreamError::Conflict { message }) => {
                let order = self.client.order(uuid.as_str()).await?;
                let state = order.state;
                if already.contains(&state.as_str()) {
                    Ok(Delivered {
                        status: Some(409),
                        result: json!({"action": action, "already": true, "order_state": state}),
                        delivered: BTreeMap::new(),
                    })
                } else {
                    Err(UpstreamError::Conflict {
                        message: format!("{message} (the order is {state})"),
                    }
                    .into())
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn resource_action(
        &self,
        uuid: &WaldurUuid,
        action: &str,
        body: &Value,
    ) -> Result<Delivered, DeliveryError> {
        let (status, answer) = self
            .client
            .resource_action(uuid.as_str(), action, body)
            .await?;
        let mut result = json!({"action": action});
        if let Some(s) = answer.status {
            result["status"] = json!(s);
        }
        Ok(done(status, result))
    }

    async fn resource_state(&self, r: &ResourceState) -> Result<Delivered, DeliveryError> {
        let (action, body) = match r.state {
            SettableState::Ok => ("set_as_ok", json!({})),
            SettableState::Erred => (
                "set_as_erred",
                json!({"error_message": r.message.as_ref().map_or("", |m| m.as_str())}),
            ),
        };
        self.resource_action(&r.resource_uuid, action, &body).await
    }

    /// Look up, then update or create; a create that loses the uniqueness race becomes an update.
    async fn offering_username(&self, u: &OfferingUsername) -> Result<Delivered, DeliveryError> {
        if let Some(done) = self.update_offering_user(u).await? {
            return Ok(done);
        }
        match self
            .client
            .create_offering_user(
                u.offering_uuid.as_str(),
                u.user_uuid.as_str(),
                u.username.as_str(),
            )
            .await
        {
            Ok(created) => Ok(done(
                201,
                json!({"action": "created", "offering_user_uuid": created.uuid}),
            )),
            // Refused: if another delivery created the user meanwhile (Waldur's uniqueness
            // check), this is an update; otherwise Waldur's reason stands, explained when the
            // offering does not allow offering users at all.
            Err(e @ UpstreamError::Refused { .. }) => match self.update_offering_user(u).await? {
                Some(done) => Ok(done),
                None => Err(self.explain_refused_offering_user(u, e).await.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Waldur lists offering users only of offerings whose `plugin_options` allow
    /// `service_provider_can_create_offering_user`, and refuses to create them elsewhere ("It is
    /// not allowed to create users for current offering.", or, when one exists that it does not
    /// show, "The fields offering, user must make a unique set."). When the offering's option is
    /// off, the job's error says so in front of Waldur's words; otherwise (or when the offering
    /// cannot be read) Waldur's refusal stands as it was.
    async fn explain_refused_offering_user(
        &self,
        u: &OfferingUsername,
        refused: UpstreamError,
    ) -> UpstreamError {
        let UpstreamError::Refused {
            status,
            message,
            body,
        } = refused
        else {
            return refused;
        };
        let allowed = match self
            .client
            .provider_offering(u.offering_uuid.as_str())
            .await
        {
            Ok(offering) => offering
                .plugin_options
                .service_provider_can_create_offering_user
                .unwrap_or(true),
            Err(_) => true,
        };
        let message = if allowed {
            message
        } else {
            format!(
                "the offering does not let the service provider create or see offering users \
                 (its plugin option service_provider_can_create_offering_user is off in \
                 Puhuri); Puhuri said: {message}"
            )
        };
        UpstreamError::Refused {
            status,
            message,
            body,
        }
    }

    /// `None` when the offering user does not exist.
    async fn update_offering_user(
        &self,
        u: &OfferingUsername,
    ) -> Result<Option<Delivered>, UpstreamError> {
        let found = self
            .client
            .offering_users(u.offering_uuid.as_str(), u.user_uuid.as_str())
            .await?;
        let Some(existing) = found.first() else {
            return Ok(None);
        };
        let uuid = existing.uuid.clone();
        if existing.username.as_deref() == Some(u.username.as_str()) {
            return Ok(Some(Delivered {
                status: None,
                result: json!({"action": "unchanged", "offering_user_uuid": uuid}),
                delivered: BTreeMap::new(),
            }));
        }
        self.client
            .set_offering_user_username(&uuid, u.username.as_str())
            .await?;
        Ok(Some(done(
            200,
            json!({"action": "updated", "offering_user_uuid": uuid}),
        )))
    }

    async fn user_username(&self, u: &UserUsername) -> Result<Delivered, DeliveryError> {
        let status = self
            .client
            .set_offerings_username(
                u.service_provider_uuid.as_str(),
                u.user_uuid.as_str(),
                u.username.as_str(),
            )
            .await?;
        Ok(done(status, json!({"action": "set_offerings_username"})))
    }

    /// `known`: what the store knew Puhuri held for the report's month, when the lease brought
    /// it. What is sent is decided by [`UsageReads::plan`](super::usage::UsageReads::plan).
    async fn report_usage(
        &self,
        report: &UsageReport,
        known: Option<&BTreeMap<String, Known>>,
    ) -> Result<Delivered, DeliveryError> {
        let month = report.month;
        let key = usage_coalesce_key(&report.resource_uuid, month);
        // If the store cannot say what is known, nothing is: everything is sent (a repeat is
        // harmless).
        let fetched;
        let known = match known {
            Some(values) => values,
            None => {
                fetched = self.store.delivered(&key).await.unwrap_or_default();
                &fetched
            }
        };
        let plan = self
            .usage
            .plan(
                report.resource_uuid.as_str(),
                &format!("{month}-01"),
                &report.usages,
                known,
            )
            .await?;
        let unchanged: Vec<&String> = plan.unchanged.keys().collect();
        if plan.send.is_empty() {
            return Ok(Delivered {
                status: None,
                result: json!({"sent": {}, "unchanged": unchanged}),
                delivered: plan.unchanged,
            });
        }
        let status = self
            .client
            .set_usage(
                report.resource_uuid.as_str(),
                &month.usage_date(),
                &plan.send,
                report.description.as_ref().map(|d| d.as_str()),
            )
            .await?;
        let sent: BTreeMap<String, String> = plan.send.into_iter().collect();
        let mut delivered = plan.unchanged.clone();
        delivered.extend(sent.iter().map(|(k, v)| (k.clone(), Known::now(v.clone()))));
        Ok(Delivered {
            status: Some(status),
            result: json!({"sent": sent, "unchanged": plan.unchanged.keys().collect::<Vec<_>>()}),
            delivered,
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
