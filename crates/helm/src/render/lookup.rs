//! Helm's `lookup`: what a template may read of the cluster it is installed
//! into. The renderer is synchronous and knows no cluster; whoever renders
//! says what `lookup` finds by giving a [`Lookup`].
//!
//! `helm template` has no cluster: every lookup finds nothing ([`Offline`]).
//! `helm install` reads the cluster; a [`Lookup`] that does so returns what
//! Helm's returns: the object's content for a name, a list object (`items`)
//! for an empty name, and an empty map for anything not found.

use serde_json::{Map, Value};

/// What `lookup apiVersion kind namespace name` finds.
///
/// # Guarantees an implementation gives
/// - An object or list that does not exist (or that the implementation
///   chooses not to show) is an empty map, never an error: templates test
///   it with `if not (lookup ...)`.
/// - The same arguments give the same answer within one render (a render
///   does not observe the cluster changing under it more than the cluster
///   itself changes).
///
/// It is called on the rendering thread, which is not an async runtime's
/// worker: an implementation may block on IO.
pub trait Lookup: Send + Sync {
    /// The object `query.name` (or with an empty name the list of them, as
    /// a Kubernetes list object: `apiVersion`, `kind: <Kind>List`, `items`).
    ///
    /// # Errors
    /// A message for the template's error (`error calling lookup: <msg>`):
    /// a read that failed for another reason than the object's absence.
    fn lookup(&self, query: &Query<'_>) -> Result<Map<String, Value>, String>;
}

/// The arguments of `lookup apiVersion kind namespace name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    /// `v1`, `apps/v1`, ...
    pub api_version: &'a str,
    /// The kind, e.g. `Secret`.
    pub kind: &'a str,
    /// The namespace of a namespaced kind; empty: every namespace (or a
    /// cluster-scoped kind).
    pub namespace: &'a str,
    /// The object's name; empty: the list of every such object.
    pub name: &'a str,
}

/// `helm template`'s lookup: no cluster, so nothing is ever found.
#[derive(Debug, Clone, Copy, Default)]
pub struct Offline;

impl Lookup for Offline {
    /// Always an empty map.
    fn lookup(&self, _: &Query<'_>) -> Result<Map<String, Value>, String> {
        Ok(Map::new())
    }
}

/// The JSON of a looked-up object as a template value, as Go's
/// `Unstructured` holds it: whole numbers are `int64`, others `float64`.
pub(crate) fn to_template_value(v: &Value) -> gotmpl::Value {
    use std::sync::Arc;
    match v {
        Value::Null => gotmpl::Value::Nil,
        Value::Bool(b) => gotmpl::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => gotmpl::Value::Int(i),
            None => gotmpl::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => gotmpl::Value::String(s.as_str().into()),
        Value::Array(items) => gotmpl::Value::List(
            items
                .iter()
                .map(to_template_value)
                .collect::<Vec<_>>()
                .into(),
        ),
        Value::Object(m) => gotmpl::Value::Map(Arc::new(
            m.iter()
                .map(|(k, x)| (Arc::from(k.as_str()), to_template_value(x)))
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn offline_finds_nothing() {
        for (namespace, name) in [("ns", "x"), ("", "")] {
            let query = Query {
                api_version: "v1",
                kind: "Secret",
                namespace,
                name,
            };
            assert!(Offline.lookup(&query).unwrap().is_empty());
        }
    }

    #[test]
    fn numbers_are_go_unstructured_numbers() {
        let v = to_template_value(&json!({"a": 3, "b": 1.5, "c": [true, null]}));
        let gotmpl::Value::Map(m) = v else {
            panic!("a map")
        };
        assert!(matches!(m["a"], gotmpl::Value::Int(3)));
        assert!(matches!(m["b"], gotmpl::Value::Float(f) if f == 1.5));
    }
}
