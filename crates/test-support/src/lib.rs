//! Real servers for tenant-worker's tests, benchmarks and `dev` mode: a
//! [`nats_server`] launcher (single servers and clusters), and a real
//! Kubernetes control plane.
//!
//! [`ControlPlane`] is a real Kubernetes control plane on loopback: etcd,
//! kube-apiserver (client-certificate and service-account authentication, RBAC
//! authorization, the usual admission plugins) and kube-controller-manager
//! (namespace, garbage collector, deployment, replica set, stateful set, job,
//! service account and token, resource quota controllers), plus a
//! [node stand-in](node) in place of a kubelet and scheduler. The binaries
//! come from `scripts/install-control-plane.sh`, which builds them once and
//! caches them; `TENANT_WORKER_TEST_KUBECONFIG` points the same tests at
//! any other cluster instead.
//!
//! This crate is for tests, benchmarks and the `dev` feature's commands; the
//! worker's release binary does not contain it.

#![warn(missing_docs)]

mod cluster;
pub mod kinds;
pub mod manifests;
pub mod metrics;
pub mod nats_server;
pub mod node;
mod pki;
mod processes;

pub use cluster::{ApiServerFrozen, ControlPlane};

/// Where the tests look for an existing cluster instead of starting one.
pub const EXTERNAL_KUBECONFIG_ENV: &str = "TENANT_WORKER_TEST_KUBECONFIG";

/// Where `scripts/install-control-plane.sh` caches the binaries (its `bin/`
/// holds kube-apiserver and kube-controller-manager).
pub const CONTROL_PLANE_DIR_ENV: &str = "TENANT_WORKER_CONTROL_PLANE_DIR";

/// The Kubernetes version that `scripts/install-control-plane.sh` builds.
pub const KUBE_VERSION: &str = "v1.20.2";

/// Why a control plane could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// A binary is missing.
    #[error("{what} not found at {path}: {hint}")]
    Missing {
        /// The program.
        what: &'static str,
        /// Where it was looked for.
        path: String,
        /// How to get it.
        hint: &'static str,
    },
    /// Files, keys or ports could not be prepared.
    #[error("{0}")]
    Setup(String),
    /// A process did not start or did not become ready.
    #[error("{what} did not start: {detail}")]
    Start {
        /// The process.
        what: &'static str,
        /// What happened, with the end of its log.
        detail: String,
    },
    /// The cluster answered with an error.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A kubeconfig could not be read.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// Something only a cluster started here can do (e.g. freezing its API
    /// server) was asked of an external one.
    #[error("{0} needs a control plane started by the tests, not {EXTERNAL_KUBECONFIG_ENV}")]
    NotLocal(&'static str),
}
