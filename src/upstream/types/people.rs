//! People: offering users, the service provider's views of users, SSH keys, projects and
//! project roles (`marketplace-service-providers/{uuid}/...`), and an offering's own views of
//! its customers' projects and users.

use serde::Deserialize;

use super::lenient;

/// An offering user (`GET`/`POST marketplace-offering-users/`; schema `OfferingUser`), as the
/// username operations and the watcher need it. `uuid` is required.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct OfferingUserInfo {
    pub uuid: String,
    #[serde(default, deserialize_with = "lenient::text")]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub offering_uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub user_uuid: Option<String>,
    /// Waldur's offering user state, e.g. `OK` or `Requested`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub state: Option<String>,
}

/// A user (`GET marketplace-service-providers/{uuid}/users/`, schema
/// `MarketplaceServiceProviderUser`; `GET marketplace-provider-offerings/{uuid}/list_customer_users/`,
/// schema `User`), with the fields of the gateway's user view. `uuid` is required.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct User {
    pub uuid: String,
    #[serde(default, deserialize_with = "lenient::text_or_empty")]
    pub username: String,
    #[serde(default, deserialize_with = "lenient::text")]
    pub full_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub first_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub last_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub organization: Option<String>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub is_active: Option<bool>,
}

/// An SSH key (`GET marketplace-service-providers/{uuid}/keys/`; schema `SshKey`). `uuid` is
/// required.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct SshKey {
    pub uuid: String,
    /// Empty when absent (a key of nobody is nobody's on the site's teams).
    #[serde(default, deserialize_with = "lenient::text_or_empty")]
    pub user_uuid: String,
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text_or_empty")]
    pub public_key: String,
    #[serde(rename = "type", default, deserialize_with = "lenient::text")]
    pub type_: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub fingerprint_sha256: Option<String>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub is_shared: Option<bool>,
}

/// A project (`GET marketplace-service-providers/{uuid}/projects/`,
/// `GET marketplace-provider-offerings/{uuid}/list_customer_projects/`, `GET projects/{uuid}/`;
/// schema `Project`). `uuid` is required.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Project {
    pub uuid: String,
    #[serde(default, deserialize_with = "lenient::text_or_empty")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::text")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub customer_uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub customer_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub start_date: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub end_date: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub created: Option<String>,
}

/// An active project role of a user (`GET
/// marketplace-service-providers/{uuid}/project_permissions/`; schema `ProjectPermissionLog`).
/// `user_uuid` and `project_uuid` are required.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ProjectRole {
    pub user_uuid: String,
    pub project_uuid: String,
    #[serde(default, deserialize_with = "lenient::text")]
    pub user_username: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub user_full_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub user_email: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub project_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub customer_uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub customer_name: Option<String>,
    /// The role's name, e.g. `PROJECT.ADMIN` (Waldur 8.0.5's field).
    #[serde(default, deserialize_with = "lenient::text")]
    pub role_name: Option<String>,
    /// The role as older Waldur versions name it, read when `role_name` is absent.
    #[serde(default, deserialize_with = "lenient::text")]
    pub role: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub created: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub expiration_time: Option<String>,
}
