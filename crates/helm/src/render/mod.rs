//! Rendering a chart as Helm v4 renders it (`helm template`): every
//! template file parsed into one template set (so `define`s are shared),
//! executed with `.Values`, `.Release`, `.Chart`, `.Capabilities`,
//! `.Template` and `.Files`, with Go's text/template semantics and the
//! Helm and Sprig functions.
//!
//! gotmpl, a port of Go's text/template, parses and executes. What it does
//! differently from Go (untyped values, no positions in runtime errors, no
//! methods, immutable maps) is made up for by rewriting the parsed trees
//! (`rewrite`) to call internal functions (`state`).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use gotmpl::{MissingKey, Value};

use super::chart::{Chart, ChartMetadata};
use super::kube_version::KubeVersion;

mod budget;
pub(crate) mod files;
pub(crate) mod functions;
pub(crate) mod gofmt;
pub(crate) mod gojson;
pub(crate) mod goyaml;
pub mod lookup;
pub(crate) mod maps;
pub(crate) mod objects;
mod rewrite;
pub(crate) mod semver;
mod source;
pub(crate) mod state;

pub use budget::RenderBudget;
pub use lookup::{Lookup, Offline, Query as LookupQuery};
use objects::{Kind, Objects};
use rewrite::{ParseError, Rewriter};
use state::{Failure, State};

/// The release a chart is rendered for (`.Release`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseInfo {
    /// `.Release.Name`.
    pub name: String,
    /// `.Release.Namespace`.
    pub namespace: String,
    /// `.Release.Revision`: 1 for an install, one more for each upgrade.
    pub revision: u32,
    /// `.Release.IsInstall`.
    pub is_install: bool,
    /// `.Release.IsUpgrade`.
    pub is_upgrade: bool,
}

/// What the cluster offers (`.Capabilities`).
///
/// [`Capabilities::default`] is what Helm v4.2 uses without a cluster
/// (`helm template`): Kubernetes v1.36.0 and the API group versions of
/// Helm's built-in scheme, so that charts render here exactly as there.
/// The worker reads a cluster's (`tenant_worker::cluster::Cluster::capabilities`),
/// as `helm install` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// `.Capabilities.KubeVersion`.
    pub kube_version: KubeVersion,
    /// `.Capabilities.APIVersions`: group versions (`apps/v1`), and
    /// `group/version/Kind` entries when a cluster reports them.
    pub api_versions: Vec<String>,
    /// `.Capabilities.HelmVersion.Version`.
    pub helm_version: String,
}

/// `.Capabilities.HelmVersion.KubeClientVersion`: the client-go Helm v4.2
/// is built with (v0.36, which Helm names v1.36), whatever the cluster.
const KUBE_CLIENT_VERSION: &str = "v1.36";

/// The group versions Helm v4.2 offers when it has no cluster: client-go's
/// scheme and the apiextensions groups, in Helm's order.
const DEFAULT_API_VERSIONS: &[&str] = &[
    "v1",
    "admissionregistration.k8s.io/v1",
    "admissionregistration.k8s.io/v1alpha1",
    "admissionregistration.k8s.io/v1beta1",
    "internal.apiserver.k8s.io/v1alpha1",
    "apps/v1",
    "apps/v1beta1",
    "apps/v1beta2",
    "authentication.k8s.io/v1",
    "authentication.k8s.io/v1alpha1",
    "authentication.k8s.io/v1beta1",
    "authorization.k8s.io/v1",
    "authorization.k8s.io/v1beta1",
    "autoscaling/v1",
    "autoscaling/v2",
    "batch/v1",
    "batch/v1beta1",
    "certificates.k8s.io/v1",
    "certificates.k8s.io/v1beta1",
    "certificates.k8s.io/v1alpha1",
    "coordination.k8s.io/v1alpha2",
    "coordination.k8s.io/v1beta1",
    "coordination.k8s.io/v1",
    "discovery.k8s.io/v1",
    "discovery.k8s.io/v1beta1",
    "events.k8s.io/v1",
    "events.k8s.io/v1beta1",
    "extensions/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1",
    "flowcontrol.apiserver.k8s.io/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1beta2",
    "flowcontrol.apiserver.k8s.io/v1beta3",
    "networking.k8s.io/v1",
    "networking.k8s.io/v1beta1",
    "node.k8s.io/v1",
    "node.k8s.io/v1alpha1",
    "node.k8s.io/v1beta1",
    "policy/v1",
    "policy/v1beta1",
    "rbac.authorization.k8s.io/v1",
    "rbac.authorization.k8s.io/v1beta1",
    "rbac.authorization.k8s.io/v1alpha1",
    "resource.k8s.io/v1",
    "resource.k8s.io/v1beta2",
    "resource.k8s.io/v1beta1",
    "resource.k8s.io/v1alpha3",
    "scheduling.k8s.io/v1alpha2",
    "scheduling.k8s.io/v1beta1",
    "scheduling.k8s.io/v1",
    "storage.k8s.io/v1beta1",
    "storage.k8s.io/v1",
    "storage.k8s.io/v1alpha1",
    "storagemigration.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1",
];

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            kube_version: KubeVersion::parse("v1.36.0").expect("a Kubernetes version"),
            api_versions: DEFAULT_API_VERSIONS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            helm_version: "v4.2.3".into(),
        }
    }
}

/// What kind of failure a [`RenderError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderErrorKind {
    /// A template does not parse (or calls a function that does not exist).
    Parse,
    /// `required` or `fail`: the chart's own message.
    Fail,
    /// Anything else that fails while executing a template.
    Execution,
}

/// A template that cannot be rendered: the file, the line (and column, for
/// execution errors) in Helm's terms, and what is wrong. Displays as Helm
/// does: `execution error at (tenant-app/templates/deployment.yaml:12:23):
/// image.repository is required`, `parse error at (...:7): function "x" not
/// defined`, or Go's `template: ...: executing "..." at <...>: ...` chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    /// The template file (`<chart>/templates/<path>`): for a failure inside
    /// an `include`, the file with the outermost call, as Helm reports it.
    pub template: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Column as Go counts it (byte offset in the line, from 0), when known.
    pub column: Option<usize>,
    /// Parse, `required`/`fail`, or another execution failure.
    pub kind: RenderErrorKind,
    /// What is wrong; for [`RenderErrorKind::Fail`] the chart's message, verbatim.
    pub message: String,
    /// Go's trace from the outermost call site to the failure.
    trace: String,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.line, self.column) {
            (RenderErrorKind::Parse, Some(l), _) => write!(
                f,
                "parse error at ({}:{l}): {}",
                self.template, self.message
            ),
            (RenderErrorKind::Fail, Some(l), Some(c)) => {
                write!(
                    f,
                    "execution error at ({}:{l}:{c}): {}",
                    self.template, self.message
                )
            }
            (_, Some(_), Some(_)) => f.write_str(&self.trace),
            _ => write!(
                f,
                "execution error in ({}): {}",
                self.template, self.message
            ),
        }
    }
}

impl std::error::Error for RenderError {}

impl RenderError {
    fn parse(e: ParseError) -> Self {
        RenderError {
            template: e.file,
            line: Some(e.line),
            column: None,
            kind: RenderErrorKind::Parse,
            trace: String::new(),
            message: e.message,
        }
    }

    fn from_failure(f: Failure) -> Self {
        let mut trace = String::new();
        for frame in f.frames.iter().rev() {
            trace.push_str(&format!(
                "template: {}:{}:{}: executing {:?} at <{}>: {}",
                frame.loc.file,
                frame.loc.line,
                frame.loc.col,
                frame.exec.as_ref(),
                frame.context,
                frame.prefix
            ));
        }
        trace.push_str(&f.message);
        let outer = f.frames.last();
        RenderError {
            template: outer.map_or_else(String::new, |o| o.loc.file.to_string()),
            line: outer.map(|o| o.loc.line),
            column: outer.map(|o| o.loc.col),
            kind: if f.helm {
                RenderErrorKind::Fail
            } else {
                RenderErrorKind::Execution
            },
            message: f.message,
            trace,
        }
    }

    fn unlocated(template: &str, message: String) -> Self {
        RenderError {
            template: template.to_owned(),
            line: None,
            column: None,
            kind: RenderErrorKind::Execution,
            trace: String::new(),
            message,
        }
    }
}

/// The stack of the rendering thread: Helm allows 1000 nested `include`s of
/// one template, each a few frames of the template engine deep (tens of KiB
/// in a debug build). Only the pages used are committed.
const RENDER_STACK: usize = 256 << 20;

/// How much of [`RENDER_STACK`] `include` and `tpl` may use before they fail
/// instead of overflowing it (a stack overflow aborts the whole process).
pub(crate) const STACK_BUDGET: usize = RENDER_STACK - (32 << 20);

thread_local! {
    /// Address near the top of the rendering thread's stack.
    static STACK_TOP: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// An address in the current stack frame.
fn stack_address() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// How many bytes of the rendering thread's stack are in use.
pub(crate) fn stack_used() -> usize {
    let top = STACK_TOP.with(std::cell::Cell::get);
    if top == 0 {
        0
    } else {
        top.saturating_sub(stack_address())
    }
}

/// Renders every template of `chart` and of the subcharts it holds (not
/// the `_` partials, nor a library chart's templates; every chart's
/// `NOTES.txt` included) with `values` (the final values: see
/// [`super::merge_values`], or for a chart with dependencies
/// [`super::release_values`]), returning template name -> text, as Helm's
/// engine does (`<no value>` removed). Template names are Helm's:
/// `<chart>/templates/<path>`, and `<chart>/charts/<subchart>/templates/<path>`
/// for a subchart's (under its alias, if it has one). Every chart's
/// templates and `define`s are one set: any template can `include` any
/// `define`. Each chart's templates see its own `.Chart`, `.Files` and
/// `.Values` (a subchart's are its parent's `.Values.<name>`), and
/// `.Subcharts`.
///
/// The chart is rendered as given: for a chart with dependencies, give the
/// chart [`super::process_dependencies`] made for the release's values, as
/// `helm install` does (a loaded chart holds every subchart under
/// `charts/`, enabled or not, under its chart name).
///
/// `lookup` is what the `lookup` function reads: [`Offline`] finds nothing,
/// as `helm template`; an implementation that reads a cluster makes this
/// `helm install`'s rendering. The nondeterministic functions (`randAlphaNum`,
/// `uuidv4`, ...) give a new result at each render, as in Helm: a release is
/// rendered once per revision and what was rendered is what is stored.
///
/// Renders on a dedicated thread (deep `include` recursion needs stack), so
/// call it from blocking code (`spawn_blocking` in async code; a [`Lookup`]
/// that blocks on an async runtime needs that). Spends at most the default
/// [`RenderBudget`]; see [`render_within`].
///
/// # Errors
/// The first template that does not parse (all are parsed before any runs),
/// else the first that fails, with its position (see [`RenderError`]).
pub fn render(
    chart: &Chart,
    values: &serde_json::Value,
    release: &ReleaseInfo,
    caps: &Capabilities,
    lookup: Arc<dyn Lookup>,
) -> Result<BTreeMap<String, String>, RenderError> {
    render_within(
        chart,
        values,
        release,
        caps,
        lookup,
        RenderBudget::default(),
    )
}

/// [`render`] within `budget`: a chart that would spend more time or output
/// stops with an error at the template and line it had reached.
///
/// # Errors
/// As [`render`], and a [`RenderErrorKind::Execution`] error saying which
/// limit of `budget` the chart reached.
pub fn render_within(
    chart: &Chart,
    values: &serde_json::Value,
    release: &ReleaseInfo,
    caps: &Capabilities,
    lookup: Arc<dyn Lookup>,
    budget: RenderBudget,
) -> Result<BTreeMap<String, String>, RenderError> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("chart-render".into())
            .stack_size(RENDER_STACK)
            .spawn_scoped(scope, || {
                render_here(chart, values, release, caps, lookup, budget)
            })
            .map_err(|e| {
                RenderError::unlocated(
                    &chart.metadata.name,
                    format!("cannot start the rendering thread: {e}"),
                )
            })?;
        match worker.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

fn key(k: &str) -> Arc<str> {
    Arc::from(k)
}

fn str_v(s: &str) -> Value {
    Value::String(s.into())
}

fn map_v(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(Arc::new(
        entries.into_iter().map(|(k, v)| (key(k), v)).collect(),
    ))
}

fn list_v(items: Vec<Value>) -> Value {
    Value::List(items.into())
}

/// `.Chart`: Helm v4 passes the metadata as a map with Go's field names,
/// and `IsRoot`.
fn chart_value(m: &ChartMetadata, is_root: bool) -> Value {
    let strings = |items: &[String]| list_v(items.iter().map(|k| str_v(k)).collect());
    let dependencies = m
        .dependencies
        .iter()
        .flatten()
        .map(|d| {
            map_v(vec![
                ("Name", str_v(&d.name)),
                ("Version", str_v(&d.version)),
                ("Repository", str_v(&d.repository)),
                ("Condition", str_v(&d.condition)),
                ("Tags", strings(&d.tags)),
                ("Enabled", Value::Bool(d.enabled)),
                (
                    "ImportValues",
                    list_v(d.import_values.iter().map(gojson::from_serde).collect()),
                ),
                ("Alias", str_v(&d.alias)),
            ])
        })
        .collect();
    map_v(vec![
        ("APIVersion", str_v(&m.api_version)),
        (
            "Annotations",
            map_v(
                m.annotations
                    .iter()
                    .map(|(k, v)| (k.as_str(), str_v(v)))
                    .collect(),
            ),
        ),
        ("AppVersion", str_v(&m.app_version)),
        ("Condition", str_v(&m.condition)),
        ("Dependencies", list_v(dependencies)),
        ("Deprecated", Value::Bool(m.deprecated)),
        ("Description", str_v(&m.description)),
        ("Home", str_v(&m.home)),
        ("Icon", str_v(&m.icon)),
        ("IsRoot", Value::Bool(is_root)),
        ("Keywords", strings(&m.keywords)),
        ("KubeVersion", str_v(&m.kube_version)),
        (
            "Maintainers",
            list_v(
                m.maintainers
                    .iter()
                    .map(|p| {
                        map_v(vec![
                            ("Name", str_v(&p.name)),
                            ("Email", str_v(&p.email)),
                            ("URL", str_v(&p.url)),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("Name", str_v(&m.name)),
        ("Sources", strings(&m.sources)),
        ("Tags", str_v(&m.tags)),
        ("Type", str_v(&m.chart_type)),
        ("Version", str_v(&m.version)),
    ])
}

/// What the templates of one chart of the tree see (Helm's `recAllTpls`).
struct Scope {
    /// `<top>/charts/<sub>/...`: the prefix of its template names.
    full_path: String,
    /// `.Chart`, `.Files`, `.Release`, `.Capabilities` and `.Values`.
    data: Vec<(&'static str, Value)>,
    /// Its subcharts: name and scope.
    subcharts: Vec<(String, usize)>,
}

/// The scopes of `chart` and its subcharts, and every template to render
/// or include (name -> (source, scope)), as Helm's `allTemplates` collects
/// them: a subchart's `.Values` is its parent's `.Values.<name>` (the same
/// map), or an empty one when that is not a map; a library chart
/// contributes its partials only. Returns the chart's scope.
fn collect_scopes<'c>(
    chart: &'c Chart,
    parent: Option<(&str, &Value)>,
    common: (&Value, &Value, &Value),
    objects: &Objects,
    scopes: &mut Vec<Scope>,
    templates: &mut BTreeMap<String, (&'c str, usize)>,
) -> usize {
    let (release_v, caps_v, top_values) = common;
    let name = &chart.metadata.name;
    let (full_path, values_v) = match parent {
        None => (name.clone(), top_values.clone()),
        Some((parent_path, parent_values)) => {
            let mut at = Some(parent_values.clone());
            for step in name.split('.') {
                at = match at {
                    Some(Value::Map(m)) => m.get(step).cloned(),
                    _ => None,
                };
            }
            let values = match at {
                Some(v @ Value::Map(_)) => v,
                _ => map_v(Vec::new()),
            };
            (format!("{parent_path}/charts/{name}"), values)
        }
    };
    let mut subcharts = Vec::new();
    for sub in &chart.dependencies {
        let index = collect_scopes(
            sub,
            Some((&full_path, &values_v)),
            common,
            objects,
            scopes,
            templates,
        );
        subcharts.push((sub.metadata.name.clone(), index));
    }
    let data = vec![
        ("Capabilities", caps_v.clone()),
        ("Chart", chart_value(&chart.metadata, parent.is_none())),
        ("Files", files::files_value(objects, &chart.files)),
        ("Release", release_v.clone()),
        ("Values", values_v),
    ];
    let index = scopes.len();
    scopes.push(Scope {
        full_path: full_path.clone(),
        data,
        subcharts,
    });
    for t in chart.templates.iter() {
        if chart.is_library()
            && !t
                .name
                .rsplit('/')
                .next()
                .is_some_and(|b| b.starts_with('_'))
        {
            continue;
        }
        templates.insert(
            format!("{full_path}/{}", t.name),
            (t.source.as_str(), index),
        );
    }
    index
}

/// The data of scope `index` (Helm's `next` map of its chart): with
/// `.Subcharts`, and with `.Template` when one of its templates has been
/// rendered (Helm sets it on that shared map, so a parent's
/// `.Subcharts.<name>.Template` is the subchart's last rendered template).
fn scope_value(
    scopes: &[Scope],
    last_template: &[Option<Value>],
    index: usize,
) -> Vec<(&'static str, Value)> {
    let scope = &scopes[index];
    let mut entries = scope.data.clone();
    let subcharts = scope
        .subcharts
        .iter()
        .map(|(name, i)| (name.as_str(), map_v(scope_value(scopes, last_template, *i))))
        .collect();
    entries.push(("Subcharts", map_v(subcharts)));
    if let Some(t) = &last_template[index] {
        entries.push(("Template", t.clone()));
    }
    entries
}

fn capabilities_value(objects: &Objects, caps: &Capabilities) -> Value {
    let kube = objects.register(
        map_v(vec![
            ("Version", str_v(caps.kube_version.version())),
            ("Major", str_v(caps.kube_version.major())),
            ("Minor", str_v(caps.kube_version.minor())),
        ]),
        Kind::KubeVersion,
    );
    let apis = objects.register(
        list_v(caps.api_versions.iter().map(|a| str_v(a)).collect()),
        Kind::ApiVersions,
    );
    let helm = objects.register(
        map_v(vec![
            ("Version", str_v(&caps.helm_version)),
            ("GitCommit", str_v("")),
            ("GitTreeState", str_v("")),
            ("GoVersion", str_v("")),
            ("KubeClientVersion", str_v(KUBE_CLIENT_VERSION)),
        ]),
        Kind::HelmVersion,
    );
    objects.register(
        map_v(vec![
            ("KubeVersion", kube),
            ("APIVersions", apis),
            ("HelmVersion", helm),
        ]),
        Kind::Capabilities,
    )
}

/// Helm's parse order: deeper paths first, then reverse lexical order; a
/// later non-empty `define` replaces an earlier one.
fn parse_order(names: &mut [&str]) {
    names.sort_by(|a, b| {
        let (ca, cb) = (a.matches('/').count(), b.matches('/').count());
        cb.cmp(&ca).then_with(|| b.cmp(a))
    });
}

fn register_tree(
    t: gotmpl::Template,
    seen: &mut HashSet<String>,
    name: &str,
    tree: gotmpl::parse::ListNode,
) -> gotmpl::Template {
    // Go's `associate`: an empty body does not replace an existing template.
    if tree.is_empty_tree() && seen.contains(name) {
        return t;
    }
    seen.insert(name.to_owned());
    t.add_parse_tree(name, tree)
}

fn render_here(
    chart: &Chart,
    values: &serde_json::Value,
    release: &ReleaseInfo,
    caps: &Capabilities,
    lookup: Arc<dyn Lookup>,
    budget: RenderBudget,
) -> Result<BTreeMap<String, String>, RenderError> {
    STACK_TOP.with(|t| t.set(stack_address()));
    let objects = Objects::default();
    let caps_v = capabilities_value(&objects, caps);
    let values_v = match values {
        serde_json::Value::Object(_) => gojson::from_serde(values),
        _ => map_v(Vec::new()),
    };
    let release_v = map_v(vec![
        ("Name", str_v(&release.name)),
        ("Namespace", str_v(&release.namespace)),
        ("Revision", Value::Int(i64::from(release.revision))),
        ("IsInstall", Value::Bool(release.is_install)),
        ("IsUpgrade", Value::Bool(release.is_upgrade)),
        ("Service", str_v("Helm")),
    ]);
    let mut scopes = Vec::new();
    let mut sources = BTreeMap::new();
    collect_scopes(
        chart,
        None,
        (&release_v, &caps_v, &values_v),
        &objects,
        &mut scopes,
        &mut sources,
    );
    let state = Arc::new(State::new(objects, budget, lookup));

    let mut order: Vec<&str> = sources.keys().map(String::as_str).collect();
    parse_order(&mut order);

    let mut parsed = Vec::with_capacity(order.len());
    for name in &order {
        parsed.push((
            *name,
            rewrite::parse(name, sources[*name].0).map_err(RenderError::parse)?,
        ));
    }
    let mut names: HashSet<String> = order.iter().map(|n| (*n).to_owned()).collect();
    for (_, p) in &parsed {
        names.extend(p.defines.iter().map(|d| d.name.to_string()));
    }
    let mut template = gotmpl::Template::new(TEMPLATE_SET_NAME)
        .missing_key(MissingKey::ZeroValue)
        .funcs(state.internal_funcs());
    let mut seen = HashSet::new();
    for (name, p) in parsed {
        let src = sources[name].0;
        let tree = Rewriter::new(&state, name, src, name, &names)
            .list(p.tree)
            .map_err(RenderError::parse)?;
        template = register_tree(template, &mut seen, name, tree);
        for d in p.defines {
            let body = Rewriter::new(&state, name, src, &d.name, &names)
                .list(d.body)
                .map_err(RenderError::parse)?;
            template = register_tree(template, &mut seen, &d.name, body);
        }
    }
    state.set_template(template);
    let template = state
        .template()
        .ok_or_else(|| RenderError::unlocated(&chart.metadata.name, "no templates".into()))?;

    let mut out = BTreeMap::new();
    let mut last_template = vec![None; scopes.len()];
    for name in order {
        if name.rsplit('/').next().is_some_and(|b| b.starts_with('_')) {
            continue;
        }
        let index = sources[name].1;
        let base_path = format!("{}/templates", scopes[index].full_path);
        last_template[index] = Some(map_v(vec![
            ("Name", str_v(name)),
            ("BasePath", str_v(&base_path)),
        ]));
        let data = map_v(scope_value(&scopes, &last_template, index));
        match template.execute_template_to_string(name, &data) {
            Ok(text) => {
                out.insert(name.to_owned(), text.replace("<no value>", ""));
            }
            Err(e) => {
                return Err(match state.take_failure() {
                    Some(f) => RenderError::from_failure(f),
                    None => RenderError::unlocated(name, e.to_string()),
                });
            }
        }
    }
    Ok(out)
}

/// The name of the template set (Helm's `template.New("gotpl")`), which is
/// also the name of every `tpl` text.
pub(crate) const TEMPLATE_SET_NAME: &str = "gotpl";

/// Why `tpl` failed.
pub(crate) enum TplError {
    Parse(ParseError),
    /// The failure is recorded in the state.
    Nested,
    Other(String),
}

/// Helm v4's `tpl`: `src` parsed as a template named [`TEMPLATE_SET_NAME`]
/// in a copy of the chart's template set, and executed with `vals`.
pub(crate) fn run_tpl(state: &Arc<State>, src: &str, vals: &Value) -> Result<String, TplError> {
    let name = TEMPLATE_SET_NAME;
    let base = state
        .template()
        .ok_or_else(|| TplError::Other("templates are not ready".into()))?;
    let parsed = rewrite::parse(name, src).map_err(TplError::Parse)?;
    let mut names: HashSet<String> = base.templates().into_iter().map(str::to_owned).collect();
    names.insert(name.to_owned());
    names.extend(parsed.defines.iter().map(|d| d.name.to_string()));
    let tree = Rewriter::new(state, name, src, name, &names)
        .list(parsed.tree)
        .map_err(TplError::Parse)?;
    let mut t = (*base).clone().add_parse_tree(name, tree);
    for d in parsed.defines {
        // Helm adds the chart's templates after the tpl text: theirs win.
        if base.lookup(&d.name).is_none() {
            let body = Rewriter::new(state, name, src, &d.name, &names)
                .list(d.body)
                .map_err(TplError::Parse)?;
            t = t.add_parse_tree(&d.name, body);
        }
    }
    let t = Arc::new(t);
    let previous = state.swap_template(Some(t.clone()));
    let result = t.execute_template_to_string(name, vals);
    state.swap_template(previous);
    result.map_err(|e| {
        if state.has_failure() {
            TplError::Nested
        } else {
            TplError::Other(e.to_string())
        }
    })
}

#[cfg(test)]
mod tests;
