//! Go's maps are shared references: `set`, `unset`, `merge` and
//! `mergeOverwrite` change the one map that every holder sees. gotmpl's maps
//! are immutable values (`Arc<BTreeMap>`), so [`MapOverlay`] gives them Go's
//! sharing: a change makes a new version of the map and records it under the
//! map's *identity*, and every read asks the overlay for the current version.
//!
//! # Identity
//! A map's identity is the allocation of its first version that the overlay
//! saw change (or copied while resolving, see [`MapOverlay::resolve_deep`]).
//! Every version the overlay makes points back to that identity.
//!
//! **Invariant**: every allocation the tables name is owned by the table
//! entry that names it ([`MapKey`] holds the `Arc`), so for as long as the
//! overlay lives (one render) no allocation it knows can be freed, and no
//! address it knows can be handed to another map. A map the overlay has never
//! seen cannot share an address with one it has. (An earlier design kept bare
//! addresses: a temporary map freed and reallocated at the address of a
//! recorded identity read as another map's contents, and one chart rendered
//! differently from run to run.)
//!
//! Reads resolve lazily: [`MapOverlay::current`] makes one map current (a field
//! access, a function that looks at its argument's keys); values inside it are
//! made current when they are read in turn. [`MapOverlay::resolve_deep`]
//! makes a whole value current, for what looks at all of it at once
//! (printing, `toYaml`, comparisons).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use by_address::ByAddress;
use gotmpl::Value;

/// The allocation of one version of a gotmpl map.
pub(crate) type MapArc = Arc<BTreeMap<Arc<str>, Value>>;

/// A map allocation as a table key: equal and hashed by address, and owning
/// the allocation, so that the address stays this map's while the key lives.
type MapKey = ByAddress<MapArc>;

/// The shared-map semantics of one render (see the module documentation).
#[derive(Default)]
pub(crate) struct MapOverlay {
    tables: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    /// Identity -> its current version.
    current: HashMap<MapKey, MapArc>,
    /// Every version made here -> the identity it is a version of.
    identity: HashMap<MapKey, MapKey>,
}

impl Tables {
    /// The identity of `m`: the map it is a version of, else itself.
    fn identity_of(&self, m: &MapArc) -> MapKey {
        self.identity
            .get(ByAddress::from_ref(m))
            .cloned()
            .unwrap_or_else(|| ByAddress(m.clone()))
    }

    fn current_of(&self, m: &MapArc) -> Option<MapArc> {
        self.current.get(&self.identity_of(m)).cloned()
    }

    fn resolve_deep(&mut self, v: &Value) -> Value {
        match v {
            Value::Map(m) => {
                let base = self.current_of(m).unwrap_or_else(|| m.clone());
                let mut changed: Option<BTreeMap<Arc<str>, Value>> = None;
                for (k, x) in base.iter() {
                    if !is_container(x) {
                        continue;
                    }
                    let r = self.resolve_deep(x);
                    if !same(&r, x) {
                        changed
                            .get_or_insert_with(|| (*base).clone())
                            .insert(k.clone(), r);
                    }
                }
                let Some(content) = changed else {
                    return Value::Map(base);
                };
                // The resolved copy is a version of the same map: a `set` on
                // it must change what every holder of the original sees.
                let copy = Arc::new(content);
                let id = self.identity_of(m);
                self.identity.insert(ByAddress(copy.clone()), id);
                Value::Map(copy)
            }
            Value::List(l) => {
                let mut changed: Option<Vec<Value>> = None;
                for (i, x) in l.iter().enumerate() {
                    if !is_container(x) {
                        continue;
                    }
                    let r = self.resolve_deep(x);
                    if !same(&r, x) {
                        changed.get_or_insert_with(|| l.to_vec())[i] = r;
                    }
                }
                changed.map_or_else(|| v.clone(), |items| Value::List(items.into()))
            }
            _ => v.clone(),
        }
    }
}

fn is_container(v: &Value) -> bool {
    matches!(v, Value::Map(_) | Value::List(_))
}

/// Whether two values are the same allocation (or both scalars).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Map(x), Value::Map(y)) => Arc::ptr_eq(x, y),
        (Value::List(x), Value::List(y)) => Arc::ptr_eq(x, y),
        _ => true,
    }
}

impl MapOverlay {
    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `v` itself if it is not a map; else the current version of the map
    /// (values inside it may be older versions: read them through the
    /// overlay in turn).
    pub(crate) fn current(&self, v: &Value) -> Value {
        let Value::Map(m) = v else {
            return v.clone();
        };
        let t = self.lock();
        if t.current.is_empty() {
            return v.clone();
        }
        t.current_of(m).map_or_else(|| v.clone(), Value::Map)
    }

    /// `v` with every map in it, at any depth, at its current version.
    pub(crate) fn resolve_deep(&self, v: &Value) -> Value {
        if !is_container(v) {
            return v.clone();
        }
        let mut t = self.lock();
        if t.current.is_empty() {
            return v.clone();
        }
        t.resolve_deep(v)
    }

    /// Makes `content` the current version of the map `v` (as Go's
    /// `m[k] = x` on the map every holder shares) and returns it. When `v`
    /// is not a map (a nil map), the result is a new map nobody shares.
    pub(crate) fn replace(&self, v: &Value, content: BTreeMap<Arc<str>, Value>) -> Value {
        let new = Arc::new(content);
        if let Value::Map(m) = v {
            let mut t = self.lock();
            let id = t.identity_of(m);
            t.identity.insert(ByAddress(new.clone()), id.clone());
            t.current.insert(id, new.clone());
        }
        Value::Map(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, Value)]) -> Value {
        Value::Map(Arc::new(
            entries
                .iter()
                .map(|(k, v)| (Arc::from(*k), v.clone()))
                .collect(),
        ))
    }

    fn get(v: &Value, k: &str) -> Value {
        v.field(k).cloned().unwrap_or(Value::Nil)
    }

    #[test]
    fn a_change_is_seen_through_every_version_and_every_holder() {
        let o = MapOverlay::default();
        let inner = map(&[("a", Value::Int(1))]);
        let outer = map(&[("inner", inner.clone())]);
        let v1 = o.replace(&inner, [(Arc::from("a"), Value::Int(2))].into());
        // Through the old handle, through the new one, and from the holder.
        assert_eq!(get(&o.current(&inner), "a"), Value::Int(2));
        assert_eq!(get(&o.current(&v1), "a"), Value::Int(2));
        let held = o.resolve_deep(&outer);
        assert_eq!(get(&get(&held, "inner"), "a"), Value::Int(2));
        // A change through a later version changes the same map.
        o.replace(&v1, [(Arc::from("a"), Value::Int(3))].into());
        assert_eq!(get(&o.current(&inner), "a"), Value::Int(3));
        // A change through a resolved copy of the holder changes the holder.
        o.replace(&held, [(Arc::from("b"), Value::Int(4))].into());
        assert_eq!(get(&o.current(&outer), "b"), Value::Int(4));
    }

    #[test]
    fn a_map_allocated_where_another_was_freed_is_a_map_of_its_own() {
        // A holder of a changed map is resolved (a version of the holder),
        // then freed; the allocator hands its address to the next map of its
        // size, which is then changed. The holder's version must still read
        // as the holder.
        let o = MapOverlay::default();
        let mut copies = Vec::new();
        for i in 0..2_000 {
            let temp = map(&[("n", Value::Int(i))]);
            o.replace(&temp, [(Arc::from("n"), Value::Int(-i))].into());
            let holder = map(&[("i", Value::Int(i)), ("t", temp)]);
            let copy = o.resolve_deep(&holder);
            drop(holder);
            let other = map(&[("i", Value::Int(i)), ("t", Value::Int(0))]);
            o.replace(&other, [(Arc::from("other"), Value::Bool(true))].into());
            copies.push((i, copy));
        }
        for (i, copy) in &copies {
            let now = o.resolve_deep(copy);
            assert_eq!(get(&now, "i"), Value::Int(*i));
            assert_eq!(get(&get(&now, "t"), "n"), Value::Int(-i));
        }
    }
}
