//! Wiring: [`Application::build`] turns a validated [`Config`] and a bound listener into a running
//! gateway. `main` and the tests both use it, so tests run the real thing on port 0.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actix_web::dev::Server;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer, web};

use crate::api::{self, AppState, middleware::request_context};
use crate::auth::SiteRegistry;
use crate::config::Config;

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub async fn build(config: Config, listener: TcpListener) -> anyhow::Result<Application> {
        let config = Arc::new(config);
        let sites = SiteRegistry::from_config(&config).map_err(anyhow::Error::msg)?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState {
            config: config.clone(),
            sites,
            workers_running: Arc::new(AtomicBool::new(true)),
        });
        let max_body = config.limits.max_body_bytes;
        let server = HttpServer::new(move || {
            App::new()
                .wrap(Compress::default())
                .wrap(from_fn(request_context))
                .app_data(state.clone())
                .configure(|cfg| api::configure(cfg, max_body))
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
