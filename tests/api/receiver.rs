//! A real HTTP receiver of events for the tests: an actix-web server on 127.0.0.1:0 that records
//! every delivery (headers and body) and answers as the test says (up, down with 503, or always
//! failing with 500), plus an independent Standard Webhooks verification.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde_json::Value;
use sha2::Sha256;

/// How the receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// 204.
    Up = 0,
    /// 503 (a receiver that is down for a while).
    Down = 1,
    /// 500 (a receiver that always fails).
    Broken = 2,
    /// No answer for 3 s, then 503 (a receiver that hangs).
    Hang = 3,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// The request's path (one receiver can stand for several endpoints).
    pub path: String,
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    /// The status it answered.
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("an event is JSON")
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub port: u16,
    mode: Arc<AtomicU8>,
    got: Arc<Mutex<Vec<Received>>>,
}

struct Shared {
    mode: Arc<AtomicU8>,
    got: Arc<Mutex<Vec<Received>>>,
}

async fn hook(req: HttpRequest, body: web::Bytes, state: web::Data<Shared>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let answered = match state.mode.load(Ordering::SeqCst) {
        0 => 204,
        1 => 503,
        2 => 500,
        _ => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            503
        }
    };
    state.got.lock().push(Received {
        path: req.path().to_owned(),
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
        answered,
    });
    HttpResponse::build(actix_web::http::StatusCode::from_u16(answered).unwrap()).finish()
}

impl Receiver {
    /// Starts on 127.0.0.1:0, answering `mode`; stops with the test's runtime.
    pub fn start(mode: Mode) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(mode as u8));
        let got = Arc::new(Mutex::new(Vec::new()));
        let shared = web::Data::new(Shared {
            mode: mode.clone(),
            got: got.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(hook))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Receiver { port, mode, got }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Every request so far.
    pub fn all(&self) -> Vec<Received> {
        self.got.lock().clone()
    }

    /// The events it accepted (answered 2xx), as JSON with the path they came to under `path`.
    pub fn events(&self) -> Vec<Value> {
        self.accepted()
            .iter()
            .map(|r| {
                let mut v = r.json();
                v["path"] = Value::String(r.path.clone());
                v
            })
            .collect()
    }

    /// The requests it answered 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| r.answered < 300)
            .collect()
    }

    /// Waits (polling, at most `within`) until `done` holds for the requests so far.
    pub async fn wait_for(
        &self,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let all = self.all();
            if done(&all) {
                return all;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the receiver did not get what was expected in {within:?}; it got {all:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A Standard Webhooks secret for tests (24 random-looking bytes), in the `whsec_` form.
pub const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// A second secret, as during a rotation.
pub const SECRET_B: &str = "whsec_c2Vjb25kLXNlY3JldC1vZi0yNC1ieXRlcyE=";

/// The test's own verification, written from the specification: true when one of the
/// `v1,` signatures is the HMAC-SHA256 of `id.timestamp.body` under `secret`.
pub fn verifies(r: &Received, secret: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", r.id, r.timestamp, r.body).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    r.signature
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}
