//! The `puhuri-gateway` command line. Parsing and dispatch only; the work is in the library.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use puhuri_gateway::auth::Scope;
use puhuri_gateway::config::{CONFIG_PATH_ENV, Config, Overrides};
use puhuri_gateway::startup::Application;

/// mimalloc rather than the system allocator: a request allocates and frees many small buffers
/// across the HTTP workers' threads, where glibc's malloc cost about a fifth of the CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "puhuri-gateway",
    version,
    about = "A site's gateway to Puhuri Core: durable, least-privilege delivery of service-provider operations",
    long_about = "A site's gateway to Puhuri Core (Waldur). Site systems call its local REST API with a \
                  site JWT; writes are queued durably and delivered to Puhuri with the service \
                  provider's token, which only the gateway holds.\n\n\
                  With no subcommand it runs `serve`. With no configuration it runs in sandbox mode \
                  against the built-in Waldur simulator."
)]
struct Cli {
    /// The TOML configuration file.
    #[arg(long, short, global = true, env = CONFIG_PATH_ENV, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve(ServeArgs),
    /// Run the Waldur simulator alone (for trying an integration without Puhuri).
    #[cfg(feature = "sim")]
    Sim(SimArgs),
    /// Site tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print the OpenAPI document.
    Openapi,
    /// Validate the configuration and exit non-zero with the reasons.
    CheckConfig,
    /// Inspect and manage jobs in the configured store (for operators).
    #[command(subcommand)]
    Jobs(puhuri_gateway::admin::JobsCommand),
    /// Ask a running gateway whether it can take work (`GET /readyz`); exit 0 when it can.
    ///
    /// For container health checks and probes where no HTTP client is installed. Without `--url`
    /// it asks the `listen` address of the configuration (an unspecified address such as
    /// `0.0.0.0` is asked on loopback). Prints the readiness answer; exits 1 when the gateway
    /// answers anything but 200 or does not answer within `--timeout`.
    Healthcheck(HealthcheckArgs),
}

#[derive(Args)]
struct HealthcheckArgs {
    /// The URL to ask, e.g. `http://127.0.0.1:8080/readyz` (default: `/readyz` on `listen`).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// How long to wait for the whole answer, e.g. `3s`.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Args, Clone, Default)]
struct ServeArgs {
    /// Address to listen on (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Directory for the embedded queue and sandbox files (overrides `data_dir`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Redis URL for the job queue (overrides `redis.url`); without one the embedded store is used.
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// Puhuri Core API root (overrides `upstream.url`); without one the gateway runs in sandbox mode.
    #[arg(long, value_name = "URL")]
    upstream_url: Option<String>,
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            redis_url: self.redis_url.clone(),
            upstream_url: self.upstream_url.clone(),
        }
    }
}

#[cfg(feature = "sim")]
#[derive(Args)]
struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081", value_name = "ADDR")]
    listen: SocketAddr,
    /// The service provider token the simulator accepts (default: the demo token).
    #[arg(
        long,
        env = "PUHURI_SIM_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a site JWT signed with the site's configured key.
    Issue {
        /// The site id (as in the configuration).
        #[arg(long)]
        site: String,
        /// A scope to grant; repeat for several. Default: every scope the site is allowed.
        #[arg(long = "scope", value_name = "SCOPE", value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// How long the token is valid, e.g. `1h`, `30d`.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// The key to sign with (default: the site's first key the gateway can sign with).
        #[arg(long)]
        kid: Option<String>,
    },
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| {
        let all: Vec<&str> = Scope::EVERY.iter().map(|s| s.as_str()).collect();
        format!("unknown scope `{s}` (one of: {})", all.join(", "))
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(cli.config, cli.serve),
        Some(Command::Serve(args)) => serve(cli.config, args),
        #[cfg(feature = "sim")]
        Some(Command::Sim(args)) => sim(args),
        Some(Command::Token(TokenCommand::Issue {
            site,
            scopes,
            ttl,
            kid,
        })) => issue(cli.config, &site, &scopes, ttl, kid.as_deref()),
        Some(Command::Openapi) => {
            print!("{}", puhuri_gateway::api::openapi::document_json());
            Ok(())
        }
        Some(Command::CheckConfig) => check_config(cli.config),
        Some(Command::Jobs(command)) => jobs(cli.config, &cli.serve, command),
        Some(Command::Healthcheck(args)) => healthcheck(cli.config, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("puhuri-gateway: {message}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<PathBuf>, overrides: &Overrides) -> Result<Config, String> {
    Config::load(path.as_deref(), overrides).map_err(|e| e.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn serve(path: Option<PathBuf>, args: ServeArgs) -> Result<(), String> {
    let config = load(path, &args.overrides())?;
    puhuri_gateway::telemetry::init(&config.log);
    let listener = TcpListener::bind(config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    runtime()?.block_on(async move {
        let app = Application::build(config, listener)
            .await
            .map_err(|e| e.to_string())?;
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}

#[cfg(feature = "sim")]
fn sim(args: SimArgs) -> Result<(), String> {
    puhuri_gateway::telemetry::init(&puhuri_gateway::config::LogConfig {
        format: puhuri_gateway::config::LogFormat::Human,
        level: "info".into(),
    });
    let token = args
        .token
        .unwrap_or_else(|| puhuri_gateway::sim::demo::TOKEN.to_string());
    runtime()?.block_on(async move {
        puhuri_gateway::sim::run_standalone(args.listen, puhuri_gateway::sim::SimOptions { token })
            .await
            .map_err(|e| e.to_string())
    })
}

fn issue(
    path: Option<PathBuf>,
    site: &str,
    scopes: &[Scope],
    ttl: Duration,
    kid: Option<&str>,
) -> Result<(), String> {
    let config = load(path, &Overrides::default())?;
    let token = puhuri_gateway::auth::issue::issue_token(&config, site, kid, scopes, ttl)?;
    println!("{token}");
    Ok(())
}

/// The operator's job commands, on the store the configuration names, or the one that
/// `--data-dir` / `--redis-url` (given before `jobs`) name, as for `serve`.
fn jobs(
    path: Option<PathBuf>,
    store: &ServeArgs,
    command: puhuri_gateway::admin::JobsCommand,
) -> Result<(), String> {
    let overrides = Overrides {
        data_dir: store.data_dir.clone(),
        redis_url: store.redis_url.clone(),
        ..Overrides::default()
    };
    let config = load(path, &overrides)?;
    let output = runtime()?.block_on(puhuri_gateway::admin::run(&config, command))?;
    print!("{output}");
    Ok(())
}

fn healthcheck(path: Option<PathBuf>, args: HealthcheckArgs) -> Result<(), String> {
    // Whether the probe asks the gateway's own TLS listener on loopback: its certificate names
    // the public host, not the loopback address, and what is checked is that this process
    // answers, so the certificate is not verified for that probe (an explicit `--url` is).
    let (url, own_tls) = match args.url {
        Some(url) => (url, false),
        None => {
            // only `listen` and `tls` are needed: no secret file is read for a probe that runs every few seconds
            let raw =
                puhuri_gateway::config::RawConfig::extract(path.as_deref(), &Overrides::default())
                    .map_err(|e| e.to_string())?;
            (readyz_url(raw.listen, raw.tls.is_some()), raw.tls.is_some())
        }
    };
    runtime()?.block_on(async move {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(own_tls)
            .timeout(args.timeout)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        let response = client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url} did not answer: {e}"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.is_success() {
            println!("{body}");
            Ok(())
        } else {
            Err(format!("{url} answered {status}: {body}"))
        }
    })
}

/// `http://ADDR/readyz` (`https://` with `[tls]`) for a listen address; an unspecified address
/// is asked on loopback.
fn readyz_url(listen: SocketAddr, tls: bool) -> String {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}/readyz")
}

fn check_config(path: Option<PathBuf>) -> Result<(), String> {
    let config = load(path, &Overrides::default())?;
    puhuri_gateway::auth::SiteRegistry::from_config(&config)?;
    println!(
        "configuration is valid: {} site(s), {} mode, {} store",
        config.sites.len(),
        if config.is_sandbox() {
            "sandbox"
        } else {
            "puhuri"
        },
        match config.store {
            puhuri_gateway::config::StoreConfig::Embedded { .. } => "embedded",
            puhuri_gateway::config::StoreConfig::Redis { .. } => "redis",
        }
    );
    Ok(())
}
