//! Applying manifests as an operator would, and giving a program the
//! worker's own rights on a cluster.

use std::path::Path;
use std::time::Duration;

use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{Scope, pinned_kind};

use crate::{ControlPlane, ControlPlaneError};

/// The shipped manifests, relative to the repository root, that give the
/// worker its namespace, ServiceAccount and RBAC.
pub const WORKER_RBAC: &[&str] = &["k8s/worker/namespace.yaml", "k8s/worker/rbac.yaml"];

/// Applies every document of a multi-document YAML `text` with server-side
/// apply (field manager `tenant-worker-tests`, forced), as `kubectl apply
/// --server-side` would; each kind is resolved by the cluster's discovery.
///
/// # Errors
/// When a document is not an object with apiVersion, kind and name, its kind
/// is not served, or the cluster refuses it.
pub async fn apply_all(client: &kube::Client, text: &str) -> Result<(), ControlPlaneError> {
    let bad = |what: String| ControlPlaneError::Setup(format!("manifest: {what}"));
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value: serde_json::Value =
            serde::Deserialize::deserialize(document).map_err(|e| bad(format!("not YAML: {e}")))?;
        if value.is_null() {
            continue;
        }
        let object: DynamicObject =
            serde_json::from_value(value.clone()).map_err(|e| bad(e.to_string()))?;
        let types = object
            .types
            .as_ref()
            .ok_or_else(|| bad("no apiVersion or kind".into()))?;
        let gvk = GroupVersionKind::try_from(types).map_err(|e| bad(e.to_string()))?;
        let name = object
            .metadata
            .name
            .as_deref()
            .ok_or_else(|| bad(format!("a {} without a name", types.kind)))?;
        let (resource, capabilities) = pinned_kind(client, &gvk).await?;
        let api = if capabilities.scope == Scope::Namespaced {
            let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
            Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource)
        } else {
            Api::<DynamicObject>::all_with(client.clone(), &resource)
        };
        let params = PatchParams::apply("tenant-worker-tests").force();
        api.patch(name, &params, &Patch::Apply(&value)).await?;
    }
    Ok(())
}

/// Applies the shipped worker RBAC ([`WORKER_RBAC`], read under `repo`) to
/// `cluster` and writes to `out` a kubeconfig holding a token of the
/// `tenant-worker/tenant-worker` ServiceAccount valid for `lifetime`: what a
/// worker process runs with, as it would in its Deployment.
///
/// # Errors
/// When a manifest cannot be read or applied, or no token is issued.
pub async fn worker_kubeconfig(
    cluster: &ControlPlane,
    repo: &Path,
    lifetime: Duration,
    out: &Path,
) -> Result<(), ControlPlaneError> {
    let admin = cluster.admin_client().await?;
    for file in WORKER_RBAC {
        let path = repo.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ControlPlaneError::Setup(format!("{}: {e}", path.display())))?;
        apply_all(&admin, &text).await?;
    }
    cluster
        .service_account_kubeconfig("tenant-worker", "tenant-worker", lifetime, out)
        .await
}
