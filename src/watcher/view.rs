//! What the watcher saw of Puhuri, and what changed since: the comparison that turns two views
//! into events. Pure (no I/O), so the rules are tested without a Puhuri.
//!
//! - Orders of the watched offerings that need the provider: those `pending-provider` or
//!   `executing` (of any type: Create, Update, Terminate). An order seen for the first time is
//!   `order.created` (on the very first poll too: the sites learn what already waits for them);
//!   a known order with another state, or one that left those states (its state read once more),
//!   is `order.state_changed`, once per state it is seen in.
//! - Teams: the users holding a role in a resource's project (what Waldur's `team/` of the
//!   resource lists). A change of that set for a resource seen before is
//!   `resource.team_changed`, with who was added and removed. New resources are announced by
//!   their order, not by a team event.
//! - Offering users (a user's username on an offering): one seen for the first time after the
//!   first poll, a changed username or state, or one gone, is `offering_user.changed`.
//!
//! Event ids are stable (`evt_order_<uuid>_<state>`, `evt_team_<resource>_<n>` with `n` counted
//! in the view, ...): a poll repeated by a new leader, whose predecessor emitted but did not save
//! its view, emits the same ids, and the event lanes store each id once.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::event::{EventType, event_id};
use crate::upstream::{Forwarded, OfferingUserInfo, Order, ProjectRole, ResourceProjection};

/// The order states in which an order waits for the provider.
pub const OPEN_ORDER_STATES: [&str; 2] = ["pending-provider", "executing"];

/// The fields of an order the watcher reads and sends (Waldur's `field=`).
pub const ORDER_FIELDS: [&str; 13] = [
    "uuid",
    "type",
    "state",
    "offering_uuid",
    "project_uuid",
    "customer_uuid",
    "marketplace_resource_uuid",
    "plan_uuid",
    "attributes",
    "limits",
    "created",
    "modified",
    "error_message",
];

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Open orders: uuid -> (state, offering).
    pub orders: BTreeMap<String, (String, String)>,
    /// Project -> the users holding a role in it.
    pub projects: BTreeMap<String, BTreeSet<String>>,
    /// Resource -> what is known of it.
    pub resources: BTreeMap<String, ResourceSeen>,
    /// `<offering>:<user>` -> what is known of that offering user.
    pub offering_users: BTreeMap<String, OfferingUserSeen>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceSeen {
    pub offering: String,
    pub project: String,
    /// Team changes seen so far (names the next `resource.team_changed`).
    pub team_changes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfferingUserSeen {
    pub username: Option<String>,
    pub state: Option<String>,
    pub changes: u64,
}

/// What one poll read.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Open orders (their [`ORDER_FIELDS`]), each sent in its events as Waldur gave it.
    pub open_orders: Vec<Forwarded<Order>>,
    /// Orders that were open and are no longer, read again (`None`: gone).
    pub left_orders: BTreeMap<String, Option<Forwarded<Order>>>,
    /// Resources: uuid, offering_uuid, project_uuid.
    pub resources: Vec<ResourceProjection>,
    /// Project role grants: user_uuid, project_uuid.
    pub grants: Vec<ProjectRole>,
    /// Offering users: offering_uuid, user_uuid, username, state.
    pub offering_users: Vec<OfferingUserInfo>,
}

/// One event to send, about an object of `offering`.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub offering: String,
    pub object_key: String,
    pub id: String,
    pub event_type: EventType,
    pub data: Value,
}

/// A text field that is there and not empty.
fn text(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.is_empty())
}

/// An order's uuid, state and offering, when none is empty.
fn order_key(o: &Order) -> Option<(String, String, String)> {
    let nonempty = |s: &String| Some(s.clone()).filter(|s| !s.is_empty());
    Some((
        nonempty(&o.uuid)?,
        nonempty(&o.state)?,
        nonempty(&o.offering_uuid)?,
    ))
}

fn order_change(
    o: &Forwarded<Order>,
    event_type: EventType,
    previous: Option<&str>,
) -> Option<Change> {
    let (uuid, state, offering) = order_key(&o.fields)?;
    let mut data = o.raw.clone();
    if let Some(m) = data.as_object_mut() {
        // Waldur's name for the marketplace resource, under the gateway's name for it
        if let Some(r) = m.remove("marketplace_resource_uuid") {
            m.insert("resource_uuid".into(), r);
        }
        if let Some(p) = previous {
            m.insert("previous_state".into(), json!(p));
        }
    }
    let id = match event_type {
        EventType::OrderCreated => event_id(&["order", &uuid, "created"]),
        _ => event_id(&["order", &uuid, &state]),
    };
    Some(Change {
        offering,
        object_key: format!("order:{uuid}"),
        id,
        event_type,
        data,
    })
}

impl View {
    /// The view `snapshot` shows, and the events that lead there from `self`. `first`: no view was
    /// saved before (teams and offering users are then only recorded).
    pub fn next(&self, snapshot: &Snapshot, first: bool) -> (View, Vec<Change>) {
        let mut next = View::default();
        let mut changes = Vec::new();
        // orders
        for o in &snapshot.open_orders {
            let Some((uuid, state, offering)) = order_key(&o.fields) else {
                continue;
            };
            match self.orders.get(&uuid) {
                None => changes.extend(order_change(o, EventType::OrderCreated, None)),
                Some((was, _)) if *was != state => {
                    changes.extend(order_change(o, EventType::OrderStateChanged, Some(was)))
                }
                Some(_) => {}
            }
            next.orders.insert(uuid, (state, offering));
        }
        for (uuid, (was, _)) in &self.orders {
            if next.orders.contains_key(uuid) {
                continue;
            }
            if let Some(Some(o)) = snapshot.left_orders.get(uuid)
                && !o.fields.state.is_empty()
                && o.fields.state != *was
            {
                changes.extend(order_change(o, EventType::OrderStateChanged, Some(was)));
            }
        }
        // teams
        for g in &snapshot.grants {
            if !g.user_uuid.is_empty() && !g.project_uuid.is_empty() {
                (next.projects.entry(g.project_uuid.clone()).or_default())
                    .insert(g.user_uuid.clone());
            }
        }
        let empty = BTreeSet::new();
        for r in &snapshot.resources {
            let (Some(uuid), Some(offering), Some(project)) =
                (text(&r.uuid), text(&r.offering_uuid), text(&r.project_uuid))
            else {
                continue;
            };
            let mut seen = ResourceSeen {
                offering: offering.clone(),
                project: project.clone(),
                team_changes: 0,
            };
            if let Some(before) = self.resources.get(&uuid).filter(|_| !first) {
                seen.team_changes = before.team_changes;
                let was = self.projects.get(&before.project).unwrap_or(&empty);
                let now = next.projects.get(&project).unwrap_or(&empty);
                if was != now {
                    seen.team_changes += 1;
                    changes.push(Change {
                        offering,
                        object_key: format!("resource:{uuid}"),
                        id: event_id(&["team", &uuid, &seen.team_changes.to_string()]),
                        event_type: EventType::ResourceTeamChanged,
                        data: json!({
                            "resource_uuid": uuid,
                            "project_uuid": project,
                            "offering_uuid": seen.offering,
                            "users": now,
                            "added": now.difference(was).collect::<Vec<_>>(),
                            "removed": was.difference(now).collect::<Vec<_>>(),
                        }),
                    });
                }
            }
            next.resources.insert(uuid, seen);
        }
        // offering users
        for ou in &snapshot.offering_users {
            let (Some(offering), Some(user)) = (text(&ou.offering_uuid), text(&ou.user_uuid))
            else {
                continue;
            };
            let key = format!("{offering}:{user}");
            let mut seen = OfferingUserSeen {
                username: text(&ou.username),
                state: text(&ou.state),
                changes: 0,
            };
            let before = self.offering_users.get(&key);
            let changed = match before {
                None => !first,
                Some(b) => b.username != seen.username || b.state != seen.state,
            };
            seen.changes = before.map_or(0, |b| b.changes);
            if changed {
                seen.changes += 1;
                changes.push(offering_user_change(&offering, &user, &seen, false));
            }
            next.offering_users.insert(key, seen);
        }
        for (key, b) in &self.offering_users {
            if next.offering_users.contains_key(key) {
                continue;
            }
            if let Some((offering, user)) = key.split_once(':') {
                let gone = OfferingUserSeen {
                    username: b.username.clone(),
                    state: b.state.clone(),
                    changes: b.changes + 1,
                };
                changes.push(offering_user_change(offering, user, &gone, true));
            }
        }
        (next, changes)
    }
}

fn offering_user_change(offering: &str, user: &str, seen: &OfferingUserSeen, gone: bool) -> Change {
    Change {
        offering: offering.to_owned(),
        object_key: format!("offering_user:{offering}:{user}"),
        id: event_id(&["ouser", offering, user, &seen.changes.to_string()]),
        event_type: EventType::OfferingUserChanged,
        data: json!({
            "offering_uuid": offering,
            "user_uuid": user,
            "username": seen.username,
            "state": seen.state,
            "removed": gone,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read as the watcher reads Waldur's answers.
    fn read<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn order(uuid: &str, state: &str) -> Forwarded<Order> {
        read(
            json!({"uuid": uuid, "state": state, "type": "Create", "offering_uuid": "o1",
               "marketplace_resource_uuid": "r1"}),
        )
    }

    #[test]
    fn orders_are_announced_once_per_state() {
        let snap = |orders: Vec<Forwarded<Order>>| Snapshot {
            open_orders: orders,
            ..Snapshot::default()
        };
        let (v1, c1) = View::default().next(&snap(vec![order("a", "pending-provider")]), true);
        assert_eq!(c1.len(), 1);
        assert_eq!(c1[0].event_type, EventType::OrderCreated);
        assert_eq!(c1[0].data["resource_uuid"], "r1");
        let (v2, c2) = v1.next(&snap(vec![order("a", "pending-provider")]), false);
        assert!(c2.is_empty());
        let (v3, c3) = v2.next(&snap(vec![order("a", "executing")]), false);
        assert_eq!(c3.len(), 1);
        assert_eq!(c3[0].event_type, EventType::OrderStateChanged);
        assert_eq!(c3[0].data["previous_state"], "pending-provider");
        // it leaves the open states: read once more
        let mut s = snap(vec![]);
        s.left_orders.insert("a".into(), Some(order("a", "done")));
        let (v4, c4) = v3.next(&s, false);
        assert_eq!(c4.len(), 1);
        assert_eq!(c4[0].id, "evt_order_a_done");
        assert!(v4.orders.is_empty());
    }

    #[test]
    fn a_team_change_is_an_event_per_resource_of_the_project() {
        let snap = |users: &[&str]| Snapshot {
            resources: vec![read(
                json!({"uuid": "r1", "offering_uuid": "o1", "project_uuid": "p1"}),
            )],
            grants: users
                .iter()
                .map(|u| read(json!({"user_uuid": u, "project_uuid": "p1"})))
                .collect(),
            ..Snapshot::default()
        };
        let (v1, c1) = View::default().next(&snap(&["u1"]), true);
        assert!(c1.is_empty());
        let (v2, c2) = v1.next(&snap(&["u1", "u2"]), false);
        assert_eq!(c2.len(), 1);
        assert_eq!(c2[0].data["added"], json!(["u2"]));
        assert_eq!(c2[0].id, "evt_team_r1_1");
        let (_, c3) = v2.next(&snap(&["u1"]), false);
        assert_eq!(c3[0].data["removed"], json!(["u2"]));
        assert_eq!(c3[0].id, "evt_team_r1_2");
    }

    #[test]
    fn offering_users_are_recorded_first_then_each_change_is_an_event() {
        let snap = |users: Vec<OfferingUserInfo>| Snapshot {
            offering_users: users,
            ..Snapshot::default()
        };
        let ou = |name: &str| -> OfferingUserInfo {
            read(
                json!({"uuid": "ou1", "offering_uuid": "o1", "user_uuid": "u1", "username": name, "state": "OK"}),
            )
        };
        let (v1, c1) = View::default().next(&snap(vec![ou("alice")]), true);
        assert!(c1.is_empty(), "the first poll only records");
        let (v2, c2) = v1.next(&snap(vec![ou("alice")]), false);
        assert!(c2.is_empty());
        let (v3, c3) = v2.next(&snap(vec![ou("alice2")]), false);
        assert_eq!(c3.len(), 1);
        assert_eq!(c3[0].event_type, EventType::OfferingUserChanged);
        assert_eq!(c3[0].data["username"], "alice2");
        assert_eq!(c3[0].id, "evt_ouser_o1_u1_1");
        let (_, c4) = v3.next(&snap(vec![]), false);
        assert_eq!(c4[0].data["removed"], true);
        assert_eq!(c4[0].id, "evt_ouser_o1_u1_2");
    }
}
