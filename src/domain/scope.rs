//! What a site token may allow.
//!
//! Scopes sit in the domain, below both the configuration (a site's allowed scopes) and the
//! authentication layer (the scopes a token grants), so neither has to import the other for it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

// The wire names (`usage:write`, `read`...) appear in tokens' `scope` claims and in the config.
/// What a token may allow. Writes are split by area so each site system gets only what it needs.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
pub enum Scope {
    #[serde(rename = "usage:write")]
    UsageWrite,
    #[serde(rename = "orders:write")]
    OrdersWrite,
    #[serde(rename = "resources:write")]
    ResourcesWrite,
    #[serde(rename = "users:write")]
    UsersWrite,
    #[serde(rename = "read")]
    Read,
    #[serde(rename = "jobs:admin")]
    JobsAdmin,
}

impl Scope {
    /// Every scope, in declaration order.
    pub const ALL: [Scope; 6] = [
        Scope::UsageWrite,
        Scope::OrdersWrite,
        Scope::ResourcesWrite,
        Scope::UsersWrite,
        Scope::Read,
        Scope::JobsAdmin,
    ];

    /// Every scope, as the config's default for a site that names none.
    pub fn all_vec() -> Vec<Scope> {
        Scope::ALL.to_vec()
    }

    /// The wire name, e.g. `usage:write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::UsageWrite => "usage:write",
            Scope::OrdersWrite => "orders:write",
            Scope::ResourcesWrite => "resources:write",
            Scope::UsersWrite => "users:write",
            Scope::Read => "read",
            Scope::JobsAdmin => "jobs:admin",
        }
    }

    /// The scope with this wire name, if any.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|sc| sc.as_str() == s)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
