//! A resource's report (`submit_report`): what the customer sees about an allocation in
//! Puhuri, as titled sections.
//!
//! **The rules.** 1 to 50 sections (Waldur answers an empty report with 400 "Report object
//! should contain at least one section." and keeps the old one); each a header of 1 to 255
//! characters and a body of 1 to 20,000 characters, neither only whitespace.

use serde::{Deserialize, Serialize};

/// One section: a header and its text. Stored as `{"header": ..., "body": ...}`, Waldur's
/// form; read back through [`ReportSection::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredSection")]
pub struct ReportSection {
    header: String,
    body: String,
}

/// A section as stored, before its rules are checked.
#[derive(Deserialize)]
struct StoredSection {
    header: String,
    body: String,
}

impl ReportSection {
    pub const MAX_HEADER_CHARS: usize = 255;
    pub const MAX_BODY_CHARS: usize = 20_000;

    /// A section when both parts follow the rules; otherwise every part that does not, as
    /// (`"header"` or `"body"`, why).
    pub fn parse(
        header: String,
        body: String,
    ) -> Result<ReportSection, Vec<(&'static str, &'static str)>> {
        let fits = |text: &str, max: usize| !text.trim().is_empty() && text.chars().count() <= max;
        let mut errors = Vec::new();
        if !fits(&header, Self::MAX_HEADER_CHARS) {
            errors.push(("header", "must be 1 to 255 characters, not only spaces"));
        }
        if !fits(&body, Self::MAX_BODY_CHARS) {
            errors.push(("body", "must be 1 to 20000 characters, not only spaces"));
        }
        if errors.is_empty() {
            Ok(ReportSection { header, body })
        } else {
            Err(errors)
        }
    }

    pub fn header(&self) -> &str {
        &self.header
    }

    pub fn body(&self) -> &str {
        &self.body
    }
}

impl TryFrom<StoredSection> for ReportSection {
    type Error = String;
    fn try_from(s: StoredSection) -> Result<Self, String> {
        ReportSection::parse(s.header, s.body).map_err(|errors| {
            let (part, why) = errors[0];
            format!("the section's {part} {why}")
        })
    }
}

/// A whole report: 1 to 50 sections. Stored as the list of its sections; read back through
/// [`Report::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<ReportSection>")]
pub struct Report(Vec<ReportSection>);

impl Report {
    pub const MAX_SECTIONS: usize = 50;

    /// `Err` with the reason when a report of `n` sections is not allowed (checked before the
    /// sections themselves, so every problem of a request is reported at once).
    pub fn check_count(n: usize) -> Result<(), &'static str> {
        if n == 0 {
            Err("must have at least one section")
        } else if n > Self::MAX_SECTIONS {
            Err("must have at most 50 sections")
        } else {
            Ok(())
        }
    }

    pub fn parse(sections: Vec<ReportSection>) -> Result<Report, &'static str> {
        Report::check_count(sections.len())?;
        Ok(Report(sections))
    }

    pub fn sections(&self) -> &[ReportSection] {
        &self.0
    }
}

impl TryFrom<Vec<ReportSection>> for Report {
    type Error = &'static str;
    fn try_from(sections: Vec<ReportSection>) -> Result<Self, Self::Error> {
        Report::parse(sections)
    }
}

impl Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_needs_a_header_and_a_body_within_bounds() {
        let ok = ReportSection::parse("Access".into(), "ssh lumi.csc.fi".into()).unwrap();
        assert_eq!((ok.header(), ok.body()), ("Access", "ssh lumi.csc.fi"));
        assert!(ReportSection::parse("h".repeat(255), "b".repeat(20_000)).is_ok());
        assert_eq!(
            ReportSection::parse("  ".into(), "b".repeat(20_001)).unwrap_err(),
            [
                ("header", "must be 1 to 255 characters, not only spaces"),
                ("body", "must be 1 to 20000 characters, not only spaces"),
            ]
        );
        assert_eq!(
            ReportSection::parse("h".repeat(256), "x".into()).unwrap_err(),
            [("header", "must be 1 to 255 characters, not only spaces")]
        );
        assert_eq!(
            ReportSection::parse("h".into(), "\n\t".into()).unwrap_err(),
            [("body", "must be 1 to 20000 characters, not only spaces")]
        );
    }

    #[test]
    fn a_report_has_one_to_fifty_sections_and_is_stored_as_waldurs_list() {
        assert_eq!(
            Report::check_count(0),
            Err("must have at least one section")
        );
        assert_eq!(
            Report::check_count(51),
            Err("must have at most 50 sections")
        );
        assert!(Report::check_count(50).is_ok());
        let section = ReportSection::parse("Access".into(), "ssh".into()).unwrap();
        let report = Report::parse(vec![section]).unwrap();
        let stored = serde_json::to_string(&report).unwrap();
        assert_eq!(stored, r#"[{"header":"Access","body":"ssh"}]"#);
        assert_eq!(serde_json::from_str::<Report>(&stored).unwrap(), report);
        assert!(serde_json::from_str::<Report>("[]").is_err());
        assert!(serde_json::from_str::<Report>(r#"[{"header":" ","body":"x"}]"#).is_err());
    }
}
