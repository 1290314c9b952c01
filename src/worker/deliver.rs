//! Turning one job into the Puhuri calls that make it true.
//!
//! Each operation is written so that delivering it twice has the effect of delivering it once:
//! usage is an absolute monthly total (Waldur upserts it), and a value already delivered is not
//! sent again.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::domain::Month;
use crate::domain::operations::{Operation, UsageReport, usage_coalesce_key};
use crate::queue::{JobRecord, JobStore};
use crate::upstream::{UpstreamError, WaldurClient};

/// What a successful delivery did.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivered {
    pub status: Option<u16>,
    pub result: Value,
    /// Values now known to be upstream (for coalescing keys).
    pub delivered: BTreeMap<String, String>,
}

pub struct Deliverer {
    client: WaldurClient,
    store: Arc<dyn JobStore>,
}

impl Deliverer {
    pub fn new(client: WaldurClient, store: Arc<dyn JobStore>) -> Deliverer {
        Deliverer { client, store }
    }

    pub async fn deliver(&self, job: &JobRecord) -> Result<Delivered, UpstreamError> {
        let operation = Operation::from_job(&job.operation, &job.payload)
            .map_err(|message| UpstreamError::Permanent { status: 0, message })?;
        match operation {
            Operation::UsageReport(report) => self.report_usage(&report).await,
        }
    }

    async fn report_usage(&self, report: &UsageReport) -> Result<Delivered, UpstreamError> {
        let month = Month::parse(&report.month).map_err(|m| UpstreamError::Permanent {
            status: 0,
            message: format!("month: {m}"),
        })?;
        let key = usage_coalesce_key(&report.resource_uuid, &report.month);
        // If the store cannot say what was delivered, send everything: a repeat is harmless.
        let already = self.store.delivered(&key).await.unwrap_or_default();
        let (unchanged, changed): (Vec<_>, Vec<_>) = report
            .usages
            .iter()
            .map(|(t, a)| (t.clone(), a.clone()))
            .partition(|(t, a)| already.get(t) == Some(a));
        let unchanged: Vec<String> = unchanged.into_iter().map(|(t, _)| t).collect();
        if changed.is_empty() {
            return Ok(Delivered {
                status: None,
                result: json!({"sent": {}, "unchanged": unchanged}),
                delivered: BTreeMap::new(),
            });
        }
        let status = self
            .client
            .set_usage(
                &report.resource_uuid,
                &month.usage_date(),
                &changed,
                report.description.as_deref(),
            )
            .await?;
        let sent: BTreeMap<String, String> = changed.into_iter().collect();
        Ok(Delivered {
            status: Some(status),
            result: json!({"sent": sent, "unchanged": unchanged}),
            delivered: sent,
        })
    }
}
