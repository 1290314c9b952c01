//! Validated values and the rules of delivery.
//!
//! Input from sites is parsed once at the edge into these types, so invalid data cannot travel
//! further: a [`Month`] is a real calendar month, an [`Amount`] is a non-negative decimal with at
//! most two places, a [`WaldurUuid`] is 32 lowercase hex digits.

pub mod allocation;
pub mod allocation_ops;
pub mod clock;
pub mod event;
pub mod ids;
pub mod number;
pub mod operations;
pub mod report;
pub mod retry;
pub mod scope;
pub mod text;
pub mod usage;
pub mod username;

pub use clock::Clock;
pub use ids::{BackendId, WaldurUuid};
pub use scope::Scope;
pub use usage::{Amount, ComponentType, Month};
pub use username::{Username, UsernameRule};
