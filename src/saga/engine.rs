//! The saga engine: handles one decoded inbound event end to end.
//!
//! # Guarantees
//! - The completion event is published (and confirmed by `TENANT_STATUS`) before
//!   the route and the record are written, and the caller acknowledges the
//!   inbound message only after [`Engine::handle`] returns `Ok`: a crash at any
//!   point leads to redelivery, never to a lost tenant.
//! - Re-running a handled event changes nothing: steps are idempotent
//!   server-side applies, the completion event has a deterministic
//!   `Nats-Msg-Id`, and the record remembers applied event ids.
//! - An intent older (by stream sequence) than the last applied one for the
//!   tenant changes nothing and is answered with `tenant.rejected` /
//!   `superseded`.
//! - A rejected request changes nothing in the cluster.
//!
//! # Errors
//! `handle` returns an error only when retrying later can help
//! ([`Error::is_transient`]) or when the tenant's record is unreadable; the step
//! log stays in the record so the next delivery resumes.

use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use jiff::Timestamp;
use tracing::{Instrument, info, info_span, warn};

use super::state::{SagaLog, SagaPhase, StepEntry, StepState, TenantRecord, TenantStatus};
use super::store::Versioned;
use crate::bus::{Bus, Route};
use crate::cluster::{Cluster, ClusterError, NamespaceState};
use crate::contract::{
    Deprovisioned, Endpoint, EventType, Failed, InboundEvent, Intent, IntentKind, Outcome,
    Provisioned, RejectReason, Rejected, TenantId, UpgradeCompleted, completion_event,
    completion_msg_id,
};
use crate::error::Error;
use crate::plans::{Plan, PlanCatalog};
use crate::retry::RetryPolicy;
use crate::steps::{Step, StepContext};

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Namespace of the routing gateway, admitted by each tenant's NetworkPolicy.
    pub gateway_namespace: String,
    /// Service name of the tenant's application, for the route's host.
    pub app_service: String,
    /// Port of the tenant's application service.
    pub app_port: u16,
    /// How long one delivery waits for a deleted namespace to disappear before
    /// giving the message back (it is redelivered and waits again).
    pub namespace_deletion_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            gateway_namespace: "tenant-gateway".into(),
            app_service: "app".into(),
            app_port: 8080,
            namespace_deletion_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}

/// What happened to an inbound event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Handled {
    /// Applied (or rejected); this completion event type was published.
    Completed(EventType),
    /// Already applied earlier: nothing done, nothing published.
    Duplicate,
}

/// Runs tenant sagas.
#[derive(Clone)]
pub struct Engine {
    pub cluster: Cluster,
    pub plans: Arc<PlanCatalog>,
    pub bus: Bus,
    pub settings: EngineSettings,
}

/// How a saga's steps ended.
enum StepsResult {
    /// Every step applied; the record says the tenant is ready on the new plan.
    Done,
    /// A step failed for good and the done steps were undone.
    Failed(Failed),
}

/// What a provisioning saga is to bring the tenant to.
struct Target<'a> {
    intent: IntentKind,
    /// The record's status while the saga runs.
    status: TenantStatus,
    plan: &'a Plan,
    app_version: &'a str,
    /// The plan a live tenant ran before: compensation re-applies it instead of
    /// removing the tenant.
    rollback: Option<&'a Plan>,
}

impl Engine {
    /// Handles `event`, delivered from stream sequence `sequence`.
    ///
    /// Logs inside the caller's span, which names the tenant and the event
    /// (the worker's `event` span), so log lines here do not repeat them.
    ///
    /// # Errors
    /// See the module documentation.
    pub async fn handle(&self, event: &InboundEvent, sequence: u64) -> Result<Handled, Error> {
        let tenant = &event.tenant_id;
        let mut v = match self.bus.state().load(tenant).await? {
            Some(v) => v,
            None => Versioned {
                record: TenantRecord::new(tenant.clone(), self.cluster.namespace_for(tenant)),
                revision: None,
            },
        };
        if v.record.has_applied(&event.id) {
            info!("event already applied; acknowledging");
            return Ok(Handled::Duplicate);
        }
        let outcome = if sequence < v.record.last_sequence {
            Outcome::Rejected(Rejected {
                reason: RejectReason::Superseded,
                message: format!(
                    "a later event for tenant {tenant} (stream sequence {}) was applied first; \
                     this one (sequence {sequence}) changes nothing",
                    v.record.last_sequence
                ),
            })
        } else {
            match &event.intent {
                Intent::Requested(d) => {
                    let version = d.app_version.clone();
                    self.provision(&mut v, event, sequence, &d.plan, version)
                        .await?
                }
                Intent::Upgraded(d) => self.upgrade(&mut v, event, sequence, d).await?,
                Intent::Deleted(_) => self.deprovision(&mut v, event, sequence).await?,
            }
        };
        let event_type = outcome.event_type();
        self.bus
            .publish_completion(
                &completion_event(event, &outcome),
                &completion_msg_id(&event.id, event_type),
            )
            .await?;
        self.update_route(tenant, &v.record, &outcome).await?;
        v.record
            .finish(event.id, event.intent.event_type(), sequence, event_type);
        self.bus.state().save(&mut v).await?;
        match &outcome {
            Outcome::Rejected(r) => {
                info!(reason = r.reason.as_str(), message = %r.message, "rejected");
            }
            Outcome::Failed(f) => {
                warn!(failed_step = %f.failed_step, error = %f.error, compensated = f.compensated, "saga failed");
            }
            _ => {
                info!(outcome = %event_type, status = v.record.status.as_str(), "done")
            }
        }
        Ok(Handled::Completed(event_type))
    }

    fn rejected(reason: RejectReason, message: String) -> Outcome {
        Outcome::Rejected(Rejected { reason, message })
    }

    async fn provision(
        &self,
        v: &mut Versioned,
        event: &InboundEvent,
        sequence: u64,
        plan_name: &str,
        app_version: Option<String>,
    ) -> Result<Outcome, Error> {
        let tenant = &event.tenant_id;
        let Some(plan) = self.plans.get(plan_name) else {
            return Ok(Self::rejected(
                RejectReason::UnknownPlan,
                format!(
                    "plan {plan_name:?} does not exist; known plans: {}",
                    self.plans.names().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        if self.cluster.namespace_state(tenant).await? == NamespaceState::Foreign {
            return Ok(self.not_owned(tenant));
        }
        // A tenant that is live keeps running on its previous plan if this fails.
        let rollback = self.live_plan(&v.record);
        let app_version = app_version
            .or_else(|| v.record.app_version.clone())
            .unwrap_or_else(|| self.plans.default_app_version().to_owned());
        let status = if rollback.is_some() {
            TenantStatus::Upgrading
        } else {
            TenantStatus::Provisioning
        };
        let target = Target {
            intent: IntentKind::Requested,
            status,
            plan,
            app_version: &app_version,
            rollback,
        };
        Ok(match self.run_steps(v, event, sequence, &target).await? {
            StepsResult::Failed(f) => Outcome::Failed(f),
            StepsResult::Done => Outcome::Provisioned(Provisioned {
                plan: plan.name.clone(),
                namespace: v.record.namespace.clone(),
                endpoint: self.endpoint(&v.record.namespace),
                release_revision: v.record.release_revision,
                resources: plan.quota.clone(),
                completed_at: Timestamp::now(),
                app_version,
            }),
        })
    }

    async fn upgrade(
        &self,
        v: &mut Versioned,
        event: &InboundEvent,
        sequence: u64,
        d: &crate::contract::TenantUpgraded,
    ) -> Result<Outcome, Error> {
        let tenant = &event.tenant_id;
        let Some(previous) = self.live_plan(&v.record) else {
            return Ok(Self::rejected(
                RejectReason::TenantNotFound,
                format!(
                    "tenant {tenant} is {}, not provisioned: nothing to upgrade",
                    v.record.status.as_str()
                ),
            ));
        };
        let plan_name = d.plan.as_deref().unwrap_or(&previous.name);
        let Some(plan) = self.plans.get(plan_name) else {
            return Ok(Self::rejected(
                RejectReason::UnknownPlan,
                format!("plan {plan_name:?} does not exist"),
            ));
        };
        if self.cluster.namespace_state(tenant).await? == NamespaceState::Foreign {
            return Ok(self.not_owned(tenant));
        }
        let previous_app_version = v
            .record
            .app_version
            .clone()
            .unwrap_or_else(|| self.plans.default_app_version().to_owned());
        let app_version = d
            .app_version
            .clone()
            .unwrap_or_else(|| previous_app_version.clone());
        let previous_plan = previous.name.clone();
        let target = Target {
            intent: IntentKind::Upgraded,
            status: TenantStatus::Upgrading,
            plan,
            app_version: &app_version,
            rollback: Some(previous),
        };
        Ok(match self.run_steps(v, event, sequence, &target).await? {
            StepsResult::Failed(f) => Outcome::Failed(f),
            StepsResult::Done => Outcome::UpgradeCompleted(UpgradeCompleted {
                previous_plan,
                plan: plan.name.clone(),
                previous_app_version,
                release_revision: v.record.release_revision,
                resources: plan.quota.clone(),
                effective_at: Timestamp::now(),
                app_version,
            }),
        })
    }

    async fn deprovision(
        &self,
        v: &mut Versioned,
        event: &InboundEvent,
        sequence: u64,
    ) -> Result<Outcome, Error> {
        let tenant = &event.tenant_id;
        let namespace = self.cluster.namespace_for(tenant);
        match self.cluster.namespace_state(tenant).await? {
            NamespaceState::Foreign => return Ok(self.not_owned(tenant)),
            NamespaceState::Absent => {}
            NamespaceState::Owned { .. } => {
                v.record.status = TenantStatus::Deprovisioning;
                v.record.saga = Some(SagaLog {
                    event_id: event.id,
                    sequence,
                    intent: IntentKind::Deleted,
                    phase: SagaPhase::Forward,
                    steps: Vec::new(),
                    started_at: Timestamp::now(),
                });
                self.bus.state().save(v).await?;
                // No traffic to a dying tenant: the route goes before the namespace.
                self.bus.delete_route(tenant).await?;
                self.with_retry(|| self.cluster.delete_namespace(tenant))
                    .await?;
                self.wait_namespace_gone(tenant).await?;
            }
        }
        // `update_route` withdraws any route left over for an absent namespace.
        let record = &mut v.record;
        record.status = if matches!(record.status, TenantStatus::Absent) {
            TenantStatus::Absent
        } else {
            TenantStatus::Deleted
        };
        record.plan = None;
        record.app_version = None;
        record.release_revision = 0;
        Ok(Outcome::Deprovisioned(Deprovisioned {
            namespace,
            deleted_at: Timestamp::now(),
        }))
    }

    async fn wait_namespace_gone(&self, tenant: &TenantId) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + self.settings.namespace_deletion_timeout;
        loop {
            if self.cluster.namespace_state(tenant).await? == NamespaceState::Absent {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(
                    ClusterError::NamespaceTerminating(self.cluster.namespace_for(tenant)).into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs the provisioning steps towards `target`, persisting the log after
    /// each one. On a permanent failure, undoes the done steps in reverse:
    /// removes them, or, when the tenant was live, re-applies them with the plan
    /// it ran before. Leaves the record's status, plan and version as the
    /// outcome says.
    async fn run_steps(
        &self,
        v: &mut Versioned,
        event: &InboundEvent,
        sequence: u64,
        target: &Target<'_>,
    ) -> Result<StepsResult, Error> {
        let tenant = &event.tenant_id;
        let namespace = v.record.namespace.clone();
        // A redelivery of the same event resumes its log; anything else starts anew.
        let resume = v
            .record
            .saga
            .as_ref()
            .is_some_and(|s| s.event_id == event.id);
        if !resume {
            v.record.saga = Some(SagaLog {
                event_id: event.id,
                sequence,
                intent: target.intent,
                phase: SagaPhase::Forward,
                steps: Vec::new(),
                started_at: Timestamp::now(),
            });
        }
        v.record.status = target.status;
        self.bus.state().save(v).await?;
        let ctx = StepContext {
            cluster: &self.cluster,
            tenant,
            namespace: &namespace,
            plan: target.plan,
            gateway_namespace: &self.settings.gateway_namespace,
        };
        for step in Step::PROVISION {
            let result = self
                .with_retry(|| step.apply(&ctx))
                .instrument(info_span!("step", step = step.as_str()))
                .await;
            match result {
                Ok(()) => {
                    let saga = v.record.saga.as_mut().expect("saga set above");
                    if !saga.steps.iter().any(|e| e.step == step) {
                        saga.steps.push(StepEntry {
                            step,
                            state: StepState::Done,
                            at: Timestamp::now(),
                        });
                    }
                    self.bus.state().save(v).await?;
                }
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => {
                    warn!(step = step.as_str(), error = %e, "step failed permanently; compensating");
                    let failed = self
                        .compensate(v, &ctx, target.intent, step, e.to_string(), target.rollback)
                        .await?;
                    let record = &mut v.record;
                    // A live tenant that was rolled back stays live on its previous plan.
                    let live = target.rollback.is_some() && failed.compensated;
                    record.status = if live {
                        TenantStatus::Ready
                    } else {
                        TenantStatus::Failed
                    };
                    if target.rollback.is_none() {
                        record.plan = None;
                        record.app_version = None;
                    }
                    return Ok(StepsResult::Failed(failed));
                }
            }
        }
        let record = &mut v.record;
        record.status = TenantStatus::Ready;
        record.plan = Some(target.plan.name.clone());
        record.app_version = Some(target.app_version.to_owned());
        Ok(StepsResult::Done)
    }

    async fn compensate(
        &self,
        v: &mut Versioned,
        ctx: &StepContext<'_>,
        intent: IntentKind,
        failed_step: Step,
        error: String,
        rollback: Option<&Plan>,
    ) -> Result<Failed, Error> {
        let saga = v
            .record
            .saga
            .as_mut()
            .expect("compensation runs inside a saga");
        saga.phase = SagaPhase::Compensating;
        let done: Vec<Step> = saga
            .steps
            .iter()
            .filter(|e| e.state == StepState::Done)
            .map(|e| e.step)
            .collect();
        self.bus.state().save(v).await?;
        let mut compensated = true;
        let mut undone = Vec::new();
        // The failed step may have half-applied (the RBAC step writes three
        // objects), so it is undone too; compensation tolerates apply never
        // having run.
        for step in
            std::iter::once(failed_step).chain(done.into_iter().rev().filter(|s| *s != failed_step))
        {
            let result = match rollback {
                Some(previous) => {
                    let back = StepContext {
                        plan: previous,
                        ..*ctx
                    };
                    self.with_retry(|| step.apply(&back)).await
                }
                None => self.with_retry(|| step.compensate(ctx)).await,
            };
            let state = match result {
                Ok(()) => {
                    undone.push(step.as_str().to_owned());
                    StepState::Compensated
                }
                Err(e) => {
                    warn!(step = step.as_str(), error = %e, "compensation failed");
                    compensated = false;
                    StepState::CompensationFailed
                }
            };
            let saga = v.record.saga.as_mut().expect("saga present");
            match saga.steps.iter_mut().find(|e| e.step == step) {
                Some(entry) => {
                    entry.state = state;
                    entry.at = Timestamp::now();
                }
                None => saga.steps.push(StepEntry {
                    step,
                    state,
                    at: Timestamp::now(),
                }),
            }
            self.bus.state().save(v).await?;
        }
        Ok(Failed {
            intent,
            failed_step: failed_step.as_str().to_owned(),
            error,
            compensated,
            compensation: undone,
        })
    }

    /// The plan of a tenant that is live, if it is.
    fn live_plan(&self, record: &TenantRecord) -> Option<&Plan> {
        match record.status {
            TenantStatus::Ready | TenantStatus::Upgrading => {
                record.plan.as_deref().and_then(|p| self.plans.get(p))
            }
            _ => None,
        }
    }

    fn not_owned(&self, tenant: &TenantId) -> Outcome {
        Self::rejected(
            RejectReason::NamespaceNotOwned,
            format!(
                "namespace {} exists and is not managed by tenant-worker for tenant {tenant}; it was left untouched",
                self.cluster.namespace_for(tenant)
            ),
        )
    }

    fn endpoint(&self, namespace: &str) -> Endpoint {
        Endpoint {
            host: format!(
                "{}.{namespace}.svc.cluster.local",
                self.settings.app_service
            ),
            port: self.settings.app_port,
        }
    }

    async fn update_route(
        &self,
        tenant: &TenantId,
        record: &TenantRecord,
        outcome: &Outcome,
    ) -> Result<(), Error> {
        match outcome {
            Outcome::Provisioned(_) | Outcome::UpgradeCompleted(_) => {
                let endpoint = self.endpoint(&record.namespace);
                let route = Route {
                    namespace: record.namespace.clone(),
                    host: endpoint.host,
                    port: endpoint.port,
                    app_version: record.app_version.clone().unwrap_or_default(),
                    plan: record.plan.clone().unwrap_or_default(),
                    status: "ready".into(),
                };
                self.bus.put_route(tenant, &route).await
            }
            Outcome::Deprovisioned(_) => self.bus.delete_route(tenant).await,
            Outcome::Failed(_) if record.status != TenantStatus::Ready => {
                self.bus.delete_route(tenant).await
            }
            Outcome::Failed(_) | Outcome::Rejected(_) => Ok(()),
        }
    }

    /// Retries a cluster call in-process while its error is transient.
    async fn with_retry<T, F, Fut>(&self, f: F) -> Result<T, ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClusterError>>,
    {
        f.retry(self.settings.retry.in_process())
            .when(ClusterError::is_transient)
            .await
    }
}
