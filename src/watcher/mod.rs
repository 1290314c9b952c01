//! The watcher: one leader among the replicas reads Puhuri with the service provider's token and
//! tells each site, once, what concerns it (`order.created`, `order.state_changed`,
//! `resource.team_changed`, `offering_user.changed`; the rules are in [`view`]).
//!
//! # Leader
//! Every replica runs the loop; each round it asks the store for the lease `watcher`
//! ([`JobStore::lead`], `watcher.lease` long, renewed each round). Only its holder polls. When the
//! leader dies, the lease expires and another replica's next round takes it. The embedded store
//! belongs to one process, which always leads.
//!
//! # Neither missed nor repeated
//! The last view is kept in the store ([`JobStore::save_state`], only by the lease's holder). A
//! poll compares what it reads with that view, stores the events in the sites' lanes, and only
//! then saves the new view. A leader that dies after storing events but before saving its view
//! leaves the old view: the next poll (its own after a restart, or a successor's) finds the same
//! changes and emits the same event ids, which each lane stores once (the id is its idempotency
//! key). A leader that dies before storing them leaves the changes to be found again. So a
//! restart or a leader change neither misses nor repeats an event.
//!
//! # Cost
//! A poll reads lists, never one object at a time: per watched offering the open orders (states
//! `pending-provider` and `executing`, `field=` limited), the offering users; the resources of all
//! watched offerings in one list; the provider's project permissions in one list; and one read
//! per order that left the open states since the last poll. Pages hold 100 items, and every page
//! takes a slot of the shared rate limit first. A part no site's endpoint wants is not read.
//!
//! # When
//! Every `watcher.interval` (default 60 s), and soon after the gateway's own writes land (a job
//! ending wakes it), but never less than `watcher.min_interval` (default 2 s) after the previous
//! poll.

pub mod read;
pub mod view;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::config::Config;
use crate::domain::event::{Event, EventType};
use crate::events::EventHub;
use crate::queue::{DeliveryLimits, JobStore};
use crate::upstream::directory::Directory;
use crate::upstream::{Forwarded, OfferingUserInfo, Order, WaldurClient};

use read::{ReadError, Reader};
use view::{OPEN_ORDER_STATES, ORDER_FIELDS, Snapshot, View};

/// The lease the leader holds.
pub const LEASE_NAME: &str = "watcher";
/// Where the last view is saved.
pub const STATE_KEY: &str = "watcher:view";

/// What one poll did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Calls to Puhuri (pages and single orders).
    pub calls: u64,
    /// Events stored for delivery (counting each site once).
    pub events: usize,
    /// Whether the new view was saved (false: the lease was lost meanwhile).
    pub saved: bool,
}

/// A site the watcher reports to.
struct Watched {
    site: String,
    offerings: BTreeSet<String>,
}

pub struct Watcher {
    reader: Reader,
    hub: Arc<EventHub>,
    store: Arc<dyn JobStore>,
    directory: Arc<Directory>,
    sites: Vec<Watched>,
    offerings: Vec<String>,
    service_provider: Option<String>,
    holder: String,
    wants: BTreeSet<EventType>,
    /// Woken when a job ends (the gateway's own write may have changed Puhuri).
    pub poke: Arc<Notify>,
    interval: Duration,
    min_interval: Duration,
    lease: Duration,
}

/// The event types the watcher emits.
pub const WATCHER_TYPES: [EventType; 4] = [
    EventType::OrderCreated,
    EventType::OrderStateChanged,
    EventType::ResourceTeamChanged,
    EventType::OfferingUserChanged,
];

impl Watcher {
    /// A watcher of the offerings of the service-provider sites whose endpoints want one of its
    /// event types; `None` when there is none (or `watcher.enabled` is off).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &Config,
        client: WaldurClient,
        store: Arc<dyn JobStore>,
        limits: DeliveryLimits,
        hub: Arc<EventHub>,
        directory: Arc<Directory>,
        service_provider: Option<String>,
        holder: String,
    ) -> Option<Watcher> {
        if !config.watcher.enabled {
            return None;
        }
        let mut wants = BTreeSet::new();
        let mut sites = Vec::new();
        for site in config.sites.iter().filter(|s| !s.is_allocator()) {
            let wanted: Vec<EventType> = WATCHER_TYPES
                .into_iter()
                .filter(|t| hub.wants(&site.id, *t))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            wants.extend(wanted);
            sites.push(Watched {
                site: site.id.clone(),
                offerings: site.offerings.clone(),
            });
        }
        if sites.is_empty() {
            return None;
        }
        let offerings: BTreeSet<String> = sites
            .iter()
            .flat_map(|s| s.offerings.iter().cloned())
            .collect();
        Some(Watcher {
            reader: Reader {
                client,
                store: store.clone(),
                limits,
                calls: Default::default(),
            },
            hub,
            store,
            directory,
            sites,
            offerings: offerings.into_iter().collect(),
            service_provider,
            holder,
            wants,
            poke: Arc::new(Notify::new()),
            interval: config.watcher.interval,
            min_interval: config.watcher.min_interval,
            lease: config.watcher.lease,
        })
    }

    /// Leads (or not) and polls, every interval or when poked, until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        loop {
            let started = tokio::time::Instant::now();
            match self.store.lead(LEASE_NAME, &self.holder, self.lease).await {
                Ok(true) => {
                    let before = self.reader.calls();
                    let polled = self.poll().await;
                    let calls = self.reader.calls() - before;
                    crate::telemetry::metrics::watcher_poll(polled.is_ok(), calls);
                    match polled {
                        Ok(report) => {
                            tracing::debug!(calls, events = report.events, "watcher poll")
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the watcher's poll failed; it tries again next round")
                        }
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "the watcher could not ask for its lease"),
            }
            tokio::time::sleep_until(started + self.min_interval).await;
            tokio::select! {
                _ = tokio::time::sleep_until(started + self.interval) => {}
                _ = self.poke.notified() => {}
            }
        }
    }

    /// One poll: read, compare with the saved view, store the events, save the view (module doc).
    pub async fn poll(&self) -> Result<PollReport, ReadError> {
        let before = self.reader.calls();
        let saved = self.store.state(STATE_KEY).await?;
        let first = saved.is_none();
        let previous: View = saved
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        let snapshot = self.read(&previous).await?;
        let (next, changes) = previous.next(&snapshot, first);
        let now = chrono::Utc::now();
        let mut events = 0;
        for change in changes {
            let event = Event::new(change.id, change.event_type, now, change.data);
            for w in self
                .sites
                .iter()
                .filter(|w| w.offerings.contains(&change.offering))
            {
                events += self.hub.emit(&w.site, &change.object_key, &event).await?;
            }
        }
        let view = serde_json::to_string(&next).expect("a view serializes");
        let saved = self
            .store
            .save_state(LEASE_NAME, &self.holder, STATE_KEY, &view)
            .await?;
        if !saved {
            tracing::info!("the watcher lost its lease during a poll; its successor carries on");
        }
        Ok(PollReport {
            calls: self.reader.calls() - before,
            events,
            saved,
        })
    }

    fn wants(&self, types: &[EventType]) -> bool {
        types.iter().any(|t| self.wants.contains(t))
    }

    async fn read(&self, previous: &View) -> Result<Snapshot, ReadError> {
        let mut s = Snapshot::default();
        let fields = || ORDER_FIELDS.iter().map(|f| ("field", f.to_string()));
        if self.wants(&[EventType::OrderCreated, EventType::OrderStateChanged]) {
            for offering in &self.offerings {
                let query: Vec<(&str, String)> = [("offering_uuid", offering.clone())]
                    .into_iter()
                    .chain(OPEN_ORDER_STATES.iter().map(|st| ("state", st.to_string())))
                    .chain(fields())
                    .collect();
                s.open_orders.extend(
                    self.reader
                        .all::<Forwarded<Order>>("marketplace-orders/", &query)
                        .await?,
                );
            }
            let open: BTreeSet<String> = (s.open_orders.iter())
                .map(|o| o.fields.uuid.clone())
                .collect();
            let query: Vec<(&str, String)> = fields().collect();
            for uuid in previous.orders.keys().filter(|u| !open.contains(*u)) {
                let again = self
                    .reader
                    .one(&format!("marketplace-orders/{uuid}/"), &query)
                    .await?;
                s.left_orders.insert(uuid.clone(), again);
            }
        }
        if self.wants(&[EventType::ResourceTeamChanged]) {
            let query: Vec<(&str, String)> = (self.offerings.iter())
                .map(|o| ("offering_uuid", o.clone()))
                .chain(
                    ["uuid", "offering_uuid", "project_uuid"]
                        .iter()
                        .map(|f| ("field", f.to_string())),
                )
                .collect();
            s.resources = self
                .reader
                .all("marketplace-provider-resources/", &query)
                .await?;
            if let Some(sp) = self.service_provider().await? {
                s.grants = self
                    .reader
                    .all(
                        &format!("marketplace-service-providers/{sp}/project_permissions/"),
                        &[],
                    )
                    .await?;
            }
        }
        if self.wants(&[EventType::OfferingUserChanged]) {
            for offering in &self.offerings {
                let query = [("offering_uuid", offering.clone())];
                s.offering_users.extend(
                    self.reader
                        .all::<OfferingUserInfo>("marketplace-offering-users/", &query)
                        .await?,
                );
            }
        }
        Ok(s)
    }

    async fn service_provider(&self) -> Result<Option<String>, ReadError> {
        if let Some(sp) = &self.service_provider {
            return Ok(Some(sp.clone()));
        }
        match self.offerings.first() {
            Some(o) => Ok(self.directory.service_provider_of_offering(o).await?),
            None => Ok(None),
        }
    }
}
