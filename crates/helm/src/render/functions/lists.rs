//! Sprig's list functions. The non-`must` forms return an error too where
//! Sprig's do (Sprig v3 wraps `must*` and plain the same way for these).

use gotmpl::Value;

use super::{
    Cx, FnError, FnResult, P, deep_equal, int_arg, is_empty, list, slice_items, spec, to_int64,
};

pub(super) const FUNCS: &[super::FuncSpec] = &[
    spec("list", &[], Some(P::Any), |_, a| Ok(list(a.to_vec()))).shallow(),
    spec("tuple", &[], Some(P::Any), |_, a| Ok(list(a.to_vec()))).shallow(),
    spec("first", &[P::Any], None, |cx, a| first(cx, a, "first")).shallow(),
    spec("mustFirst", &[P::Any], None, |cx, a| first(cx, a, "first")).shallow(),
    spec("last", &[P::Any], None, |cx, a| last(cx, a, "last")).shallow(),
    spec("mustLast", &[P::Any], None, |cx, a| last(cx, a, "last")).shallow(),
    spec("rest", &[P::Any], None, |cx, a| cut(cx, a, "rest", true)).shallow(),
    spec("mustRest", &[P::Any], None, |cx, a| {
        cut(cx, a, "rest", true)
    })
    .shallow(),
    spec("initial", &[P::Any], None, |cx, a| {
        cut(cx, a, "initial", false)
    })
    .shallow(),
    spec("mustInitial", &[P::Any], None, |cx, a| {
        cut(cx, a, "initial", false)
    })
    .shallow(),
    spec("append", &[P::Any, P::Any], None, |cx, a| {
        push(cx, a, "push")
    })
    .shallow(),
    spec("push", &[P::Any, P::Any], None, |cx, a| push(cx, a, "push")).shallow(),
    spec("mustAppend", &[P::Any, P::Any], None, |cx, a| {
        push(cx, a, "push")
    })
    .shallow(),
    spec("mustPush", &[P::Any, P::Any], None, |cx, a| {
        push(cx, a, "push")
    })
    .shallow(),
    spec("prepend", &[P::Any, P::Any], None, prepend).shallow(),
    spec("mustPrepend", &[P::Any, P::Any], None, prepend).shallow(),
    spec("concat", &[], Some(P::Any), concat).shallow(),
    spec("reverse", &[P::Any], None, reverse).shallow(),
    spec("mustReverse", &[P::Any], None, reverse).shallow(),
    spec("uniq", &[P::Any], None, uniq),
    spec("mustUniq", &[P::Any], None, uniq),
    spec("without", &[P::Any], Some(P::Any), without),
    spec("mustWithout", &[P::Any], Some(P::Any), without),
    spec("has", &[P::Any, P::Any], None, has),
    spec("mustHas", &[P::Any, P::Any], None, has),
    spec("compact", &[P::Any], None, compact),
    spec("mustCompact", &[P::Any], None, compact),
    spec("slice", &[P::Any], Some(P::Any), slice).shallow(),
    spec("mustSlice", &[P::Any], Some(P::Any), slice).shallow(),
    spec("chunk", &[P::Int, P::Any], None, chunk).shallow(),
    spec("mustChunk", &[P::Int, P::Any], None, chunk).shallow(),
    spec("until", &[P::Int], None, |_, a| {
        let n = int_arg(&a[0]);
        Ok(ints(until_step(0, n, if n < 0 { -1 } else { 1 })))
    }),
    spec("untilStep", &[P::Int, P::Int, P::Int], None, |_, a| {
        Ok(ints(until_step(
            int_arg(&a[0]),
            int_arg(&a[1]),
            int_arg(&a[2]),
        )))
    }),
    spec("seq", &[], Some(P::Int), seq),
];

fn items(cx: &Cx<'_>, v: &Value, what: &str) -> Result<Vec<Value>, FnError> {
    slice_items(cx.objects(), v).map_err(|kind| {
        if matches!(v, Value::Nil) {
            FnError::Call("runtime error: invalid memory address or nil pointer dereference".into())
        } else {
            FnError::Call(format!("Cannot {what} on type {kind}"))
        }
    })
}

fn first(cx: &Cx<'_>, a: &[Value], what: &str) -> FnResult {
    Ok(items(cx, &a[0], &format!("find {what}"))?
        .into_iter()
        .next()
        .unwrap_or(Value::Nil))
}

fn last(cx: &Cx<'_>, a: &[Value], what: &str) -> FnResult {
    Ok(items(cx, &a[0], &format!("find {what}"))?
        .pop()
        .unwrap_or(Value::Nil))
}

fn cut(cx: &Cx<'_>, a: &[Value], what: &str, front: bool) -> FnResult {
    let mut l = items(cx, &a[0], &format!("find {what}"))?;
    if l.is_empty() {
        return Ok(Value::Nil);
    }
    if front {
        l.remove(0);
    } else {
        l.pop();
    }
    Ok(list(l))
}

fn push(cx: &Cx<'_>, a: &[Value], what: &str) -> FnResult {
    let mut l = items(cx, &a[0], what)?;
    l.push(a[1].clone());
    Ok(list(l))
}

fn prepend(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    let mut l = items(cx, &a[0], "prepend")?;
    l.insert(0, a[1].clone());
    Ok(list(l))
}

fn concat(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    let mut out = Vec::new();
    for v in a {
        out.extend(items(cx, v, "concat")?);
    }
    Ok(list(out))
}

fn reverse(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    let mut l = items(cx, &a[0], "find reverse")?;
    l.reverse();
    Ok(list(l))
}

fn uniq(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    let mut out: Vec<Value> = Vec::new();
    for v in items(cx, &a[0], "find uniq")? {
        if !out.iter().any(|x| deep_equal(cx.objects(), x, &v)) {
            out.push(v);
        }
    }
    Ok(list(out))
}

fn without(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    let omit = &a[1..];
    let out: Vec<Value> = items(cx, &a[0], "find without")?
        .into_iter()
        .filter(|v| !omit.iter().any(|o| deep_equal(cx.objects(), o, v)))
        .collect();
    Ok(list(out))
}

fn has(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    if matches!(a[1], Value::Nil) {
        return Ok(Value::Bool(false));
    }
    let l = items(cx, &a[1], "find has")?;
    Ok(Value::Bool(
        l.iter().any(|v| deep_equal(cx.objects(), &a[0], v)),
    ))
}

fn compact(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    let out: Vec<Value> = items(cx, &a[0], "compact")?
        .into_iter()
        .filter(|v| !is_empty(cx.objects(), v))
        .collect();
    Ok(list(out))
}

fn slice(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    let l = slice_items(cx.objects(), &a[0]).map_err(|kind| {
        FnError::Call(format!("list should be type of slice or array but {kind}"))
    })?;
    if l.is_empty() {
        return Ok(Value::Nil);
    }
    let start = a.get(1).map_or(0, |v| to_int64(cx.objects(), v));
    let end = a
        .get(2)
        .map_or(l.len() as i64, |v| to_int64(cx.objects(), v));
    if start < 0 || end < start || end as usize > l.len() {
        return Err(FnError::Call(
            "reflect.Value.Slice: slice index out of bounds".into(),
        ));
    }
    Ok(list(l[start as usize..end as usize].to_vec()))
}

fn chunk(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    let size = int_arg(&a[0]);
    let l = items(cx, &a[1], "chunk")?;
    if size <= 0 {
        return Err(FnError::Call(
            "runtime error: integer divide by zero".into(),
        ));
    }
    Ok(list(
        l.chunks(size as usize).map(|c| list(c.to_vec())).collect(),
    ))
}

fn until_step(start: i64, stop: i64, step: i64) -> Vec<i64> {
    let mut v = Vec::new();
    if stop < start {
        if step >= 0 {
            return v;
        }
        let mut i = start;
        while i > stop {
            v.push(i);
            i += step;
        }
        return v;
    }
    if step <= 0 {
        return v;
    }
    let mut i = start;
    while i < stop {
        v.push(i);
        i += step;
    }
    v
}

fn ints(v: Vec<i64>) -> Value {
    list(v.into_iter().map(Value::Int).collect())
}

fn seq(_: &Cx<'_>, a: &[Value]) -> FnResult {
    let p: Vec<i64> = a.iter().map(int_arg).collect();
    let joined = |v: Vec<i64>| v.iter().map(i64::to_string).collect::<Vec<_>>().join(" ");
    let out = match p.as_slice() {
        [end] => {
            let inc = if *end < 1 { -1 } else { 1 };
            joined(until_step(1, end + inc, inc))
        }
        [start, end] => {
            let step = if end < start { -1 } else { 1 };
            joined(until_step(*start, end + step, step))
        }
        [start, step, end] => {
            let inc = if end < start { -1 } else { 1 };
            if end < start && *step > 0 {
                String::new()
            } else {
                joined(until_step(*start, end + inc, *step))
            }
        }
        _ => String::new(),
    };
    Ok(super::s(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(until_step(0, 5, 2), [0, 2, 4]);
        assert_eq!(until_step(5, 0, -2), [5, 3, 1]);
        assert!(until_step(0, 5, -1).is_empty());
    }
}
