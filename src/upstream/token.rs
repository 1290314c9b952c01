//! Whether Puhuri is accepting a Puhuri identity's token (the service provider's, or an
//! allocator's), as the latest answers say. Each identity has its own record.
//!
//! A 401 or 403 from Puhuri is a configuration problem for the site's operator (a revoked or
//! mistyped token, a user that lost its service-provider role), not bad data from a site system.
//! Every answer Puhuri gives is recorded here: a 401/403 marks the token refused, any other answer
//! from Puhuri (a success, a 404, a 409, a 400...) marks it accepted again. Transport failures say
//! nothing about the token and change nothing. `/readyz` shows this as its `upstream_token` check,
//! (the service provider's), and `puhuri_gateway_upstream_token_refused_total{identity,status}`
//! counts the refusals; `identity` is a configured identity's name, so the label is bounded by
//! the configuration.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};

/// Shared by every clone of a [`super::WaldurClient`] (and by the clients that were given it).
#[derive(Debug)]
pub struct TokenStatus {
    /// The identity's name (`sp`, or a name of `upstream.identities`).
    identity: String,
    /// 0 while accepted; otherwise the status (401 or 403) of the latest refusal.
    refused_with: AtomicU16,
    /// Refusals seen since start.
    refusals: AtomicU64,
}

/// What [`TokenStatus::current`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenState {
    /// No answer yet, or the latest answer was not a 401/403.
    Accepted,
    /// The latest answer from Puhuri was this status (401 or 403).
    Refused { status: u16 },
}

impl Default for TokenStatus {
    /// The service provider's.
    fn default() -> Self {
        TokenStatus::for_identity(super::error::SP_IDENTITY)
    }
}

impl TokenStatus {
    /// A record for the identity `name`.
    pub fn for_identity(name: &str) -> TokenStatus {
        TokenStatus {
            identity: name.to_string(),
            refused_with: AtomicU16::new(0),
            refusals: AtomicU64::new(0),
        }
    }

    /// The identity's name.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Records one answer's HTTP status.
    pub fn record(&self, status: u16) {
        if status == 401 || status == 403 {
            self.refusals.fetch_add(1, Ordering::Relaxed);
            self.refused_with.store(status, Ordering::Relaxed);
            metrics::counter!(
                "puhuri_gateway_upstream_token_refused_total",
                "identity" => self.identity.clone(),
                "status" => status.to_string()
            )
            .increment(1);
        } else {
            self.refused_with.store(0, Ordering::Relaxed);
        }
    }

    pub fn current(&self) -> TokenState {
        match self.refused_with.load(Ordering::Relaxed) {
            0 => TokenState::Accepted,
            status => TokenState::Refused { status },
        }
    }

    /// 401/403 answers since start.
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_answer_decides() {
        let status = TokenStatus::default();
        assert_eq!(status.current(), TokenState::Accepted);
        status.record(403);
        assert_eq!(status.current(), TokenState::Refused { status: 403 });
        status.record(404);
        assert_eq!(status.current(), TokenState::Accepted);
        status.record(401);
        assert_eq!(status.current(), TokenState::Refused { status: 401 });
        assert_eq!(status.refusals(), 2);
    }
}
