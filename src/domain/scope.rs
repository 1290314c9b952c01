//! What a site token may allow.
//!
//! Scopes sit in the domain, below both the configuration (a site's allowed scopes) and the
//! authentication layer (the scopes a token grants), so neither has to import the other for it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

// The wire names (`usage:write`, `read`...) appear in tokens' `scope` claims and in the config;
// serde and strum both take them from the one attribute per variant below.
/// What a token may allow. Writes are split by area so each site system gets only what it needs.
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
pub enum Scope {
    #[serde(rename = "usage:write")]
    #[strum(serialize = "usage:write")]
    UsageWrite,
    #[serde(rename = "orders:write")]
    #[strum(serialize = "orders:write")]
    OrdersWrite,
    #[serde(rename = "resources:write")]
    #[strum(serialize = "resources:write")]
    ResourcesWrite,
    #[serde(rename = "users:write")]
    #[strum(serialize = "users:write")]
    UsersWrite,
    #[serde(rename = "read")]
    #[strum(serialize = "read")]
    Read,
    #[serde(rename = "jobs:admin")]
    #[strum(serialize = "jobs:admin")]
    JobsAdmin,
    /// An allocator site's reads: public offerings, its projects, orders and resources.
    #[serde(rename = "allocations:read")]
    #[strum(serialize = "allocations:read")]
    AllocationsRead,
    /// An allocator site's writes: create, change and terminate allocations; review and cancel
    /// its orders.
    #[serde(rename = "allocations:write")]
    #[strum(serialize = "allocations:write")]
    AllocationsWrite,
    /// Any site's events and their deliveries (`GET /v1/events`), and replaying them to its own
    /// endpoints.
    #[serde(rename = "events:read")]
    #[strum(serialize = "events:read")]
    EventsRead,
}

impl Scope {
    /// Every scope a service provider's site may hold (and holds when its configuration names
    /// none): the six the gateway had before allocator sites existed, and `events:read` (a site
    /// with event endpoints reads and replays its own events).
    pub const ALL: &'static [Scope] = &[
        Scope::UsageWrite,
        Scope::OrdersWrite,
        Scope::ResourcesWrite,
        Scope::UsersWrite,
        Scope::Read,
        Scope::JobsAdmin,
        Scope::EventsRead,
    ];

    /// Every scope an allocator's site may hold (and holds when its configuration names none).
    /// Not `jobs:admin`, which sees every site's jobs: an allocator's site sees and manages its
    /// own jobs without it. `events:read` as for a service provider's site: only its own events.
    pub const ALLOCATOR: &'static [Scope] = &[
        Scope::AllocationsRead,
        Scope::AllocationsWrite,
        Scope::EventsRead,
    ];

    /// Every scope there is, in declaration order.
    pub const EVERY: &'static [Scope] = <Scope as strum::VariantArray>::VARIANTS;

    /// [`Scope::ALL`] as a list.
    pub fn all_vec() -> Vec<Scope> {
        Scope::ALL.to_vec()
    }

    /// The scopes a site of this kind may hold.
    pub fn for_kind(allocator: bool) -> &'static [Scope] {
        if allocator {
            Scope::ALLOCATOR
        } else {
            Scope::ALL
        }
    }

    /// The wire name, e.g. `usage:write`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The scope with this wire name, if any.
    pub fn parse(s: &str) -> Option<Scope> {
        s.parse().ok()
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Scope;

    #[test]
    fn wire_names_are_the_same_for_serde_and_the_name_table() {
        for &scope in Scope::ALL {
            let json = serde_json::to_value(scope).unwrap();
            assert_eq!(json, scope.as_str());
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        // The six of a service provider's site, and `events:read`, which every kind of site
        // holds by default (it reads only the site's own events).
        assert_eq!(Scope::ALL.len(), 7);
        assert!(Scope::ALL.contains(&Scope::EventsRead));
        assert!(Scope::ALLOCATOR.contains(&Scope::EventsRead));
        assert_eq!(Scope::parse("usage:write"), Some(Scope::UsageWrite));
        assert_eq!(Scope::parse("Usage:Write"), None);
        assert_eq!(Scope::parse("admin"), None);
    }

    #[test]
    fn allocator_scopes_have_wire_names_too() {
        for &scope in Scope::EVERY {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(
            Scope::parse("allocations:write"),
            Some(Scope::AllocationsWrite)
        );
        assert!(Scope::ALLOCATOR.iter().all(|s| Scope::EVERY.contains(s)));
        assert!(!Scope::ALL.contains(&Scope::AllocationsRead));
    }
}
