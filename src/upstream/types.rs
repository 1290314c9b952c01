//! What the gateway reads from Waldur's answers: the typed views of resources, offerings,
//! orders, offering users and list pages that its decisions need.

use serde::Deserialize;
use serde_json::Value;

/// What the gateway needs to know about a resource to scope and deliver work for it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ResourceInfo {
    pub uuid: String,
    #[serde(default)]
    pub offering_uuid: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub backend_id: Option<String>,
}

/// An offering component as usage reporting needs it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Component {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub billing_type: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct OfferingInfo {
    pub uuid: String,
    /// The provider's organisation.
    #[serde(default)]
    pub customer_uuid: String,
    #[serde(default)]
    pub components: Vec<Component>,
}

/// An order as the gateway's decisions need it (`marketplace-orders/{uuid}/`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct OrderInfo {
    pub uuid: String,
    /// Waldur's order state: `pending-consumer`, `pending-provider`, `pending-project`,
    /// `pending-start-date`, `executing`, `done`, `erred`, `canceled` or `rejected`.
    pub state: String,
    #[serde(default)]
    pub offering_uuid: String,
    /// The marketplace resource. (`resource_uuid` is the plugin object's uuid, `null` for
    /// `Marketplace.Basic` offerings: never the marketplace resource.)
    #[serde(default)]
    pub marketplace_resource_uuid: Option<String>,
}

impl OrderInfo {
    /// `done` or `erred`: Waldur finished the order (by itself for `Marketplace.Basic`
    /// offerings, or because the provider said so).
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "done" | "erred")
    }
}

/// An offering user (`marketplace-offering-users/`), as the username operations need it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct OfferingUserInfo {
    pub uuid: String,
    #[serde(default)]
    pub username: Option<String>,
}

/// A page of a list as Waldur returned it.
#[derive(Clone, Debug)]
pub struct Page {
    pub items: Vec<Value>,
    /// `X-Result-Count`: the items across all pages.
    pub total: Option<u64>,
    /// Whether `Link` has a `rel="next"`.
    pub has_next: bool,
    /// The query string of the `rel="next"` URL, as Waldur wrote it (without `?`).
    pub next_query: Option<String>,
}
