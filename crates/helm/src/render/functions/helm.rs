//! Helm's own functions (`include`, `tpl`, `required`, `fail`, `lookup`),
//! and the Sprig and Helm functions this renderer refuses (yet): the clock,
//! `buildCustomCert`, password hashes, AES, the network. Randomness is in
//! `random`, keys and certificates in `crypto`.

use gotmpl::Value;

use super::{Cx, FnError, FnResult, P, s, spec, str_arg};

pub(super) const FUNCS: &[super::FuncSpec] = &[
    spec("include", &[P::Str, P::Any], None, include).shallow(),
    spec("tpl", &[P::Str, P::Any], None, tpl).shallow(),
    spec("required", &[P::Str, P::Any], None, |_, a| match &a[1] {
        Value::Nil => Err(FnError::Helm(str_arg(&a[0]).to_owned())),
        Value::String(v) if v.is_empty() => Err(FnError::Helm(str_arg(&a[0]).to_owned())),
        v => Ok(v.clone()),
    })
    .shallow(),
    spec("fail", &[P::Str], None, |_, a| {
        Err(FnError::Helm(str_arg(&a[0]).to_owned()))
    }),
    // What the render's `Lookup` finds (`helm template`'s finds nothing).
    spec(
        "lookup",
        &[P::Str, P::Str, P::Str, P::Str],
        None,
        |cx, a| {
            let found = cx
                .state
                .lookup
                .lookup(&crate::render::lookup::Query {
                    api_version: str_arg(&a[0]),
                    kind: str_arg(&a[1]),
                    namespace: str_arg(&a[2]),
                    name: str_arg(&a[3]),
                })
                .map_err(FnError::Call)?;
            Ok(crate::render::lookup::to_template_value(
                &serde_json::Value::Object(found),
            ))
        },
    ),
    nondeterministic("now"),
    nondeterministic("date"),
    nondeterministic("dateInZone"),
    nondeterministic("date_in_zone"),
    nondeterministic("dateModify"),
    nondeterministic("date_modify"),
    nondeterministic("mustDateModify"),
    nondeterministic("must_date_modify"),
    nondeterministic("htmlDate"),
    nondeterministic("htmlDateInZone"),
    nondeterministic("toDate"),
    nondeterministic("mustToDate"),
    nondeterministic("unixEpoch"),
    nondeterministic("ago"),
    nondeterministic("buildCustomCert"),
    nondeterministic("bcrypt"),
    nondeterministic("htpasswd"),
    nondeterministic("encryptAES"),
    nondeterministic("decryptAES"),
    nondeterministic("getHostByName"),
    not_implemented("duration"),
    not_implemented("durationRound"),
    not_implemented("derivePassword"),
    not_implemented("urlParse"),
    not_implemented("urlJoin"),
    not_implemented("toToml"),
    not_implemented("fromToml"),
    not_implemented("toYamlPretty"),
    not_implemented("wrap"),
    not_implemented("wrapWith"),
    not_implemented("abbrevboth"),
];

fn called_name(cx: &Cx<'_>) -> &'static str {
    match &cx.site.kind {
        crate::render::state::SiteKind::Call { func, .. } => func.name,
        _ => "?",
    }
}

/// A function of the clock, `buildCustomCert`, password hashes, AES or the
/// network, not implemented yet: refused when a template calls it (a
/// template that only mentions it still parses, as in Helm).
const fn nondeterministic(name: &'static str) -> super::FuncSpec {
    spec(name, &[], Some(P::Any), |cx, _| {
        Err(FnError::Call(format!(
            "function {:?} is not supported by tenant-worker's chart renderer yet (the clock, buildCustomCert, password hashes, AES and the network are not implemented)",
            called_name(cx)
        )))
    })
}

/// A Sprig or Helm function this renderer does not implement (yet).
const fn not_implemented(name: &'static str) -> super::FuncSpec {
    spec(name, &[], Some(P::Any), |cx, _| {
        Err(FnError::Call(format!(
            "function {:?} is not implemented by tenant-worker's chart renderer",
            called_name(cx)
        )))
    })
}

fn include(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    let name = str_arg(&a[0]);
    let Some(template) = cx.state.template() else {
        return Err(FnError::Call("templates are not ready".into()));
    };
    if template.lookup(name).is_none() {
        return Err(FnError::Call(format!(
            "template: no template {name:?} associated with template \"gotpl\""
        )));
    }
    if !cx.state.enter_include(name) {
        return Err(FnError::Call(format!(
            "rendering template has a nested reference name: {name}: unable to execute template"
        )));
    }
    let result = template.execute_template_to_string(name, &a[1]);
    cx.state.leave_include(name);
    match result {
        Ok(out) => Ok(s(&out)),
        Err(_) if cx.state.has_failure() => Err(FnError::Nested {
            prefix: String::new(),
        }),
        Err(e) => Err(FnError::Call(e.to_string())),
    }
}

/// Helm v4's `tpl`: the text parsed as a template named after the template
/// set (`gotpl`, whatever the calling file), in a copy of the chart's
/// templates, and executed with `vals` (any value: Helm v4 no longer reads
/// `.Template` from it).
fn tpl(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    let src = str_arg(&a[0]);
    let vals = &a[1];
    if crate::render::stack_used() > crate::render::STACK_BUDGET {
        return Err(FnError::Call(format!(
            "{}: tpl nested too deep",
            crate::render::TEMPLATE_SET_NAME
        )));
    }
    let wrap = |inner: String| format!("error during tpl function execution for {src:?}: {inner}");
    let out = crate::render::run_tpl(cx.state, src, vals).map_err(|e| match e {
        crate::render::TplError::Parse(p) => FnError::Call(format!(
            "cannot parse template {src:?}: template: {}:{}: {}",
            p.file, p.line, p.message
        )),
        crate::render::TplError::Nested => FnError::Nested {
            prefix: wrap(String::new()),
        },
        crate::render::TplError::Other(m) => FnError::Call(wrap(m)),
    })?;
    Ok(s(&out.replace("<no value>", "")))
}
