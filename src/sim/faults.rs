//! Fault injection: make "Puhuri" slow, failing, throttling, hanging or dropping connections.
//!
//! Why: the gateway's promise is that nothing accepted is lost while Puhuri misbehaves; tests must
//! be able to produce each kind of misbehaviour on demand and deterministically (rate 1.0, or
//! "only the next N calls").
//!
//! A fault matches a request by optional path prefix and optional method. Latency faults add up;
//! of the other kinds the first matching one that fires decides the answer. `times` limits how
//! often a fault fires; a fault with `rate < 1` fires at random with that probability.
//!
//! Dropped connections: actix-web always answers a request, so the simulator goes below it. At
//! accept time [`on_connect`] stores the connection's socket descriptor in the request's
//! connection data; a `drop` fault duplicates the descriptor and calls `shutdown(2)` on the socket,
//! so the client sees the connection closed without any HTTP response bytes (actix's own write of
//! the response then fails and the connection is discarded). Unix only; elsewhere the fault
//! degrades to a 502 without body.

use actix_web::HttpRequest;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// Answer with `status` (default 503).
    Error,
    /// Add `latency_ms` before handling the request normally.
    Latency,
    /// Accept the request and never answer (sleep `hang_ms`, default 300 000).
    Hang,
    /// Close the connection without an HTTP response.
    Drop,
    /// 429 with `Retry-After: retry_after` (default 1).
    Throttle,
}

/// What `POST /__sim/faults` accepts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// Request path prefix (`/api/marketplace-orders/`); a value without a leading `/` is taken
    /// relative to `/api/`. Absent: every API path.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// HTTP method (case-insensitive). Absent: any method.
    #[serde(default)]
    pub method: Option<String>,
    /// Probability 0..1 that the fault fires on a matching request (default 1).
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    #[serde(default)]
    pub hang_ms: Option<u64>,
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Fire only this many times, then stay inert.
    #[serde(default)]
    pub times: Option<u32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Fault {
    pub id: u64,
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// How often it has fired.
    pub fired: u64,
}

#[derive(Default, Debug)]
pub struct Faults {
    next_id: u64,
    pub list: Vec<Fault>,
}

pub enum Action {
    None,
    Error(u16),
    Throttle(u64),
    Hang(u64),
    Drop,
}

pub struct Effect {
    pub latency_ms: u64,
    pub action: Action,
}

pub const DEFAULT_HANG_MS: u64 = 300_000;

impl FaultSpec {
    /// Validate and normalise; the error is a message for a 400.
    pub fn normalise(mut self) -> Result<Self, String> {
        if self.rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
            return Err("rate must be between 0 and 1".into());
        }
        if let Some(p) = self.path_prefix.take() {
            self.path_prefix = Some(if p.starts_with('/') {
                p
            } else {
                format!("/api/{p}")
            });
        }
        if self.status.is_some_and(|s| !(100..=599).contains(&s)) {
            return Err("status must be an HTTP status code".into());
        }
        if self.kind == FaultKind::Latency && self.latency_ms.is_none() {
            return Err("a latency fault needs latency_ms".into());
        }
        Ok(self)
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.path_prefix
            .as_deref()
            .is_none_or(|p| path.starts_with(p))
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

impl Faults {
    pub fn add(&mut self, spec: FaultSpec) -> Fault {
        self.next_id += 1;
        let f = Fault {
            id: self.next_id,
            spec,
            fired: 0,
        };
        self.list.push(f.clone());
        f
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.list.len();
        self.list.retain(|f| f.id != id);
        self.list.len() != before
    }

    /// Decide what happens to a request; counts the faults that fire.
    pub fn decide(&mut self, method: &str, path: &str) -> Effect {
        let mut effect = Effect {
            latency_ms: 0,
            action: Action::None,
        };
        if self.list.is_empty() {
            return effect;
        }
        for f in &mut self.list {
            let s = &f.spec;
            if !s.matches(method, path) || s.times.is_some_and(|t| f.fired >= u64::from(t)) {
                continue;
            }
            let terminal = s.kind != FaultKind::Latency;
            if terminal && !matches!(effect.action, Action::None) {
                continue;
            }
            let rate = s.rate.unwrap_or(1.0);
            if rate < 1.0 && rand::random::<f64>() >= rate {
                continue;
            }
            f.fired += 1;
            match s.kind {
                FaultKind::Latency => effect.latency_ms += s.latency_ms.unwrap_or(0),
                FaultKind::Error => effect.action = Action::Error(s.status.unwrap_or(503)),
                FaultKind::Throttle => effect.action = Action::Throttle(s.retry_after.unwrap_or(1)),
                FaultKind::Hang => {
                    effect.action = Action::Hang(s.hang_ms.unwrap_or(DEFAULT_HANG_MS))
                }
                FaultKind::Drop => effect.action = Action::Drop,
            }
        }
        effect
    }
}

/// A duplicate of a connection's socket, kept in the connection data for `drop` faults. Shutting
/// it down shuts the connection down (shutdown acts on the socket, not the descriptor); it is
/// closed with the connection data.
struct ConnSocket(#[cfg(unix)] std::os::fd::OwnedFd);

/// `HttpServer::on_connect` hook: remember the socket of each accepted connection.
pub fn on_connect(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Some(s) = conn.downcast_ref::<actix_web::rt::net::TcpStream>()
            && let Ok(fd) = s.as_fd().try_clone_to_owned()
        {
            ext.insert(ConnSocket(fd));
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (conn, ext);
    }
}

/// Close the request's connection without answering. Returns whether it worked.
pub fn abort_connection(req: &HttpRequest) -> bool {
    #[cfg(unix)]
    {
        let Some(ConnSocket(fd)) = req.conn_data::<ConnSocket>() else {
            return false;
        };
        match fd.try_clone() {
            Ok(owned) => std::net::TcpStream::from(owned)
                .shutdown(std::net::Shutdown::Both)
                .is_ok(),
            Err(_) => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = req;
        false
    }
}
