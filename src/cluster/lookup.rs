//! Helm's `lookup` against the cluster, scoped to one tenant's namespace:
//! what `helm install` reads, restricted to what the worker may read for
//! the tenant.
//!
//! # Guarantees
//! - Only objects of namespaced kinds in the tenant's namespace are read.
//!   A lookup of another namespace (the empty namespace, which Helm reads as
//!   every namespace, included) or of a cluster-scoped kind finds nothing: an
//!   empty map, what Helm returns for an object that does not exist. A tenant's
//!   chart and values cannot read other tenants' objects through a template.
//! - An object that does not exist is an empty map; an empty name lists the
//!   kind in the namespace (a `<Kind>List` with `items`, each with its
//!   `apiVersion` and `kind`, as client-go's unstructured list).
//! - A kind the cluster does not serve, or a read the API refuses (the
//!   worker's RBAC may not allow it: `k8s/worker/rbac.yaml` lets it `get`
//!   the kinds it installs and `list` Secrets only), fails the render with
//!   the API's message, as a failed lookup fails `helm install`.
//! - A transient failure (connection, 5xx, ...) is kept for the caller
//!   ([`ClusterLookup::transient_failure`]), which retries the saga instead
//!   of rejecting the request for a render error.

use std::sync::Mutex;

use kube::api::{Api, DynamicObject, ListParams};
use serde_json::{Map, Value};
use tokio::runtime::Handle;

use super::dynamic::ObjectRef;
use super::{Cluster, ClusterError};

/// `lookup` on `cluster`, seeing `namespace` only.
///
/// The renderer is synchronous and calls [`helm::Lookup::lookup`] on its
/// own rendering thread; this blocks that thread on `handle` for each read.
/// The async caller must not block a runtime thread while it waits for the
/// render (it runs [`helm::render`] in `spawn_blocking`): with
/// `block_in_place` instead, a current-thread runtime (the tests') would
/// panic, and prefetching cannot know which objects a template asks for
/// before it runs.
pub struct ClusterLookup {
    cluster: Cluster,
    namespace: String,
    handle: Handle,
    transient: Mutex<Option<ClusterError>>,
}

impl ClusterLookup {
    /// Lookups on `cluster` in `namespace`, run on the current runtime.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn new(cluster: Cluster, namespace: impl Into<String>) -> Self {
        Self {
            cluster,
            namespace: namespace.into(),
            handle: Handle::current(),
            transient: Mutex::new(None),
        }
    }

    /// The first transient error a lookup met, if any (taken: asked once).
    pub fn transient_failure(&self) -> Option<ClusterError> {
        self.transient.lock().expect("lookup failure").take()
    }

    async fn read(
        &self,
        r: &ObjectRef,
        namespace: &str,
    ) -> Result<Map<String, Value>, ClusterError> {
        let (res, namespaced) = self.cluster.resolve(r).await?;
        if !namespaced || namespace != self.namespace {
            return Ok(Map::new());
        }
        if !r.name.is_empty() {
            return Ok(match self.cluster.get_object(namespace, r).await? {
                Some(object) => to_map(&object),
                None => Map::new(),
            });
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.cluster.client().clone(), namespace, &res);
        let params = ListParams::default();
        let list = match self.cluster.request(|| api.list(&params)).await {
            Ok(list) => list,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Map::new()),
            Err(e) => return Err(e.into()),
        };
        let items = list
            .items
            .iter()
            .map(|o| {
                let mut item = to_map(o);
                item.entry("apiVersion")
                    .or_insert_with(|| Value::String(r.api_version.clone()));
                item.entry("kind")
                    .or_insert_with(|| Value::String(r.kind.clone()));
                Value::Object(item)
            })
            .collect();
        let mut out = Map::new();
        out.insert("apiVersion".into(), Value::String(r.api_version.clone()));
        out.insert("kind".into(), Value::String(format!("{}List", r.kind)));
        let mut meta = Map::new();
        if let Some(v) = list.metadata.resource_version {
            meta.insert("resourceVersion".into(), Value::String(v));
        }
        out.insert("metadata".into(), Value::Object(meta));
        out.insert("items".into(), Value::Array(items));
        Ok(out)
    }
}

fn to_map(object: &DynamicObject) -> Map<String, Value> {
    match serde_json::to_value(object) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

impl helm::Lookup for ClusterLookup {
    fn lookup(&self, query: &helm::LookupQuery<'_>) -> Result<Map<String, Value>, String> {
        let helm::LookupQuery {
            api_version,
            kind,
            namespace,
            name,
        } = *query;
        // Nothing outside the tenant's namespace is read, not even discovery.
        if namespace != self.namespace {
            return Ok(Map::new());
        }
        let r = ObjectRef {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
        };
        match self.handle.block_on(self.read(&r, namespace)) {
            Ok(found) => Ok(found),
            Err(e) => {
                let message = match &e {
                    ClusterError::UnknownKind { .. } => format!(
                        "unable to get apiresource from unstructured: {api_version}, Kind={kind}: {e}"
                    ),
                    _ => e.to_string(),
                };
                if e.is_transient() {
                    self.transient
                        .lock()
                        .expect("lookup failure")
                        .get_or_insert(e);
                }
                Err(message)
            }
        }
    }
}
