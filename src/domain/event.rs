//! The events the gateway sends to site endpoints, and the envelope they travel in.
//!
//! An event is versioned JSON, `{"id", "type", "version", "time", "data"}`, signed the Standard
//! Webhooks way when it is delivered (`events::signing`). Its `id` is unique and stable: an event
//! the gateway could emit twice (a job outcome noted again after a crash, a watcher poll repeated by
//! a new leader) carries the same id both times, and the store keeps one delivery per id and
//! endpoint, so a site receives it once. Receivers should still de-duplicate by `webhook-id`, as
//! the Standard Webhooks specification advises: delivery is at least once.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The version of the envelope and of every event's `data` shape. A change that removes or
/// renames a field raises it; added fields do not.
pub const EVENT_VERSION: u32 = 1;

// The wire names are written once per variant, for serde and strum alike.
/// What happened. The names are the `type` of an event and the values of an endpoint's `events`.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
pub enum EventType {
    /// One of the site's jobs reached Puhuri; `data` is the job's view.
    #[serde(rename = "job.succeeded")]
    #[strum(serialize = "job.succeeded")]
    JobSucceeded,
    /// Puhuri refused one of the site's jobs; `data` is the job's view.
    #[serde(rename = "job.failed")]
    #[strum(serialize = "job.failed")]
    JobFailed,
    /// One of the site's jobs ran out of retries; `data` is the job's view.
    #[serde(rename = "job.dead")]
    #[strum(serialize = "job.dead")]
    JobDead,
    /// An order of one of the site's offerings that needs the provider appeared in Puhuri.
    #[serde(rename = "order.created")]
    #[strum(serialize = "order.created")]
    OrderCreated,
    /// Such an order changed its state.
    #[serde(rename = "order.state_changed")]
    #[strum(serialize = "order.state_changed")]
    OrderStateChanged,
    /// The set of users of one of the site's resources changed.
    #[serde(rename = "resource.team_changed")]
    #[strum(serialize = "resource.team_changed")]
    ResourceTeamChanged,
    /// An offering user (a user's username on one of the site's offerings) appeared, changed or
    /// went away.
    #[serde(rename = "offering_user.changed")]
    #[strum(serialize = "offering_user.changed")]
    OfferingUserChanged,
}

impl EventType {
    /// Every event type, in declaration order.
    pub const ALL: &'static [EventType] = <EventType as strum::VariantArray>::VARIANTS;

    /// The wire name, e.g. `job.succeeded`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The type with this wire name exactly, if any.
    pub fn parse(s: &str) -> Option<EventType> {
        s.parse().ok()
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event, as its receiver gets it (the HTTP body of a delivery).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Unique and stable (the same event emitted twice has the same id); also sent as
    /// `webhook-id`. `evt_` and up to 120 of `[A-Za-z0-9_-]`.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// [`EVENT_VERSION`].
    pub version: u32,
    /// When it happened (or, for a change the watcher saw, when it saw it), RFC 3339 UTC.
    pub time: String,
    /// The subject, its shape given by the type (see the README's event table).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl Event {
    /// An event of `event_type` with the stable `id`, at `time`.
    pub fn new(
        id: String,
        event_type: EventType,
        time: DateTime<Utc>,
        data: serde_json::Value,
    ) -> Event {
        Event {
            id,
            event_type,
            version: EVENT_VERSION,
            time: time.to_rfc3339_opts(SecondsFormat::Millis, true),
            data,
        }
    }
}

/// A stable event id made of its parts: `evt_` then the parts joined by `_`, each kept to
/// `[A-Za-z0-9-]` (other characters dropped).
pub fn event_id(parts: &[&str]) -> String {
    let mut id = String::from("evt");
    for part in parts {
        id.push('_');
        id.extend(
            part.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-'),
        );
    }
    id.truncate(124);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_the_same_for_serde_and_the_name_table() {
        for &t in EventType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("Job.Succeeded"), None);
    }

    #[test]
    fn ids_are_made_of_safe_characters() {
        assert_eq!(
            event_id(&["job", "0190-ab", "succeeded", "1"]),
            "evt_job_0190-ab_succeeded_1"
        );
        assert_eq!(event_id(&["a.b/c"]), "evt_abc");
    }
}
