//! Job records as Redis holds them: a hash of strings, times in milliseconds, the payload's
//! `usages` in a field of its own.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::corrupt;
use crate::queue::{COALESCE_FIELD, JobId, JobRecord, JobState, Known, NewJob, StoreResult};

pub(super) fn ms_to_time(v: &str) -> StoreResult<DateTime<Utc>> {
    let ms: i64 = v.parse().map_err(|_| corrupt(format!("bad time {v:?}")))?;
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt(format!("bad time {v:?}")))
}

pub(super) fn parse_job(fields: &[String]) -> StoreResult<JobRecord> {
    if !fields.len().is_multiple_of(2) {
        return Err(corrupt("odd number of hash fields"));
    }
    let m: HashMap<&str, &str> = fields
        .chunks(2)
        .map(|c| (c[0].as_str(), c[1].as_str()))
        .collect();
    let req = |name: &str| -> StoreResult<&str> {
        m.get(name)
            .copied()
            .ok_or_else(|| corrupt(format!("job without {name}")))
    };
    let opt_time = |name: &str| m.get(name).map(|v| ms_to_time(v)).transpose();
    let id = Uuid::parse_str(req("id")?).map_err(|e| corrupt(format!("bad job id: {e}")))?;
    let mut payload: serde_json::Value = serde_json::from_str(req("payload")?)
        .map_err(|e| corrupt(format!("job {id}: bad payload: {e}")))?;
    if let Some(u) = m.get("usages") {
        let usages: serde_json::Value =
            serde_json::from_str(u).map_err(|e| corrupt(format!("job {id}: bad usages: {e}")))?;
        if let Some(obj) = payload.as_object_mut() {
            obj.insert(COALESCE_FIELD.to_owned(), usages);
        }
    }
    let state = JobState::parse(req("state")?)
        .ok_or_else(|| corrupt(format!("job {id}: unknown state")))?;
    Ok(JobRecord {
        id,
        site: req("site")?.to_owned(),
        operation: req("operation")?.to_owned(),
        object_key: req("object_key")?.to_owned(),
        coalesce_key: m.get("coalesce_key").map(|s| s.to_string()),
        payload,
        state,
        attempts: req("attempts")?
            .parse()
            .map_err(|_| corrupt(format!("job {id}: bad attempts")))?,
        created_at: ms_to_time(req("created_at")?)?,
        updated_at: ms_to_time(req("updated_at")?)?,
        next_attempt_at: opt_time("next_attempt_at")?,
        last_status: m.get("last_status").and_then(|s| s.parse().ok()),
        last_error: m.get("last_error").map(|s| s.to_string()),
        failure_code: m.get("failure_code").map(|s| s.to_string()),
        result: m
            .get("result")
            .map(|s| serde_json::from_str(s))
            .transpose()
            .map_err(|e| corrupt(format!("job {id}: bad result: {e}")))?,
        superseded_by: m
            .get("superseded_by")
            .map(|s| Uuid::parse_str(s))
            .transpose()
            .map_err(|e| corrupt(format!("job {id}: bad superseded_by: {e}")))?,
        worker: m.get("worker").map(|s| s.to_string()),
        lease_until: opt_time("lease_until")?,
        idempotency_key: m.get("idempotency_key").map(|s| s.to_string()),
        // added by lease.lua to its reply, never stored in the hash
        delivered: m
            .get("__delivered")
            .map(|s| serde_json::from_str::<BTreeMap<String, String>>(s))
            .transpose()
            .map_err(|e| corrupt(format!("job {id}: bad delivered values: {e}")))?
            .map(decode_known),
    })
}

/// The record of a job enqueue.lua just created, from what the caller sent and the script's short
/// reply `{id, created_at ms, merged usages|''}`: the same record a read of the hash would give,
/// without sending the whole hash back on every accepted request.
pub(super) fn created_record(
    id: JobId,
    mut job: NewJob,
    reply: &[String],
) -> StoreResult<(JobRecord, u32)> {
    let [reply_id, created_at, merged, superseded] = reply else {
        return Err(corrupt("bad enqueue reply"));
    };
    let superseded: u32 = superseded
        .parse()
        .map_err(|_| corrupt("bad enqueue reply: superseded count"))?;
    if *reply_id != id.to_string() {
        return Err(corrupt("enqueue replied for another job"));
    }
    let created_at = ms_to_time(created_at)?;
    let mut payload = std::mem::take(&mut job.payload);
    if !merged.is_empty() {
        let usages: serde_json::Value = serde_json::from_str(merged)
            .map_err(|e| corrupt(format!("job {id}: bad usages: {e}")))?;
        if let Some(obj) = payload.as_object_mut() {
            obj.insert(COALESCE_FIELD.to_owned(), usages);
        }
    }
    Ok((JobRecord::queued(id, &job, payload, created_at), superseded))
}

/// The payload as the enqueue script takes it (see the module doc): the payload without its
/// coalesced `usages` object, as JSON text, and that object as JSON text (`""` when it has none).
/// The payload is left as it was; it is not copied to split it.
pub(super) fn payload_args(payload: &mut serde_json::Value) -> (String, String) {
    let usages = payload
        .as_object_mut()
        .filter(|o| o.get(COALESCE_FIELD).is_some_and(|u| u.is_object()))
        .and_then(|o| o.remove(COALESCE_FIELD));
    let rest = payload.to_string();
    let Some(usages) = usages else {
        return (rest, String::new());
    };
    let text = usages.to_string();
    if let Some(o) = payload.as_object_mut() {
        o.insert(COALESCE_FIELD.to_owned(), usages);
    }
    (rest, text)
}

/// A delivered map as stored (component -> [`Known::encode`]).
pub(super) fn decode_known(stored: BTreeMap<String, String>) -> BTreeMap<String, Known> {
    stored
        .into_iter()
        .map(|(k, v)| {
            let known = Known::decode(&v);
            (k, known)
        })
        .collect()
}
