//! Request bodies, read to the letter: a JSON object sent as `application/json`, in a content
//! coding the gateway decodes, no larger than `limits.max_body_bytes`, with only the fields the
//! operation documents.
//!
//! | what is wrong                                                | answer                         |
//! |--------------------------------------------------------------|--------------------------------|
//! | no `Content-Type`, or not `application/json` (a `charset` other than UTF-8 too, RFC 8259 §8.1) | 415 `unsupported_media_type` |
//! | larger than `limits.max_body_bytes` (after decoding)          | 413 `payload_too_large`        |
//! | not JSON; an array, string, number or `null` where an object is documented, at the top or inside (serde's derived structs would also take an array); an unknown field (named) | 400 `invalid_json` |
//!
//! The content coding and the message framing are checked before any route runs
//! ([`super::middleware`]). Values inside a well-formed body (amounts, months, usernames...) are
//! the domain's business and answer 422 with each field named.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use serde::de::{DeserializeOwned, Error as _, Unexpected};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::error::ApiError;

/// The configured body limit in bytes (`limits.max_body_bytes`), kept as app data so that the
/// 413 answer can state it.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// A required JSON-object body, deserialized as `T` (whose structs deny unknown fields).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T> JsonBody<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonBody<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let media_type = json_media_type(req);
        let bytes = body_bytes(req, payload);
        Box::pin(async move {
            media_type?;
            let bytes = bytes.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Err(ApiError::InvalidJson(
                    "the body is empty; send a JSON object".into(),
                ));
            }
            parse_object(&bytes).map(JsonBody)
        })
    }
}

/// An optional JSON-object body: none (or only whitespace) is `T::default()`; a body that is
/// there follows every rule of [`JsonBody`]. Used where the documented body is optional
/// (approve, reject), so a client may send nothing at all.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let media_type = json_media_type(req);
        let bytes = body_bytes(req, payload);
        Box::pin(async move {
            let bytes = bytes.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJsonBody(T::default()));
            }
            media_type.map_err(|_| {
                ApiError::UnsupportedMediaType(
                    "send the body with `Content-Type: application/json`, or send no body".into(),
                )
            })?;
            parse_object(&bytes).map(OptionalJsonBody)
        })
    }
}

/// The body of an operation that takes none (`done`, `retry`, `cancel`): empty, or only
/// whitespace, whatever its content type; anything else is a 400 `invalid_json`, rather than a
/// body silently ignored.
#[derive(Debug)]
pub struct NoBody;

impl FromRequest for NoBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = body_bytes(req, payload);
        Box::pin(async move {
            if bytes.await?.iter().all(u8::is_ascii_whitespace) {
                Ok(NoBody)
            } else {
                Err(ApiError::InvalidJson(
                    "this operation takes no body; send none".into(),
                ))
            }
        })
    }
}

/// A JSON object inside a body, read as `T`: an array (or any other value) in its place is an
/// error, where serde's derived `Deserialize` for a struct would also take an array.
#[derive(Clone, Debug)]
pub struct Object<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <Box<RawValue>>::deserialize(deserializer)?;
        let text = raw.get().trim_start();
        if !text.starts_with('{') {
            return Err(D::Error::invalid_type(unexpected(text), &"a JSON object"));
        }
        serde_json::from_str(text)
            .map(Object)
            .map_err(|e| D::Error::custom(without_position(&e)))
    }
}

/// A JSON object of free-form values from its text (`raw`, already read as an object by
/// [`Object`]), if every number in it is kept as written: one a JSON value would change (`1e3`
/// becomes `1000.0`, `-0` becomes `-0.0`, `1.50` becomes `1.5`, a 30-digit integer a double) is a
/// 422 naming its path under `field` (`attributes.deep.list[1]`) and the spelling it would become,
/// so what reaches Puhuri is exactly what the client wrote (issue 11; the rule is
/// [`first_changed_number`](crate::domain::number::first_changed_number)).
pub fn exact_object(
    field: &str,
    raw: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    if let Some((at, kept)) = crate::domain::number::first_changed_number(field, raw) {
        return Err(ApiError::field(
            at,
            format!(
                "must be a number kept as written: it would be sent as {kept}; write it so, or \
                 send the value as a string"
            ),
        ));
    }
    serde_json::from_str(raw).map_err(|e| ApiError::InvalidJson(super::describe_serde_error(&e)))
}

/// `Ok` when the request says its body is `application/json` (with no charset, or UTF-8).
fn json_media_type(req: &HttpRequest) -> Result<(), ApiError> {
    let value = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut parts = value.split(';').map(str::trim);
    let essence_ok = parts
        .next()
        .is_some_and(|m| m.eq_ignore_ascii_case("application/json"));
    let params_ok = parts.all(|p| {
        let (name, val) = p.split_once('=').unwrap_or((p, ""));
        name.trim().eq_ignore_ascii_case("charset")
            && val.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
    });
    if essence_ok && params_ok {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            "send the body with `Content-Type: application/json`".into(),
        ))
    }
}

/// The body's bytes, decoded, within the configured limit (413 past it).
fn body_bytes(
    req: &HttpRequest,
    payload: &mut Payload,
) -> impl Future<Output = Result<web::Bytes, ApiError>> + 'static {
    let bytes = web::Bytes::from_request(req, payload);
    let limit = body_limit(req);
    async move { bytes.await.map_err(|e| unreadable(&e, limit)) }
}

fn body_limit(req: &HttpRequest) -> usize {
    req.app_data::<BodyLimit>()
        .map(|l| l.0)
        // `configure` always sets it; actix's own default limit is the fallback's size.
        .unwrap_or(256 * 1024)
}

/// The payload could not be read: too large, or its content coding or chunked framing is
/// broken (the underlying error is logged, not shown: it is the HTTP library's text).
fn unreadable(error: &actix_web::Error, limit: usize) -> ApiError {
    if error.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        tracing::info!(%error, "a request body could not be read");
        ApiError::MalformedRequest(
            "the body could not be read: its content coding (gzip) or chunked framing is broken"
                .into(),
        )
    }
}

/// The body as `T`, if it is one JSON object whose every string (keys included) is text a site
/// may write ([`crate::domain::text`]; 422 naming the first field that is not) and in which no
/// object names a key twice, at any depth (400: which of two values was meant is unknown; serde
/// refuses a struct's field given twice, and a map would keep the last).
fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::InvalidJson(
            "the body must be a JSON object".into(),
        ));
    }
    let parsed = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::InvalidJson(super::describe_serde_error(&e)))?;
    let found = std::cell::RefCell::new(None);
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let walked = serde::de::DeserializeSeed::deserialize(
        Walk {
            at: Path::Root,
            found: &found,
        },
        &mut reader,
    );
    match found.into_inner() {
        Some(Finding::Text { field, reason }) => {
            Err(ApiError::validation(vec![crate::error::FieldError::new(
                field, reason,
            )]))
        }
        Some(Finding::DuplicateKey { field }) => Err(ApiError::InvalidJson(format!(
            "the key `{field}` is given twice; send it once"
        ))),
        None => walked
            .map(|()| parsed)
            .map_err(|e| ApiError::InvalidJson(super::describe_serde_error(&e))),
    }
}

/// What [`Walk`] found wrong first; the walk stops there.
enum Finding {
    /// A string or key holding a character a site may not write.
    Text { field: String, reason: &'static str },
    /// An object naming this key (as a path: `attributes.name`) a second time.
    DuplicateKey { field: String },
}

/// Where a value sits in the body: the chain of keys and indexes to it, spelled
/// (`report[0].body`) only when a [`Finding`] names it, so a body without one costs no path.
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl Path<'_> {
    fn spell(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Key(Path::Root, key) => (*key).to_owned(),
            Path::Key(parent, key) => format!("{}.{key}", parent.spell()),
            Path::Index(parent, i) => format!("{}[{i}]", parent.spell()),
        }
    }
}

/// One pass over a JSON value without building it, recording the first [`Finding`] in `found`
/// and stopping there (with an error whose text is not used). `at` is where the value sits.
struct Walk<'a, 'p> {
    at: Path<'p>,
    found: &'a std::cell::RefCell<Option<Finding>>,
}

impl Walk<'_, '_> {
    fn stop<E: serde::de::Error>(&self, finding: Finding) -> E {
        *self.found.borrow_mut() = Some(finding);
        E::custom("stopped")
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<(), E> {
        match crate::domain::text::check(text) {
            Ok(()) => Ok(()),
            Err(reason) => Err(self.stop(Finding::Text {
                field: self.at.spell(),
                reason,
            })),
        }
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let item = Walk {
                at: Path::Index(&self.at, i),
                found: self.found,
            };
            if items.next_element_seed(item)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // A body's objects mostly hold a few keys, compared in turn more cheaply than hashed; an
        // object with many (a body may hold thousands) moves them to a hash set, so that the walk
        // stays linear in the body's size.
        let mut few: Vec<Key<'de>> = Vec::new();
        let mut many: std::collections::HashSet<Key<'de>> = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let at = Path::Key(&self.at, key.as_str());
            if let Err(reason) = crate::domain::text::check(key.as_str()) {
                return Err(self.stop(Finding::Text {
                    field: at.spell(),
                    reason,
                }));
            }
            let given_before = if many.is_empty() {
                few.iter().any(|k| k.as_str() == key.as_str())
            } else {
                many.contains(&key)
            };
            if given_before {
                return Err(self.stop(Finding::DuplicateKey { field: at.spell() }));
            }
            map.next_value_seed(Walk {
                at,
                found: self.found,
            })?;
            if many.is_empty() && few.len() < 16 {
                few.push(key);
            } else {
                many.extend(few.drain(..));
                many.insert(key);
            }
        }
        Ok(())
    }
}

/// An object's key as the body spells it: borrowed from the body when it has no escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Key<'_> {}

impl std::hash::Hash for Key<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(s))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(s.to_owned()))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// What kind of JSON value `text` starts, for an "expected a JSON object" message.
fn unexpected(text: &str) -> Unexpected<'static> {
    match text.as_bytes().first() {
        Some(b'[') => Unexpected::Seq,
        Some(b'"') => Unexpected::Other("a string"),
        Some(b't' | b'f') => Unexpected::Other("a boolean"),
        Some(b'n') => Unexpected::Unit,
        _ => Unexpected::Other("a number"),
    }
}

/// serde_json's message without its " at line L column C", which would count from the start of
/// the inner object, not of the body (serde_json adds the body's own position around it).
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_string()
}

#[cfg(test)]
mod tests {
    use super::Object;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section {
        header: String,
    }

    #[test]
    fn an_inner_object_is_read_and_an_array_in_its_place_is_refused() {
        let ok: Vec<Object<Section>> = serde_json::from_str(r#"[{"header": "a"}]"#).unwrap();
        assert_eq!(ok[0].0.header, "a");
        // serde's derived struct would take `["a"]` as `{"header": "a"}`.
        // What a client reads is serde's message, so the message is what these assertions check.
        let shown = serde_json::from_str::<Vec<Object<Section>>>(r#"[["a"]]"#)
            .unwrap_err()
            .to_string();
        assert!(shown.contains("expected a JSON object"), "{shown}");
        let shown = serde_json::from_str::<Vec<Object<Section>>>(r#"[{"header": "a", "x": 1}]"#)
            .unwrap_err()
            .to_string();
        assert!(shown.contains("unknown field `x`"), "{shown}");
        assert_eq!(shown.matches(" at line ").count(), 1, "{shown}");
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth_and_text_is_checked_in_keys_and_values() {
        use super::parse_object;
        use crate::error::ApiError;
        type Body = std::collections::BTreeMap<String, serde_json::Value>;
        let ok: Body = parse_object(br#"{"a": {"b": [1, {"c": "x"}], "d": null}}"#).unwrap();
        let keys: Vec<String> = (0..40).map(|i| format!(r#""k{i}": {i}"#)).collect();
        let many_keys = format!(r#"{{"o": {{{}, "k3": 0}}}}"#, keys.join(", "));
        let fine = format!(r#"{{"o": {{{}}}}}"#, keys.join(", "));
        assert!(parse_object::<Body>(fine.as_bytes()).is_ok());
        assert_eq!(ok["a"]["b"][1]["c"], "x");
        for (body, field) in [
            (&br#"{"a": 1, "a": 2}"#[..], "a"),
            (br#"{"limits": {"cpu": -1, "cpu": 1}}"#, "limits.cpu"),
            (br#"{"r": [{"x": 1}, {"y": 1, "y": 2}]}"#, "r[1].y"),
            // the same key spelled with an escape, and a key with an escape given twice
            (br#"{"o": {"a": 1, "\u0061": 2}}"#, "o.a"),
            (br#"{"\u00e9": 1, "\u00e9": 2}"#, "\u{e9}"),
            // past the first sixteen keys of an object
            (many_keys.as_bytes(), "o.k3"),
        ] {
            match parse_object::<Body>(body) {
                Err(ApiError::InvalidJson(shown)) => {
                    assert!(shown.contains(&format!("`{field}`")), "{shown}")
                }
                other => panic!("{field}: {other:?}"),
            }
        }
        for (body, field) in [
            (&br#"{"a": ["ok", "bad\u0007"]}"#[..], "a[1]"),
            (br#"{"o": {"k\u0000": 1}}"#, "o.k\u{0}"),
        ] {
            match parse_object::<Body>(body) {
                Err(ApiError::Validation { errors, .. }) => assert_eq!(errors[0].field, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
