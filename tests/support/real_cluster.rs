//! Tests against a real Kubernetes API server: the control plane that
//! `scripts/install-control-plane.sh` provides, shared by every test of the
//! process (or the cluster `TENANT_WORKER_TEST_KUBECONFIG` names), with the
//! test's own NATS server, and worker processes that hold only the shipped
//! `k8s/worker` RBAC, through the `tenant-worker` ServiceAccount's token.
//!
//! Tests share the cluster: each names its tenants with [`RealCluster::tenant`],
//! which appends a suffix unique to the test run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tenant_worker_test_support::{ControlPlane, manifests};

use super::EventStreams;
use super::process::{WorkerOptions, WorkerProcess};

/// A test's view of a real cluster: its NATS, the cluster's administrator
/// (for the test's own checks), and a kubeconfig with the worker's rights.
pub(crate) struct RealCluster {
    pub streams: EventStreams,
    cluster: Cluster,
    /// The administrator: what the test checks and breaks with.
    pub admin: kube::Client,
    /// The `tenant-worker` ServiceAccount's kubeconfig: what worker
    /// processes and operator commands run with.
    pub worker_kubeconfig: PathBuf,
    suffix: String,
}

enum Cluster {
    Shared(&'static ControlPlane),
    Own(ControlPlane),
}

impl std::ops::Deref for RealCluster {
    type Target = EventStreams;
    fn deref(&self) -> &EventStreams {
        &self.streams
    }
}

impl std::ops::DerefMut for RealCluster {
    fn deref_mut(&mut self) -> &mut EventStreams {
        &mut self.streams
    }
}

impl RealCluster {
    /// The process's shared cluster (started on first use) and a new NATS.
    pub(crate) async fn start() -> Self {
        let cluster = tokio::task::spawn_blocking(ControlPlane::shared)
            .await
            .expect("control plane thread")
            .unwrap_or_else(|e| panic!("real cluster: {e}"));
        Self::on(Cluster::Shared(cluster)).await
    }

    /// A control plane of the test's own (for tests that stop its API
    /// server), or `None` when the tests use an external cluster.
    pub(crate) async fn start_own() -> Option<Self> {
        if std::env::var_os(tenant_worker_test_support::EXTERNAL_KUBECONFIG_ENV).is_some() {
            return None;
        }
        let cluster = tokio::task::spawn_blocking(ControlPlane::start)
            .await
            .expect("control plane thread")
            .unwrap_or_else(|e| panic!("real cluster: {e}"));
        Some(Self::on(Cluster::Own(cluster)).await)
    }

    async fn on(cluster: Cluster) -> Self {
        let streams = EventStreams::start().await;
        let plane = match &cluster {
            Cluster::Shared(c) => *c,
            Cluster::Own(c) => c,
        };
        let admin = plane.admin_client().await.expect("admin client");
        let worker_kubeconfig = streams.dir.path().join("worker.kubeconfig");
        manifests::worker_kubeconfig(
            plane,
            Path::new(env!("CARGO_MANIFEST_DIR")),
            Duration::from_secs(3600),
            &worker_kubeconfig,
        )
        .await
        .unwrap_or_else(|e| panic!("the worker's rights: {e}"));
        Self {
            streams,
            cluster,
            admin,
            worker_kubeconfig,
            suffix: unique_suffix(),
        }
    }

    pub(crate) fn control_plane(&self) -> &ControlPlane {
        match &self.cluster {
            Cluster::Shared(c) => c,
            Cluster::Own(c) => c,
        }
    }

    /// A tenant id for `name`, unique to this run (the cluster may be shared
    /// with other tests and with earlier runs).
    pub(crate) fn tenant(&self, name: &str) -> String {
        format!("{name}-{}", self.suffix)
    }

    /// Starts `tenant-worker run` with the worker's ServiceAccount, with
    /// `args` (e.g. `--plans`) and `failpoints`, and waits until the streams
    /// and buckets exist.
    pub(crate) async fn spawn_worker(
        &self,
        name: &str,
        failpoints: Option<&str>,
        args: &[&str],
    ) -> WorkerProcess {
        let worker = WorkerProcess::spawn(
            &self.nats.url(),
            &self.worker_kubeconfig,
            self.dir.path(),
            WorkerOptions {
                name,
                failpoints,
                args,
            },
        );
        self.wait_topology().await;
        worker
    }

    /// Runs `tenant-worker <command> <args>` with the worker's rights.
    pub(crate) async fn operator_command(
        &self,
        command: &str,
        args: &[&str],
    ) -> std::process::Output {
        super::operator_command_on(&self.nats.url(), &self.worker_kubeconfig, command, args).await
    }

    /// The directory of the test's files (logs of worker processes).
    pub(crate) fn files(&self) -> &Path {
        self.dir.path()
    }
}

/// Six random characters from `[a-z0-9]`.
fn unique_suffix() -> String {
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..6)
        .map(|_| alphabet[fastrand::usize(..alphabet.len())] as char)
        .collect()
}
