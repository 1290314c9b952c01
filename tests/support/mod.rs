//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod client;
pub mod external;
pub mod poll;
pub mod redis;
pub mod stores;
