//! Wiring: [`Application::build`] turns a validated [`Config`] and a bound listener into a running
//! gateway — job store, Puhuri client (or the built-in simulator in sandbox mode), delivery
//! workers and the HTTP server. `main` and the tests both use it, so tests run the real thing on
//! port 0.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actix_web::dev::Server;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer, web};
use secrecy::SecretString;
use tokio::sync::Notify;

use crate::api::{self, AppState, middleware::request_context};
use crate::auth::{Scope, SiteRegistry};
use crate::config::{Config, KeyAlgorithm, KeyConfig, KeyMaterial, SiteConfig, Upstream};
use crate::domain::retry::RetryPolicy;
use crate::queue::{DeliveryLimits, JobStore};
use crate::sim::{self, SimOptions, SimServer};
use crate::upstream::WaldurClient;
use crate::upstream::directory::Directory;
use crate::worker::{Deliverer, PoolSettings, Worker, WorkerPool, process_worker_id};

/// The site sandbox mode creates, bound to the simulator's LUMI-like offering.
pub const SANDBOX_SITE: &str = "demo";
const SANDBOX_KID: &str = "demo-sandbox";

/// What a sandbox gateway tells its operator.
#[derive(Clone, Debug)]
pub struct SandboxInfo {
    pub token: String,
    pub token_file: PathBuf,
    pub simulator_url: String,
}

pub struct Application {
    port: u16,
    server: Server,
    workers: Option<WorkerPool>,
    worker: Worker,
    store: Arc<dyn JobStore>,
    sim: Option<SimServer>,
    sandbox: Option<SandboxInfo>,
}

/// Whether [`Application::build_with`] starts the delivery loops. Tests that need to see jobs
/// before delivery turn them off and drive [`Application::worker`] step by step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    Start,
    Manual,
}

impl Application {
    pub async fn build(config: Config, listener: TcpListener) -> anyhow::Result<Application> {
        Application::build_with(config, listener, Workers::Start).await
    }

    pub async fn build_with(
        mut config: Config,
        listener: TcpListener,
        workers: Workers,
    ) -> anyhow::Result<Application> {
        crate::api::metrics::install();
        let store = crate::queue::open_store(&config.store, None).await?;
        let (upstream, sim, sandbox) = match &config.upstream {
            Upstream::Puhuri(u) => {
                let upstream = (u.url.clone(), u.token.clone(), u.timeout, u.connect_timeout);
                (upstream, None, None)
            }
            Upstream::Sandbox { timeout } => {
                let timeout = *timeout;
                let sim = sim::start(
                    TcpListener::bind("127.0.0.1:0")?,
                    SimOptions {
                        token: sim::demo::TOKEN.to_string(),
                    },
                )?;
                let url = url::Url::parse(&sim.api_url())?;
                let token = SecretString::from(sim::demo::TOKEN.to_string());
                let info = prepare_sandbox_site(&mut config, &sim)?;
                ((url, token, timeout, timeout), Some(sim), Some(info))
            }
        };
        // Two clients, not one shared: a connection lives on the runtime that opened it, and the
        // HTTP server's worker runtimes stop first at shutdown. Deliveries must not ride on their
        // connections, or an in-flight delivery would fail during the shutdown grace period.
        let (url, token, timeout, connect_timeout) = upstream;
        let new_client = || {
            WaldurClient::new(url.clone(), &token, timeout, connect_timeout)
                .map_err(anyhow::Error::msg)
        };
        let (client, lookup_client) = (new_client()?, new_client()?);
        // The request path's lookups; the deliverer only forgets entries it made stale.
        let directory = Arc::new(Directory::new(lookup_client));
        let config = Arc::new(config);
        let sites = SiteRegistry::from_config(&config).map_err(anyhow::Error::msg)?;
        let wake = Arc::new(Notify::new());
        let worker = Worker::new(
            process_worker_id(),
            store.clone(),
            Deliverer::new(client.clone(), store.clone()).with_directory(directory.clone()),
            RetryPolicy {
                base: config.delivery.backoff_base,
                cap: config.delivery.backoff_cap,
                max_attempts: config.delivery.max_attempts,
                max_age: config.delivery.max_age,
            },
            DeliveryLimits {
                max_in_flight: config.delivery.max_in_flight,
                max_per_second: config.delivery.max_per_second,
            },
            config.delivery.lease,
        );
        let workers_running = Arc::new(AtomicBool::new(false));
        let pool = (workers == Workers::Start).then(|| {
            WorkerPool::start(
                Arc::new(worker.clone()),
                store.clone(),
                wake.clone(),
                PoolSettings {
                    loops: config.delivery.workers,
                    retention: config.delivery.retention,
                    grace: config.delivery.shutdown_grace,
                },
                workers_running.clone(),
            )
        });
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState {
            config: config.clone(),
            sites,
            store: store.clone(),
            directory,
            wake,
            workers_running,
            sandbox: sandbox.is_some(),
        });
        let max_body = config.limits.max_body_bytes;
        let sandboxed = sandbox.is_some();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(Compress::default())
                .wrap(from_fn(request_context))
                .app_data(state.clone())
                .configure(|cfg| api::configure(cfg, max_body, sandboxed))
        })
        .listen(listener)?
        .shutdown_timeout(config.delivery.shutdown_grace.as_secs().max(1))
        .run();
        if let Some(info) = &sandbox {
            announce_sandbox(info, port);
        } else {
            tracing::info!(port, "puhuri-gateway listening");
        }
        Ok(Application {
            port,
            server,
            workers: pool,
            worker,
            store,
            sim,
            sandbox,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// One delivery step, for tests built with [`Workers::Manual`].
    pub fn worker(&self) -> Worker {
        self.worker.clone()
    }

    pub fn store(&self) -> Arc<dyn JobStore> {
        self.store.clone()
    }

    /// The simulator's control URL in sandbox mode.
    pub fn simulator_control_url(&self) -> Option<String> {
        self.sim.as_ref().map(|s| s.control_url())
    }

    pub fn sandbox(&self) -> Option<&SandboxInfo> {
        self.sandbox.as_ref()
    }

    /// Serves until SIGINT/SIGTERM, then stops the workers (in-flight deliveries get the grace
    /// period, then are handed back to the queue) and the simulator.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        tracing::info!("HTTP server stopped; stopping delivery");
        if let Some(pool) = self.workers {
            pool.shutdown().await;
        }
        if let Some(sim) = self.sim {
            sim.stop().await;
        }
        served
    }
}

/// Adds the `demo` site (every scope, the simulator's LUMI-like offering, an HS256 key kept in the
/// data directory) and
/// writes a token for it to `<data_dir>/demo.token`.
fn prepare_sandbox_site(config: &mut Config, sim: &SimServer) -> anyhow::Result<SandboxInfo> {
    std::fs::create_dir_all(&config.data_dir)?;
    let secret = sandbox_secret(&config.data_dir)?;
    config.sites.retain(|s| s.id != SANDBOX_SITE);
    config.sites.push(SiteConfig {
        id: SANDBOX_SITE.to_string(),
        offerings: [sim::demo::LUMI_OFFERING_UUID.to_string()].into(),
        scopes: Scope::ALL.into_iter().collect(),
        keys: vec![KeyConfig {
            kid: SANDBOX_KID.to_string(),
            algorithm: KeyAlgorithm::HS256,
            material: KeyMaterial::Secret(SecretString::from(secret)),
            signing_pem: None,
            config_key: "sandbox".into(),
        }],
    });
    let ttl = config
        .auth
        .max_token_lifetime
        .min(std::time::Duration::from_secs(7 * 24 * 3600));
    let token = crate::auth::issue::issue_token(config, SANDBOX_SITE, None, &[], ttl)
        .map_err(anyhow::Error::msg)?;
    let token_file = config.data_dir.join("demo.token");
    write_private(&token_file, &token)?;
    Ok(SandboxInfo {
        token,
        token_file,
        simulator_url: sim.control_url(),
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

fn announce_sandbox(info: &SandboxInfo, port: u16) {
    tracing::warn!(
        "SANDBOX MODE: no upstream.url is configured, so the built-in Waldur simulator stands in \
         for Puhuri Core; nothing reaches Puhuri"
    );
    // Printed, not logged: this is the quick start's output, meant for the person who ran it.
    println!(
        "\npuhuri-gateway is running in SANDBOX MODE against its built-in Waldur simulator.\n\
         \n  Swagger UI:      http://127.0.0.1:{port}/docs/   (Authorize with the token below)\
         \n  Site token:      {token_file}\
         \n  Simulator state: {sim}calls\n\
         \n  TOKEN=$(cat {token_file})\
         \n  curl -s -X POST http://127.0.0.1:{port}/v1/usage -H \"Authorization: Bearer $TOKEN\" \\\
         \n       -H 'Content-Type: application/json' -H 'Prefer: wait=5' \\\
         \n       -d '{{\"resource_uuid\": \"{resource}\", \"usages\": {{\"cpu_k_hours\": 12.5}}}}'\n\
         \n{token}\n",
        token_file = info.token_file.display(),
        sim = info.simulator_url,
        resource = sim::demo::RESOURCE_OK_UUID,
        token = info.token,
    );
}
