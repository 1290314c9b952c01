//! How the gateway reads the fields of Waldur's objects that only its reads show: a field Waldur
//! leaves out or sends with another type reads as absent (`None`, an empty object or list), never
//! as a malformed answer. A read shows what Puhuri holds; the fields its decisions depend on are
//! read strictly by the objects themselves (a missing `uuid` is a malformed answer).
//!
//! Use each with `#[serde(default, deserialize_with = "...")]`, so a missing field takes the
//! same value as one of another type.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Text: a string, or a number written out (`12` → `"12"`); anything else is `None`.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// Text as [`text`] reads it, empty when absent: for the identifying fields of a view.
pub fn text_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    text(d).map(Option::unwrap_or_default)
}

/// A JSON object; anything else is an empty one.
pub fn object<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(m) => m,
        _ => Map::new(),
    })
}

/// `true` or `false`; anything else is `None`.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(Value::deserialize(d)?.as_bool())
}

/// A list of `T`; not a list is an empty one, and an item that is not a `T` reads as
/// `T::default()` (whose fields are lenient themselves), so the list keeps its length.
pub fn items<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items
            .into_iter()
            .map(|item| T::deserialize(item).unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    })
}

/// A `T` read as a whole, or `T::default()` when the value is not one.
pub fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(T::deserialize(Value::deserialize(d)?).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, Default, Debug, PartialEq)]
    struct Item {
        #[serde(default, deserialize_with = "super::text")]
        name: Option<String>,
    }

    #[derive(Deserialize, Debug)]
    struct Object {
        #[serde(default, deserialize_with = "super::text")]
        a: Option<String>,
        #[serde(default, deserialize_with = "super::text_or_empty")]
        b: String,
        #[serde(default, deserialize_with = "super::object")]
        c: serde_json::Map<String, serde_json::Value>,
        #[serde(default, deserialize_with = "super::flag")]
        d: Option<bool>,
        #[serde(default, deserialize_with = "super::items")]
        e: Vec<Item>,
    }

    #[test]
    fn missing_and_mistyped_fields_read_as_absent() {
        let o: Object = serde_json::from_value(json!({
            "a": 12, "b": null, "c": [1], "d": "yes", "e": [{"name": "x"}, 3, {"name": {}}]
        }))
        .unwrap();
        assert_eq!(o.a.as_deref(), Some("12"));
        assert_eq!(o.b, "");
        assert!(o.c.is_empty());
        assert_eq!(o.d, None);
        assert_eq!(
            o.e,
            vec![
                Item {
                    name: Some("x".into())
                },
                Item::default(),
                Item::default()
            ]
        );
        let empty: Object = serde_json::from_value(json!({})).unwrap();
        assert_eq!((empty.a, empty.b.as_str(), empty.e.len()), (None, "", 0));
    }
}
