//! The deployment files in `deploy/` and the operator-facing parts of the binary they rely on:
//! the systemd unit's hardening (`systemd-analyze security`), the alert rules (`promtool`), the
//! Grafana dashboard, the Kubernetes manifests (schema-checked with `kubernetes-validate`), the
//! Dockerfile and compose file, and `puhuri-gateway healthcheck` against a running gateway.
//!
//! Tools a fresh machine lacks (systemd-analyze, promtool, the Python package) follow the
//! external-prerequisite convention of `support::external`; the checks that need only the files
//! always run.

mod support;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_yaml::Value;
use support::external;

/// Every metric family the gateway exports; alert rules and dashboard panels may use only these.
const METRIC_FAMILIES: &[&str] = &[
    "puhuri_gateway_http_requests_total",
    "puhuri_gateway_http_request_duration_seconds",
    "puhuri_gateway_jobs_accepted_total",
    "puhuri_gateway_jobs_superseded_total",
    "puhuri_gateway_jobs_finished_total",
    "puhuri_gateway_jobs",
    "puhuri_gateway_queue_oldest_ready_age_seconds",
    "puhuri_gateway_delivery_attempts_total",
    "puhuri_gateway_upstream_request_duration_seconds",
    "puhuri_gateway_job_delivery_latency_seconds",
    "puhuri_gateway_lease_reclaims_total",
    "puhuri_gateway_auth_failures_total",
    "puhuri_gateway_store_errors_total",
    "puhuri_gateway_store_up",
    "puhuri_gateway_workers_running",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{rel}: not YAML: {e}"))
        })
        .collect()
}

fn tool_works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The metric family names a PromQL expression or dashboard query uses (`_bucket`, `_count` and
/// `_sum` series belong to their histogram's family).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("puhuri_gateway_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let mut name = &tail[..end];
        for suffix in ["_bucket", "_count", "_sum"] {
            if let Some(family) = name.strip_suffix(suffix)
                && METRIC_FAMILIES.contains(&family)
            {
                name = family;
            }
        }
        names.insert(name.to_string());
        rest = &tail[end..];
    }
    names
}

// ---------------------------------------------------------------------------------------------
// systemd

#[test]
fn systemd_unit_install_steps_create_the_user_and_keep_the_config_root_owned() {
    let unit = read("deploy/puhuri-gateway.service");
    let steps: Vec<&str> = unit
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim())
        .collect();
    let position = |needle: &str| {
        steps
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no install step with `{needle}`"))
    };
    let useradd = position("useradd --system");
    let config_dir = position("install -d -o root -g puhuri-gateway -m 0750 /etc/puhuri-gateway");
    let config_file =
        position("install -o root -g puhuri-gateway -m 0640 deploy/config.example.toml");
    let check = position("check-config");
    let start = position("systemctl enable --now puhuri-gateway");
    assert!(
        useradd < config_dir && config_dir < config_file && config_file < check && check < start
    );
    assert!(
        !steps
            .iter()
            .any(|l| l.contains("-o puhuri-gateway") && l.contains("/etc/")),
        "the configuration directory must stay root's"
    );
    for line in [
        "User=puhuri-gateway",
        "StateDirectory=puhuri-gateway",
        "UMask=0077",
        "ProtectSystem=strict",
        "ExecStartPre=/usr/local/bin/puhuri-gateway check-config",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks `{line}`");
    }
}

#[test]
fn systemd_unit_exposure_is_at_most_2() {
    if !external::require(
        "systemd-analyze with --offline (Debian package systemd, version 250 or later)",
        tool_works("systemd-analyze", &["security", "--offline=true", "--help"]),
    ) {
        return;
    }
    let (_, out) = run(
        "systemd-analyze",
        &[
            "security",
            "--offline=true",
            "--no-pager",
            "deploy/puhuri-gateway.service",
        ],
    );
    let exposure: f64 = out
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for puhuri-gateway.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0:\n{out}");
}

/// The system calls a systemd syscall-filter set (`@system-service`, ...) expands to, nested
/// sets included, as this machine's `systemd-analyze syscall-filter` lists them.
fn syscall_sets() -> std::collections::BTreeMap<String, Vec<String>> {
    let (ok, out) = run("systemd-analyze", &["syscall-filter", "--no-pager"]);
    assert!(ok, "systemd-analyze syscall-filter:\n{out}");
    let mut sets = std::collections::BTreeMap::<String, Vec<String>>::new();
    let mut current = None;
    for line in out.lines() {
        if line.starts_with('@') {
            let name = line.trim().to_string();
            sets.insert(name.clone(), Vec::new());
            current = Some(name);
        } else if let Some(name) = &current {
            let item = line.trim();
            if !item.is_empty() && !item.starts_with('#') {
                sets.get_mut(name).unwrap().push(item.to_string());
            }
        }
    }
    sets
}

fn expand(sets: &std::collections::BTreeMap<String, Vec<String>>, item: &str) -> BTreeSet<String> {
    match item.strip_prefix('@') {
        Some(_) => sets
            .get(item)
            .unwrap_or_else(|| panic!("unknown syscall set {item}"))
            .iter()
            .flat_map(|i| expand(sets, i))
            .collect(),
        None => [item.to_string()].into(),
    }
}

/// What the unit's `SystemCallFilter=` lines allow: the union of the allow lists minus the union
/// of the `~` deny lists.
fn unit_syscall_allowlist() -> BTreeSet<String> {
    let sets = syscall_sets();
    let unit = read("deploy/puhuri-gateway.service");
    let (mut allow, mut deny) = (BTreeSet::new(), BTreeSet::new());
    for value in unit
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
    {
        let (target, items) = match value.strip_prefix('~') {
            Some(rest) => (&mut deny, rest),
            None => (&mut allow, value),
        };
        for item in items.split_whitespace() {
            target.extend(expand(&sets, item));
        }
    }
    assert!(!allow.is_empty(), "the unit has no syscall allow list");
    allow.difference(&deny).cloned().collect()
}

/// The gateway started under `strace -f`, taken through readiness, an accepted usage report
/// delivered to the simulator and a clean SIGTERM shutdown, makes only system calls the unit's
/// filter allows and never maps memory writable and executable (`MemoryDenyWriteExecute=yes`).
/// No systemd runs as init here, so this is how the unit is shown to still start the gateway.
#[test]
fn systemd_unit_sandbox_allows_every_system_call_the_gateway_makes() {
    if !external::require(
        "strace and systemd-analyze (Debian packages strace, systemd)",
        tool_works("strace", &["-V"]) && tool_works("systemd-analyze", &["--version"]),
    ) {
        return;
    }
    let allowed = unit_syscall_allowlist();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let trace = dir.path().join("trace");
    let port = free_port();
    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_puhuri-gateway"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .env_remove("PUHURI_GATEWAY_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start strace");
    // The traced gateway is the child of strace whose command line holds its address: strace
    // also forks short-lived children of its own at start (to test what ptrace offers), which a
    // signal must not be sent to.
    let listen = format!("127.0.0.1:{port}");
    let gateway_pid = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let children =
                std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", strace.id()))
                    .unwrap_or_default();
            let gateway = children.split_whitespace().find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains(&listen))
            });
            if let Some(pid) = gateway {
                break pid.to_string();
            }
            if Instant::now() >= deadline {
                let _ = strace.kill();
                let _ = strace.wait();
                panic!("strace started no gateway");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let stop = |strace: &mut Child| {
        let _ = Command::new("kill").args(["-TERM", &gateway_pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while strace.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", &gateway_pid]).status();
        let _ = strace.kill();
        let _ = strace.wait();
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready(port) {
        if Instant::now() > deadline {
            stop(&mut strace);
            panic!("the traced gateway did not get ready");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let token = std::fs::read_to_string(data.join("demo.token")).unwrap();
    let delivered = post_usage_and_wait(port, token.trim());
    stop(&mut strace);
    assert!(delivered, "the usage report was not delivered");

    let trace = std::fs::read_to_string(&trace).unwrap();
    let mut used = BTreeSet::new();
    for line in trace.lines() {
        // "PID name(args...) = result", or a resumed call "PID <... name resumed>"
        let rest = line
            .split_once(' ')
            .map(|(_, r)| r.trim_start())
            .unwrap_or("");
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && rest[name.len()..].starts_with('(') {
            used.insert(name);
        }
        if (rest.starts_with("mmap(") || rest.starts_with("mprotect("))
            && rest.contains("PROT_WRITE|PROT_EXEC")
        {
            panic!("writable and executable memory, refused by MemoryDenyWriteExecute: {line}");
        }
    }
    assert!(used.len() > 20, "too few system calls traced: {used:?}");
    let refused: Vec<_> = used.difference(&allowed).collect();
    assert!(
        refused.is_empty(),
        "the unit's SystemCallFilter refuses system calls the gateway made: {refused:?}"
    );
}

/// `POST /v1/usage` with `Prefer: wait=10` over plain HTTP/1.0; true when the job succeeded.
fn post_usage_and_wait(port: u16, token: &str) -> bool {
    use std::io::{Read, Write};
    let body =
        r#"{"resource_uuid": "7e000000000040008000000000000001", "usages": {"cpu_k_hours": 12.5}}"#;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST /v1/usage HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nPrefer: wait=10\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains(r#""state":"succeeded""#)
}

// ---------------------------------------------------------------------------------------------
// Prometheus and Grafana

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    if !external::require(
        "promtool (Debian package prometheus)",
        tool_works("promtool", &["--version"]),
    ) {
        return;
    }
    let (ok, out) = run(
        "promtool",
        &["check", "rules", "deploy/prometheus/alerts.yml"],
    );
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = run(
        "promtool",
        &["test", "rules", "deploy/prometheus/alerts.test.yml"],
    );
    assert!(ok, "promtool test rules:\n{out}");
}

#[test]
fn alert_rules_cover_each_condition_and_use_exported_metrics() {
    let docs = yaml_docs("deploy/prometheus/alerts.yml");
    let groups = docs[0]["groups"].as_sequence().expect("groups");
    let mut alerts = BTreeSet::new();
    for rule in groups
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules"))
    {
        let name = rule["alert"].as_str().expect("alert name");
        let expr = rule["expr"].as_str().expect("expr");
        assert!(
            rule["annotations"]["summary"].is_string()
                && rule["annotations"]["description"].is_string()
                && rule["labels"]["severity"].is_string(),
            "{name}: summary, description and severity"
        );
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{name}: uses no gateway metric");
        for metric in names {
            assert!(
                METRIC_FAMILIES.contains(&metric.as_str()),
                "{name} uses `{metric}`, which the gateway does not export"
            );
        }
        alerts.insert(name.to_string());
    }
    for wanted in [
        "PuhuriGatewayQueueStalled",
        "PuhuriGatewayDeadJobs",
        "PuhuriGatewayUpstreamAuthRejected",
        "PuhuriGatewayStoreDown",
        "PuhuriGatewayNoWorker",
    ] {
        assert!(alerts.contains(wanted), "no alert {wanted}");
    }
}

#[test]
fn grafana_dashboard_is_valid_and_queries_exported_metrics() {
    let text = read("deploy/grafana/puhuri-gateway.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    assert_eq!(dashboard["uid"], "puhuri-gateway");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("panel title");
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "{title}: duplicate id"
        );
        let grid = &panel["gridPos"];
        assert!(
            grid["w"].as_u64().is_some_and(|w| w > 0 && w <= 24)
                && grid["h"].as_u64().is_some_and(|h| h > 0),
            "{title}: gridPos"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            let names = metric_names(expr);
            assert!(
                !names.is_empty(),
                "{title}: `{expr}` uses no gateway metric"
            );
            for metric in names {
                assert!(
                    METRIC_FAMILIES.contains(&metric.as_str()),
                    "{title} queries `{metric}`, which the gateway does not export"
                );
                used.insert(metric);
            }
        }
    }
    let unused: Vec<_> = METRIC_FAMILIES
        .iter()
        .filter(|m| !used.contains(**m))
        .collect();
    assert!(unused.is_empty(), "no panel shows {unused:?}");
}

// ---------------------------------------------------------------------------------------------
// Docker and compose

#[test]
fn docker_image_checks_readiness_with_its_own_binary_and_runs_as_a_fixed_uid() {
    let dockerfile = read("deploy/Dockerfile");
    let healthcheck: String = dockerfile
        .lines()
        .skip_while(|l| !l.starts_with("HEALTHCHECK"))
        .take_while(|l| !l.starts_with("ENTRYPOINT"))
        .collect();
    assert!(
        healthcheck.contains(r#"CMD ["/usr/local/bin/puhuri-gateway", "healthcheck""#),
        "HEALTHCHECK: {healthcheck}"
    );
    assert!(
        !healthcheck.contains("curl") && !healthcheck.contains("wget"),
        "the health check needs no HTTP client in the image"
    );
    assert!(dockerfile.lines().any(|l| l == "USER 10001:10001"));
    assert!(dockerfile.contains("--uid 10001"));

    let ignore = read(".dockerignore");
    let lines: BTreeSet<&str> = ignore.lines().map(str::trim).collect();
    for entry in ["target/", ".git/", "data/"] {
        assert!(lines.contains(entry), ".dockerignore lacks {entry}");
    }
}

#[test]
fn compose_runs_the_gateway_as_the_image_uid_with_documented_secrets() {
    let compose = &yaml_docs("deploy/docker-compose.yml")[0];
    let gateway = &compose["services"]["gateway"];
    assert_eq!(gateway["user"].as_str(), Some("10001:10001"));
    assert_eq!(gateway["read_only"].as_bool(), Some(true));
    assert_eq!(gateway["secrets"][0].as_str(), Some("sp-token"));
    assert_eq!(
        compose["secrets"]["sp-token"]["file"].as_str(),
        Some("./sp-token")
    );
    assert_eq!(
        gateway["environment"]["PUHURI_GATEWAY_UPSTREAM__TOKEN_FILE"].as_str(),
        Some("/run/secrets/sp-token")
    );
    assert_eq!(
        gateway["depends_on"]["redis"]["condition"].as_str(),
        Some("service_healthy")
    );
    let redis = compose["services"]["redis"]["command"]
        .as_sequence()
        .expect("redis command");
    let redis: Vec<&str> = redis.iter().filter_map(Value::as_str).collect();
    assert!(redis.windows(2).any(|w| w == ["--appendfsync", "always"]));
    let text = read("deploy/docker-compose.yml");
    assert!(
        text.contains("must be readable by uid or gid 10001"),
        "the compose file says who must be able to read the mounted secrets"
    );
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

fn kubernetes_manifests() -> Vec<(String, Value)> {
    let kustomization = &yaml_docs("deploy/kubernetes/kustomization.yaml")[0];
    kustomization["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("resource path"))
        .flat_map(|file| {
            yaml_docs(&format!("deploy/kubernetes/{file}"))
                .into_iter()
                .map(move |doc| (file.to_string(), doc))
        })
        .collect()
}

fn by_kind<'a>(manifests: &'a [(String, Value)], kind: &str) -> &'a Value {
    &manifests
        .iter()
        .find(|(_, m)| m["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
        .1
}

#[test]
fn kubernetes_deployment_probes_secrets_config_and_confinement() {
    let manifests = kubernetes_manifests();
    let deployment = by_kind(&manifests, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(10001));
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"].as_bool(),
        Some(false)
    );
    let volumes = pod["volumes"].as_sequence().expect("volumes");
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    assert_eq!(
        volume("secrets")["secret"]["secretName"].as_str(),
        Some("puhuri-gateway-secrets")
    );
    let config_map = volume("config")["configMap"]["name"]
        .as_str()
        .expect("configMap");
    let mounts = container["volumeMounts"].as_sequence().expect("mounts");
    let mount = |name: &str| {
        mounts
            .iter()
            .find(|m| m["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no mount {name}"))["mountPath"]
            .as_str()
            .expect("mountPath")
            .to_string()
    };
    let secrets_dir = mount("secrets");
    assert_eq!(mount("config"), "/etc/puhuri-gateway");

    // the ConfigMap is generated from gateway.toml, which reads its secrets from the mounted files
    let kustomization = &yaml_docs("deploy/kubernetes/kustomization.yaml")[0];
    let generator = &kustomization["configMapGenerator"][0];
    assert_eq!(generator["name"].as_str(), Some(config_map));
    let toml_text = read("deploy/kubernetes/gateway.toml");
    let config: toml_value::Table = toml_value::parse(&toml_text);
    for key in ["upstream.token_file", "redis.url_file"] {
        let path = toml_value::get(&config, key).unwrap_or_else(|| panic!("no {key}"));
        assert!(
            path.starts_with(&format!("{secrets_dir}/")),
            "{key} = {path}"
        );
    }
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    for kind in ["PodDisruptionBudget", "NetworkPolicy"] {
        let m = by_kind(&manifests, kind);
        let sel = if kind == "NetworkPolicy" {
            &m["spec"]["podSelector"]["matchLabels"]
        } else {
            &m["spec"]["selector"]["matchLabels"]
        };
        assert_eq!(sel, selector, "{kind} selects the gateway's pods");
    }
}

/// Reads `key.path` string values from TOML without a TOML crate in the tests: the gateway's own
/// configuration loader checks the file for real in
/// [`kubernetes_config_is_accepted_by_the_gateway`].
mod toml_value {
    pub type Table = Vec<(String, String)>;

    pub fn parse(text: &str) -> Table {
        let mut section = String::new();
        let mut out = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.trim_matches(|c| c == '[' || c == ']').to_string();
            } else if let Some((k, v)) = line.split_once('=')
                && !line.starts_with('#')
            {
                let key = if section.is_empty() {
                    k.trim().to_string()
                } else {
                    format!("{section}.{}", k.trim())
                };
                out.push((key, v.trim().trim_matches('"').to_string()));
            }
        }
        out
    }

    pub fn get(table: &Table, key: &str) -> Option<String> {
        table.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }
}

#[test]
fn kubernetes_config_is_accepted_by_the_gateway() {
    // the configuration as the pod sees it: secrets as files in the mounted directory
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("sp-token"), "sp-token-for-test\n").unwrap();
    std::fs::write(secrets.join("redis-url"), "redis://127.0.0.1:1/0\n").unwrap();
    let example = read("deploy/config.example.toml");
    let public_key = example
        .split("public_key = \"\"\"\n")
        .nth(1)
        .and_then(|s| s.split("\"\"\"").next())
        .expect("the example's public key");
    std::fs::write(secrets.join("lumi-accounting.pub"), public_key).unwrap();
    let config = read("deploy/kubernetes/gateway.toml")
        .replace(
            "/run/secrets/puhuri-gateway",
            &secrets.display().to_string(),
        )
        .replace("/var/lib/puhuri-gateway", &dir.path().display().to_string());
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_puhuri-gateway"))
        .args(["check-config", "--config"])
        .arg(&file)
        .env_remove("PUHURI_GATEWAY_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("puhuri mode, redis store"));
}

#[test]
fn kubernetes_manifests_match_the_kubernetes_schema() {
    let python = external::python();
    if !external::require(
        "the Python package kubernetes-validate (.ci/requirements.txt; GATEWAY_TESTS_PYTHON)",
        external::python_has("kubernetes_validate"),
    ) {
        return;
    }
    let kustomization = &yaml_docs("deploy/kubernetes/kustomization.yaml")[0];
    let files: Vec<String> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| format!("deploy/kubernetes/{}", r.as_str().unwrap()))
        .collect();
    let mut args = vec![
        "-m".to_string(),
        "kubernetes_validate".to_string(),
        "--strict".to_string(),
        "--kubernetes-version".to_string(),
        "1.30".to_string(),
    ];
    args.extend(files);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out) = run(&python, &args);
    assert!(ok, "kubernetes-validate:\n{out}");
}

/// `kubectl apply -k deploy/kubernetes/` (the README's command) builds what the tests above
/// check: `kubectl kustomize` renders every manifest into the namespace, the generated ConfigMap
/// holds gateway.toml as it is and the Deployment mounts it under its hashed name, and the image
/// is the one the kustomization sets. kubectl is not among Debian's packages, so where it is not
/// installed this test says so and returns, also in CI.
#[test]
fn kubectl_builds_the_kustomization_the_readme_applies() {
    if !tool_works("kubectl", &["version", "--client"]) {
        eprintln!("SKIPPED: kubectl is not installed");
        return;
    }
    let (ok, out) = run("kubectl", &["kustomize", "deploy/kubernetes"]);
    assert!(ok, "kubectl kustomize:\n{out}");
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&out)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service"
        ]),
        "{out}"
    );
    for d in &docs {
        assert_eq!(d["metadata"]["namespace"], "puhuri-gateway", "{d:?}");
    }
    let config_map = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let name = config_map["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("puhuri-gateway-config-"),
        "hashed name: {name}"
    );
    assert_eq!(
        config_map["data"]["gateway.toml"].as_str().unwrap(),
        read("deploy/kubernetes/gateway.toml")
    );
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let volumes = pod["volumes"].as_sequence().unwrap();
    assert!(
        volumes.iter().any(|v| v["configMap"]["name"] == name),
        "the Deployment mounts {name}: {volumes:?}"
    );
    assert_eq!(
        pod["containers"][0]["image"],
        "registry.example.org/puhuri-gateway:0.1.0"
    );
}

// ---------------------------------------------------------------------------------------------
// the binary: healthcheck and the embedded store's file

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `puhuri-gateway serve` process in sandbox mode; killed (by its pid) on drop.
struct Gateway {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    data: PathBuf,
    stdout: PathBuf,
}

impl Gateway {
    fn start() -> Gateway {
        Gateway::start_with(&[])
    }

    /// Started with extra environment, not waiting for it to be ready.
    fn start_unready_with(env: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let stdout = dir.path().join("stdout");
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_puhuri-gateway"));
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .env_remove("PUHURI_GATEWAY_CONFIG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start the gateway");
        Gateway {
            child,
            port,
            _dir: dir,
            data,
            stdout,
        }
    }

    /// With extra environment (`PUHURI_GATEWAY_...` configuration keys).
    fn start_with(env: &[(&str, &str)]) -> Gateway {
        let mut gateway = Gateway::start_unready_with(env);
        let (port, stderr) = (gateway.port, gateway._dir.path().join("stderr"));
        // the port is bound before the store opens: wait until /readyz says 200
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(port) {
            if let Ok(Some(status)) = gateway.child.try_wait() {
                let err = std::fs::read_to_string(&stderr).unwrap_or_default();
                panic!("the gateway exited ({status}): {err}");
            }
            assert!(Instant::now() < deadline, "the gateway did not get ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        gateway
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The sandbox site's token (written to the data directory at start).
    fn token(&self) -> String {
        std::fs::read_to_string(self.data.join("demo.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The in-process simulator's control URL (`.../__sim/`), as printed at start.
    fn simulator(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
            if let Some(url) = out
                .lines()
                .find_map(|l| l.trim().strip_prefix("Simulator state:"))
                .and_then(|rest| rest.trim().strip_suffix("calls"))
            {
                return url.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no simulator URL printed:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, as a crash.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /readyz` answered 200 (a plain HTTP/1.0 exchange; the client under test is not used).
fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn healthcheck(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_puhuri-gateway"));
    cmd.arg("healthcheck")
        .args(args)
        .env_remove("PUHURI_GATEWAY_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn healthcheck_asks_readyz_and_fails_when_nothing_answers() {
    let gateway = Gateway::start();
    let url = format!("http://127.0.0.1:{}/readyz", gateway.port);
    let (ok, out) = healthcheck(&["--url", &url], &[]);
    assert!(ok, "{out}");
    assert!(out.contains(r#""status":"ready""#), "{out}");

    // as in the image: no --url, the listen address from the environment, 0.0.0.0 asked on loopback
    let listen = format!("0.0.0.0:{}", gateway.port);
    let (ok, out) = healthcheck(&[], &[("PUHURI_GATEWAY_LISTEN", &listen)]);
    assert!(ok, "{out}");

    // a route that is not 200 is unhealthy, and so is a port where nothing listens
    let (ok, out) = healthcheck(
        &["--url", &format!("http://127.0.0.1:{}/nope", gateway.port)],
        &[],
    );
    assert!(!ok && out.contains("404"), "{out}");
    let closed = free_port();
    let (ok, out) = healthcheck(
        &[
            "--url",
            &format!("http://127.0.0.1:{closed}/readyz"),
            "--timeout",
            "2s",
        ],
        &[],
    );
    assert!(!ok && out.contains("did not answer"), "{out}");
}

#[cfg(unix)]
#[test]
fn embedded_store_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let gateway = Gateway::start();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let store = gateway.data.join("jobs.redb");
    assert_eq!(mode(&store), 0o600, "{}", store.display());
    for secret in ["sandbox.secret", "demo.token"] {
        assert_eq!(mode(&gateway.data.join(secret)), 0o600, "{secret}");
    }
    drop(gateway);

    // a store file an earlier version left world-readable is restricted on the next start
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.redb");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = puhuri_gateway::config::StoreConfig::Embedded {
        dir: dir.path().to_path_buf(),
    };
    drop(
        rt.block_on(puhuri_gateway::queue::open_store(&store, None))
            .unwrap(),
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let opened = rt.block_on(puhuri_gateway::queue::open_store(&store, None));
    assert!(opened.is_ok());
    assert_eq!(mode(&file), 0o600);
}

/// `serve` on a data directory whose store file is `contents`: it must not start. Returns the
/// exit status's success and what it wrote to stderr.
fn serve_on_store_file(contents: &[u8]) -> (bool, String, PathBuf, tempfile::TempDir) {
    serve_on_store_path(|file| std::fs::write(file, contents).unwrap())
}

/// `serve` on a data directory where `make` put something at the store file's path.
fn serve_on_store_path(make: impl FnOnce(&Path)) -> (bool, String, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let file = data.join("jobs.redb");
    make(&file);
    let mut child = Command::new(env!("CARGO_BIN_EXE_puhuri-gateway"))
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(&data)
        .env_remove("PUHURI_GATEWAY_CONFIG")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the gateway started on a store file it must refuse");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.success(), err, file, dir)
}

/// The operator sees one line naming the file and what to do, never a panic; the file is left
/// as it was (nothing initialised over it).
fn assert_refused_in_one_line(ok: bool, err: &str, file: &Path, says: &str) {
    assert!(!ok, "exit status 0: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line:\n{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    assert!(
        err.contains(&file.display().to_string()),
        "names the file: {err}"
    );
    assert!(err.contains(says), "says `{says}`: {err}");
    assert!(err.contains("backup"), "says what to do: {err}");
}

#[test]
fn serve_refuses_an_empty_store_file_in_one_line() {
    let (ok, err, file, _dir) = serve_on_store_file(b"");
    assert_refused_in_one_line(ok, &err, &file, "empty");
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        0,
        "not initialised"
    );
}

#[test]
fn serve_refuses_a_truncated_or_foreign_store_file_in_one_line() {
    // a real store with jobs, cut in half
    let source = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = puhuri_gateway::queue::embedded::EmbeddedStore::open(source.path())
            .await
            .unwrap();
        for n in 0..50 {
            use puhuri_gateway::queue::JobStore;
            store
                .enqueue(puhuri_gateway::queue::NewJob {
                    site: "site".into(),
                    operation: "order.approve".into(),
                    object_key: format!("order:{n}"),
                    coalesce_key: None,
                    payload: serde_json::json!({"n": n, "pad": "x".repeat(2000)}),
                    idempotency: None,
                })
                .await
                .unwrap();
        }
    });
    let whole = std::fs::read(source.path().join("jobs.redb")).unwrap();
    let half = &whole[..whole.len() / 2];
    let (ok, err, file, _dir) = serve_on_store_file(half);
    assert_refused_in_one_line(ok, &err, &file, "damaged");
    assert_eq!(std::fs::read(&file).unwrap(), half, "left as it was");

    let (ok, err, file, _dir) = serve_on_store_file(b"not a job store, just text\n");
    assert_refused_in_one_line(ok, &err, &file, "damaged");
}

/// A store path that cannot be read as a file (here a directory: the tests run as root, for
/// whom file permissions do not stop a read) stops the start the same way, and is left alone.
#[test]
fn serve_refuses_an_unreadable_store_file_in_one_line() {
    let (ok, err, file, _dir) = serve_on_store_path(|file| {
        std::fs::create_dir(file).unwrap();
        std::fs::write(file.join("inside"), b"kept").unwrap();
    });
    assert_refused_in_one_line(ok, &err, &file, "damaged");
    assert_eq!(
        std::fs::read(file.join("inside")).unwrap(),
        b"kept",
        "left as it was"
    );
}

// ---------------------------------------------------------------------------------------------
// /metrics after a scripted flow

/// A sample: its metric name, its labels and its value.
type Sample = (String, Vec<(String, String)>, f64);

/// One scrape of `/metrics`: every sample with its labels.
struct Scrape(Vec<Sample>);

impl Scrape {
    async fn of(client: &reqwest::Client, gateway: &Gateway) -> Scrape {
        let text = client
            .get(gateway.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut samples = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let labels = rest
                        .trim_end_matches('}')
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').expect("label");
                            (k.to_string(), v.trim_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
                None => (series.to_string(), Vec::new()),
            };
            samples.push((name, labels, value.parse().expect("sample value")));
        }
        Scrape(samples)
    }

    /// The sum of the samples of `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    fn families(&self) -> BTreeSet<String> {
        self.0
            .iter()
            .map(|(n, _, _)| {
                ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| n.strip_suffix(s))
                    .filter(|f| METRIC_FAMILIES.contains(f))
                    .unwrap_or(n)
                    .to_string()
            })
            .collect()
    }
}

async fn post_usage(
    client: &reqwest::Client,
    gateway: &Gateway,
    token: &str,
    resource: &str,
    amount: f64,
    wait: bool,
) -> reqwest::Response {
    let mut request = client
        .post(gateway.url("/v1/usage"))
        .bearer_auth(token)
        .json(&serde_json::json!({"resource_uuid": resource, "usages": {"cpu_k_hours": amount}}));
    if wait {
        request = request.header("Prefer", "wait=10");
    }
    request.send().await.unwrap()
}

async fn wait_for_state(
    client: &reqwest::Client,
    gateway: &Gateway,
    token: &str,
    job: &str,
    state: &str,
) {
    let within = Duration::from_secs(30);
    support::poll::job_where(client, &gateway.url(""), token, job, within, |s| s == state).await;
}

const RESOURCE_OK: &str = puhuri_gateway::sim::demo::RESOURCE_OK_UUID;

/// One more resource in the gateway's simulator (`sim`: its control URL); its uuid.
async fn another_resource(client: &reqwest::Client, sim: &str) -> String {
    let seeded = support::client::expect(
        client
            .post(format!("{sim}resources"))
            .json(&serde_json::json!({"count": 1})),
        201,
    )
    .await;
    seeded.body[0]["uuid"].as_str().unwrap().to_string()
}

/// The simulator's next `set_usage` answers after 2.5 s (holding an in-flight place).
async fn slow_next_set_usage(client: &reqwest::Client, sim: &str) {
    let slow = serde_json::json!({"kind": "latency", "latency_ms": 2500, "times": 1,
        "path_prefix": "marketplace-component-usages/set_usage/"});
    support::client::expect(client.post(format!("{sim}faults")).json(&slow), 201).await;
}

/// A usage report waiting behind the in-flight limit is superseded by the next report of the
/// same resource and month: `puhuri_gateway_jobs_superseded_total` counts it, by operation, and
/// the newer report is delivered (the embedded store; Redis's enqueue answers the same count,
/// `cargo test --test queue`).
#[test]
fn superseded_jobs_are_counted_by_operation() {
    let env = [("PUHURI_GATEWAY_DELIVERY__MAX_IN_FLIGHT", "1")];
    let gateway = Gateway::start_with(&env);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let token = gateway.token();
    let sim = gateway.simulator();
    rt.block_on(async {
        let other = another_resource(&client, &sim).await;
        // a slow call holds the only in-flight place...
        slow_next_set_usage(&client, &sim).await;
        let slow_job: serde_json::Value =
            post_usage(&client, &gateway, &token, RESOURCE_OK, 1.0, false)
                .await
                .json()
                .await
                .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // ...while two reports of another resource's month arrive: the second replaces the first
        let first: serde_json::Value = post_usage(&client, &gateway, &token, &other, 1.0, false)
            .await
            .json()
            .await
            .unwrap();
        let second: serde_json::Value = post_usage(&client, &gateway, &token, &other, 2.0, false)
            .await
            .json()
            .await
            .unwrap();
        for (job, state) in [
            (&first, "superseded"),
            (&second, "succeeded"),
            (&slow_job, "succeeded"),
        ] {
            wait_for_state(
                &client,
                &gateway,
                &token,
                job["job_id"].as_str().unwrap(),
                state,
            )
            .await;
        }
        let s = Scrape::of(&client, &gateway).await;
        let usage = ("operation", "usage.report");
        assert_eq!(s.value("puhuri_gateway_jobs_accepted_total", &[usage]), 3.0);
        assert_eq!(
            s.value("puhuri_gateway_jobs_superseded_total", &[usage]),
            1.0
        );
        assert_eq!(
            s.value(
                "puhuri_gateway_jobs_finished_total",
                &[usage, ("outcome", "succeeded")]
            ),
            2.0
        );
    });
}

/// Two gateway processes on one Redis, each with its own simulator, scraped after: site API
/// calls (good, unauthenticated, unknown routes), deliveries that succeed, one Puhuri refuses
/// with 401, one slowed down while a second job waits behind the in-flight limit, Redis stopped
/// and started again, and a gateway killed mid-delivery whose job the other reclaims.
#[test]
fn metrics_after_a_scripted_flow() {
    let mut redis = support::redis::RedisServer::start_durable();
    let prefix = format!("{{metrics-{}}}:", uuid::Uuid::new_v4().simple());
    let redis_url = redis.url();
    let env = [
        ("PUHURI_GATEWAY_REDIS__URL", redis_url.as_str()),
        ("PUHURI_GATEWAY_REDIS__KEY_PREFIX", prefix.as_str()),
        ("PUHURI_GATEWAY_REDIS__POOL_WAIT_TIMEOUT", "500ms"),
        ("PUHURI_GATEWAY_DELIVERY__MAX_IN_FLIGHT", "1"),
        ("PUHURI_GATEWAY_DELIVERY__LEASE", "5s"),
        ("PUHURI_GATEWAY_UPSTREAM__TIMEOUT", "3s"),
    ];
    let mut first = Gateway::start_with(&env);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let token = first.token();
    let sim = first.simulator();
    rt.block_on(async {
        let other = another_resource(&client, &sim).await;

        // the site API: one good call, three refused at authentication, one unknown route
        assert_eq!(
            client
                .get(first.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let whoami = first.url("/v1/whoami");
        for auth in [None, Some("Bearer not-a-jwt"), Some("Basic eDp5")] {
            let mut request = client.get(&whoami);
            if let Some(value) = auth {
                request = request.header("Authorization", value);
            }
            assert_eq!(request.send().await.unwrap().status(), 401);
        }
        assert_eq!(
            client
                .get(first.url("/nope"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );

        // delivered; then refused by Puhuri with 401
        let ok = post_usage(&client, &first, &token, RESOURCE_OK, 1.0, true).await;
        let ok: serde_json::Value = ok.json().await.unwrap();
        assert_eq!(ok["state"], "succeeded", "{ok}");
        let fault = serde_json::json!({"kind": "error", "status": 401, "times": 1,
            "path_prefix": "marketplace-component-usages/set_usage/"});
        assert_eq!(
            client
                .post(format!("{sim}faults"))
                .json(&fault)
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
        let refused = post_usage(&client, &first, &token, RESOURCE_OK, 2.0, true).await;
        let refused: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(refused["state"], "failed", "{refused}");

        // a slow call holds the only in-flight place while another resource's job waits
        slow_next_set_usage(&client, &sim).await;
        let a: serde_json::Value = post_usage(&client, &first, &token, RESOURCE_OK, 3.0, false)
            .await
            .json()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let b: serde_json::Value = post_usage(&client, &first, &token, &other, 1.0, false)
            .await
            .json()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let waiting = Scrape::of(&client, &first).await;
        let age = waiting.value("puhuri_gateway_queue_oldest_ready_age_seconds", &[]);
        assert!((0.5..2.3).contains(&age), "oldest due job's age {age}");
        for job in [&a, &b] {
            wait_for_state(
                &client,
                &first,
                &token,
                job["job_id"].as_str().unwrap(),
                "succeeded",
            )
            .await;
        }

        let s = Scrape::of(&client, &first).await;
        let missing: Vec<_> = METRIC_FAMILIES
            .iter()
            .filter(|f| !s.families().contains(**f))
            .collect();
        assert!(missing.is_empty(), "families not exported: {missing:?}");
        let get = [("method", "GET")];
        assert_eq!(
            s.value(
                "puhuri_gateway_http_requests_total",
                &[("route", "/healthz"), get[0], ("status_class", "2xx")]
            ),
            1.0
        );
        assert_eq!(
            s.value(
                "puhuri_gateway_http_requests_total",
                &[("route", "/v1/whoami"), ("status_class", "4xx")]
            ),
            3.0
        );
        assert_eq!(
            s.value(
                "puhuri_gateway_http_requests_total",
                &[("route", "unmatched"), ("status_class", "4xx")]
            ),
            1.0
        );
        assert_eq!(
            s.value(
                "puhuri_gateway_http_requests_total",
                &[
                    ("route", "/v1/usage"),
                    ("method", "POST"),
                    ("status_class", "2xx")
                ]
            ),
            4.0
        );
        assert_eq!(
            s.value(
                "puhuri_gateway_http_request_duration_seconds_count",
                &[("route", "/v1/usage"), ("method", "POST")]
            ),
            4.0
        );
        assert_eq!(
            s.value(
                "puhuri_gateway_auth_failures_total",
                &[("reason", "missing_token")]
            ),
            1.0
        );
        assert_eq!(
            s.value(
                "puhuri_gateway_auth_failures_total",
                &[("reason", "malformed")]
            ),
            1.0
        );
        assert_eq!(
            s.value(
                "puhuri_gateway_auth_failures_total",
                &[("reason", "malformed_header")]
            ),
            1.0
        );
        let usage = ("operation", "usage.report");
        assert_eq!(s.value("puhuri_gateway_jobs_accepted_total", &[usage]), 4.0);
        assert_eq!(
            s.value(
                "puhuri_gateway_delivery_attempts_total",
                &[usage, ("outcome", "succeeded"), ("status_class", "2xx")]
            ),
            3.0
        );
        assert_eq!(
            s.value(
                "puhuri_gateway_delivery_attempts_total",
                &[usage, ("outcome", "failed"), ("status_class", "401")]
            ),
            1.0
        );
        assert_eq!(
            s.value(
                "puhuri_gateway_jobs_finished_total",
                &[usage, ("outcome", "succeeded")]
            ),
            3.0
        );
        assert_eq!(
            s.value(
                "puhuri_gateway_jobs_finished_total",
                &[usage, ("outcome", "failed")]
            ),
            1.0
        );
        assert_eq!(
            s.value(
                "puhuri_gateway_upstream_request_duration_seconds_count",
                &[usage]
            ),
            4.0
        );
        let upstream = s.value(
            "puhuri_gateway_upstream_request_duration_seconds_sum",
            &[usage],
        );
        assert!(
            upstream >= 2.5,
            "the slowed call is in the upstream time: {upstream}"
        );
        assert_eq!(
            s.value(
                "puhuri_gateway_job_delivery_latency_seconds_count",
                &[usage]
            ),
            3.0
        );
        let latency = s.value("puhuri_gateway_job_delivery_latency_seconds_sum", &[usage]);
        assert!(
            latency >= 4.0,
            "the waiting job's delivery latency is counted: {latency}"
        );
        assert_eq!(
            s.value("puhuri_gateway_jobs", &[("state", "succeeded")]),
            3.0
        );
        assert_eq!(s.value("puhuri_gateway_jobs", &[("state", "failed")]), 1.0);
        assert_eq!(
            s.value("puhuri_gateway_queue_oldest_ready_age_seconds", &[]),
            0.0
        );
        assert_eq!(s.value("puhuri_gateway_store_up", &[]), 1.0);
        assert_eq!(s.value("puhuri_gateway_workers_running", &[]), 1.0);
        assert_eq!(s.value("puhuri_gateway_lease_reclaims_total", &[]), 0.0);
        assert_eq!(s.value("puhuri_gateway_store_errors_total", &[]), 0.0);
        assert!(
            !s.0.iter().any(|(_, labels, _)| labels
                .iter()
                .any(|(_, v)| v.contains(&token) || v == "demo")),
            "no token or site id in a label"
        );

        // Redis stopped: the store is down, writes are refused and counted as store errors
        redis.stop();
        let refused = post_usage(&client, &first, &token, RESOURCE_OK, 4.0, false).await;
        assert_eq!(refused.status(), 503);
        let down = Scrape::of(&client, &first).await;
        assert_eq!(down.value("puhuri_gateway_store_up", &[]), 0.0);
        assert!(down.value("puhuri_gateway_store_errors_total", &[("source", "api")]) >= 2.0);
        redis.restart();
    });

    // a gateway killed mid-delivery: the other one reclaims the job once the lease expires
    let job = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while client
            .get(first.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            != 200
        {
            assert!(Instant::now() < deadline, "the gateway did not reconnect");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let usage_calls = || async {
            let calls: serde_json::Value = client
                .get(format!(
                    "{sim}calls?path_prefix=/api/marketplace-component-usages/set_usage/"
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            calls
                .as_array()
                .or_else(|| calls["calls"].as_array())
                .map_or(0, Vec::len)
        };
        let before = usage_calls().await;
        let hang = serde_json::json!({"kind": "hang", "hang_ms": 2900,
            "path_prefix": "marketplace-component-usages/set_usage/"});
        client
            .post(format!("{sim}faults"))
            .json(&hang)
            .send()
            .await
            .unwrap();
        let accepted: serde_json::Value =
            post_usage(&client, &first, &token, RESOURCE_OK, 5.0, false)
                .await
                .json()
                .await
                .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while usage_calls().await == before {
            assert!(Instant::now() < deadline, "the job was not sent");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        accepted["job_id"].as_str().unwrap().to_string()
    });
    first.kill();
    let second = Gateway::start_with(&env);
    let second_token = second.token();
    rt.block_on(async {
        wait_for_state(&client, &second, &second_token, &job, "succeeded").await;
        let s = Scrape::of(&client, &second).await;
        assert_eq!(s.value("puhuri_gateway_lease_reclaims_total", &[]), 1.0);
        assert_eq!(
            s.value(
                "puhuri_gateway_delivery_attempts_total",
                &[("outcome", "succeeded")]
            ),
            1.0
        );
        assert_eq!(s.value("puhuri_gateway_jobs_accepted_total", &[]), 0.0);
    });
}

// ---------------------------------------------------------------------------------------------
// several replicas

/// A `puhuri-gateway sim` process (the Waldur simulator alone), shared by several gateways.
struct Simulator {
    child: Child,
    port: u16,
}

impl Simulator {
    fn start() -> Simulator {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_puhuri-gateway"))
            .args(["sim", "--listen", &format!("127.0.0.1:{port}")])
            .env_remove("PUHURI_GATEWAY_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the simulator");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the simulator did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Simulator { child, port }
    }

    fn control(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/__sim/{path}", self.port)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The most items of sorted `times` (seconds) in any window `[t, t + 1 s)`.
fn busiest_second(times: &[f64]) -> usize {
    let mut best = 0;
    let mut end = 0;
    for start in 0..times.len() {
        while end < times.len() && times[end] < times[start] + 1.0 {
            end += 1;
        }
        best = best.max(end - start);
    }
    best
}

/// Three gateway processes on one Redis deliver to one simulator; one is killed with SIGKILL
/// while deliveries are in flight. Every accepted report ends `succeeded` with its value in
/// Puhuri (a report the dead process had in flight is delivered again: the same total, so the
/// same effect), and the calls' arrival times show the shared rate limit held across processes.
#[test]
fn three_replicas_share_the_work_and_the_rate_limit_and_survive_a_kill() {
    const REPORTS: usize = 60;
    const PER_SECOND: usize = 12;
    let redis = support::redis::RedisServer::start_durable();
    let sim = Simulator::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();

    // one configuration for all three: the simulator as Puhuri, one site with an HS256 key
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sp-token"),
        puhuri_gateway::sim::demo::TOKEN,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("site.secret"),
        "0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[upstream]
url = "http://127.0.0.1:{port}/api/"
token_file = "{dir}/sp-token"
timeout = "2s"

[redis]
url = "{redis}"
key_prefix = "{{replicas-{unique}}}"

[delivery]
workers = 4
max_in_flight = 6
max_per_second = {PER_SECOND}
lease = "4s"
backoff_base = "200ms"
backoff_cap = "1s"

[[sites]]
id = "acct"
offerings = ["{offering}"]

[[sites.keys]]
kid = "acct-hmac"
algorithm = "HS256"
secret_file = "{dir}/site.secret"
"#,
            port = sim.port,
            dir = dir.path().display(),
            redis = redis.url(),
            unique = uuid::Uuid::new_v4().simple(),
            offering = puhuri_gateway::sim::demo::LUMI_OFFERING_UUID,
        ),
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let token = {
        let out = Command::new(env!("CARGO_BIN_EXE_puhuri-gateway"))
            .args([
                "token",
                "issue",
                "--config",
                &config_arg,
                "--site",
                "acct",
                "--ttl",
                "1h",
            ])
            .env_remove("PUHURI_GATEWAY_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let env = [("PUHURI_GATEWAY_CONFIG", config_arg.as_str())];
    let mut gateways: Vec<Gateway> = (0..3).map(|_| Gateway::start_with(&env)).collect();

    let (resources, jobs) = rt.block_on(async {
        let seeded: serde_json::Value = client
            .post(sim.control("resources"))
            .json(&serde_json::json!({"count": REPORTS}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let resources: Vec<String> = seeded
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["uuid"].as_str().unwrap().to_string())
            .collect();
        // every call takes 300 ms, so deliveries are in flight on every replica
        let slow = serde_json::json!({"kind": "latency", "latency_ms": 300,
            "path_prefix": "marketplace-component-usages/set_usage/"});
        client
            .post(sim.control("faults"))
            .json(&slow)
            .send()
            .await
            .unwrap();
        let mut jobs = Vec::new();
        for (i, resource) in resources.iter().enumerate() {
            let answer = post_usage(
                &client,
                &gateways[i % 3],
                &token,
                resource,
                (i + 1) as f64,
                false,
            )
            .await;
            assert_eq!(answer.status(), 202);
            let body: serde_json::Value = answer.json().await.unwrap();
            jobs.push(body["job_id"].as_str().unwrap().to_string());
        }
        (resources, jobs)
    });
    // kill one replica while it holds a lease: its worker ids carry its process id
    let victim = format!("-{}-", gateways[1].child.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    let held = loop {
        let out = Command::new(env!("CARGO_BIN_EXE_puhuri-gateway"))
            .args([
                "jobs",
                "list",
                "--state",
                "running",
                "--json",
                "--config",
                &config_arg,
            ])
            .env_remove("PUHURI_GATEWAY_CONFIG")
            .output()
            .unwrap();
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let held: Vec<String> = listed["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|j| j["worker"].as_str().is_some_and(|w| w.contains(&victim)))
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect();
        if !held.is_empty() {
            gateways[1].kill();
            break held;
        }
        assert!(
            Instant::now() < deadline,
            "the second replica never held a lease"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let survivors = [&gateways[0], &gateways[2]];
    rt.block_on(async {
        for (i, job) in jobs.iter().enumerate() {
            wait_for_state(&client, survivors[i % 2], &token, job, "succeeded").await;
        }
        for job in &held {
            assert!(jobs.contains(job), "the killed replica held {job}");
        }
        // the effect: each resource's total is the value reported for it
        for (i, resource) in resources.iter().enumerate() {
            let usages: serde_json::Value = client
                .get(sim.control(&format!("state/usages/{resource}")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let text = usages.to_string();
            let want = format!("{}", i + 1);
            assert!(
                text.contains(&format!("\"{want}.00\"")) || text.contains(&format!("\"{want}\"")) || text.contains(&format!(":{want}")),
                "resource {resource} has not {want}: {text}"
            );
        }
        let calls: serde_json::Value = client
            .get(sim.control("calls?path_prefix=/api/marketplace-component-usages/set_usage/"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let calls = calls.as_array().cloned().or_else(|| calls["calls"].as_array().cloned()).unwrap();
        assert!(calls.len() >= REPORTS, "{} calls for {REPORTS} reports", calls.len());
        let mut times: Vec<f64> = calls
            .iter()
            .map(|c| {
                chrono::DateTime::parse_from_rfc3339(c["time"].as_str().unwrap())
                    .unwrap()
                    .timestamp_micros() as f64
                    / 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        // The limiter spaces starts (1.01 s / rate apart: 10 ms a second are left for a call's
        // arrival to lag its start by more or less). Arrival times are what Puhuri sees; on a
        // loaded two-core host one arrival can lag a start by more than that allowance and
        // share a window with the next twelve, so a single extra arrival is tolerated here,
        // while the drain as a whole must stay at or under the rate.
        let busiest = busiest_second(&times);
        assert!(
            busiest <= PER_SECOND + 1,
            "{busiest} calls arrived within one second (limit {PER_SECOND})"
        );
        let span = times.last().unwrap() - times.first().unwrap();
        let rate = (times.len() - 1) as f64 / span;
        assert!(rate <= PER_SECOND as f64, "{rate:.2} calls a second over the drain");
        eprintln!(
            "three replicas: {REPORTS} reports, {} calls ({} repeated after the kill of a replica holding {} lease(s)), busiest second {busiest} of {PER_SECOND}, drained in {:.1} s",
            calls.len(),
            calls.len() - REPORTS,
            held.len(),
            times.last().unwrap() - times.first().unwrap()
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Redis over TLS

/// A CA and a server certificate for `localhost` / 127.0.0.1, made with the openssl CLI.
fn make_certificates(dir: &Path) -> bool {
    let sh = format!(
        "set -e; cd '{}'
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=test CA' -keyout ca.key -out ca.pem
openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost' -keyout server.key -out server.csr
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem",
        dir.display()
    );
    Command::new("sh")
        .args(["-c", &sh])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `redis.url = "rediss://..."`: the gateway talks TLS to Redis and verifies its certificate
/// against the system's trust store, which `SSL_CERT_FILE` replaces; a server whose CA it does
/// not trust is not ready.
#[test]
fn redis_over_tls_with_a_verified_certificate() {
    let dir = tempfile::tempdir().unwrap();
    if !external::require(
        "openssl (Debian package openssl) and a redis-server built with TLS",
        tool_works("openssl", &["version"]) && make_certificates(dir.path()),
    ) {
        return;
    }
    let port = free_port();
    let pem = |name: &str| dir.path().join(name).display().to_string();
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            &pem("server.pem"),
            "--tls-key-file",
            &pem("server.key"),
        ])
        .args([
            "--tls-ca-cert-file",
            &pem("ca.pem"),
            "--tls-auth-clients",
            "no",
        ])
        .args(["--save", "", "--appendonly", "no", "--dir", &pem("")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server with TLS did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("rediss://localhost:{port}/0");
    let prefix = format!("{{tls-{}}}", uuid::Uuid::new_v4().simple());
    let ca = pem("ca.pem");
    let result = std::panic::catch_unwind(|| {
        let gateway = Gateway::start_with(&[
            ("PUHURI_GATEWAY_REDIS__URL", url.as_str()),
            ("PUHURI_GATEWAY_REDIS__KEY_PREFIX", prefix.as_str()),
            ("SSL_CERT_FILE", ca.as_str()),
        ]);
        let token = gateway.token();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let client = reqwest::Client::new();
            let answer = post_usage(&client, &gateway, &token, RESOURCE_OK, 7.0, true).await;
            let body: serde_json::Value = answer.json().await.unwrap();
            assert_eq!(body["state"], "succeeded", "{body}");
        });
        // the same server, its CA not trusted: not ready, and the store check says why
        let untrusted = tempfile::tempdir().unwrap();
        let empty_ca = untrusted.path().join("none.pem");
        std::fs::write(&empty_ca, "").unwrap();
        let port2 = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_puhuri-gateway"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port2}"),
                "--data-dir",
            ])
            .arg(untrusted.path())
            .env_remove("PUHURI_GATEWAY_CONFIG")
            .env("PUHURI_GATEWAY_REDIS__URL", &url)
            .env("PUHURI_GATEWAY_REDIS__KEY_PREFIX", &prefix)
            .env("SSL_CERT_FILE", &empty_ca)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let readyz = format!("http://127.0.0.1:{port2}/readyz");
        let deadline = Instant::now() + Duration::from_secs(30);
        let (ok, out) = loop {
            let (ok, out) = healthcheck(&["--url", &readyz], &[]);
            if out.contains("503") || ok || Instant::now() > deadline {
                break (ok, out);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            !ok && out.contains("queue_store"),
            "untrusted Redis certificate: {out}"
        );
    });
    let _ = redis.kill();
    let _ = redis.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Starts `redis-server` with `args` (TLS on `port`, no plain port) and waits until the port
/// accepts connections; the caller kills it.
fn tls_redis(args: &[String], port: u16) -> Child {
    let child = Command::new("redis-server")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server on {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// `redis.url = "rediss+sentinel://...?sentinel_password=..."`: sentinels protected by their
/// own password (not the data nodes'), with TLS to the sentinels and to the master they name,
/// certificates verified against `SSL_CERT_FILE`. The gateway reaches the master through the
/// sentinel and delivers a report; with a wrong sentinel password it is not ready, and its
/// answers never show either password.
#[test]
fn redis_through_sentinels_with_their_own_password_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    if !external::require(
        "openssl (Debian package openssl) and a redis-server built with TLS",
        tool_works("openssl", &["version"]) && make_certificates(dir.path()),
    ) {
        return;
    }
    let pem = |name: &str| dir.path().join(name).display().to_string();
    let tls_args = |port: u16| -> Vec<String> {
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            &pem("server.pem"),
            "--tls-key-file",
            &pem("server.key"),
            "--tls-ca-cert-file",
            &pem("ca.pem"),
            "--tls-auth-clients",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let master_port = free_port();
    let master_dir = tempfile::tempdir().unwrap();
    let mut master_args = tls_args(master_port);
    master_args.extend(
        [
            "--requirepass",
            "data-nodes-pw",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    master_args.push(master_dir.path().display().to_string());
    let mut master = tls_redis(&master_args, master_port);

    let sentinel_port = free_port();
    let sentinel_dir = tempfile::tempdir().unwrap();
    let conf = sentinel_dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port 0\ntls-port {sentinel_port}\nbind 127.0.0.1\ndir {dir}\n\
             tls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {ca}\n\
             tls-auth-clients no\ntls-replication yes\nrequirepass sentinel-pw\n\
             sentinel monitor gw 127.0.0.1 {master_port} 1\n\
             sentinel auth-pass gw data-nodes-pw\n",
            dir = sentinel_dir.path().display(),
            cert = pem("server.pem"),
            key = pem("server.key"),
            ca = pem("ca.pem"),
        ),
    )
    .unwrap();
    let mut sentinel_args = vec![conf.display().to_string()];
    sentinel_args.extend(
        ["--sentinel", "--daemonize", "no", "--loglevel", "warning"]
            .iter()
            .map(|s| s.to_string()),
    );
    let mut sentinel = tls_redis(&sentinel_args, sentinel_port);

    let prefix = format!("{{sentinel-tls-{}}}", uuid::Uuid::new_v4().simple());
    let ca = pem("ca.pem");
    let url_with = |sentinel_pw: &str| {
        format!(
            "rediss+sentinel://:data-nodes-pw@localhost:{sentinel_port}/gw\
             ?sentinel_password={sentinel_pw}"
        )
    };
    let result = std::panic::catch_unwind(|| {
        let url = url_with("sentinel-pw");
        let gateway = Gateway::start_with(&[
            ("PUHURI_GATEWAY_REDIS__URL", url.as_str()),
            ("PUHURI_GATEWAY_REDIS__KEY_PREFIX", prefix.as_str()),
            ("SSL_CERT_FILE", ca.as_str()),
        ]);
        let token = gateway.token();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let client = reqwest::Client::new();
            let answer = post_usage(&client, &gateway, &token, RESOURCE_OK, 7.0, true).await;
            let body: serde_json::Value = answer.json().await.unwrap();
            assert_eq!(body["state"], "succeeded", "{body}");
        });
        drop(gateway);

        // The sentinel refuses a wrong password: not ready, and neither password is shown.
        let wrong = url_with("not-the-sentinel-pw");
        let gateway = Gateway::start_unready_with(&[
            ("PUHURI_GATEWAY_REDIS__URL", wrong.as_str()),
            ("PUHURI_GATEWAY_REDIS__KEY_PREFIX", prefix.as_str()),
            ("SSL_CERT_FILE", ca.as_str()),
        ]);
        let readyz = format!("http://127.0.0.1:{}/readyz", gateway.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        let (ok, out) = loop {
            let (ok, out) = healthcheck(&["--url", &readyz], &[]);
            if out.contains("503") || ok || Instant::now() > deadline {
                break (ok, out);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            !ok && out.contains("queue_store"),
            "wrong sentinel password: {out}"
        );
        assert!(
            !out.contains("not-the-sentinel-pw") && !out.contains("data-nodes-pw"),
            "{out}"
        );
    });
    for child in [&mut sentinel, &mut master] {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// `puhuri-gateway --data-dir DIR jobs ...` works on the embedded store in DIR, as `serve` with
/// that flag does, rather than on `./data`.
#[test]
fn the_jobs_command_takes_the_data_dir_flag() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let out = Command::new(env!("CARGO_BIN_EXE_puhuri-gateway"))
        .arg("--data-dir")
        .arg(&data)
        .args(["jobs", "list"])
        .current_dir(cwd.path())
        .env_remove("PUHURI_GATEWAY_CONFIG")
        .env_remove("PUHURI_GATEWAY_DATA_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        data.join("jobs.redb").exists(),
        "the store is in --data-dir"
    );
    assert!(
        !cwd.path().join("data").exists(),
        "nothing is made in ./data"
    );
}
