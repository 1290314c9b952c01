//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>, specification
//! "Signature scheme"): each delivery carries
//!
//! - `webhook-id`: the event's id (the same on every attempt, so a receiver can de-duplicate);
//! - `webhook-timestamp`: the attempt's time, integer seconds since the Unix epoch;
//! - `webhook-signature`: `v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, one per
//!   configured secret, separated by single spaces (a receiver accepts the delivery when any of
//!   them verifies with a secret it holds, which is what lets secrets rotate).
//!
//! The key is the secret's bytes after `whsec_`, base64-decoded ([`SigningSecret`]).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::SigningSecret;

/// The three headers of one delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: String,
    /// Space-separated `v1,<base64>` signatures, one per secret, in the configured order.
    pub signature: String,
}

/// Signs `body` for the attempt at `timestamp` (seconds since the epoch) with every secret.
pub fn sign(id: &str, timestamp: i64, body: &[u8], secrets: &[SigningSecret]) -> SignedHeaders {
    let timestamp = timestamp.to_string();
    let signature = secrets
        .iter()
        .map(|secret| {
            // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.key())
                .expect("HMAC-SHA256 takes keys of any length");
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    SignedHeaders {
        id: id.to_owned(),
        timestamp,
        signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries (their test suites sign this
    /// message with this secret and expect this signature).
    #[test]
    fn matches_the_reference_example() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let headers = sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
            &[secret],
        );
        assert_eq!(
            headers.signature,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn every_secret_signs() {
        let a = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let b = SigningSecret::parse("whsec_c2Vjb25kLXNlY3JldC1vZi0yNC1ieXRlcyE=").unwrap();
        let h = sign("evt_1", 1, b"{}", &[a, b]);
        let parts: Vec<&str> = h.signature.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
    }
}
