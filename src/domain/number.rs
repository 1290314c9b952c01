//! Numbers read from the text a client sent, never through a float: the digits of a decimal
//! and where its point falls ([`DecimalText`]), for amounts ([`super::usage::Amount`]) and for
//! the whole numbers limits take ([`whole_number`]).
//!
//! The grammar is one for every number: `digits [. digits] [(e|E) [+|-] digits]` with an optional
//! leading `-`, nothing else (no spaces, `+`, `_`, thousands separators, `NaN`, `Infinity`, `.5`
//! or `5.`). JSON's own number grammar (RFC 8259 §6) is inside it, so a JSON number's text is
//! read as written, at any length.
//!
//! Values a site hands on without a rule of their own (an order approval's `attributes`) are
//! held as JSON values, whose numbers are 64-bit integers or doubles: serde_json's
//! `arbitrary_precision` would keep every spelling, but it changes how every number in the
//! crate compares and reads (amounts, limits, the simulator), so it is not used. Such a value
//! instead keeps only numbers that come back as they were written ([`first_changed_number`]):
//! `5`, `-3`, `1.5`, `1000.0` go through; `1e3` (kept as `1000.0`), `-0` (`-0.0`), `1.50`
//! (`1.5`) or `123456789012345678901234567890` (`1.2345678901234568e+29`) are a 422 naming the
//! field and the spelling that would be kept, so what Puhuri receives is what was sent.

/// A decimal as its digits and the place of its point: the value is
/// `0.d₀d₁d₂… × 10^point`, negated when `negative`. The exponent is weighed with the digits it
/// moves (`0.000…1e100001` is 1), never clamped on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecimalText {
    pub negative: bool,
    /// Every digit written, as 0-9, leading and trailing zeros included.
    pub digits: Vec<u8>,
    /// How many of the digits stand before the point (negative or past the end once the
    /// exponent has moved it).
    pub point: i128,
}

impl DecimalText {
    /// The decimal `text` spells, or `None` when it is outside the grammar.
    pub fn parse(text: &str) -> Option<DecimalText> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
            None => (unsigned, None),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int_part.is_empty()
            || !all_digits(int_part)
            || !all_digits(frac_part)
            || (mantissa.contains('.') && frac_part.is_empty())
        {
            return None;
        }
        // The exponent is read whole into an i128, or, past 30 digits, held at ±10^30: no body
        // has that many digits, so the value is then as far below or above any bound as the
        // true exponent would make it.
        let shift: i128 = match exponent {
            None => 0,
            Some(e) => {
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if digits.is_empty() || !all_digits(digits) {
                    return None;
                }
                let significant = digits.trim_start_matches('0');
                let magnitude: i128 = if significant.len() > 30 {
                    10i128.pow(30)
                } else {
                    significant.parse().unwrap_or(0)
                };
                if e.starts_with('-') {
                    -magnitude
                } else {
                    magnitude
                }
            }
        };
        Some(DecimalText {
            negative,
            digits: int_part
                .bytes()
                .chain(frac_part.bytes())
                .map(|b| b - b'0')
                .collect(),
            point: int_part.len() as i128 + shift,
        })
    }

    /// The digit at position `i` (0 is the first written), 0 outside the digits written.
    pub fn digit_at(&self, i: i128) -> u8 {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.digits.get(i).copied())
            .unwrap_or(0)
    }

    /// The position of the first digit that is not 0; `None` when the value is zero.
    pub fn first_nonzero(&self) -> Option<usize> {
        self.digits.iter().position(|&d| d != 0)
    }

    /// How many digits the value has before its point once leading zeros are dropped (0 for a
    /// value below 1).
    pub fn integer_digits(&self) -> i128 {
        self.first_nonzero()
            .map_or(0, |first| (self.point - first as i128).max(0))
    }
}

/// Why a number is not a whole number a limit can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotWhole {
    /// Not a number in the grammar (a string, `true`, `1_000`...).
    NotANumber,
    /// A number with a fraction (`1.5`, `1.0000000000000000001`, `1e-400`).
    Fraction,
    /// A whole number of more than 38 digits, beyond any bound a limit has.
    TooLarge { negative: bool },
}

/// The whole number `text` spells exactly: `2000`, `2000.0`, `2e3` and `-0` are whole (2000,
/// 2000, 2000, 0); any nonzero digit after the point is a [`NotWhole::Fraction`], however far
/// (JSON Schema's `integer` counts the value, not its spelling).
pub fn whole_number(text: &str) -> Result<i128, NotWhole> {
    let number = DecimalText::parse(text).ok_or(NotWhole::NotANumber)?;
    let Some(first) = number.first_nonzero() else {
        return Ok(0);
    };
    let last = number.digits.iter().rposition(|&d| d != 0).unwrap_or(first);
    if last as i128 >= number.point {
        return Err(NotWhole::Fraction);
    }
    if number.integer_digits() > 38 {
        return Err(NotWhole::TooLarge {
            negative: number.negative,
        });
    }
    let mut value: i128 = 0;
    for i in first as i128..number.point {
        value = value * 10 + i128::from(number.digit_at(i));
    }
    Ok(if number.negative { -value } else { value })
}

/// The first number in the JSON text `raw` (a value, at path `at`) that a JSON value would not
/// keep as written: its path (`attributes.sizes[2]`) and the spelling it would have become.
/// `raw` must be well-formed JSON (a body already read); anything else is `None`.
pub fn first_changed_number(at: &str, raw: &str) -> Option<(String, String)> {
    use serde_json::value::RawValue;
    let text = raw.trim_start();
    match text.as_bytes().first()? {
        b'{' => {
            let map: std::collections::BTreeMap<String, Box<RawValue>> =
                serde_json::from_str(text).ok()?;
            map.iter().find_map(|(key, value)| {
                let field = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                first_changed_number(&field, value.get())
            })
        }
        b'[' => {
            let items: Vec<Box<RawValue>> = serde_json::from_str(text).ok()?;
            items
                .iter()
                .enumerate()
                .find_map(|(i, item)| first_changed_number(&format!("{at}[{i}]"), item.get()))
        }
        b'-' | b'0'..=b'9' => {
            let kept = serde_json::from_str::<serde_json::Value>(text)
                .ok()?
                .to_string();
            (kept != text.trim_end()).then(|| (at.to_string(), kept))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_number_is_read_exactly_however_spelled() {
        for (text, value) in [
            ("2000", 2000),
            ("2000.0", 2000),
            ("2e3", 2000),
            ("1e3", 1000),
            ("1E+3", 1000),
            ("20000e-1", 2000),
            ("0", 0),
            ("-0", 0),
            ("-0.0", 0),
            ("0e999999999999999999999999999999999999999", 0),
            ("-7", -7),
            ("18446744073709551615", 18_446_744_073_709_551_615),
            (
                "123456789012345678901234567890",
                123_456_789_012_345_678_901_234_567_890,
            ),
        ] {
            assert_eq!(whole_number(text), Ok(value), "{text}");
        }
        for text in [
            "1.0000000000000000001",
            "0.99999999999999999999",
            "1e-400",
            "1.5",
            "-0.5",
            "15e-1",
        ] {
            assert_eq!(whole_number(text), Err(NotWhole::Fraction), "{text}");
        }
        assert_eq!(
            whole_number("1e300"),
            Err(NotWhole::TooLarge { negative: false })
        );
        assert_eq!(
            whole_number("-1e39"),
            Err(NotWhole::TooLarge { negative: true })
        );
        for text in [
            "\"5\"", "true", "null", "1_000", "+1", ".5", "5.", "1e", "NaN", "",
        ] {
            assert_eq!(whole_number(text), Err(NotWhole::NotANumber), "{text}");
        }
    }

    #[test]
    fn a_number_a_json_value_would_change_is_found_with_its_path() {
        let found = |raw: &str| first_changed_number("attributes", raw);
        assert_eq!(
            found(
                r#"{"a": 5, "b": -3, "c": 1.5, "d": 1000.0, "e": [0, 0.1, "1e3"], "f": {"g": null}}"#
            ),
            None
        );
        for (raw, field, kept) in [
            (
                r#"{"big": 123456789012345678901234567890}"#,
                "attributes.big",
                "1.2345678901234568e+29",
            ),
            (r#"{"x": 1e3}"#, "attributes.x", "1000.0"),
            (r#"{"neg0": -0}"#, "attributes.neg0", "-0.0"),
            (
                r#"{"a": 1, "n": {"list": [1, 1.50]}}"#,
                "attributes.n.list[1]",
                "1.5",
            ),
        ] {
            assert_eq!(
                found(raw),
                Some((field.to_string(), kept.to_string())),
                "{raw}"
            );
        }
    }
}
