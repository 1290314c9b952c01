#![allow(dead_code)]
//! Tests that need something a fresh machine lacks (Waldur's schema in `../shared`, a Python
//! package, a browser, a CLI tool) call [`require`] first.
//!
//! The README's `cargo test --locked` must pass on a fresh clone with none of them: such a test
//! then prints one line saying it was skipped and why, and returns. CI (`.ci/run`) installs every
//! prerequisite and sets `GATEWAY_TESTS_REQUIRE_EXTERNAL=1`, which turns a missing one into a
//! failure, so a test cannot silently stop running there.

/// The variable that makes every external prerequisite mandatory (set by `.ci/run`). Not under
/// `PUHURI_GATEWAY_`: that prefix is the gateway's configuration, which refuses unknown keys.
pub const REQUIRE_VAR: &str = "GATEWAY_TESTS_REQUIRE_EXTERNAL";

/// Whether external prerequisites are mandatory in this run.
pub fn required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `true` when `available`; otherwise prints why the calling test is skipped and returns `false`
/// (the test should return), or panics when [`REQUIRE_VAR`] is set.
///
/// `what` names the prerequisite and how to get it, e.g. "Waldur's OpenAPI schema at ../shared
/// (or WALDUR_OPENAPI_SCHEMA)".
pub fn require(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    if required() {
        panic!("{what} is required ({REQUIRE_VAR} is set) but is not available");
    }
    eprintln!("SKIPPED: {what} is not available (set {REQUIRE_VAR}=1 to make this a failure)");
    false
}

/// The Python interpreter for tests that need Python packages: `$GATEWAY_TESTS_PYTHON` (the venv
/// `.ci/run` builds), else `python3`. Whether it has a given package is the caller's check.
pub fn python() -> String {
    std::env::var("GATEWAY_TESTS_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Whether `python()` can import `module`.
pub fn python_has(module: &str) -> bool {
    std::process::Command::new(python())
        .args(["-c", &format!("import {module}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
