//! The template functions: Go's builtins, Sprig's and Helm's, each with its
//! Go signature (so a `float64` passed where Go wants an `int` is refused as
//! Helm refuses it) and Go semantics.
//!
//! Every call goes through [`crate::render::state`], which checks
//! the arity and argument types and turns a failure into an error that names
//! the call site.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use gotmpl::Value;

use super::objects::{Kind, Objects};
use super::state::{Site, State};

mod builtins;
mod crypto;
mod dicts;
mod encoding;
mod helm;
mod lists;
mod math;
mod random;
mod regex_semver;
mod strings;
mod types;

pub(crate) use regex_semver::version_of as semver_of;

/// Go parameter types the functions declare (what `validateType` checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum P {
    /// `interface{}`: anything, nil included.
    Any,
    /// `string`.
    Str,
    /// `int` (or `int64`: gotmpl does not tell them apart).
    Int,
    /// `bool`.
    Bool,
    /// `map[string]interface{}`; a missing value is a nil map.
    Map,
}

impl P {
    pub(crate) fn go_name(self) -> &'static str {
        match self {
            P::Any => "interface {}",
            P::Str => "string",
            P::Int => "int",
            P::Bool => "bool",
            P::Map => "map[string]interface {}",
        }
    }
}

/// Why a function failed.
#[derive(Debug)]
pub(crate) enum FnError {
    /// An error the function returned: Go reports `error calling NAME: MSG`.
    Call(String),
    /// `required` or `fail`: Helm shows the message alone.
    Helm(String),
    /// A nested template (`include`, `tpl`) failed and recorded the failure.
    Nested { prefix: String },
}

pub(crate) type FnResult = Result<Value, FnError>;

/// What a function sees of the render besides its arguments.
pub(crate) struct Cx<'a> {
    pub state: &'a Arc<State>,
    pub site: &'a Site,
}

impl Cx<'_> {
    pub(crate) fn objects(&self) -> &Objects {
        &self.state.objects
    }
}

/// A function and its Go signature.
pub(crate) struct FuncSpec {
    pub name: &'static str,
    pub params: &'static [P],
    /// The type of a trailing `...T` parameter.
    pub variadic: Option<P>,
    pub f: fn(&Cx<'_>, &[Value]) -> FnResult,
    /// The function reads only the top level of its arguments (their keys,
    /// length, emptiness, type) and reads anything deeper through the map
    /// overlay, so its arguments need not be resolved all the way down
    /// (which costs the size of the value: `include "x" $` would walk the
    /// whole root context, files included). See `maps`.
    pub shallow: bool,
}

impl FuncSpec {
    /// This function with [`FuncSpec::shallow`] set.
    pub(crate) const fn shallow(mut self) -> Self {
        self.shallow = true;
        self
    }
}

/// Shorthand for the specs tables of the family modules.
pub(crate) const fn spec(
    name: &'static str,
    params: &'static [P],
    variadic: Option<P>,
    f: fn(&Cx<'_>, &[Value]) -> FnResult,
) -> FuncSpec {
    FuncSpec {
        name,
        params,
        variadic,
        f,
        shallow: false,
    }
}

static REGISTRY: LazyLock<HashMap<&'static str, &'static FuncSpec>> = LazyLock::new(|| {
    let mut m = HashMap::new();
    for table in [
        builtins::FUNCS,
        crypto::FUNCS,
        strings::FUNCS,
        lists::FUNCS,
        dicts::FUNCS,
        math::FUNCS,
        random::FUNCS,
        regex_semver::FUNCS,
        types::FUNCS,
        encoding::FUNCS,
        helm::FUNCS,
    ] {
        for f in table {
            m.insert(f.name, f);
        }
    }
    m
});

/// The function called `name` in templates.
pub(crate) fn lookup(name: &str) -> Option<&'static FuncSpec> {
    REGISTRY.get(name).copied()
}

// --- conversions shared by the families, with Go's (and spf13/cast's) rules ---

pub(crate) fn s(v: &str) -> Value {
    Value::String(v.into())
}

pub(crate) fn list(items: Vec<Value>) -> Value {
    Value::List(items.into())
}

pub(crate) fn str_arg(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

pub(crate) fn int_arg(v: &Value) -> i64 {
    v.as_int().unwrap_or(0)
}

/// Sprig's `strval`: strings as they are, `[]byte` as text, Stringers by
/// their `String()`, everything else as `fmt.Sprintf("%v")`.
pub(crate) fn strval(objects: &Objects, v: &Value) -> String {
    if let Value::String(s) = v {
        return s.to_string();
    }
    if let Some(t) = objects.bytes_text(v) {
        return t;
    }
    super::gofmt::to_v(objects, v)
}

/// Sprig's `empty`: the zero value of its type (structs are never empty).
pub(crate) fn is_empty(objects: &Objects, v: &Value) -> bool {
    if matches!(
        objects.kind(v),
        Some(Kind::KubeVersion | Kind::HelmVersion | Kind::Capabilities | Kind::Semver)
    ) {
        return false;
    }
    match v {
        Value::Nil => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Uint(u) => *u == 0,
        Value::Float(f) => *f == 0.0,
        Value::String(s) => s.is_empty(),
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
        Value::Function(_) => false,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)` (base from the prefix, `_` separators).
fn parse_int_base0(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits, prefixed) =
        if let Some(d) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, d, true)
        } else if let Some(d) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
            (8, d, true)
        } else if let Some(d) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
            (2, d, true)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..], true)
        } else {
            (10, body, false)
        };
    // Underscores are only allowed with a base prefix, between digits.
    let clean: String = if prefixed {
        if digits.starts_with('_') && radix == 8 && !body.starts_with("0o")
            || digits.ends_with('_')
            || digits.contains("__")
        {
            return None;
        }
        digits.replace('_', "")
    } else {
        if digits.contains('_') {
            return None;
        }
        digits.to_owned()
    };
    if clean.is_empty() {
        return None;
    }
    let m = i128::from_str_radix(&clean, radix).ok()?;
    let v = if neg { -m } else { m };
    i64::try_from(v).ok()
}

/// spf13/cast's `ToInt64`: numbers truncated, numeric strings parsed (a
/// `.0` suffix dropped), booleans 1/0, anything else 0.
pub(crate) fn to_int64(objects: &Objects, v: &Value) -> i64 {
    if objects.kind(v).is_some() {
        return 0;
    }
    match v {
        Value::Int(i) => *i,
        Value::Uint(u) => *u as i64,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::String(s) => {
            let t = trim_zero_decimal(s);
            parse_int_base0(t).unwrap_or(0)
        }
        _ => 0,
    }
}

fn trim_zero_decimal(s: &str) -> &str {
    let Some(dot) = s.rfind('.') else { return s };
    if dot + 1 < s.len() && s[dot + 1..].bytes().all(|b| b == b'0') {
        &s[..dot]
    } else {
        s
    }
}

/// spf13/cast's `ToFloat64`.
pub(crate) fn to_float64(objects: &Objects, v: &Value) -> f64 {
    if objects.kind(v).is_some() {
        return 0.0;
    }
    match v {
        Value::Int(i) => *i as f64,
        Value::Uint(u) => *u as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => s
            .parse::<f64>()
            .ok()
            .filter(|_| !s.contains('_'))
            .unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Go's `reflect.DeepEqual` on template values: equal types and contents
/// (so `1` from a template and `1` from values, an `int` and a `float64`,
/// differ).
pub(crate) fn deep_equal(objects: &Objects, a: &Value, b: &Value) -> bool {
    if objects.kind(a) != objects.kind(b) {
        return false;
    }
    match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Uint(x), Value::Uint(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(p, q)| deep_equal(objects, p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| deep_equal(objects, p, q)))
        }
        _ => false,
    }
}

/// The elements of a Go slice or array (`reflect.ValueOf(v).Kind()` is
/// slice), or `None` with the kind name for Sprig's "Cannot X on type K".
pub(crate) fn slice_items(objects: &Objects, v: &Value) -> Result<Vec<Value>, String> {
    match v {
        Value::List(items) => Ok(items.to_vec()),
        _ => Err(super::objects::go_kind(objects, v).to_owned()),
    }
}

/// A map argument (`map[string]interface{}`), or an empty one for nil.
pub(crate) fn map_arg(v: &Value) -> std::collections::BTreeMap<Arc<str>, Value> {
    match v {
        Value::Map(m) => (**m).clone(),
        _ => Default::default(),
    }
}

pub(crate) fn map_value(m: std::collections::BTreeMap<Arc<str>, Value>) -> Value {
    Value::Map(Arc::new(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cast_rules() {
        let o = Objects::default();
        assert_eq!(to_int64(&o, &s("12")), 12);
        assert_eq!(to_int64(&o, &s("3.0")), 3);
        assert_eq!(to_int64(&o, &s("3.7")), 0);
        assert_eq!(to_int64(&o, &s("0x10")), 16);
        assert_eq!(to_int64(&o, &s("010")), 8);
        assert_eq!(to_int64(&o, &Value::Float(3.9)), 3);
        assert_eq!(to_int64(&o, &Value::Bool(true)), 1);
        assert_eq!(to_float64(&o, &s("1.5")), 1.5);
        assert_eq!(to_float64(&o, &s("x")), 0.0);
    }

    #[test]
    fn deep_equal_compares_types() {
        let o = Objects::default();
        assert!(!deep_equal(&o, &Value::Int(1), &Value::Float(1.0)));
        assert!(deep_equal(&o, &list(vec![s("a")]), &list(vec![s("a")])));
        assert!(is_empty(&o, &Value::Float(0.0)) && !is_empty(&o, &s("x")));
    }

    #[test]
    fn every_function_name_is_unique_and_found() {
        let total: usize = [
            builtins::FUNCS,
            crypto::FUNCS,
            strings::FUNCS,
            lists::FUNCS,
            dicts::FUNCS,
            math::FUNCS,
            random::FUNCS,
            regex_semver::FUNCS,
            types::FUNCS,
            encoding::FUNCS,
            helm::FUNCS,
        ]
        .iter()
        .map(|t| t.len())
        .sum();
        assert_eq!(REGISTRY.len(), total, "a function name is defined twice");
        assert!(lookup("include").is_some() && lookup("nope").is_none());
    }
}
