//! The command line: one `clap` struct per subcommand, every flag also an
//! environment variable, with safe defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::bus::TopologySettings;
use crate::error::Error;
use crate::plans::PlanCatalog;
use crate::retry::RetryPolicy;
use crate::saga::EngineSettings;
use crate::settings::{NatsAuth, NatsSettings, NatsTls, Secret, WorkerSettings};
use helm::Chart;

/// Turns tenant.requested / upgraded / deleted events from NATS JetStream into
/// isolated tenants (namespace, quota, limits, network policy, RBAC) on
/// Kubernetes, and publishes what happened to TENANT_STATUS.
#[derive(Debug, Parser)]
#[command(name = "tenant-worker", version, propagate_version = true)]
pub struct Cli {
    /// Log format.
    #[arg(long, env = "TENANT_WORKER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the worker against NATS and a real cluster (kubeconfig or in-cluster).
    Run(RunArgs),
    /// Run everything locally: a child nats-server (unless --nats-url), the
    /// embedded Kubernetes API, and the worker.
    #[cfg(feature = "dev")]
    Dev(DevArgs),
    /// Serve the embedded Kubernetes API alone (a test and demo double), so that
    /// several `run` replicas can share one.
    #[cfg(feature = "dev")]
    EmbeddedApi(EmbeddedApiArgs),
    /// Publish a tenant lifecycle event (as billing or signup would).
    Publish(PublishArgs),
    /// Show the worker's record of tenants (KV tenant_state).
    Status(StatusArgs),
    /// The routing table (KV tenant_routes), as a gateway sees it.
    #[command(subcommand)]
    Routes(RoutesCommand),
    /// Compare every tenant's objects in the cluster with what its record says
    /// should be there (namespace, quota, limits, network policy, RBAC, the
    /// deployed release's objects; no namespace for a deleted tenant) and
    /// report the drift; with --apply, repair it through the saga engine and
    /// publish tenant.drift_repaired per repaired tenant.
    ///
    /// Takes the workers' settings (same flags and environment variables), so
    /// that it expects what the workers would apply. Drift is found with
    /// server-side apply dry runs, as `kubectl diff --server-side` does: fields
    /// other managers own (an autoscaler's replicas, someone's extra label)
    /// are not drift. Tenants with a saga in flight are skipped. Objects that
    /// are in the way without the worker's labels are reported, never touched.
    ///
    /// Exit status: 0 when everything is in sync (or was repaired), 1 when drift
    /// was found and not repaired, or on error.
    Reconcile(ReconcileArgs),
    /// Re-read TENANT_LIFECYCLE and show, per tenant, what the worker would do
    /// to bring it to what its events ask for (a diff of status, plan,
    /// version, values and objects against its record and the cluster); with
    /// --apply, re-drive those intents through the workers and wait for them.
    ///
    /// The selection (--tenant, --since/--until, --from-seq/--to-seq) chooses
    /// the tenants to look at: those with an event in it. What each should be
    /// is always decided by its whole history, so a replay never brings back
    /// an intent that a later event replaced. Tenants with an event the workers
    /// have not applied yet are left alone.
    ///
    /// --apply publishes one tenant.requested (target plan, version, values,
    /// the last event's metadata) or tenant.deleted per tenant that differs,
    /// with source tenant-worker-replay, an id derived from the tenant's state
    /// (the same replay publishes the same event, and nothing is applied
    /// twice) and the extension attribute `replayasof`: a tenant that applies a
    /// newer event first rejects the replayed one as superseded. Interrupting is
    /// safe; running the same command again resumes. Workers must be running.
    ///
    /// Takes the workers' settings (same flags and environment variables).
    /// Progress is drawn on stderr when it is a terminal.
    Replay(ReplayArgs),
    /// Render the chart for a tenant as the worker would install it, and print
    /// the manifests like `helm template` (no NATS; no cluster unless
    /// --kubeconfig).
    ///
    /// Values, lowest first: the chart's values.yaml, the plan's `values` (with
    /// the application version at the catalogue's app_version_value path),
    /// --values. The chart's `kubeVersion` is checked before rendering, as Helm
    /// checks it.
    /// The manifests are printed in Helm's install order, hooks last,
    /// each as `---`, `# Source: <template>` and the document; NOTES.txt is not
    /// printed. On any error nothing is printed on stdout, the exit code is 1,
    /// and stderr says what is wrong and where (file and line for templates).
    ///
    /// `.Capabilities` are those of `helm template` (Kubernetes v1.36.0 and
    /// Helm's built-in API versions), or, with --kubeconfig, the cluster's own
    /// (its version and every group version and `group/version/Kind` it
    /// serves, as the worker and `helm install` read them); --kube-version
    /// replaces the version and --api-versions adds to the list either way.
    Render(RenderArgs),
}

/// NATS connection: the server, how to prove who the client is (at most one
/// of --nats-creds, --nats-nkey, --nats-token, --nats-user/--nats-password),
/// and TLS. The environment variables are those of the `nats` CLI where it
/// has one.
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS server URL (`tls://` to insist on TLS), or several servers of one
    /// cluster separated by commas (`nats://a:4222,nats://b:4222`): the client
    /// connects to one that answers and fails over to the others.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Credentials file (user JWT and nkey seed, as written by `nsc` or
    /// `nats`) for a server in operator (JWT) mode.
    #[arg(
        long,
        env = "NATS_CREDS",
        value_name = "FILE",
        help_heading = "NATS authentication",
        conflicts_with_all = ["nats_nkey", "nats_token", "nats_user"]
    )]
    pub nats_creds: Option<PathBuf>,
    /// File holding the user's nkey seed (`SU...`) for a server that lists the
    /// user's public nkey.
    #[arg(
        long,
        env = "NATS_NKEY",
        value_name = "FILE",
        help_heading = "NATS authentication",
        conflicts_with_all = ["nats_token", "nats_user"]
    )]
    pub nats_nkey: Option<PathBuf>,
    /// Authorization token (prefer the environment variable to a flag, which
    /// other users can see in the process list).
    #[arg(
        long,
        env = "NATS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "NATS authentication",
        conflicts_with = "nats_user"
    )]
    pub nats_token: Option<Secret>,
    /// User name, with --nats-password.
    #[arg(
        long,
        env = "NATS_USER",
        value_name = "USER",
        help_heading = "NATS authentication",
        requires = "nats_password"
    )]
    pub nats_user: Option<String>,
    /// Password of --nats-user (prefer the environment variable to a flag).
    #[arg(
        long,
        env = "NATS_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD",
        help_heading = "NATS authentication",
        requires = "nats_user"
    )]
    pub nats_password: Option<Secret>,
    /// PEM file of the certificate authorities that sign the server's
    /// certificate (instead of the system's trusted roots).
    #[arg(long, env = "NATS_CA", value_name = "PEM", help_heading = "NATS TLS")]
    pub nats_tls_ca: Option<PathBuf>,
    /// PEM file of the client certificate, for a server that verifies
    /// clients; with --nats-tls-key.
    #[arg(
        long,
        env = "NATS_CERT",
        value_name = "PEM",
        help_heading = "NATS TLS",
        requires = "nats_tls_key"
    )]
    pub nats_tls_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key; with --nats-tls-cert.
    #[arg(
        long,
        env = "NATS_KEY",
        value_name = "PEM",
        help_heading = "NATS TLS",
        requires = "nats_tls_cert"
    )]
    pub nats_tls_key: Option<PathBuf>,
    /// Refuse to connect without TLS (TLS is used anyway whenever the server
    /// asks for it or the URL is `tls://`).
    #[arg(long, env = "NATS_TLS_REQUIRED", help_heading = "NATS TLS")]
    pub nats_tls_required: bool,
}

impl NatsArgs {
    /// Arguments for a plain connection to `url` (no credentials, no TLS
    /// settings), as `dev` uses.
    pub fn plain(url: impl Into<String>) -> Self {
        Self {
            nats_url: url.into(),
            nats_creds: None,
            nats_nkey: None,
            nats_token: None,
            nats_user: None,
            nats_password: None,
            nats_tls_ca: None,
            nats_tls_cert: None,
            nats_tls_key: None,
            nats_tls_required: false,
        }
    }

    /// The settings these arguments describe, for the client `name` (shown in
    /// the server's connection list).
    pub fn settings(&self, name: &str) -> NatsSettings {
        let auth = if let Some(path) = &self.nats_creds {
            NatsAuth::CredsFile(path.clone())
        } else if let Some(path) = &self.nats_nkey {
            NatsAuth::NkeySeedFile(path.clone())
        } else if let Some(token) = &self.nats_token {
            NatsAuth::Token(token.clone())
        } else if let (Some(user), Some(password)) = (&self.nats_user, &self.nats_password) {
            NatsAuth::UserPassword {
                user: user.clone(),
                password: password.clone(),
            }
        } else {
            NatsAuth::None
        };
        NatsSettings {
            url: self.nats_url.clone(),
            name: name.to_owned(),
            auth,
            tls: NatsTls {
                ca_file: self.nats_tls_ca.clone(),
                client_cert: self.nats_tls_cert.clone().zip(self.nats_tls_key.clone()),
                required: self.nats_tls_required,
            },
        }
    }

    /// Connects as the client `name` (shown in the server's connection list).
    ///
    /// # Errors
    /// [`Error::Setup`] when a file named by the flags cannot be read;
    /// [`Error::Nats`] when the URL is unusable or the server refuses the
    /// connection.
    pub async fn connect(&self, name: &str) -> Result<async_nats::Client, Error> {
        self.settings(name).connect().await
    }
}

/// What [`WorkerArgs::settings`] connects the worker with: the NATS flags
/// (`&NatsArgs`, credentials and TLS included), or a bare URL (a plain
/// connection, as `dev` and tests use).
pub trait WorkerNats {
    fn worker_nats(&self) -> NatsSettings;
}

impl WorkerNats for NatsArgs {
    fn worker_nats(&self) -> NatsSettings {
        self.settings("tenant-worker")
    }
}

impl WorkerNats for str {
    fn worker_nats(&self) -> NatsSettings {
        NatsSettings::plain(self, "tenant-worker")
    }
}

impl WorkerNats for String {
    fn worker_nats(&self) -> NatsSettings {
        self.as_str().worker_nats()
    }
}

/// Settings shared by `run` and `dev`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Plan catalogue (YAML); the shipped k8s/plans.yaml when not given.
    #[arg(long, env = "TENANT_WORKER_PLANS")]
    pub plans: Option<PathBuf>,
    /// The Helm chart (a directory in Helm's layout) installed as every
    /// tenant's release, named after the tenant, in its namespace.
    #[arg(
        long,
        env = "TENANT_WORKER_CHART",
        default_value = "k8s/charts/tenant-app"
    )]
    pub chart: PathBuf,
    /// Prefix of tenant namespaces: tenant `acme` lives in `<prefix>acme`.
    #[arg(
        long,
        env = "TENANT_WORKER_NAMESPACE_PREFIX",
        default_value = "tenant-"
    )]
    pub namespace_prefix: String,
    /// Namespace of the routing gateway, allowed in by every tenant's NetworkPolicy.
    #[arg(
        long,
        env = "TENANT_WORKER_GATEWAY_NAMESPACE",
        default_value = "tenant-gateway"
    )]
    pub gateway_namespace: String,
    /// Service name of the tenant's application (the route's host is `<service>.<namespace>.svc.cluster.local`).
    #[arg(long, env = "TENANT_WORKER_APP_SERVICE", default_value = "app")]
    pub app_service: String,
    /// Port of the tenant's application service, published in routes.
    #[arg(long, env = "TENANT_WORKER_APP_PORT", default_value_t = 8080)]
    pub app_port: u16,
    /// Sagas this replica runs at once.
    #[arg(long, env = "TENANT_WORKER_CONCURRENCY", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub concurrency: u16,
    /// Deliveries of one event before it is dead-lettered.
    #[arg(long, env = "TENANT_WORKER_MAX_DELIVER", default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub max_deliver: i64,
    /// Seconds JetStream waits for an ack before redelivering (progress acks keep long sagas).
    #[arg(long, env = "TENANT_WORKER_ACK_WAIT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(3..=3600))]
    pub ack_wait_secs: u64,
    /// Inbound events larger than this many bytes are dead-lettered.
    #[arg(long, env = "TENANT_WORKER_MAX_EVENT_BYTES", default_value_t = 256 * 1024)]
    pub max_event_bytes: usize,
    /// Seconds in-flight sagas may run after SIGTERM/SIGINT.
    #[arg(long, env = "TENANT_WORKER_SHUTDOWN_GRACE_SECS", default_value_t = 25)]
    pub shutdown_grace_secs: u64,
    /// Seconds one delivery waits for a deleted namespace to disappear.
    #[arg(
        long,
        env = "TENANT_WORKER_NAMESPACE_DELETION_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub namespace_deletion_timeout_secs: u64,
    /// This replica's name in tenant leases; `<HOSTNAME>-<pid>` when not given
    /// (the pod name in Kubernetes). Must differ between running replicas.
    #[arg(long, env = "TENANT_WORKER_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// Seconds a tenant lease keeps other replicas out without renewal; it is
    /// renewed every third of this while a saga runs, so only a dead replica's
    /// lease runs out, and its tenants wait at most this long.
    #[arg(long, env = "TENANT_WORKER_LEASE_TTL_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(3..=3600))]
    pub lease_ttl_secs: u64,
    /// Replicas of the streams and buckets the worker creates (3 on a NATS cluster).
    #[arg(long, env = "TENANT_WORKER_STREAM_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub stream_replicas: u8,
    /// Seconds between drift checks of every tenant by this replica, each
    /// followed by a repair of what drifted (as `reconcile --apply`, publishing
    /// tenant.drift_repaired); 0 turns periodic reconciling off. Each pass
    /// costs two Kubernetes requests per object of every tenant.
    #[arg(
        long,
        env = "TENANT_WORKER_RECONCILE_INTERVAL_SECS",
        default_value_t = 0
    )]
    pub reconcile_interval_secs: u64,
    /// Address of the operator endpoints: /metrics (Prometheus), /healthz
    /// (liveness) and /readyz (NATS, TENANT_LIFECYCLE and the Kubernetes API
    /// reachable). Port 0 picks a free port (logged); `off` serves nothing.
    #[arg(long, env = "TENANT_WORKER_METRICS_LISTEN", default_value = "0.0.0.0:9090", value_parser = parse_listen)]
    pub metrics_listen: Listen,
}

/// `--metrics-listen`: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

fn parse_listen(s: &str) -> Result<Listen, String> {
    if s == "off" {
        return Ok(Listen(None));
    }
    s.parse()
        .map(|a| Listen(Some(a)))
        .map_err(|e| format!("{e}: expected host:port (e.g. 0.0.0.0:9090) or `off`"))
}

impl WorkerArgs {
    /// Validates the arguments and loads the plan catalogue; the worker
    /// connects to NATS as `nats` says (pass the `NatsArgs`, not only their
    /// URL, or credentials and TLS settings are left out).
    ///
    /// # Errors
    /// [`Error::Plans`] when the plan file is unusable; [`Error::Setup`] for a bad prefix.
    pub fn settings<N: WorkerNats + ?Sized>(&self, nats: &N) -> Result<WorkerSettings, Error> {
        let plans = PlanCatalog::load(self.plans.as_deref())?;
        let chart = Chart::load(&self.chart)
            .map_err(|e| Error::Setup(format!("--chart {}: {e}", self.chart.display())))?;
        let prefix_ok = !self.namespace_prefix.is_empty()
            && self.namespace_prefix.len() <= 63 - crate::contract::MAX_TENANT_ID_LEN
            && self
                .namespace_prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && self.namespace_prefix.as_bytes()[0].is_ascii_lowercase();
        if !prefix_ok {
            return Err(Error::Setup(format!(
                "--namespace-prefix {:?} must start with a lower-case letter, use only [a-z0-9-] and be at most {} characters, so that every namespace is a valid DNS label",
                self.namespace_prefix,
                63 - crate::contract::MAX_TENANT_ID_LEN
            )));
        }
        Ok(WorkerSettings {
            nats: nats.worker_nats(),
            plans,
            chart: std::sync::Arc::new(chart),
            namespace_prefix: self.namespace_prefix.clone(),
            engine: EngineSettings {
                gateway_namespace: self.gateway_namespace.clone(),
                app_service: self.app_service.clone(),
                app_port: self.app_port,
                namespace_deletion_timeout: Duration::from_secs(
                    self.namespace_deletion_timeout_secs,
                ),
                retry: RetryPolicy::default(),
                replica_id: self
                    .replica_id
                    .clone()
                    .unwrap_or_else(crate::saga::engine::default_replica_id),
                lease_ttl: Duration::from_secs(self.lease_ttl_secs),
                max_event_bytes: self.max_event_bytes,
            },
            topology: TopologySettings {
                max_deliver: self.max_deliver,
                ack_wait: Duration::from_secs(self.ack_wait_secs),
                replicas: usize::from(self.stream_replicas),
                ..TopologySettings::default()
            },
            concurrency: usize::from(self.concurrency),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            reconcile_interval: (self.reconcile_interval_secs > 0)
                .then(|| Duration::from_secs(self.reconcile_interval_secs)),
            metrics_listen: self.metrics_listen.0,
        })
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Kubeconfig file; without it, KUBECONFIG, ~/.kube/config or the in-cluster service account.
    #[arg(long, env = "TENANT_WORKER_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

#[cfg(feature = "dev")]
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Use this NATS server instead of starting a child nats-server.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,
    /// Where the embedded Kubernetes API listens.
    #[arg(
        long,
        env = "TENANT_WORKER_API_LISTEN",
        default_value = "127.0.0.1:16443"
    )]
    pub api_listen: SocketAddr,
    /// Where to write a kubeconfig for the embedded API (for kubectl).
    #[arg(
        long,
        env = "TENANT_WORKER_KUBECONFIG_OUT",
        default_value = ".dev/kubeconfig"
    )]
    pub kubeconfig_out: PathBuf,
    /// After start, publish a tenant.requested for tenant `demo` and show the result.
    #[arg(long, env = "TENANT_WORKER_DEMO")]
    pub demo: bool,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

#[cfg(feature = "dev")]
#[derive(Debug, Args)]
pub struct EmbeddedApiArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "TENANT_WORKER_API_LISTEN",
        default_value = "127.0.0.1:16443"
    )]
    pub listen: SocketAddr,
    /// Where to write a kubeconfig pointing at it.
    #[arg(
        long,
        env = "TENANT_WORKER_KUBECONFIG_OUT",
        default_value = ".dev/kubeconfig"
    )]
    pub kubeconfig_out: PathBuf,
    /// Milliseconds a deleted namespace stays Terminating.
    #[arg(
        long,
        env = "TENANT_WORKER_API_TERMINATION_DELAY_MS",
        default_value_t = 0
    )]
    pub namespace_termination_delay_ms: u64,
    /// Milliseconds before Deployments and StatefulSets report ready.
    #[arg(long, env = "TENANT_WORKER_API_READY_DELAY_MS", default_value_t = 0)]
    pub ready_delay_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PublishKind {
    Requested,
    Upgraded,
    Deleted,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Event type.
    #[arg(value_enum)]
    pub kind: PublishKind,
    /// Tenant id (a DNS-1123 label of at most 40 characters).
    pub tenant: String,
    /// Plan (required for `requested`).
    #[arg(long)]
    pub plan: Option<String>,
    /// Application version.
    #[arg(long)]
    pub app_version: Option<String>,
    /// Chart value overrides as a JSON object.
    #[arg(long)]
    pub values: Option<String>,
    /// Opaque metadata (a JSON object) passed through to the completion event.
    #[arg(long)]
    pub metadata: Option<String>,
    /// Reason (for `deleted`).
    #[arg(long)]
    pub reason: Option<String>,
    /// Event id (a UUID); a fresh one when not given. Re-using one shows idempotency.
    #[arg(long)]
    pub id: Option<uuid::Uuid>,
    /// The event's `source` attribute.
    #[arg(long, default_value = "cli")]
    pub source: String,
    /// Wait up to this many seconds for the completion event and print it (0: don't wait).
    #[arg(long, default_value_t = 30)]
    pub wait: u64,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Kubeconfig file; without it, KUBECONFIG, ~/.kube/config or the in-cluster service account.
    #[arg(long, env = "TENANT_WORKER_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Only this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Repair what drifted (without it, only report).
    #[arg(long)]
    pub apply: bool,
    /// One JSON object per tenant that is not in sync, instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Kubeconfig file; without it, KUBECONFIG, ~/.kube/config or the in-cluster service account.
    #[arg(long, env = "TENANT_WORKER_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Only this tenant (repeatable).
    #[arg(long)]
    pub tenant: Vec<String>,
    /// Only events published at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<jiff::Timestamp>,
    /// Only events published at or before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<jiff::Timestamp>,
    /// Only events at or after this stream sequence.
    #[arg(long)]
    pub from_seq: Option<u64>,
    /// Only events at or before this stream sequence.
    #[arg(long)]
    pub to_seq: Option<u64>,
    /// Re-drive the intents that differ (without it, a dry run that changes nothing).
    #[arg(long)]
    pub apply: bool,
    /// With --apply: seconds to wait for each re-driven event's completion.
    #[arg(long, default_value_t = 300)]
    pub wait: u64,
    /// One JSON object per tenant (every tenant looked at, in sync or not).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `tenant-worker routes ...`.
#[derive(Debug, Subcommand)]
pub enum RoutesCommand {
    /// A reference gateway-side consumer of KV tenant_routes: prints the live
    /// table, then every change as it happens (`+` a route set, `-` a route
    /// withdrawn), ignoring any route older (by `generation`) than the one it
    /// has, as a gateway's tenant -> endpoint cache should. Ctrl-C stops it.
    Watch(RoutesWatchArgs),
    /// Recompute KV tenant_routes from tenant_state and the cluster: a route
    /// for every tenant that is ready (namespace present, release deployed),
    /// none for any other, and print what changed. Safe while workers run:
    /// a rebuilt route carries the generation of the tenant's last applied
    /// event, so gateways never prefer it over a newer one.
    Rebuild(RoutesRebuildArgs),
}

#[derive(Debug, Args)]
pub struct RoutesRebuildArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Kubeconfig file; without it, KUBECONFIG, ~/.kube/config or the in-cluster service account.
    #[arg(long, env = "TENANT_WORKER_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Prefix of tenant namespaces, as the worker runs with.
    #[arg(
        long,
        env = "TENANT_WORKER_NAMESPACE_PREFIX",
        default_value = "tenant-"
    )]
    pub namespace_prefix: String,
    /// Service name of the tenant's application, as the worker runs with.
    #[arg(long, env = "TENANT_WORKER_APP_SERVICE", default_value = "app")]
    pub app_service: String,
    /// Port of the tenant's application service, as the worker runs with.
    #[arg(long, env = "TENANT_WORKER_APP_PORT", default_value_t = 8080)]
    pub app_port: u16,
    /// Print what would change without writing anything.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RoutesWatchArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// One JSON object per line: `{"op":"put","tenant":..,"route":{..}}` or
    /// `{"op":"delete","tenant":..}`.
    #[arg(long)]
    pub json: bool,
    /// Print the current table and exit instead of following changes.
    #[arg(long)]
    pub once: bool,
}

/// Arguments of `tenant-worker render` (see [`Command::Render`]).
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Tenant id: the release name, and the namespace `<prefix><tenant>`.
    pub tenant: String,
    /// The chart (a directory in Helm's layout).
    #[arg(
        long,
        env = "TENANT_WORKER_CHART",
        default_value = "k8s/charts/tenant-app"
    )]
    pub chart: PathBuf,
    /// Plan whose values apply; without it, only the chart's and --values.
    /// With it, --values may only set what the plan's overridable_values allow.
    #[arg(long, env = "TENANT_WORKER_RENDER_PLAN")]
    pub plan: Option<String>,
    /// Application version, set at the catalogue's app_version_value path
    /// (image.tag); the catalogue's default_app_version when not given.
    #[arg(long, env = "TENANT_WORKER_RENDER_APP_VERSION")]
    pub app_version: Option<String>,
    /// Event values: a YAML or JSON file holding a mapping, above the plan's.
    #[arg(long, env = "TENANT_WORKER_RENDER_VALUES")]
    pub values: Option<PathBuf>,
    /// Prefix of tenant namespaces: tenant `acme` renders into `<prefix>acme`.
    #[arg(
        long,
        env = "TENANT_WORKER_NAMESPACE_PREFIX",
        default_value = "tenant-"
    )]
    pub namespace_prefix: String,
    /// Plan catalogue (YAML); the shipped k8s/plans.yaml when not given.
    #[arg(long, env = "TENANT_WORKER_PLANS")]
    pub plans: Option<PathBuf>,
    /// Kubernetes version for `.Capabilities.KubeVersion` and the chart's
    /// `kubeVersion` check, like `helm template --kube-version` (`1.20.2`,
    /// `v1.20.2`); replaces the cluster's with --kubeconfig.
    #[arg(
        long,
        env = "TENANT_WORKER_RENDER_KUBE_VERSION",
        value_name = "VERSION"
    )]
    pub kube_version: Option<String>,
    /// API versions added to `.Capabilities.APIVersions` (`group/version` or
    /// `group/version/Kind`), like `helm template --api-versions`: repeat the
    /// flag or separate them with commas. Added to the cluster's with
    /// --kubeconfig.
    #[arg(
        short = 'a',
        long,
        env = "TENANT_WORKER_RENDER_API_VERSIONS",
        value_name = "API_VERSION",
        value_delimiter = ','
    )]
    pub api_versions: Vec<String>,
    /// Read `.Capabilities` (version and API discovery) from this cluster
    /// instead of Helm's offline defaults; nothing is written to it. Not
    /// inferred from KUBECONFIG: render stays offline unless asked.
    #[arg(long, env = "TENANT_WORKER_RENDER_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_make_valid_settings() {
        let cli = Cli::try_parse_from(["tenant-worker", "run"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!()
        };
        let s = run.worker.settings(&run.nats.nats_url).unwrap();
        assert_eq!(s.namespace_prefix, "tenant-");
        assert_eq!(s.topology.max_deliver, 10);
    }

    #[test]
    fn worker_settings_carry_the_nats_credentials_and_tls() {
        let cli = Cli::try_parse_from([
            "tenant-worker",
            "run",
            "--nats-creds",
            "/secrets/worker.creds",
            "--nats-tls-ca",
            "/secrets/ca.pem",
            "--nats-tls-required",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!()
        };
        let s = run.worker.settings(&run.nats).unwrap();
        assert_eq!(
            s.nats.auth,
            NatsAuth::CredsFile("/secrets/worker.creds".into())
        );
        assert_eq!(s.nats.tls.ca_file, Some("/secrets/ca.pem".into()));
        assert!(s.nats.tls.required);
        // A bare URL (as `dev` passes) is a plain connection.
        let plain = run.worker.settings("nats://127.0.0.1:4222").unwrap();
        assert_eq!(plain.nats.auth, NatsAuth::None);
        assert_eq!(plain.nats.tls, NatsTls::default());
    }

    #[test]
    fn bad_prefix_is_refused_with_the_rule() {
        let cli =
            Cli::try_parse_from(["tenant-worker", "run", "--namespace-prefix", "Tenant_"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!()
        };
        let err = run.worker.settings("nats://x").unwrap_err().to_string();
        assert!(err.contains("--namespace-prefix"), "{err}");
    }
}
