//! Server-side apply and field ownership (`metadata.managedFields`).
//!
//! A simplified structured-merge-diff: the fields a manager owns are the leaf
//! paths of what it wrote, where maps are recursed into and lists and scalars
//! are atomic leaves (real servers merge some lists by key, e.g. containers by
//! name; here a list is replaced whole). Only `spec`-like content and
//! `metadata.{labels,annotations,finalizers,ownerReferences}` are tracked;
//! server-set metadata and `status` never are.
//!
//! Apply semantics, as on a real server:
//! - fields this manager applied last time and omits now are removed, unless
//!   another manager also owns them;
//! - the applied fields are merged in (maps recursively, lists and scalars replace);
//! - without `force`, changing a field another manager owns is a conflict (409);
//!   with `force`, ownership moves to the applier;
//! - any write (`Update` operations too) takes ownership of the fields it changes.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::patch::merge_patch;

/// A path of map keys from the object root to an owned field.
pub(crate) type FieldPath = Vec<String>;
/// The fields one manager owns.
pub(crate) type FieldSet = BTreeSet<FieldPath>;

/// The metadata fields that belong to the user and are tracked for ownership.
const TRACKED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// The part of an object that field managers can own: everything except
/// `apiVersion`, `kind`, `status` and server-owned metadata.
pub(crate) fn tracked(obj: &Value) -> Value {
    let Some(m) = obj.as_object() else {
        return Value::Object(Map::new());
    };
    let mut out = Map::new();
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                let meta: Map<String, Value> = v
                    .as_object()
                    .map(|mm| {
                        mm.iter()
                            .filter(|(k, _)| TRACKED_METADATA.contains(&k.as_str()))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                if !meta.is_empty() {
                    out.insert(k.clone(), Value::Object(meta));
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Leaf paths of `v`: maps are recursed into; scalars, lists and empty maps
/// are leaves; `null`s are skipped (they mean "absent").
pub(crate) fn leaves(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        match v {
            Value::Null => {}
            Value::Object(m) if !m.is_empty() => {
                for (k, c) in m {
                    path.push(k.clone());
                    walk(c, path, out);
                    path.pop();
                }
            }
            _ if !path.is_empty() => {
                out.insert(path.clone());
            }
            _ => {}
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

pub(crate) fn get_path<'a>(v: &'a Value, p: &[String]) -> Option<&'a Value> {
    p.iter().try_fold(v, |cur, k| cur.get(k.as_str()))
}

fn remove_path(v: &mut Value, p: &[String]) {
    let Some((last, parents)) = p.split_last() else {
        return;
    };
    let mut cur = v;
    for k in parents {
        match cur.get_mut(k.as_str()) {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last.as_str());
    }
}

/// Leaf paths whose value differs between `old` and `new`.
pub(crate) fn changed_leaves(old: &Value, new: &Value) -> FieldSet {
    let mut candidates = leaves(old);
    candidates.extend(leaves(new));
    candidates
        .into_iter()
        .filter(|p| get_path(old, p) != get_path(new, p))
        .collect()
}

/// Whether one path is a prefix of (or equal to) the other: owning either
/// means touching the other.
fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// `.spec.replicas`, the notation of real conflict messages.
pub(crate) fn dotted(p: &[String]) -> String {
    p.iter().map(|k| format!(".{k}")).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Apply,
    Update,
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ManagerEntry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    /// RFC 3339 time of this manager's last change.
    pub time: String,
    pub fields: FieldSet,
}

/// Who owns which fields of one object.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Managers(pub Vec<ManagerEntry>);

impl Managers {
    fn entry_mut(&mut self, manager: &str, op: Operation, api_version: &str) -> &mut ManagerEntry {
        let pos = self
            .0
            .iter()
            .position(|e| e.manager == manager && e.operation == op);
        let i = match pos {
            Some(i) => i,
            None => {
                self.0.push(ManagerEntry {
                    manager: manager.to_string(),
                    operation: op,
                    api_version: api_version.to_string(),
                    time: String::new(),
                    fields: FieldSet::new(),
                });
                self.0.len() - 1
            }
        };
        &mut self.0[i]
    }

    /// Whether ownership is the same, ignoring timestamps: a write that changes
    /// neither the object nor ownership is a no-op and keeps its resourceVersion.
    pub(crate) fn same_ownership(&self, other: &Managers) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().zip(&other.0).all(|(a, b)| {
                a.manager == b.manager
                    && a.operation == b.operation
                    && a.api_version == b.api_version
                    && a.fields == b.fields
            })
    }

    /// Drops owned paths that no longer exist and managers that own nothing.
    pub(crate) fn drop_missing(&mut self, new_tracked: &Value) {
        for e in &mut self.0 {
            e.fields.retain(|p| get_path(new_tracked, p).is_some());
        }
        self.0.retain(|e| !e.fields.is_empty());
    }

    /// Records a non-apply write (create, replace, patch) by `manager`: it
    /// takes the fields it changed, others lose them.
    pub(crate) fn record_update(
        &mut self,
        manager: &str,
        api_version: &str,
        old: Option<&Value>,
        new: &Value,
        now: &str,
    ) {
        let new_t = tracked(new);
        let changed = match old {
            Some(o) => changed_leaves(&tracked(o), &new_t),
            None => leaves(&new_t),
        };
        if changed.is_empty() {
            return;
        }
        for e in self
            .0
            .iter_mut()
            .filter(|e| !(e.manager == manager && e.operation == Operation::Update))
        {
            e.fields.retain(|p| !changed.iter().any(|c| overlaps(p, c)));
        }
        let gained: Vec<FieldPath> = leaves(&new_t)
            .into_iter()
            .filter(|p| changed.iter().any(|c| overlaps(p, c)))
            .collect();
        let entry = self.entry_mut(manager, Operation::Update, api_version);
        entry.fields.extend(gained);
        entry.time = now.to_string();
        entry.api_version = api_version.to_string();
        self.drop_missing(&new_t);
    }

    /// `metadata.managedFields` as a real server renders it (FieldsV1).
    pub(crate) fn render(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|e| {
                    json!({
                        "manager": e.manager,
                        "operation": match e.operation { Operation::Apply => "Apply", Operation::Update => "Update" },
                        "apiVersion": e.api_version,
                        "time": e.time,
                        "fieldsType": "FieldsV1",
                        "fieldsV1": fields_v1(&e.fields),
                    })
                })
                .collect(),
        )
    }
}

fn fields_v1(fields: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for p in fields {
        let mut cur = &mut root;
        for k in p {
            cur = cur
                .as_object_mut()
                .expect("fieldsV1 nodes are objects")
                .entry(format!("f:{k}"))
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    root
}

/// A field another manager owns and an apply without `force` would change:
/// `(manager, ".spec.x")`.
pub(crate) type ApplyConflict = (String, String);

/// Server-side apply of `applied` (already stripped of server-set metadata
/// and `status`) by `manager` onto `live` (with its managers), or a create
/// when `live` is `None`.
///
/// # Errors
/// The conflicts, when `force` is false and the apply would change fields
/// owned by other managers.
pub(crate) fn server_side_apply(
    live: Option<(&Value, &Managers)>,
    applied: &Value,
    manager: &str,
    api_version: &str,
    force: bool,
    now: &str,
) -> Result<(Value, Managers), Vec<ApplyConflict>> {
    let applied_t = tracked(applied);
    let new_set = leaves(&applied_t);
    let is_self = |e: &ManagerEntry| e.manager == manager && e.operation == Operation::Apply;

    let Some((live, managers)) = live else {
        let mut obj = Value::Object(Map::new());
        merge_patch(&mut obj, applied);
        let mut m = Managers::default();
        let e = m.entry_mut(manager, Operation::Apply, api_version);
        e.fields = new_set;
        e.time = now.to_string();
        m.drop_missing(&tracked(&obj));
        return Ok((obj, m));
    };
    let live_t = tracked(live);

    if !force {
        let mut conflicts = Vec::new();
        for p in &new_set {
            let (Some(lv), Some(av)) = (get_path(&live_t, p), get_path(&applied_t, p)) else {
                continue;
            };
            // Equal values are shared ownership; an empty map merges into
            // whatever is there and changes nothing.
            if lv == av || av.as_object().is_some_and(Map::is_empty) {
                continue;
            }
            for e in managers.0.iter().filter(|e| !is_self(e)) {
                if e.fields.iter().any(|q| overlaps(p, q)) {
                    conflicts.push((e.manager.clone(), dotted(p)));
                }
            }
        }
        if !conflicts.is_empty() {
            conflicts.dedup();
            return Err(conflicts);
        }
    }

    let old_set = managers
        .0
        .iter()
        .find(|e| is_self(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: Vec<&FieldPath> = managers
        .0
        .iter()
        .filter(|e| !is_self(e))
        .flat_map(|e| e.fields.iter())
        .collect();
    let mut result = live.clone();
    for p in old_set.difference(&new_set) {
        // Still applied underneath (e.g. `{}` became a populated map): merge keeps it.
        if new_set.iter().any(|q| q.starts_with(p)) {
            continue;
        }
        // Shared with another manager: it stays, only our claim goes.
        if others.iter().any(|q| overlaps(p, q)) {
            continue;
        }
        remove_path(&mut result, p);
        // Remove maps this removal left empty, unless someone still claims them.
        for i in (1..p.len()).rev() {
            let parent = &p[..i];
            if parent == ["metadata"] {
                break;
            }
            let empty = get_path(&result, parent)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty);
            let claimed = new_set
                .iter()
                .chain(others.iter().copied())
                .any(|q| q.starts_with(parent));
            if !empty || claimed {
                break;
            }
            remove_path(&mut result, parent);
        }
    }
    merge_patch(&mut result, applied);

    let result_t = tracked(&result);
    let changed = changed_leaves(&live_t, &result_t);
    let mut managers = managers.clone();
    for e in managers.0.iter_mut().filter(|e| !is_self(e)) {
        e.fields.retain(|q| !changed.iter().any(|c| overlaps(q, c)));
    }
    let e = managers.entry_mut(manager, Operation::Apply, api_version);
    e.fields = new_set;
    e.api_version = api_version.to_string();
    e.time = now.to_string();
    managers.drop_missing(&result_t);
    Ok((result, managers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": data})
    }

    fn p(s: &str) -> FieldPath {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn leaves_treat_lists_as_atomic() {
        let l = leaves(&json!({"a": {"b": 1, "c": [1, 2], "d": {}}, "e": null}));
        assert_eq!(l, FieldSet::from([p("a.b"), p("a.c"), p("a.d")]));
    }

    #[test]
    fn tracked_keeps_user_metadata_only() {
        let t = tracked(&json!({"apiVersion": "v1", "kind": "X", "status": {"a": 1},
            "metadata": {"name": "x", "uid": "u", "labels": {"a": "b"}}, "spec": {"s": 1}}));
        assert_eq!(
            t,
            json!({"metadata": {"labels": {"a": "b"}}, "spec": {"s": 1}})
        );
    }

    #[test]
    fn apply_creates_then_removes_dropped_fields() {
        let (obj, m) = server_side_apply(
            None,
            &cm(json!({"a": "1", "b": "2"})),
            "mgr",
            "v1",
            false,
            "t0",
        )
        .unwrap();
        assert_eq!(obj["data"], json!({"a": "1", "b": "2"}));
        assert_eq!(m.0[0].fields, FieldSet::from([p("data.a"), p("data.b")]));
        let (obj2, m2) = server_side_apply(
            Some((&obj, &m)),
            &cm(json!({"a": "1"})),
            "mgr",
            "v1",
            false,
            "t1",
        )
        .unwrap();
        assert_eq!(obj2["data"], json!({"a": "1"}));
        assert_eq!(m2.0[0].fields, FieldSet::from([p("data.a")]));
        // Dropping the last key removes the emptied map too.
        let (obj3, _) = server_side_apply(
            Some((&obj2, &m2)),
            &cm(Value::Null),
            "mgr",
            "v1",
            false,
            "t2",
        )
        .unwrap();
        assert!(obj3.get("data").is_none(), "{obj3}");
    }

    #[test]
    fn identical_apply_changes_nothing() {
        let (obj, m) =
            server_side_apply(None, &cm(json!({"a": "1"})), "mgr", "v1", false, "t0").unwrap();
        let (obj2, m2) = server_side_apply(
            Some((&obj, &m)),
            &cm(json!({"a": "1"})),
            "mgr",
            "v1",
            false,
            "t1",
        )
        .unwrap();
        assert_eq!(obj, obj2);
        assert!(m.same_ownership(&m2));
    }

    #[test]
    fn fields_of_other_managers_survive_and_conflict() {
        let (obj, m) =
            server_side_apply(None, &cm(json!({"a": "1"})), "one", "v1", false, "t0").unwrap();
        let (obj, m) = server_side_apply(
            Some((&obj, &m)),
            &cm(json!({"b": "2"})),
            "two",
            "v1",
            false,
            "t1",
        )
        .unwrap();
        assert_eq!(obj["data"], json!({"a": "1", "b": "2"}));
        // "two" changing "a" conflicts with "one" ...
        let err = server_side_apply(
            Some((&obj, &m)),
            &cm(json!({"a": "9"})),
            "two",
            "v1",
            false,
            "t2",
        )
        .unwrap_err();
        assert_eq!(err, vec![("one".to_string(), ".data.a".to_string())]);
        // ... unless forced, which moves ownership.
        let (obj, m) = server_side_apply(
            Some((&obj, &m)),
            &cm(json!({"a": "9"})),
            "two",
            "v1",
            true,
            "t2",
        )
        .unwrap();
        assert_eq!(obj["data"], json!({"a": "9"}));
        assert!(m.0.iter().all(|e| e.manager == "two"), "{m:?}");
        // Applying the same value as another manager shares ownership.
        let (_, m) = server_side_apply(
            Some((&obj, &m)),
            &cm(json!({"a": "9"})),
            "one",
            "v1",
            false,
            "t3",
        )
        .unwrap();
        assert_eq!(m.0.len(), 2);
    }

    #[test]
    fn shared_field_is_kept_when_one_manager_drops_it() {
        let (obj, m) =
            server_side_apply(None, &cm(json!({"a": "1"})), "one", "v1", false, "t0").unwrap();
        let (obj, m) = server_side_apply(
            Some((&obj, &m)),
            &cm(json!({"a": "1"})),
            "two",
            "v1",
            false,
            "t1",
        )
        .unwrap();
        let (obj, _) =
            server_side_apply(Some((&obj, &m)), &cm(json!({})), "one", "v1", false, "t2").unwrap();
        assert_eq!(obj["data"], json!({"a": "1"}));
    }

    #[test]
    fn server_metadata_and_status_are_preserved() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "uid": "u1", "resourceVersion": "5", "labels": {"x": "1"}},
            "status": {"phase": "Active"}});
        let (_, m) = server_side_apply(None, &live, "mgr", "v1", false, "t0").unwrap();
        let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let (obj, _) =
            server_side_apply(Some((&live, &m)), &applied, "mgr", "v1", false, "t1").unwrap();
        assert_eq!(obj["metadata"]["uid"], "u1");
        assert_eq!(obj["status"]["phase"], "Active");
        assert!(obj["metadata"].get("labels").is_none(), "{obj}");
    }

    #[test]
    fn updates_take_ownership() {
        let (obj, mut m) =
            server_side_apply(None, &cm(json!({"a": "1"})), "applier", "v1", false, "t0").unwrap();
        let mut edited = obj.clone();
        edited["data"]["a"] = json!("2");
        m.record_update("kubectl-edit", "v1", Some(&obj), &edited, "t1");
        assert_eq!(m.0.len(), 1);
        assert_eq!(m.0[0].manager, "kubectl-edit");
        let err = server_side_apply(
            Some((&edited, &m)),
            &cm(json!({"a": "3"})),
            "applier",
            "v1",
            false,
            "t2",
        );
        assert!(err.is_err());
    }

    #[test]
    fn renders_fields_v1() {
        let (_, m) =
            server_side_apply(None, &cm(json!({"a": "1"})), "mgr", "v1", false, "t0").unwrap();
        let r = m.render();
        assert_eq!(r[0]["operation"], "Apply");
        assert_eq!(r[0]["fieldsV1"], json!({"f:data": {"f:a": {}}}));
    }
}
