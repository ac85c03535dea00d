//! Step `release`: the tenant's application, installed as a Helm-compatible
//! release of the chart (one release per tenant, named after the tenant, in
//! its namespace).
//!
//! # Guarantees
//! - The revision's record (`pending-install` / `pending-upgrade`) is written
//!   before any of its objects is applied, so every object the worker ever
//!   applied is listed in some record's manifest: undoing can always find it.
//! - Install and upgrade apply every object with server-side apply, delete the
//!   objects the previous deployed revision had and this one has not, wait
//!   until the workloads are ready (within the plan's timeout), then mark the
//!   revision `deployed` and the previous one `superseded`.
//! - Undoing a first install uninstalls: every object of every record, then the
//!   records. Undoing an upgrade rolls back as `helm rollback` does: the failed
//!   revisions are marked `failed`, the last good revision's manifest is
//!   applied again (objects only the failed ones had are deleted), and a new
//!   revision "Rollback to N" records it.
//! - Every part is idempotent and can be resumed after a crash.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::StepContext;
use crate::cluster::ClusterError;
use crate::cluster::dynamic::ObjectRef;
use crate::cluster::readiness::{Readiness, judge_object};
use crate::cluster::release_records::{Release, ReleaseInfo, ReleaseStatus};
use crate::failpoint::crash_point;

/// How often readiness is polled while waiting.
const READINESS_POLL: Duration = Duration::from_millis(250);

/// A release revision ready to be installed: rendered, checked and labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseSpec {
    /// The release name (the tenant id).
    pub name: String,
    /// The revision this saga installs.
    pub revision: u32,
    /// `(template, object)` in install order, labelled as the worker's, in the
    /// tenant's namespace.
    pub objects: Vec<(String, Value)>,
    /// Chart hooks: recorded in the release, not run.
    pub hooks: Vec<Value>,
    /// `NOTES.txt`, rendered.
    pub notes: String,
    /// The chart as Helm records it (metadata, templates, values, schema).
    pub chart: Value,
    /// The values given on top of the chart's defaults.
    pub config: Value,
    pub is_upgrade: bool,
    pub readiness_timeout: Duration,
    /// The release's records, oldest first, as read when this revision was
    /// chosen. The saga holds the tenant's lease, so only it adds records
    /// until it ends; a resumed saga reads them again.
    pub history: Vec<Release>,
}

impl ReleaseSpec {
    /// The manifest text Helm records: `---\n# Source: <template>\n<yaml>` per object.
    pub fn manifest(&self) -> String {
        manifest_text(&self.objects)
    }
}

/// `---\n# Source: <template>\n<yaml>` per object, as `helm get manifest` shows.
pub fn manifest_text(objects: &[(String, Value)]) -> String {
    let mut out = String::new();
    for (template, object) in objects {
        out.push_str("---\n# Source: ");
        out.push_str(template);
        out.push('\n');
        out.push_str(&helm::to_yaml(object));
    }
    out
}

/// The objects of a recorded manifest (documents that are not objects are skipped).
pub fn manifest_objects(manifest: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(manifest)
        .filter_map(|doc| serde::Deserialize::deserialize(doc).ok())
        .filter(|v: &Value| ObjectRef::of(v).is_some())
        .collect()
}

fn refs_of(objects: impl IntoIterator<Item = Value>) -> BTreeSet<ObjectRef> {
    objects
        .into_iter()
        .filter_map(|o| ObjectRef::of(&o))
        .collect()
}

/// Installs or upgrades to `spec`.
///
/// # Errors
/// [`ClusterError`]; a workload that does not become ready in time, or a
/// failed Job, is [`ClusterError::NotReady`] (permanent).
pub async fn apply(ctx: &StepContext<'_>, spec: &ReleaseSpec) -> Result<(), ClusterError> {
    let (cluster, tenant, ns) = (ctx.cluster, ctx.tenant.tenant, ctx.tenant.namespace);
    let history = &spec.history;
    let now = Timestamp::now();
    let previous = history
        .iter()
        .rev()
        .find(|r| r.version != spec.revision && r.info.status == ReleaseStatus::Deployed)
        .cloned();
    let mut record = Release {
        name: spec.name.clone(),
        info: ReleaseInfo {
            first_deployed: history.first().map_or(now, |r| r.info.first_deployed),
            last_deployed: now,
            deleted: String::new(),
            description: if spec.is_upgrade {
                "Upgrade complete".into()
            } else {
                "Install complete".into()
            },
            status: if spec.is_upgrade {
                ReleaseStatus::PendingUpgrade
            } else {
                ReleaseStatus::PendingInstall
            },
            notes: spec.notes.clone(),
        },
        chart: spec.chart.clone(),
        config: spec.config.clone(),
        manifest: spec.manifest(),
        hooks: spec.hooks.clone(),
        version: spec.revision,
        namespace: ns.to_owned(),
    };
    let written = cluster.write_release(tenant, &record, None).await?;
    crash_point("release.after_pending_record");
    // What the apply returns holds the status: a workload already ready there
    // (unchanged, or readied at once) needs no read to wait for it.
    let (mut wanted, mut unready) = (BTreeSet::new(), BTreeSet::new());
    for (_, object) in &spec.objects {
        let applied = cluster.apply_object(tenant, ns, object).await?;
        // Applied, so it has a kind and a name.
        if let Some(r) = ObjectRef::of(object) {
            if judge_object(&r.kind, &applied) != Readiness::Ready {
                unready.insert(r.clone());
            }
            wanted.insert(r);
        }
    }
    if let Some(previous) = &previous {
        for stale in refs_of(manifest_objects(&previous.manifest)).difference(&wanted) {
            cluster.delete_object(tenant, ns, stale).await?;
        }
    }
    wait_ready(ctx, &unready, spec.readiness_timeout).await?;
    record.info.status = ReleaseStatus::Deployed;
    cluster
        .write_release(tenant, &record, Some(&written))
        .await?;
    if let Some(mut previous) = previous {
        previous.info.status = ReleaseStatus::Superseded;
        cluster.write_release(tenant, &previous, None).await?;
    }
    let records: Vec<&Release> = history.iter().chain([&record]).collect();
    cluster.prune_releases(tenant, &records).await
}

/// Repairs a deployed revision: applies its `drifted` objects (of `manifest`,
/// the revision's recorded objects) again and waits until the revision's
/// workloads are ready. No new revision: the tenant asked for nothing new.
///
/// # Errors
/// As [`apply`].
pub async fn reapply(
    ctx: &StepContext<'_>,
    manifest: &[Value],
    drifted: &[ObjectRef],
    timeout: Duration,
) -> Result<(), ClusterError> {
    for object in manifest {
        if ObjectRef::of(object).is_some_and(|r| drifted.contains(&r)) {
            ctx.cluster
                .apply_object(ctx.tenant.tenant, ctx.tenant.namespace, object)
                .await?;
        }
    }
    wait_ready(ctx, &refs_of(manifest.iter().cloned()), timeout).await
}

/// Waits until every workload in `objects` is ready.
async fn wait_ready(
    ctx: &StepContext<'_>,
    objects: &BTreeSet<ObjectRef>,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut waiting = Vec::new();
        for r in objects {
            match ctx.cluster.readiness(ctx.tenant.namespace, r).await? {
                Readiness::Ready => {}
                Readiness::Waiting(why) => waiting.push(format!("{r}: {why}")),
                Readiness::Failed(why) => {
                    return Err(ClusterError::NotReady(format!("{r}: {why}")));
                }
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ClusterError::NotReady(format!(
                "not ready after {}s: {}",
                timeout.as_secs(),
                waiting.join("; ")
            )));
        }
        tokio::time::sleep(READINESS_POLL).await;
    }
}

/// Undoes a first install: deletes every object any record (or the prepared
/// revision) lists, then the records.
///
/// # Errors
/// [`ClusterError`]; objects that are not ours are left and reported.
pub async fn uninstall(ctx: &StepContext<'_>) -> Result<(), ClusterError> {
    let (cluster, tenant, ns) = (ctx.cluster, ctx.tenant.tenant, ctx.tenant.namespace);
    let name = tenant.as_str();
    let history = cluster.release_history(ns, name).await?;
    // Every object ever applied is in some record's manifest: a revision's
    // record is written before its objects.
    let objects = refs_of(history.iter().flat_map(|r| manifest_objects(&r.manifest)));
    for r in &objects {
        cluster.delete_object(tenant, ns, r).await?;
    }
    cluster.delete_release_records(tenant, ns, name).await
}

/// Undoes an upgrade as `helm rollback` does (see the module documentation).
/// With no good revision to go back to, it uninstalls.
///
/// # Errors
/// [`ClusterError`]; [`ClusterError::NotReady`] when the rolled-back workloads
/// do not become ready.
pub async fn rollback(ctx: &StepContext<'_>, timeout: Duration) -> Result<(), ClusterError> {
    let (cluster, tenant, ns) = (ctx.cluster, ctx.tenant.tenant, ctx.tenant.namespace);
    let name = tenant.as_str();
    let history = cluster.release_history(ns, name).await?;
    let good = history.iter().rposition(|r| {
        matches!(
            r.info.status,
            ReleaseStatus::Deployed | ReleaseStatus::Superseded
        )
    });
    let Some(good) = good else {
        return uninstall(ctx).await;
    };
    let bad: Vec<Release> = history[good + 1..].to_vec();
    if bad.is_empty() {
        // This saga's revision was never recorded, or the rollback is done.
        return Ok(());
    }
    for mut failed in bad.iter().cloned() {
        if failed.info.status != ReleaseStatus::Failed {
            failed.info.status = ReleaseStatus::Failed;
            failed.info.description = "Upgrade failed; rolled back".into();
            cluster.write_release(tenant, &failed, None).await?;
        }
    }
    let target = history[good].clone();
    let target_objects = manifest_objects(&target.manifest);
    for object in &target_objects {
        cluster.apply_object(tenant, ns, object).await?;
    }
    let kept = refs_of(target_objects);
    let extra = refs_of(bad.iter().flat_map(|r| manifest_objects(&r.manifest)));
    for r in extra.difference(&kept) {
        cluster.delete_object(tenant, ns, r).await?;
    }
    wait_ready(ctx, &kept, timeout).await?;
    if target.info.status == ReleaseStatus::Deployed {
        let mut superseded = target.clone();
        superseded.info.status = ReleaseStatus::Superseded;
        cluster.write_release(tenant, &superseded, None).await?;
    }
    let latest = history.last().map_or(target.version, |r| r.version);
    let now = Timestamp::now();
    let restored = Release {
        info: ReleaseInfo {
            last_deployed: now,
            description: format!("Rollback to {}", target.version),
            status: ReleaseStatus::Deployed,
            ..target.info.clone()
        },
        version: latest + 1,
        ..target
    };
    cluster.write_release(tenant, &restored, None).await?;
    let records: Vec<&Release> = history.iter().chain([&restored]).collect();
    cluster.prune_releases(tenant, &records).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn manifests_round_trip_through_their_text() {
        let objects = vec![
            (
                "tenant-app/templates/service.yaml".to_owned(),
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app"}}),
            ),
            (
                "tenant-app/templates/deployment.yaml".to_owned(),
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "acme-tenant-app"},
                       "spec": {"replicas": 2, "template": {"metadata": {"annotations": {"note": "a: b\n---\nc"}}}}}),
            ),
        ];
        let text = manifest_text(&objects);
        assert!(text.starts_with("---\n# Source: tenant-app/templates/service.yaml\n"));
        let back = manifest_objects(&text);
        assert_eq!(
            back,
            objects.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>()
        );
        assert_eq!(refs_of(back).len(), 2);
    }
}
