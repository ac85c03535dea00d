//! Embedded Kubernetes API (test and demo double).
//!
//! An in-process HTTP server implementing the part of the Kubernetes REST API
//! that the `kube` client and `kubectl get`/`describe` use, with objects kept
//! in memory. Production talks to a real cluster; this double is meant to be
//! *honest*: it refuses what a real API server refuses (validation of names,
//! labels and typed objects, namespace lifecycle, preconditions, apply
//! conflicts) and answers with real `metav1.Status` errors.
//!
//! Served: discovery, get/list (label and field selectors, paging, `Table`
//! and `PartialObjectMetadata` forms), create, replace, merge/strategic/JSON
//! patch, server-side apply with field ownership, delete (namespaces terminate
//! asynchronously), deletecollection, the `status` subresource. Not served:
//! watch (405), protobuf, other resources (404).
//!
//! Simulated, since nothing runs pods: Deployment/StatefulSet readiness and
//! Job completion after [`EmbeddedApiConfig::ready_delay`], ResourceQuota
//! usage (object counts), namespace finalization.
//!
//! Modules: `resources` (the resource table), `handlers` (HTTP), `verbs`
//! (operations), `admission` (defaults, server-set fields), `validation`,
//! `apply` (server-side apply), `patch`, `selectors`, `store`,
//! `controllers` (simulated controllers), `table` (kubectl output),
//! `discovery`, [`faults`], `status` (errors) and [`request_log`] (what
//! clients asked for, in RBAC's terms, for the RBAC coverage test).

mod admission;
mod apply;
mod controllers;
mod discovery;
pub mod faults;
mod handlers;
mod patch;
pub mod request_log;
mod resources;
mod selectors;
mod server;
mod status;
mod store;
mod table;
mod validation;
mod verbs;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use faults::{FaultInjector, FaultRule, FaultSpec, ObjectRef, RandomFaultKind, RandomFaults};
pub use request_log::{RecordedRequest, RequestLog};

/// Behaviour of the simulated cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbeddedApiConfig {
    /// How long a deleted namespace stays `Terminating` before it and
    /// everything in it is removed. Default 0: removed on the next tick of
    /// the simulated controllers, i.e. promptly but asynchronously, like a
    /// real cluster (a GET right after the DELETE may still see it).
    pub namespace_termination_delay: Duration,
    /// After this long, a Deployment's / StatefulSet's status reports all
    /// replicas ready and available, and a Job reports succeeded. Default 0:
    /// immediately, in the response to the create/update itself. Nothing runs
    /// pods, so readiness is simulated; see [`FaultInjector::keep_unready`].
    pub ready_delay: Duration,
}

/// A running embedded API. Dropping it (or calling [`EmbeddedApi::shutdown`])
/// stops the server.
#[derive(Debug)]
pub struct EmbeddedApi {
    addr: SocketAddr,
    faults: FaultInjector,
    requests: RequestLog,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl EmbeddedApi {
    /// Binds `listen` (use `127.0.0.1:0` for a free port) and serves in a
    /// background tokio task.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(
        listen: SocketAddr,
        config: EmbeddedApiConfig,
    ) -> std::io::Result<EmbeddedApi> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let faults = FaultInjector::default();
        let app = server::App::new(config, faults.clone(), addr);
        let requests = app.requests.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(listener, app, async move {
            // A dropped sender (the EmbeddedApi dropped) also stops the server.
            let _ = stopped.await;
        }));
        Ok(EmbeddedApi {
            addr,
            faults,
            requests,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address (with the actual port when `:0` was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (loopback when bound to an unspecified address).
    pub fn url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// A kubeconfig for this server; see [`kubeconfig_yaml`].
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig_yaml(&self.url())
    }

    /// The `kube` configuration of this server (plain HTTP, no TLS, no
    /// auth, default namespace `default`), for a client built the way its
    /// user builds its own (the worker: `tenant_worker::cluster::client_from`).
    pub fn config(&self) -> kube::Config {
        kube::Config::new(self.url().parse().expect("url() is a valid URI"))
    }

    /// A `kube::Client` pointed at this server, for checks, without the
    /// client's own retries: the caller sees every answer as the server gave
    /// it (an injected 429 is a 429).
    ///
    /// # Panics
    /// Outside a tokio runtime (kube's client spawns a buffer task).
    pub fn client(&self) -> kube::Client {
        let mut config = self.config();
        config.default_retry = false;
        kube::Client::try_from(config).expect("a plain-HTTP kube client always builds")
    }

    /// Fault injection, readiness control and request counters (a cheap,
    /// shared handle).
    pub fn faults(&self) -> &FaultInjector {
        &self.faults
    }

    /// The log of requests in RBAC's terms (verb, group, resource), off until
    /// [`RequestLog::start`]; see [`request_log`].
    pub fn requests(&self) -> &RequestLog {
        &self.requests
    }

    /// Stops the server and waits for in-flight requests to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EmbeddedApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves the embedded API on an already bound `listener` until `shutdown`
/// resolves (for `tenant-worker embedded-api --listen ADDR`). Faults are
/// controlled over HTTP at `/_embedded/faults` (see [`faults`]).
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    listener: TcpListener,
    config: EmbeddedApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let app = server::App::new(config, FaultInjector::default(), addr);
    server::run(listener, app, shutdown).await
}

/// A kubeconfig (YAML) with one cluster, context and user, all named
/// `tenant-worker-embedded`, pointing at `url` without auth; usable by kubectl
/// and by `kube::Config`.
pub fn kubeconfig_yaml(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: tenant-worker-embedded
  cluster:
    server: {url}
contexts:
- name: tenant-worker-embedded
  context:
    cluster: tenant-worker-embedded
    user: tenant-worker-embedded
    namespace: default
current-context: tenant-worker-embedded
users:
- name: tenant-worker-embedded
  user: {{}}
preferences: {{}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_parses() {
        let kc =
            kube::config::Kubeconfig::from_yaml(&kubeconfig_yaml("http://127.0.0.1:1234")).unwrap();
        assert_eq!(
            kc.current_context.as_deref(),
            Some("tenant-worker-embedded")
        );
        assert_eq!(
            kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("http://127.0.0.1:1234")
        );
    }
}
