//! Orders: `marketplace-orders/` and `marketplace-orders/{uuid}/` (schema `OrderDetails`), and
//! the answers of actions (schemas `ResourceResponseStatus`, `OrderUUID`).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::lenient;

/// An order (`GET marketplace-orders/`, `GET marketplace-orders/{uuid}/`, the answer of
/// `POST marketplace-orders/`; schema `OrderDetails`): what the gateway's decisions (scoping,
/// following an allocator's order) and its order view read. `uuid` and `state` are required.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Order {
    pub uuid: String,
    /// Waldur's order state: `pending-consumer`, `pending-provider`, `pending-project`,
    /// `pending-start-date`, `executing`, `done`, `erred`, `canceled` or `rejected`.
    pub state: String,
    /// `Create`, `Update`, `Terminate` or `Restore` (empty when absent).
    #[serde(rename = "type", default, deserialize_with = "lenient::text_or_empty")]
    pub type_: String,
    /// Empty when absent (an order in no offering is in none of a site's).
    #[serde(default, deserialize_with = "lenient::text_or_empty")]
    pub offering_uuid: String,
    #[serde(default, deserialize_with = "lenient::text")]
    pub offering_name: Option<String>,
    /// The marketplace resource. (`resource_uuid` is the plugin object's uuid, `null` for
    /// `Marketplace.Basic` offerings: never the marketplace resource, and not read.)
    #[serde(default, deserialize_with = "lenient::text")]
    pub marketplace_resource_uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub resource_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub plan_uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub plan_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub project_uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub project_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub customer_uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub customer_name: Option<String>,
    /// What the customer asked for (LUMI options such as `is_industry`), as Waldur holds it.
    #[serde(default, deserialize_with = "lenient::object")]
    pub attributes: Map<String, Value>,
    /// Requested limits per component type.
    #[serde(default, deserialize_with = "lenient::object")]
    pub limits: Map<String, Value>,
    /// The consumer's comment; an allocator's Create order carries the gateway's marker here.
    #[serde(default, deserialize_with = "lenient::text")]
    pub request_comment: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub created_by_username: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub created_by_full_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub created_by_email: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub error_message: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub provider_rejection_comment: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub consumer_rejection_comment: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub provider_reviewed_by_username: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub provider_reviewed_at: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub backend_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub created: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub modified: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub completed_at: Option<String>,
}

impl Order {
    /// `done` or `erred`: Waldur finished the order (by itself for `Marketplace.Basic`
    /// offerings, or because the provider said so).
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "done" | "erred")
    }
}

/// What the gateway reads of the answer to an action (`POST marketplace-provider-resources/
/// {uuid}/{action}/`: schema `ResourceResponseStatus`; `POST marketplace-resources/{uuid}/
/// update_limits/`, `terminate/`: schema `OrderUUID`; `update_options/`: `ResourceResponseStatus`,
/// with `order_uuid` when the offering reviews option changes; the order transitions'
/// answers, not read). Read leniently: an empty or other answer reads as neither.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ActionAnswer {
    /// The resource action's status text, e.g. `OK`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub status: Option<String>,
    /// The order the action placed, if it placed one.
    #[serde(default, deserialize_with = "lenient::text")]
    pub order_uuid: Option<String>,
}
