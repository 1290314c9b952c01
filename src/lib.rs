//! puhuri-gateway: a site's gateway to Puhuri Core (Waldur MasterMind).
//!
//! Site systems call a small local REST API (`api`), authenticated per site with a JWT (`auth`);
//! writes become durable jobs (`queue`) that workers (`worker`) deliver upstream (`upstream`) with
//! the service provider's token. `sim` is a faithful stand-in for Puhuri Core used by the tests and
//! the zero-configuration sandbox.

pub mod admin;
pub mod api;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod queue;
pub mod sim;
pub mod startup;
pub mod telemetry;
pub mod upstream;
pub mod worker;
