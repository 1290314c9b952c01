//! Usage values: billing months, amounts and component types.
//!
//! Amounts are decimals, never floats: a JSON number is read from its shortest round-trip text
//! (so `0.1` is 0.1, not 0.1000000000000000055), a string is parsed as written. Waldur stores two decimal places;
//! more are rounded half-to-even (banker's rounding), the rule accountants expect and the one that
//! does not bias totals upward.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// A calendar month, `YYYY-MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    pub fn parse(s: &str) -> Result<Month, &'static str> {
        let bad = "must be a month as YYYY-MM";
        let (y, m) = s.split_once('-').ok_or(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad);
        }
        let year: i32 = y.parse().map_err(|_| bad)?;
        let month: u32 = m.parse().map_err(|_| bad)?;
        if !(1..=12).contains(&month) || !(2000..=2999).contains(&year) {
            return Err(bad);
        }
        Ok(Month { year, month })
    }

    pub fn current() -> Month {
        let today = Utc::now().date_naive();
        Month {
            year: today.year(),
            month: today.month(),
        }
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a validated month")
    }

    /// Waldur's `billing_period` spelling: the first day of the month.
    pub fn billing_period(self) -> String {
        self.first_day().format("%Y-%m-%d").to_string()
    }

    /// The `date` sent with `set_usage` to select this month: noon UTC on the 15th, well inside
    /// the month whatever time zone Puhuri's billing uses.
    pub fn usage_date(self) -> String {
        format!("{:04}-{:02}-15T12:00:00Z", self.year, self.month)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// A usage amount: non-negative, at most two decimal places (rounded half-to-even), at most 18
/// digits before the point (Waldur's column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(Decimal);

impl Amount {
    pub const MAX_INTEGER_DIGITS: u32 = 18;

    pub fn parse_text(text: &str) -> Result<Amount, &'static str> {
        let text = text.trim();
        if text.is_empty() {
            return Err("must be a decimal number");
        }
        let value = Decimal::from_str(text)
            .or_else(|_| Decimal::from_scientific(text))
            .map_err(|_| "must be a decimal number")?;
        Amount::from_decimal(value)
    }

    /// A JSON number or a string holding a decimal.
    pub fn from_json(value: &serde_json::Value) -> Result<Amount, &'static str> {
        match value {
            serde_json::Value::Number(n) => Amount::parse_text(&n.to_string()),
            serde_json::Value::String(s) => Amount::parse_text(s),
            _ => Err("must be a number or a decimal string"),
        }
    }

    fn from_decimal(value: Decimal) -> Result<Amount, &'static str> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err("must not be negative");
        }
        let rounded = value.round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven);
        if rounded.trunc() >= Decimal::from(10u64.pow(Self::MAX_INTEGER_DIGITS)) {
            return Err("must have at most 18 digits before the decimal point");
        }
        Ok(Amount(rounded.abs()))
    }

    /// Waldur's form: a string with exactly two decimal places.
    pub fn to_waldur(self) -> String {
        let mut d = self.0;
        d.rescale(2);
        d.to_string()
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_waldur())
    }
}

/// An offering component's `type` (the key Waldur's usage reports use), e.g. `cpu_k_hours`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ComponentType(String);

impl ComponentType {
    pub fn parse(s: &str) -> Result<ComponentType, &'static str> {
        if s.is_empty() || s.len() > 100 {
            return Err("must be 1-100 characters");
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err("must be letters, digits, '_', '-' or '.'");
        }
        Ok(ComponentType(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn months_parse_strictly() {
        assert_eq!(Month::parse("2026-05").unwrap().to_string(), "2026-05");
        assert_eq!(
            Month::parse("2026-05").unwrap().billing_period(),
            "2026-05-01"
        );
        assert_eq!(
            Month::parse("2026-12").unwrap().usage_date(),
            "2026-12-15T12:00:00Z"
        );
        for bad in [
            "2026-13", "2026-00", "26-05", "2026-5", "2026/05", "", "abcd-ef",
        ] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amounts_are_decimals_rounded_half_to_even() {
        let a = |v: serde_json::Value| Amount::from_json(&v).map(|a| a.to_waldur());
        assert_eq!(a(json!(12.5)).unwrap(), "12.50");
        assert_eq!(a(json!("12.345")).unwrap(), "12.34");
        assert_eq!(a(json!("12.355")).unwrap(), "12.36");
        assert_eq!(a(json!("0.125")).unwrap(), "0.12");
        assert_eq!(a(json!(0)).unwrap(), "0.00");
        assert_eq!(a(json!("1e3")).unwrap(), "1000.00");
        assert_eq!(a(json!(0.1)).unwrap(), "0.10");
        assert_eq!(
            a(json!("123456789012345678.99")).unwrap(),
            "123456789012345678.99"
        );
        assert!(a(json!("1234567890123456789")).is_err());
        assert!(a(json!(-1)).is_err());
        assert!(a(json!("-0.01")).is_err());
        assert!(a(json!("abc")).is_err());
        assert!(a(json!(true)).is_err());
        assert!(a(json!(null)).is_err());
    }

    #[test]
    fn component_types_are_plain_identifiers() {
        assert!(ComponentType::parse("cpu_k_hours").is_ok());
        assert!(ComponentType::parse("").is_err());
        assert!(ComponentType::parse("cpu hours").is_err());
    }
}
