//! Usage values: billing months, amounts and component types.
//!
//! Amounts are decimals, never floats: a JSON number is read from the digits the client sent
//! (the request's JSON text, so `99999999999999.99` stays exact at any length), a string is parsed
//! as written; both take exactly one grammar ([`Amount::parse_text`]). Waldur stores two decimal places;
//! more are rounded half-to-even (banker's rounding), the rule accountants expect and the one that
//! does not bias totals upward.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;

use super::number::{DecimalText, whole_number};
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
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(y, 4) || !digits(m, 2) {
            return Err(bad);
        }
        let year: i32 = y.parse().map_err(|_| bad)?;
        let month: u32 = m.parse().map_err(|_| bad)?;
        if !(1..=12).contains(&month) || !(2000..=2999).contains(&year) {
            return Err(bad);
        }
        Ok(Month { year, month })
    }

    /// The month a usage report is for, at `now`: the one `text` spells (`YYYY-MM`), or the
    /// current month (UTC) when the report names none. A month that has not begun anywhere
    /// ([`Month::has_begun`]) cannot have been measured and is refused.
    pub fn reported(text: Option<&str>, now: DateTime<Utc>) -> Result<Month, &'static str> {
        let Some(text) = text else {
            return Ok(Month::of(now));
        };
        let month = Month::parse(text)?;
        if !month.has_begun(now) {
            return Err("has not begun yet; report a month once it has");
        }
        Ok(month)
    }

    /// The month (UTC) of the system clock now.
    pub fn current() -> Month {
        Month::of(Utc::now())
    }

    /// The month (UTC) that holds `at`.
    pub fn of(at: DateTime<Utc>) -> Month {
        let today = at.date_naive();
        Month {
            year: today.year(),
            month: today.month(),
        }
    }

    /// Whether the month has begun somewhere on Earth at `now`: its first day has started in the
    /// easternmost time zone (UTC+14). Usage for a month that has not begun anywhere cannot have
    /// been measured; a site east of UTC may report a month a few hours before UTC reaches it.
    pub fn has_begun(self, now: DateTime<Utc>) -> bool {
        let start = self
            .first_day()
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc();
        start <= now + chrono::Duration::hours(14)
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

/// Stored in a job as its `YYYY-MM` text; read back through [`Month::parse`], so a stored month
/// is always one the API accepted.
impl Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Month {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Month, D::Error> {
        let text = String::deserialize(deserializer)?;
        Month::parse(&text).map_err(serde::de::Error::custom)
    }
}

const NOT_A_NUMBER: &str = "must be a number or a decimal string";
const TOO_MANY_DIGITS: &str = "must have at most 18 digits before the decimal point";

/// A usage amount: non-negative, at most two decimal places (rounded half-to-even), at most 18
/// digits before the point (Waldur's column); above that a 422.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(Decimal);

impl Amount {
    pub const MAX_INTEGER_DIGITS: u32 = 18;

    /// An amount from its decimal text, exactly: `digits [. digits] [(e|E) [+|-] digits]`, an
    /// optional leading `-` (refused as negative unless the value is zero), nothing else (no
    /// spaces, `+`, `_`, thousands separators, `NaN` or `Infinity`). The digits are read as text,
    /// never through a float, so any number of them is exact; more than two decimal places are
    /// rounded half-to-even, and more than [`Self::MAX_INTEGER_DIGITS`] digits before the point
    /// (after the exponent is applied) is refused.
    pub fn parse_text(text: &str) -> Result<Amount, &'static str> {
        let bad = "must be a decimal number such as 12.5, 1520.25 or 1e3";
        let number = DecimalText::parse(text).ok_or(bad)?;
        let (negative, point) = (number.negative, number.point);
        let digits = &number.digits;
        let first_nonzero = digits.iter().position(|&d| d != 0);
        let Some(first_nonzero) = first_nonzero else {
            return Ok(Amount(Decimal::new(0, 2)));
        };
        if negative {
            return Err("must not be negative");
        }
        if point - first_nonzero as i128 > i128::from(Self::MAX_INTEGER_DIGITS) {
            return Err(TOO_MANY_DIGITS);
        }
        // The value in hundredths, rounded half-to-even on the digits after the second place.
        let digit_at = |i: i128| number.digit_at(i);
        let mut hundredths: i128 = 0;
        for i in (point - i128::from(Self::MAX_INTEGER_DIGITS))..(point + 2) {
            hundredths = hundredths * 10 + i128::from(digit_at(i));
        }
        let next = digit_at(point + 2);
        let rest_nonzero = digits
            .iter()
            .enumerate()
            .skip(usize::try_from(point + 3).unwrap_or(0))
            .any(|(_, &d)| d != 0);
        let round_up = next > 5 || (next == 5 && (rest_nonzero || hundredths % 2 == 1));
        if round_up {
            hundredths += 1;
        }
        let value = Decimal::from_i128_with_scale(hundredths, 2);
        if value.trunc() >= Decimal::from(10u64.pow(Self::MAX_INTEGER_DIGITS)) {
            return Err(TOO_MANY_DIGITS);
        }
        Ok(Amount(value))
    }

    /// A JSON number or a string holding a decimal.
    pub fn from_json(value: &serde_json::Value) -> Result<Amount, &'static str> {
        match value {
            serde_json::Value::Number(n) => Amount::parse_text(&n.to_string()),
            serde_json::Value::String(s) => Amount::parse_text(s),
            _ => Err("must be a number or a decimal string"),
        }
    }

    /// An amount from the JSON text of a value as the client sent it: a number is read from its
    /// digits (exact for any number of them), a string from its contents.
    pub fn from_json_text(raw: &str) -> Result<Amount, &'static str> {
        match raw.as_bytes().first() {
            Some(b'"') => {
                let text: String = serde_json::from_str(raw).map_err(|_| NOT_A_NUMBER)?;
                Amount::parse_text(&text)
            }
            Some(b'-' | b'0'..=b'9') => Amount::parse_text(raw),
            _ => Err(NOT_A_NUMBER),
        }
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

/// Stored in a job as Waldur's text (two decimal places, [`Amount::to_waldur`]); read back
/// through [`Amount::parse_text`], which gives the same amount.
impl Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_waldur())
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Amount, D::Error> {
        let text = String::deserialize(deserializer)?;
        Amount::parse_text(&text).map_err(serde::de::Error::custom)
    }
}

/// The most components one usage report names.
pub const MAX_COMPONENTS: usize = 100;

/// `Err` with the reason when a usage report names `n` components: at least one, at most
/// [`MAX_COMPONENTS`].
pub fn check_component_count(n: usize) -> Result<(), &'static str> {
    match n {
        0 => Err("must name at least one component"),
        n if n > MAX_COMPONENTS => Err("must name at most 100 components"),
        _ => Ok(()),
    }
}

/// `Err` with the reason when a resource's new limits (`set_limits`) name `n` components: at
/// least one, at most [`MAX_COMPONENTS`], as a usage report.
pub fn check_limit_count(n: usize) -> Result<(), &'static str> {
    match n {
        1..=MAX_COMPONENTS => Ok(()),
        _ => Err("must name 1 to 100 components"),
    }
}

/// A component's limit as a request gives it: a whole number as JSON Schema counts it (the
/// value, not its spelling: `2000`, `2000.0` and `2e3` alike), not negative, at most
/// `u64::MAX`. Read from the number's text exactly ([`whole_limit_text`]), so a fraction however
/// small (`1.0000000000000000001`, `1e-400`) is refused, never rounded.
pub fn whole_limit(value: &serde_json::Value) -> Result<u64, &'static str> {
    match value {
        serde_json::Value::Number(n) => whole_limit_text(&n.to_string()),
        _ => Err(NOT_WHOLE),
    }
}

const NOT_WHOLE: &str = "must be a whole number, not negative";

/// [`whole_limit`] from the JSON text of a value as the client sent it (a string, `"5"`, is
/// not a number).
pub fn whole_limit_text(raw: &str) -> Result<u64, &'static str> {
    (whole_number(raw).ok())
        .and_then(|n| u64::try_from(n).ok())
        .ok_or(NOT_WHOLE)
}

/// An offering component's `type` (the key Waldur's usage reports use), e.g. `cpu_k_hours`.
///
/// Serialized as its text (a key of a job's `usages` or `limits`); read back through
/// [`ComponentType::parse`]. Ordered as its text, so a map of them keeps the order a map of
/// strings had.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
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

impl TryFrom<String> for ComponentType {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ComponentType::parse(&s)
    }
}

impl Serialize for ComponentType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Display for ComponentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_reported_month_defaults_to_now_and_must_have_begun_somewhere() {
        let now = DateTime::parse_from_rfc3339("2026-05-31T09:59:59Z")
            .unwrap()
            .to_utc();
        assert_eq!(Month::reported(None, now).unwrap().to_string(), "2026-05");
        assert_eq!(
            Month::reported(Some("2026-04"), now).unwrap().to_string(),
            "2026-04"
        );
        // 2026-06 begins in UTC+14 at 10:00 UTC on May 31st
        assert_eq!(
            Month::reported(Some("2026-06"), now),
            Err("has not begun yet; report a month once it has")
        );
        let later = now + chrono::Duration::seconds(1);
        assert_eq!(
            Month::reported(Some("2026-06"), later).unwrap().to_string(),
            "2026-06"
        );
        assert_eq!(
            Month::reported(Some("2026-6"), now),
            Err("must be a month as YYYY-MM")
        );
    }

    #[test]
    fn new_limits_name_one_to_a_hundred_components() {
        assert!(check_limit_count(0).is_err());
        assert!(check_limit_count(1).is_ok());
        assert!(check_limit_count(100).is_ok());
        assert_eq!(check_limit_count(101), Err("must name 1 to 100 components"));
    }

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
            "2026-13",
            "2026-00",
            "26-05",
            "2026-5",
            "2026/05",
            "",
            "abcd-ef",
            "2026-+5",
            "+026-05",
            "2026-05 ",
            " 2026-05",
            "2026-05-01",
            "2_26-05",
            "２０２６-05",
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

    /// The JSON text as sent: a number is never read through a float.
    #[test]
    fn amounts_are_exact_from_the_json_text_for_any_number_of_digits() {
        let t = |raw: &str| Amount::from_json_text(raw).map(|a| a.to_waldur());
        assert_eq!(t("99999999999999.99").unwrap(), "99999999999999.99");
        assert_eq!(t("999999999999999999.99").unwrap(), "999999999999999999.99");
        assert_eq!(
            t("\"999999999999999999.99\"").unwrap(),
            "999999999999999999.99"
        );
        assert_eq!(t("0.1").unwrap(), "0.10");
        assert_eq!(t("12.345").unwrap(), "12.34");
        assert_eq!(t("12.355").unwrap(), "12.36");
        assert_eq!(
            t("12.3450000000000000000000000000000000001").unwrap(),
            "12.35"
        );
        assert_eq!(
            t("0.00000000000000000000000000000000000001").unwrap(),
            "0.00"
        );
        assert_eq!(t("1520.25e0").unwrap(), "1520.25");
        assert_eq!(t("1e3").unwrap(), "1000.00");
        assert_eq!(t("1E+3").unwrap(), "1000.00");
        assert_eq!(t("125e-3").unwrap(), "0.12");
        assert_eq!(t("1e17").unwrap(), "100000000000000000.00");
        assert_eq!(t("0e999999999999").unwrap(), "0.00");
        assert_eq!(t("1e-999999999999").unwrap(), "0.00");
        assert_eq!(t("-0").unwrap(), "0.00");
        assert_eq!(t("999999999999999999.995").unwrap_err(), TOO_MANY_DIGITS);
        for too_big in [
            "1e18",
            "1000000000000000000",
            "1e999999999999",
            "12345678901234567890.5",
        ] {
            assert_eq!(t(too_big).unwrap_err(), TOO_MANY_DIGITS, "{too_big}");
        }
        for bad in [
            "\"1_000\"",
            "\"1,000\"",
            "\" 12\"",
            "\"12 \"",
            "\"+12\"",
            "\".5\"",
            "\"5.\"",
            "\"0x10\"",
            "\"NaN\"",
            "\"Infinity\"",
            "\"1e\"",
            "\"1e+\"",
            "\"١٢\"",
            "\"\"",
            "true",
            "null",
            "[1]",
            "{}",
        ] {
            assert!(t(bad).is_err(), "{bad}");
        }
        assert_eq!(t("-1").unwrap_err(), "must not be negative");
        assert_eq!(t("\"-0.01\"").unwrap_err(), "must not be negative");
    }

    /// A long exponent is weighed with the digits it moves: `0.000…1e100001` is 1, whatever the
    /// exponent's length.
    #[test]
    fn a_huge_exponent_is_exact_when_the_digits_balance_it() {
        let t = |raw: String| Amount::from_json_text(&raw).map(|a| a.to_waldur());
        let zeros = "0".repeat(100_000);
        assert_eq!(t(format!("0.{zeros}1e100001")).unwrap(), "1.00");
        assert_eq!(t(format!("1{zeros}0e-100001")).unwrap(), "1.00");
        assert_eq!(t(format!("5{zeros}0e-100003")).unwrap(), "0.05");
        assert_eq!(t(format!("\"5{zeros}0e-100003\"")).unwrap(), "0.05");
        assert_eq!(t(format!("12345{zeros}e-100004")).unwrap(), "1.23");
        assert_eq!(t(format!("0.{zeros}125e100001")).unwrap(), "1.25");
        assert_eq!(
            t(format!("0.{zeros}1e100018")).unwrap(),
            "100000000000000000.00"
        );
        assert_eq!(
            t(format!("0.{zeros}1e100019")).unwrap_err(),
            TOO_MANY_DIGITS
        );
        assert_eq!(t(format!("1{zeros}e-100006")).unwrap(), "0.00");
        assert_eq!(t(format!("6{zeros}e-100003")).unwrap(), "0.01");
        let huge = "9".repeat(40);
        assert_eq!(t(format!("1e{huge}")).unwrap_err(), TOO_MANY_DIGITS);
        assert_eq!(t(format!("1e-{huge}")).unwrap(), "0.00");
        assert_eq!(t(format!("0e{huge}")).unwrap(), "0.00");
        assert_eq!(
            t("1e0000000000000000000000000000000000003".into()).unwrap(),
            "1000.00"
        );
    }

    #[test]
    fn a_report_names_one_to_a_hundred_components() {
        assert_eq!(
            check_component_count(0),
            Err("must name at least one component")
        );
        assert!(check_component_count(1).is_ok());
        assert!(check_component_count(100).is_ok());
        assert_eq!(
            check_component_count(101),
            Err("must name at most 100 components")
        );
    }

    #[test]
    fn limits_are_whole_numbers_however_spelled() {
        assert_eq!(whole_limit(&json!(2000)), Ok(2000));
        assert_eq!(whole_limit(&json!(2000.0)), Ok(2000));
        assert_eq!(whole_limit(&json!(0)), Ok(0));
        assert_eq!(whole_limit(&json!(u64::MAX)), Ok(u64::MAX));
        for bad in [
            json!(-1),
            json!(1.5),
            json!(-0.5),
            json!(1e300),
            json!("5"),
            json!(null),
        ] {
            assert_eq!(
                whole_limit(&bad),
                Err("must be a whole number, not negative"),
                "{bad}"
            );
        }
    }

    /// The text as sent: a fraction however small is not rounded away.
    #[test]
    fn a_limit_with_any_fraction_is_refused_from_its_text() {
        assert_eq!(whole_limit_text("2000.0"), Ok(2000));
        assert_eq!(whole_limit_text("2e3"), Ok(2000));
        assert_eq!(whole_limit_text("-0"), Ok(0));
        assert_eq!(whole_limit_text("18446744073709551615"), Ok(u64::MAX));
        for bad in [
            "1.0000000000000000001",
            "0.99999999999999999999",
            "1e-400",
            "18446744073709551616",
            "-1",
            "\"5\"",
        ] {
            assert_eq!(whole_limit_text(bad), Err(NOT_WHOLE), "{bad}");
        }
    }

    #[test]
    fn component_types_are_plain_identifiers() {
        assert!(ComponentType::parse("cpu_k_hours").is_ok());
        assert!(ComponentType::parse("").is_err());
        assert!(ComponentType::parse("cpu hours").is_err());
        let stored: ComponentType = serde_json::from_str(r#""cpu_k_hours""#).unwrap();
        assert_eq!(serde_json::to_string(&stored).unwrap(), r#""cpu_k_hours""#);
        assert!(serde_json::from_str::<ComponentType>(r#""cpu hours""#).is_err());
        let amount: Amount = serde_json::from_str(r#""12.50""#).unwrap();
        assert_eq!(serde_json::to_string(&amount).unwrap(), r#""12.50""#);
        assert!(serde_json::from_str::<Amount>(r#""-1""#).is_err());
    }
}

#[cfg(test)]
mod month_tests {
    use super::Month;
    use chrono::{TimeZone, Utc};

    #[test]
    fn a_month_has_begun_once_its_first_day_has_begun_anywhere() {
        let december = Month::parse("2026-12").unwrap();
        let noon_29th = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let evening_30th = Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap();
        assert!(!december.has_begun(noon_29th));
        assert!(
            december.has_begun(evening_30th),
            "already 1 December in UTC+14"
        );
        assert!(Month::parse("2026-11").unwrap().has_begun(noon_29th));
        assert!(!Month::parse("2999-12").unwrap().has_begun(evening_30th));
    }
}
