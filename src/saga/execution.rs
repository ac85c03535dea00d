//! Running a provisioning saga's steps forward, logging each, and undoing
//! them in reverse when one fails for good.

use std::sync::atomic::Ordering;

use tracing::{Instrument, info_span, warn};

use serde_json::Value;

use super::engine::Engine;
use super::prepare::ReleaseRequest;
use crate::bus::state::Versioned;
use crate::cluster::release_records::deployed;
use crate::contract::{CompensationFailure, Failed, InboundEvent, IntentKind, Rejected, TenantId};
use crate::error::Error;
use crate::failpoint::crash_point;
use crate::plans::Plan;
use crate::record::{SagaStage, StepFailure, StepState, TenantRecord, TenantStatus};
use crate::steps::release::ReleaseSpec;
use crate::steps::{self, Step, StepContext, TenantObjects};
use tenant_core::rules;

/// How a saga's steps ended.
pub(super) enum StepsResult {
    /// Every step applied; the record says the tenant is ready on the new plan.
    Done,
    /// A step failed for good and the done steps were undone.
    Failed(Failed),
    /// The release cannot be installed as asked (values, rendering,
    /// isolation); nothing was changed.
    Rejected(Rejected),
}

/// Where a saga's delivery picks up.
enum Course {
    /// Going forward, with the release revision it installs.
    Forward(Box<ReleaseSpec>),
    /// A step failed for good: undoing what was done.
    Undoing(StepFailure),
}

/// What a provisioning saga is to bring the tenant to.
pub(super) struct Target<'a> {
    /// The record's status while the saga runs.
    pub status: TenantStatus,
    /// The tenant's namespace did not exist when the request was checked, so
    /// it holds no release records yet (this saga, holding the tenant's
    /// lease, is the one to create it; a resumed saga checks again).
    pub namespace_absent: bool,
    pub plan: &'a Plan,
    pub app_version: &'a str,
    /// The tenant's own chart values (the event layer).
    pub values: &'a Value,
    /// The plan a live tenant ran before: compensation re-applies it instead of
    /// removing the tenant.
    pub rollback: Option<&'a Plan>,
}

impl Engine {
    /// Runs the provisioning steps towards `target`, persisting the log after
    /// each one; a resumed saga that was compensating goes on compensating.
    /// The release is rendered and checked first: a request that cannot be
    /// installed is rejected before anything changes. On a permanent failure,
    /// undoes the done steps in reverse: removes them, or, when the tenant was
    /// live, puts back what it ran before. Leaves the record's status, plan,
    /// version, values and release revision as the outcome says.
    pub(super) async fn run_steps(
        &self,
        v: &mut Versioned,
        event: &InboundEvent,
        target: &Target<'_>,
    ) -> Result<StepsResult, Error> {
        let tenant = &event.tenant_id;
        let namespace = v.record.namespace.clone();
        let saga = v.record.saga.as_ref().expect("acquire opened the saga");
        // What the saga started with wins over what the record says now: the
        // status changed when it started.
        let rollback = match saga.rollback_plan.as_deref() {
            Some(name) => self.plans.get(name).or(target.rollback),
            None if saga.plan.is_some() => None,
            None => target.rollback,
        };
        let known_revision = saga.release_revision;
        // A saga that is undoing needs no rendering: undoing works from the
        // release records in the cluster.
        let course = match saga.stage() {
            SagaStage::Compensating(failure) => Course::Undoing(failure.clone()),
            // A decided saga does not come here: it only publishes.
            SagaStage::Forward | SagaStage::Decided(_) => {
                let history = if target.namespace_absent {
                    Vec::new()
                } else {
                    self.cluster
                        .release_history(&namespace, tenant.as_str())
                        .await?
                };
                let revision =
                    known_revision.unwrap_or_else(|| history.last().map_or(1, |r| r.version + 1));
                let request = ReleaseRequest {
                    tenant,
                    namespace: &namespace,
                    plan: target.plan,
                    app_version: target.app_version,
                    values: target.values,
                    revision,
                    is_upgrade: history.iter().any(|r| r.version < revision),
                    history,
                };
                match self.prepare_release(request).await? {
                    Ok(spec) => Course::Forward(Box::new(spec)),
                    Err(rejected) => return Ok(StepsResult::Rejected(rejected)),
                }
            }
        };
        let saga = v.record.saga.as_mut().expect("acquire opened the saga");
        saga.plan = Some(target.plan.name.clone());
        saga.app_version = Some(target.app_version.to_owned());
        saga.rollback_plan = rollback.map(|p| p.name.clone());
        if let Course::Forward(spec) = &course {
            saga.release_revision = Some(spec.revision);
        }
        v.record.status = target.status;
        self.save(v).await?;
        let ctx = StepContext {
            cluster: &self.cluster,
            tenant: TenantObjects {
                tenant,
                namespace: &namespace,
                plan: target.plan,
                gateway_namespace: &self.settings.gateway_namespace,
            },
        };
        let failure = match course {
            Course::Undoing(failure) => failure,
            Course::Forward(spec) => match self.forward(v, &ctx, &spec).await? {
                None => {
                    let record = &mut v.record;
                    record.status = TenantStatus::Ready;
                    record.plan = Some(target.plan.name.clone());
                    record.app_version = Some(target.app_version.to_owned());
                    record.values = target.values.clone();
                    record.release_revision = spec.revision;
                    return Ok(StepsResult::Done);
                }
                Some(failure) => failure,
            },
        };
        let intent = event.intent.kind();
        let failed = self.compensate(v, &ctx, intent, failure, rollback).await?;
        Self::settle_failure(&mut v.record, rollback.is_some(), &failed);
        v.record.release_revision = self.deployed_revision(&namespace, tenant).await?;
        Ok(StepsResult::Failed(failed))
    }

    /// The revision of the tenant's release that is deployed now (0: none).
    pub(super) async fn deployed_revision(
        &self,
        namespace: &str,
        tenant: &TenantId,
    ) -> Result<u32, Error> {
        let history = self
            .cluster
            .release_history(namespace, tenant.as_str())
            .await?;
        Ok(deployed(&history).map_or(0, |r| r.version))
    }

    /// Applies every step not yet done, logging each. Returns the permanent
    /// failure, if any (already written into the log with the phase set to
    /// compensating).
    pub(super) async fn forward(
        &self,
        v: &mut Versioned,
        ctx: &StepContext<'_>,
        release: &ReleaseSpec,
    ) -> Result<Option<StepFailure>, Error> {
        for &step in Step::ALL {
            // Resuming: a step this saga logged as done is not run again.
            if v.record.saga.as_ref().is_some_and(|s| s.is_done(step)) {
                continue;
            }
            self.check_stopping()?;
            let applying = timed(step, "apply", steps::apply(step, ctx, release))
                .instrument(info_span!("step", step = step.as_str()));
            match self.leased(v, applying).await? {
                Ok(()) => {
                    crash_point(&format!("saga.after_apply.{step}"));
                    let saga = v.record.saga.as_mut().expect("saga open");
                    saga.mark(step, StepState::Done);
                    self.save(v).await?;
                }
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => {
                    warn!(step = step.as_str(), error = %e, "step failed permanently; compensating");
                    let failure = StepFailure {
                        step,
                        error: e.to_string(),
                    };
                    let saga = v.record.saga.as_mut().expect("saga open");
                    saga.fail(failure.clone());
                    self.save(v).await?;
                    return Ok(Some(failure));
                }
            }
        }
        Ok(None)
    }

    /// Undoes the saga's steps in reverse, starting with the failed one (it may
    /// have half-applied: the RBAC step writes three objects). Steps already
    /// undone by an earlier delivery are not undone again. With `rollback`,
    /// "undo" re-applies the previous plan instead of removing.
    pub(super) async fn compensate(
        &self,
        v: &mut Versioned,
        ctx: &StepContext<'_>,
        intent: IntentKind,
        failure: StepFailure,
        rollback: Option<&Plan>,
    ) -> Result<Failed, Error> {
        let saga = v
            .record
            .saga
            .as_ref()
            .expect("compensation runs inside a saga");
        let order = rules::compensation_order(Some(failure.step), saga);
        let mut undone = Vec::new();
        let mut failures = Vec::new();
        for step in order {
            let saga = v.record.saga.as_ref().expect("saga open");
            if rules::is_compensated(saga, step) {
                undone.push(step.as_str().to_owned());
                continue;
            }
            self.check_stopping()?;
            let undoing = timed(step, "compensate", async {
                match rollback {
                    Some(previous) => steps::roll_back(step, ctx, previous).await,
                    None => steps::compensate(step, ctx).await,
                }
            })
            .instrument(info_span!("compensate", step = step.as_str()));
            let state = match self.leased(v, undoing).await? {
                Ok(()) => {
                    crash_point(&format!("saga.after_compensate.{step}"));
                    undone.push(step.as_str().to_owned());
                    StepState::Compensated
                }
                Err(e) => {
                    warn!(step = step.as_str(), error = %e, "compensation failed");
                    failures.push(CompensationFailure {
                        step: step.as_str().to_owned(),
                        error: e.to_string(),
                    });
                    StepState::CompensationFailed
                }
            };
            v.record.saga.as_mut().expect("saga open").mark(step, state);
            self.save(v).await?;
        }
        Ok(Failed {
            intent,
            failed_step: failure.step.as_str().to_owned(),
            error: failure.error,
            compensated: failures.is_empty(),
            compensation: undone,
            compensation_failed: failures,
        })
    }

    /// Sets the record after a compensated failure: a live tenant that was
    /// rolled back stays live on its previous plan; anything else is failed and
    /// runs nothing.
    pub(super) fn settle_failure(record: &mut TenantRecord, had_rollback: bool, failed: &Failed) {
        record.status = if had_rollback && failed.compensated {
            TenantStatus::Ready
        } else {
            TenantStatus::Failed
        };
        if !had_rollback {
            record.plan = None;
            record.app_version = None;
        }
    }

    /// [`Error::Interrupted`] once the process is shutting down.
    pub(super) fn check_stopping(&self) -> Result<(), Error> {
        if self.stopping.load(Ordering::SeqCst) {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// Runs `work` (one step in `direction`), observing its duration.
async fn timed<T>(step: Step, direction: &'static str, work: impl Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let out = work.await;
    crate::metrics::metrics()
        .step_duration
        .get_or_create(&crate::metrics::StepLabels {
            step: step.as_str(),
            direction,
        })
        .observe(started.elapsed().as_secs_f64());
    out
}
