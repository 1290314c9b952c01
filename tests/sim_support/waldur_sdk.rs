//! Waldur's generated SDK (PyPI `waldur-api-client` 8.1.3, pinned in `.ci/requirements.txt`)
//! parses what the simulator returns for every call the gateway makes: the script
//! `waldur_sdk_parse.py` beside this file sends the gateway's requests with the SDK's HTTP client
//! and loads each answer through the SDK operation's own response builder (expected status,
//! `from_dict` into its models). Without the package the test is skipped with a message, unless
//! `GATEWAY_TESTS_REQUIRE_EXTERNAL` is set (as `.ci/run` does), where it fails.

use super::*;

/// The SDK's import name and its PyPI pin.
const SDK_MODULE: &str = "waldur_api_client";
const SDK_PIN: &str = "waldur-api-client==8.1.3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waldurs_generated_sdk_parses_what_the_simulator_returns() {
    let python = external::python();
    if !external::require(
        &format!("Python package {SDK_PIN} (for {python}; `pip install {SDK_PIN}`)"),
        external::python_has(SDK_MODULE),
    ) {
        return;
    }
    let t = setup().await;
    let demo_uuids = json!({
        "offering": demo::LUMI_OFFERING_UUID,
        "service_provider": demo::SERVICE_PROVIDER_UUID,
        "sp_customer": demo::SP_CUSTOMER_UUID,
        "resource_ok": demo::RESOURCE_OK_UUID,
        "resource_creating": demo::RESOURCE_CREATING_UUID,
        "resource_slurm": demo::RESOURCE_SLURM_UUID,
        "order_pending": demo::ORDER_PENDING_UUID,
        "order_slurm_executing": demo::ORDER_SLURM_EXECUTING_UUID,
        "user_alice": demo::USER_ALICE_UUID,
        "user_bob": demo::USER_BOB_UUID,
        "today": chrono::Utc::now().format("%Y-%m-%d").to_string(),
    });
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/sim_support/waldur_sdk_parse.py"
    );
    let base = format!("http://{}", t.sim.addr());
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&base)
        .arg(demo::TOKEN)
        .arg(demo_uuids.to_string())
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK could not parse some answers:\n{stdout}\n{stderr}"
    );
    // Every call was made and parsed (the script lists each).
    let passed = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(passed >= 30, "{stdout}");
    assert!(stdout.contains("ok control unexpected status"), "{stdout}");
    assert!(stdout.contains("ok control malformed body"), "{stdout}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    t.sim.stop().await;
}
