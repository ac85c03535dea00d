//! Drift detection for one object: is it in the cluster as the worker would
//! apply it?
//!
//! The comparison is the one `kubectl diff --server-side` makes: the desired
//! object is server-side applied as a dry run (with the worker's field manager,
//! forced, exactly as the steps apply it) and the result is compared with the
//! live object. The API server does the defaulting and the normalisation
//! (quantities, ports, list merges), so only real differences in fields the
//! worker sets show up: a replica count that an autoscaler owns, or a label
//! someone else added, is not drift.

use kube::api::{Api, DynamicObject, Patch};
use serde_json::Value;

use super::dynamic::ObjectRef;
use super::{Cluster, ClusterError, apply_params};
use crate::contract::TenantId;
use tenant_core::steps::is_owned_by;

/// How one desired object stands in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectState {
    /// As the worker would apply it.
    InSync,
    /// Absent.
    Missing,
    /// Present, but applying it again would change these fields (dotted paths).
    Modified(Vec<String>),
    /// Present without the worker's labels for the tenant: not the worker's to repair.
    NotOwned,
}

/// Metadata the API server maintains; never drift.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
];

impl Cluster {
    /// Compares `desired` (a manifest as the worker applies it: labelled, with
    /// `metadata.namespace` set for namespaced kinds) with the live object.
    ///
    /// # Errors
    /// [`ClusterError::Invalid`] for a manifest without a reference;
    /// [`ClusterError::UnknownKind`]; [`ClusterError::Api`] when reading or the
    /// dry run fails.
    pub async fn compare_object(
        &self,
        tenant: &TenantId,
        desired: &Value,
    ) -> Result<ObjectState, ClusterError> {
        let r = ObjectRef::of(desired).ok_or_else(|| {
            ClusterError::Invalid("a manifest without apiVersion, kind or metadata.name".into())
        })?;
        let (res, namespaced) = self.resolve(&r).await?;
        let api: Api<DynamicObject> = match desired.pointer("/metadata/namespace") {
            Some(Value::String(ns)) if namespaced => {
                Api::namespaced_with(self.client.clone(), ns, &res)
            }
            _ => Api::all_with(self.client.clone(), &res),
        };
        let Some(live) = self.request(|| api.get_opt(&r.name)).await? else {
            return Ok(ObjectState::Missing);
        };
        if !is_owned_by(&live.metadata, tenant) {
            return Ok(ObjectState::NotOwned);
        }
        let mut params = apply_params();
        params.dry_run = true;
        let patch = Patch::Apply(desired);
        let applied = self.request(|| api.patch(&r.name, &params, &patch)).await?;
        let (live, applied) = (comparable(&live), comparable(&applied));
        let mut fields = Vec::new();
        differences(&live, &applied, "", &mut fields);
        Ok(if fields.is_empty() {
            ObjectState::InSync
        } else {
            ObjectState::Modified(fields)
        })
    }
}

/// The object without its status and the metadata the server maintains.
fn comparable(object: &DynamicObject) -> Value {
    let mut json = serde_json::to_value(object).expect("objects serialize");
    if let Some(map) = json.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = json.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in SERVER_METADATA {
            meta.remove(*key);
        }
    }
    json
}

/// Appends the dotted path of every leaf where `live` and `applied` differ.
fn differences(live: &Value, applied: &Value, path: &str, out: &mut Vec<String>) {
    match (live, applied) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => differences(x, y, &child, out),
                    _ => out.push(child),
                }
            }
        }
        (a, b) if a == b => {}
        _ => out.push(if path.is_empty() {
            "(object)".into()
        } else {
            path.to_owned()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_name_each_changed_leaf_once() {
        let live = json!({"spec": {"hard": {"cpu": "8", "memory": "4Gi"}, "ports": [1, 2]},
                          "metadata": {"labels": {"a": "1"}}});
        let applied = json!({"spec": {"hard": {"cpu": "2", "memory": "4Gi"}, "ports": [1, 3]},
                             "metadata": {"labels": {"a": "1", "b": "2"}}});
        let mut out = Vec::new();
        differences(&live, &applied, "", &mut out);
        assert_eq!(out, ["metadata.labels.b", "spec.hard.cpu", "spec.ports"]);
        let mut none = Vec::new();
        differences(&live, &live, "", &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn status_and_server_metadata_are_not_compared() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "7", "generation": 2, "uid": "u",
                         "managedFields": [], "creationTimestamp": "2026-01-01T00:00:00Z",
                         "labels": {"x": "y"}},
            "status": {"phase": "Active"},
            "data": {"k": "v"}
        }))
        .unwrap();
        assert_eq!(
            comparable(&object),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "a", "labels": {"x": "y"}}, "data": {"k": "v"}})
        );
    }
}
