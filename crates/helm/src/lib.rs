//! Helm-compatible releases, usable without the worker: charts in Helm's layout, rendered exactly as
//! Helm v4 renders them (Go templates with Helm's and Sprig's functions),
//! values coalesced as Helm coalesces them, and the rendered objects in
//! Helm's install order.
//!
//! The flow of a release: [`Chart::load`], [`merge_values`] (chart defaults,
//! plan, event), [`check_overridable`] (the event only sets what the plan
//! allows), [`validate_against_schema`], [`check_kube_version`] (the chart's
//! `kubeVersion` against the cluster's), [`render()`], [`manifests`],
//! [`sort_for_install`]. [`storage`] is how Helm records a revision, so that
//! `helm` reads what was installed.

#![warn(missing_docs)]

pub mod chart;
pub mod kube_version;
pub mod manifest;
pub mod render;
pub mod storage;
pub mod values;

pub use chart::{Chart, ChartError, ChartMetadata};
pub use kube_version::{IncompatibleChart, KubeVersion, check_kube_version};
pub use manifest::{Manifest, ManifestError, manifests, sort_for_install};
pub use render::{
    Capabilities, ReleaseInfo, RenderBudget, RenderError, RenderErrorKind, render, render_within,
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
    ReleaseValues, ValuesError, check_overridable, merge_values, release_values, set_path,
    validate_against_schema,
};
