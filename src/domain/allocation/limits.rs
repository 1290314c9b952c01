//! An allocator's limits: read from the request's text exactly ([`whole_limits`]), checked
//! against the offering's limit-type components ([`LimitRules`]) and kept as [`Limits`]. The
//! rules' source is the parent module's doc.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::RuleViolation;
use crate::domain::number::{NotWhole, whole_number};

/// The largest limit accepted: 2^53 - 1, the largest whole number every JSON reader on the way
/// (Waldur's included, which keeps limits as JSON numbers) holds exactly. A larger one would be
/// stored rounded (`1.2345678901234568e+29`), so it is refused instead.
pub const LIMIT_MAX: f64 = 9_007_199_254_740_991.0;

/// Limits as a request spelled them (`at` is the field path, e.g. `limits`), read exactly: a
/// whole number becomes an integer (`2000.0`, `2e3` -> 2000, `-0` -> 0); a number with a
/// fraction is a violation, "must be a whole number"; anything else (a string, a number too
/// large for 64 bits) is kept as JSON reads it, for [`LimitRules::check`] to name.
pub fn whole_limits(
    at: &str,
    raw: &BTreeMap<String, Box<RawValue>>,
) -> Result<Map<String, Value>, Vec<RuleViolation>> {
    let mut out = Map::new();
    let mut fractions = vec![];
    for (name, value) in raw {
        let text = value.get();
        let read = match whole_number(text) {
            Ok(n) => u64::try_from(n)
                .map(Value::from)
                .or_else(|_| i64::try_from(n).map(Value::from))
                .ok(),
            Err(NotWhole::Fraction) => {
                fractions.push(RuleViolation::new(
                    format!("{at}.{name}"),
                    "must be a whole number",
                ));
                continue;
            }
            Err(NotWhole::NotANumber | NotWhole::TooLarge { .. }) => None,
        };
        let read = read.map_or_else(|| serde_json::from_str(text), Ok);
        out.insert(name.clone(), read.unwrap_or(Value::Null));
    }
    if fractions.is_empty() {
        Ok(out)
    } else {
        Err(fractions)
    }
}

/// The limit-type components of an offering (those whose `billing_type` is `limit`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitRules {
    pub limit_components: Vec<String>,
}

impl LimitRules {
    /// From the offering's `components` (each with `type` and `billing_type`).
    pub fn from_components(components: &Value) -> LimitRules {
        LimitRules::from_types(
            (components.as_array().into_iter())
                .flatten()
                .filter_map(|c| Some((c.get("type")?.as_str()?, c.get("billing_type")?.as_str()))),
        )
    }

    /// From the offering's components as (`type`, `billing_type`) pairs.
    pub fn from_types<'a>(
        components: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> LimitRules {
        LimitRules {
            limit_components: (components.into_iter())
                .filter(|(_, billing_type)| *billing_type == Some("limit"))
                .map(|(type_, _)| type_.to_string())
                .collect(),
        }
    }

    /// Checks `limits` (`at` is the field path, e.g. `limits`): each key a limit-type component
    /// of the offering, each value a non-negative number.
    pub fn check(&self, at: &str, limits: &Map<String, Value>) -> Vec<RuleViolation> {
        let mut out = vec![];
        for (name, value) in limits {
            let field = format!("{at}.{name}");
            if !self.limit_components.iter().any(|c| c == name) {
                let known = if self.limit_components.is_empty() {
                    "this offering has no limit-type component".to_string()
                } else {
                    format!(
                        "is not a limit-type component of this offering (those are: {})",
                        self.limit_components.join(", ")
                    )
                };
                out.push(RuleViolation::new(field, known));
                continue;
            }
            match value.as_f64() {
                Some(n) if value.is_number() && n > LIMIT_MAX => out.push(RuleViolation::new(
                    field,
                    "must be at most 9007199254740991 (2^53 - 1)",
                )),
                Some(n) if value.is_number() && n >= 0.0 && n.is_finite() => {}
                Some(_) if value.is_number() => {
                    out.push(RuleViolation::new(field, "must not be negative"))
                }
                _ => out.push(RuleViolation::new(field, "must be a number")),
            }
        }
        out
    }

    /// `limits` as read by [`whole_limits`] (`at` is the field path), when they break none of
    /// the offering's rules ([`LimitRules::check`]); otherwise every violation.
    pub fn limits(
        &self,
        at: &str,
        limits: Map<String, Value>,
    ) -> Result<Limits, Vec<RuleViolation>> {
        let found = self.check(at, &limits);
        if !found.is_empty() {
            return Err(found);
        }
        let mut out = BTreeMap::new();
        for (name, value) in limits {
            // whole, not negative and at most LIMIT_MAX: what `check` just allowed
            let n = value.as_u64().ok_or_else(|| {
                vec![RuleViolation::new(
                    format!("{at}.{name}"),
                    "must be a whole number",
                )]
            })?;
            out.insert(name, n);
        }
        Ok(Limits(out))
    }
}

/// Limits an allocator asks for, each allowed by the offering ([`LimitRules::limits`]):
/// component type, as the offering names it -> a whole number from 0 to [`LIMIT_MAX`].
///
/// Serialized as a JSON object of integers, what Waldur's `limits` take. Read back from a stored
/// job accepting a whole number written with a fraction part (`2000.0`), as jobs stored before
/// limits were read exactly may hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Limits(BTreeMap<String, u64>);

impl Limits {
    /// Component type -> limit, in the components' order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &u64)> {
        self.0.iter()
    }
}

impl<'de> Deserialize<'de> for Limits {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = BTreeMap::<String, Value>::deserialize(deserializer)?;
        let mut out = BTreeMap::new();
        for (name, value) in stored {
            let n = match (value.as_u64(), value.as_f64()) {
                (Some(n), _) => n,
                (None, Some(f)) if f.fract() == 0.0 && (0.0..=LIMIT_MAX).contains(&f) => f as u64,
                _ => {
                    return Err(serde::de::Error::custom(format!(
                        "limit {name}: {value} is not a whole number from 0 to 2^53 - 1"
                    )));
                }
            };
            out.insert(name, n);
        }
        Ok(Limits(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::allocation::tests::{fields, obj};
    use serde_json::json;

    #[test]
    fn limits_are_the_offerings_limit_components_as_whole_numbers() {
        let rules = LimitRules::from_types([("cpu", Some("limit")), ("gpu", Some("usage"))]);
        let asked = |text: &str| {
            let raw: BTreeMap<String, Box<RawValue>> = serde_json::from_str(text).unwrap();
            whole_limits("limits", &raw).unwrap()
        };
        let limits = rules.limits("limits", asked(r#"{"cpu": 2e3}"#)).unwrap();
        assert_eq!(serde_json::to_value(&limits).unwrap(), json!({"cpu": 2000}));
        let refused = rules
            .limits("limits", asked(r#"{"cpu": -1, "gpu": 1}"#))
            .unwrap_err();
        assert_eq!(fields(refused), ["limits.cpu", "limits.gpu"]);
        // a stored job's limits, including a whole number written with a fraction part
        let stored: Limits = serde_json::from_value(json!({"cpu": 100.0, "gpu": 5})).unwrap();
        assert_eq!(
            serde_json::to_value(&stored).unwrap(),
            json!({"cpu": 100, "gpu": 5})
        );
        for bad in [json!({"cpu": 1.5}), json!({"cpu": -1}), json!({"cpu": "1"})] {
            assert!(
                serde_json::from_value::<Limits>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn limits_only_for_limit_components_and_not_negative() {
        let rules = LimitRules::from_components(&json!([
            {"type": "cpu_k_hours", "billing_type": "limit"},
            {"type": "gb_k_hours", "billing_type": "usage"}
        ]));
        assert!(
            rules
                .check("limits", &obj(json!({"cpu_k_hours": 10})))
                .is_empty()
        );
        assert_eq!(
            fields(rules.check("limits", &obj(json!({"gb_k_hours": 1})))),
            ["limits.gb_k_hours"]
        );
        assert_eq!(
            fields(rules.check("limits", &obj(json!({"nodes": 1})))),
            ["limits.nodes"]
        );
        let v = rules.check("limits", &obj(json!({"cpu_k_hours": -1})));
        assert_eq!(v[0].message, "must not be negative");
        let v = rules.check("limits", &obj(json!({"cpu_k_hours": "10"})));
        assert_eq!(v[0].message, "must be a number");
        let huge: Value =
            serde_json::from_str(r#"{"cpu_k_hours": 123456789012345678901234567890}"#).unwrap();
        let v = rules.check("limits", huge.as_object().unwrap());
        assert_eq!(fields(v), ["limits.cpu_k_hours"]);
        assert!(
            rules
                .check(
                    "limits",
                    &obj(json!({"cpu_k_hours": 9_007_199_254_740_991u64}))
                )
                .is_empty()
        );
    }

    #[test]
    fn limits_are_read_from_their_text_as_whole_numbers() {
        let raw =
            |text: &str| -> BTreeMap<String, Box<RawValue>> { serde_json::from_str(text).unwrap() };
        let read = whole_limits(
            "limits",
            &raw(r#"{"a": 2000.0, "b": 1e3, "c": -0, "d": 7, "e": "ten", "f": -3}"#),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            r#"{"a":2000,"b":1000,"c":0,"d":7,"e":"ten","f":-3}"#
        );
        let huge = whole_limits("limits", &raw(r#"{"a": 123456789012345678901234567890}"#));
        assert_eq!(huge.unwrap()["a"].as_f64(), Some(1.2345678901234568e29));
        let refused = whole_limits(
            "limits",
            &raw(
                r#"{"a": 1.0000000000000000001, "b": 0.99999999999999999999, "c": 1e-400, "d": 1}"#,
            ),
        )
        .unwrap_err();
        assert_eq!(
            fields(refused.clone()),
            ["limits.a", "limits.b", "limits.c"]
        );
        assert!(
            refused
                .iter()
                .all(|v| v.message == "must be a whole number")
        );
    }
}
