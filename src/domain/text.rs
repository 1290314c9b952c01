//! Text a site sends on to Puhuri: what a person reads must be what is stored. Control
//! characters other than tab and line breaks (NUL, escape sequences...) and invisible formatting
//! characters (bidirectional overrides, zero-width characters, the soft hyphen, the byte-order
//! mark) are refused wherever a site writes text: in every string of a request body, its keys
//! included, and in usernames.

/// An invisible formatting character: Unicode's format controls that change how text is shown
/// or joined without being seen (bidirectional embeddings, overrides and isolates, zero-width
/// characters, the soft hyphen, the byte-order mark, interlinear annotation marks).
pub fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// Whether `c` may stand in text a site writes: not a control character other than tab, line
/// feed and carriage return, and not an invisible formatting character.
pub fn is_allowed_in_text(c: char) -> bool {
    let line_layout = matches!(c, '\t' | '\n' | '\r');
    (line_layout || !c.is_control()) && !is_format(c)
}

/// `Err` with the reason when `text` holds a character [`is_allowed_in_text`] refuses.
pub fn check(text: &str) -> Result<(), &'static str> {
    if text.chars().all(is_allowed_in_text) {
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
    use super::check;

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
}
