//! Kubernetes access: the one code path from the worker to a cluster.
//!
//! Every write is a server-side apply with the field manager `tenant-worker`,
//! so repeating it is harmless. Every delete first reads the object and checks
//! the ownership labels: the worker never changes or deletes what it does not own.

pub mod objects;

use std::fmt::Debug;
use std::path::Path;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::contract::{MANAGER, TenantId};

/// A cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("kubernetes API: {0}")]
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
}

impl ClusterError {
    /// Whether retrying later can succeed: connection failures, timeouts,
    /// throttling (429), server errors (5xx), conflicts (409) and a namespace
    /// that is still being deleted.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api(kube::Error::Api(status)) => {
                status.code == 429 || status.code == 409 || status.code >= 500
                    // A namespace still terminating refuses new content with 403.
                    || (status.code == 403 && status.message.contains("being terminated"))
            }
            Self::Api(
                kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_),
            ) => true,
            Self::Api(_) => false,
            Self::NamespaceTerminating(_) => true,
            Self::NotOwned { .. } | Self::NamespaceNotOwned(_) | Self::Config(_) => false,
        }
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

/// Access to one cluster on behalf of the worker.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    namespace_prefix: String,
}

impl Cluster {
    pub fn new(client: Client, namespace_prefix: impl Into<String>) -> Self {
        Self {
            client,
            namespace_prefix: namespace_prefix.into(),
        }
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
        Ok(match api.get_opt(&self.namespace_for(tenant)).await? {
            None => NamespaceState::Absent,
            Some(ns) if objects::is_owned_by(&ns.metadata, tenant) => NamespaceState::Owned {
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
        api.patch(&name, &apply_params(), &Patch::Apply(ns)).await?;
        Ok(())
    }

    /// Server-side applies a namespaced object into its `metadata.namespace`.
    ///
    /// # Errors
    /// [`ClusterError::NotOwned`] when an object of that name exists without our
    /// labels for `tenant`; [`ClusterError::Api`] otherwise.
    pub async fn apply<K>(&self, tenant: &TenantId, obj: &K) -> Result<(), ClusterError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Serialize
            + Debug,
    {
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let api: Api<K> = Api::namespaced(self.client.clone(), &namespace);
        if let Some(existing) = api.get_opt(&name).await?
            && !objects::is_owned_by(existing.meta(), tenant)
        {
            return Err(ClusterError::NotOwned {
                kind: kind_of::<K>(),
                namespace,
                name,
                tenant: tenant.clone(),
            });
        }
        api.patch(&name, &apply_params(), &Patch::Apply(obj))
            .await?;
        Ok(())
    }

    /// Deletes a namespaced object if it exists and is ours; absent is success.
    ///
    /// # Errors
    /// [`ClusterError::NotOwned`] when it exists without our labels (left
    /// untouched); [`ClusterError::Api`] otherwise.
    pub async fn delete_owned<K>(
        &self,
        tenant: &TenantId,
        namespace: &str,
        name: &str,
    ) -> Result<(), ClusterError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let Some(existing) = api.get_opt(name).await? else {
            return Ok(());
        };
        if !objects::is_owned_by(existing.meta(), tenant) {
            return Err(ClusterError::NotOwned {
                kind: kind_of::<K>(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                tenant: tenant.clone(),
            });
        }
        match api.delete(name, &DeleteParams::default()).await {
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
                match api.delete(&name, &DeleteParams::background()).await {
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
