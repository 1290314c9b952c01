//! The operations a site can queue, as stored in a job.
//!
//! A job stores the operation's name and its payload as JSON. Each operation also says which
//! upstream object it touches (so jobs on one object are delivered one at a time, in order) and,
//! for usage, which values coalesce.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A usage report as queued: the resource, the month and the month's totals per component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    pub resource_uuid: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Component type -> amount as Waldur's decimal string (two places).
    pub usages: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "operation", content = "payload")]
pub enum Operation {
    #[serde(rename = "usage.report")]
    UsageReport(UsageReport),
}

impl Operation {
    pub fn name(&self) -> &'static str {
        match self {
            Operation::UsageReport(_) => "usage.report",
        }
    }

    /// The upstream object this operation changes: its jobs are delivered one at a time.
    pub fn object_key(&self) -> String {
        match self {
            Operation::UsageReport(u) => format!("resource:{}", u.resource_uuid),
        }
    }

    /// Jobs with the same key coalesce: the newest value of each component wins.
    pub fn coalesce_key(&self) -> Option<String> {
        match self {
            Operation::UsageReport(u) => Some(usage_coalesce_key(&u.resource_uuid, &u.month)),
        }
    }

    pub fn payload(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut map)) => map.remove("payload").unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    /// Reads a stored job back.
    pub fn from_job(operation: &str, payload: &Value) -> Result<Operation, String> {
        serde_json::from_value(serde_json::json!({"operation": operation, "payload": payload}))
            .map_err(|e| format!("job payload for `{operation}` is not readable: {e}"))
    }
}

pub fn usage_coalesce_key(resource_uuid: &str, month: &str) -> String {
    format!("usage:{resource_uuid}:{month}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_report_round_trips_through_a_job() {
        let op = Operation::UsageReport(UsageReport {
            resource_uuid: "r1".into(),
            month: "2026-11".into(),
            usages: BTreeMap::from([("cpu_k_hours".into(), "1.50".into())]),
            description: None,
        });
        let payload = op.payload();
        assert_eq!(payload["usages"]["cpu_k_hours"], "1.50");
        assert_eq!(Operation::from_job(op.name(), &payload).unwrap(), op);
        assert_eq!(op.object_key(), "resource:r1");
        assert_eq!(op.coalesce_key().unwrap(), "usage:r1:2026-11");
    }
}
