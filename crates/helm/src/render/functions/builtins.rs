//! Go's text/template builtins (`and`/`or` stay gotmpl's, which evaluate
//! their arguments lazily as Go does; Sprig's `slice` replaces Go's).

use std::cmp::Ordering;

use gotmpl::Value;

use super::{Cx, FnError, FnResult, P, s, spec};
use crate::render::gofmt;
use crate::render::objects::{Objects, go_type};

pub(super) const FUNCS: &[super::FuncSpec] = &[
    spec("eq", &[P::Any], Some(P::Any), eq),
    spec("ne", &[P::Any, P::Any], None, ne),
    spec("lt", &[P::Any, P::Any], None, |cx, a| {
        order(cx, a, |o| o == Ordering::Less)
    }),
    spec("le", &[P::Any, P::Any], None, |cx, a| {
        order(cx, a, |o| o != Ordering::Greater)
    }),
    spec("gt", &[P::Any, P::Any], None, |cx, a| {
        order(cx, a, |o| o == Ordering::Greater)
    }),
    spec("ge", &[P::Any, P::Any], None, |cx, a| {
        order(cx, a, |o| o != Ordering::Less)
    }),
    spec("not", &[P::Any], None, |_, a| {
        Ok(Value::Bool(!a[0].is_truthy()))
    })
    .shallow(),
    spec("len", &[P::Any], None, len).shallow(),
    spec("index", &[P::Any], Some(P::Any), index).shallow(),
    spec("print", &[], Some(P::Any), |cx, a| {
        Ok(s(&gofmt::sprint(cx.objects(), a)))
    }),
    spec("println", &[], Some(P::Any), |cx, a| {
        Ok(s(&gofmt::sprintln(cx.objects(), a)))
    }),
    spec("printf", &[P::Str], Some(P::Any), |cx, a| {
        Ok(s(&gofmt::sprintf(
            cx.objects(),
            a[0].as_str().unwrap_or(""),
            &a[1..],
        )))
    }),
    spec("html", &[], Some(P::Any), |cx, a| {
        Ok(s(&gotmpl::html_escape(&escaper_text(cx.objects(), a))))
    }),
    spec("js", &[], Some(P::Any), |cx, a| {
        Ok(s(&gotmpl::js_escape(&escaper_text(cx.objects(), a))))
    }),
    spec("urlquery", &[], Some(P::Any), |cx, a| {
        Ok(s(&gotmpl::url_encode(&escaper_text(cx.objects(), a))))
    }),
];

/// The text Go's escaper builtins work on: one string as is, else `fmt.Sprint`.
fn escaper_text(objects: &Objects, args: &[Value]) -> String {
    match args {
        [Value::String(s)] => s.to_string(),
        _ => gofmt::sprint(objects, args),
    }
}

#[derive(PartialEq, Clone, Copy)]
enum Basic {
    Bool,
    Int,
    Uint,
    Float,
    Str,
    Other,
    Invalid,
}

fn basic(objects: &Objects, v: &Value) -> Basic {
    if objects.kind(v).is_some() {
        return Basic::Other;
    }
    match v {
        Value::Nil => Basic::Invalid,
        Value::Bool(_) => Basic::Bool,
        Value::Int(_) => Basic::Int,
        Value::Uint(_) => Basic::Uint,
        Value::Float(_) => Basic::Float,
        Value::String(_) => Basic::Str,
        _ => Basic::Other,
    }
}

fn equal(objects: &Objects, a: &Value, b: &Value) -> Result<bool, FnError> {
    let (ka, kb) = (basic(objects, a), basic(objects, b));
    if ka != kb {
        return match (a, b) {
            (Value::Int(i), Value::Uint(u)) | (Value::Uint(u), Value::Int(i)) => {
                Ok(*i >= 0 && *i as u64 == *u)
            }
            (Value::Nil, _) | (_, Value::Nil) => Ok(false),
            _ => Err(FnError::Call("incompatible types for comparison".into())),
        };
    }
    Ok(match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Uint(x), Value::Uint(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        _ => {
            return Err(FnError::Call(format!(
                "non-comparable type {}",
                go_type(objects, a)
            )));
        }
    })
}

fn eq(cx: &Cx<'_>, args: &[Value]) -> FnResult {
    if args.len() < 2 {
        return Err(FnError::Call("missing argument for comparison".into()));
    }
    for b in &args[1..] {
        if equal(cx.objects(), &args[0], b)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn ne(cx: &Cx<'_>, args: &[Value]) -> FnResult {
    Ok(Value::Bool(!equal(cx.objects(), &args[0], &args[1])?))
}

fn order(cx: &Cx<'_>, args: &[Value], pred: fn(Ordering) -> bool) -> FnResult {
    let (a, b) = (&args[0], &args[1]);
    let (ka, kb) = (basic(cx.objects(), a), basic(cx.objects(), b));
    let o = match (a, b) {
        (Value::Int(x), Value::Uint(y)) => {
            if *x < 0 {
                Ordering::Less
            } else {
                (*x as u64).cmp(y)
            }
        }
        (Value::Uint(x), Value::Int(y)) => {
            if *y < 0 {
                Ordering::Greater
            } else {
                x.cmp(&(*y as u64))
            }
        }
        _ if ka == Basic::Invalid || kb == Basic::Invalid || ka == Basic::Other => {
            return Err(FnError::Call("invalid type for comparison".into()));
        }
        _ if ka != kb => return Err(FnError::Call("incompatible types for comparison".into())),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Uint(x), Value::Uint(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => return Err(FnError::Call("invalid type for comparison".into())),
    };
    Ok(Value::Bool(pred(o)))
}

fn len(cx: &Cx<'_>, args: &[Value]) -> FnResult {
    match &args[0] {
        Value::Nil => Err(FnError::Call("len of nil pointer".into())),
        Value::String(s) => Ok(Value::Int(s.len() as i64)),
        Value::List(l) => Ok(Value::Int(l.len() as i64)),
        Value::Map(m) => Ok(Value::Int(m.len() as i64)),
        v => Err(FnError::Call(format!(
            "len of type {}",
            go_type(cx.objects(), v)
        ))),
    }
}

fn index(cx: &Cx<'_>, args: &[Value]) -> FnResult {
    let mut item = args[0].clone();
    if matches!(item, Value::Nil) {
        return Err(FnError::Call("index of untyped nil".into()));
    }
    for (n, idx) in args[1..].iter().enumerate() {
        // Shallow: each level is made current as it is reached.
        item = cx.state.maps.current(&item);
        if n > 0 && matches!(item, Value::Nil) {
            return Err(FnError::Call("index of nil pointer".into()));
        }
        let position = |len: usize| -> Result<usize, FnError> {
            let i = match idx {
                Value::Int(i) => *i,
                Value::Uint(u) => *u as i64,
                Value::Nil => {
                    return Err(FnError::Call("cannot index slice/array with nil".into()));
                }
                v => {
                    return Err(FnError::Call(format!(
                        "cannot index slice/array with type {}",
                        go_type(cx.objects(), v)
                    )));
                }
            };
            if i < 0 || i as usize >= len {
                return Err(FnError::Call(format!("index out of range: {i}")));
            }
            Ok(i as usize)
        };
        item = match &item {
            Value::List(l) => l[position(l.len())?].clone(),
            Value::String(st) => Value::Int(i64::from(st.as_bytes()[position(st.len())?])),
            Value::Map(m) => match idx {
                Value::String(k) => m.get(k.as_ref()).cloned().unwrap_or(Value::Nil),
                Value::Nil => m.get("").cloned().unwrap_or(Value::Nil),
                v => {
                    return Err(FnError::Call(format!(
                        "value has type {}; should be string",
                        go_type(cx.objects(), v)
                    )));
                }
            },
            v => {
                return Err(FnError::Call(format!(
                    "can't index item of type {}",
                    go_type(cx.objects(), v)
                )));
            }
        };
    }
    Ok(item)
}
