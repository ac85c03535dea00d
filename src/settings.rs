//! The worker's settings as the library sees them (the CLI in `config` builds
//! them from flags and environment variables; tests build them directly).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::bus::TopologySettings;
use crate::cluster::Cluster;
use crate::error::Error;
use crate::plans::PlanCatalog;
use crate::saga::{Engine, EngineSettings};
use helm::Chart;

/// The sample chart shipped in this repository (`k8s/charts/tenant-app`).
pub const SAMPLE_CHART_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/k8s/charts/tenant-app");

/// A secret given on the command line or in the environment (a token, a
/// password): its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the client proves who it is to NATS (one way at most).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NatsAuth {
    /// No credentials (a server without authorization).
    #[default]
    None,
    /// A credentials file (user JWT and nkey seed, as `nsc` and `nats` write
    /// them), for servers in operator (decentralized JWT) mode.
    CredsFile(PathBuf),
    /// A file holding a user nkey seed (`SU...`), for servers that list the
    /// user's public nkey.
    NkeySeedFile(PathBuf),
    /// An authorization token.
    Token(Secret),
    /// A user name and password.
    UserPassword { user: String, password: Secret },
}

/// TLS towards NATS. The connection uses TLS whenever the server asks for it
/// (its INFO says `tls_required`) or the URL is `tls://`; these settings say
/// what to trust and what to present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsTls {
    /// PEM file of the certificate authorities that sign the server's
    /// certificate (instead of the system's roots).
    pub ca_file: Option<PathBuf>,
    /// PEM files of the client certificate (chain) and its private key, for
    /// servers that verify clients.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Refuse to talk to the server without TLS.
    pub required: bool,
}

/// How to reach NATS.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// One server URL, or several of one cluster separated by commas (see
    /// [`server_addrs`]).
    pub url: String,
    /// Client name shown in the server's connection list.
    pub name: String,
    pub auth: NatsAuth,
    pub tls: NatsTls,
}

/// Reads a file the connection needs, naming the flag that gave it when it
/// cannot be read (before anything connects).
fn read_file(flag: &str, path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::Setup(format!("{flag} {}: cannot read it: {e}", path.display())))
}

/// Fails unless `path` is a readable file (the client reads it itself).
fn check_readable(flag: &str, path: &Path) -> Result<(), Error> {
    std::fs::File::open(path)
        .and_then(|f| {
            if f.metadata()?.is_dir() {
                Err(std::io::Error::other("it is a directory"))
            } else {
                Ok(())
            }
        })
        .map_err(|e| Error::Setup(format!("{flag} {}: cannot read it: {e}", path.display())))
}

/// Whether a failed first connection attempt is one that retrying cannot fix
/// (wrong or missing credentials, TLS refused), as opposed to a server that is
/// not up yet.
fn is_refusal(err: &async_nats::ConnectError) -> bool {
    use async_nats::ConnectErrorKind as Kind;
    match err.kind() {
        Kind::ServerParse | Kind::Authentication | Kind::AuthorizationViolation | Kind::Tls => true,
        Kind::Dns | Kind::TimedOut | Kind::MaxReconnects => false,
        // A TLS failure after the handshake began (a server that refuses the
        // client certificate, or that does not speak TLS) is an I/O error
        // carrying the rustls error.
        Kind::Io => is_tls_failure(err),
    }
}

/// Whether `err` or what caused it is a rustls error.
fn is_tls_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        if e.is::<async_nats::rustls::Error>()
            || inner.is_some_and(|i| i.is::<async_nats::rustls::Error>())
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// What a refused connection means, in words.
fn refusal_message(url: &str, err: &async_nats::ConnectError) -> String {
    use async_nats::ConnectErrorKind as Kind;
    let why = match err.kind() {
        Kind::AuthorizationViolation => {
            "the server refused the connection: authorization violation \
             (check --nats-creds, --nats-nkey, --nats-token or --nats-user/--nats-password)"
        }
        Kind::Authentication => {
            "authentication failed: the nkey seed could not sign the server's challenge \
             (check --nats-creds or --nats-nkey)"
        }
        Kind::Tls | Kind::Io => {
            "the TLS connection was refused or failed \
             (check --nats-tls-ca, --nats-tls-cert and --nats-tls-key, \
             and that the server has TLS on)"
        }
        _ => "the NATS URL is unusable (check --nats-url)",
    };
    format!("cannot connect to NATS at {url}: {why}: {err}")
}

/// `url` (one or several, comma-separated) with any `user:password@` replaced
/// by `***@`, for logs and error messages.
pub fn redacted_url(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let (scheme, rest) = one.split_once("://").unwrap_or(("", one));
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => {
                    let prefix = if scheme.is_empty() {
                        String::new()
                    } else {
                        format!("{scheme}://")
                    };
                    format!("{prefix}***{}", &rest[at..])
                }
                None => one.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The servers `url` names: one URL, or several separated by commas (the
/// members of one cluster, e.g. `nats://a:4222,nats://b:4222`; blanks around
/// each are ignored). async-nats takes a `&str` as a single server, so the
/// list is split here; the client connects to one of them and fails over to
/// the others (and to the servers the cluster announces).
///
/// # Errors
/// [`Error::Setup`] naming `--nats-url` when an entry is empty or not a NATS
/// URL (credentials in it are not shown).
pub fn server_addrs(url: &str) -> Result<Vec<async_nats::ServerAddr>, Error> {
    url.split(',')
        .map(str::trim)
        .map(|one| {
            if one.is_empty() {
                return Err(Error::Setup(format!(
                    "--nats-url {}: empty server in the comma-separated list",
                    redacted_url(url)
                )));
            }
            one.parse::<async_nats::ServerAddr>()
                .map_err(|e| Error::Setup(format!("--nats-url {}: {e}", redacted_url(one))))
        })
        .collect()
}

impl NatsSettings {
    /// Plain settings (no credentials, TLS only if the server asks for it).
    pub fn plain(url: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: name.into(),
            auth: NatsAuth::None,
            tls: NatsTls::default(),
        }
    }

    /// Reads the files the settings name and builds the client's options.
    fn options(&self) -> Result<async_nats::ConnectOptions, Error> {
        let mut options = async_nats::ConnectOptions::new().name(&self.name);
        options = match &self.auth {
            NatsAuth::None => options,
            NatsAuth::CredsFile(path) => {
                let text = read_file("--nats-creds", path)?;
                options.credentials(&text).map_err(|e| {
                    Error::Setup(format!(
                        "--nats-creds {}: not a NATS credentials file: {e}",
                        path.display()
                    ))
                })?
            }
            NatsAuth::NkeySeedFile(path) => {
                let text = read_file("--nats-nkey", path)?;
                let seed = text
                    .lines()
                    .map(str::trim)
                    .find(|l| l.starts_with("SU"))
                    .ok_or_else(|| {
                        Error::Setup(format!(
                            "--nats-nkey {}: no user nkey seed (a line starting with SU) in it",
                            path.display()
                        ))
                    })?;
                options.nkey(seed.to_owned())
            }
            NatsAuth::Token(token) => options.token(token.expose().to_owned()),
            NatsAuth::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.expose().to_owned())
            }
        };
        if let Some(ca) = &self.tls.ca_file {
            check_readable("--nats-tls-ca", ca)?;
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls.client_cert {
            check_readable("--nats-tls-cert", cert)?;
            check_readable("--nats-tls-key", key)?;
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if self.tls.required {
            options = options.require_tls(true);
        }
        Ok(options)
    }

    /// Connects, retrying until the server answers (a worker that starts before
    /// NATS should wait for it, not crash-loop). A server that answers and
    /// refuses the connection (credentials, TLS) is an error at once.
    ///
    /// With several servers (see [`server_addrs`]), one that answers is
    /// enough; the others are fallbacks for later reconnections.
    ///
    /// # Errors
    /// [`Error::Setup`] when the URL is not a list of NATS URLs or a file the
    /// settings name cannot be read; [`Error::Nats`] when the server refuses
    /// the connection.
    pub async fn connect(&self) -> Result<async_nats::Client, Error> {
        let servers = server_addrs(&self.url)?;
        // Files are read (and their errors reported) before connecting.
        let first = self.options()?;
        match first.connect(servers.clone()).await {
            Ok(client) => Ok(client),
            Err(e) if is_refusal(&e) => Err(Error::nats(
                "connect",
                refusal_message(&redacted_url(&self.url), &e),
            )),
            // Not up (yet): keep trying in the background, as a worker should.
            Err(e) => {
                tracing::warn!(
                    url = %redacted_url(&self.url),
                    error = %e,
                    "NATS is not reachable yet; retrying in the background"
                );
                self.options()?
                    .retry_on_initial_connect()
                    .connect(servers)
                    .await
                    .map_err(|e| Error::nats("connect", e))
            }
        }
    }
}

/// Everything `worker::run` needs besides the Kubernetes client.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub nats: NatsSettings,
    pub plans: PlanCatalog,
    /// The chart installed as every tenant's release.
    pub chart: Arc<Chart>,
    /// Namespace of tenant `t` is `<namespace_prefix><t>`.
    pub namespace_prefix: String,
    pub engine: EngineSettings,
    pub topology: TopologySettings,
    /// Sagas run at once by this replica.
    pub concurrency: usize,
    /// How long in-flight sagas may run after a shutdown signal.
    pub shutdown_grace: Duration,
    /// How often this replica checks every tenant for drift and repairs it
    /// (`None`: never).
    pub reconcile_interval: Option<Duration>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (`None`: not served).
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl WorkerSettings {
    /// The engine a worker with these settings runs (also what the tools
    /// build, so that they expect exactly what the workers apply).
    pub fn engine(&self, kube: kube::Client, bus: crate::bus::Bus) -> Engine {
        Engine::new(
            Cluster::new(kube, self.namespace_prefix.clone(), self.engine.retry),
            Arc::new(self.plans.clone()),
            self.chart.clone(),
            bus,
            self.engine.clone(),
        )
    }

    /// Settings with the shipped plans and defaults, for tests and `dev`.
    pub fn for_tests(nats_url: &str) -> Self {
        Self {
            nats: NatsSettings::plain(nats_url, "tenant-worker"),
            plans: PlanCatalog::load(None).expect("shipped plans are valid"),
            chart: Arc::new(
                Chart::load(std::path::Path::new(SAMPLE_CHART_DIR))
                    .expect("the sample chart loads"),
            ),
            namespace_prefix: "tenant-".into(),
            engine: EngineSettings::default(),
            topology: TopologySettings::default(),
            concurrency: 32,
            shutdown_grace: Duration::from_secs(25),
            reconcile_interval: None,
            metrics_listen: None,
        }
    }

    /// `max_deliver` as an unsigned count.
    pub fn max_deliver(&self) -> u64 {
        u64::try_from(self.topology.max_deliver).unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::{redacted_url, server_addrs};
    use crate::error::Error;

    #[test]
    fn a_comma_separated_url_is_a_list_of_servers() {
        let hosts = |url: &str| -> Vec<(String, u16, bool)> {
            server_addrs(url)
                .unwrap()
                .iter()
                .map(|a| (a.host().to_owned(), a.port(), a.tls_required()))
                .collect()
        };
        assert_eq!(
            hosts("nats://127.0.0.1:4222"),
            [("127.0.0.1".to_owned(), 4222, false)]
        );
        assert_eq!(
            hosts("nats://a:4001, tls://b:4002 ,c"),
            [
                ("a".to_owned(), 4001, false),
                ("b".to_owned(), 4002, true),
                ("c".to_owned(), 4222, false),
            ]
        );
    }

    #[test]
    fn a_bad_entry_in_the_list_names_the_flag_and_hides_passwords() {
        for (url, says) in [
            ("nats://a:4001,,nats://b:4002", "empty server"),
            ("nats://a:4001,", "empty server"),
            ("nats://a:4001,http://u:s3cret@b:80", "invalid scheme"),
        ] {
            match server_addrs(url) {
                Err(Error::Setup(message)) => {
                    assert!(message.starts_with("--nats-url "), "{message}");
                    assert!(message.contains(says), "{url}: {message}");
                    assert!(!message.contains("s3cret"), "{message}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn passwords_in_urls_are_not_shown() {
        assert_eq!(
            redacted_url("nats://alice:s3cret@nats.example:4222"),
            "nats://***@nats.example:4222"
        );
        assert_eq!(
            redacted_url("tls://tok@a:4222,nats://b:4222"),
            "tls://***@a:4222,nats://b:4222"
        );
        assert_eq!(
            redacted_url("nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
        assert_eq!(redacted_url("u:p@host:4222"), "***@host:4222");
    }
}
