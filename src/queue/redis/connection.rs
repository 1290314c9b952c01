//! How a [`RedisStore`] reaches Redis: one server through a pool, a Redis Cluster through one
//! cluster connection, or the master the sentinels name (see "Failure behaviour" in the parent
//! module for why each thread keeps its own connection).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use deadpool_redis::{Hook, Pool, Runtime};
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;

use super::{CONNECTIONS, RedisStore, unavailable};
use crate::config::SentinelUrl;
use crate::queue::StoreResult;

/// Connection settings for [`RedisStore::connect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    /// Connections in the pool.
    pub pool_size: usize,
    /// How long a call waits for a free connection before failing with `Unavailable`.
    pub wait_timeout: Duration,
    /// Timeout for establishing a connection.
    pub connect_timeout: Duration,
    /// Timeout for one command or script reply (redis-rs defaults to 500 ms).
    pub response_timeout: Duration,
    /// The URL names one node of a Redis Cluster: one cluster connection (multiplexed, following
    /// `MOVED`/`ASK` and failovers) replaces the pool. The prefix must hold a hash tag.
    pub cluster: bool,
    /// After every write, wait for this many replicas to confirm it (`WAIT`), at most
    /// `response_timeout`; fewer is [`StoreError::OutcomeUnknown`]: not acknowledged. With
    /// Sentinel, what was acknowledged then survives the master's loss.
    pub wait_replicas: u32,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            pool_size: 16,
            wait_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
            cluster: false,
            wait_replicas: 0,
        }
    }
}

/// A connection to one Redis server (from the pool) or to a Redis Cluster. Every key of a
/// deployment is in one hash slot (the prefix's hash tag), so a cluster connection sends every
/// command and script to the one master holding that slot, wherever it is at the moment.
#[derive(Clone)]
pub enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The sentinel client and the connection to the master it named last, with the connection
/// generation it was made in.
type SentinelState = (
    redis::sentinel::SentinelClient,
    Option<(u64, MultiplexedConnection)>,
);

/// What a store connects through.
#[derive(Clone)]
pub(super) enum Backend {
    Pool(Pool),
    /// The cluster client and its one shared connection (made on first use, replaced after a
    /// connection failure).
    Cluster(
        Arc<redis::cluster::ClusterClient>,
        Arc<tokio::sync::Mutex<Option<(u64, ClusterConnection)>>>,
    ),
    /// The sentinels, asked for the current master whenever the connection is replaced (after
    /// a failure, or a `READONLY` answer from a master that was demoted), and that connection.
    Sentinel(Arc<tokio::sync::Mutex<SentinelState>>),
}

impl Backend {
    /// The backend for `url`: a sentinel URL, a cluster node (`options.cluster`) or one server.
    /// Nothing connects yet; an invalid URL or configuration is [`crate::queue::StoreError::Unavailable`].
    pub(super) fn for_url(url: &str, options: &RedisOptions) -> StoreResult<Backend> {
        let response_timeout = options.response_timeout;
        let backend = if let Some(parsed) = SentinelUrl::parse(url) {
            let parsed = parsed.map_err(|m| unavailable(format!("invalid sentinel URL: {m}")))?;
            let addrs = parsed
                .sentinels
                .iter()
                .map(|(host, port)| match parsed.tls {
                    // Certificates verified against the system's trust store, as for rediss://.
                    true => redis::ConnectionAddr::TcpTls {
                        host: host.clone(),
                        port: *port,
                        insecure: false,
                        tls_params: None,
                    },
                    false => redis::ConnectionAddr::Tcp(host.clone(), *port),
                });
            let mut builder = redis::sentinel::SentinelClientBuilder::new(
                addrs,
                &parsed.service,
                redis::sentinel::SentinelServerType::Master,
            )
            .map_err(|e| unavailable(format!("invalid sentinel configuration: {e}")))?
            .set_client_to_redis_db(parsed.db);
            if let Some(user) = &parsed.username {
                builder = builder.set_client_to_redis_username(user);
            }
            if let Some(password) = &parsed.password {
                builder = builder.set_client_to_redis_password(password);
            }
            if let Some(user) = &parsed.sentinel_username {
                builder = builder.set_client_to_sentinel_username(user);
            }
            if let Some(password) = &parsed.sentinel_password {
                builder = builder.set_client_to_sentinel_password(password);
            }
            if parsed.tls {
                builder = builder
                    .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure)
                    .set_client_to_redis_tls_mode(redis::TlsMode::Secure);
            }
            let client = builder
                .build()
                .map_err(|e| unavailable(format!("invalid sentinel configuration: {e}")))?;
            Backend::Sentinel(Arc::new(tokio::sync::Mutex::new((client, None))))
        } else if options.cluster {
            let client = redis::cluster::ClusterClient::builder(vec![url])
                .connection_timeout(options.connect_timeout)
                .response_timeout(response_timeout)
                .retries(2)
                .build()
                .map_err(|e| unavailable(format!("invalid cluster configuration: {e}")))?;
            Backend::Cluster(Arc::new(client), Arc::default())
        } else {
            Backend::Pool(
                deadpool_redis::Config::from_url(url)
                    .builder()
                    .map_err(|e| unavailable(format!("invalid configuration: {e}")))?
                    .max_size(options.pool_size.max(1))
                    .wait_timeout(Some(options.wait_timeout))
                    .create_timeout(Some(options.connect_timeout))
                    .recycle_timeout(Some(options.response_timeout))
                    .runtime(Runtime::Tokio1)
                    .post_create(Hook::sync_fn(move |conn, _| {
                        conn.set_response_timeout(response_timeout);
                        Ok(())
                    }))
                    .build()
                    .map_err(|e| unavailable(format!("cannot build the connection pool: {e}")))?,
            )
        };
        Ok(backend)
    }
}

impl RedisStore {
    /// This thread's connection, taking one out of the pool when there is none; with a cluster,
    /// the store's one cluster connection.
    pub(super) async fn connection(&self) -> StoreResult<Conn> {
        let generation = self.generation.load(Ordering::Acquire);
        let pool = match &self.backend {
            Backend::Pool(pool) => pool,
            Backend::Sentinel(shared) => {
                let mut guard = shared.lock().await;
                let (client, slot) = &mut *guard;
                if let Some((made_in, conn)) = slot.as_ref()
                    && *made_in == generation
                {
                    return Ok(Conn::Single(conn.clone()));
                }
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.response_timeout));
                let conn = client
                    .get_async_connection_with_config(&config)
                    .await
                    .map_err(|e| unavailable(format!("no master from the sentinels: {e}")))?;
                *slot = Some((generation, conn.clone()));
                return Ok(Conn::Single(conn));
            }
            Backend::Cluster(client, shared) => {
                let mut slot = shared.lock().await;
                if let Some((made_in, conn)) = slot.as_ref()
                    && *made_in == generation
                {
                    return Ok(Conn::Cluster(conn.clone()));
                }
                let conn = client
                    .get_async_connection()
                    .await
                    .map_err(|e| unavailable(format!("cannot connect to the cluster: {e}")))?;
                *slot = Some((generation, conn.clone()));
                return Ok(Conn::Cluster(conn));
            }
        };
        let current = |m: &HashMap<u64, (u64, Conn)>| {
            m.get(&self.id)
                .filter(|(made_in, _)| *made_in == generation)
                .map(|(_, c)| c.clone())
        };
        if let Some(c) = CONNECTIONS.with_borrow(current) {
            return Ok(c);
        }
        let pooled = pool.get().await.map_err(unavailable)?;
        let conn = Conn::Single(deadpool_redis::Connection::take(pooled));
        // Another call on this thread may have been quicker: use its connection, drop this one.
        Ok(CONNECTIONS.with_borrow_mut(|m| {
            current(m).unwrap_or_else(|| {
                m.insert(self.id, (generation, conn.clone()));
                conn
            })
        }))
    }

    /// Retires every thread's connection after a failure on a connection itself. Not only this
    /// thread's: a task may resume on another thread than the one whose connection failed, and
    /// such a failure (Redis restarted, failed over, unreachable) breaks them all anyway.
    pub(super) fn forget_connection(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        CONNECTIONS.with_borrow_mut(|m| m.remove(&self.id));
    }
}
