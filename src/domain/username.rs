//! Usernames a site sets for people on its offerings (an offering user's `username`, and the
//! provider-wide `set_offerings_username`). Puhuri passes them on to the site's systems, which
//! commonly turn them into POSIX accounts, home directories and paths, so the default rule is
//! the POSIX portable one.
//!
//! **The rule.** By default: 1-32 characters from `A-Z a-z 0-9 . _ -`, not starting with `-`
//! (an option to most tools) or `.` (`.`, `..` and hidden files); that is POSIX's portable user
//! name (IEEE 1003.1, 3.437) within the 32 characters Linux's `useradd` allows. A site whose
//! accounts follow another convention sets `limits.username_pattern` to a regular expression the
//! whole name must match. Whatever the pattern, a username is at most 100 characters (Waldur's
//! column) and never holds whitespace, control or formatting characters (such as the
//! right-to-left override), which no pattern can allow.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How usernames are checked: the default rule or the operator's pattern.
#[derive(Clone, Debug, Default)]
pub struct UsernameRule {
    pattern: Option<regex::Regex>,
}

impl UsernameRule {
    /// Waldur's limit on a username's length.
    pub const MAX_CHARS: usize = 100;
    /// The default rule's limit.
    pub const DEFAULT_MAX_CHARS: usize = 32;

    /// The rule from `limits.username_pattern` (anchored: the whole name must match), or the
    /// default without one. An invalid expression is an error naming why.
    pub fn new(pattern: Option<&str>) -> Result<UsernameRule, String> {
        let pattern = pattern
            .map(|p| {
                regex::Regex::new(&format!("^(?:{p})$"))
                    .map_err(|e| format!("is not a valid regular expression: {e}"))
            })
            .transpose()?;
        Ok(UsernameRule { pattern })
    }

    fn default_rule(name: &str) -> Result<(), &'static str> {
        let n = name.chars().count();
        if n == 0 || n > Self::DEFAULT_MAX_CHARS {
            return Err("must be 1 to 32 characters");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err("must hold only letters A-Z and a-z, digits, '.', '_' and '-'");
        }
        if name.starts_with(['-', '.']) {
            return Err("must not start with '-' or '.'");
        }
        Ok(())
    }
}

/// A username that passed the rule ([`Username::parse`]), or read back from a job
/// (see its `Deserialize`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(name: &str, rule: &UsernameRule) -> Result<Username, String> {
        // The tighter bound of the rule in force, so the message names the limit that applies.
        let max = if rule.pattern.is_some() {
            UsernameRule::MAX_CHARS
        } else {
            UsernameRule::DEFAULT_MAX_CHARS
        };
        Self::check_hard_limits(name, max)?;
        match &rule.pattern {
            None => UsernameRule::default_rule(name).map_err(str::to_string)?,
            Some(pattern) if !pattern.is_match(name) => {
                return Err("does not match this gateway's username rule \
                            (limits.username_pattern)"
                    .into());
            }
            Some(_) => {}
        }
        Ok(Username(name.to_string()))
    }

    /// What every rule requires: 1 to `max` characters, no whitespace, control or formatting
    /// characters.
    fn check_hard_limits(name: &str, max: usize) -> Result<(), String> {
        let n = name.chars().count();
        if n == 0 || n > max {
            return Err(format!("must be 1 to {max} characters"));
        }
        if name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_format(c))
        {
            return Err("must not contain spaces, control or formatting characters".into());
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Stored in a job as its text. Reading it back checks only what every rule requires (at most
/// [`UsernameRule::MAX_CHARS`] characters, no whitespace, control or formatting characters): the
/// name passed the rule in force when its job was accepted, and a job once accepted is delivered
/// even if the operator has changed `limits.username_pattern` since.
impl Serialize for Username {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Username {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Username, D::Error> {
        let name = String::deserialize(deserializer)?;
        Username::check_hard_limits(&name, UsernameRule::MAX_CHARS)
            .map_err(serde::de::Error::custom)?;
        Ok(Username(name))
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Unicode's invisible formatting characters (general category Cf) that matter for spoofing:
/// bidirectional controls, zero-width characters and the byte-order mark.
use super::text::is_format;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rule_is_posix_portable() {
        let rule = UsernameRule::default();
        for good in [
            "bob",
            "bob_lumi",
            "a.andersson",
            "x-1",
            "_svc",
            "B0B",
            &"a".repeat(32),
        ] {
            assert!(Username::parse(good, &rule).is_ok(), "{good}");
        }
        for bad in [
            "",
            "../../etc/x;rm",
            "bob lumi",
            "bob\u{7}",
            "admin\u{202E}nimda",
            "-rf",
            ".hidden",
            "..",
            "bob/lumi",
            "bob;rm",
            "böb",
            "bob\u{200B}",
            &"a".repeat(33),
        ] {
            assert!(Username::parse(bad, &rule).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_configured_pattern_replaces_the_default_but_not_the_hard_limits() {
        let rule = UsernameRule::new(Some("[a-z]+@[a-z.]+")).unwrap();
        assert!(Username::parse("bob@lumi.fi", &rule).is_ok());
        // the pattern is anchored
        assert!(Username::parse("x bob@lumi.fi", &rule).is_err());
        assert!(Username::parse("bob_lumi", &rule).is_err());
        let anything = UsernameRule::new(Some(".*")).unwrap();
        assert!(Username::parse("Ünïcode.name", &anything).is_ok());
        assert!(Username::parse("a\u{202E}b", &anything).is_err());
        assert!(Username::parse("a b", &anything).is_err());
        assert!(Username::parse(&"a".repeat(101), &anything).is_err());
        assert!(UsernameRule::new(Some("(")).is_err());
    }

    #[test]
    fn a_stored_username_is_read_back_under_any_rule() {
        let rule = UsernameRule::new(Some("[a-z]+@[a-z.]+")).unwrap();
        let name = Username::parse("bob@lumi.fi", &rule).unwrap();
        let stored = serde_json::to_string(&name).unwrap();
        assert_eq!(stored, r#""bob@lumi.fi""#);
        // the default rule would refuse it now; the stored name is still read
        assert_eq!(serde_json::from_str::<Username>(&stored).unwrap(), name);
        for broken in [r#""a b""#, r#""""#, r#""a\u202Eb""#] {
            assert!(
                serde_json::from_str::<Username>(broken).is_err(),
                "{broken}"
            );
        }
        let long = format!("\"{}\"", "a".repeat(101));
        assert!(serde_json::from_str::<Username>(&long).is_err());
    }
}
