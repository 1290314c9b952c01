//! Deciding which usage totals to send: only what Puhuri is not known to hold already.
//!
//! The rule and its proof sketch are in the queue's module doc ("The last total wins"). Here:
//! a component is skipped as unchanged only when the site's total equals what Puhuri held at a
//! time no older than `delivery.usage_known_for`. What the gateway knows comes from two places:
//! - the coalesce key's map in the store (Puhuri's `200` to our own `set_usage`), which `lease`
//!   hands over and clears for the job's components, so an attempt without a definite answer
//!   leaves them unknown;
//! - a read of Puhuri, made only when the map holds the same value but too old to trust. One
//!   read lists every component usage of the resource's offering in the billing month (Waldur's
//!   `marketplace-component-usages` filtered by offering and billing period, 100 records a page)
//!   and is kept for `usage_known_for`, so checking N resources costs N / 33 calls for three
//!   components each, not one per report. A read only confirms a value the map already holds:
//!   a component the map does not know (never delivered, or its last attempt had no definite
//!   answer) is always sent, which is what makes a read taken while an attempt of ours was under
//!   way harmless.
//!
//! Cost of one cycle of 800 reports x 3 components, when the map knows every component: all new
//! values, 800 `set_usage` calls; none changed, 0 calls within `usage_known_for` of the last
//! delivery and 24 list pages after it; a quarter changed, 200 calls (+ 24 pages after it). See
//! `bench/usage_calls.sh`.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use tokio::sync::Mutex;

use crate::domain::{Amount, ComponentType};
use crate::queue::Known;
use crate::upstream::directory::Directory;
use crate::upstream::{ComponentUsage, UpstreamError, WaldurClient};

/// Most list pages one read follows (100 records a page).
const MAX_PAGES: usize = 1000;

/// What a read of Puhuri found for one billing month: component usages by resource and type.
struct Snapshot {
    at: DateTime<Utc>,
    values: HashMap<(String, String), String>,
}

/// Reads of Puhuri's usage values, shared by every delivery loop of a process.
pub struct UsageReads {
    client: WaldurClient,
    directory: Option<Arc<Directory>>,
    /// How long a value known to be in Puhuri is trusted without a read.
    known_for: Duration,
    /// By (offering or resource, billing period); a lock per process is enough: reads are rare
    /// (one per offering and month per `known_for`).
    cache: Mutex<HashMap<(String, String), Arc<Snapshot>>>,
}

/// The decision for one report.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Components to send, with their totals.
    pub send: Vec<(String, String)>,
    /// Components Puhuri is known to hold the site's total for, and since when.
    pub unchanged: BTreeMap<String, Known>,
}

fn same_amount(a: &str, b: &str) -> bool {
    match (Decimal::from_str(a.trim()), Decimal::from_str(b.trim())) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

impl UsageReads {
    pub fn new(
        client: WaldurClient,
        directory: Option<Arc<Directory>>,
        known_for: Duration,
    ) -> UsageReads {
        UsageReads {
            client,
            directory,
            known_for,
            cache: Mutex::default(),
        }
    }

    /// Which of `usages` (component -> total) to send for `resource` in `billing_period`
    /// (`YYYY-MM-01`), given what the store knew when the job was leased.
    pub async fn plan(
        &self,
        resource: &str,
        billing_period: &str,
        usages: &BTreeMap<ComponentType, Amount>,
        known: &BTreeMap<String, Known>,
    ) -> Result<Plan, UpstreamError> {
        let now = Utc::now();
        let mut plan = Plan::default();
        // components whose known value equals the total but is too old to trust
        let mut to_check: Vec<(String, String, &Known)> = Vec::new();
        for (name, total) in usages {
            let (name, total) = (name.as_str(), total.to_waldur());
            match known.get(name) {
                Some(k) if same_amount(&k.value, &total) => {
                    if k.is_fresh(self.known_for, now) {
                        plan.unchanged.insert(name.to_owned(), k.clone());
                    } else {
                        to_check.push((name.to_owned(), total, k));
                    }
                }
                _ => plan.send.push((name.to_owned(), total)),
            }
        }
        if to_check.is_empty() {
            return Ok(plan);
        }
        let oldest = to_check.iter().map(|(_, _, k)| k.at).min().unwrap_or(now);
        let snapshot = self.snapshot(resource, billing_period, oldest).await?;
        for (name, total, _) in to_check {
            match snapshot.values.get(&(resource.to_owned(), name.clone())) {
                Some(held) if same_amount(held, &total) => {
                    plan.unchanged.insert(
                        name,
                        Known {
                            value: total,
                            at: snapshot.at,
                        },
                    );
                }
                _ => plan.send.push((name, total)),
            }
        }
        plan.send.sort();
        Ok(plan)
    }

    /// A read of Puhuri taken after `after` and no older than `known_for`, for the resource's
    /// offering (or the resource alone, without a directory) in `billing_period`.
    async fn snapshot(
        &self,
        resource: &str,
        billing_period: &str,
        after: DateTime<Utc>,
    ) -> Result<Arc<Snapshot>, UpstreamError> {
        let offering = match &self.directory {
            Some(d) => Some(d.resource(resource).await?.offering_uuid).filter(|o| !o.is_empty()),
            None => None,
        };
        let scope = offering.clone().unwrap_or_else(|| resource.to_owned());
        let key = (scope, billing_period.to_owned());
        // Freshness counts from when this job asked: a read another job made while this one
        // waited for the lock is as good as one of its own.
        let now = Utc::now();
        let mut cache = self.cache.lock().await;
        if let Some(s) = cache.get(&key) {
            let trusted = Known {
                value: String::new(),
                at: s.at,
            };
            if s.at > after && trusted.is_fresh(self.known_for, now) {
                return Ok(s.clone());
            }
        }
        let at = Utc::now();
        let mut query = vec![("billing_period", billing_period.to_owned())];
        match &offering {
            Some(o) => query.push(("offering_uuid", o.clone())),
            None => query.push(("resource_uuid", resource.to_owned())),
        }
        let records: Vec<ComponentUsage> = self
            .client
            .get_all("marketplace-component-usages/", &query, MAX_PAGES)
            .await?;
        let values = records
            .into_iter()
            .filter_map(|r| Some(((r.resource_uuid?.replace('-', ""), r.type_?), r.usage?)))
            .collect();
        let snapshot = Arc::new(Snapshot { at, values });
        cache.retain(|_, s| s.at >= now - chrono::Duration::hours(1));
        cache.insert(key, snapshot.clone());
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_compare_as_decimals() {
        assert!(same_amount("10.00", "10"));
        assert!(same_amount("10.50", "10.5"));
        assert!(!same_amount("10.00", "10.01"));
    }
}
