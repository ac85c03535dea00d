//! Render once per revision: a resumed saga installs what its revision's
//! record stores instead of rendering the chart again.
//!
//! # Guarantees
//! - The release step writes the revision's record (`pending-install` /
//!   `pending-upgrade`, with the manifest, notes, hooks, chart and values)
//!   before it applies any object. A delivery that finds the revision its
//!   saga log chose recorded as pending in the cluster builds the revision
//!   from that record: the same objects as the first delivery applied, so
//!   random values (`randAlphaNum`, `uuidv4`, ...) and `lookup`s are not
//!   drawn or read again.
//! - A first delivery, and a resumed one whose record was not written yet,
//!   render: nothing of that revision was applied.
//! - The stored objects go through the same isolation check as rendered ones
//!   (a record is a Secret in the tenant's namespace, which is not proof
//!   of what the worker wrote).

use serde_json::Value;

use super::prepare::ReleaseRequest;
use crate::cluster::release_records::{Release, ReleaseStatus};
use crate::steps::release::ReleaseSpec;

/// The record of the revision `req` installs, if a delivery of this saga
/// wrote it (pending) already. A revision a saga chooses afresh is the
/// release's next, which no record has: a pending record at `req.revision`
/// is this saga's.
pub(super) fn stored_revision<'a>(req: &'a ReleaseRequest<'_>) -> Option<&'a Release> {
    req.history.iter().find(|r| {
        r.version == req.revision
            && matches!(
                r.info.status,
                ReleaseStatus::PendingInstall | ReleaseStatus::PendingUpgrade
            )
    })
}

/// The `(template, object)` pairs of a manifest written by
/// [`crate::steps::release::manifest_text`] (`---\n# Source: <template>\n<yaml>`
/// per object), in their order. A document that is not an object is skipped.
///
/// # Errors
/// A document that does not parse as YAML, with its template.
pub(super) fn manifest_entries(manifest: &str) -> Result<Vec<(String, Value)>, String> {
    // A document starts at a line `---`: inside an object every line of the
    // emitter's YAML is indented or starts with a key, so no value's text
    // can be taken for a separator.
    let mut docs: Vec<String> = Vec::new();
    for line in manifest.split_inclusive('\n') {
        if line.trim_end_matches('\n') == "---" {
            docs.push(String::new());
        } else if let Some(doc) = docs.last_mut() {
            doc.push_str(line);
        } else {
            docs.push(line.to_owned());
        }
    }
    let mut entries = Vec::new();
    for doc in docs.iter().filter(|d| !d.trim().is_empty()) {
        let (template, body) = match doc.strip_prefix("# Source: ") {
            Some(rest) => rest.split_once('\n').unwrap_or((rest, "")),
            None => ("", doc.as_str()),
        };
        match helm::parse_yaml_document(body) {
            Ok(Some(object @ Value::Object(_))) => entries.push((template.to_owned(), object)),
            Ok(_) => {}
            Err(e) => return Err(format!("{template}: {e}")),
        }
    }
    Ok(entries)
}

/// The spec of a revision from its pending `record`, with `objects` (its
/// manifest's, checked and labelled by the caller).
pub(super) fn spec_of(
    req: ReleaseRequest<'_>,
    record: &Release,
    objects: Vec<(String, Value)>,
) -> ReleaseSpec {
    ReleaseSpec {
        name: record.name.clone(),
        revision: record.version,
        objects,
        hooks: record.hooks.clone(),
        notes: record.info.notes.clone(),
        chart: record.chart.clone(),
        config: record.config.clone(),
        is_upgrade: record.info.status == ReleaseStatus::PendingUpgrade,
        readiness_timeout: req.plan.readiness_timeout(),
        history: req.history,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::release::manifest_text;
    use serde_json::json;

    #[test]
    fn a_written_manifest_reads_back_as_written() {
        let objects = vec![
            (
                "app/templates/secret.yaml".to_owned(),
                json!({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": "s", "labels": {"a": "1"}},
                       "stringData": {"password": "x: y\n---\n# Source: z", "n": "007"}}),
            ),
            (
                "app/charts/db/templates/cm.yaml".to_owned(),
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "c"}, "data": {"k": "--- not a document"}}),
            ),
        ];
        let text = manifest_text(&objects);
        let back = manifest_entries(&text).unwrap();
        assert_eq!(back, objects);
        assert_eq!(manifest_text(&back), text);
        assert!(manifest_entries("").unwrap().is_empty());
    }
}
