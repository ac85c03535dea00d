//! A child `nats-server -js` on a free loopback port, for `tenant-worker dev`
//! and for the integration tests (each test gets its own, killed on drop).

use std::net::TcpListener;
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
    Missing,
    #[error(
        "nats-server {found} is too old: tenant-worker needs {}.{} or newer; \
         run scripts/install-nats.sh",
        MIN_VERSION.0, MIN_VERSION.1
    )]
    TooOld { found: String },
    #[error("cannot start nats-server: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "nats-server did not accept connections on port {port} within {waited:?}; its log: {log}"
    )]
    NotReady {
        port: u16,
        waited: Duration,
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
            port: free_port()?,
            store_dir,
            config,
            log: tempdir.path().join("nats.log"),
            _tempdir: Some(tempdir),
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), NatsServerError> {
        // Readiness is read from the log: start it afresh on a restart.
        let _ = std::fs::remove_file(&self.log);
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
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
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

    pub fn port(&self) -> u16 {
        self.port
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
