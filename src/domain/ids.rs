//! Identifiers as Waldur spells them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A Waldur uuid: 32 lowercase hex digits, no dashes. Parsing also accepts the dashed form.
///
/// Serialized as its text (what a job stored before the type existed); read back through
/// [`WaldurUuid::parse`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct WaldurUuid(String);

impl WaldurUuid {
    /// A uuid as Waldur prints it (32 hex digits) or in its dashed form (36 characters), either
    /// case; nothing else (no braces, `urn:uuid:` prefix or spaces, which `uuid` would take).
    /// Normalised to Waldur's spelling: lowercase, no dashes.
    pub fn parse(s: &str) -> Result<WaldurUuid, &'static str> {
        if s.len() != 32 && s.len() != 36 {
            return Err("must be a uuid (32 hex digits)");
        }
        uuid::Uuid::parse_str(s)
            .map(|u| WaldurUuid(u.simple().to_string()))
            .map_err(|_| "must be a uuid (32 hex digits)")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for WaldurUuid {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        WaldurUuid::parse(&s)
    }
}

impl From<WaldurUuid> for String {
    fn from(u: WaldurUuid) -> String {
        u.0
    }
}

// Written by hand rather than `into = "String"`, which would clone the text on every enqueue.
impl Serialize for WaldurUuid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Display for WaldurUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A site's own id for a resource (Waldur's `backend_id`): 1–255 printable characters, not only
/// whitespace and without leading or trailing whitespace (Waldur's serializer trims the value and
/// refuses a blank one, so such an id would be stored other than sent, or answered with 400).
///
/// Serialized as its text; read back through [`BackendId::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct BackendId(String);

impl BackendId {
    pub const MAX_LEN: usize = 255;

    pub fn parse(s: &str) -> Result<BackendId, &'static str> {
        if s.is_empty() {
            return Err("must not be empty");
        }
        if s.trim().is_empty() {
            return Err("must not be only whitespace");
        }
        if s.trim() != s {
            return Err("must not start or end with whitespace");
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err("must be at most 255 characters");
        }
        if s.chars()
            .any(|c| c.is_control() || super::text::is_format(c))
        {
            return Err("must not contain control or invisible formatting characters");
        }
        Ok(BackendId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BackendId {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        BackendId::parse(&s)
    }
}

impl From<BackendId> for String {
    fn from(b: BackendId) -> String {
        b.0
    }
}

impl Serialize for BackendId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Display for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client's `Idempotency-Key`: 1-255 visible ASCII characters (no spaces or controls); the
/// same key and request from the same site are the same job. The bound is the gateway's, so a
/// key always fits in a store key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(s: &str) -> Result<IdempotencyKey, &'static str> {
        if s.is_empty() || s.len() > Self::MAX_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be 1-255 visible ASCII characters");
        }
        Ok(IdempotencyKey(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_normalized_to_waldurs_spelling() {
        let u = WaldurUuid::parse("A1B2C3D4-0000-4000-8000-0123456789AB").unwrap();
        assert_eq!(u.as_str(), "a1b2c3d40000400080000123456789ab");
        assert!(WaldurUuid::parse("not-a-uuid").is_err());
        assert!(WaldurUuid::parse("").is_err());
        // Only the two spellings Waldur prints and takes; not what the uuid crate also reads.
        for other in [
            "{a1b2c3d4-0000-4000-8000-0123456789ab}",
            "urn:uuid:a1b2c3d4-0000-4000-8000-0123456789ab",
            " a1b2c3d40000400080000123456789ab",
            "a1b2c3d40000400080000123456789ab ",
        ] {
            assert!(WaldurUuid::parse(other).is_err(), "{other}");
        }
    }

    #[test]
    fn idempotency_keys_are_visible_ascii_up_to_255() {
        assert!(IdempotencyKey::parse("report-2026-11-7e01").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", " k", "a b", "k\t", "schlüssel"] {
            assert_eq!(
                IdempotencyKey::parse(bad),
                Err("must be 1-255 visible ASCII characters"),
                "{bad:?}"
            );
        }
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }

    #[test]
    fn backend_ids_are_bounded_and_printable() {
        assert!(BackendId::parse("project_465000123").is_ok());
        assert!(BackendId::parse("").is_err());
        assert!(BackendId::parse(&"x".repeat(256)).is_err());
        assert!(BackendId::parse("a\nb").is_err());
        assert!(BackendId::parse("   ").is_err());
        assert!(BackendId::parse(" x").is_err());
        assert!(BackendId::parse("a b").is_ok());
    }
}
