//! Sprig's dictionary functions. Go maps are references: `set`, `unset`,
//! `merge` and `mergeOverwrite` change the map every holder sees, which the
//! render state's map overlay provides.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::Value;

use super::{Cx, FnResult, P, is_empty, list, map_arg, map_value, s, spec, str_arg, strval};
use crate::render::objects::Kind;

pub(super) const FUNCS: &[super::FuncSpec] = &[
    spec("dict", &[], Some(P::Any), dict).shallow(),
    spec("get", &[P::Map, P::Str], None, |_, a| {
        Ok(map_arg(&a[0])
            .get(str_arg(&a[1]))
            .cloned()
            .unwrap_or_else(|| s("")))
    })
    .shallow(),
    spec("set", &[P::Map, P::Str, P::Any], None, |cx, a| {
        let mut m = map_arg(&a[0]);
        m.insert(str_arg(&a[1]).into(), a[2].clone());
        Ok(cx.state.maps.replace(&a[0], m))
    })
    .shallow(),
    spec("unset", &[P::Map, P::Str], None, |cx, a| {
        let mut m = map_arg(&a[0]);
        m.remove(str_arg(&a[1]));
        Ok(cx.state.maps.replace(&a[0], m))
    })
    .shallow(),
    spec("hasKey", &[P::Map, P::Str], None, |_, a| {
        Ok(Value::Bool(map_arg(&a[0]).contains_key(str_arg(&a[1]))))
    })
    .shallow(),
    spec("pluck", &[P::Str], Some(P::Map), |_, a| {
        let key = str_arg(&a[0]);
        Ok(list(
            a[1..]
                .iter()
                .filter_map(|d| map_arg(d).get(key).cloned())
                .collect(),
        ))
    })
    .shallow(),
    spec("keys", &[], Some(P::Map), |cx, a| {
        let mut k: Vec<String> = Vec::new();
        for d in a {
            k.extend(map_arg(d).keys().map(|x| x.to_string()));
        }
        Ok(crate::render::objects::strings_value(cx.objects(), k))
    })
    .shallow(),
    spec("values", &[P::Map], None, |_, a| {
        Ok(list(map_arg(&a[0]).into_values().collect()))
    })
    .shallow(),
    spec("pick", &[P::Map], Some(P::Str), |_, a| {
        let m = map_arg(&a[0]);
        Ok(map_value(
            a[1..]
                .iter()
                .filter_map(|k| {
                    m.get_key_value(str_arg(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                })
                .collect(),
        ))
    })
    .shallow(),
    spec("omit", &[P::Map], Some(P::Str), |_, a| {
        let omit: Vec<&str> = a[1..].iter().map(str_arg).collect();
        Ok(map_value(
            map_arg(&a[0])
                .into_iter()
                .filter(|(k, _)| !omit.contains(&k.as_ref()))
                .collect(),
        ))
    })
    .shallow(),
    spec("merge", &[P::Map], Some(P::Map), |cx, a| {
        merge(cx, a, false)
    })
    .shallow(),
    spec("mustMerge", &[P::Map], Some(P::Map), |cx, a| {
        merge(cx, a, false)
    })
    .shallow(),
    spec("mergeOverwrite", &[P::Map], Some(P::Map), |cx, a| {
        merge(cx, a, true)
    })
    .shallow(),
    spec("mustMergeOverwrite", &[P::Map], Some(P::Map), |cx, a| {
        merge(cx, a, true)
    })
    .shallow(),
    spec("dig", &[P::Any, P::Any], Some(P::Any), dig).shallow(),
    spec("deepCopy", &[P::Any], None, |cx, a| {
        Ok(deep_copy(cx, &a[0]))
    })
    .shallow(),
    spec("mustDeepCopy", &[P::Any], None, |cx, a| {
        Ok(deep_copy(cx, &a[0]))
    })
    .shallow(),
];

fn dict(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    let mut m: BTreeMap<Arc<str>, Value> = BTreeMap::new();
    for pair in a.chunks(2) {
        let key: Arc<str> = strval(cx.objects(), &pair[0]).into();
        m.insert(key, pair.get(1).cloned().unwrap_or_else(|| s("")));
    }
    Ok(map_value(m))
}

/// mergo's `Merge` of `src` into the map `dst` (by identity, in place), as
/// Sprig calls it (`WithOverride` for `mergeOverwrite`), key by key:
/// - a nil in `src` sets nil only when overwriting;
/// - maps on both sides merge deeply (into `dst`'s map), and `dst` keeps its
///   map unless that is still empty afterwards;
/// - a list in `src` replaces `dst`'s value when overwriting, else only a
///   missing or empty one (mergo replaces slices, it never appends);
/// - anything else replaces `dst`'s value when overwriting, else only a
///   missing or empty one.
fn merge_into(cx: &Cx<'_>, dst: &Value, src: &Value, overwrite: bool) -> Value {
    let mut d = map_arg(&cx.state.maps.current(dst));
    for (k, sv) in map_arg(&cx.state.maps.current(src)) {
        if matches!(sv, Value::Nil) {
            if overwrite {
                d.insert(k, Value::Nil);
            }
            continue;
        }
        let dv = d.get(&k).cloned();
        if let (Value::Map(_), Some(dvm @ Value::Map(_))) = (&sv, &dv) {
            merge_into(cx, dvm, &sv, overwrite);
        }
        // Emptiness is judged after the deep merge, as mergo judges the map
        // it merged into.
        let dv = dv.map(|v| cx.state.maps.current(&v));
        let dst_empty = dv.as_ref().is_none_or(|v| is_empty(cx.objects(), v));
        if !dst_empty && matches!((&sv, &dv), (Value::Map(_), Some(Value::Map(_)))) {
            continue;
        }
        if overwrite || dst_empty {
            d.insert(k, sv);
        }
    }
    cx.state.maps.replace(dst, d)
}

fn merge(cx: &Cx<'_>, a: &[Value], overwrite: bool) -> FnResult {
    let mut dst = a[0].clone();
    for src in &a[1..] {
        dst = merge_into(cx, &dst, src, overwrite);
    }
    Ok(dst)
}

fn dig(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    // dig "a" "b" default dict: the keys, then the default, then the map.
    let (Some(dict), Some(default)) = (a.last(), a.get(a.len() - 2)) else {
        return Ok(Value::Nil);
    };
    let keys = &a[..a.len() - 2];
    let mut cur = cx.state.maps.current(dict);
    for k in keys {
        let key = k.as_str().ok_or_else(|| {
            super::FnError::Call(format!(
                "interface conversion: interface {{}} is {}, not string",
                crate::render::objects::go_type(cx.objects(), k)
            ))
        })?;
        let Value::Map(m) = &cur else {
            return Err(super::FnError::Call(
                "interface conversion: interface {} is not map[string]interface {}".into(),
            ));
        };
        match m.get(key) {
            Some(v) => cur = cx.state.maps.current(v),
            None => return Ok(default.clone()),
        }
    }
    Ok(cur)
}

/// A copy sharing nothing with the original (a `[]byte` stays one).
fn deep_copy(cx: &Cx<'_>, v: &Value) -> Value {
    let v = cx.state.maps.current(v);
    if cx.objects().kind(&v) == Some(Kind::Bytes) {
        return v;
    }
    match &v {
        Value::Map(m) => map_value(
            m.iter()
                .map(|(k, x)| (k.clone(), deep_copy(cx, x)))
                .collect(),
        ),
        Value::List(l) => list(l.iter().map(|x| deep_copy(cx, x)).collect()),
        other => other.clone(),
    }
}
