//! Job stores for the tests, one fixture per backend: the embedded store in a temporary
//! directory, and Redis (the shared test redis-server, or a three-master cluster) under a key
//! prefix no other test uses. A fixture keeps what its store runs on (the directory, the server)
//! alive for as long as the fixture lives.
//!
//! For a gateway started from a configuration, [`redis_table`] is the `[redis]` table and
//! [`Backend`] a whole configuration on either backend.

use std::path::Path;

use puhuri_gateway::config::{Config, RawConfig};
use puhuri_gateway::queue::JobStore;
use puhuri_gateway::queue::embedded::EmbeddedStore;
use puhuri_gateway::queue::redis::{RedisOptions, RedisStore};
use secrecy::SecretString;

use super::redis::{RedisServer, shared, shared_cluster, unique_prefix, unique_tagged_prefix};

/// A store and what it runs on.
pub struct StoreFixture {
    pub store: Box<dyn JobStore>,
    _keep: Box<dyn std::any::Any + Send>,
}

/// The embedded store in a new temporary directory.
pub async fn embedded() -> StoreFixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path()).await.expect("open");
    StoreFixture {
        store: Box::new(store),
        _keep: Box::new(dir),
    }
}

/// The Redis store on the shared test server, its keys under a new prefix named after `name`.
pub async fn redis(name: &str) -> StoreFixture {
    let server = shared();
    let store = RedisStore::connect(&server.url(), &unique_prefix(name), RedisOptions::default())
        .await
        .expect("connect");
    StoreFixture {
        store: Box::new(store),
        _keep: Box::new(server),
    }
}

/// The store on a three-master Redis Cluster, its keys in one hash slot (a hash-tagged prefix):
/// every script runs there as on one server.
pub async fn redis_cluster(name: &str) -> StoreFixture {
    let cluster = tokio::task::spawn_blocking(shared_cluster).await.unwrap();
    let options = RedisOptions {
        cluster: true,
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&cluster.url(), &unique_tagged_prefix(name), options)
        .await
        .expect("connect");
    StoreFixture {
        store: Box::new(store),
        _keep: Box::new(cluster),
    }
}

/// The `[redis]` table of a gateway's configuration: the server at `url`, keys under `prefix`
/// (on lines of their own, so further keys of the table may follow).
pub fn redis_table(url: &str, prefix: &str) -> String {
    format!("\n[redis]\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n")
}

/// A gateway's configuration on one backend, and what that backend runs on.
pub struct Backend {
    pub config: Config,
    _keep: Box<dyn std::any::Any + Send>,
}

/// A configuration whose store is the embedded one, in a new temporary directory.
pub fn embedded_backend() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    Backend {
        config: embedded_config(dir.path()),
        _keep: Box::new(dir),
    }
}

/// A configuration whose store is Redis on the shared test server, its keys under a new prefix
/// named after `name`, given without the trailing `:` as an operator would configure it.
pub fn redis_backend(name: &str) -> Backend {
    let server = shared();
    Backend {
        config: redis_config(&server, &bare_prefix(name)),
        _keep: Box::new(server),
    }
}

/// The default configuration with its data (the embedded store) in `dir`.
pub fn embedded_config(dir: &Path) -> Config {
    let raw = RawConfig {
        data_dir: dir.to_path_buf(),
        ..RawConfig::default()
    };
    Config::from_raw(raw).expect("valid config")
}

/// The default configuration with its store on `server`, keys under `prefix`.
pub fn redis_config(server: &RedisServer, prefix: &str) -> Config {
    let mut raw = RawConfig::default();
    raw.redis.url = Some(SecretString::from(server.url()));
    raw.redis.key_prefix = prefix.to_owned();
    Config::from_raw(raw).expect("valid config")
}

/// A prefix no other test uses, without the trailing `:`.
pub fn bare_prefix(name: &str) -> String {
    format!("test-{name}-{}", uuid::Uuid::new_v4().simple())
}
