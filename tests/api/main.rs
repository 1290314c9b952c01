//! Integration tests of the gateway over real HTTP.

mod auth;
mod config;
mod health;
mod helpers;
mod openapi;
mod quickstart;
mod resilience;
#[path = "../support/mod.rs"]
mod support;
mod usage;
