//! `tenant-worker render`: renders the chart for a tenant offline, with the
//! values the worker would use, and prints the manifests as `helm template`
//! does, so a chart can be debugged without NATS or a cluster.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::config::RenderArgs;
use crate::contract::TenantId;
use crate::error::Error;
use crate::plans::PlanCatalog;
use crate::release::Manifest;
use crate::release::manifest::{Document, documents, install_cmp};
use crate::release::render::goyaml::load;
use crate::release::{Capabilities, Chart, ReleaseInfo, release_values, render};

/// The event-values file: YAML (JSON included), read as Helm reads `-f`.
fn read_values(path: &std::path::Path) -> Result<Value, Error> {
    let what = |m: String| Error::Setup(format!("--values {}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| what(e.to_string()))?;
    match load::load_first(&text).map_err(|e| what(e.to_string()))? {
        None => Ok(Value::Object(Map::new())),
        Some(node) => match load::to_json(&node).map_err(what)? {
            v @ Value::Object(_) => Ok(v),
            _ => Err(what("must hold a mapping of chart values".into())),
        },
    }
}

/// The manifests `args` describe, as `helm template` prints them.
///
/// # Errors
/// [`Error::Setup`] naming what is wrong: the tenant id, the chart, the plan
/// or plan file, the values file, values the plan does not allow or the
/// chart's schema refuses, a template that fails (file and line), a
/// rendered document that is not an object.
pub fn output(args: &RenderArgs) -> Result<String, Error> {
    let tenant = TenantId::parse(&args.tenant).map_err(|e| Error::Setup(e.to_string()))?;
    let chart = Chart::load(&args.chart)
        .map_err(|e| Error::Setup(format!("--chart {}: {e}", args.chart.display())))?;
    let catalog = PlanCatalog::load(args.plans.as_deref())?;
    let overrides = match &args.values {
        Some(path) => read_values(path)?,
        None => Value::Object(Map::new()),
    };
    let plan = match &args.plan {
        Some(name) => Some(catalog.get(name).ok_or_else(|| {
            Error::Setup(format!(
                "--plan {name:?} is not in the catalogue (plans: {})",
                catalog.names().collect::<Vec<_>>().join(", ")
            ))
        })?),
        None => None,
    };
    let app_version = args
        .app_version
        .clone()
        .unwrap_or_else(|| catalog.default_app_version().to_owned());
    let empty = Value::Object(Map::new());
    let values = release_values(
        &chart,
        plan.map_or(&empty, |p| &p.values),
        plan.map(|p| p.overridable_values.as_slice()),
        (catalog.app_version_value(), &app_version),
        &overrides,
    )
    .map_err(|e| Error::Setup(format!("--values: {e}")))?
    .values;
    let release = ReleaseInfo {
        name: tenant.to_string(),
        namespace: format!("{}{tenant}", args.namespace_prefix),
        revision: 1,
        is_install: true,
        is_upgrade: false,
    };
    let rendered = render(&chart, &values, &release, &Capabilities::default())
        .map_err(|e| Error::Setup(e.to_string()))?;
    let docs = documents(&rendered).map_err(|e| Error::Setup(e.to_string()))?;
    // As `helm template` prints them: the manifests in install order, then
    // the hooks. A document of comments only is a manifest of no kind to
    // Helm: after every known kind, before other unknown ones.
    let no_kind = |d: &Document| Manifest {
        template: d.template.clone(),
        object: Value::Object(Map::new()),
    };
    let (hooks, mut objects): (Vec<_>, Vec<_>) = docs
        .iter()
        .map(|d| (d.manifest.clone().unwrap_or_else(|| no_kind(d)), d))
        .partition(|(m, _)| m.is_hook());
    objects.sort_by(|a, b| install_cmp(&a.0, &b.0));
    let mut out = String::new();
    for (_, d) in objects.iter().chain(hooks.iter()) {
        let _ = write!(out, "---\n# Source: {}\n{}\n", d.template, d.text);
    }
    Ok(out)
}

/// Runs `tenant-worker render`: prints the manifests, or nothing on error.
///
/// # Errors
/// See [`output`].
pub fn run(args: &RenderArgs) -> Result<(), Error> {
    let out = output(args)?;
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_comment_only_documents_where_helm_template_does() {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("Chart.yaml", "apiVersion: v2\nname: t\nversion: 1.0.0\n");
        write(
            "templates/a.yaml",
            "# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
        );
        write(
            "templates/b.yaml",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: b\n",
        );
        let args = RenderArgs {
            tenant: "acme".into(),
            chart: dir.path().to_owned(),
            plan: None,
            app_version: None,
            values: None,
            namespace_prefix: "tenant-".into(),
            plans: None,
        };
        // Known kinds, then the document of no kind, then other kinds.
        assert_eq!(
            output(&args).unwrap(),
            "---\n# Source: t/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n\
             ---\n# Source: t/templates/a.yaml\n# only a comment\n\
             ---\n# Source: t/templates/b.yaml\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: b\n"
        );
    }
}
