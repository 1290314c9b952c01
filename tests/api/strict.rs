//! Strict at the door: malformed values are refused with a problem document and store nothing;
//! accepted values are exactly what the client wrote.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::site_helpers::*;
use puhuri_gateway::sim::demo;

/// JSON-number amounts are read from their digits, never through a float.
#[tokio::test]
async fn number_amounts_are_exact_for_any_number_of_digits() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let body = format!(
        r#"{{"resource_uuid": "{}", "usages": {{"cpu_k_hours": 99999999999999.99, "gpu_k_hours": 123456789012345678.125}}}}"#,
        demo::RESOURCE_OK_UUID
    );
    let job =
        accepted(send_raw(&app, reqwest::Method::POST, "/v1/usage", &token, &body).await).await;
    let done = delivered(&app, &token, &job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        done["result"]["sent"],
        json!({"cpu_k_hours": "99999999999999.99", "gpu_k_hours": "123456789012345678.12"})
    );
}

/// Each value outside the documented grammar is a 422 naming its field, and nothing is stored.
#[tokio::test]
async fn amounts_and_months_accept_exactly_the_documented_grammar() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let amounts = [
        r#""1_000""#,
        r#""1,000""#,
        r#"" 12""#,
        r#""+12""#,
        r#"".5""#,
        r#""NaN""#,
        r#""0x10""#,
        "1e18",
        "1000000000000000000.5",
        "-0.01",
        "true",
        "null",
        "[1]",
        "{}",
    ];
    for amount in amounts {
        let body = format!(
            r#"{{"resource_uuid": "{}", "usages": {{"cpu_k_hours": {amount}}}}}"#,
            demo::RESOURCE_OK_UUID
        );
        let problem = assert_problem(
            send_raw(&app, reqwest::Method::POST, "/v1/usage", &token, &body).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(
            problem["errors"][0]["field"], "usages.cpu_k_hours",
            "{amount}: {problem}"
        );
    }
    for month in [
        "2026-+5",
        "+026-05",
        "2026-05 ",
        "2026-5",
        "2026-13",
        "2_26-05",
        "2026-05-01",
        // A month that has not begun anywhere yet: no usage can have been measured for it.
        "2999-12",
    ] {
        let body = json!({"resource_uuid": demo::RESOURCE_OK_UUID, "month": month, "usages": {"cpu_k_hours": 1}});
        let problem = assert_problem(
            app.post_usage(&token, &body).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], "month", "{month}: {problem}");
    }
    no_jobs(&app, &token).await;
    assert!(app.sim_calls("set_usage").await.is_empty());
}

/// The `Link` header's host is never taken from `X-Forwarded-Host` or `Forwarded`.
#[tokio::test]
async fn links_never_take_their_host_from_forwarding_headers() {
    let app = spawn_manual_app().await;
    let response = app
        .client
        .get(app.url("/v1/resources?page_size=1"))
        .bearer_auth(alpha_token())
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Proto", "https")
        .header("Forwarded", "host=evil.example;proto=https")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let link = response.headers()["link"].to_str().unwrap().to_string();
    assert!(!link.contains("evil"), "{link}");
    assert!(
        link.starts_with(&format!("<{}/v1/resources?", app.address)),
        "{link}"
    );
}

/// Approve and reject take no body, or a JSON object sent as `application/json`: nothing else.
#[tokio::test]
async fn approve_and_reject_take_no_body_or_a_json_object() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let approve = format!("/v1/orders/{}/approve", demo::ORDER_PENDING_UUID);
    let reject = format!("/v1/orders/{}/reject", demo::ORDER_PENDING_UUID);
    let send = |path: String, content_type: Option<&'static str>, body: &'static str| {
        let mut request = app.client.post(app.url(&path)).bearer_auth(&token);
        if let Some(t) = content_type {
            request = request.header("Content-Type", t);
        }
        request.body(body).send()
    };
    let cases: [(Option<&'static str>, &'static str, u16, &str); 6] = [
        (
            Some("text/plain"),
            r#"{"comment": "no"}"#,
            415,
            "unsupported_media_type",
        ),
        (None, r#"{"comment": "no"}"#, 415, "unsupported_media_type"),
        (
            Some("application/x-www-form-urlencoded"),
            "comment=no",
            415,
            "unsupported_media_type",
        ),
        (Some("application/json"), "[]", 400, "invalid_json"),
        (Some("application/json"), "null", 400, "invalid_json"),
        (
            Some("application/json"),
            r#"{"comment": "no", "extra": 1}"#,
            400,
            "invalid_json",
        ),
    ];
    for (content_type, body, status, code) in cases {
        for path in [&approve, &reject] {
            let response = send(path.clone(), content_type, body).await.unwrap();
            assert_problem(response, status, code).await;
        }
    }
    no_jobs(&app, &token).await;
    // No body at all, as a generated client sends it.
    let response = send(approve.clone(), None, "").await.unwrap();
    assert_eq!(response.status(), 202);
}

/// Every write that takes a body, with a body it accepts (from site alpha, in the test sandbox).
fn writes_with_bodies() -> Vec<(reqwest::Method, String, Value)> {
    use reqwest::Method;
    let resource = demo::RESOURCE_OK_UUID;
    let usage = json!({"resource_uuid": resource, "usages": {"cpu_k_hours": 1}});
    vec![
        (Method::POST, "/v1/usage".into(), usage.clone()),
        (
            Method::POST,
            "/v1/usage/batch".into(),
            json!({ "reports": [usage] }),
        ),
        (
            Method::POST,
            "/v1/offering-users".into(),
            json!({"offering_uuid": ALPHA_OFFERING, "user_uuid": demo::USER_BOB_UUID, "username": "bob"}),
        ),
        (
            Method::PUT,
            format!("/v1/users/{}/username", demo::USER_BOB_UUID),
            json!({"username": "bob"}),
        ),
        (
            Method::POST,
            format!("/v1/orders/{}/approve", demo::ORDER_PENDING_UUID),
            json!({}),
        ),
        (
            Method::POST,
            format!("/v1/orders/{}/reject", demo::ORDER_PENDING_UUID),
            json!({}),
        ),
        (
            Method::POST,
            format!("/v1/orders/{}/erred", demo::ORDER_EXECUTING_UUID),
            json!({"message": "no nodes"}),
        ),
        (
            Method::POST,
            format!("/v1/resources/{resource}/backend-id"),
            json!({"backend_id": "project_465000777"}),
        ),
        (
            Method::POST,
            format!("/v1/resources/{resource}/state"),
            json!({"state": "ok"}),
        ),
        (
            Method::PUT,
            format!("/v1/resources/{resource}/report"),
            json!({"report": [{"header": "Access", "body": "ssh"}]}),
        ),
        (
            Method::PUT,
            format!("/v1/resources/{resource}/limits"),
            json!({"limits": {"cpu_k_hours": 10}}),
        ),
    ]
}

/// A malformed request: content type, content encoding, body, then the answer's status, problem
/// code and a text its detail must hold.
type Malformed<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    String,
    u16,
    &'a str,
    &'a str,
);

/// The kinds of malformed request, on every write that takes a body: each answers its documented
/// status with a problem document, and nothing is stored or sent to Puhuri.
#[tokio::test]
async fn every_write_refuses_every_malformed_body_and_stores_nothing() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    // A connection per request: the gateway closes one whose oversized body it did not read, and
    // a pooled client could pick that connection for the next request.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for (method, path, valid) in writes_with_bodies() {
        let valid_text = valid.to_string();
        let mut with_unknown = valid.clone();
        with_unknown["unexpected_field"] = json!(1);
        let cases: Vec<Malformed> = vec![
            (
                None,
                None,
                valid_text.clone(),
                415,
                "unsupported_media_type",
                "",
            ),
            (
                Some("text/plain"),
                None,
                valid_text.clone(),
                415,
                "unsupported_media_type",
                "",
            ),
            (
                Some("application/x-www-form-urlencoded"),
                None,
                "a=1".into(),
                415,
                "unsupported_media_type",
                "",
            ),
            (
                Some("application/json; charset=latin1"),
                None,
                valid_text.clone(),
                415,
                "unsupported_media_type",
                "",
            ),
            (
                Some("application/json"),
                Some("br"),
                valid_text.clone(),
                415,
                "unsupported_media_type",
                "Content-Encoding",
            ),
            (
                Some("application/json"),
                Some("gzip, br"),
                valid_text.clone(),
                415,
                "unsupported_media_type",
                "Content-Encoding",
            ),
            (
                Some("application/json"),
                None,
                "[]".into(),
                400,
                "invalid_json",
                "object",
            ),
            (
                Some("application/json"),
                None,
                format!("[{valid_text}]"),
                400,
                "invalid_json",
                "object",
            ),
            (
                Some("application/json"),
                None,
                "null".into(),
                400,
                "invalid_json",
                "object",
            ),
            (
                Some("application/json"),
                None,
                "\"x\"".into(),
                400,
                "invalid_json",
                "object",
            ),
            (
                Some("application/json"),
                None,
                "12".into(),
                400,
                "invalid_json",
                "object",
            ),
            (
                Some("application/json"),
                None,
                "{".into(),
                400,
                "invalid_json",
                "JSON",
            ),
            (
                Some("application/json"),
                None,
                with_unknown.to_string(),
                400,
                "invalid_json",
                "unexpected_field",
            ),
        ];
        for (content_type, encoding, body, status, code, detail_holds) in cases {
            let mut request = client
                .request(method.clone(), app.url(&path))
                .bearer_auth(&token)
                .body(body.clone());
            if let Some(t) = content_type {
                request = request.header("Content-Type", t);
            }
            if let Some(e) = encoding {
                request = request.header("Content-Encoding", e);
            }
            let response = request.send().await.expect("request sent");
            let what = format!(
                "{method} {path} {content_type:?} {encoding:?} {}",
                &body[..body.len().min(60)]
            );
            assert_eq!(response.status().as_u16(), status, "{what}");
            if status == 415 && encoding.is_some() {
                assert_eq!(
                    response.headers()["accept-encoding"],
                    "gzip, identity",
                    "{what}"
                );
            }
            let problem = assert_problem(response, status, code).await;
            assert!(
                problem["detail"].as_str().unwrap().contains(detail_holds),
                "{what}: {problem}"
            );
        }
    }
    // Larger than `limits.max_body_bytes` (262144 in the tests): refused from its stated length,
    // before a byte of it is read.
    for (method, path, _) in writes_with_bodies() {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 262145\r\n\r\n"
        );
        let answer = raw_answer(&app.address, head.as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "{method} {path}: {answer}"
        );
        assert!(answer.contains(r#""code":"payload_too_large""#), "{answer}");
    }
    no_jobs(&app, &token).await;
    assert!(
        app.sim_calls("marketplace")
            .await
            .iter()
            .all(|c| c["method"] == "GET")
    );
}

/// A JSON array where a nested object is documented (a report section, a report of a batch) is
/// refused like one at the top, and so is an unknown field inside one.
#[tokio::test]
async fn nested_objects_are_objects_with_only_their_fields() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let report = format!("/v1/resources/{}/report", demo::RESOURCE_OK_UUID);
    let usage = json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": 1}});
    let cases = [
        (
            report.as_str(),
            json!({"report": [["Access", "ssh"]]}),
            "a JSON object",
        ),
        (
            report.as_str(),
            json!({"report": [{"header": "Access", "body": "ssh", "colour": "red"}]}),
            "colour",
        ),
        (
            "/v1/usage/batch",
            json!({"reports": [[usage["resource_uuid"], usage["usages"]]]}),
            "a JSON object",
        ),
        (
            "/v1/usage/batch",
            json!({"reports": [{"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": 1}, "note": "x"}]}),
            "note",
        ),
    ];
    for (path, body, detail_holds) in cases {
        let request = if path.ends_with("/report") {
            app.client.put(app.url(path))
        } else {
            app.client.post(app.url(path))
        };
        let response = request
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 400, "invalid_json").await;
        assert!(
            problem["detail"].as_str().unwrap().contains(detail_holds),
            "{body}: {problem}"
        );
    }
    no_jobs(&app, &token).await;
}

/// A body in the one coding the gateway decodes is read; the same bytes called anything else are
/// not read as plain text.
#[tokio::test]
async fn a_gzip_body_is_decoded() {
    use std::io::Write;
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let body = json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": 3}});
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body.to_string().as_bytes()).unwrap();
    let gzipped = encoder.finish().unwrap();
    let response = app
        .client
        .post(app.url("/v1/usage"))
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(gzipped)
        .send()
        .await
        .unwrap();
    accepted(response).await;
}

/// A path the API serves, asked with a method it does not take: 405 with `Allow` (RFC 9110
/// §15.5.6); a path it does not serve: 404.
#[tokio::test]
async fn a_wrong_method_answers_405_with_allow() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let cases = [
        (reqwest::Method::GET, "/v1/usage".to_string(), "POST"),
        (reqwest::Method::PUT, "/v1/usage".to_string(), "POST"),
        (reqwest::Method::POST, "/v1/jobs".to_string(), "GET, HEAD"),
        (
            reqwest::Method::PATCH,
            format!("/v1/jobs/{}", uuid::Uuid::new_v4()),
            "GET, HEAD",
        ),
        (
            reqwest::Method::GET,
            format!("/v1/orders/{}/approve", demo::ORDER_PENDING_UUID),
            "POST",
        ),
        (
            reqwest::Method::DELETE,
            format!("/v1/resources/{}", demo::RESOURCE_OK_UUID),
            "GET, HEAD",
        ),
        (reqwest::Method::POST, "/healthz".to_string(), "GET, HEAD"),
        (
            reqwest::Method::POST,
            "/openapi.json".to_string(),
            "GET, HEAD",
        ),
        (reqwest::Method::DELETE, "/docs/".to_string(), "GET, HEAD"),
        (reqwest::Method::POST, "/docs".to_string(), "GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        let response = app
            .client
            .request(method.clone(), app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        assert_problem(response, 405, "method_not_allowed").await;
    }
    let response = app.get_as("/v1/no-such-thing", &token).await;
    assert_problem(response, 404, "not_found").await;
    no_jobs(&app, &token).await;
}

/// Sends raw bytes on one connection and reads one answer (its head, then `content-length` bytes).
async fn raw_answer(address: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&answer).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    return;
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    let finished = tokio::time::timeout(std::time::Duration::from_secs(5), read_all).await;
    assert!(
        finished.is_ok(),
        "no whole answer: {}",
        String::from_utf8_lossy(&answer)
    );
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends raw bytes on one connection and reads everything the server answers until it closes
/// the connection (or 5 s pass).
async fn raw_exchange(address: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await;
    assert!(
        read.is_ok(),
        "the connection was kept open: {}",
        String::from_utf8_lossy(&answer)
    );
    String::from_utf8_lossy(&answer).into_owned()
}

/// A request whose length is stated two ways is refused with 400 and its connection closed, so
/// a request smuggled behind it is never read (RFC 9112 §6.1, §6.3).
#[tokio::test]
async fn ambiguous_framing_is_refused_and_the_connection_closed() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let body =
        json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": 7}}).to_string();
    // Behind it, a request a proxy would not have seen: it must never run.
    let smuggled_body =
        json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": 666}})
            .to_string();
    let smuggled = format!(
        "POST /v1/usage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{smuggled_body}",
        smuggled_body.len()
    );
    let requests = [
        // Content-Length and Transfer-Encoding: chunked.
        format!(
            "POST /v1/usage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 5\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n{smuggled}",
            body.len()
        ),
        // Transfer-Encoding in HTTP/1.0, with a Content-Length.
        format!(
            "POST /v1/usage HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n{body}{smuggled}",
            body.len()
        ),
    ];
    for request in requests {
        let answer = raw_exchange(&app.address, request.as_bytes()).await;
        let http11 = request.starts_with("POST /v1/usage HTTP/1.1");
        let version = if http11 { "HTTP/1.1" } else { "HTTP/1.0" };
        assert!(answer.starts_with(&format!("{version} 400")), "{answer}");
        assert!(answer.contains("ambiguous_framing"), "{answer}");
        if http11 {
            assert!(
                answer.to_ascii_lowercase().contains("connection: close"),
                "{answer}"
            );
        }
        // A request read behind it before the close is refused the same way, never served.
        assert_eq!(
            answer.matches(r#""code":"ambiguous_framing""#).count(),
            answer.matches("x-request-id: ").count(),
            "a request behind it was served: {answer}"
        );
    }
    no_jobs(&app, &token).await;
    assert!(app.sim_calls("set_usage").await.is_empty());
    // The same body framed one way is taken.
    let plain = format!(
        "POST /v1/usage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = raw_exchange(&app.address, plain.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
}

/// Filters whose values are a closed set (documented as enums) refuse anything else by name.
#[tokio::test]
async fn enum_filters_refuse_values_outside_their_set() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    for path in [
        "/v1/jobs?operation=usage.reports",
        "/v1/jobs?state=done",
        "/v1/orders?state=pending",
        "/v1/orders?type=Delete",
        "/v1/resources?state=OK,",
        "/v1/orders?state=executing,,done",
        "/v1/resources?state=Gone",
    ] {
        let problem = assert_problem(app.get_as(path, &token).await, 400, "invalid_query").await;
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{path}");
    }
    let ok = app
        .get_as("/v1/jobs?operation=usage.report&state=queued", &token)
        .await;
    assert_eq!(ok.status(), 200);
}

/// A query parameter given with no value (`?x=`) is refused, not read as absent; so is one the
/// operation does not take.
#[tokio::test]
async fn empty_and_unknown_query_parameters_are_refused() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    for path in [
        "/v1/orders?resource_uuid=",
        "/v1/resources?offering_uuid=",
        "/v1/projects?page=",
        "/v1/ssh-keys?user_uuid=",
        "/v1/jobs?state=",
        "/v1/jobs?colour=red",
        &format!("/v1/resources/{}/usage?month=", demo::RESOURCE_OK_UUID),
        &format!(
            "/v1/resources/{}/usage?month=1999-12",
            demo::RESOURCE_OK_UUID
        ),
    ] {
        assert_problem(app.get_as(path, &token).await, 400, "invalid_query").await;
    }
}

/// Malformed and invalid tokens of every kind, on a write: each is a 401 `invalid_token`, and
/// nothing is stored.
#[tokio::test]
async fn every_kind_of_bad_token_is_refused_and_stores_nothing() {
    use base64::Engine;
    use jsonwebtoken::Algorithm;
    let app = spawn_manual_app().await;
    let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let now = chrono::Utc::now().timestamp();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims("alpha");
        change(&mut c);
        sign(Algorithm::EdDSA, "alpha-ed", "ed25519.key", &c)
    };
    let good = alpha_token();
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let tokens: Vec<(&str, String)> = vec![
        ("not a JWT", "not.a.jwt".into()),
        ("two segments", format!("{head}.{payload}")),
        ("four segments", format!("{good}.x")),
        ("header not base64", format!("%%%.{payload}.{signature}")),
        (
            "header not JSON",
            format!("{}.{payload}.{signature}", b64("alg")),
        ),
        (
            "alg none",
            format!("{}.{payload}.", b64(r#"{"alg":"none","kid":"alpha-ed"}"#)),
        ),
        (
            "signature cut",
            format!("{head}.{payload}.{}", &signature[..10]),
        ),
        (
            "payload swapped",
            format!("{head}.{}.{signature}", b64(r#"{"iss":"alpha"}"#)),
        ),
        ("expired", with(&|c| c["exp"] = json!(now - 3600))),
        ("not yet valid", with(&|c| c["nbf"] = json!(now + 3600))),
        (
            "issued in the future",
            with(&|c| c["iat"] = json!(now + 3600)),
        ),
        (
            "exp missing",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        ("exp a string", with(&|c| c["exp"] = json!("soon"))),
        (
            "lifetime too long",
            with(&|c| c["exp"] = json!(now + 86_400 * 30)),
        ),
        (
            "another audience",
            with(&|c| c["aud"] = json!("another-gateway")),
        ),
        ("another issuer", with(&|c| c["iss"] = json!("beta"))),
        ("scope a number", with(&|c| c["scope"] = json!(42))),
        (
            "unknown kid",
            sign(Algorithm::EdDSA, "nobody", "ed25519.key", &claims("alpha")),
        ),
        (
            "another site's key",
            sign(
                Algorithm::EdDSA,
                "alpha-ed",
                "other-ed25519.key",
                &claims("alpha"),
            ),
        ),
    ];
    let body = json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": 1}});
    for (what, token) in tokens {
        let response = app.post_usage(&token, &body).await;
        assert_eq!(response.status(), 401, "{what}");
        assert_problem(response, 401, "invalid_token").await;
    }
    no_jobs(&app, &good).await;
}

/// Cancel and retry change what reaches Puhuri: they need the scope that queues the job's
/// operation, not just a token of the site; and operations that take no body refuse one.
#[tokio::test]
async fn cancel_and_retry_need_the_operations_scope_and_take_no_body() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let body = json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": 4}});
    let job = accepted(app.post_usage(&token, &body).await).await;
    let read_only = crate::site_helpers::alpha_token_with("read");
    for action in ["cancel", "retry"] {
        let response = app
            .client
            .post(app.url(&format!("/v1/jobs/{job}/{action}")))
            .bearer_auth(&read_only)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 403, "insufficient_scope").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("usage:write"),
            "{problem}"
        );
    }
    assert_eq!(app.job(&token, &job).await["state"], "queued");
    // A body where none is taken: refused, and the job is untouched.
    for path in [
        format!("/v1/jobs/{job}/cancel"),
        format!("/v1/jobs/{job}/retry"),
        format!("/v1/orders/{}/done", demo::ORDER_EXECUTING_UUID),
    ] {
        let response = app
            .client
            .post(app.url(&path))
            .bearer_auth(&token)
            .header("Content-Type", "text/plain")
            .body("please")
            .send()
            .await
            .unwrap();
        assert_problem(response, 400, "invalid_json").await;
    }
    assert_eq!(app.job(&token, &job).await["state"], "queued");
    let jobs: Value = app.get_as("/v1/jobs", &token).await.json().await.unwrap();
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(1), "{jobs}");
    // With the scope, the same cancel works.
    let response = app
        .client
        .post(app.url(&format!("/v1/jobs/{job}/cancel")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// A method label is one of HTTP's standard methods or `other`: a client cannot add series.
#[tokio::test]
async fn unknown_methods_do_not_grow_the_metrics() {
    let app = spawn_manual_app().await;
    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("M{i}X").as_bytes()).unwrap();
        let _ = app
            .client
            .request(method, app.url("/healthz"))
            .send()
            .await
            .unwrap();
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("M0X") && !metrics.contains("M19X"),
        "{metrics}"
    );
    assert!(metrics.contains(r#"method="other""#));
}

/// Limits are whole numbers as JSON counts them: `2000.0` is 2000.
#[tokio::test]
async fn a_whole_number_written_with_a_point_is_a_limit() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let path = format!("/v1/resources/{}/limits", demo::RESOURCE_OK_UUID);
    let response = crate::site_helpers::put_json(
        &app,
        &path,
        &token,
        &json!({"limits": {"cpu_k_hours": 2000.0}}),
    )
    .await;
    accepted(response).await;
    let response = crate::site_helpers::put_json(
        &app,
        &path,
        &token,
        &json!({"limits": {"cpu_k_hours": 2000.5}}),
    )
    .await;
    assert_problem(response, 422, "validation_failed").await;
}

/// HTTP's own rules, before any route: one Host (required in HTTP/1.1), one copy of each header
/// that is not a list, HEAD wherever GET is served, and only the query parameters an operation
/// documents, each non-empty and once unless it is a list.
#[tokio::test]
async fn http_rules_and_documented_query_strings_are_enforced_at_the_door() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let usage =
        json!({"resource_uuid": demo::RESOURCE_OK_UUID, "usages": {"cpu_k_hours": 5}}).to_string();
    let raw = |head: String| {
        format!(
            "{head}Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{usage}",
            usage.len()
        )
    };
    for (what, request) in [
        ("no Host", raw("POST /v1/usage HTTP/1.1\r\n".into())),
        ("two Hosts", raw("POST /v1/usage HTTP/1.1\r\nHost: a\r\nHost: b\r\n".into())),
        ("a Host that is not a host", raw("POST /v1/usage HTTP/1.1\r\nHost: u@evil, b\r\n".into())),
        (
            "two Authorization headers",
            raw(format!(
                "POST /v1/usage HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n"
            )),
        ),
        (
            "two Idempotency-Keys",
            raw("POST /v1/usage HTTP/1.1\r\nHost: a\r\nIdempotency-Key: k1\r\nIdempotency-Key: k2\r\n".into()),
        ),
    ] {
        let answer = raw_exchange(&app.address, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{what}: {answer}");
        assert!(answer.contains(r#""code":"malformed_request""#), "{what}: {answer}");
    }
    for path in [
        "/v1/usage?dry_run=1",
        "/v1/jobs?limit=1&limit=2",
        "/v1/jobs?site=",
    ] {
        let response = if path.starts_with("/v1/usage") {
            app.client
                .post(app.url(path))
                .bearer_auth(&token)
                .header("Content-Type", "application/json")
                .body(usage.clone())
                .send()
                .await
                .unwrap()
        } else {
            app.get_as(path, &token).await
        };
        assert_problem(response, 400, "invalid_query").await;
    }
    // A documented list filter may repeat.
    let ok = app
        .get_as("/v1/orders?state=executing&state=done", &token)
        .await;
    assert_eq!(ok.status(), 200);
    // HEAD wherever GET is served: the GET's status and headers, no body.
    let head = app
        .client
        .head(app.url("/v1/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let get = app.get_as("/v1/whoami", &token).await;
    assert_eq!(
        head.headers()["content-length"],
        get.headers()["content-length"],
        "HEAD gives the GET's length"
    );
    assert!(head.bytes().await.unwrap().is_empty());
    let head = app.client.head(app.url("/healthz")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    // `/docs` leads to `/docs/`.
    let docs = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/docs"))
        .send()
        .await
        .unwrap();
    assert!(docs.status().is_redirection(), "{}", docs.status());
    assert_eq!(docs.headers()["location"], "/docs/");
}

/// An operator's retry of an older value (limits here; backend ids, states, reports and
/// usernames alike) after a newer one was sent is refused, naming the newer job: delivered, it
/// would put the older value back in Puhuri.
#[tokio::test]
async fn retrying_an_older_value_after_a_newer_one_is_refused() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let path = format!("/v1/resources/{}/limits", demo::RESOURCE_OK_UUID);
    let fault = app
        .sim_post(
            "faults",
            &json!({"kind": "error", "method": "POST", "path_prefix": "marketplace-provider-resources", "status": 400, "times": 1}),
        )
        .await;
    assert!(fault.status().is_success(), "{}", fault.status());
    let older = accepted(
        crate::site_helpers::put_json(
            &app,
            &path,
            &token,
            &json!({"limits": {"cpu_k_hours": 111}}),
        )
        .await,
    )
    .await;
    assert_eq!(delivered(&app, &token, &older).await["state"], "failed");
    let newer = accepted(
        crate::site_helpers::put_json(
            &app,
            &path,
            &token,
            &json!({"limits": {"cpu_k_hours": 222}}),
        )
        .await,
    )
    .await;
    assert_eq!(delivered(&app, &token, &newer).await["state"], "succeeded");
    let retry = app
        .client
        .post(app.url(&format!("/v1/jobs/{older}/retry")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(retry, 409, "conflict").await;
    assert!(
        problem["detail"].as_str().unwrap().contains(&newer),
        "{problem}"
    );
    app.drain().await;
    let resource = crate::site_helpers::sim_resource(&app, demo::RESOURCE_OK_UUID).await;
    assert_eq!(resource["limits"]["cpu_k_hours"], 222, "{resource}");
    // A job that succeeded is never retried.
    let retry = app
        .client
        .post(app.url(&format!("/v1/jobs/{newer}/retry")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(retry, 409, "conflict").await;
}

/// Text a site writes is what a person reads in Puhuri: a control character (other than tab and
/// line breaks) or an invisible formatting character anywhere in a body is a 422 naming where.
#[tokio::test]
async fn invisible_and_control_characters_are_refused_anywhere_in_a_body() {
    let app = spawn_manual_app().await;
    let token = alpha_token();
    let resource = demo::RESOURCE_OK_UUID;
    let report = format!("/v1/resources/{resource}/report");
    let cases = [
        (
            "/v1/usage",
            json!({"resource_uuid": resource, "usages": {"cpu_k_hours": 1}, "description": "a\u{0}b"}),
            "description",
        ),
        (
            report.as_str(),
            json!({"report": [{"header": "Access", "body": "ssh lumi\u{202e}txt"}]}),
            "report[0].body",
        ),
        (
            "/v1/usage",
            json!({"resource_uuid": resource, "usages": {"cpu_k_hours": 1}, "description": "zero\u{200b}width"}),
            "description",
        ),
    ];
    for (path, body, field) in cases {
        let request = if path.ends_with("/report") {
            app.client.put(app.url(path))
        } else {
            app.client.post(app.url(path))
        };
        let response = request
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    no_jobs(&app, &token).await;
    // Line breaks and tabs are text.
    let response = app
        .post_usage(
            &token,
            &json!({"resource_uuid": resource, "usages": {"cpu_k_hours": 1}, "description": "line one\n\tline two"}),
        )
        .await;
    accepted(response).await;
}
