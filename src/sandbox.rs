//! Sandbox wiring: the one place where the gateway reaches the built-in Waldur simulator.
//!
//! With no `upstream.url` configured, [`Sandbox::start`] starts the simulator on a free local
//! port, adds the `demo` site bound to both offerings of its demo service provider (the LUMI-like
//! `Marketplace.Basic` one and the `Marketplace.Slurm` one), and writes that site a token; the
//! gateway then talks to the simulator over real HTTP exactly as it talks to Puhuri Core.
//!
//! The simulator sits behind the default-on cargo feature `sim`. A feature rather than a separate
//! workspace crate: the simulator already depends on nothing in the gateway (it is usable alone,
//! `puhuri-gateway sim`), the test binaries and the quick start need it in the same build, and one
//! crate keeps one `Cargo.lock`, one target directory and one `cargo test`. A site that wants a
//! production binary without it builds with `--no-default-features`; [`Sandbox::start`] then
//! refuses to start without `upstream.url`, saying why.

#[cfg(feature = "sim")]
pub use with_sim::Sandbox;
#[cfg(not(feature = "sim"))]
pub use without_sim::Sandbox;

/// The site sandbox mode creates, bound to every offering of the simulator's demo service
/// provider: so every documented example can be tried in the sandbox, including the
/// provider-wide username write and `set_state_erred` (which Waldur allows on Slurm offerings only).
pub const SANDBOX_SITE: &str = "demo";

/// The allocator's site sandbox mode creates beside [`SANDBOX_SITE`], bound to the simulator's
/// demo resource allocator (identity [`SANDBOX_ALLOCATOR_IDENTITY`]): its organisation, its
/// partner project, and the LUMI allocations offering.
pub const SANDBOX_ALLOCATOR_SITE: &str = "demo-allocator";

/// The Puhuri identity of the sandbox's allocator site (the simulator's demo allocator token).
pub const SANDBOX_ALLOCATOR_IDENTITY: &str = "demo-allocator";

/// What a sandbox gateway tells its operator.
#[derive(Clone, Debug)]
pub struct SandboxInfo {
    /// A token for the `demo` site (every scope).
    pub token: String,
    /// Where that token is written: `<data_dir>/demo.token`, mode 0600.
    pub token_file: std::path::PathBuf,
    /// The simulator's control API, e.g. `http://127.0.0.1:PORT/_sim/`.
    pub simulator_url: String,
    /// A token for the `demo-allocator` site (`allocations:read`, `allocations:write`).
    pub allocator_token: String,
    /// Where that token is written: `<data_dir>/demo-allocator.token`, mode 0600.
    pub allocator_token_file: std::path::PathBuf,
}

#[cfg(feature = "sim")]
mod with_sim {
    use std::net::TcpListener;

    use secrecy::SecretString;

    use super::{SANDBOX_ALLOCATOR_IDENTITY, SANDBOX_ALLOCATOR_SITE, SANDBOX_SITE, SandboxInfo};
    use crate::config::{Config, KeyAlgorithm, KeyConfig, KeyMaterial, SiteConfig};
    use crate::domain::Scope;
    use crate::sim::{self, SimOptions, SimServer};

    const SANDBOX_KID: &str = "demo-sandbox";
    const SANDBOX_ALLOCATOR_KID: &str = "demo-allocator-sandbox";

    /// A running simulator and the `demo` site bound to it.
    pub struct Sandbox {
        sim: SimServer,
        info: SandboxInfo,
    }

    impl Sandbox {
        /// Starts the simulator on a free port of 127.0.0.1 and adds the `demo` site to `config`.
        pub fn start(config: &mut Config) -> anyhow::Result<Sandbox> {
            let sim = sim::start_with_allocator(
                TcpListener::bind("127.0.0.1:0")?,
                SimOptions {
                    token: sim::demo::TOKEN.to_string(),
                },
            )?;
            let info = prepare_sandbox_site(config, &sim)?;
            Ok(Sandbox { sim, info })
        }

        /// The simulator's API root, where the gateway sends what it would send to Puhuri.
        pub fn api_url(&self) -> anyhow::Result<url::Url> {
            Ok(url::Url::parse(&self.sim.api_url())?)
        }

        /// The service provider token the simulator accepts.
        pub fn token(&self) -> SecretString {
            SecretString::from(sim::demo::TOKEN.to_string())
        }

        /// The uuid of the simulator's service provider (32 hex digits).
        pub fn service_provider_uuid(&self) -> String {
            sim::demo::SERVICE_PROVIDER_UUID.to_string()
        }

        /// The simulator's control URL.
        pub fn control_url(&self) -> String {
            self.sim.control_url()
        }

        pub fn info(&self) -> &SandboxInfo {
            &self.info
        }

        /// Tells the person who started the gateway how to use it; `tls`: the listener speaks
        /// HTTPS (`[tls]`), so the URLs it prints do too.
        pub fn announce(&self, port: u16, tls: bool) {
            announce_sandbox(&self.info, port, tls);
        }

        pub async fn stop(self) {
            self.sim.stop().await;
        }
    }

    /// Adds the `demo` site (every scope, both demo offerings, an HS256 key kept in the
    /// data directory) and writes a token for it to `<data_dir>/demo.token`.
    fn prepare_sandbox_site(config: &mut Config, sim: &SimServer) -> anyhow::Result<SandboxInfo> {
        std::fs::create_dir_all(&config.data_dir)?;
        let secret = sandbox_secret(&config.data_dir)?;
        config.sites.retain(|s| s.id != SANDBOX_SITE);
        config.sites.push(SiteConfig {
            id: SANDBOX_SITE.to_string(),
            offerings: [
                sim::demo::LUMI_OFFERING_UUID.to_string(),
                sim::demo::SECOND_OFFERING_UUID.to_string(),
            ]
            .into(),
            scopes: Scope::ALL.iter().copied().collect(),
            keys: vec![KeyConfig {
                kid: SANDBOX_KID.to_string(),
                algorithm: KeyAlgorithm::HS256,
                material: KeyMaterial::Secret(SecretString::from(secret.clone())),
                signing_pem: None,
                config_key: "sandbox".into(),
            }],
            identity: crate::config::SP_IDENTITY.to_string(),
            customers: Default::default(),
            projects: Default::default(),
            callbacks: Vec::new(),
        });
        let ttl = config
            .auth
            .max_token_lifetime
            .min(std::time::Duration::from_secs(7 * 24 * 3600));
        let token = crate::auth::issue::issue_token(config, SANDBOX_SITE, None, &[], ttl)
            .map_err(anyhow::Error::msg)?;
        let token_file = config.data_dir.join("demo.token");
        write_private(&token_file, &token)?;
        // The allocator's site: its own identity (the simulator's demo allocator token), bound to
        // the allocator's organisation and its partner project, ordering from the allocations
        // offering.
        config.identities.insert(
            SANDBOX_ALLOCATOR_IDENTITY.to_string(),
            SecretString::from(sim::demo::ALLOCATOR_TOKEN.to_string()),
        );
        config.sites.retain(|s| s.id != SANDBOX_ALLOCATOR_SITE);
        config.sites.push(SiteConfig {
            id: SANDBOX_ALLOCATOR_SITE.to_string(),
            offerings: [sim::demo::ALLOCATION_OFFERING_UUID.to_string()].into(),
            scopes: Scope::ALLOCATOR.iter().copied().collect(),
            keys: vec![KeyConfig {
                kid: SANDBOX_ALLOCATOR_KID.to_string(),
                algorithm: KeyAlgorithm::HS256,
                material: KeyMaterial::Secret(SecretString::from(secret)),
                signing_pem: None,
                config_key: "sandbox".into(),
            }],
            identity: SANDBOX_ALLOCATOR_IDENTITY.to_string(),
            customers: [sim::demo::ALLOCATOR_CUSTOMER_UUID.to_string()].into(),
            projects: [sim::demo::ALLOCATOR_REVIEW_PROJECT_UUID.to_string()].into(),
            callbacks: Vec::new(),
        });
        let allocator_token =
            crate::auth::issue::issue_token(config, SANDBOX_ALLOCATOR_SITE, None, &[], ttl)
                .map_err(anyhow::Error::msg)?;
        let allocator_token_file = config.data_dir.join("demo-allocator.token");
        write_private(&allocator_token_file, &allocator_token)?;
        Ok(SandboxInfo {
            token,
            token_file,
            simulator_url: sim.control_url(),
            allocator_token,
            allocator_token_file,
        })
    }

    /// The sandbox site's HS256 secret, kept in the data directory so tokens from an earlier start
    /// (in a Swagger UI tab, in a script) keep working after a restart.
    fn sandbox_secret(data_dir: &std::path::Path) -> anyhow::Result<String> {
        let path = data_dir.join("sandbox.secret");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            let existing = existing.trim();
            if existing.len() >= 32 {
                return Ok(existing.to_string());
            }
        }
        let secret: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..32)
                .map(|_| format!("{:02x}", rng.random::<u8>()))
                .collect()
        };
        write_private(&path, &secret)?;
        Ok(secret)
    }

    fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        file.write_all(contents.as_bytes())?;
        file.write_all(b"\n")
    }

    fn announce_sandbox(info: &SandboxInfo, port: u16, tls: bool) {
        tracing::warn!(
            "SANDBOX MODE: no upstream.url is configured, so the built-in Waldur simulator stands in \
             for Puhuri Core; nothing reaches Puhuri"
        );
        let base = format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" });
        // Printed, not logged: this is the quick start's output, meant for the person who ran it.
        println!(
            "\npuhuri-gateway is running in SANDBOX MODE against its built-in Waldur simulator.\n\
             \n  Swagger UI:      {base}/docs/   (Authorize with a token below)\
             \n  Site token:      {token_file}\
             \n  Allocator token: {allocator_file}   (the allocator's site, demo-allocator)\
             \n  Simulator state: {sim}calls\n\
             \n  TOKEN=$(cat {token_file})\
             \n  curl -s -X POST {base}/v1/usage -H \"Authorization: Bearer $TOKEN\" \\\
             \n       -H 'Content-Type: application/json' -H 'Prefer: wait=5' \\\
             \n       -d '{{\"resource_uuid\": \"{resource}\", \"usages\": {{\"cpu_k_hours\": 12.5}}}}'\n\
             \n  ALLOCATOR=$(cat {allocator_file})\
             \n  curl -s -X POST {base}/v1/allocations -H \"Authorization: Bearer $ALLOCATOR\" \\\
             \n       -H 'Content-Type: application/json' -H 'Idempotency-Key: my-first-allocation' -H 'Prefer: wait=10' \\\
             \n       -d '{{\"project_uuid\": \"{project}\", \"offering_uuid\": \"{offering}\", \"plan_uuid\": \"{plan}\", \"approve_as_consumer\": true, \\\
             \n            \"attributes\": {{\"name\": \"My allocation\", \"used_ai_tech\": [\"Deep Learning\"]}}, \"limits\": {{\"cpu_k_hours\": 100}}}}'\n\
             \nAllocator token (demo-allocator):\n{allocator_token}\n\
             \n{token}\n",
            token_file = info.token_file.display(),
            allocator_file = info.allocator_token_file.display(),
            sim = info.simulator_url,
            resource = sim::demo::RESOURCE_OK_UUID,
            project = sim::demo::ALLOCATOR_REVIEW_PROJECT_UUID,
            offering = sim::demo::ALLOCATION_OFFERING_UUID,
            plan = sim::demo::ALLOCATION_PLAN_UUID,
            allocator_token = info.allocator_token,
            token = info.token,
        );
    }
}

#[cfg(not(feature = "sim"))]
mod without_sim {
    use secrecy::SecretString;

    use super::SandboxInfo;
    use crate::config::Config;

    /// Without the simulator there is no sandbox: this type has no values.
    pub enum Sandbox {}

    impl Sandbox {
        /// Refuses: this build has no simulator to stand in for Puhuri.
        pub fn start(_config: &mut Config) -> anyhow::Result<Sandbox> {
            anyhow::bail!(
                "no upstream.url is configured, and this build has no simulator to stand in for \
                 Puhuri (it was built without the `sim` feature): set upstream.url"
            )
        }

        pub fn api_url(&self) -> anyhow::Result<url::Url> {
            match *self {}
        }

        pub fn token(&self) -> SecretString {
            match *self {}
        }

        pub fn service_provider_uuid(&self) -> String {
            match *self {}
        }

        pub fn control_url(&self) -> String {
            match *self {}
        }

        pub fn info(&self) -> &SandboxInfo {
            match *self {}
        }

        pub fn announce(&self, _port: u16, _tls: bool) {
            match *self {}
        }

        pub async fn stop(self) {
            match self {}
        }
    }
}
