//! Swagger UI, loaded in headless Chromium (Debian's `chromium`) from a freshly started sandbox
//! and opened by a host name (not `localhost`, where Swagger UI skips its online validator),
//! renders the API and makes requests to the gateway's own origin only: the docs work offline.
//!
//! Chromium records every request in a NetLog (`--log-net-log`); the page's own requests are
//! those whose initiator or cookie site is the page's origin. Chromium's background requests
//! (component updates, and so on) have neither and are not the page's doing.

use std::time::Duration;

use serde_json::Value;

use crate::sandbox::Sandbox;
use crate::support::external;

/// `chromium` (Debian), `chromium-browser`, or `$GATEWAY_TESTS_CHROMIUM`.
fn chromium() -> Option<String> {
    if let Ok(path) = std::env::var("GATEWAY_TESTS_CHROMIUM") {
        return Some(path);
    }
    ["chromium", "chromium-browser"]
        .into_iter()
        .find_map(|name| {
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {name}")])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        })
}

/// Every URL request Chromium started, as (url, initiator, site for cookies).
fn requests(netlog: &Value) -> Vec<(String, String, String)> {
    let start_job = netlog["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].clone();
    netlog["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == start_job)
        .filter_map(|e| {
            let p = e.get("params")?;
            Some((
                p["url"].as_str()?.to_string(),
                p["initiator"].as_str().unwrap_or("").to_string(),
                p["site_for_cookies"].as_str().unwrap_or("").to_string(),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_asks_nothing_of_any_other_host() {
    let Some(browser) = chromium() else {
        external::require("Debian's chromium (apt-get install chromium)", false);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path());
    let port = sandbox.address.rsplit(':').next().unwrap().to_string();
    let origin = format!("http://gateway.test:{port}");
    let netlog = dir.path().join("netlog.json");
    let mut command = tokio::process::Command::new(browser);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            // The page is opened by a host name, resolved to the sandbox on 127.0.0.1 only.
            "--host-resolver-rules=MAP gateway.test 127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--log-net-log={}", netlog.display()))
        .arg(format!("{origin}/docs/"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("chromium finished within 120 s")
        .expect("chromium ran");
    assert!(
        output.status.success(),
        "chromium failed: {:?}",
        output.status
    );
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains("opblock") && dom.contains("/v1/usage"),
        "Swagger UI did not render the API"
    );

    let netlog: Value = serde_json::from_slice(&std::fs::read(&netlog).unwrap()).unwrap();
    let page_requests: Vec<String> = requests(&netlog)
        .into_iter()
        .filter(|(_, initiator, site)| *initiator == origin || site.contains("gateway.test"))
        .map(|(url, _, _)| url)
        .collect();
    assert!(
        page_requests.contains(&format!("{origin}/openapi.json")),
        "the page did not load the document: {page_requests:?}"
    );
    let elsewhere: Vec<&String> = page_requests
        .iter()
        .filter(|url| !url.starts_with(&format!("{origin}/")))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "the docs page asked other hosts: {elsewhere:?}"
    );
    sandbox.kill();
}
