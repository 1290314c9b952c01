//! The path every write takes: resolve and check the object, store the job, answer 202.
//!
//! - `Idempotency-Key`: the same key and the same request from the same site is the same job
//!   (answered 200 with it); the same key with a different request is a 422.
//! - `Prefer: wait=N`: wait up to N seconds (at most `limits.max_wait`) for the job to finish and
//!   answer 200 with its final state; otherwise 202 as usual. A shutdown ends the wait at once
//!   (the answer is the job as it stands), so a waiting client is answered within the drain.
//! - Nothing is answered 202 that was not stored: a store failure is a 503 with `Retry-After`.

use std::collections::BTreeSet;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use super::AppState;
use super::jobs::{JobView, job_location};
use crate::auth::SiteIdentity;
use crate::domain::ids::IdempotencyKey;
use crate::domain::operations::Operation;
use crate::domain::{BackendId, WaldurUuid};
use crate::error::{ApiError, FieldError};
use crate::queue::{EnqueueOutcome, Idempotency, JobRecord, NewJob};
use crate::upstream::{ResourceInfo, UpstreamError};

/// The `Idempotency-Key` request header (a name built once, not parsed from text on every
/// request).
pub const IDEMPOTENCY_KEY: header::HeaderName = header::HeaderName::from_static("idempotency-key");

/// The `Prefer` request header (RFC 7240).
const PREFER: header::HeaderName = header::HeaderName::from_static("prefer");

/// The `Preference-Applied` response header (RFC 7240 §3).
const PREFERENCE_APPLIED: header::HeaderName =
    header::HeaderName::from_static("preference-applied");

/// How a site names a resource: Puhuri's uuid or the site's own backend id.
#[derive(Clone, Debug)]
pub enum ResourceRef {
    Uuid(WaldurUuid),
    BackendId(BackendId),
}

/// Finds the resource and checks it belongs to one of the site's offerings. A resource of another
/// provider or another site is a 403 that does not say whether it exists.
pub async fn resolve_resource(
    state: &AppState,
    identity: &SiteIdentity,
    reference: &ResourceRef,
) -> Result<ResourceInfo, ApiError> {
    let not_yours = || {
        ApiError::Forbidden(
            "the resource is not in one of this site's offerings, or does not exist".into(),
        )
    };
    match reference {
        ResourceRef::Uuid(uuid) => {
            let info = state
                .directory
                .resource(uuid.as_str())
                .await
                .map_err(|e| match e {
                    e if e.is_not_found() => not_yours(),
                    e => lookup_failed(e),
                })?;
            if identity.owns_offering(&info.offering_uuid) {
                Ok(info)
            } else {
                Err(not_yours())
            }
        }
        ResourceRef::BackendId(backend_id) => {
            let offerings: Vec<String> = identity.site.offerings.iter().cloned().collect();
            let found = state
                .directory
                .resources_by_backend_id(backend_id.as_str(), &offerings)
                .await
                .map_err(lookup_failed)?;
            // Waldur filters by offering already; check again rather than trust a filter.
            let mut mine = found
                .into_iter()
                .filter(|r| identity.owns_offering(&r.offering_uuid) && r.state != "Terminated");
            match (mine.next(), mine.next()) {
                (Some(one), None) => Ok(one),
                (None, _) => Err(ApiError::NotFound(format!(
                    "no resource of this site's offerings has backend_id `{backend_id}`"
                ))),
                (Some(_), Some(_)) => Err(ApiError::Conflict(format!(
                    "several resources have backend_id `{backend_id}`; name the resource by uuid"
                ))),
            }
        }
    }
}

/// The uuid of a resource Puhuri described, as a job stores it. Puhuri's uuids are 32 hex
/// digits; any other answer is one the gateway cannot read (a check that failed: 502).
pub fn resource_uuid(resource: &ResourceInfo) -> Result<WaldurUuid, ApiError> {
    WaldurUuid::parse(&resource.uuid).map_err(|m| {
        lookup_failed(UpstreamError::Malformed {
            status: 200,
            message: format!("the resource's uuid `{}` {m}", resource.uuid),
        })
    })
}

/// Refuses (422, one error per type) the component types in `names` that are not in `known`,
/// the resource's offering's components of the `kind` the operation takes ("usage component",
/// "component"). `field` names each error's field after the type.
pub fn refuse_unknown_components<'a>(
    names: impl IntoIterator<Item = &'a str>,
    known: &BTreeSet<&str>,
    kind: &str,
    field: impl Fn(&str) -> String,
) -> Result<(), ApiError> {
    let errors: Vec<FieldError> = names
        .into_iter()
        .filter(|t| !known.contains(t))
        .map(|t| {
            FieldError::new(
                field(t),
                format!(
                    "`{t}` is not a {kind} of the resource's offering (it has: {})",
                    known.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Puhuri could not answer a check that must happen before anything is queued.
pub fn lookup_failed(e: UpstreamError) -> ApiError {
    super::upstream_failure::upstream_failure(e, super::upstream_failure::Purpose::Check)
}

/// The `Idempotency-Key` header, if any: 1-255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(&IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    // A value that is not text at all is refused as one that is not visible ASCII.
    let key = IdempotencyKey::parse(value.to_str().unwrap_or(""))
        .map_err(|m| ApiError::field("Idempotency-Key", m))?;
    Ok(Some(key.into_string()))
}

/// A fingerprint of the request as the site sent it: the operation, the path it was sent to and
/// `sent`, the handler's canonical form of the body (see [`submit`]). Two requests that differ
/// only in key order, spacing or the spelling of an equal amount (`5`, `"5.00"`) are the same
/// request; a value the gateway derives at arrival (the default month, the uuid it found for a
/// backend id, the service provider) is never part of it, so a byte-for-byte retry is the same
/// request whenever it arrives.
fn fingerprint(op: &Operation, path: &str, sent: &serde_json::Value) -> String {
    let mut hasher = Sha256::new();
    for part in [op.name(), path, &sent.to_string()] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    format!("{:x}", hasher.finalize())
}

/// Stores the job. Returns the record and whether it is new. `path` and `sent` are the request
/// as the site sent it (see [`submit`]); an `Idempotency-Key` is bound to them.
pub async fn enqueue(
    state: &AppState,
    identity: &SiteIdentity,
    op: &Operation,
    idempotency_key: Option<String>,
    path: &str,
    sent: &serde_json::Value,
) -> Result<(JobRecord, bool), ApiError> {
    let job = NewJob {
        site: identity.id().to_string(),
        operation: op.name().to_string(),
        object_key: op.object_key(),
        coalesce_key: op.coalesce_key(),
        payload: op.payload(),
        idempotency: idempotency_key.map(|key| Idempotency {
            key,
            fingerprint: fingerprint(op, path, sent),
        }),
    };
    let outcome = state.store.enqueue(job).await?;
    state.wake.notify_one();
    Ok(match outcome {
        EnqueueOutcome::Created(job, superseded) => {
            crate::telemetry::metrics::job_accepted(op.name(), superseded);
            (job, true)
        }
        EnqueueOutcome::Existing(job) => (job, false),
    })
}

/// The whole write: store, optionally wait, answer.
///
/// `sent` is the request's body as the site sent it, in canonical form: the parsed, validated
/// fields (amounts as decimals, optional fields as given or `null`), never a value derived at
/// arrival. With the request's path it is what an `Idempotency-Key` is bound to: a report without
/// `month` is bound to the month of its first arrival once, and its retry finds that job even
/// after the month has turned.
pub async fn submit(
    state: &AppState,
    identity: &SiteIdentity,
    req: &HttpRequest,
    op: Operation,
    sent: serde_json::Value,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(req.headers())?;
    let (job, created) = enqueue(state, identity, &op, key, req.path(), &sent).await?;
    let wait = prefer_wait(req.headers()).map(|w| w.min(state.config.limits.max_wait));
    let job = match wait {
        Some(wait) if !job.state.is_terminal() => wait_for_outcome(state, job, wait).await?,
        _ => job,
    };
    let mut response = if job.state.is_terminal() || !created {
        HttpResponse::Ok()
    } else {
        HttpResponse::Accepted()
    };
    response.insert_header((header::LOCATION, job_location(job.id)));
    if let Some(wait) = wait {
        response.insert_header((PREFERENCE_APPLIED, format!("wait={}", wait.as_secs())));
    }
    Ok(response.json(JobView::from(job)))
}

/// `Prefer: wait=N` (RFC 7240 §4.3), N in seconds, written as a token or a quoted string
/// (`wait="5"`, RFC 7240 §2); the first `wait` of every `Prefer` header counts.
pub fn prefer_wait(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all(&PREFER)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| {
            let (name, value) = p.trim().split_once('=')?;
            let value = value.trim();
            let value = (value.strip_prefix('"'))
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            name.trim()
                .eq_ignore_ascii_case("wait")
                .then(|| value.parse::<u64>().ok())
                .flatten()
        })
        .map(Duration::from_secs)
        .next()
}

async fn wait_for_outcome(
    state: &AppState,
    mut job: JobRecord,
    wait: Duration,
) -> Result<JobRecord, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = Duration::from_millis(10);
    let mut stopping = state.stopping.clone();
    while !job.state.is_terminal() && tokio::time::Instant::now() < deadline {
        if *stopping.borrow() {
            // Shutting down: answer with the job as it stands rather than be cut off.
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            // (a dropped sender disables this branch instead of ending every wait at once)
            Ok(()) = stopping.changed() => {}
        }
        pause = (pause * 2).min(Duration::from_millis(200));
        match state.store.get(job.id).await? {
            Some(latest) => job = latest,
            None => break,
        }
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::prefer_wait;
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    use std::time::Duration;

    fn wait(values: &[&str]) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(
                HeaderName::from_static("prefer"),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        prefer_wait(&headers)
    }

    #[test]
    fn a_wait_preference_is_read_as_a_token_or_a_quoted_string() {
        assert_eq!(wait(&["wait=5"]), Some(Duration::from_secs(5)));
        assert_eq!(wait(&["wait=\"5\""]), Some(Duration::from_secs(5)));
        assert_eq!(
            wait(&["respond-async, Wait = 2"]),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            wait(&["handling=strict", "wait=3"]),
            Some(Duration::from_secs(3))
        );
        assert_eq!(wait(&["wait=1", "wait=2"]), Some(Duration::from_secs(1)));
        assert_eq!(wait(&["wait=soon"]), None);
        assert_eq!(wait(&["wait=\"5"]), None);
    }
}
