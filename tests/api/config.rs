//! Configuration problems stop the start with one line naming the key.

use std::process::Command;

use crate::helpers::*;

fn load_err(extra: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("{}\n{extra}", base_config_toml(dir.path()));
    load_config(&toml, dir.path()).expect_err("configuration must be refused")
}

fn with_top_level(line: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("{line}\n{}", base_config_toml(dir.path()));
    load_config(&toml, dir.path()).expect_err("configuration must be refused")
}

#[test]
fn the_base_test_configuration_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let config = load_config(&base_config_toml(dir.path()), dir.path()).unwrap();
    assert_eq!(config.sites.len(), 3);
    assert!(config.is_sandbox());
}

#[test]
fn an_unknown_key_is_refused_by_name() {
    let message = with_top_level("gatway_id = \"typo\"");
    assert!(message.contains("gatway_id"), "{message}");
    assert!(!message.contains('\n'), "one line: {message}");

    let message = load_err("[delivery]\nworkerz = 3");
    assert!(message.contains("workerz"), "{message}");
}

#[test]
fn a_bad_value_is_refused_by_key() {
    let message = with_top_level("listen = \"not an address\"");
    assert!(message.contains("listen"), "{message}");
    let message = load_err("[delivery]\nlease = \"forever\"");
    assert!(message.contains("delivery.lease"), "{message}");
}

#[test]
fn a_malformed_key_file_is_refused_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let toml = base_config_toml(dir.path()).replace(
        &fixture("es256.pub").display().to_string(),
        &fixture("malformed.pub").display().to_string(),
    );
    let message = load_config(&toml, dir.path()).unwrap_err();
    assert!(
        message.contains("sites[0].keys[1].public_key_file"),
        "{message}"
    );
    assert!(message.contains("P-256"), "{message}");
}

#[test]
fn a_key_of_the_wrong_kind_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // An RSA public key configured as Ed25519.
    let toml = base_config_toml(dir.path()).replacen(
        &fixture("ed25519.pub").display().to_string(),
        &fixture("rs256.pub").display().to_string(),
        1,
    );
    let message = load_config(&toml, dir.path()).unwrap_err();
    assert!(
        message.contains("sites[0].keys[0].public_key_file"),
        "{message}"
    );
}

#[test]
fn a_missing_sp_token_file_is_refused_by_key() {
    let message = load_err(
        "[upstream]\nurl = \"https://puhuri.example.org/api/\"\ntoken_file = \"/nonexistent/sp-token\"",
    );
    assert!(message.contains("upstream.token_file"), "{message}");
    assert!(message.contains("/nonexistent/sp-token"), "{message}");
}

#[test]
fn an_upstream_without_a_token_is_refused() {
    let message = load_err("[upstream]\nurl = \"https://puhuri.example.org/api/\"");
    assert!(message.contains("upstream.token_file"), "{message}");
}

#[test]
fn a_short_hs256_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.secret");
    std::fs::write(&short, "too-short").unwrap();
    let toml = base_config_toml(dir.path()).replace(
        &fixture("hs256.secret").display().to_string(),
        &short.display().to_string(),
    );
    let message = load_config(&toml, dir.path()).unwrap_err();
    assert!(message.contains("sites[0].keys[3].secret"), "{message}");
    assert!(message.contains("openssl rand"), "{message}");
}

#[test]
fn a_rate_jitter_allowance_over_half_a_second_is_refused() {
    let message = load_err("[delivery]\nrate_jitter_allowance = \"501ms\"");
    assert!(
        message.contains("delivery.rate_jitter_allowance"),
        "{message}"
    );
}

#[test]
fn a_lease_not_longer_than_the_upstream_timeout_is_refused() {
    let message = load_err("[delivery]\nlease = \"20s\"");
    assert!(message.contains("delivery.lease"), "{message}");
}

#[test]
fn duplicate_kids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let toml = base_config_toml(dir.path()).replace("kid = \"beta-ed\"", "kid = \"alpha-ed\"");
    let message = load_config(&toml, dir.path()).unwrap_err();
    assert!(message.contains("kid"), "{message}");
}

#[test]
fn the_environment_overrides_the_file_and_typos_in_it_are_caught() {
    let bin = env!("CARGO_BIN_EXE_puhuri-gateway");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, base_config_toml(dir.path())).unwrap();

    let output = Command::new(bin)
        .args(["check-config", "--config"])
        .arg(&path)
        .env("PUHURI_GATEWAY_REDIS__URL", "redis://127.0.0.1:1/0")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("redis store"));

    let output = Command::new(bin)
        .args(["check-config", "--config"])
        .arg(&path)
        .env("PUHURI_GATEWAY_DELIVERY__WORKRES", "4")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("workres"), "{stderr}");
}

#[test]
fn check_config_fails_with_the_reason_and_serve_refuses_to_start() {
    let bin = env!("CARGO_BIN_EXE_puhuri-gateway");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "[upstream]\nurl = \"https://puhuri.example.org/api/\"\ntoken_file = \"{}\"\n",
            dir.path().join("missing-token").display()
        ),
    )
    .unwrap();
    for args in [
        vec!["check-config"],
        vec!["serve", "--listen", "127.0.0.1:0"],
    ] {
        let output = Command::new(bin)
            .args(&args)
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} must fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("upstream.token_file"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
}

#[test]
fn token_issue_mints_a_token_the_gateway_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let config = load_config(&base_config_toml(dir.path()), dir.path()).unwrap();
    let token = puhuri_gateway::auth::issue::issue_token(
        &config,
        "alpha",
        None,
        &[puhuri_gateway::auth::Scope::UsageWrite],
        std::time::Duration::from_secs(600),
    )
    .unwrap();
    let registry = puhuri_gateway::auth::SiteRegistry::from_config(&config).unwrap();
    let identity = registry.verify(&token).unwrap();
    assert_eq!(identity.id(), "alpha");
    assert_eq!(identity.kid, "alpha-ed");
    assert_eq!(identity.scopes.len(), 1);

    // beta's only key is a public key: the gateway cannot sign for it.
    let err = puhuri_gateway::auth::issue::issue_token(
        &config,
        "beta",
        None,
        &[],
        std::time::Duration::from_secs(600),
    )
    .unwrap_err();
    assert!(err.contains("sign"), "{err}");
    // A ttl over the maximum is refused rather than minting a token that would be refused.
    let err = puhuri_gateway::auth::issue::issue_token(
        &config,
        "alpha",
        Some("alpha-hs"),
        &[],
        std::time::Duration::from_secs(3 * 3600),
    )
    .unwrap_err();
    assert!(err.contains("max_token_lifetime"), "{err}");
}

#[test]
fn the_example_configuration_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config.example.toml");
    let config = puhuri_gateway::config::Config::load(
        Some(&path),
        &puhuri_gateway::config::Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("deploy/config.example.toml: {e}"));
    assert_eq!(config.sites.len(), 1);
}

/// `redis.cluster` needs a hash tag in `redis.key_prefix`: every key in one slot.
#[test]
fn a_cluster_store_needs_a_hash_tag_in_its_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let redis = |prefix: &str| {
        format!(
            "{}\n[redis]\nurl = \"redis://127.0.0.1:7000/\"\ncluster = true\nkey_prefix = \"{prefix}\"\n",
            base_config_toml(dir.path())
        )
    };
    for untagged in ["puhuri-gateway", "gw{}:", "{gw:"] {
        let err = load_config(&redis(untagged), dir.path()).unwrap_err();
        assert!(
            err.contains("redis.key_prefix") && err.contains("hash tag"),
            "{untagged}: {err}"
        );
    }
    let config = load_config(&redis("{puhuri-gateway}:"), dir.path()).unwrap();
    assert!(matches!(
        config.store,
        puhuri_gateway::config::StoreConfig::Redis { cluster: true, .. }
    ));
}

/// `redis+sentinel://host:port[,host:port]/service[/db]`: checked at start, never quoted back.
#[test]
fn sentinel_urls_are_read_and_bad_ones_named() {
    let dir = tempfile::tempdir().unwrap();
    let redis = |url: &str, extra: &str| {
        format!(
            "{}\n[redis]\nurl = \"{url}\"\n{extra}",
            base_config_toml(dir.path())
        )
    };
    let good = "redis+sentinel://:s3cret-pass@127.0.0.1:26379,127.0.0.1:26380/gw/2";
    let config = load_config(&redis(good, "wait_replicas = 1\n"), dir.path()).unwrap();
    assert!(matches!(
        config.store,
        puhuri_gateway::config::StoreConfig::Redis {
            wait_replicas: 1,
            ..
        }
    ));
    let parsed = puhuri_gateway::queue::redis::SentinelUrl::parse(good)
        .unwrap()
        .unwrap();
    assert_eq!(
        parsed.sentinels,
        [
            ("127.0.0.1".to_string(), 26379),
            ("127.0.0.1".to_string(), 26380)
        ]
    );
    assert_eq!((parsed.service.as_str(), parsed.db), ("gw", 2));
    assert_eq!(parsed.password.as_deref(), Some("s3cret-pass"));
    for (bad, why) in [
        ("redis+sentinel://:s3cret-pass@127.0.0.1:26379", "service"),
        ("redis+sentinel://:s3cret-pass@127.0.0.1/gw", "host:port"),
        ("redis+sentinel://:s3cret-pass@127.0.0.1:x/gw", "port"),
        ("redis+sentinel://:s3cret-pass@127.0.0.1:1//", "service"),
    ] {
        let err = load_config(&redis(bad, ""), dir.path()).unwrap_err();
        assert!(
            err.contains("redis.url") && err.contains(why),
            "{bad}: {err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }
    let err = load_config(&redis(good, "cluster = true\n"), dir.path()).unwrap_err();
    assert!(err.contains("redis.cluster"), "{err}");
}
