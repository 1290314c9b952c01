//! What an allocator may ask of an offering: the rules for a resource's options (order
//! `attributes` at creation, `update_options` later) and for its limits, checked before anything
//! is queued so a wrong value is a 422 naming it, never a failure hours later.
//!
//! Where the rules come from:
//! - options: the offering's published `options` (Waldur's `Offering.options`, the form
//!   `{"order": [...], "options": {"<name>": {"type": "...", "required": bool, "choices": [...]}}}`
//!   that Waldur's marketplace builds its order form from). An offering that publishes none
//!   falls back to LUMI's agreed table ([`OptionRules::lumi`], from the Puhuri "Resource
//!   allocation management" guide and `upstream/LUMI.md`): `is_industry`, `is_training`,
//!   `is_commercial` (booleans) and `used_ai_tech` (a list of the exact choices below).
//! - limits: the offering's components ([`LimitRules`]): a limit may be given only for a component
//!   whose `billing_type` is `limit` (Waldur keeps limits for those only), as a non-negative
//!   whole number. Waldur 8.0.5 reads each limit with an integer field ("A valid integer is
//!   required."), so a limit is read from the number's text exactly ([`whole_limits`]) and sent
//!   as an integer: `2000.0` and `2e3` are 2000, and a fraction however small
//!   (`1.0000000000000000001`, `1e-400`) is refused rather than rounded.
//!
//! `name` and `description` are always allowed in creation attributes: Waldur reads them as the
//! new resource's name and description, whatever the offering publishes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod limits;
pub use limits::{LIMIT_MAX, LimitRules, Limits, whole_limits};

/// LUMI's `used_ai_tech` choices, exactly as spelled in the guide.
pub const LUMI_AI_TECH_CHOICES: &[&str] = &[
    "Audio (speech recognition/speech synthesis/etc)",
    "Decision management: Classified and statistical learning methods",
    "Deep Learning",
    "Generative Language Modeling",
    "Machine Learning",
    "Natural Language Processing",
    "Other",
    "Robotic process automation",
    "Virtual agents",
    "Vision (image recognition/image generation/text recognition OCR/etc)",
];

/// Attributes every creation may carry, whatever the offering's options.
pub const STANDARD_ATTRIBUTES: &[&str] = &["name", "description"];

/// The longest resource name (characters), as on a rename.
pub const NAME_MAX_CHARS: usize = 150;

/// The longest resource description (characters), as on a re-description.
pub const DESCRIPTION_MAX_CHARS: usize = 4096;

/// A resource's name as an allocator sets it (a rename, and creation `attributes.name`): 1 to
/// [`NAME_MAX_CHARS`] characters, not only blanks (the characters themselves were checked with
/// the request body, [`super::text::check`]).
///
/// Serialized as the text (what a job stored before the type existed); read back through
/// [`ResourceName::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ResourceName(String);

impl ResourceName {
    /// `text` when it is a name; otherwise `Err` with the rule.
    pub fn parse(text: String) -> Result<ResourceName, &'static str> {
        if text.trim().is_empty() || text.chars().count() > NAME_MAX_CHARS {
            return Err("must be 1-150 characters");
        }
        Ok(ResourceName(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A resource's description as an allocator sets it: at most [`DESCRIPTION_MAX_CHARS`]
/// characters. Serialized as the text; read back through [`ResourceDescription::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ResourceDescription(String);

impl ResourceDescription {
    /// `text` when it is a description; otherwise `Err` with the rule.
    pub fn parse(text: String) -> Result<ResourceDescription, &'static str> {
        if text.chars().count() > DESCRIPTION_MAX_CHARS {
            return Err("at most 4,096 characters");
        }
        Ok(ResourceDescription(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! text_value {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = &'static str;
            fn try_from(text: String) -> Result<Self, Self::Error> {
                <$t>::parse(text)
            }
        }

        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

text_value!(ResourceName);
text_value!(ResourceDescription);

/// Checks a resource name (`field` names it): [`ResourceName`]'s rule.
pub fn check_name(field: &str, name: &str) -> Option<RuleViolation> {
    let refused = ResourceName::parse(name.to_owned()).err()?;
    Some(RuleViolation::new(field.to_string(), refused))
}

/// Checks a resource description (`field` names it): [`ResourceDescription`]'s rule.
pub fn check_description(field: &str, description: &str) -> Option<RuleViolation> {
    let refused = ResourceDescription::parse(description.to_owned()).err()?;
    Some(RuleViolation::new(field.to_string(), refused))
}

/// Checks creation `attributes`' `name` (required, as a rename's) and `description` (as a
/// re-description's), so that a creation takes no name a later rename would refuse.
pub fn check_standard_attributes(at: &str, attributes: &Map<String, Value>) -> Vec<RuleViolation> {
    let mut out = vec![];
    match attributes.get("name") {
        None => out.push(RuleViolation::new(
            format!("{at}.name"),
            "is required (1-150 characters)",
        )),
        Some(Value::String(n)) => out.extend(check_name(&format!("{at}.name"), n)),
        Some(_) => {} // "must be a string", from check_attributes
    }
    if let Some(Value::String(d)) = attributes.get("description") {
        out.extend(check_description(&format!("{at}.description"), d));
    }
    out
}

/// One value that breaks a rule: `field` is a JSON path into the request
/// (`attributes.used_ai_tech[1]`, `limits.cpu_k_hours`), `message` says which rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleViolation {
    pub field: String,
    pub message: String,
}

impl RuleViolation {
    fn new(field: String, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// The kind of value an option takes (Waldur's option `type`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionKind {
    /// `boolean`: `true` or `false`.
    Boolean,
    /// `string`, `text`, `html_text`: any string.
    Text,
    /// `integer`: a whole number.
    Integer,
    /// `money`: a number.
    Number,
    /// `select_string`: one of the choices.
    Choice(Vec<String>),
    /// `select_string_multi`: a list, each item one of the choices.
    MultiChoice(Vec<String>),
    /// Any other type Waldur knows (`date`, `component_multiplier`, ...): not checked here.
    Unchecked,
}

/// One option an offering publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionRule {
    pub name: String,
    pub kind: OptionKind,
    /// Whether an order must give it (creation only; `update_options` may give a subset).
    pub required: bool,
}

/// The options an offering accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionRules {
    pub rules: Vec<OptionRule>,
}

impl OptionRules {
    /// LUMI's agreed options (the built-in case for offerings that publish none).
    pub fn lumi() -> OptionRules {
        let boolean = |name: &str| OptionRule {
            name: name.into(),
            kind: OptionKind::Boolean,
            required: false,
        };
        OptionRules {
            rules: vec![
                boolean("is_industry"),
                boolean("is_training"),
                boolean("is_commercial"),
                OptionRule {
                    name: "used_ai_tech".into(),
                    kind: OptionKind::MultiChoice(
                        LUMI_AI_TECH_CHOICES.iter().map(|s| s.to_string()).collect(),
                    ),
                    required: false,
                },
            ],
        }
    }

    /// The rules an offering publishes in its `options` (`{"options": {...}}`), or `None` when it
    /// publishes none (absent, `{}`, or an empty `options` map).
    pub fn from_offering(options: &Value) -> Option<OptionRules> {
        let published = options.get("options")?.as_object()?;
        if published.is_empty() {
            return None;
        }
        let choices = |spec: &Value| -> Vec<String> {
            (spec.get("choices").and_then(Value::as_array).into_iter())
                .flatten()
                .filter_map(|c| match c {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(m) => m.get("value").and_then(Value::as_str).map(String::from),
                    _ => None,
                })
                .collect()
        };
        let rules = published
            .iter()
            .map(|(name, spec)| OptionRule {
                name: name.clone(),
                kind: match spec.get("type").and_then(Value::as_str).unwrap_or("") {
                    "boolean" => OptionKind::Boolean,
                    "string" | "text" | "html_text" => OptionKind::Text,
                    "integer" => OptionKind::Integer,
                    "money" => OptionKind::Number,
                    "select_string" => OptionKind::Choice(choices(spec)),
                    "select_string_multi" => OptionKind::MultiChoice(choices(spec)),
                    _ => OptionKind::Unchecked,
                },
                required: spec
                    .get("required")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
            .collect();
        Some(OptionRules { rules })
    }

    /// The offering's published rules, else LUMI's.
    pub fn for_offering(options: &Value) -> OptionRules {
        Self::from_offering(options).unwrap_or_else(Self::lumi)
    }

    /// Checks creation `attributes` (`at` is the field path, e.g. `attributes`): the standard
    /// attributes and the options, each of its kind, required ones present.
    pub fn check_attributes(
        &self,
        at: &str,
        attributes: &Map<String, Value>,
    ) -> Vec<RuleViolation> {
        let mut out = vec![];
        for (name, value) in attributes {
            if STANDARD_ATTRIBUTES.contains(&name.as_str()) {
                if !value.is_string() {
                    out.push(RuleViolation::new(
                        format!("{at}.{name}"),
                        "must be a string",
                    ));
                }
                continue;
            }
            self.check_one(at, name, value, &mut out);
        }
        for rule in self.rules.iter().filter(|r| r.required) {
            if !attributes.contains_key(&rule.name) {
                out.push(RuleViolation::new(
                    format!("{at}.{}", rule.name),
                    "is required by the offering",
                ));
            }
        }
        out
    }

    /// Checks an `update_options` body's `options` (`at` is the field path, e.g. `options`):
    /// every name must be an option of the offering, each value of its kind.
    pub fn check_options(&self, at: &str, options: &Map<String, Value>) -> Vec<RuleViolation> {
        let mut out = vec![];
        for (name, value) in options {
            self.check_one(at, name, value, &mut out);
        }
        out
    }

    fn check_one(&self, at: &str, name: &str, value: &Value, out: &mut Vec<RuleViolation>) {
        let field = format!("{at}.{name}");
        let Some(rule) = self.rules.iter().find(|r| r.name == name) else {
            out.push(RuleViolation::new(
                field,
                "is not an option of this offering",
            ));
            return;
        };
        match &rule.kind {
            OptionKind::Boolean if !value.is_boolean() => {
                out.push(RuleViolation::new(field, "must be true or false"))
            }
            OptionKind::Text if !value.is_string() => {
                out.push(RuleViolation::new(field, "must be a string"))
            }
            OptionKind::Integer if !(value.is_i64() || value.is_u64()) => {
                out.push(RuleViolation::new(field, "must be a whole number"))
            }
            OptionKind::Number if !value.is_number() => {
                out.push(RuleViolation::new(field, "must be a number"))
            }
            OptionKind::Choice(choices) => match value.as_str() {
                Some(s) if choices.iter().any(|c| c == s) => {}
                _ => out.push(RuleViolation::new(
                    field,
                    format!("must be one of: {}", choices.join("; ")),
                )),
            },
            OptionKind::MultiChoice(choices) => match value.as_array() {
                None => out.push(RuleViolation::new(
                    field,
                    "must be a list of the offering's choices",
                )),
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if !item
                            .as_str()
                            .is_some_and(|s| choices.iter().any(|c| c == s))
                        {
                            out.push(RuleViolation::new(
                                format!("{field}[{i}]"),
                                format!("must be one of: {}", choices.join("; ")),
                            ));
                        }
                    }
                }
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A JSON object literal as a map (shared with the limits' tests).
    pub(super) fn obj(v: Value) -> Map<String, Value> {
        v.as_object().expect("an object").clone()
    }

    /// The fields the violations name, in order (shared with the limits' tests).
    pub(super) fn fields(v: Vec<RuleViolation>) -> Vec<String> {
        v.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_name_is_1_to_150_characters_not_only_blanks_and_a_description_at_most_4096() {
        assert!(ResourceName::parse("Climate 2027".into()).is_ok());
        assert!(ResourceName::parse("é".repeat(150)).is_ok());
        for bad in ["", "   ", &"a".repeat(151)] {
            assert_eq!(
                ResourceName::parse(bad.to_string()),
                Err("must be 1-150 characters")
            );
        }
        assert!(ResourceDescription::parse(String::new()).is_ok());
        assert!(ResourceDescription::parse("é".repeat(4096)).is_ok());
        assert_eq!(
            ResourceDescription::parse("a".repeat(4097)),
            Err("at most 4,096 characters")
        );
        // stored as the text, read back through the rule
        let name = ResourceName::parse("n".into()).unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), r#""n""#);
        assert!(serde_json::from_str::<ResourceName>(r#"" ""#).is_err());
    }

    #[test]
    fn lumi_accepts_its_options_and_the_standard_attributes() {
        let attrs = obj(json!({
            "name": "Climate 2027", "description": "x",
            "is_industry": false, "is_training": true, "is_commercial": false,
            "used_ai_tech": ["Deep Learning", "Other"]
        }));
        assert!(
            OptionRules::lumi()
                .check_attributes("attributes", &attrs)
                .is_empty()
        );
    }

    #[test]
    fn lumi_booleans_must_be_booleans() {
        for name in ["is_industry", "is_training", "is_commercial"] {
            let v = OptionRules::lumi().check_options("options", &obj(json!({ name: "yes" })));
            assert_eq!(fields(v), [format!("options.{name}")]);
        }
    }

    #[test]
    fn used_ai_tech_takes_only_the_exact_choices_as_a_list() {
        let rules = OptionRules::lumi();
        let v = rules.check_options(
            "options",
            &obj(json!({"used_ai_tech": ["Deep Learning", "deep learning"]})),
        );
        assert_eq!(fields(v), ["options.used_ai_tech[1]"]);
        let v = rules.check_options("options", &obj(json!({"used_ai_tech": "Deep Learning"})));
        assert_eq!(fields(v), ["options.used_ai_tech"]);
    }

    #[test]
    fn unknown_option_names_are_refused() {
        let v =
            OptionRules::lumi().check_attributes("attributes", &obj(json!({"is_academic": true})));
        assert_eq!(fields(v), ["attributes.is_academic"]);
        assert!(v_message_contains(
            OptionRules::lumi().check_options("options", &obj(json!({"name": "x"}))),
            "not an option"
        ));
    }

    fn v_message_contains(v: Vec<RuleViolation>, s: &str) -> bool {
        v.iter().any(|v| v.message.contains(s))
    }

    #[test]
    fn published_options_replace_lumis_table() {
        let published = json!({"order": ["size"], "options": {
            "size": {"type": "select_string", "choices": ["S", "M"], "required": true},
            "count": {"type": "integer"}
        }});
        let rules = OptionRules::for_offering(&published);
        assert!(
            rules
                .check_attributes("a", &obj(json!({"size": "S", "count": 2})))
                .is_empty()
        );
        assert_eq!(
            fields(rules.check_attributes("a", &obj(json!({"count": 2.5})))),
            ["a.count", "a.size"]
        );
        assert_eq!(
            fields(rules.check_attributes("a", &obj(json!({"size": "L", "is_industry": true})))),
            ["a.is_industry", "a.size"]
        );
        assert_eq!(
            OptionRules::for_offering(&json!({"options": {}})),
            OptionRules::lumi()
        );
        assert_eq!(OptionRules::for_offering(&json!({})), OptionRules::lumi());
    }

    #[test]
    fn a_creation_needs_a_name_a_rename_would_take() {
        let long = "x".repeat(151);
        for (attrs, field) in [
            (json!({}), "a.name"),
            (json!({"name": ""}), "a.name"),
            (json!({"name": "  "}), "a.name"),
            (json!({"name": long}), "a.name"),
            (
                json!({"name": "ok", "description": "d".repeat(4097)}),
                "a.description",
            ),
        ] {
            assert_eq!(fields(check_standard_attributes("a", &obj(attrs))), [field]);
        }
        let ok = obj(json!({"name": "x".repeat(150), "description": "d".repeat(4096)}));
        assert!(check_standard_attributes("a", &ok).is_empty());
    }
}
