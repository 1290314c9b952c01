//! One API request as the simulator's (synchronous) handlers see it ([`Req`]): query access,
//! body parsing, DRF's page-number pagination with Waldur's `Link` header, and list filters
//! validated the way Waldur's django-filter filter sets validate them.

use super::reply::{Reply, Res};
use actix_web::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::state::Caller;

/// One API request, as the (synchronous) handlers see it.
pub(crate) struct Req<'a> {
    pub method: Method,
    pub segs: Vec<&'a str>,
    pub query: Vec<(String, String)>,
    pub body: &'a [u8],
    /// `http://host:port/api/`
    pub base: String,
    /// `http://host:port/api/...path` (no query), for `Link`.
    pub url: String,
    pub caller: Caller,
    pub now: DateTime<Utc>,
    /// Write `Link` in the simpler page-number form (see [`World::page_number_links`]).
    pub page_number_links: bool,
}

impl Req<'_> {
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// All values of a repeatable filter (`?state=OK&state=Erred`); empty values are ignored.
    pub fn q_all(&self, key: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn is_get(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD
    }
    /// Allow only these methods (HEAD counts as GET).
    pub fn allow(&self, methods: &[Method]) -> Result<(), Reply> {
        let m = if self.method == Method::HEAD {
            Method::GET
        } else {
            self.method.clone()
        };
        if methods.contains(&m) {
            Ok(())
        } else {
            Err(Reply::method_not_allowed(&self.method))
        }
    }
    /// The JSON body as an object; an empty body is `{}` (like DRF's empty `request.data`).
    pub fn json(&self) -> Result<Map<String, Value>, Reply> {
        if self.body.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(self.body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => {
                let kind = match other {
                    Value::Array(_) => "list",
                    Value::String(_) => "str",
                    Value::Number(_) => "int",
                    Value::Bool(_) => "bool",
                    _ => "NoneType",
                };
                Err(Reply::bad(json!({"non_field_errors": [
                    format!("Invalid data. Expected a dictionary, but got {kind}.")
                ]})))
            }
            Err(e) => Err(Reply::bad(
                json!({"detail": format!("JSON parse error - {e}")}),
            )),
        }
    }

    /// Apply `?field=a&field=b` to one object.
    pub fn select_fields(&self, v: Value) -> Value {
        let fields = self.q_all("field");
        if fields.is_empty() {
            return v;
        }
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(k, _)| fields.contains(&k.as_str()))
                    .collect(),
            ),
            other => other,
        }
    }

    /// A retrieve answer (200, `field` applied).
    pub fn one(&self, v: Value) -> Res {
        Ok(Reply::ok(self.select_fields(v)))
    }

    /// A paginated list answer: DRF page-number pagination with Waldur's `Link` header.
    pub fn list(&self, items: Vec<Value>) -> Res {
        self.list_with(items, |v| v)
    }

    /// [`Req::list`] of objects rendered only when they are on the page asked for, so a page of
    /// a list of tens of thousands costs what the page costs (as Waldur's database does).
    pub fn list_with<T>(&self, items: Vec<T>, render: impl Fn(T) -> Value) -> Res {
        let total = items.len();
        if self.method == Method::HEAD {
            return Ok(Reply::empty(StatusCode::OK).header("X-Result-Count", total.to_string()));
        }
        let page_size = self
            .q("page_size")
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .map(|n| n.min(MAX_PAGE_SIZE))
            .unwrap_or(DEFAULT_PAGE_SIZE);
        let pages = total.div_ceil(page_size).max(1);
        let page = match self.q("page") {
            None => 1,
            Some("last") => pages,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if n >= 1 && n <= pages => n,
                _ => {
                    return Err(Reply::new(
                        StatusCode::NOT_FOUND,
                        json!({"detail": "Invalid page."}),
                    ));
                }
            },
        };
        let body: Vec<Value> = items
            .into_iter()
            .skip((page - 1) * page_size)
            .take(page_size)
            .map(|v| self.select_fields(render(v)))
            .collect();
        let mut reply = Reply::ok(Value::Array(body)).header("X-Result-Count", total.to_string());
        let links = if self.page_number_links {
            self.page_number_link_header(page, pages)
        } else {
            self.waldur_link_header(page, pages)
        };
        if !links.is_empty() {
            reply = reply.header("Link", links.join(", "));
        }
        Ok(reply)
    }

    /// Waldur's `LinkHeaderPagination` (DRF's page-number pagination helpers): `first` and `last`
    /// always, even on a single page, `prev` and `next` where they exist, in that order. `first`
    /// (and `prev` from page 2) is the URL without `page=` (DRF's `remove_query_param`); `next`
    /// and `last` set it (`replace_query_param`, so a single page's `last` says `page=1`). Both
    /// re-encode the query sorted by key.
    fn waldur_link_header(&self, page: usize, pages: usize) -> Vec<String> {
        let mut links = vec![format!("<{}>; rel=\"first\"", self.drf_page_url(None))];
        if page > 1 {
            let prev = (page > 2).then(|| page - 1);
            links.push(format!("<{}>; rel=\"prev\"", self.drf_page_url(prev)));
        }
        if page < pages {
            links.push(format!(
                "<{}>; rel=\"next\"",
                self.drf_page_url(Some(page + 1))
            ));
        }
        links.push(format!(
            "<{}>; rel=\"last\"",
            self.drf_page_url(Some(pages))
        ));
        links
    }

    /// This request's URL with `page` removed (`None`) or set.
    fn drf_page_url(&self, page: Option<usize>) -> String {
        let mut pairs: Vec<(&str, String)> = (self.query.iter())
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if let Some(page) = page {
            pairs.push(("page", page.to_string()));
        }
        // Python's `sorted(parse_qs(...).items())`: by key, a key's values in their order.
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        if pairs.is_empty() {
            return self.url.clone();
        }
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            ser.append_pair(k, &v);
        }
        format!("{}?{}", self.url, ser.finish())
    }

    /// The simpler form some page-number paginators write: only the links that lead elsewhere,
    /// each with an explicit `page=`, the query's order kept.
    fn page_number_link_header(&self, page: usize, pages: usize) -> Vec<String> {
        let mut links = vec![];
        if page > 1 {
            links.push(format!("<{}>; rel=\"first\"", self.page_url(1)));
            links.push(format!("<{}>; rel=\"prev\"", self.page_url(page - 1)));
        }
        if page < pages {
            links.push(format!("<{}>; rel=\"next\"", self.page_url(page + 1)));
            links.push(format!("<{}>; rel=\"last\"", self.page_url(pages)));
        }
        links
    }

    fn page_url(&self, page: usize) -> String {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        let mut replaced = false;
        for (k, v) in &self.query {
            if k == "page" {
                if !replaced {
                    ser.append_pair("page", &page.to_string());
                    replaced = true;
                }
            } else {
                ser.append_pair(k, v);
            }
        }
        if !replaced {
            ser.append_pair("page", &page.to_string());
        }
        format!("{}?{}", self.url, ser.finish())
    }
}

/// A uuid as Django's `UUIDField` reads it (Python's `uuid.UUID`): hex digits in any case, dashes
/// anywhere, optional braces or `urn:uuid:` prefix. Returns the 32 lower-case hex digits Waldur
/// stores, or `None` (Waldur: `["Enter a valid UUID."]`).
pub(crate) fn parse_uuid(raw: &str) -> Option<String> {
    let s = raw.trim();
    let s = s.strip_prefix("urn:uuid:").unwrap_or(s);
    let s = s
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(s);
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex.to_lowercase())
}

/// List filters validated the way Waldur's django-filter filter sets validate them, collecting
/// every field's error into one DRF 400 body:
/// - a uuid filter (`UUIDFilter`) takes any form Python's `uuid.UUID` reads, dashed or not, and
///   matches on the normalised value; anything else is `{"<name>": ["Enter a valid UUID."]}`;
/// - a choice filter (`MultipleChoiceFilter`) takes exactly the choice names (case matters):
///   `{"state": ["Select a valid choice. ok is not one of the available choices."]}`.
///
/// Empty values are ignored (django-filter skips an empty filter).
pub(crate) struct Filters<'r, 'a> {
    r: &'r Req<'a>,
    errors: Map<String, Value>,
}

impl<'r, 'a> Filters<'r, 'a> {
    pub fn new(r: &'r Req<'a>) -> Self {
        Self {
            r,
            errors: Map::new(),
        }
    }

    /// Every value of a (repeatable) uuid filter, normalised to 32 lower-case hex digits.
    pub fn uuids(&mut self, name: &str) -> Vec<String> {
        let mut out = vec![];
        for raw in self.r.q_all(name) {
            match parse_uuid(raw) {
                Some(u) => out.push(u),
                None => {
                    self.errors
                        .insert(name.to_string(), json!(["Enter a valid UUID."]));
                }
            }
        }
        out
    }

    /// A single-valued uuid filter (the last value counts, as Django's `QueryDict.get`).
    pub fn uuid(&mut self, name: &str) -> Option<String> {
        self.uuids(name).pop()
    }

    /// Every value of a multiple-choice filter; each must be one of `choices` exactly.
    pub fn choices(&mut self, name: &str, choices: &[&str]) -> Vec<String> {
        let mut out = vec![];
        for raw in self.r.q_all(name) {
            if choices.contains(&raw) {
                out.push(raw.to_string());
            } else if !self.errors.contains_key(name) {
                self.errors.insert(
                    name.to_string(),
                    json!([format!(
                        "Select a valid choice. {raw} is not one of the available choices."
                    )]),
                );
            }
        }
        out
    }

    /// The 400 answer when any filter was invalid.
    pub fn check(self) -> Result<(), Reply> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Reply::bad(Value::Object(self.errors)))
        }
    }
}

/// Waldur's `o=` ordering of a list: oldest first (`o=created`, and the default: the models
/// are ordered by creation) unless `o=-created`. Other fields are not modelled and leave the
/// default.
pub(crate) fn newest_first(r: &Req) -> bool {
    r.q_all("o")
        .iter()
        .flat_map(|v| v.split(','))
        .next()
        .is_some_and(|o| o.trim() == "-created")
}

/// Orders a list by `key` (its creation time) as [`newest_first`] says.
pub(crate) fn order_by_created<T, K: Ord>(r: &Req, items: &mut [T], key: impl Fn(&T) -> K) {
    items.sort_by_key(|x| key(x));
    if newest_first(r) {
        items.reverse();
    }
}

pub(crate) const DEFAULT_PAGE_SIZE: usize = 10;
pub(crate) const MAX_PAGE_SIZE: usize = 300;
