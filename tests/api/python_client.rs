//! A client generated from the committed OpenAPI document by openapi-python-client (PyPI, works
//! offline) builds without a warning, and calls the sandbox: it approves an order without a body
//! (the documented optional body), reports usage, and parses every read it makes into its models
//! (the enums included).

use std::process::Command;

use crate::sandbox::{Sandbox, demo_token};
use crate::support::external;

/// The script the generated client runs; prints one line per call: `name status model`.
const CALLS: &str = r#"
import sys
from client import AuthenticatedClient
from client.api.orders import approve_order, list_orders, get_order
from client.api.resources import list_resources, get_resource, get_offering, resource_team, resource_usage
from client.api.jobs import list_jobs
from client.api.usage import report_usage
from client.models import UsageRequest

base, token = sys.argv[1], sys.argv[2]
c = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)
calls = [
    ("approve_order", lambda: approve_order.sync_detailed("0d000000000040008000000000000002", client=c)),
    ("list_orders", lambda: list_orders.sync_detailed(client=c)),
    ("get_order", lambda: get_order.sync_detailed("0d000000000040008000000000000002", client=c)),
    ("list_resources", lambda: list_resources.sync_detailed(client=c)),
    ("get_resource", lambda: get_resource.sync_detailed("7e000000000040008000000000000001", client=c)),
    ("get_offering", lambda: get_offering.sync_detailed("0f000000000040008000000000000001", client=c)),
    ("resource_team", lambda: resource_team.sync_detailed("7e000000000040008000000000000001", client=c)),
    ("resource_usage", lambda: resource_usage.sync_detailed("7e000000000040008000000000000001", client=c)),
    ("report_usage", lambda: report_usage.sync_detailed(client=c, body=UsageRequest.from_dict(
        {"resource_uuid": "7e000000000040008000000000000001", "usages": {"cpu_k_hours": "12.5"}}))),
    ("list_jobs", lambda: list_jobs.sync_detailed(client=c)),
]
for name, call in calls:
    r = call()
    print(name, r.status_code, type(r.parsed).__name__)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_python_client_builds_cleanly_and_approves_without_a_body() {
    let python = external::python();
    if !external::require(
        "openapi-python-client (pip install -r .ci/requirements.txt)",
        external::python_has("openapi_python_client"),
    ) {
        return;
    }
    // The generator formats its output with ruff, installed beside it in the same environment.
    let bin = Command::new(&python)
        .args([
            "-c",
            "import sys, os; print(os.path.dirname(sys.executable))",
        ])
        .output()
        .unwrap();
    let bin = String::from_utf8(bin.stdout).unwrap().trim().to_string();
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
    let work = tempfile::tempdir().unwrap();
    let document = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let generated = Command::new(&python)
        .args([
            "-m",
            "openapi_python_client",
            "generate",
            "--meta",
            "none",
            "--path",
        ])
        .arg(&document)
        .args(["--output-path", "client"])
        .current_dir(work.path())
        .env("PATH", &path)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&generated.stdout),
        String::from_utf8_lossy(&generated.stderr)
    );
    assert!(generated.status.success(), "the generator failed: {said}");
    assert!(
        !said.to_lowercase().contains("warning") && !said.contains("Skipping"),
        "the generator warned: {said}"
    );

    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path());
    let token = demo_token(dir.path());
    let address = sandbox.address.clone();
    let cwd = work.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-c", CALLS, &address, &token])
            .current_dir(cwd)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the generated client failed: {printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines[0], "approve_order 202 JobView", "{printed}");
    assert_eq!(lines[8], "report_usage 202 JobView", "{printed}");
    for line in &lines[1..8] {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts[1], "200", "{line}");
        assert_ne!(parts[2], "NoneType", "{line}");
    }
    assert_eq!(lines[9], "list_jobs 200 JobList", "{printed}");
    sandbox.kill();
}
