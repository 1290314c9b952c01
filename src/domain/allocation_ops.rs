//! The allocator's operations, as stored in a job (see [`super::operations::Operation`]).
//!
//! Each carries the name of the Puhuri identity it is delivered with (the site's binding at the
//! time the job was accepted; never the token). Options and limits were checked against the
//! offering's rules ([`super::allocation`]) before the job was stored.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::allocation::{Limits, ResourceDescription, ResourceName};
use super::ids::WaldurUuid;
use super::text::Comment;

/// Create an allocation: a Create order, followed until the resource exists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocationCreate {
    pub identity: String,
    pub project_uuid: WaldurUuid,
    pub offering_uuid: WaldurUuid,
    /// The plan's uuid; `None` orders without a plan (offerings that are not billable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_uuid: Option<WaldurUuid>,
    /// `name`, `description` and the offering's options.
    pub attributes: Map<String, Value>,
    /// Component type -> limit.
    pub limits: Limits,
    /// Approve the order as consumer when it waits for the consumer's review.
    #[serde(default)]
    pub approve_as_consumer: bool,
    /// Comment for the reviewers (Waldur's `request_comment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_comment: Option<Comment>,
    /// A random id written into the order's `request_comment`, by which a delivery repeated
    /// after a lost answer finds the order it already created (32 hex digits).
    pub marker: String,
}

/// A consumer's transition of one order: `approve` (`approve_by_consumer`), `reject`
/// (`reject_by_consumer`) or `cancel`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationOrderAction {
    pub identity: String,
    pub order_uuid: WaldurUuid,
    pub action: ConsumerAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Comment>,
}

/// What a consumer does to an order, stored by its name (`approve`, `reject`, `cancel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum ConsumerAction {
    /// `approve_by_consumer`.
    Approve,
    /// `reject_by_consumer`, with the comment if any.
    Reject,
    /// `cancel` (Basic and Support offerings only).
    Cancel,
}

impl ConsumerAction {
    /// The stored name, as the request's fingerprint also holds it.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Rename, re-describe or change the end date of a resource (`PATCH marketplace-resources/`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationUpdate {
    pub identity: String,
    pub resource_uuid: WaldurUuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<ResourceName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<ResourceDescription>,
    /// `Some(None)`: clear the end date (stored and sent as `"end_date": null`);
    /// `Some(Some(date))`: set it; `None` (absent): leave it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null"
    )]
    pub end_date: Option<Option<EndDate>>,
}

/// A resource's end date as the site gave it: `YYYY-MM-DD`, a real calendar date. Stored and
/// sent to Puhuri as the text the site sent; read back through [`EndDate::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct EndDate(String);

impl EndDate {
    pub fn parse(text: String) -> Result<EndDate, &'static str> {
        chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .map_err(|_| "must be a date, YYYY-MM-DD")?;
        Ok(EndDate(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EndDate {
    type Error = &'static str;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        EndDate::parse(text)
    }
}

impl Serialize for EndDate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A field that is present reads as `Some`, `null` as `Some(None)` (serde's default reads a
/// `null` as absent, which would turn "clear the end date" into "leave it").
fn present_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<EndDate>>, D::Error> {
    Option::<EndDate>::deserialize(d).map(Some)
}

/// Change a resource's options (`update_options`): applied at once, or an order followed to
/// its end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocationOptions {
    pub identity: String,
    pub resource_uuid: WaldurUuid,
    pub options: Map<String, Value>,
}

/// Change a resource's limits (`update_limits`): an Update order followed to its end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocationLimits {
    pub identity: String,
    pub resource_uuid: WaldurUuid,
    /// The components asked to change; the others keep their limits.
    pub limits: Limits,
}

/// Terminate a resource: a Terminate order followed until the resource is `Terminated`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationTerminate {
    pub identity: String,
    pub resource_uuid: WaldurUuid,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cleared_end_date_survives_the_job_store() {
        let r = "7e000000000040008000000000000001";
        let clear = AllocationUpdate {
            identity: "a".into(),
            resource_uuid: WaldurUuid::parse(r).unwrap(),
            name: None,
            description: None,
            end_date: Some(None),
        };
        let stored = serde_json::to_value(&clear).unwrap();
        assert_eq!(stored["end_date"], Value::Null);
        assert!(stored.as_object().unwrap().contains_key("end_date"));
        let back: AllocationUpdate = serde_json::from_value(stored).unwrap();
        assert_eq!(back, clear);
        let absent: AllocationUpdate =
            serde_json::from_value(json!({"identity": "a", "resource_uuid": r})).unwrap();
        assert_eq!(absent.end_date, None);
    }

    #[test]
    fn an_end_date_is_a_calendar_date_kept_as_sent() {
        let date = EndDate::parse("2027-12-31".into()).unwrap();
        assert_eq!(serde_json::to_value(&date).unwrap(), json!("2027-12-31"));
        for bad in ["2027-02-30", "31.12.2027", "2027-12-31T00:00:00Z", ""] {
            assert_eq!(
                EndDate::parse(bad.into()),
                Err("must be a date, YYYY-MM-DD"),
                "{bad}"
            );
        }
        let stored = json!({"identity": "a", "resource_uuid": "7e000000000040008000000000000001",
                            "end_date": "2027-02-30"});
        assert!(serde_json::from_value::<AllocationUpdate>(stored).is_err());
    }
}
