//! Helm's coalescing of values over a chart and its subcharts
//! (`CoalesceValues`, `MergeValues`, `CoalesceTables`, `MergeTables`),
//! with Go's map semantics.
//!
//! Go's maps are shared references, and Helm's coalescing relies on it:
//! globals are copied one level deep, so a subchart's deeper global tables
//! are the parent's own, and what a subchart's defaults add there every
//! chart sees. [`Table`] is such a shared map; [`Val`] a value in one. Lists
//! and scalars are never changed in place, so they stay plain JSON.
//!
//! Every function is a port of the Go function it names; the order of the
//! steps, which map is copied and which is shared, and the warnings Helm only
//! logs (a table over a scalar, a scalar over a table: skipped) are Helm's.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::Value;

/// A Go `map[string]any`: shared by every holder.
pub(crate) type Table = Rc<RefCell<BTreeMap<String, Val>>>;

/// A value in a [`Table`]: a table, or anything else as JSON (never an
/// object: objects are tables).
#[derive(Clone, Debug)]
pub(crate) enum Val {
    Table(Table),
    Leaf(Value),
}

/// Helm's key for global values.
pub(crate) const GLOBAL_KEY: &str = "global";

impl Val {
    pub(crate) fn is_nil(&self) -> bool {
        matches!(self, Val::Leaf(Value::Null))
    }

    pub(crate) fn as_table(&self) -> Option<&Table> {
        match self {
            Val::Table(t) => Some(t),
            Val::Leaf(_) => None,
        }
    }

    /// A JSON value as Go values: objects become (new) tables.
    pub(crate) fn from_json(v: &Value) -> Val {
        match v {
            Value::Object(m) => Val::Table(table_from_json(m)),
            other => Val::Leaf(other.clone()),
        }
    }

    /// The value as JSON (a table shared twice is written twice).
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Val::Table(t) => table_to_json(t),
            Val::Leaf(v) => v.clone(),
        }
    }

    /// Go's `%v` of the value, for Helm's `%t` in a type mismatch.
    fn go_t(&self) -> String {
        match self {
            Val::Leaf(Value::Bool(b)) => b.to_string(),
            Val::Leaf(Value::Null) => "%!t(<nil>)".into(),
            Val::Leaf(Value::String(s)) => format!("%!t(string={s})"),
            Val::Leaf(Value::Number(n)) => format!("%!t(float64={n})"),
            Val::Leaf(Value::Array(a)) => {
                format!("%!t([]interface {{}}={})", Value::Array(a.clone()))
            }
            Val::Leaf(Value::Object(_)) | Val::Table(_) => "%!t(map)".into(),
        }
    }
}

/// A new table holding `m` (objects inside become tables too).
pub(crate) fn table_from_json(m: &serde_json::Map<String, Value>) -> Table {
    Rc::new(RefCell::new(
        m.iter()
            .map(|(k, v)| (k.clone(), Val::from_json(v)))
            .collect(),
    ))
}

/// A table from a JSON value: an object's entries, else empty.
pub(crate) fn table_of(v: &Value) -> Table {
    match v {
        Value::Object(m) => table_from_json(m),
        _ => new_table(),
    }
}

pub(crate) fn new_table() -> Table {
    Rc::new(RefCell::new(BTreeMap::new()))
}

pub(crate) fn table_to_json(t: &Table) -> Value {
    Value::Object(
        t.borrow()
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect(),
    )
}

/// Helm's `copystructure.Copy`: every table copied, at every depth.
pub(crate) fn deep_copy(t: &Table) -> Table {
    Rc::new(RefCell::new(
        t.borrow()
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Val::Table(t) => Val::Table(deep_copy(t)),
                    leaf => leaf.clone(),
                };
                (k.clone(), v)
            })
            .collect(),
    ))
}

/// A copy of the table's entries, to iterate over while the table changes
/// (Go allows that; a `RefCell` does not).
fn entries(t: &Table) -> Vec<(String, Val)> {
    t.borrow()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn get(t: &Table, key: &str) -> Option<Val> {
    t.borrow().get(key).cloned()
}

fn set(t: &Table, key: &str, v: Val) {
    t.borrow_mut().insert(key.to_owned(), v);
}

/// Helm's `Values.Table`: the table at the dotted `path`, if every step is
/// a table.
pub(crate) fn table_at(t: &Table, path: &str) -> Option<Table> {
    let mut at = t.clone();
    for step in path.split('.') {
        let next = get(&at, step)?.as_table()?.clone();
        at = next;
    }
    Some(at)
}

/// Helm's `Values.PathValue`: the value at the dotted `path` when it is
/// not a table.
pub(crate) fn path_value(t: &Table, path: &str) -> Option<Val> {
    if path.is_empty() {
        return None;
    }
    let (table, key) = match path.rsplit_once('.') {
        None => (t.clone(), path),
        Some((head, key)) => (table_at(t, head)?, key),
    };
    get(&table, key).filter(|v| v.as_table().is_none())
}

/// A chart as coalescing sees it: its name, its default values, and its
/// subcharts.
pub(crate) trait ValuesTree {
    /// The chart's name (its alias, for an aliased dependency).
    fn name(&self) -> &str;
    /// The chart's values (`values.yaml`, after Helm's import-values).
    fn defaults(&self) -> &Table;
    /// The subcharts, in Helm's order.
    fn subcharts(&self) -> &[Self]
    where
        Self: Sized;
}

/// Helm's `CoalesceValues` (`merge` false: a `null` deletes what it
/// covers) or `MergeValues` (`merge` true: `null`s are kept): `vals` (not
/// changed) over the chart's defaults and, under each subchart's name, the
/// subchart's, with globals handed down.
///
/// # Errors
/// Helm's `type mismatch on <subchart>: ...` when the values for a subchart
/// are not a table.
pub(crate) fn coalesce_values<T: ValuesTree>(
    chart: &T,
    vals: &Table,
    merge: bool,
) -> Result<Table, String> {
    let dest = deep_copy(vals);
    coalesce(chart, &dest, "", merge)?;
    Ok(dest)
}

fn concat_prefix(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_owned()
    } else {
        format!("{a}.{b}")
    }
}

fn coalesce<T: ValuesTree>(ch: &T, dest: &Table, prefix: &str, merge: bool) -> Result<(), String> {
    coalesce_chart_values(ch, dest, prefix, merge);
    coalesce_deps(ch, dest, prefix, merge)
}

fn coalesce_deps<T: ValuesTree>(
    ch: &T,
    dest: &Table,
    prefix: &str,
    merge: bool,
) -> Result<(), String> {
    for sub in ch.subcharts() {
        let name = sub.name();
        let dv = match get(dest, name) {
            None => {
                let t = new_table();
                set(dest, name, Val::Table(t.clone()));
                t
            }
            Some(Val::Table(t)) => t,
            Some(other) => return Err(format!("type mismatch on {name}: {}", other.go_t())),
        };
        let sub_prefix = concat_prefix(prefix, ch.name());
        coalesce_globals(&dv, dest, &sub_prefix);
        coalesce(sub, &dv, &sub_prefix, merge)?;
    }
    Ok(())
}

/// Helm's `coalesceGlobals`: the parent's globals (`src`) into the
/// subchart's (`dest`); the parent's win. Tables are copied one level deep.
fn coalesce_globals(dest: &Table, src: &Table, prefix: &str) {
    let dg = match get(dest, GLOBAL_KEY) {
        None => new_table(),
        Some(Val::Table(t)) => t,
        Some(_) => return,
    };
    let sg = match get(src, GLOBAL_KEY) {
        None => new_table(),
        Some(Val::Table(t)) => t,
        Some(_) => return,
    };
    for (key, val) in entries(&sg) {
        match &val {
            Val::Table(t) => {
                let vv: Table = Rc::new(RefCell::new(t.borrow().clone()));
                match get(&dg, &key) {
                    None => set(&dg, &key, Val::Table(vv)),
                    Some(Val::Table(destv)) => {
                        coalesce_tables_full_key(&vv, &destv, &concat_prefix(prefix, &key), true);
                        set(&dg, &key, Val::Table(vv));
                    }
                    // Helm: "cannot merge map onto non-map", skipped.
                    Some(_) => {}
                }
            }
            Val::Leaf(_) => {
                if !matches!(get(&dg, &key), Some(Val::Table(_))) {
                    set(&dg, &key, val.clone());
                }
            }
        }
    }
    set(dest, GLOBAL_KEY, Val::Table(dg));
}

/// Whether `key` names a subchart of `ch` (its values then merge, keeping
/// `null`s for the subchart's own coalescing).
fn child_chart_merge_true<T: ValuesTree>(ch: &T, key: &str, merge: bool) -> bool {
    merge || ch.subcharts().iter().any(|s| s.name() == key)
}

/// Helm's `coalesceValues`: the chart's defaults (a copy) under `v`.
fn coalesce_chart_values<T: ValuesTree>(ch: &T, v: &Table, prefix: &str, merge: bool) {
    let sub_prefix = concat_prefix(prefix, ch.name());
    let vc = deep_copy(ch.defaults());
    for (key, val) in entries(&vc) {
        match get(v, &key) {
            Some(value) => {
                if value.is_nil() && !merge {
                    v.borrow_mut().remove(&key);
                } else if let Val::Table(dest) = value {
                    // A scalar default under a table: Helm warns and skips.
                    if let Val::Table(src) = val {
                        let merge = child_chart_merge_true(ch, &key, merge);
                        if !merge {
                            clean_nil_values(&src);
                        }
                        coalesce_tables_full_key(
                            &dest,
                            &src,
                            &concat_prefix(&sub_prefix, &key),
                            merge,
                        );
                    }
                }
            }
            None => {
                if !merge {
                    if val.is_nil() {
                        continue;
                    }
                    if let Val::Table(sub) = &val {
                        clean_nil_values(sub);
                    }
                }
                set(v, &key, val);
            }
        }
    }
}

/// Helm's `CoalesceTables` (`merge` false) and `MergeTables` (`merge`
/// true): `src` into `dst`, `dst` authoritative.
pub(crate) fn coalesce_tables(dst: &Table, src: &Table, merge: bool) {
    coalesce_tables_full_key(dst, src, "", merge);
}

fn coalesce_tables_full_key(dst: &Table, src: &Table, prefix: &str, merge: bool) {
    if Rc::ptr_eq(dst, src) {
        // Go merges a map into itself without effect.
        return;
    }
    let src_original_non_nil: Vec<String> = src
        .borrow()
        .iter()
        .filter(|(_, v)| !v.is_nil())
        .map(|(k, _)| k.clone())
        .collect();
    for (key, val) in entries(dst) {
        if val.is_nil() {
            set(src, &key, Val::Leaf(Value::Null));
        }
    }
    for (key, val) in entries(src) {
        let full_key = concat_prefix(prefix, &key);
        let dv = get(dst, &key);
        match dv {
            Some(dv) if !merge && dv.is_nil() && src_original_non_nil.contains(&key) => {
                dst.borrow_mut().remove(&key);
            }
            None => set(dst, &key, val),
            Some(dv) => {
                if let Val::Table(sv) = &val {
                    // A table under a scalar: Helm warns and skips.
                    if let Val::Table(dv) = &dv {
                        coalesce_tables_full_key(dv, sv, &full_key, merge);
                    }
                }
                // A scalar under a table: Helm warns and skips.
            }
        }
    }
}

/// Helm's `cleanNilValues`: every `null` entry removed, in nested tables too.
fn clean_nil_values(m: &Table) {
    m.borrow_mut().retain(|_, v| !v.is_nil());
    for (_, v) in entries(m) {
        if let Val::Table(t) = v {
            clean_nil_values(&t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Node {
        name: String,
        values: Table,
        subs: Vec<Node>,
    }

    impl ValuesTree for Node {
        fn name(&self) -> &str {
            &self.name
        }
        fn defaults(&self) -> &Table {
            &self.values
        }
        fn subcharts(&self) -> &[Node] {
            &self.subs
        }
    }

    fn node(name: &str, values: Value, subs: Vec<Node>) -> Node {
        Node {
            name: name.into(),
            values: table_of(&values),
            subs,
        }
    }

    #[test]
    fn subchart_values_are_scoped_and_globals_flow_down() {
        let tree = node(
            "top",
            json!({"global": {"g": "top", "deep": {"a": {"x": 1}}}, "sub": {"x": "from-top"}}),
            vec![node(
                "sub",
                json!({"x": "own", "y": 1, "global": {"g": "sub", "h": "sub", "deep": {"a": {"y": 2}}}}),
                vec![],
            )],
        );
        let user = table_of(&json!({"sub": {"y": null}}));
        let out = table_to_json(&coalesce_values(&tree, &user, false).unwrap());
        assert_eq!(out["sub"]["x"], "from-top");
        assert!(out["sub"].get("y").is_none(), "null deletes: {out}");
        assert_eq!(out["sub"]["global"]["g"], "top", "the parent's global wins");
        assert_eq!(out["sub"]["global"]["h"], "sub");
        // Helm copies globals one level deep: the subchart's deeper global
        // defaults land in the parent's own table.
        assert_eq!(out["global"]["deep"]["a"], json!({"x": 1, "y": 2}));
        assert_eq!(
            table_to_json(&user),
            json!({"sub": {"y": null}}),
            "input kept"
        );
    }

    #[test]
    fn a_scalar_for_a_subchart_is_a_type_mismatch() {
        let tree = node("top", json!({}), vec![node("sub", json!({}), vec![])]);
        let e = coalesce_values(&tree, &table_of(&json!({"sub": "x"})), false).unwrap_err();
        assert_eq!(e, "type mismatch on sub: %!t(string=x)");
    }

    #[test]
    fn merge_keeps_nulls_coalesce_drops_them() {
        let tree = node("top", json!({"a": 1, "b": {"c": 2}}), vec![]);
        let user = table_of(&json!({"a": null, "b": {"c": null}}));
        assert_eq!(
            table_to_json(&coalesce_values(&tree, &user, true).unwrap()),
            json!({"a": null, "b": {"c": null}})
        );
        assert_eq!(
            table_to_json(&coalesce_values(&tree, &user, false).unwrap()),
            json!({"b": {}})
        );
    }

    #[test]
    fn path_lookups() {
        let t = table_of(&json!({"a": {"b": {"c": true}}, "t": 1}));
        assert!(matches!(
            path_value(&t, "a.b.c"),
            Some(Val::Leaf(Value::Bool(true)))
        ));
        assert!(path_value(&t, "a.b").is_none(), "a table is no value");
        assert!(path_value(&t, "t").is_some() && path_value(&t, "").is_none());
        assert!(table_at(&t, "a.b").is_some() && table_at(&t, "t").is_none());
    }
}
