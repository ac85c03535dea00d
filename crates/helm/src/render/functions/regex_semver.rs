//! Sprig's regular expressions (Go's RE2 syntax, which the `regex` crate
//! shares) and semantic versions.

use std::sync::Arc;

use gotmpl::Value;
use regex::Regex;

use super::{Cx, FnError, FnResult, P, int_arg, s, spec, str_arg};
use crate::render::objects::{Kind, strings_value};
use crate::render::semver::{Constraints, Version};

pub(super) const FUNCS: &[super::FuncSpec] = &[
    spec("regexMatch", &[P::Str, P::Str], None, |_, a| {
        Ok(Value::Bool(
            Regex::new(str_arg(&a[0])).is_ok_and(|r| r.is_match(str_arg(&a[1]))),
        ))
    }),
    spec("mustRegexMatch", &[P::Str, P::Str], None, |_, a| {
        Ok(Value::Bool(re(&a[0], false)?.is_match(str_arg(&a[1]))))
    }),
    spec("regexFindAll", &[P::Str, P::Str, P::Int], None, |cx, a| {
        find_all(cx, a, true)
    }),
    spec(
        "mustRegexFindAll",
        &[P::Str, P::Str, P::Int],
        None,
        |cx, a| find_all(cx, a, false),
    ),
    spec("regexFind", &[P::Str, P::Str], None, |_, a| {
        Ok(s(re(&a[0], true)?
            .find(str_arg(&a[1]))
            .map_or("", |m| m.as_str())))
    }),
    spec("mustRegexFind", &[P::Str, P::Str], None, |_, a| {
        Ok(s(re(&a[0], false)?
            .find(str_arg(&a[1]))
            .map_or("", |m| m.as_str())))
    }),
    spec(
        "regexReplaceAll",
        &[P::Str, P::Str, P::Str],
        None,
        |_, a| {
            Ok(s(
                &re(&a[0], true)?.replace_all(str_arg(&a[1]), str_arg(&a[2]))
            ))
        },
    ),
    spec(
        "mustRegexReplaceAll",
        &[P::Str, P::Str, P::Str],
        None,
        |_, a| {
            Ok(s(
                &re(&a[0], false)?.replace_all(str_arg(&a[1]), str_arg(&a[2]))
            ))
        },
    ),
    spec(
        "regexReplaceAllLiteral",
        &[P::Str, P::Str, P::Str],
        None,
        |_, a| {
            Ok(s(&re(&a[0], true)?.replace_all(
                str_arg(&a[1]),
                regex::NoExpand(str_arg(&a[2])),
            )))
        },
    ),
    spec(
        "mustRegexReplaceAllLiteral",
        &[P::Str, P::Str, P::Str],
        None,
        |_, a| {
            Ok(s(&re(&a[0], false)?.replace_all(
                str_arg(&a[1]),
                regex::NoExpand(str_arg(&a[2])),
            )))
        },
    ),
    spec("regexSplit", &[P::Str, P::Str, P::Int], None, |cx, a| {
        split(cx, a, true)
    }),
    spec(
        "mustRegexSplit",
        &[P::Str, P::Str, P::Int],
        None,
        |cx, a| split(cx, a, false),
    ),
    spec("regexQuoteMeta", &[P::Str], None, |_, a| {
        Ok(s(&quote_meta(str_arg(&a[0]))))
    }),
    spec("semver", &[P::Str], None, semver),
    spec("semverCompare", &[P::Str, P::Str], None, |_, a| {
        let c = Constraints::parse(str_arg(&a[0])).map_err(FnError::Call)?;
        let v = Version::parse(str_arg(&a[1])).map_err(FnError::Call)?;
        Ok(Value::Bool(c.check(&v)))
    }),
];

/// Compiles a Go regular expression; `panics` is how the non-`must` forms
/// fail (`regexp.MustCompile`), which Go reports with the pattern.
fn re(pattern: &Value, panics: bool) -> Result<Regex, FnError> {
    let p = str_arg(pattern);
    Regex::new(p).map_err(|e| {
        let msg = e.to_string().lines().last().unwrap_or("").trim().to_owned();
        if panics {
            FnError::Call(format!(
                "regexp: Compile({}): error parsing regexp: {msg}",
                go_backquote(p)
            ))
        } else {
            FnError::Call(format!("error parsing regexp: {msg}"))
        }
    })
}

fn go_backquote(p: &str) -> String {
    if p.contains('`') {
        crate::render::gofmt::go_quote(p)
    } else {
        format!("`{p}`")
    }
}

fn find_all(cx: &Cx<'_>, a: &[Value], panics: bool) -> FnResult {
    let r = re(&a[0], panics)?;
    let n = int_arg(&a[2]);
    let found = r.find_iter(str_arg(&a[1])).map(|m| m.as_str().to_owned());
    Ok(strings_value(
        cx.objects(),
        if n < 0 {
            found.collect()
        } else {
            found.take(n as usize).collect()
        },
    ))
}

fn split(cx: &Cx<'_>, a: &[Value], panics: bool) -> FnResult {
    let r = re(&a[0], panics)?;
    let text = str_arg(&a[1]);
    let n = int_arg(&a[2]);
    if n == 0 {
        return Ok(strings_value(cx.objects(), Vec::new()));
    }
    if !str_arg(&a[0]).is_empty() && text.is_empty() {
        return Ok(strings_value(cx.objects(), vec![String::new()]));
    }
    let parts: Vec<String> = if n < 0 {
        r.split(text).map(str::to_owned).collect()
    } else {
        r.splitn(text, n as usize).map(str::to_owned).collect()
    };
    Ok(strings_value(cx.objects(), parts))
}

/// Go's `regexp.QuoteMeta`.
fn quote_meta(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn semver(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    let v = Version::parse(str_arg(&a[0])).map_err(FnError::Call)?;
    let m: std::collections::BTreeMap<Arc<str>, Value> = [
        ("Major", Value::Uint(v.major)),
        ("Minor", Value::Uint(v.minor)),
        ("Patch", Value::Uint(v.patch)),
        ("Prerelease", s(&v.pre)),
        ("Metadata", s(&v.meta)),
        ("Original", s(&v.original)),
    ]
    .into_iter()
    .map(|(k, x)| (Arc::from(k), x))
    .collect();
    Ok(cx.objects().register(Value::Map(Arc::new(m)), Kind::Semver))
}

/// The version a registered `semver` value stands for.
pub(crate) fn version_of(v: &Value) -> Version {
    let n = |f: &str| match v.field(f) {
        Some(Value::Uint(u)) => *u,
        _ => 0,
    };
    let t = |f: &str| v.field(f).and_then(Value::as_str).unwrap_or("").to_owned();
    Version {
        major: n("Major"),
        minor: n("Minor"),
        patch: n("Patch"),
        pre: t("Prerelease"),
        meta: t("Metadata"),
        original: t("Original"),
    }
}
