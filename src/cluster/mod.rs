//! Kubernetes access: the one code path from the worker to a cluster.
//!
//! Every write is a server-side apply with the field manager `tenant-worker`,
//! so repeating it is harmless. Every delete first reads the object and checks
//! the ownership labels: the worker never changes or deletes what it does not own.

pub mod capabilities;
pub mod drift;
pub mod dynamic;
pub mod lookup;
pub mod readiness;
pub mod release_records;

use std::fmt::Debug;
use std::path::Path;

use backon::Retryable;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::contract::{MANAGER, TenantId};
use crate::retry::RetryPolicy;
use tenant_core::steps::is_owned_by;

/// A cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("kubernetes API: {}", describe(.0))]
    Api(#[from] kube::Error),
    #[error(
        "{kind} {namespace}/{name} exists and is not managed by tenant-worker for tenant {tenant}"
    )]
    NotOwned {
        kind: String,
        namespace: String,
        name: String,
        tenant: TenantId,
    },
    #[error("namespace {0} exists and is not managed by tenant-worker for this tenant")]
    NamespaceNotOwned(String),
    #[error("namespace {0} is still terminating")]
    NamespaceTerminating(String),
    #[error("cannot load kubeconfig: {0}")]
    Config(String),
    #[error("the cluster does not serve {kind} in {api_version}")]
    UnknownKind { api_version: String, kind: String },
    #[error("{0}")]
    Invalid(String),
    #[error("release not ready: {0}")]
    NotReady(String),
    /// The cluster's version or API discovery could not be read (the
    /// capabilities a chart renders with): always retried.
    #[error("cannot read the cluster's capabilities ({what}): {}", describe(.source))]
    Discovery {
        what: &'static str,
        source: kube::Error,
    },
}

/// Whether a failed Kubernetes request can succeed if repeated: connection
/// failures, timeouts, throttling (429), server errors (5xx), conflicts (409),
/// and a namespace that is still terminating refusing new content (403).
pub fn is_transient_kube(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => {
            status.code == 429
                || status.code == 409
                || status.code >= 500
                || (status.code == 403 && status.message.contains("being terminated"))
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => true,
        _ => false,
    }
}

impl ClusterError {
    /// Whether retrying later can succeed: [`is_transient_kube`], a
    /// namespace that is still being deleted, and any failed discovery (a
    /// chart is never rendered with capabilities the cluster did not state).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api(e) => is_transient_kube(e),
            Self::NamespaceTerminating(_) | Self::Discovery { .. } => true,
            Self::NotOwned { .. }
            | Self::NamespaceNotOwned(_)
            | Self::Config(_)
            | Self::UnknownKind { .. }
            | Self::Invalid(_)
            | Self::NotReady(_) => false,
        }
    }
}

/// A kube error in one line: for a refusal by the API server, its code, reason
/// and message (kube's own text repeats the whole `Status` object).
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => other.to_string(),
    }
}

/// Builds a client from a kubeconfig file, or from the environment when `None`
/// (`KUBECONFIG`, `~/.kube/config`, or the in-cluster service account).
///
/// # Errors
/// [`ClusterError::Config`] when no configuration can be loaded.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<Client, ClusterError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| ClusterError::Config(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| ClusterError::Config(format!("{}: {e}", path.display())))?
        }
        None => Config::infer()
            .await
            .map_err(|e| ClusterError::Config(e.to_string()))?,
    };
    client_from(config)
}

/// How long one Kubernetes request may take before it fails (transient) and
/// the retry policy decides what next. Every call the worker makes is a
/// short GET, PATCH or DELETE, never a watch or exec.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Builds the worker's client from `config`: requests time out after
/// [`REQUEST_TIMEOUT`], and kube's own retry layer (up to 15 hidden retries of
/// 429/503/504, minutes in total) is off, so that the worker's
/// [`RetryPolicy`](crate::retry::RetryPolicy) alone decides how often and how
/// long a call is retried.
///
/// # Errors
/// [`ClusterError::Config`] when the client cannot be built (e.g. bad TLS material).
pub fn client_from(mut config: Config) -> Result<Client, ClusterError> {
    config.default_retry = false;
    config.read_timeout = Some(REQUEST_TIMEOUT);
    config.reset_reader_on_write = true;
    Client::try_from(config).map_err(|e| ClusterError::Config(e.to_string()))
}

/// What the tenant's namespace looks like in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceState {
    Absent,
    /// Ours for this tenant; `terminating` while a deletion is under way.
    Owned {
        terminating: bool,
    },
    /// Exists without our labels for this tenant.
    Foreign,
}

/// A namespaced object of a built-in kind (a k8s-openapi type), as the
/// typed writes and deletes of [`Cluster`] take it.
pub trait TypedObject:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
{
}

impl<K> TypedObject for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
{
}

/// Access to one cluster on behalf of the worker.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    namespace_prefix: String,
    retry: RetryPolicy,
    kinds: dynamic::KindCache,
    capabilities: capabilities::CapabilitiesCache,
}

impl Cluster {
    /// Access through `client`; tenant namespaces are `<namespace_prefix><tenant>`;
    /// each request is retried in-process by `retry` while it fails transiently.
    pub fn new(client: Client, namespace_prefix: impl Into<String>, retry: RetryPolicy) -> Self {
        Self {
            client,
            namespace_prefix: namespace_prefix.into(),
            retry,
            kinds: dynamic::KindCache::default(),
            capabilities: capabilities::CapabilitiesCache::default(),
        }
    }

    /// Runs one request, repeating it (it is idempotent: a GET, an apply or a
    /// delete) while it fails transiently, as the retry policy allows. Each
    /// request is retried on its own, so a step that makes several requests
    /// does not start over because its last one hit a blip.
    async fn request<T, F, Fut>(&self, f: F) -> Result<T, kube::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        f.retry(self.retry.in_process())
            .when(is_transient_kube)
            .notify(|e, delay| {
                crate::metrics::metrics().kube_retries.inc();
                tracing::debug!(error = %describe(e), ?delay, "retrying a Kubernetes request");
            })
            .await
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The namespace of `tenant`: `<prefix><tenant>`.
    pub fn namespace_for(&self, tenant: &TenantId) -> String {
        format!("{}{tenant}", self.namespace_prefix)
    }

    /// The state of `tenant`'s namespace.
    ///
    /// # Errors
    /// [`ClusterError::Api`] when the API cannot be read.
    pub async fn namespace_state(&self, tenant: &TenantId) -> Result<NamespaceState, ClusterError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let name = self.namespace_for(tenant);
        Ok(match self.request(|| api.get_metadata_opt(&name)).await? {
            None => NamespaceState::Absent,
            Some(ns) if is_owned_by(&ns.metadata, tenant) => NamespaceState::Owned {
                terminating: ns.metadata.deletion_timestamp.is_some(),
            },
            Some(_) => NamespaceState::Foreign,
        })
    }

    /// Server-side applies the tenant's namespace (cluster-scoped).
    ///
    /// # Errors
    /// [`ClusterError::NamespaceNotOwned`] when it exists without our labels (it is
    /// left untouched); [`ClusterError::NamespaceTerminating`] while it is being
    /// deleted; [`ClusterError::Api`] otherwise.
    pub async fn apply_namespace(
        &self,
        tenant: &TenantId,
        ns: &Namespace,
    ) -> Result<(), ClusterError> {
        let name = ns.name_any();
        match self.namespace_state(tenant).await? {
            NamespaceState::Foreign => return Err(ClusterError::NamespaceNotOwned(name)),
            NamespaceState::Owned { terminating: true } => {
                return Err(ClusterError::NamespaceTerminating(name));
            }
            _ => {}
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        let (params, patch) = (apply_params(), Patch::Apply(ns));
        self.request(|| api.patch(&name, &params, &patch)).await?;
        Ok(())
    }

    /// Server-side applies a namespaced object into its `metadata.namespace`.
    ///
    /// # Errors
    /// [`ClusterError::NotOwned`] when an object of that name exists without our
    /// labels for `tenant`; [`ClusterError::Api`] otherwise.
    pub async fn apply<K: TypedObject>(
        &self,
        tenant: &TenantId,
        obj: &K,
    ) -> Result<(), ClusterError> {
        self.apply_versioned(tenant, obj).await.map(drop)
    }

    /// As [`Cluster::apply`], returning the `resourceVersion` it wrote (for
    /// [`Cluster::apply_over`]).
    ///
    /// # Errors
    /// As [`Cluster::apply`].
    pub async fn apply_versioned<K: TypedObject>(
        &self,
        tenant: &TenantId,
        obj: &K,
    ) -> Result<String, ClusterError> {
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let api: Api<K> = Api::namespaced(self.client.clone(), &namespace);
        // Only the labels matter: a metadata-only read.
        if let Some(existing) = self.request(|| api.get_metadata_opt(&name)).await?
            && !is_owned_by(&existing.metadata, tenant)
        {
            return Err(ClusterError::NotOwned {
                kind: kind_of::<K>(),
                namespace,
                name,
                tenant: tenant.clone(),
            });
        }
        let (params, patch) = (apply_params(), Patch::Apply(obj));
        let written = self.request(|| api.patch(&name, &params, &patch)).await?;
        Ok(written.resource_version().unwrap_or_default())
    }

    /// Server-side applies `obj` over the version of it that this worker
    /// wrote (`resource_version`, from [`Cluster::apply_versioned`]), without
    /// reading it first: the version goes with the apply as a precondition, so
    /// the write lands only on that very object, ours and unchanged since.
    /// When it changed (409 Conflict), this falls back to
    /// [`Cluster::apply_versioned`], which checks ownership again.
    ///
    /// # Errors
    /// As [`Cluster::apply`].
    pub async fn apply_over<K: TypedObject>(
        &self,
        tenant: &TenantId,
        obj: &K,
        resource_version: &str,
    ) -> Result<String, ClusterError> {
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let api: Api<K> = Api::namespaced(self.client.clone(), &namespace);
        let mut pinned = obj.clone();
        pinned.meta_mut().resource_version = Some(resource_version.to_owned());
        let (params, patch) = (apply_params(), Patch::Apply(&pinned));
        match self.request(|| api.patch(&name, &params, &patch)).await {
            Ok(written) => Ok(written.resource_version().unwrap_or_default()),
            Err(kube::Error::Api(s)) if s.code == 409 => self.apply_versioned(tenant, obj).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a namespaced object if it exists and is ours; absent is success.
    ///
    /// # Errors
    /// [`ClusterError::NotOwned`] when it exists without our labels (left
    /// untouched); [`ClusterError::Api`] otherwise.
    pub async fn delete_owned<K: TypedObject>(
        &self,
        tenant: &TenantId,
        namespace: &str,
        name: &str,
    ) -> Result<(), ClusterError> {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let Some(existing) = self.request(|| api.get_metadata_opt(name)).await? else {
            return Ok(());
        };
        if !is_owned_by(&existing.metadata, tenant) {
            return Err(ClusterError::NotOwned {
                kind: kind_of::<K>(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                tenant: tenant.clone(),
            });
        }
        let params = DeleteParams::default();
        match self.request(|| api.delete(name, &params)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts deleting the tenant's namespace (and so everything in it) if it is
    /// ours. Returns whether it still exists (possibly terminating) afterwards.
    ///
    /// # Errors
    /// [`ClusterError::NamespaceNotOwned`] when it is not ours (left untouched);
    /// [`ClusterError::Api`] otherwise.
    pub async fn delete_namespace(&self, tenant: &TenantId) -> Result<bool, ClusterError> {
        let name = self.namespace_for(tenant);
        match self.namespace_state(tenant).await? {
            NamespaceState::Absent => Ok(false),
            NamespaceState::Foreign => Err(ClusterError::NamespaceNotOwned(name)),
            NamespaceState::Owned { terminating: true } => Ok(true),
            NamespaceState::Owned { terminating: false } => {
                let api: Api<Namespace> = Api::all(self.client.clone());
                let params = DeleteParams::background();
                match self.request(|| api.delete(&name, &params)).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

fn apply_params() -> PatchParams {
    // force: the worker is the only writer of these fields; taking them back from
    // a human's `kubectl edit` is what drift repair wants.
    PatchParams::apply(MANAGER).force()
}

fn kind_of<K: Resource<DynamicType = ()>>() -> String {
    K::kind(&()).into_owned()
}
