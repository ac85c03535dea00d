//! The state of one render, and the internal functions the rewritten
//! templates call (see `rewrite`): `__call` runs a template function with
//! Go's argument checks, `__field` evaluates a field chain with Go's rules
//! (including methods of Helm's types), `__print` prints like Go, `__range`
//! and `__resolve` prepare values for gotmpl's own `range`, `if` and `with`,
//! and `__fail` reports what Go reports only when executed. Failures are
//! recorded here with the call site, since gotmpl's runtime errors carry no
//! position.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};

use gotmpl::{TemplateError, Value};

use super::budget::{RenderBudget, Spending};
use super::functions::{Cx, FnError, FuncSpec, P};
use super::gofmt;
use super::maps::MapOverlay;
use super::objects::{Kind, Objects, go_type};

/// A position in a template file, as Go reports it (line from 1, column as
/// a byte offset in the line from 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loc {
    pub file: Arc<str>,
    pub line: usize,
    pub col: usize,
}

/// How an argument was written, which decides Go's message for a value of
/// the wrong type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A field chain or `.`: a nil there is a nil `interface{}`.
    Field,
    /// A variable or a parenthesized pipeline: a nil there is no value.
    Value,
    StrLit,
    NumLit,
    BoolLit,
    NilLit,
}

#[derive(Debug, Clone)]
pub(crate) struct ArgInfo {
    pub loc: Loc,
    pub context: String,
    pub origin: Origin,
}

pub(crate) enum SiteKind {
    Call {
        func: &'static FuncSpec,
        args: Vec<ArgInfo>,
        piped: bool,
        ident: Loc,
    },
    Field {
        fields: Vec<String>,
        base_nil_errors: bool,
    },
    Range,
    /// An action whose value is printed.
    Print,
    /// The start of an iteration of a `range` body whose literal text (not
    /// counting nested `range`s) is this many bytes.
    Tick(usize),
    Fail(String),
}

/// A place in a template where something can fail at run time.
pub(crate) struct Site {
    pub loc: Loc,
    /// The template being executed there (a file or a `define`).
    pub exec: Arc<str>,
    /// Go's text of the node (`include "x" .`), shown in messages.
    pub context: String,
    pub kind: SiteKind,
}

#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub loc: Loc,
    pub exec: Arc<str>,
    pub context: String,
    pub prefix: String,
}

/// A recorded failure: the frames from the innermost call site out, and
/// the innermost message.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub frames: Vec<Frame>,
    pub message: String,
    /// From `required` or `fail`: Helm shows the message alone.
    pub helm: bool,
}

/// One render.
pub(crate) struct State {
    pub objects: Objects,
    pub maps: MapOverlay,
    spending: Spending,
    sites: RwLock<Vec<Arc<Site>>>,
    template: RwLock<Option<Arc<gotmpl::Template>>>,
    failure: Mutex<Option<Failure>>,
    includes: Mutex<HashMap<String, usize>>,
    /// What `lookup` reads.
    pub lookup: Arc<dyn super::Lookup>,
}

/// Helm's limit on nested `include`s of one template name.
const MAX_INCLUDE_DEPTH: usize = 1000;

fn internal_error() -> TemplateError {
    // The recorded failure carries the details; gotmpl only has to stop.
    TemplateError::Exec("template failed (see the recorded failure)".into())
}

impl State {
    pub(crate) fn new(
        objects: Objects,
        budget: RenderBudget,
        lookup: Arc<dyn super::Lookup>,
    ) -> Self {
        State {
            objects,
            maps: MapOverlay::default(),
            spending: Spending::start(budget),
            sites: RwLock::new(Vec::new()),
            template: RwLock::new(None),
            failure: Mutex::new(None),
            includes: Mutex::new(HashMap::new()),
            lookup,
        }
    }

    pub(crate) fn add_site(&self, site: Site) -> i64 {
        let mut sites = self.sites.write().unwrap_or_else(|e| e.into_inner());
        sites.push(Arc::new(site));
        (sites.len() - 1) as i64
    }

    /// The site named by an internal function's first argument.
    fn site_of(&self, args: &[Value]) -> gotmpl::Result<Arc<Site>> {
        let i = args
            .first()
            .and_then(Value::as_int)
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(internal_error)?;
        self.sites
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(i)
            .cloned()
            .ok_or_else(internal_error)
    }

    pub(crate) fn set_template(&self, t: gotmpl::Template) {
        *self.template.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(t));
    }

    /// Makes `t` the template set `include` uses (for `tpl`), returning the previous one.
    pub(crate) fn swap_template(
        &self,
        t: Option<Arc<gotmpl::Template>>,
    ) -> Option<Arc<gotmpl::Template>> {
        std::mem::replace(
            &mut *self.template.write().unwrap_or_else(|e| e.into_inner()),
            t,
        )
    }

    pub(crate) fn template(&self) -> Option<Arc<gotmpl::Template>> {
        self.template
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn take_failure(&self) -> Option<Failure> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    pub(crate) fn has_failure(&self) -> bool {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Records a failure at `loc` (or wraps the one a nested template
    /// recorded) and returns the error that stops gotmpl.
    fn fail(
        &self,
        site: &Site,
        loc: &Loc,
        context: &str,
        prefix: String,
        message: Option<(String, bool)>,
    ) -> TemplateError {
        let frame = Frame {
            loc: loc.clone(),
            exec: site.exec.clone(),
            context: context.to_owned(),
            prefix,
        };
        let mut slot = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        match (slot.as_mut(), message) {
            (Some(f), None) => f.frames.push(frame),
            (_, Some((message, helm))) => {
                *slot = Some(Failure {
                    frames: vec![frame],
                    message,
                    helm,
                })
            }
            (None, None) => {
                *slot = Some(Failure {
                    frames: vec![frame],
                    message: "nested template failed".into(),
                    helm: false,
                })
            }
        }
        internal_error()
    }

    /// Enters an `include` of `name`; `false` when nested too deep: more
    /// than Helm's limit for one name, or so deep that the rendering
    /// thread's stack would overflow.
    pub(crate) fn enter_include(&self, name: &str) -> bool {
        let mut inc = self.includes.lock().unwrap_or_else(|e| e.into_inner());
        let n = inc.entry(name.to_owned()).or_insert(0);
        if *n > MAX_INCLUDE_DEPTH || super::stack_used() > super::STACK_BUDGET {
            return false;
        }
        *n += 1;
        true
    }

    pub(crate) fn leave_include(&self, name: &str) {
        if let Some(n) = self
            .includes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(name)
        {
            *n = n.saturating_sub(1);
        }
    }

    /// The internal functions of a render, closing over a weak handle (the
    /// template set they belong to is owned by the state).
    pub(crate) fn internal_funcs(self: &Arc<Self>) -> gotmpl::FuncMap {
        let mut m = gotmpl::FuncMap::new();
        type Internal = fn(&Arc<State>, &[Value]) -> gotmpl::Result<Value>;
        let entries: [(&str, Internal); 7] = [
            ("__call", State::call),
            ("__field", State::field),
            ("__print", State::print),
            ("__tick", State::tick),
            ("__range", State::range),
            // `if`, `with`, `template`, `and`/`or` look at the top level only
            // (truthiness, the new dot); deeper reads go through the overlay.
            ("__resolve", |st, a| {
                Ok(st.maps.current(a.first().unwrap_or(&Value::Nil)))
            }),
            ("__fail", State::fail_site),
        ];
        for (name, f) in entries {
            let weak: Weak<State> = Arc::downgrade(self);
            m.insert(
                name.to_owned(),
                Arc::new(move |args: &[Value]| match weak.upgrade() {
                    Some(st) => f(&st, args),
                    None => Err(TemplateError::Exec("render is over".into())),
                }),
            );
        }
        m
    }

    fn call(self: &Arc<Self>, args: &[Value]) -> gotmpl::Result<Value> {
        let site = self.site_of(args)?;
        let SiteKind::Call {
            func,
            args: infos,
            piped,
            ident,
        } = &site.kind
        else {
            return Err(internal_error());
        };
        self.within_budget(&site, Spending::check_time)?;
        // What a function sees of a shared map: the current version of each
        // argument, and of everything inside it unless the function reads
        // only the top level (and reads deeper values through the overlay).
        let vals: Vec<Value> = args[1..]
            .iter()
            .map(|v| {
                if func.shallow {
                    self.maps.current(v)
                } else {
                    self.maps.resolve_deep(v)
                }
            })
            .collect();
        let n = vals.len();
        let min = func.params.len();
        if (func.variadic.is_none() && n != min) || n < min {
            let want = if func.variadic.is_some() {
                format!("at least {min}")
            } else {
                min.to_string()
            };
            let msg = format!(
                "wrong number of args for {}: want {want} got {n}",
                func.name
            );
            return Err(self.fail(&site, ident, func.name, String::new(), Some((msg, false))));
        }
        for (i, v) in vals.iter().enumerate() {
            let p = func
                .params
                .get(i)
                .copied()
                .or(func.variadic)
                .unwrap_or(P::Any);
            let final_arg = *piped && i + 1 == n;
            let info = if final_arg { None } else { infos.get(i) };
            if let Err(msg) = self.check_arg(p, v, info) {
                let (loc, ctx) = match info {
                    Some(a) => (&a.loc, a.context.as_str()),
                    None => (ident, func.name),
                };
                return Err(self.fail(&site, loc, ctx, String::new(), Some((msg, false))));
            }
        }
        let cx = Cx {
            state: self,
            site: &site,
        };
        match (func.f)(&cx, &vals) {
            Ok(v) => {
                self.within_budget(&site, |s| s.check_value(shallow_size(&v)))?;
                Ok(v)
            }
            Err(FnError::Call(msg)) => Err(self.fail(
                &site,
                &site.loc,
                &site.context,
                format!("error calling {}: ", func.name),
                Some((msg, false)),
            )),
            Err(FnError::Helm(msg)) => Err(self.fail(
                &site,
                &site.loc,
                &site.context,
                String::new(),
                Some((msg, true)),
            )),
            Err(FnError::Nested { prefix }) => Err(self.fail(
                &site,
                &site.loc,
                &site.context,
                format!("error calling {}: {prefix}", func.name),
                None,
            )),
        }
    }

    /// Go's `validateType` and `evalArg` checks of one argument.
    fn check_arg(&self, p: P, v: &Value, info: Option<&ArgInfo>) -> Result<(), String> {
        let special = self.objects.kind(v);
        let ok = match p {
            P::Any => return Ok(()),
            P::Str => matches!(v, Value::String(_)),
            P::Int => matches!(v, Value::Int(_)),
            P::Bool => matches!(v, Value::Bool(_)),
            P::Map => matches!(v, Value::Map(_)) && special.is_none(),
        };
        if ok {
            return Ok(());
        }
        let want = p.go_name();
        let literal = |what: &str| match info {
            Some(a) => Err(format!("expected {what}; found {}", a.context)),
            None => Err(format!("expected {what}")),
        };
        match (info.map(|a| a.origin), v) {
            (Some(Origin::NilLit), _) if p == P::Map => Ok(()),
            (Some(Origin::NilLit), _) => Err(format!("cannot assign nil to {want}")),
            (Some(Origin::StrLit | Origin::NumLit | Origin::BoolLit), _) => match p {
                P::Str => literal("string"),
                P::Int => literal("integer"),
                P::Bool => literal("bool"),
                _ => Err(format!(
                    "can't handle {} for arg of type {want}",
                    info.map_or("", |a| a.context.as_str())
                )),
            },
            (Some(Origin::Field), Value::Nil) => Err(format!(
                "wrong type for value; expected {want}; got interface {{}}"
            )),
            (_, Value::Nil) if p == P::Map => Ok(()),
            (_, Value::Nil) => Err(format!("invalid value; expected {want}")),
            _ => Err(format!(
                "wrong type for value; expected {want}; got {}",
                go_type(&self.objects, v)
            )),
        }
    }

    fn field(self: &Arc<Self>, args: &[Value]) -> gotmpl::Result<Value> {
        let site = self.site_of(args)?;
        let SiteKind::Field {
            fields,
            base_nil_errors,
            ..
        } = &site.kind
        else {
            return Err(internal_error());
        };
        self.within_budget(&site, Spending::check_time)?;
        let mut recv = self.maps.current(args.get(1).unwrap_or(&Value::Nil));
        let extra: Vec<Value> = args
            .get(2..)
            .unwrap_or(&[])
            .iter()
            .map(|v| self.maps.resolve_deep(v))
            .collect();
        for (i, name) in fields.iter().enumerate() {
            let last = i + 1 == fields.len();
            let call_args: &[Value] = if last { &extra } else { &[] };
            match self.eval_field(
                &recv,
                name,
                call_args,
                if i == 0 { *base_nil_errors } else { true },
                i > 0,
            ) {
                Ok(v) => recv = self.maps.current(&v),
                Err(msg) => {
                    return Err(self.fail_at(&site, msg));
                }
            }
        }
        Ok(recv)
    }

    /// Go's `evalField` on one receiver, with Helm's methods.
    fn eval_field(
        &self,
        recv: &Value,
        name: &str,
        args: &[Value],
        nil_errors: bool,
        from_map: bool,
    ) -> Result<Value, String> {
        if let Some(kind) = self.objects.kind(recv)
            && let Some(r) = self.method(kind, recv, name, args)
        {
            return r;
        }
        match recv {
            Value::Nil if nil_errors => {
                Err(format!("nil pointer evaluating interface {{}}.{name}"))
            }
            Value::Nil => Ok(Value::Nil),
            Value::Map(m) => {
                if !args.is_empty() {
                    return Err(format!("{name} is not a method but has arguments"));
                }
                match m.get(name) {
                    Some(v) => Ok(v.clone()),
                    None if self
                        .objects
                        .kind(recv)
                        .and_then(Kind::struct_fields)
                        .is_some() =>
                    {
                        Err(format!(
                            "can't evaluate field {name} in type {}",
                            go_type(&self.objects, recv)
                        ))
                    }
                    None => Ok(Value::Nil),
                }
            }
            other => {
                let t = if from_map {
                    "interface {}".to_owned()
                } else {
                    go_type(&self.objects, other)
                };
                Err(format!("can't evaluate field {name} in type {t}"))
            }
        }
    }

    fn method(
        &self,
        kind: Kind,
        recv: &Value,
        name: &str,
        args: &[Value],
    ) -> Option<Result<Value, String>> {
        let want = |n: usize| -> Result<(), String> {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "wrong number of args for {name}: want {n} got {}",
                    args.len()
                ))
            }
        };
        let string_arg = |i: usize| -> Result<String, String> {
            match &args[i] {
                Value::String(s) => Ok(s.to_string()),
                Value::Nil => Err("invalid value; expected string".into()),
                v => Err(format!(
                    "wrong type for value; expected string; got {}",
                    go_type(&self.objects, v)
                )),
            }
        };
        let r = match (kind, name) {
            (Kind::Files, "Get" | "GetBytes" | "Glob" | "Lines") => want(1)
                .and_then(|()| string_arg(0))
                .map(|arg| super::files::call(self, recv, name, &arg)),
            (Kind::Files, "AsConfig" | "AsSecrets") => {
                want(0).map(|()| super::files::call(self, recv, name, ""))
            }
            (Kind::ApiVersions, "Has") => want(1).and_then(|()| string_arg(0)).map(|v| {
                let Value::List(l) = recv else {
                    return Value::Bool(false);
                };
                Value::Bool(l.iter().any(|x| x.as_str() == Some(v.as_str())))
            }),
            (Kind::KubeVersion, "GitVersion" | "String") => {
                want(0).map(|()| recv.field("Version").cloned().unwrap_or(Value::Nil))
            }
            (Kind::Semver, "String") => {
                want(0).map(|()| Value::String(super::objects::semver_string(recv).into()))
            }
            (Kind::Semver, "Compare" | "LessThan" | "GreaterThan" | "Equal") => {
                want(1).and_then(|()| {
                    if self.objects.kind(&args[0]) != Some(Kind::Semver) {
                        return Err(format!(
                            "wrong type for value; expected *semver.Version; got {}",
                            go_type(&self.objects, &args[0])
                        ));
                    }
                    let a = super::functions::semver_of(recv);
                    let b = super::functions::semver_of(&args[0]);
                    let o = a.compare(&b);
                    Ok(match name {
                        "Compare" => Value::Int(o as i64),
                        "LessThan" => Value::Bool(o.is_lt()),
                        "GreaterThan" => Value::Bool(o.is_gt()),
                        _ => Value::Bool(o.is_eq()),
                    })
                })
            }
            _ => return None,
        };
        Some(r)
    }

    fn range(self: &Arc<Self>, args: &[Value]) -> gotmpl::Result<Value> {
        let site = self.site_of(args)?;
        self.within_budget(&site, Spending::check_time)?;
        let v = self.maps.current(args.last().unwrap_or(&Value::Nil));
        match &v {
            // An invalid value ranges over nothing, as in Go.
            Value::Nil => Ok(Value::List(Vec::new().into())),
            Value::List(_) | Value::Map(_) | Value::Int(_) => Ok(v),
            Value::Uint(u) => Ok(Value::Int(i64::try_from(*u).unwrap_or(i64::MAX))),
            other => {
                let msg = format!(
                    "range can't iterate over {}",
                    gofmt::to_v(&self.objects, other)
                );
                Err(self.fail_at(&site, msg))
            }
        }
    }

    /// Records `message` as a failure at `site` itself (no nested frame)
    /// and returns the error that stops gotmpl.
    fn fail_at(&self, site: &Site, message: String) -> TemplateError {
        self.fail(
            site,
            &site.loc,
            &site.context,
            String::new(),
            Some((message, false)),
        )
    }

    /// Records the budget's refusal at `site`, if `check` refuses.
    fn within_budget(
        &self,
        site: &Site,
        check: impl FnOnce(&Spending) -> Result<(), String>,
    ) -> gotmpl::Result<()> {
        check(&self.spending).map_err(|msg| self.fail_at(site, msg))
    }

    /// What an action prints (its site, then the value), counted against
    /// the budget.
    fn print(self: &Arc<Self>, args: &[Value]) -> gotmpl::Result<Value> {
        let site = self.site_of(args)?;
        let printed = print_value(self, args.get(1).unwrap_or(&Value::Nil));
        let len = printed.as_str().map_or(0, str::len);
        self.within_budget(&site, |s| s.check_time().and_then(|()| s.spend_output(len)))?;
        Ok(printed)
    }

    /// The start of one iteration of a `range` body: time, and the body's text.
    fn tick(self: &Arc<Self>, args: &[Value]) -> gotmpl::Result<Value> {
        let site = self.site_of(args)?;
        let SiteKind::Tick(text) = site.kind else {
            return Err(internal_error());
        };
        self.within_budget(&site, |s| {
            s.check_time().and_then(|()| s.spend_output(text))
        })?;
        Ok(Value::String("".into()))
    }

    fn fail_site(self: &Arc<Self>, args: &[Value]) -> gotmpl::Result<Value> {
        let site = self.site_of(args)?;
        let SiteKind::Fail(msg) = &site.kind else {
            return Err(internal_error());
        };
        Err(self.fail_at(&site, msg.clone()))
    }
}

/// How an action prints its value: Go's `%v`, `<no value>` for nil.
fn print_value(st: &State, v: &Value) -> Value {
    let v = st.maps.resolve_deep(v);
    match &v {
        Value::Nil => Value::String("<no value>".into()),
        Value::String(_) => v,
        other => Value::String(gofmt::to_v(&st.objects, other).into()),
    }
}

/// The size of a value at its top level, in bytes as far as the budget is
/// concerned: a string's length, eight bytes per item of a list or map.
fn shallow_size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        Value::List(l) => l.len().saturating_mul(8),
        Value::Map(m) => m.len().saturating_mul(8),
        _ => 0,
    }
}
