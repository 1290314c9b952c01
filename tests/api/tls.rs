//! `[tls]`: HTTPS on `listen`, the certificate reloaded when its files change or on SIGHUP, a
//! broken renewal kept out, and a key that does not match refused at start.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use puhuri_gateway::startup::Workers;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::helpers::*;
use crate::support::external;

/// A CA and two server certificates for `localhost` / 127.0.0.1 (`one.*`, `two.*`), made with
/// the openssl CLI.
fn make_certificates(dir: &Path) -> bool {
    let sh = format!(
        "set -e; cd '{}'
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=test CA' -keyout ca.key -out ca.pem
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext
for n in one two; do
  openssl req -newkey rsa:2048 -nodes -subj \"/CN=localhost $n\" -keyout $n.key -out $n.csr
  openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out $n.pem
done",
        dir.display()
    );
    Command::new("sh")
        .args(["-c", &sh])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn openssl_certificates(dir: &Path) -> bool {
    external::require(
        "openssl (Debian package openssl)",
        Command::new("openssl")
            .arg("version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            && make_certificates(dir),
    )
}

fn der(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path).unwrap().to_vec()
}

/// Installs `name`'s certificate and key as the served files, each by an atomic rename.
fn install(dir: &Path, name: &str) {
    for ext in ["key", "pem"] {
        let tmp = dir.join(format!("served.{ext}.tmp"));
        std::fs::copy(dir.join(format!("{name}.{ext}")), &tmp).unwrap();
        std::fs::rename(&tmp, dir.join(format!("served.{ext}"))).unwrap();
    }
}

/// The certificate a new HTTPS connection is served, after `GET /healthz` answered 200.
async fn served(port: u16, ca: &Path) -> Vec<u8> {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let response = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let info = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .unwrap();
    info.peer_certificate().unwrap().to_vec()
}

async fn wait_until_served(port: u16, ca: &Path, want: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while served(port, ca).await != want {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tls_toml(dir: &Path, interval: &str) -> String {
    format!(
        "\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nreload_interval = \"{interval}\"\n",
        dir.join("served.pem").display(),
        dir.join("served.key").display()
    )
}

fn port_of(app: &TestApp) -> u16 {
    app.address.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn https_on_listen_with_the_certificate_reloaded_when_its_files_change() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    if !openssl_certificates(dir) {
        return;
    }
    install(dir, "one");
    let setup = Setup {
        redis: false,
        workers: Workers::Manual,
    };
    let app = spawn_app_with(setup, &tls_toml(dir, "100ms")).await;
    let port = port_of(&app);
    let ca = dir.join("ca.pem");
    assert_eq!(served(port, &ca).await, der(&dir.join("one.pem")));
    // Plain HTTP on the TLS listener gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    // The gateway's own links are https.
    let response = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap()
        .get(format!("https://localhost:{port}/v1/orders?page_size=1"))
        .bearer_auth(alpha_token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let link = response.headers()["link"].to_str().unwrap().to_string();
    assert!(link.starts_with("<https://"), "{link}");
    assert!(link.contains(&format!(":{port}/v1/orders?")), "{link}");

    // `puhuri-gateway healthcheck` with this configuration asks https://127.0.0.1:PORT/readyz.
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:{port}\"\n{}", tls_toml(dir, "10s")),
    )
    .unwrap();
    let probe = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_puhuri-gateway"))
            .args(["--config", config.to_str().unwrap(), "healthcheck"])
            .env_remove("PUHURI_GATEWAY_CONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    // It reached the gateway's readiness over HTTPS: not ready only because this test drives
    // the delivery steps itself.
    let said = String::from_utf8_lossy(&probe.stderr);
    assert!(!probe.status.success());
    assert!(
        said.contains(&format!("https://127.0.0.1:{port}/readyz answered 503"))
            && said.contains("delivery workers are not running"),
        "{said}"
    );

    // A renewed certificate is served to new connections.
    install(dir, "two");
    wait_until_served(port, &ca, &der(&dir.join("two.pem"))).await;

    // A broken renewal (a certificate that does not match the key) is not taken.
    std::fs::copy(dir.join("one.pem"), dir.join("served.pem")).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(served(port, &ca).await, der(&dir.join("two.pem")));
    // Once the pair is whole again, it is.
    std::fs::copy(dir.join("one.key"), dir.join("served.key")).unwrap();
    wait_until_served(port, &ca, &der(&dir.join("one.pem"))).await;
}

/// SIGHUP reloads at once, whatever the interval (an hour here).
#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    if !openssl_certificates(dir) {
        return;
    }
    install(dir, "one");
    let setup = Setup {
        redis: false,
        workers: Workers::Manual,
    };
    let app = spawn_app_with(setup, &tls_toml(dir, "1h")).await;
    let port = port_of(&app);
    let ca = dir.join("ca.pem");
    assert_eq!(served(port, &ca).await, der(&dir.join("one.pem")));
    install(dir, "two");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(served(port, &ca).await, der(&dir.join("one.pem")));
    // This test process is the gateway's: it has a SIGHUP handler from the start above.
    let status = Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_until_served(port, &ca, &der(&dir.join("two.pem"))).await;
}

#[test]
fn a_key_that_does_not_belong_to_the_certificate_is_refused_at_start() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    if !openssl_certificates(dir) {
        return;
    }
    std::fs::copy(dir.join("one.pem"), dir.join("served.pem")).unwrap();
    std::fs::copy(dir.join("two.key"), dir.join("served.key")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let toml = base_config_toml(data.path()) + &tls_toml(dir, "10s");
    let message = load_config(&toml, data.path()).unwrap_err();
    assert!(
        message.contains("does not belong to the certificate"),
        "{message}"
    );
    assert!(message.contains("served.key"), "{message}");
    assert!(!message.contains("PRIVATE KEY"), "{message}");
    std::fs::write(dir.join("served.pem"), "not a certificate").unwrap();
    let message = load_config(&toml, data.path()).unwrap_err();
    assert!(message.contains("holds no certificate"), "{message}");
}

/// Sandbox mode with `[tls]`: the banner's URLs say `https://`, and they answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_banner_prints_https_urls_that_answer_when_tls_is_on() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    if !openssl_certificates(dir.path()) {
        return;
    }
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "gateway_id = \"gw-test\"\ndata_dir = \"{}\"\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            dir.path().join("data").display(),
            dir.path().join("one.pem").display(),
            dir.path().join("one.key").display(),
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_puhuri-gateway"))
        .args(["--config", config.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let swagger = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the sandbox banner");
        if let Some(rest) = line.split("Swagger UI:").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    assert_eq!(swagger, format!("https://127.0.0.1:{port}/docs/"));
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("ca.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let answer = client.get(&swagger).send().await.unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    let _ = child.kill();
    let _ = child.wait();
}
