//! A real `redis-server` (from PATH) for tests: on a free 127.0.0.1 port, never the machine's
//! Redis on 6379. It is killed on drop (only the process this harness started, by its pid) and
//! can be stopped and restarted on the same port and data directory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    durable: bool,
    cluster: bool,
    /// Further arguments (e.g. `--replicaof`).
    extra: Vec<String>,
}

impl RedisServer {
    /// In-memory only: `--save "" --appendonly no`.
    pub fn start() -> RedisServer {
        Self::launch(false)
    }

    /// `--appendonly yes --appendfsync always` in a temporary directory: every acknowledged
    /// write survives a kill -9 and a restart.
    pub fn start_durable() -> RedisServer {
        Self::launch(true)
    }

    fn launch(durable: bool) -> RedisServer {
        Self::launch_as(durable, false)
    }

    fn launch_as(durable: bool, cluster: bool) -> RedisServer {
        Self::launch_with(durable, cluster, Vec::new())
    }

    /// A durable replica of the server on `master_port` (127.0.0.1).
    pub fn start_replica_of(master_port: u16) -> RedisServer {
        Self::launch_with(
            true,
            false,
            vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                master_port.to_string(),
            ],
        )
    }

    fn launch_with(durable: bool, cluster: bool, extra: Vec<String>) -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir for redis-server");
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir,
            durable,
            cluster,
            extra,
        };
        // a freshly chosen port can be taken by someone else before redis binds it: try a few
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("could not start redis-server");
    }

    fn spawn(&mut self) -> bool {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--dir"])
            .arg(self.dir.path())
            .args(["--daemonize", "no", "--loglevel", "warning"]);
        if self.durable {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.args(&self.extra);
        if self.cluster {
            cmd.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_exited))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return false;
            }
            if ping(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kill the server (SIGKILL, like a crash) and wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop the server's process (SIGSTOP, to this harness's own child by its pid): connections
    /// stay open and nothing is answered until [`RedisServer::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Let a paused server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server runs").id();
        let sent = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill {signal} {pid}");
    }

    /// Start again on the same port and directory (after [`RedisServer::stop`]).
    pub fn restart(&mut self) {
        self.stop();
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not restart redis-server on port {}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => buf[..n].starts_with(b"+PONG"),
        Err(_) => false,
    }
}

static SHARED: Mutex<Weak<RedisServer>> = Mutex::new(Weak::new());

/// One server shared by the tests running at the same time (each uses its own key prefix). It is
/// killed when the last test holding it finishes.
pub fn shared() -> Arc<RedisServer> {
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(server) = slot.upgrade() {
        return server;
    }
    let server = Arc::new(RedisServer::start());
    *slot = Arc::downgrade(&server);
    server
}

/// A key prefix no other test uses.
pub fn unique_prefix(name: &str) -> String {
    format!("test:{name}:{}:", uuid::Uuid::new_v4().simple())
}

/// A Redis Cluster of three masters (no replicas) on free 127.0.0.1 ports, each a
/// [`RedisServer`] started with `--cluster-enabled yes`, joined with
/// `redis-cli --cluster create ... --cluster-yes`. Ready when every node reports
/// `cluster_state:ok` (within 30 s, else the test fails); every node is killed on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::launch_as(false, true))
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("timeout")
            .args(["30", "redis-cli", "--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli must be on PATH");
        assert!(created.success(), "redis-cli --cluster create failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &node.port.to_string(), "cluster", "info"])
                    .output()
                    .expect("redis-cli runs");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not become ready"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        RedisCluster { nodes }
    }

    /// One node's URL: the cluster client finds the others from it.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// Each node's port.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }
}

static SHARED_CLUSTER: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());

/// One cluster shared by the tests running at the same time (each with its own hash-tagged
/// prefix, [`unique_tagged_prefix`]); stopped when the last test holding it finishes.
pub fn shared_cluster() -> Arc<RedisCluster> {
    let mut slot = SHARED_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(cluster) = slot.upgrade() {
        return cluster;
    }
    let cluster = Arc::new(RedisCluster::start());
    *slot = Arc::downgrade(&cluster);
    cluster
}

/// A key prefix no other test uses, with a hash tag: every key of the store in one slot.
pub fn unique_tagged_prefix(name: &str) -> String {
    format!("{{test:{name}:{}}}:", uuid::Uuid::new_v4().simple())
}

/// A Redis Sentinel (`redis-server sentinel.conf --sentinel`) on a free 127.0.0.1 port watching
/// the master on `master_port` as `service`, alone (quorum 1), declaring it down after 1 s. Killed
/// on drop (this harness's own child, by its pid).
pub struct Sentinel {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    pub fn start(master_port: u16, service: &str) -> Sentinel {
        let dir = tempfile::tempdir().expect("temp dir for the sentinel");
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {service} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {service} 1000\n\
                 sentinel failover-timeout {service} 10000\n\
                 sentinel parallel-syncs {service} 2\n",
                dir = dir.path().display()
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .args(["--sentinel", "--loglevel", "warning", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(port) {
            assert!(Instant::now() < deadline, "the sentinel did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sentinel {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What `redis-cli -p <sentinel> <args>` prints.
    pub fn ask(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `redis-cli -p <port> <args>` prints.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value after `field` in `redis-cli`'s line-per-item output of a map.
pub fn field_after(output: &str, field: &str) -> Option<String> {
    let mut lines = output.lines();
    lines.find(|l| l.trim() == field)?;
    lines.next().map(|l| l.trim().to_string())
}

/// A durable master, two durable replicas of it (both connected) and a [`Sentinel`] watching it
/// as `gw` that knows both replicas; within 20 s, else the test fails. Blocking: call it from
/// `spawn_blocking` in async tests.
pub fn replicated_with_sentinel() -> (RedisServer, [RedisServer; 2], Sentinel) {
    let master = RedisServer::start_durable();
    let replicas = [
        RedisServer::start_replica_of(master.port()),
        RedisServer::start_replica_of(master.port()),
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cli(master.port(), &["info", "replication"]).contains("connected_slaves:2") {
        assert!(Instant::now() < deadline, "the replicas did not connect");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sentinel = Sentinel::start(master.port(), "gw");
    while field_after(&sentinel.ask(&["sentinel", "master", "gw"]), "num-slaves").as_deref()
        != Some("2")
    {
        assert!(
            Instant::now() < deadline,
            "the sentinel did not find the replicas"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (master, replicas, sentinel)
}
