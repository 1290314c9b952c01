//! Text a site sends on to Puhuri: what a person reads must be what is stored. Control
//! characters other than tab and line breaks (NUL, escape sequences...) and invisible formatting
//! characters (bidirectional overrides, zero-width characters, the soft hyphen, the byte-order
//! mark, the tag characters that can hide text, noncharacters) are refused wherever a site writes text: in every string of a request body, its keys
//! included, and in usernames. Texts Puhuri keeps within a length are [`Bounded`] (and a
//! [`Traceback`], bounded in bytes).

use serde::{Deserialize, Serialize};

/// Text a site writes that Puhuri keeps within a length: `MIN` to `MAX` characters (Unicode
/// scalar values). The characters themselves were checked with the request body ([`check`]).
///
/// Serialized as the text itself (what a job stored before the type existed); read back through
/// [`Bounded::parse`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Bounded<const MIN: usize, const MAX: usize>(String);

/// An order's rejection comment (`provider_rejection_comment`), a resource's error message
/// (`set_as_erred`): at most 2,000 characters.
pub type Comment = Bounded<0, 2000>;
/// Why a site failed an order (`set_state_erred`'s `error_message`): 1 to 2,000 characters.
pub type ErrorMessage = Bounded<1, 2000>;
/// A usage report's note (`set_usage`'s `description`): at most 1,000 characters.
pub type Description = Bounded<0, 1000>;

impl<const MIN: usize, const MAX: usize> Bounded<MIN, MAX> {
    /// `text` when it is `MIN` to `MAX` characters long; otherwise `Err` saying the bounds
    /// ("must be at most 2000 characters", "must be 1 to 2000 characters").
    pub fn parse(text: String) -> Result<Self, String> {
        let n = text.chars().count();
        if n < MIN || n > MAX {
            return Err(if MIN == 0 {
                format!("must be at most {MAX} characters")
            } else {
                format!("must be {MIN} to {MAX} characters")
            });
        }
        Ok(Bounded(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MIN: usize, const MAX: usize> std::fmt::Display for Bounded<MIN, MAX> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const MIN: usize, const MAX: usize> TryFrom<String> for Bounded<MIN, MAX> {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Bounded::parse(text)
    }
}

impl<const MIN: usize, const MAX: usize> Serialize for Bounded<MIN, MAX> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// The details of why a site failed an order (`set_state_erred`'s `error_traceback`): at most
/// 64 KiB of UTF-8; empty when the site gave none (Waldur reads the key in any case).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Traceback(String);

impl Traceback {
    pub const MAX_BYTES: usize = 65_536;

    pub fn parse(text: String) -> Result<Traceback, &'static str> {
        if text.len() > Self::MAX_BYTES {
            return Err("must be at most 65536 bytes");
        }
        Ok(Traceback(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Traceback {
    type Error = &'static str;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Traceback::parse(text)
    }
}

impl Serialize for Traceback {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// An invisible formatting character: Unicode's format controls (general category Cf) that
/// change how text is shown or joined without being seen (bidirectional embeddings, overrides
/// and isolates, zero-width characters, the soft hyphen, the byte-order mark, interlinear
/// annotation marks, the Arabic, Syriac, Kaithi, Egyptian, shorthand and musical format
/// controls), the combining grapheme joiner (U+034F, default-ignorable: shown as nothing), the
/// Hangul fillers (U+115F, U+1160, U+3164, U+FFA0: letters drawn as blank space), the whole tag
/// block (U+E0000-U+E007F: invisible copies of ASCII that can carry hidden text, "ASCII
/// smuggling"), and the noncharacters (U+FDD0-U+FDEF and the last two code points of every plane,
/// U+FFFE, U+FFFF...; Unicode reserves them for a program's internal use, never for
/// interchange). Variation selectors (U+FE00-U+FE0F, U+E0100-U+E01EF) stay allowed: text uses
/// them to choose a glyph (U+FE0F asks for an emoji's colour form, U+E0100... an ideograph's).
pub fn is_format(c: char) -> bool {
    let noncharacter = matches!(c, '\u{FDD0}'..='\u{FDEF}') || (c as u32) & 0xFFFE == 0xFFFE;
    noncharacter
        || matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}'
        | '\u{0890}'..='\u{0891}' | '\u{08E2}' | '\u{115F}'..='\u{1160}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{110BD}' | '\u{110CD}' | '\u{13430}'..='\u{1343F}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E007F}')
}

/// Whether `c` may stand in text a site writes: not a control character other than tab, line
/// feed and carriage return, and not an invisible formatting character.
pub fn is_allowed_in_text(c: char) -> bool {
    let line_layout = matches!(c, '\t' | '\n' | '\r');
    (line_layout || !c.is_control()) && !is_format(c)
}

/// `Err` with the reason when `text` holds a character [`is_allowed_in_text`] refuses.
pub fn check(text: &str) -> Result<(), &'static str> {
    // Printable ASCII (most text a site sends) needs no decoding to be allowed.
    let printable_ascii = text.bytes().all(|b| matches!(b, b' '..=b'~'));
    if printable_ascii || text.chars().all(is_allowed_in_text) {
        Ok(())
    } else {
        Err(
            "must not contain control characters (other than tab and line breaks) or invisible \
             formatting characters (bidirectional overrides, zero-width characters)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_text_counts_characters_and_names_its_bounds() {
        assert!(Comment::parse(String::new()).is_ok());
        assert!(Comment::parse("ä".repeat(2000)).is_ok());
        assert_eq!(
            Comment::parse("x".repeat(2001)).unwrap_err(),
            "must be at most 2000 characters"
        );
        assert_eq!(
            ErrorMessage::parse(String::new()).unwrap_err(),
            "must be 1 to 2000 characters"
        );
        assert!(ErrorMessage::parse("No quota".into()).is_ok());
        assert_eq!(
            Description::parse("x".repeat(1001)).unwrap_err(),
            "must be at most 1000 characters"
        );
        let stored = serde_json::to_string(&ErrorMessage::parse("boom".into()).unwrap()).unwrap();
        assert_eq!(stored, r#""boom""#);
        assert!(serde_json::from_str::<ErrorMessage>(r#""""#).is_err());
    }

    #[test]
    fn a_traceback_is_bounded_in_bytes() {
        assert!(Traceback::parse("x".repeat(65_536)).is_ok());
        // 2 bytes a character: 32,769 characters are over
        assert_eq!(
            Traceback::parse("ä".repeat(32_769)).unwrap_err(),
            "must be at most 65536 bytes"
        );
    }

    #[test]
    fn what_is_read_is_what_is_stored() {
        assert!(check("LUMI accounting\n\tline two\r\n").is_ok());
        assert!(check("Grüße, 東京, ☃").is_ok());
        for bad in [
            "a\u{0}b",
            "\u{1b}[31mred",
            "admin\u{202e}txt.exe",
            "a\u{200b}b",
            "\u{feff}x",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }

    /// Characters shown as nothing that can hide text: the tag block (an invisible copy of
    /// ASCII), noncharacters and the combining grapheme joiner.
    #[test]
    fn tags_noncharacters_and_the_grapheme_joiner_are_refused() {
        let hidden: String = "ignore this"
            .chars()
            .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
            .collect();
        for bad in [
            format!("ok{hidden}"),
            "\u{E0000}".into(),
            "\u{E0001}".into(),
            "\u{E007F}".into(),
            "a\u{FFFE}".into(),
            "a\u{FFFF}".into(),
            "\u{FDD0}".into(),
            "\u{FDEF}".into(),
            "\u{1FFFE}".into(),
            "\u{10FFFF}".into(),
            "a\u{034F}b".into(),
            // other format controls, and fillers drawn as blanks
            "\u{0600}1".into(),
            "a\u{070F}".into(),
            "\u{1D173}".into(),
            "\u{1BCA0}".into(),
            "\u{13430}".into(),
            "\u{110BD}".into(),
            "\u{3164}".into(),
            "\u{115F}".into(),
            "\u{FFA0}".into(),
        ] {
            assert!(check(&bad).is_err(), "{bad:?}");
        }
        // Glyph choice by a standard variation selector is text (an emoji's colour form).
        assert!(check("\u{2764}\u{FE0F}").is_ok());
        // Their neighbours are ordinary text.
        for ok in [
            "\u{034E}",
            "\u{FDCF}",
            "\u{FDF0}",
            "\u{FFFD}",
            "\u{E0100}",
            "\u{1FFFD}",
        ] {
            assert!(check(ok).is_ok(), "{ok:?}");
        }
    }
}
