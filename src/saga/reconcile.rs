//! Drift detection and repair: comparing a tenant's objects in the cluster
//! with what its record says should be there, and putting them back.
//!
//! # What "should be there" means
//! - A `ready` tenant: its namespace, the isolation objects of its plan (quota,
//!   limits, network policy, RBAC) exactly as the steps build them, and the
//!   objects of its deployed release revision as its Helm record lists them.
//! - A `deleted` or `absent` tenant, or one whose first install failed: no
//!   namespace of ours. A tenant whose upgrade failed without a complete
//!   rollback is not checked (no record says what it should be).
//! - A tenant with a saga in flight, or leased: not checked (the saga is
//!   changing it).
//!
//! # Guarantees
//! - Detection only reads (server-side apply dry runs, see
//!   [`Cluster::compare_object`]).
//! - A repair holds the tenant's lease, taken with compare-and-set on an idle
//!   record, so no saga runs for the tenant meanwhile (an event arriving then
//!   waits, as for any busy tenant); it checks again under the lease, then
//!   repairs through the saga steps (the same `apply` a saga runs, for the
//!   record's plan) or, for release objects, by applying the deployed
//!   revision's manifest again and waiting until it is ready. No new release
//!   revision is made: nothing the tenant asked for changed.
//! - Objects without the worker's labels are never touched: they are reported.
//! - Every repair is published as `tenant.drift_repaired` (one event per
//!   repair, its id derived from the record's revision when the lease was taken).

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};
use uuid::Uuid;

use super::engine::Engine;
use super::prepare::ReleaseRequest;
use crate::bus::state::Versioned;
use crate::cluster::NamespaceState;
use crate::cluster::drift::ObjectState;
use crate::cluster::dynamic::ObjectRef;
use crate::cluster::release_records::{deployed_at, secret_name};
use crate::contract::{
    CloudEvent, Completion, DriftKind, DriftRepaired, EventType, RepairedObject, TenantId,
    WORKER_SOURCE,
};
use crate::error::Error;
use crate::plans::Plan;
use crate::record::{Lease, TenantRecord, TenantStatus};
use crate::steps::release::manifest_objects;
use crate::steps::{self, Step, StepContext, StepObjects, TenantObjects};

/// One object that differs from what the tenant's record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drifted {
    /// The saga step that owns it (repairs go through it).
    pub step: Step,
    #[serde(flatten)]
    pub object: ObjectRef,
    pub drift: DriftKind,
    /// For `modified`: the differing fields, as dotted paths.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// What a check of one tenant found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Inspection {
    /// Everything is as the record says.
    InSync,
    /// These objects differ; `not_owned` lists objects in the way that lack
    /// the worker's labels (reported, never touched).
    Drifted {
        objects: Vec<Drifted>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        not_owned: Vec<ObjectRef>,
    },
    /// Not checked, and why (a saga in flight, a plan no longer in the catalogue).
    Skipped { reason: String },
}

/// What `Engine::repair` did for one tenant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Repair {
    /// Nothing to repair (found in sync under the lease).
    InSync,
    /// Repaired; the event published.
    Repaired { event: Box<CloudEvent<Value>> },
    /// Not repaired, and why (busy, not owned, skipped).
    NotRepaired { reason: String },
}

/// Whether a reconcile pass repairs what drifted or only reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassMode {
    /// Reads only (`reconcile` without `--apply`).
    Report,
    /// Repairs each drifted tenant under its lease (`--apply`, and the
    /// workers' periodic pass).
    Repair,
}

/// What a pass found for one tenant that is not in sync, and what a repair
/// did. Its `Display` is the text report (the `reconcile` command's, and the
/// workers' log line).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantReport {
    pub tenant: TenantId,
    pub inspection: Inspection,
    /// `None` in [`PassMode::Report`] and for a skipped tenant.
    pub repair: Option<Repair>,
}

/// Counts of one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub checked: usize,
    pub in_sync: usize,
    pub drifted: usize,
    pub repaired: usize,
    pub skipped: usize,
}

impl Engine {
    /// Checks `records` (and repairs them in [`PassMode::Repair`]), handing
    /// each tenant that is not in sync to `report`.
    ///
    /// # Errors
    /// NATS or the cluster failing; a tenant whose repair fails is reported
    /// and counted, not an error.
    pub async fn reconcile_pass(
        &self,
        records: &[TenantRecord],
        mode: PassMode,
        mut report: impl FnMut(&TenantReport),
    ) -> Result<Summary, Error> {
        let mut summary = Summary::default();
        for record in records {
            summary.checked += 1;
            let tenant = &record.tenant_id;
            let inspection = self.inspect(record).await?;
            let repair = match (&inspection, mode) {
                (Inspection::InSync, _) => {
                    summary.in_sync += 1;
                    continue;
                }
                (Inspection::Skipped { .. }, _) => {
                    summary.skipped += 1;
                    None
                }
                (Inspection::Drifted { .. }, PassMode::Report) => {
                    summary.drifted += 1;
                    None
                }
                (Inspection::Drifted { .. }, PassMode::Repair) => {
                    summary.drifted += 1;
                    let repair =
                        self.repair(tenant)
                            .await
                            .unwrap_or_else(|e| Repair::NotRepaired {
                                reason: e.to_string(),
                            });
                    if matches!(repair, Repair::Repaired { .. } | Repair::InSync) {
                        summary.repaired += 1;
                    }
                    Some(repair)
                }
            };
            report(&TenantReport {
                tenant: tenant.clone(),
                inspection,
                repair,
            });
        }
        Ok(summary)
    }

    /// Compares `record`'s tenant with the cluster. Reads only.
    ///
    /// # Errors
    /// [`Error::Cluster`] when the cluster cannot be read.
    pub async fn inspect(&self, record: &TenantRecord) -> Result<Inspection, Error> {
        if let Some(saga) = &record.saga {
            return Ok(Inspection::Skipped {
                reason: format!(
                    "the saga of event {} is in flight (phase {:?})",
                    saga.event_id, saga.phase
                ),
            });
        }
        if let Some(lease) = &record.lease
            && lease.excludes(&self.settings.replica_id, Timestamp::now())
        {
            return Ok(Inspection::Skipped {
                reason: format!("leased by {} until {}", lease.holder, lease.expires_at),
            });
        }
        let tenant = &record.tenant_id;
        match record.status {
            TenantStatus::Ready => {}
            // An upgrade whose rollback did not complete: the tenant still
            // runs, in a state no record describes. Not the reconciler's to
            // judge (and never to delete): a new event or a replay re-drives it.
            TenantStatus::Failed if record.plan.is_some() => {
                return Ok(Inspection::Skipped {
                    reason: "its last upgrade failed and the rollback did not complete; \
                             re-drive it with an event or `replay --apply`"
                        .into(),
                });
            }
            TenantStatus::Deleted | TenantStatus::Failed | TenantStatus::Absent => {
                return Ok(match self.cluster.namespace_state(tenant).await? {
                    NamespaceState::Owned { terminating: false } => Inspection::Drifted {
                        objects: vec![Drifted {
                            step: Step::Namespace,
                            object: namespace_ref(&record.namespace),
                            drift: DriftKind::Unexpected,
                            fields: Vec::new(),
                        }],
                        not_owned: Vec::new(),
                    },
                    // Someone else's namespace of that name is not the
                    // worker's business while the tenant is not live.
                    _ => Inspection::InSync,
                });
            }
            other => {
                return Ok(Inspection::Skipped {
                    reason: format!("status {} without a saga", other.as_str()),
                });
            }
        }
        let plan = match self.record_plan(record) {
            Ok(plan) => plan,
            Err(reason) => return Ok(Inspection::Skipped { reason }),
        };
        let mut objects = Vec::new();
        let mut not_owned = Vec::new();
        for (step, desired) in self.desired_objects(record, plan).await? {
            let object = ObjectRef::of(&desired).expect("built objects have a reference");
            let (drift, fields) = match self.cluster.compare_object(tenant, &desired).await? {
                ObjectState::InSync => continue,
                ObjectState::NotOwned => {
                    not_owned.push(object);
                    continue;
                }
                ObjectState::Missing => (DriftKind::Missing, Vec::new()),
                ObjectState::Modified(fields) => (DriftKind::Modified, fields),
            };
            objects.push(Drifted {
                step,
                object,
                drift,
                fields,
            });
        }
        Ok(if objects.is_empty() && not_owned.is_empty() {
            Inspection::InSync
        } else {
            Inspection::Drifted { objects, not_owned }
        })
    }

    /// Checks `tenant` again under its lease and repairs what drifted.
    ///
    /// # Errors
    /// [`Error`] when NATS or the cluster fail; the lease is released (or
    /// expires) and nothing is left half-known: the next check finds what
    /// is still drifted.
    pub async fn repair(&self, tenant: &TenantId) -> Result<Repair, Error> {
        let Some(mut v) = self.bus.state().load(tenant).await? else {
            return Ok(Repair::NotRepaired {
                reason: "no record".into(),
            });
        };
        let inspection = self.inspect(&v.record).await?;
        let Inspection::Drifted { .. } = inspection else {
            return Ok(match inspection {
                Inspection::Skipped { reason } => Repair::NotRepaired { reason },
                _ => Repair::InSync,
            });
        };
        // The lease keeps sagas out while the repair runs; the compare-and-set
        // fails if a saga started since the record was read.
        let leased_at = v.revision.unwrap_or_default();
        v.record.lease = Some(Lease {
            holder: self.settings.replica_id.clone(),
            event_id: Uuid::nil(),
            expires_at: Timestamp::now(),
        });
        if let Err(e) = self.save(&mut v).await {
            return match e {
                Error::StateConflict { .. } => Ok(Repair::NotRepaired {
                    reason: "the record changed while checking (a saga started); try again".into(),
                }),
                e => Err(e),
            };
        }
        let held = crate::metrics::GaugeGuard::hold(&crate::metrics::metrics().leases_held);
        let result = self.repair_leased(&mut v, leased_at).await;
        drop(held);
        v.record.lease = None;
        if let Err(e) = self.save(&mut v).await {
            warn!(%tenant, error = %e, "could not release the repair lease; it will expire");
        }
        result
    }

    async fn repair_leased(&self, v: &mut Versioned, leased_at: u64) -> Result<Repair, Error> {
        let detected_at = Timestamp::now();
        let record = v.record.clone();
        let (objects, not_owned) = match self.inspect(&record).await? {
            Inspection::Drifted { objects, not_owned } => (objects, not_owned),
            Inspection::InSync => return Ok(Repair::InSync),
            Inspection::Skipped { reason } => return Ok(Repair::NotRepaired { reason }),
        };
        if objects.is_empty() {
            return Ok(Repair::NotRepaired {
                reason: format!(
                    "in the way and not managed by tenant-worker: {}",
                    list(&not_owned)
                ),
            });
        }
        let work = self.put_back(&record, &objects);
        self.leased(v, work).await??;
        let event = drift_repaired_event(&record, &objects, detected_at, leased_at);
        self.bus.publish_completion(&event).await?;
        crate::metrics::metrics().drift_repaired.inc();
        info!(
            tenant = %record.tenant_id,
            repaired = %objects.iter().map(|d| format!("{} ({})", d.object, d.drift.as_str())).collect::<Vec<_>>().join(", "),
            "drift repaired"
        );
        Ok(Repair::Repaired {
            event: Box::new(event),
        })
    }

    /// Repairs `objects` of `record`'s tenant.
    async fn put_back(&self, record: &TenantRecord, objects: &[Drifted]) -> Result<(), Error> {
        let tenant = &record.tenant_id;
        if objects.iter().any(|d| d.drift == DriftKind::Unexpected) {
            // A deleted tenant's namespace: no route, then no namespace.
            self.bus.delete_route(tenant).await?;
            self.cluster.delete_namespace(tenant).await?;
            return self.wait_namespace_gone(tenant).await;
        }
        let plan = self
            .record_plan(record)
            .map_err(|reason| Error::Unrepairable {
                tenant: tenant.clone(),
                reason,
            })?;
        let ctx = StepContext {
            cluster: &self.cluster,
            tenant: TenantObjects {
                tenant,
                namespace: &record.namespace,
                plan,
                gateway_namespace: &self.settings.gateway_namespace,
            },
        };
        // Each drifted isolation step once, in saga order (the namespace
        // first); the release's objects below.
        for &step in Step::ALL {
            if objects.iter().any(|d| d.step == step)
                && let StepObjects::Isolation(built) = step.objects(&ctx.tenant)
            {
                steps::apply_isolation(&ctx, &built).await?;
            }
        }
        let release: Vec<&Drifted> = objects.iter().filter(|d| d.step == Step::Release).collect();
        if release.is_empty() {
            return Ok(());
        }
        let history = self
            .cluster
            .release_history(&record.namespace, tenant.as_str())
            .await?;
        let deployed = deployed_at(&history, record.release_revision);
        match deployed {
            Some(deployed) => {
                let manifest = manifest_objects(&deployed.manifest);
                crate::steps::release::reapply(
                    &ctx,
                    &manifest,
                    &release.iter().map(|d| d.object.clone()).collect::<Vec<_>>(),
                    plan.readiness_timeout(),
                )
                .await?;
            }
            None => {
                // The record itself is gone: render the revision again from
                // what the tenant record says, and install it as that revision.
                let app_version = record
                    .app_version
                    .clone()
                    .unwrap_or_else(|| self.plans.default_app_version().to_owned());
                let request = ReleaseRequest {
                    tenant,
                    namespace: &record.namespace,
                    plan,
                    app_version: &app_version,
                    values: &record.values,
                    revision: record.release_revision,
                    is_upgrade: false,
                    history,
                };
                let spec =
                    self.prepare_release(request)
                        .await?
                        .map_err(|r| Error::Unrepairable {
                            tenant: tenant.clone(),
                            reason: format!(
                                "the tenant's release no longer renders ({}: {})",
                                r.reason.as_str(),
                                r.message
                            ),
                        })?;
                steps::apply(Step::Release, &ctx, &spec).await?;
            }
        }
        Ok(())
    }

    /// The plan a ready record names, or why it cannot be used.
    fn record_plan(&self, record: &TenantRecord) -> Result<&Plan, String> {
        let name = record
            .plan
            .as_deref()
            .ok_or_else(|| "the record names no plan".to_owned())?;
        self.plans
            .get(name)
            .ok_or_else(|| format!("plan {name:?} is no longer in the plan catalogue"))
    }

    /// What a ready tenant should have, with the step owning each object.
    async fn desired_objects(
        &self,
        record: &TenantRecord,
        plan: &Plan,
    ) -> Result<Vec<(Step, Value)>, Error> {
        let t = TenantObjects {
            tenant: &record.tenant_id,
            namespace: &record.namespace,
            plan,
            gateway_namespace: &self.settings.gateway_namespace,
        };
        let mut out = Vec::new();
        for &step in Step::ALL {
            match step.objects(&t) {
                StepObjects::Isolation(built) => {
                    out.extend(built.iter().map(|o| (step, o.to_value())));
                }
                // What the deployed revision's record lists, below.
                StepObjects::Release => {}
            }
        }
        if record.release_revision == 0 {
            return Ok(out);
        }
        let history = self
            .cluster
            .release_history(&record.namespace, record.tenant_id.as_str())
            .await?;
        let deployed = deployed_at(&history, record.release_revision);
        match deployed {
            Some(release) => {
                out.extend(
                    manifest_objects(&release.manifest)
                        .into_iter()
                        .map(|o| (Step::Release, o)),
                );
            }
            None => out.push((
                Step::Release,
                serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {
                        "name": secret_name(record.tenant_id.as_str(), record.release_revision),
                        "namespace": record.namespace,
                    },
                }),
            )),
        }
        Ok(out)
    }
}

impl std::fmt::Display for TenantReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenant = &self.tenant;
        let (objects, not_owned) = match &self.inspection {
            Inspection::InSync => return write!(f, "{tenant}: in sync"),
            Inspection::Skipped { reason } => return write!(f, "{tenant}: skipped: {reason}"),
            Inspection::Drifted { objects, not_owned } => (objects, not_owned),
        };
        write!(f, "{tenant}: drifted")?;
        for d in objects {
            let mark = match d.drift {
                DriftKind::Missing => '+',
                DriftKind::Modified => '~',
                DriftKind::Unexpected => '-',
            };
            write!(f, "\n  {mark} {} {}", d.object, d.drift.as_str())?;
            if !d.fields.is_empty() {
                write!(f, ": {}", d.fields.join(", "))?;
            }
        }
        for r in not_owned {
            write!(
                f,
                "\n  ! {r} is in the way and not managed by tenant-worker (left alone)"
            )?;
        }
        match &self.repair {
            Some(Repair::Repaired { event }) => {
                write!(f, "\n  repaired: tenant.drift_repaired {}", event.id)
            }
            Some(Repair::InSync) => write!(f, "\n  repaired meanwhile (in sync now)"),
            Some(Repair::NotRepaired { reason }) => write!(f, "\n  not repaired: {reason}"),
            None => Ok(()),
        }
    }
}

fn namespace_ref(namespace: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        name: namespace.to_owned(),
    }
}

fn list(refs: &[ObjectRef]) -> String {
    refs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `tenant.drift_repaired` for a repair of `objects`, its id derived from the
/// tenant and the record revision the repair's lease was taken on.
fn drift_repaired_event(
    record: &TenantRecord,
    objects: &[Drifted],
    detected_at: Timestamp,
    leased_at: u64,
) -> CloudEvent<Value> {
    let live = record.status == TenantStatus::Ready;
    let data = Completion {
        tenant_id: record.tenant_id.clone(),
        causation_id: record.last_event.as_ref().map_or(Uuid::nil(), |e| e.id),
        metadata: Default::default(),
        detail: DriftRepaired {
            namespace: record.namespace.clone(),
            plan: record.plan.clone().filter(|_| live),
            app_version: record.app_version.clone().filter(|_| live),
            release_revision: if live { record.release_revision } else { 0 },
            repaired: objects
                .iter()
                .map(|d| RepairedObject {
                    api_version: d.object.api_version.clone(),
                    kind: d.object.kind.clone(),
                    name: d.object.name.clone(),
                    drift: d.drift,
                    fields: d.fields.clone(),
                })
                .collect(),
            detected_at,
            repaired_at: Timestamp::now(),
        },
    };
    let mut event = CloudEvent::new(
        WORKER_SOURCE,
        EventType::DriftRepaired,
        record.tenant_id.clone(),
        serde_json::to_value(data).expect("events serialize"),
    );
    let name = format!("{}/{leased_at}", record.tenant_id);
    event.id = Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes());
    event
}
