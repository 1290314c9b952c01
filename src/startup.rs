//! Wiring: [`Application::build`] turns a validated [`Config`] and a bound listener into a running
//! gateway — job store, Puhuri client (or the built-in simulator in sandbox mode), delivery
//! workers and the HTTP server. `main` and the tests both use it, so tests run the real thing on
//! port 0.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actix_web::dev::Server;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer, web};
use tokio::sync::Notify;

use crate::api::{self, AppState, middleware::request_context};
use crate::auth::SiteRegistry;
use crate::config::{Config, Upstream};
use crate::domain::Clock;
use crate::domain::retry::RetryPolicy;
use crate::queue::{DeliveryLimits, JobStore};
use crate::sandbox::Sandbox;
use crate::upstream::WaldurClient;
use crate::upstream::directory::Directory;
use crate::worker::{Deliverer, PoolSettings, Worker, WorkerPool, process_worker_id};

pub use crate::sandbox::{SANDBOX_SITE, SandboxInfo};

/// How far back a start looks for finished jobs whose events were not stored
/// ([`crate::events::JobOutcomes::catch_up`]).
pub const JOB_EVENTS_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(3600);

pub struct Application {
    port: u16,
    server: Server,
    /// Tells waiting requests the gateway is stopping (see [`AppState::stopping`]).
    stopping: tokio::sync::watch::Sender<bool>,
    grace: std::time::Duration,
    /// The requests being handled, which the shutdown lets end before it stops the server.
    in_flight: web::Data<crate::api::middleware::InFlight>,
    workers: Option<WorkerPool>,
    /// The delivery loops of the sites' event endpoints.
    event_pools: Option<crate::events::EventPools>,
    events: Arc<crate::events::EventHub>,
    /// The watcher of Puhuri, when a site's endpoint wants its events.
    watcher: Option<Arc<crate::watcher::Watcher>>,
    /// Its loop, stopped at shutdown (a poll cut short is repeated by the next one).
    watching: Option<tokio::task::JoinHandle<()>>,
    worker: Worker,
    store: Arc<dyn JobStore>,
    sandbox: Option<Sandbox>,
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
        config: Config,
        listener: TcpListener,
        workers: Workers,
    ) -> anyhow::Result<Application> {
        Application::build_with_clock(config, listener, workers, Clock::system()).await
    }

    /// [`Application::build_with`] with the clock the API derives values from (a report's
    /// default month): tests put it across a month boundary.
    pub async fn build_with_clock(
        mut config: Config,
        listener: TcpListener,
        workers: Workers,
        clock: Clock,
    ) -> anyhow::Result<Application> {
        crate::api::metrics::install();
        let store = crate::queue::open_store(&config.store, None).await?;
        let (upstream, sandbox) = match &config.upstream {
            Upstream::Puhuri(u) => {
                let upstream = (u.url.clone(), u.token.clone(), u.timeout, u.connect_timeout);
                (upstream, None)
            }
            Upstream::Sandbox { timeout } => {
                let timeout = *timeout;
                let sandbox = Sandbox::start(&mut config)?;
                let upstream = (sandbox.api_url()?, sandbox.token(), timeout, timeout);
                (upstream, Some(sandbox))
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
        let client = new_client()?;
        // Each further identity's own clients (delivery and lookups), on the same Puhuri, sharing
        // one record per identity of whether Puhuri accepts its token (named in errors, logs and
        // the refusal metric).
        let statuses: BTreeMap<String, Arc<crate::upstream::token::TokenStatus>> = config
            .identities
            .keys()
            .map(|n| {
                (
                    n.clone(),
                    Arc::new(crate::upstream::token::TokenStatus::for_identity(n)),
                )
            })
            .collect();
        let identity_clients = |config: &Config| -> anyhow::Result<BTreeMap<String, WaldurClient>> {
            config
                .identities
                .iter()
                .map(|(name, token)| {
                    WaldurClient::new(url.clone(), token, timeout, connect_timeout)
                        .map(|c| (name.clone(), c.with_token_status(statuses[name].clone())))
                        .map_err(anyhow::Error::msg)
                })
                .collect()
        };
        let delivery_identities = identity_clients(&config)?;
        let lookup_identities = identity_clients(&config)?;
        // One record of whether Puhuri accepts the token, whichever client heard it.
        let lookup_client = new_client()?.with_token_status(client.token_status().clone());
        // The request path's lookups; the deliverer only forgets entries it made stale.
        let directory =
            Arc::new(Directory::new(lookup_client).serving_stale_for(config.reads.serve_stale_for));
        let config = Arc::new(config);
        let sites = web::Data::new(SiteRegistry::from_config(&config).map_err(anyhow::Error::msg)?);
        let wake = Arc::new(Notify::new());
        let events = Arc::new(crate::events::EventHub::open(&config).await?);
        let limits = DeliveryLimits {
            max_in_flight: config.delivery.max_in_flight,
            max_per_second: config.delivery.max_per_second,
            jitter_allowance_us: u32::try_from(config.delivery.rate_jitter_allowance.as_micros())
                .unwrap_or(u32::MAX),
        };
        let service_provider_uuid = match (&config.upstream, &sandbox) {
            (Upstream::Puhuri(u), _) => u.service_provider_uuid.clone(),
            (Upstream::Sandbox { .. }, Some(sandbox)) => Some(sandbox.service_provider_uuid()),
            (Upstream::Sandbox { .. }, None) => None,
        };
        let watcher = crate::watcher::Watcher::new(
            &config,
            new_client()?.with_token_status(client.token_status().clone()),
            store.clone(),
            limits,
            events.clone(),
            directory.clone(),
            service_provider_uuid.clone(),
            process_worker_id(),
        )
        .map(Arc::new);
        let outcomes = Arc::new(crate::events::JobOutcomes {
            hub: events.clone(),
            store: store.clone(),
            view: |job| serde_json::to_value(api::jobs::JobView::from(job)).unwrap_or_default(),
            poke: watcher.as_ref().map(|w| w.poke.clone()),
        });
        if workers == Workers::Start {
            // the events a process that died between a job's outcome and its event left out
            let outcomes = outcomes.clone();
            tokio::spawn(async move {
                match outcomes.catch_up(JOB_EVENTS_CATCH_UP).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(events = n, "stored job events missed before"),
                    Err(e) => tracing::warn!(error = %e, "could not catch up on job events"),
                }
            });
        }
        let worker = Worker::new(
            process_worker_id(),
            store.clone(),
            Deliverer::new(client.clone(), store.clone())
                .with_identities(delivery_identities)
                .with_directory(directory.clone())
                .with_usage_known_for(config.delivery.usage_known_for),
            RetryPolicy {
                base: config.delivery.backoff_base,
                cap: config.delivery.backoff_cap,
                max_attempts: config.delivery.max_attempts,
                max_age: config.delivery.max_age,
            },
            limits,
            config.delivery.lease,
        )
        .observed_by(outcomes.clone());
        let watching = (workers == Workers::Start)
            .then(|| watcher.clone().map(|w| tokio::spawn(w.run())))
            .flatten();
        let event_pools = (workers == Workers::Start).then(|| events.start(&config));
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
        let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
        let state = web::Data::new(AppState {
            config: config.clone(),
            store: store.clone(),
            directory,
            wake,
            workers_running,
            events: events.clone(),
            sandbox: sandbox.is_some(),
            service_provider_uuid,
            identities: lookup_identities,
            username_rule: crate::domain::UsernameRule::new(
                config.limits.username_pattern.as_deref(),
            )
            .map_err(|m| anyhow::anyhow!("limits.username_pattern {m}"))?,
            clock,
            stopping: stopping_rx,
        });
        if config.reads.warm_at_start {
            read_ahead(state.clone(), sites.clone());
        }
        let max_body = config.limits.max_body_bytes;
        let sandboxed = sandbox.is_some();
        let in_flight = web::Data::new(crate::api::middleware::InFlight::default());
        let counted = in_flight.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(Compress::default())
                .wrap(from_fn(request_context))
                .app_data(counted.clone())
                .app_data(state.clone())
                .app_data(sites.clone())
                .configure(|cfg| api::configure(cfg, max_body, sandboxed))
        })
        .on_connect(crate::api::middleware::on_connect);
        let server = match &config.tls {
            None => server.listen(listener)?,
            Some(tls) => {
                let certs = crate::tls::Certificates::load(&tls.cert_file, &tls.key_file)
                    .map_err(|m| anyhow::anyhow!("tls: {m}"))?;
                certs.watch(tls.reload_interval);
                let rustls = certs
                    .server_config()
                    .map_err(|m| anyhow::anyhow!("tls: {m}"))?;
                server.listen_rustls_0_23(listener, rustls)?
            }
        };
        let server = server
            // The signals are ours (see `run_until_stopped`): deliveries stop before HTTP drains.
            .disable_signals()
            .shutdown_timeout(config.delivery.shutdown_grace.as_secs().max(1))
            .run();
        if let Some(sandbox) = &sandbox {
            sandbox.announce(port, config.tls.is_some());
        } else {
            tracing::info!(port, "puhuri-gateway listening");
        }
        Ok(Application {
            port,
            server,
            stopping,
            grace: config.delivery.shutdown_grace,
            in_flight,
            workers: pool,
            event_pools,
            events,
            watcher,
            watching,
            worker,
            store,
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

    /// The sites' event lanes (tests drive them with [`Workers::Manual`]).
    pub fn events(&self) -> Arc<crate::events::EventHub> {
        self.events.clone()
    }

    /// The watcher of Puhuri, if one runs (tests and the benchmark call its `poll`).
    pub fn watcher(&self) -> Option<Arc<crate::watcher::Watcher>> {
        self.watcher.clone()
    }

    pub fn store(&self) -> Arc<dyn JobStore> {
        self.store.clone()
    }

    /// The simulator's control URL in sandbox mode.
    pub fn simulator_control_url(&self) -> Option<String> {
        self.sandbox.as_ref().map(Sandbox::control_url)
    }

    pub fn sandbox(&self) -> Option<&SandboxInfo> {
        self.sandbox.as_ref().map(Sandbox::info)
    }

    /// Serves until SIGINT or SIGTERM, then shuts down within `delivery.shutdown_grace`:
    ///
    /// 1. no delivery starts any more (the workers stop leasing at once);
    /// 2. the HTTP server stops accepting connections and drains the requests in flight, while
    ///    in-flight deliveries finish; a request waiting for its job (`Prefer: wait`) is
    ///    answered at once with the job as it stands. Both get the same grace period, counted
    ///    from the signal, so the whole shutdown fits in it (the HTTP drain's timeout is in whole
    ///    seconds, at least one);
    /// 3. deliveries still running then are handed back to the queue, and the simulator stops.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application {
            server,
            stopping,
            grace,
            in_flight,
            workers,
            event_pools,
            watching,
            sandbox,
            ..
        } = self;
        let stop_watching = || {
            if let Some(task) = &watching {
                task.abort();
            }
        };
        let handle = server.handle();
        tokio::pin!(server);
        let served = tokio::select! {
            served = &mut server => Some(served),
            () = shutdown_signal() => None,
        };
        let started = std::time::Instant::now();
        stop_watching();
        if let Some(pool) = &workers {
            pool.stop_leasing();
        }
        if let Some(pools) = &event_pools {
            pools.stop_leasing();
        }
        let _ = stopping.send(true);
        tracing::info!(
            grace_seconds = grace.as_secs_f64(),
            "stopping: no new deliveries; draining HTTP requests and in-flight deliveries"
        );
        let drain_http = async {
            if served.is_none() {
                // No new connections; the requests in flight end first (a waiting one is
                // answered at once), and only then is the server stopped: actix's stop can end a
                // worker as soon as its acceptor is gone, cutting off the connections it still
                // serves, so nothing may be in flight by then (unless the grace ran out).
                let stop = async {
                    handle.pause().await;
                    let deadline = started + grace;
                    while in_flight.count() > 0 && std::time::Instant::now() < deadline {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                    handle.stop(true).await;
                };
                // The server future runs the pause and the stop: poll both.
                let _ = tokio::join!(stop, &mut server);
            }
        };
        let drain_deliveries = async {
            if let Some(pool) = workers {
                pool.shutdown().await;
            }
            if let Some(pools) = event_pools {
                pools.shutdown().await;
            }
        };
        tokio::join!(drain_http, drain_deliveries);
        if let Some(sandbox) = sandbox {
            sandbox.stop().await;
        }
        tracing::info!(seconds = started.elapsed().as_secs_f64(), "stopped");
        served.unwrap_or(Ok(()))
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                tracing::warn!("cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reads every site's scanned people lists once, in the background (`reads.warm_at_start`),
/// unless the gateway begins to stop first.
fn read_ahead(state: web::Data<AppState>, sites: web::Data<SiteRegistry>) {
    let mut stopping = state.stopping.clone();
    tokio::spawn(async move {
        let work = async {
            for site in sites.sites() {
                let identity = crate::auth::SiteIdentity::of_gateway_for(site.clone());
                match api::people::warm(&state, &identity).await {
                    Ok(true) => tracing::info!(site = %site.id, "site's people lists read ahead"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(
                        site = %site.id,
                        error = %e,
                        "could not read the site's people lists ahead; its first read scans them"
                    ),
                }
            }
        };
        tokio::select! {
            () = work => {}
            _ = stopping.changed() => {}
        }
    });
}
