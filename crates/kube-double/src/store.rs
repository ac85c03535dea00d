//! The in-memory object store.
//!
//! Plain data behind one `std::sync::Mutex` owned by the server: callers lock
//! it for short, synchronous sections only (never across an `.await`), and do
//! expensive work (decoding, validation, merging) outside the lock with an
//! optimistic retry, like the real API server's guaranteed update.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tokio::time::Instant;

use super::apply::Managers;
use super::resources::{self, ResourceDef};

/// `(resource index, namespace or "", name)`. Ordered so that one resource in
/// one namespace is a contiguous range, sorted by name like real list output.
pub(crate) type Key = (usize, String, String);

pub(crate) fn key(res: &'static ResourceDef, namespace: Option<&str>, name: &str) -> Key {
    (
        resources::index_of(res),
        namespace.unwrap_or_default().to_string(),
        name.to_string(),
    )
}

/// One stored object with its resourceVersion and field ownership.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The full object as served, including `metadata.resourceVersion` and
    /// `metadata.managedFields`.
    pub object: Value,
    pub rv: u64,
    pub managers: Managers,
}

/// Lifecycle of a namespace as creation of content sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NamespaceState {
    Missing,
    Active,
    Terminating,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    rv: u64,
    objects: BTreeMap<Key, Entry>,
    /// Namespaces being deleted, and when their content is removed.
    pub terminating: BTreeMap<String, Instant>,
    /// Workloads waiting for simulated readiness, and when they become ready.
    pub pending_ready: BTreeMap<Key, Instant>,
    /// Namespaces whose ResourceQuota status needs recomputing.
    pub quota_dirty: BTreeSet<String>,
}

impl Store {
    /// Allocates the next resourceVersion (one global counter, like etcd's revision).
    pub(crate) fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// The latest resourceVersion handed out; lists report it.
    pub(crate) fn current_rv(&self) -> u64 {
        self.rv
    }

    pub(crate) fn get(&self, key: &Key) -> Option<&Entry> {
        self.objects.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &Key) -> Option<&mut Entry> {
        self.objects.get_mut(key)
    }

    pub(crate) fn insert(&mut self, key: Key, entry: Entry) {
        self.objects.insert(key, entry);
    }

    pub(crate) fn remove(&mut self, key: &Key) -> Option<Entry> {
        self.pending_ready.remove(key);
        self.objects.remove(key)
    }

    /// Objects of one resource, in one namespace or (`None`) all, sorted by
    /// namespace then name.
    pub(crate) fn list<'a>(
        &'a self,
        res: &'static ResourceDef,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Entry)> + 'a {
        let idx = resources::index_of(res);
        let start = (
            idx,
            namespace.unwrap_or_default().to_string(),
            String::new(),
        );
        self.objects
            .range(start..)
            .take_while(move |((i, ns, _), _)| *i == idx && namespace.is_none_or(|n| n == ns))
    }

    pub(crate) fn count(&self, res: &'static ResourceDef, namespace: &str) -> usize {
        self.list(res, Some(namespace)).count()
    }

    pub(crate) fn namespace_state(&self, name: &str) -> NamespaceState {
        match self.get(&key(resources::namespaces(), None, name)) {
            None => NamespaceState::Missing,
            Some(e) if e.object.pointer("/metadata/deletionTimestamp").is_some() => {
                NamespaceState::Terminating
            }
            Some(_) => NamespaceState::Active,
        }
    }

    /// Removes every namespaced object in `namespace` (not the namespace itself).
    pub(crate) fn remove_namespace_content(&mut self, namespace: &str) -> usize {
        // Keys sort by (resource, namespace, name): one range per namespaced
        // resource, not a scan of every object (which made each namespace
        // deletion cost as much as the whole store: quadratic at 10,000
        // tenants in the growth benchmark).
        let mut doomed: Vec<Key> = Vec::new();
        for (i, res) in resources::RESOURCES.iter().enumerate() {
            if !res.namespaced {
                continue;
            }
            let from = (i, namespace.to_owned(), String::new());
            doomed.extend(
                self.objects
                    .range(from..)
                    .take_while(|((j, ns, _), _)| *j == i && ns == namespace)
                    .map(|(k, _)| k.clone()),
            );
        }
        for k in &doomed {
            self.remove(k);
        }
        doomed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(rv: u64) -> Entry {
        Entry {
            object: json!({}),
            rv,
            managers: Managers::default(),
        }
    }

    #[test]
    fn list_is_scoped_and_sorted() {
        let cm = resources::find("", "v1", "configmaps").unwrap();
        let secret = resources::find("", "v1", "secrets").unwrap();
        let mut s = Store::default();
        s.insert(key(cm, Some("b"), "x"), entry(1));
        s.insert(key(cm, Some("a"), "z"), entry(2));
        s.insert(key(cm, Some("a"), "y"), entry(3));
        s.insert(key(secret, Some("a"), "s"), entry(4));
        let names: Vec<_> = s.list(cm, Some("a")).map(|(k, _)| k.2.clone()).collect();
        assert_eq!(names, ["y", "z"]);
        assert_eq!(s.list(cm, None).count(), 3);
        assert_eq!(s.count(secret, "a"), 1);
        assert_eq!(s.remove_namespace_content("a"), 3);
        assert_eq!(s.list(cm, None).count(), 1);
    }

    #[test]
    fn namespace_states() {
        let mut s = Store::default();
        assert_eq!(s.namespace_state("x"), NamespaceState::Missing);
        s.insert(key(resources::namespaces(), None, "x"), entry(1));
        assert_eq!(s.namespace_state("x"), NamespaceState::Active);
        s.get_mut(&key(resources::namespaces(), None, "x"))
            .unwrap()
            .object = json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}});
        assert_eq!(s.namespace_state("x"), NamespaceState::Terminating);
        assert_eq!(s.next_rv(), 1);
        assert_eq!(s.current_rv(), 1);
    }
}
