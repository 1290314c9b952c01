//! What the gateway reads from Waldur's answers: one typed view per object it reads, holding the
//! fields the gateway uses and no others (Waldur's other fields are ignored), and the typed page
//! of a list.
//!
//! Each view names the Waldur 8.0.5 endpoint it is read from and the schema component of
//! `../shared/upstream/waldur-openapi-schema-8.0.5.yaml` it follows. Waldur marks almost no field
//! as required (a `field=` query may leave any out), so the views decide: the fields the
//! gateway's decisions rest on (an object's `uuid`, an order's `state`) are required, and a
//! 2xx answer without them is [`super::UpstreamError::Malformed`]; the fields only shown to a
//! site are read leniently ([`lenient`]). Where the gateway forwards Waldur's object unchanged
//! (an allocator's reads, the watcher's order events), [`Forwarded`] keeps the object as Waldur
//! sent it beside the typed fields the gateway reads from it.

pub mod lenient;
mod offerings;
mod orders;
mod people;
mod resources;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use offerings::{
    Component, Offering, OfferingComponent, OfferingInfo, Plan, PlanPrice, PluginOptions,
    PublicOffering,
};
pub use orders::{ActionAnswer, Order};
pub use people::{OfferingUserInfo, Project, ProjectRole, SshKey, User};
pub use resources::{
    ComponentUsage, InProgress, PlanPeriod, ReportSection, Resource, ResourceInfo,
    ResourceProjection, TeamMember,
};

/// An object of which the gateway reads only its uuid: a list asked with `field=uuid` (the
/// provider's offerings, an offering's customer projects or users, service providers), or the
/// answer of `POST marketplace-orders/` (schema `OrderDetails`). `uuid` is required.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Uuid {
    pub uuid: String,
}

/// A page of a list as Waldur returned it (`T`: the list's items, e.g. [`Order`]).
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// `X-Result-Count`: the items across all pages.
    pub total: Option<u64>,
    /// Whether `Link` has a `rel="next"`.
    pub has_next: bool,
    /// The query string of the `rel="next"` URL, as Waldur wrote it (without `?`).
    pub next_query: Option<String>,
}

/// A Waldur object the gateway passes on to its client exactly as Waldur sent it (`raw`,
/// serialized unchanged, keys and values as received), with the fields the gateway's own
/// decisions read from it (`fields`, a typed view: a missing required field is a malformed
/// answer as for any other view).
#[derive(Clone, Debug)]
pub struct Forwarded<T> {
    pub fields: T,
    pub raw: Value,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Forwarded<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(d)?;
        let fields = T::deserialize(&raw).map_err(D::Error::custom)?;
        Ok(Forwarded { fields, raw })
    }
}

impl<T> Serialize for Forwarded<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Forwarded, Order};

    #[test]
    fn a_forwarded_object_is_written_back_as_received() {
        let raw = json!({"uuid": "a", "state": "done", "zz": [1, {"b": null}], "extra": 1.5});
        let order: Forwarded<Order> = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(order.fields.state, "done");
        assert_eq!(serde_json::to_value(&order).unwrap(), raw);
        assert!(serde_json::from_value::<Forwarded<Order>>(json!({"uuid": "a"})).is_err());
    }
}
