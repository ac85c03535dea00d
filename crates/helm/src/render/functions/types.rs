//! Sprig's defaults and reflection functions.

use gotmpl::Value;

use super::{Cx, FnResult, P, deep_equal, is_empty, s, spec, str_arg};
use crate::render::objects::{go_kind, go_type};

pub(super) const FUNCS: &[super::FuncSpec] = &[
    spec("default", &[P::Any], Some(P::Any), |cx, a| {
        Ok(match a.get(1) {
            Some(given) if !is_empty(cx.objects(), given) => given.clone(),
            _ => a[0].clone(),
        })
    })
    .shallow(),
    spec("empty", &[P::Any], None, |cx, a| {
        Ok(Value::Bool(is_empty(cx.objects(), &a[0])))
    })
    .shallow(),
    spec("coalesce", &[], Some(P::Any), |cx, a| {
        Ok(a.iter()
            .find(|v| !is_empty(cx.objects(), v))
            .cloned()
            .unwrap_or(Value::Nil))
    })
    .shallow(),
    spec("all", &[], Some(P::Any), |cx, a| {
        Ok(Value::Bool(a.iter().all(|v| !is_empty(cx.objects(), v))))
    })
    .shallow(),
    spec("any", &[], Some(P::Any), |cx, a| {
        Ok(Value::Bool(a.iter().any(|v| !is_empty(cx.objects(), v))))
    })
    .shallow(),
    spec("ternary", &[P::Any, P::Any, P::Bool], None, |_, a| {
        Ok(if a[2].is_truthy() {
            a[0].clone()
        } else {
            a[1].clone()
        })
    })
    .shallow(),
    spec("typeOf", &[P::Any], None, |cx, a| {
        Ok(s(&go_type(cx.objects(), &a[0])))
    })
    .shallow(),
    spec("typeIs", &[P::Str, P::Any], None, |cx, a| {
        Ok(Value::Bool(go_type(cx.objects(), &a[1]) == str_arg(&a[0])))
    })
    .shallow(),
    spec("typeIsLike", &[P::Str, P::Any], None, |cx, a| {
        let t = go_type(cx.objects(), &a[1]);
        let want = str_arg(&a[0]);
        Ok(Value::Bool(t == want || format!("*{t}") == want))
    })
    .shallow(),
    spec("kindOf", &[P::Any], None, |cx, a| {
        Ok(s(go_kind(cx.objects(), &a[0])))
    })
    .shallow(),
    spec("kindIs", &[P::Str, P::Any], None, |cx, a| {
        Ok(Value::Bool(go_kind(cx.objects(), &a[1]) == str_arg(&a[0])))
    })
    .shallow(),
    spec(
        "deepEqual",
        &[P::Any, P::Any],
        None,
        |cx: &Cx<'_>, a: &[Value]| -> FnResult {
            Ok(Value::Bool(deep_equal(cx.objects(), &a[0], &a[1])))
        },
    ),
];
