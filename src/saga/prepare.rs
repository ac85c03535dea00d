//! Preparing a tenant's release before any step runs: the values (chart
//! defaults < plan values < the event's values, restricted to what the plan
//! lets events override, checked against the chart's schema), the chart's
//! `kubeVersion` against the cluster's, the rendering with the cluster's
//! capabilities and `lookup` reading the tenant's namespace, and the
//! isolation check of every rendered object. Whatever is wrong here is the
//! request's fault and is answered with `tenant.rejected`; nothing has been
//! changed yet. A resumed saga whose revision is already recorded installs
//! the record's objects instead (see `render_once`).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::engine::Engine;
use super::render_once;
use crate::cluster::ClusterError;
use crate::cluster::dynamic::ObjectRef;
use crate::cluster::lookup::ClusterLookup;
use crate::cluster::release_records::Release;
use crate::contract::{RejectReason, Rejected, TenantId};
use crate::error::Error;
use crate::plans::Plan;
use crate::steps::release::ReleaseSpec;
use crate::steps::{Step, owner_labels};
use helm::{ReleaseInfo, check_kube_version, manifests, release_values, render, sort_for_install};

/// Kinds a chart may not create: the plan owns the namespace's quota, limits
/// and network isolation, and a chart's own would loosen them.
const PLAN_OWNED_KINDS: &[&str] = &["ResourceQuota", "LimitRange", "NetworkPolicy"];

/// Helm's annotations naming the release that owns an object.
const RELEASE_NAME_ANNOTATION: &str = "meta.helm.sh/release-name";
const RELEASE_NAMESPACE_ANNOTATION: &str = "meta.helm.sh/release-namespace";

/// What the saga is asked to install.
pub(super) struct ReleaseRequest<'a> {
    pub tenant: &'a TenantId,
    pub namespace: &'a str,
    pub plan: &'a Plan,
    pub app_version: &'a str,
    /// The event's values layer (already combined with the tenant's earlier
    /// values for an upgrade).
    pub values: &'a Value,
    pub revision: u32,
    pub is_upgrade: bool,
    /// The release's records, oldest first, as read to choose `revision`.
    pub history: Vec<Release>,
}

fn rejected(reason: RejectReason, message: String) -> Rejected {
    Rejected { reason, message }
}

impl Engine {
    /// Renders and checks the release of `req`; for a revision this saga
    /// has recorded already (pending), checks the record's objects instead of
    /// rendering again.
    ///
    /// # Errors
    /// `Ok(Err(rejected))` for a request that cannot be installed (values,
    /// a chart whose `kubeVersion` the cluster does not meet, rendering,
    /// isolation); `Err` only for a transient cluster error while reading the
    /// cluster's capabilities, discovering kinds or in a `lookup`.
    pub(super) async fn prepare_release(
        &self,
        req: ReleaseRequest<'_>,
    ) -> Result<Result<ReleaseSpec, Rejected>, Error> {
        if let Some(record) = render_once::stored_revision(&req) {
            let entries = match render_once::manifest_entries(&record.manifest) {
                Ok(entries) => entries,
                Err(e) => {
                    return Ok(Err(rejected(
                        RejectReason::RenderFailed,
                        format!("the recorded revision {}: {e}", record.version),
                    )));
                }
            };
            let record = record.clone();
            let mut objects = Vec::with_capacity(entries.len());
            for (template, mut object) in entries {
                if let Some(refused) = self.isolation_problem(&req, &object).await? {
                    return Ok(Err(rejected(
                        RejectReason::ForbiddenObject,
                        format!("{refused} ({template})"),
                    )));
                }
                self.label_as_ours(&req, &mut object);
                objects.push((template, object));
            }
            return Ok(Ok(render_once::spec_of(req, &record, objects)));
        }
        let chart = &self.chart;
        let caps = self.cluster.capabilities().await?;
        let values = match release_values(
            chart,
            &req.plan.values,
            Some(&req.plan.overridable_values),
            (self.plans.app_version_value(), req.app_version),
            req.values,
        ) {
            Ok(values) => values,
            Err(e) => {
                return Ok(Err(rejected(
                    RejectReason::InvalidValues,
                    format!("values {e}"),
                )));
            }
        };
        // Where `helm install` checks it: after the values, before rendering.
        if let Err(e) = check_kube_version(&chart.metadata, &caps.kube_version) {
            return Ok(Err(rejected(
                RejectReason::ChartIncompatible,
                e.to_string(),
            )));
        }
        let info = ReleaseInfo {
            name: req.tenant.to_string(),
            namespace: req.namespace.to_owned(),
            revision: req.revision,
            is_install: !req.is_upgrade,
            is_upgrade: req.is_upgrade,
        };
        // The chart with the subcharts these values enable: every enabled
        // chart's objects go through the same checks below. Rendered off the
        // runtime's threads: `lookup` blocks the rendering thread on the
        // runtime while it reads the cluster (see `ClusterLookup`).
        let lookup = Arc::new(ClusterLookup::new(
            self.cluster.clone(),
            req.namespace.to_owned(),
        ));
        let (values, rendered) = {
            let (info, caps, lookup) = (info.clone(), caps.clone(), lookup.clone());
            tokio::task::spawn_blocking(move || {
                let rendered = render(&values.chart, &values.values, &info, &caps, lookup);
                (values, rendered)
            })
            .await
            .map_err(|e| match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Only a runtime shutting down cancels a blocking task.
                Err(_) => Error::Interrupted,
            })?
        };
        let rendered = match rendered {
            Ok(rendered) => rendered,
            Err(e) => {
                // A lookup that failed for a while is retried, not the request's fault.
                if let Some(transient) = lookup.transient_failure() {
                    return Err(transient.into());
                }
                return Ok(Err(rejected(RejectReason::RenderFailed, e.to_string())));
            }
        };
        // As `helm install`: the top chart's notes only, not a subchart's.
        let notes = rendered
            .get(&format!("{}/templates/NOTES.txt", chart.metadata.name))
            .map(|text| text.trim().to_owned())
            .unwrap_or_default();
        let mut docs = match manifests(&rendered) {
            Ok(docs) => docs,
            Err(e) => return Ok(Err(rejected(RejectReason::RenderFailed, e.to_string()))),
        };
        sort_for_install(&mut docs);
        let mut objects = Vec::new();
        let mut hooks = Vec::new();
        for doc in docs {
            if doc.is_hook() {
                // Hooks belong to Helm's lifecycle, which the worker does not run.
                hooks.push(serde_json::json!({
                    "name": doc.name(),
                    "kind": doc.kind(),
                    "path": doc.template,
                    "manifest": helm::to_yaml(&doc.object),
                    "events": doc.hook_events(),
                }));
                continue;
            }
            if let Some(refused) = self.isolation_problem(&req, &doc.object).await? {
                return Ok(Err(rejected(
                    RejectReason::ForbiddenObject,
                    format!("{} ({})", refused, doc.template),
                )));
            }
            let mut object = doc.object;
            self.label_as_ours(&req, &mut object);
            objects.push((doc.template, object));
        }
        Ok(Ok(ReleaseSpec {
            name: info.name,
            revision: req.revision,
            objects,
            hooks,
            notes,
            chart: values.chart.record(),
            config: values.config,
            is_upgrade: req.is_upgrade,
            readiness_timeout: req.plan.readiness_timeout(),
            history: req.history,
        }))
    }

    /// Why `object` would break the tenant's isolation, if it would.
    async fn isolation_problem(
        &self,
        req: &ReleaseRequest<'_>,
        object: &Value,
    ) -> Result<Option<String>, Error> {
        let Some(r) = ObjectRef::of(object) else {
            return Ok(Some(
                "the chart renders a document without apiVersion, kind or metadata.name".into(),
            ));
        };
        if let Some(ns) = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            && ns != req.namespace
        {
            return Ok(Some(format!(
                "{r} names namespace {ns:?}; tenant releases may only create objects in {}",
                req.namespace
            )));
        }
        if PLAN_OWNED_KINDS.contains(&r.kind.as_str()) {
            return Ok(Some(format!(
                "{r}: the plan owns the tenant's {}s; a chart may not create one",
                r.kind
            )));
        }
        if Step::is_reserved(&r.kind, &r.name) {
            return Ok(Some(format!("{r} is the worker's own isolation object")));
        }
        match self.cluster.resolve(&r).await {
            Ok((_, true)) => Ok(None),
            Ok((_, false)) => Ok(Some(format!(
                "{r} is cluster-scoped; tenant releases may only create objects in {}",
                req.namespace
            ))),
            Err(ClusterError::UnknownKind { api_version, kind }) => Ok(Some(format!(
                "{r}: the cluster does not serve {kind} in {api_version}"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Puts `object` in the tenant's namespace, with the worker's ownership
    /// labels (replacing a chart's `app.kubernetes.io/managed-by: Helm`) and
    /// Helm's release annotations.
    fn label_as_ours(&self, req: &ReleaseRequest<'_>, object: &mut Value) {
        let meta = object
            .as_object_mut()
            .expect("manifests are objects")
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        let meta = meta.as_object_mut().expect("metadata is an object");
        meta.insert("namespace".into(), Value::String(req.namespace.to_owned()));
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if !labels.is_object() {
            *labels = Value::Object(Map::new());
        }
        let labels = labels.as_object_mut().expect("labels is an object");
        for (k, v) in owner_labels(req.tenant) {
            labels.insert(k, Value::String(v));
        }
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if !annotations.is_object() {
            *annotations = Value::Object(Map::new());
        }
        let annotations = annotations
            .as_object_mut()
            .expect("annotations is an object");
        annotations.insert(
            RELEASE_NAME_ANNOTATION.into(),
            Value::String(req.tenant.to_string()),
        );
        annotations.insert(
            RELEASE_NAMESPACE_ANNOTATION.into(),
            Value::String(req.namespace.to_owned()),
        );
    }
}
