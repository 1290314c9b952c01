//! Integration tests of the gateway over real HTTP.

mod allocations;
mod auth;
mod browser;
mod config;
mod event_lanes;
mod events;
mod examples;
mod health;
mod helpers;
mod identities;
mod last_total;
mod lifecycle;
mod model;
mod openapi;
mod orders;
mod people;
mod people_ahead;
mod python_client;
mod quickstart;
mod receiver;
mod resilience;
mod resources;
mod sandbox;
mod site_helpers;
mod store_faults;
mod strict;
mod strict_numbers;
#[path = "../support/mod.rs"]
mod support;
mod tls;
mod upstream;
mod usage;
mod users;
mod watcher;
mod watcher_figures;
