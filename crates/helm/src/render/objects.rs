//! Values that are Go types with methods in Helm (`.Files`, `.Capabilities`,
//! a file's `[]byte`, a `semver` result): gotmpl values are plain maps and
//! lists, so the renderer remembers which ones stand for such a type, by the
//! identity of their shared allocation, to give them Go's methods, printing
//! and JSON.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use by_address::ByAddress;
use gotmpl::Value;

/// The Go type a registered value stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Helm's `files` (`map[string][]byte` with `Get`, `Glob`, `AsConfig`...).
    Files,
    /// A `[]byte` (a list of byte values): prints as numbers, converts to text.
    Bytes,
    /// A `[]string` (what `splitList`, `keys`, `sortAlpha`... return).
    Strings,
    /// `*common.Capabilities`.
    Capabilities,
    /// `common.KubeVersion` (its `String()` is the version).
    KubeVersion,
    /// `common.VersionSet` (a list with `Has`).
    ApiVersions,
    /// Helm's `BuildInfo`.
    HelmVersion,
    /// `*semver.Version` from the `semver` function.
    Semver,
}

impl Kind {
    /// The Go type name, for `typeOf` and error messages.
    pub(crate) fn go_type(self) -> &'static str {
        match self {
            Kind::Files => "engine.files",
            Kind::Bytes => "[]uint8",
            Kind::Strings => "[]string",
            Kind::Capabilities => "*common.Capabilities",
            Kind::KubeVersion => "common.KubeVersion",
            Kind::ApiVersions => "common.VersionSet",
            Kind::HelmVersion => "version.BuildInfo",
            Kind::Semver => "*semver.Version",
        }
    }

    /// Struct fields in declaration order (how Go prints a struct), if a struct.
    pub(crate) fn struct_fields(self) -> Option<&'static [&'static str]> {
        match self {
            Kind::Capabilities => Some(&["KubeVersion", "APIVersions", "HelmVersion"]),
            Kind::KubeVersion => Some(&["Version", "Major", "Minor"]),
            Kind::HelmVersion => Some(&[
                "Version",
                "GitCommit",
                "GitTreeState",
                "GoVersion",
                "KubeClientVersion",
            ]),
            _ => None,
        }
    }
}

/// A registered allocation: equal and hashed by address, and owning the
/// allocation, so that its address cannot be given to another value while
/// the registry lives (see `maps` for the same invariant).
#[derive(PartialEq, Eq, Hash)]
enum Alloc {
    Map(ByAddress<Arc<BTreeMap<Arc<str>, Value>>>),
    List(ByAddress<Arc<[Value]>>),
}

impl Alloc {
    fn of(v: &Value) -> Option<Alloc> {
        match v {
            Value::Map(m) => Some(Alloc::Map(ByAddress(m.clone()))),
            Value::List(l) => Some(Alloc::List(ByAddress(l.clone()))),
            _ => None,
        }
    }
}

/// The registry of one render: which values stand for which Go type.
#[derive(Default)]
pub(crate) struct Objects {
    kinds: Mutex<HashMap<Alloc, Kind>>,
}

impl Objects {
    /// Marks `v` (a map or a list) as a value of Go type `kind` and returns it.
    pub(crate) fn register(&self, v: Value, kind: Kind) -> Value {
        if let Some(a) = Alloc::of(&v) {
            self.kinds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(a, kind);
        }
        v
    }

    /// The Go type `v` stands for, if it was registered.
    pub(crate) fn kind(&self, v: &Value) -> Option<Kind> {
        let a = Alloc::of(v)?;
        self.kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&a)
            .copied()
    }

    /// The text of a `[]byte` value (lossy for bytes that are not UTF-8).
    pub(crate) fn bytes_text(&self, v: &Value) -> Option<String> {
        if self.kind(v) != Some(Kind::Bytes) {
            return None;
        }
        let Value::List(items) = v else { return None };
        let bytes: Vec<u8> = items
            .iter()
            .filter_map(|b| b.as_int())
            .map(|b| b as u8)
            .collect();
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The `String()` of a value whose Go type is a `fmt.Stringer`.
    pub(crate) fn stringer(&self, v: &Value) -> Option<String> {
        match self.kind(v)? {
            Kind::KubeVersion => v
                .field("Version")
                .and_then(Value::as_str)
                .map(str::to_owned),
            Kind::Semver => v
                .field("Original")
                .and_then(Value::as_str)
                .map(|_| semver_string(v)),
            _ => None,
        }
    }
}

/// `(*semver.Version).String()`: the canonical `major.minor.patch[-pre][+meta]`.
pub(crate) fn semver_string(v: &Value) -> String {
    let n = |f: &str| v.field(f).and_then(Value::as_int).unwrap_or(0);
    let s = |f: &str| v.field(f).and_then(Value::as_str).unwrap_or("").to_owned();
    let mut out = format!("{}.{}.{}", n("Major"), n("Minor"), n("Patch"));
    let pre = s("Prerelease");
    if !pre.is_empty() {
        out.push('-');
        out.push_str(&pre);
    }
    let meta = s("Metadata");
    if !meta.is_empty() {
        out.push('+');
        out.push_str(&meta);
    }
    out
}

/// Strings as a registered `[]string` value.
pub(crate) fn strings_value(objects: &Objects, items: Vec<String>) -> Value {
    let list: Vec<Value> = items.into_iter().map(|s| Value::String(s.into())).collect();
    objects.register(Value::List(Arc::from(list)), Kind::Strings)
}

/// A byte string as a registered `[]byte` value.
pub(crate) fn bytes_value(objects: &Objects, data: &[u8]) -> Value {
    let list: Vec<Value> = data.iter().map(|b| Value::Int(i64::from(*b))).collect();
    objects.register(Value::List(Arc::from(list)), Kind::Bytes)
}

/// Go's type name of a template value (`typeOf`, error messages). Numbers
/// from values and YAML/JSON are `float64`; template integer literals and
/// Sprig arithmetic are reported as `int` and `int64` by Go, which gotmpl does
/// not tell apart: both are `int` here.
pub(crate) fn go_type(objects: &Objects, v: &Value) -> String {
    if let Some(k) = objects.kind(v) {
        return k.go_type().to_owned();
    }
    match v {
        Value::Nil => "<nil>".into(),
        Value::Bool(_) => "bool".into(),
        Value::Int(_) => "int".into(),
        Value::Uint(_) => "uint64".into(),
        Value::Float(_) => "float64".into(),
        Value::String(_) => "string".into(),
        Value::List(_) => "[]interface {}".into(),
        Value::Map(_) => "map[string]interface {}".into(),
        Value::Function(_) => "func".into(),
    }
}

/// Go's `reflect.Kind` name of a template value (`kindOf`).
pub(crate) fn go_kind(objects: &Objects, v: &Value) -> &'static str {
    match objects.kind(v) {
        Some(Kind::Files) => return "map",
        Some(Kind::Bytes | Kind::Strings | Kind::ApiVersions) => return "slice",
        Some(Kind::Capabilities | Kind::Semver) => return "ptr",
        Some(Kind::KubeVersion | Kind::HelmVersion) => return "struct",
        None => {}
    }
    match v {
        Value::Nil => "invalid",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint64",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::List(_) => "slice",
        Value::Map(_) => "map",
        Value::Function(_) => "func",
    }
}
