//! A child `nats-server -js` on a free loopback port, for `tenant-worker dev`
//! and for the integration tests (each test gets its own, killed on drop), and
//! a [`NatsCluster`] of several such servers routed to each other, for tests
//! of clustered JetStream (R3 streams, a node killed and restarted).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Oldest nats-server the worker supports (2.9's account-info reply does not
/// parse in current async-nats).
pub const MIN_VERSION: (u32, u32) = (2, 10);

/// Why a nats-server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum NatsServerError {
    #[error(
        "nats-server is not on PATH; install it with scripts/install-nats.sh \
         (Debian/Ubuntu) or from https://github.com/nats-io/nats-server/releases"
    )]
    /// No `nats-server` on PATH.
    Missing,
    #[error(
        "nats-server {found} is too old: tenant-worker needs {}.{} or newer; \
         run scripts/install-nats.sh",
        MIN_VERSION.0, MIN_VERSION.1
    )]
    /// The `nats-server` on PATH is older than 2.10.
    TooOld {
        /// The version it reports.
        found: String,
    },
    /// The process could not be started or its files written.
    #[error("cannot start nats-server: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "nats-server did not accept connections on port {port} within {waited:?}; its log: {log}"
    )]
    /// Started, but not accepting connections in time.
    NotReady {
        /// Its client port.
        port: u16,
        /// How long it was given.
        waited: Duration,
        /// Its log.
        log: String,
    },
    #[error(
        "nats-server {node} of the cluster was not a ready JetStream cluster member within \
         {waited:?}: {health}; its log: {log}"
    )]
    /// A cluster node that did not become a ready JetStream member in time.
    ClusterNotReady {
        /// The node's name.
        node: String,
        /// How long it was given.
        waited: Duration,
        /// What its monitoring endpoint said last (or why it did not answer).
        health: String,
        /// Its log.
        log: String,
    },
}

/// A running child nats-server; killed when dropped.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store_dir: PathBuf,
    config: Option<PathBuf>,
    log: PathBuf,
    /// Where the current run's part of the log starts.
    run_started_at: u64,
    // Kept so the store outlives the server when the caller gave no directory.
    _tempdir: Option<tempfile::TempDir>,
}

/// The installed nats-server's version, e.g. `"2.10.27"`.
///
/// # Errors
/// [`NatsServerError::Missing`] when it is not on PATH.
pub fn installed_version() -> Result<String, NatsServerError> {
    let out = Command::new("nats-server")
        .arg("--version")
        .output()
        .map_err(|_| NatsServerError::Missing)?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .trim()
        .rsplit('v')
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// Checks that the installed nats-server is at least [`MIN_VERSION`].
///
/// # Errors
/// [`NatsServerError::Missing`] or [`NatsServerError::TooOld`].
pub fn check_installed() -> Result<String, NatsServerError> {
    let version = installed_version()?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < MIN_VERSION {
        return Err(NatsServerError::TooOld { found: version });
    }
    Ok(version)
}

/// A free TCP port on 127.0.0.1 (bound then released; good enough for tests).
///
/// # Errors
/// I/O errors from binding.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl NatsServer {
    /// Starts `nats-server -js` on a free port with its store in `store_dir`
    /// (a temporary directory when `None`) and waits until it accepts connections.
    ///
    /// # Errors
    /// See [`NatsServerError`].
    pub fn start(store_dir: Option<&Path>) -> Result<Self, NatsServerError> {
        Self::start_with_config(store_dir, None)
    }

    /// Like [`NatsServer::start`], with extra server configuration text
    /// (e.g. `max_payload: 4MB`) written to a config file.
    ///
    /// # Errors
    /// See [`NatsServerError`].
    pub fn start_with_config(
        store_dir: Option<&Path>,
        config_text: Option<&str>,
    ) -> Result<Self, NatsServerError> {
        Self::launch(free_port()?, store_dir, config_text)
    }

    /// Like [`NatsServer::start_with_config`], with the client port chosen by
    /// the caller (a cluster's routes must know every node's ports first).
    fn launch(
        port: u16,
        store_dir: Option<&Path>,
        config_text: Option<&str>,
    ) -> Result<Self, NatsServerError> {
        check_installed()?;
        let tempdir = tempfile::tempdir()?;
        let store_dir = match store_dir {
            Some(d) => d.to_path_buf(),
            None => tempdir.path().join("jetstream"),
        };
        let config = match config_text {
            Some(text) => {
                let path = tempdir.path().join("nats.conf");
                std::fs::write(&path, text)?;
                Some(path)
            }
            None => None,
        };
        let mut server = Self {
            child: None,
            port,
            store_dir,
            config,
            log: tempdir.path().join("nats.log"),
            run_started_at: 0,
            _tempdir: Some(tempdir),
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), NatsServerError> {
        // Readiness is read from what this run adds to the log (nats-server
        // appends, so a restarted server's log keeps its previous runs).
        let from = std::fs::metadata(&self.log).map_or(0, |m| m.len());
        self.run_started_at = from;
        let mut cmd = Command::new("nats-server");
        if let Some(config) = &self.config {
            cmd.arg("-c").arg(config);
        }
        cmd.args([
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-sd",
        ])
        .arg(&self.store_dir)
        .arg("-l")
        .arg(&self.log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        self.child = Some(cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => NatsServerError::Missing,
            _ => NatsServerError::Io(e),
        })?);
        let started = Instant::now();
        let limit = Duration::from_secs(15);
        // Ready when the port accepts and the log says JetStream is up.
        loop {
            let log = self.log_since(from);
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && log.contains("Server is ready")
            {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(NatsServerError::NotReady {
                    port: self.port,
                    waited: limit,
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `nats://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the process is running (not killed, not exited by itself).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The server's log since it was last (re)started.
    pub fn log_text(&self) -> String {
        self.log_since(self.run_started_at)
    }

    /// Where the server logs (every run, restarts appended).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The log from byte `from` on.
    fn log_since(&self, from: u64) -> String {
        let all = std::fs::read(&self.log).unwrap_or_default();
        let from = usize::try_from(from).unwrap_or(usize::MAX).min(all.len());
        String::from_utf8_lossy(&all[from..]).into_owned()
    }

    /// Kills the server (SIGKILL: no clean shutdown), keeping its store.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store.
    ///
    /// # Errors
    /// See [`NatsServerError`].
    pub fn restart(&mut self) -> Result<(), NatsServerError> {
        self.kill();
        self.spawn()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `cluster { name }` of every [`NatsCluster`].
pub const CLUSTER_NAME: &str = "tenant-worker-test";

/// How long [`NatsCluster`] waits for a node to be a ready member: a first
/// meta-leader election takes well under a second, a restarted node catching
/// up on its streams a few seconds.
const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

/// One node of a [`NatsCluster`]: a [`NatsServer`] whose config file holds its
/// name, its monitoring port and the cluster block.
struct Node {
    name: String,
    server: NatsServer,
    /// Monitoring (HTTP) port, for `/healthz` and `/jsz`.
    http_port: u16,
}

/// Several `nats-server -js` processes on loopback, routed to each other as
/// one JetStream cluster (for streams and buckets with up to `n` replicas);
/// every node is killed when the cluster is dropped.
///
/// # Guarantees
/// - Node `i` (0-based) is named `n<i+1>` (the names stream info gives in
///   `cluster.leader` and `cluster.replicas`, see [`NatsCluster::index_of`]);
///   its client, route and monitoring ports are free loopback ports, distinct
///   from each other's, and its JetStream store is its own temporary directory.
/// - [`NatsCluster::start`] returns only when every node is a ready member:
///   its `/healthz` answers 200 (JetStream is in contact with an elected meta
///   leader) and the meta group counts all `n` peers, current on the leader,
///   so that streams with up to `n` replicas can be placed at once (a node
///   left outside the meta group would make an R3 stream fail with "no
///   suitable peers for placement");
///   [`NatsCluster::restart`] returns only when the restarted node is a ready
///   member again, which also means every stream and consumer replica it
///   holds has caught up.
/// - A killed node keeps its ports and its store: a restart is the same node
///   coming back, as after a crash.
pub struct NatsCluster {
    nodes: Vec<Node>,
}

/// `count` distinct free loopback ports (all bound at once, then released).
fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// `GET path` on a monitoring port: the status code and the body.
fn http_get(http_port: u16, path: &str) -> Result<(u16, String), String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], http_port));
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    // HTTP/1.0: the server closes the connection after the response.
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {head}"))?;
    Ok((status, body.to_owned()))
}

/// Whether the node on `http_port` is ready as a member of a cluster of
/// `size`: `/healthz` says 200 (JetStream is in contact with a meta leader,
/// and every stream and consumer replica the node holds is current), and
/// `/jsz` shows a meta group of `size` peers; on the meta leader, with every
/// other peer current. `Err` says what is missing.
fn cluster_member_ready(http_port: u16, name: &str, size: usize) -> Result<(), String> {
    let (status, body) = http_get(http_port, "/healthz")?;
    if status != 200 {
        return Err(format!("/healthz: {status} {}", body.trim()));
    }
    let (_, body) = http_get(http_port, "/jsz")?;
    let jsz: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("/jsz: {e}"))?;
    let meta = &jsz["meta_cluster"];
    let leader = meta["leader"].as_str().unwrap_or_default();
    let known = meta["cluster_size"].as_u64().unwrap_or(0);
    if leader.is_empty() || known != size as u64 {
        return Err(format!(
            "/jsz: meta group of {known} peers, leader {leader:?}: {meta}"
        ));
    }
    if leader == name {
        let current = meta["replicas"]
            .as_array()
            .map_or(0, |r| r.iter().filter(|p| p["current"] == true).count());
        if current + 1 != size {
            return Err(format!("/jsz: {current} other peers current: {meta}"));
        }
    }
    Ok(())
}

impl NatsCluster {
    /// Starts `n` nodes routed to each other and waits until each is a ready
    /// member (at most 30 s per node).
    ///
    /// # Errors
    /// [`NatsServerError::Missing`] / [`NatsServerError::TooOld`] /
    /// [`NatsServerError::Io`] as for [`NatsServer::start`];
    /// [`NatsServerError::NotReady`] when a node does not accept connections;
    /// [`NatsServerError::ClusterNotReady`] when a node does not become a
    /// ready member (no meta leader elected, a peer missing from the meta
    /// group), with what its monitoring endpoint said and its log.
    ///
    /// # Panics
    /// When `n` is 0.
    pub fn start(n: usize) -> Result<Self, NatsServerError> {
        assert!(n > 0, "a cluster needs at least one node");
        let ports = free_ports(3 * n)?;
        let (client, rest) = ports.split_at(n);
        let (route, http) = rest.split_at(n);
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("n{}", i + 1);
            // The same route block on every node, itself included (a server
            // skips the route to itself): nats-server sizes the first meta
            // group from it. With only the other nodes listed, three nodes
            // started together formed a meta group of two that never admitted
            // the third in 2 boots of 8 (2.10.27); with all listed, in none of 32.
            let routes: String = (0..n)
                .map(|j| format!("    \"nats-route://127.0.0.1:{}\"\n", route[j]))
                .collect();
            // The store directory, client address and port are NatsServer's
            // own command-line flags (`-sd`, `-a`, `-p`).
            let config = format!(
                "server_name: \"{name}\"\n\
                 http: \"127.0.0.1:{http}\"\n\
                 cluster {{\n  \
                   name: \"{CLUSTER_NAME}\"\n  \
                   listen: \"127.0.0.1:{route}\"\n  \
                   routes: [\n{routes}  ]\n\
                 }}\n",
                http = http[i],
                route = route[i],
            );
            let server = NatsServer::launch(client[i], None, Some(&config))?;
            nodes.push(Node {
                name,
                server,
                http_port: http[i],
            });
        }
        let mut cluster = Self { nodes };
        for i in 0..n {
            cluster.wait_healthy(i)?;
        }
        Ok(cluster)
    }

    /// Waits until node `i` is a ready member (see [`cluster_member_ready`]).
    fn wait_healthy(&mut self, i: usize) -> Result<(), NatsServerError> {
        let started = Instant::now();
        let size = self.nodes.len();
        let node = &mut self.nodes[i];
        loop {
            let health = match cluster_member_ready(node.http_port, &node.name, size) {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            if started.elapsed() > HEALTHY_WITHIN || !node.server.is_running() {
                return Err(NatsServerError::ClusterNotReady {
                    node: node.name.clone(),
                    waited: started.elapsed(),
                    health,
                    log: node.server.log_text(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node's client URL, comma-separated, in node order
    /// (`nats://127.0.0.1:P1,nats://127.0.0.1:P2,...`): what `--nats-url`
    /// takes. async-nats itself parses a `&str` as one server; give it
    /// [`NatsCluster::url_list`] instead.
    pub fn urls(&self) -> String {
        self.url_list().join(",")
    }

    /// Every node's client URL, in node order (async-nats connects to a
    /// `Vec<String>` as a list of servers).
    pub fn url_list(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.server.url()).collect()
    }

    /// Node `i`'s client URL.
    ///
    /// # Panics
    /// When there is no node `i`.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].server.url()
    }

    /// Node `i`'s server name (`n<i+1>`).
    ///
    /// # Panics
    /// When there is no node `i`.
    pub fn server_name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// The index of the node named `server_name` (as stream info names a
    /// leader or replica), if it is one of this cluster's.
    pub fn index_of(&self, server_name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == server_name)
    }

    /// Whether node `i` is running.
    ///
    /// # Panics
    /// When there is no node `i`.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i].server.is_running()
    }

    /// Where node `i` logs (every run; a restart appends).
    ///
    /// # Panics
    /// When there is no node `i`.
    pub fn log_path(&self, i: usize) -> &Path {
        self.nodes[i].server.log_path()
    }

    /// Kills node `i` (SIGKILL: no clean shutdown, no leadership handed
    /// over), keeping its ports and store. Killing a killed node does nothing.
    ///
    /// # Panics
    /// When there is no node `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].server.kill();
    }

    /// Starts node `i` again (killing it first if it runs) on the same ports
    /// and store, and waits until it is a ready member: back in the cluster,
    /// with every stream and consumer replica it holds caught up.
    ///
    /// # Errors
    /// As for [`NatsCluster::start`], for this node.
    ///
    /// # Panics
    /// When there is no node `i`.
    pub fn restart(&mut self, i: usize) -> Result<(), NatsServerError> {
        self.nodes[i].server.restart()?;
        self.wait_healthy(i)
    }
}
