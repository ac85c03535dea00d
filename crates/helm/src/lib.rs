//! Helm-compatible releases, usable without the worker: charts in Helm's layout, rendered exactly as
//! Helm v4 renders them (Go templates with Helm's and Sprig's functions),
//! values coalesced as Helm coalesces them, and the rendered objects in
//! Helm's install order.
//!
//! The flow of a release: [`Chart::load`] (the chart and its subcharts
//! under `charts/`, unpacked or packaged), [`release_values`] (the plan's
//! and the event's values, [`check_overridable`] (the event only sets what
//! the plan allows), [`process_dependencies`] (which subcharts the values
//! enable, under which names, with `import-values`), [`coalesce_values`]
//! (defaults of every chart, globals, scoping), every chart's
//! `values.schema.json`), [`check_kube_version`] (the chart's `kubeVersion`
//! against the cluster's), [`render()`] (every enabled chart's templates),
//! [`manifests`], [`sort_for_install`]. [`storage`] is how Helm records a
//! revision, so that `helm` reads what was installed; the chart it records
//! is [`Chart::record`] of the processed chart.
//!
//! Subcharts are Helm v4's: `dependencies` in `Chart.yaml` (or Helm 2's
//! `requirements.yaml`) matched by name and version range to the charts
//! under `charts/` (undeclared ones are installed too), `condition`, `tags`,
//! `alias` (one chart installed under several names), `import-values` (the
//! `exports.` string form and the `{child, parent}` form), `global` values,
//! each subchart's values under its name in its parent's, library charts
//! (`type: library`: their `define`s for every chart, no manifest of their
//! own). Templates of every chart share one set of `define`s.

#![warn(missing_docs)]

mod archive;
pub mod chart;
mod coalesce;
pub mod dependencies;
pub mod kube_version;
pub mod manifest;
pub mod render;
pub mod storage;
pub mod values;

pub use chart::{Chart, ChartError, ChartMetadata, Dependency};
pub use dependencies::process_dependencies;
pub use kube_version::{IncompatibleChart, KubeVersion, check_kube_version};
pub use manifest::{Manifest, ManifestError, manifests, sort_for_install};
pub use render::{
    Capabilities, Lookup, LookupQuery, Offline, ReleaseInfo, RenderBudget, RenderError,
    RenderErrorKind, render, render_within,
};
/// The first YAML document of `text`, read with Go YAML's rules as Helm
/// reads a values file given with `-f` (JSON included); `None` when the text
/// holds no document.
///
/// # Errors
/// The YAML error, with its line and column, or a value that JSON cannot
/// hold.
pub fn parse_yaml_document(text: &str) -> Result<Option<serde_json::Value>, String> {
    match render::goyaml::load::load_first(text).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(node) => render::goyaml::load::to_json(&node).map(Some),
    }
}

/// `value` as YAML, as Helm's `toYaml` writes it (go-yaml's emitter, keys
/// in its natural order), ending with a line break: the one YAML emitter of
/// the project, for templates and for the manifests a release records.
pub fn to_yaml(value: &serde_json::Value) -> String {
    let mut text = render::goyaml::emit::to_yaml(&render::gojson::from_json(value));
    text.push('\n');
    text
}

pub use values::{
    ReleaseValues, ValuesError, check_overridable, coalesce_values, merge_values, release_values,
    set_path, validate_against_schema, validate_chart_values,
};
