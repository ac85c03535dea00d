//! Objects of any kind (a chart's rendered manifests): resolved through API
//! discovery, applied with server-side apply into the tenant's namespace, and
//! deleted only when they carry the worker's labels for the tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch};
use kube::discovery::{ApiCapabilities, Scope};
use serde_json::Value;

use super::{Cluster, ClusterError, apply_params};
use crate::contract::TenantId;
use tenant_core::steps::is_owned_by;

/// Where an object lives: enough to find it again.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

impl ObjectRef {
    /// The reference of a manifest, if it has `apiVersion`, `kind` and `metadata.name`.
    pub fn of(object: &Value) -> Option<Self> {
        Some(Self {
            api_version: object.get("apiVersion")?.as_str()?.to_owned(),
            kind: object.get("kind")?.as_str()?.to_owned(),
            name: object.pointer("/metadata/name")?.as_str()?.to_owned(),
        })
    }

    fn gvk(&self) -> GroupVersionKind {
        let (group, version) = match self.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version.as_str()),
        };
        GroupVersionKind::gvk(group, version, &self.kind)
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// `(apiVersion, kind)`.
type KindKey = (String, String);

/// Discovery results, per `apiVersion` and `kind` (kinds do not change while
/// the worker runs; a kind the cluster does not serve is looked up again).
#[derive(Clone, Default)]
pub(super) struct KindCache(Arc<Mutex<HashMap<KindKey, (ApiResource, ApiCapabilities)>>>);

impl Cluster {
    /// The API resource serving `r`'s kind, and whether it is namespaced.
    ///
    /// # Errors
    /// [`ClusterError::UnknownKind`] when the cluster does not serve it
    /// (permanent: a chart that needs a CRD nobody installed); [`ClusterError::Api`]
    /// when discovery fails.
    pub async fn resolve(&self, r: &ObjectRef) -> Result<(ApiResource, bool), ClusterError> {
        let key = (r.api_version.clone(), r.kind.clone());
        if let Some((res, caps)) = self.kinds.0.lock().expect("kind cache").get(&key) {
            return Ok((res.clone(), caps.scope == Scope::Namespaced));
        }
        let gvk = r.gvk();
        let found = self
            .request(|| kube::discovery::pinned_kind(&self.client, &gvk))
            .await;
        let (res, caps) = match found {
            Ok(found) => found,
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return Err(ClusterError::UnknownKind {
                    api_version: r.api_version.clone(),
                    kind: r.kind.clone(),
                });
            }
            Err(kube::Error::Discovery(_)) => {
                return Err(ClusterError::UnknownKind {
                    api_version: r.api_version.clone(),
                    kind: r.kind.clone(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let namespaced = caps.scope == Scope::Namespaced;
        self.kinds
            .0
            .lock()
            .expect("kind cache")
            .insert(key, (res.clone(), caps));
        Ok((res, namespaced))
    }

    /// Server-side applies `object` (a manifest whose `metadata.namespace` is
    /// `namespace` and whose labels are already the worker's) into `namespace`,
    /// and returns the object as the API stored it (with its status).
    ///
    /// # Errors
    /// [`ClusterError::NotOwned`] when an object of that name exists without our
    /// labels for `tenant` (left untouched); [`ClusterError::UnknownKind`];
    /// [`ClusterError::Api`] otherwise.
    pub async fn apply_object(
        &self,
        tenant: &TenantId,
        namespace: &str,
        object: &Value,
    ) -> Result<DynamicObject, ClusterError> {
        let r = ObjectRef::of(object).ok_or_else(|| {
            ClusterError::Invalid("a manifest without apiVersion, kind or metadata.name".into())
        })?;
        let (res, _) = self.resolve(&r).await?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &res);
        // Only the labels matter: a metadata-only read (the release record,
        // for one, is kilobytes of chart).
        if let Some(existing) = self.request(|| api.get_metadata_opt(&r.name)).await?
            && !is_owned_by(&existing.metadata, tenant)
        {
            return Err(ClusterError::NotOwned {
                kind: r.kind,
                namespace: namespace.to_owned(),
                name: r.name,
                tenant: tenant.clone(),
            });
        }
        let (params, patch) = (apply_params(), Patch::Apply(object));
        Ok(self.request(|| api.patch(&r.name, &params, &patch)).await?)
    }

    /// The object `r` in `namespace`, if it exists.
    ///
    /// # Errors
    /// [`ClusterError::UnknownKind`]; [`ClusterError::Api`].
    pub async fn get_object(
        &self,
        namespace: &str,
        r: &ObjectRef,
    ) -> Result<Option<DynamicObject>, ClusterError> {
        let (res, _) = self.resolve(r).await?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &res);
        Ok(self.request(|| api.get_opt(&r.name)).await?)
    }

    /// Deletes `r` from `namespace` if it exists and is ours; absent is success.
    ///
    /// # Errors
    /// [`ClusterError::NotOwned`] when it is not ours (left untouched);
    /// [`ClusterError::Api`] otherwise.
    pub async fn delete_object(
        &self,
        tenant: &TenantId,
        namespace: &str,
        r: &ObjectRef,
    ) -> Result<(), ClusterError> {
        let (res, _) = self.resolve(r).await?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &res);
        let Some(existing) = self.request(|| api.get_metadata_opt(&r.name)).await? else {
            return Ok(());
        };
        if !is_owned_by(&existing.metadata, tenant) {
            return Err(ClusterError::NotOwned {
                kind: r.kind.clone(),
                namespace: namespace.to_owned(),
                name: r.name.clone(),
                tenant: tenant.clone(),
            });
        }
        let params = DeleteParams::background();
        match self.request(|| api.delete(&r.name, &params)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
