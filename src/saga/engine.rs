//! The saga engine: handles one decoded inbound event end to end.
//!
//! # Guarantees
//! - One replica at a time works on a tenant: the record carries a [`Lease`]
//!   (holder, event, expiry), taken with compare-and-set before anything is
//!   changed, renewed while the saga runs and released when it ends. A replica
//!   that dies leaves the lease to expire; another one takes over after that.
//! - The step log is written after every step, so a redelivery of the same
//!   event resumes the saga (forward: steps are idempotent) or goes on undoing
//!   it (compensating). The completion event is decided and written into the
//!   log before it is published, so a resumed saga publishes exactly that event
//!   (same id, same `Nats-Msg-Id`), and publishes it only if `TENANT_STATUS`
//!   does not have it yet: one completion event per inbound event.
//! - The completion event is confirmed by `TENANT_STATUS` before the route and
//!   the record are written, and the caller acknowledges the inbound message
//!   only after [`Engine::handle`] returns `Ok`: a crash at any point leads to
//!   redelivery, never to a lost tenant.
//! - Per-tenant order by stream sequence: an intent older than the last applied
//!   one (or than the saga in flight) changes nothing and is answered with
//!   `tenant.rejected` / `superseded`; a newer one waits until the saga in
//!   flight has ended.
//! - A rejected request changes nothing in the cluster.
//!
//! # Errors
//! `handle` returns an error only when retrying later can help
//! ([`Error::is_transient`]: including [`Error::TenantBusy`] and
//! [`Error::SagaPending`], which ask for a later delivery) or when the tenant's
//! record is unreadable. The step log stays in the record, with the failed
//! attempt noted and the lease released, so the next delivery resumes at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value};
use tracing::{debug, info, warn};

use super::execution::{StepsResult, Target};
use crate::bus::state::Versioned;
use crate::bus::{Bus, Route, service_host};
use crate::cluster::{Cluster, ClusterError, NamespaceState};
use crate::contract::{
    CloudEvent, Deprovisioned, Endpoint, EventType, InboundEvent, Intent, Outcome, Provisioned,
    RejectReason, Rejected, TenantId, TenantUpgraded, UpgradeCompleted, completion_event,
};
use crate::error::Error;
use crate::failpoint::crash_point;
use crate::metrics::{GaugeGuard, IntentLabels, OutcomeLabels, metrics};
use crate::plans::{Plan, PlanCatalog};
use crate::record::{SagaStage, TenantRecord, TenantStatus};
use crate::retry::RetryPolicy;
use helm::Chart;
use tenant_core::rules::{self, Admission, Shape};

/// The pseudo-step named in `tenant.failed` when deleting the namespace fails.
pub const DELETE_NAMESPACE_STEP: &str = "delete_namespace";

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
    /// This replica's name in leases; unique among running replicas.
    pub replica_id: String,
    /// How long a lease keeps other replicas out without renewal. It is renewed
    /// every third of this while a saga runs, so only a dead replica's lease
    /// expires; a tenant whose replica died waits at most this long.
    pub lease_ttl: Duration,
    /// Inbound events larger than this are poison (dead-lettered); the
    /// ordering check skips them too.
    pub max_event_bytes: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            gateway_namespace: "tenant-gateway".into(),
            app_service: "app".into(),
            app_port: 8080,
            namespace_deletion_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            replica_id: default_replica_id(),
            lease_ttl: Duration::from_secs(30),
            max_event_bytes: 256 * 1024,
        }
    }
}

/// `<host>-<pid>`: the pod name in Kubernetes (`HOSTNAME`), made unique per
/// process so that several workers on one machine do not share leases.
pub fn default_replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tenant-worker".into());
    format!("{host}-{}", std::process::id())
}

/// Which delivery of which stream message is being handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Stream sequence in `TENANT_LIFECYCLE`.
    pub sequence: u64,
    /// JetStream delivery count, 1-based.
    pub delivered: u64,
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
    /// The chart every tenant's release installs.
    pub chart: Arc<Chart>,
    pub bus: Bus,
    pub settings: EngineSettings,
    /// Set when the process is shutting down: sagas stop at the next step
    /// boundary, checkpoint and give their message back.
    pub stopping: Arc<AtomicBool>,
}

impl Engine {
    /// A new engine; `stopping` starts unset.
    pub fn new(
        cluster: Cluster,
        plans: Arc<PlanCatalog>,
        chart: Arc<Chart>,
        bus: Bus,
        settings: EngineSettings,
    ) -> Self {
        Self {
            cluster,
            plans,
            chart,
            bus,
            settings,
            stopping: Arc::default(),
        }
    }

    /// Asks running sagas to stop at their next step boundary.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Whether [`Engine::stop`] was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Handles `event`, delivered as `delivery`.
    ///
    /// Logs inside the caller's span, which names the tenant and the event
    /// (the worker's `event` span), so log lines here do not repeat them.
    ///
    /// # Errors
    /// See the module documentation.
    pub async fn handle(&self, event: &InboundEvent, delivery: Delivery) -> Result<Handled, Error> {
        let tenant = &event.tenant_id;
        let mut v = self.load(tenant).await?;
        let admission = rules::admit(
            &v.record,
            event,
            delivery.sequence,
            &self.settings.replica_id,
            Timestamp::now(),
        );
        match admission {
            Admission::Duplicate => {
                info!("event already applied; acknowledging");
                return Ok(Handled::Duplicate);
            }
            Admission::Busy { holder, until } => {
                return Err(Error::TenantBusy {
                    tenant: tenant.clone(),
                    holder,
                    until,
                });
            }
            Admission::Superseded(rejected) => {
                // A stale replay still waits for the events published before
                // it: concluding it first would move the tenant past them,
                // and they would be superseded in turn although nothing newer
                // was applied.
                if event.replay_as_of.is_some() {
                    self.wait_for_older(&v.record, event, delivery.sequence)
                        .await?;
                }
                v.record.finish(
                    event.id,
                    event.intent.event_type(),
                    delivery.sequence,
                    EventType::Rejected,
                );
                let superseded = Outcome::Rejected(rejected);
                let completion = completion_event(event, &superseded);
                self.bus.publish_completion(&completion).await?;
                // The rejection is remembered with compare-and-set: a replica
                // that took the tenant in between makes this delivery retry.
                self.bus.state().save(&mut v).await?;
                log_outcome(&superseded, &v.record);
                return Ok(Handled::Completed(EventType::Rejected));
            }
            Admission::Pending { event_id, sequence } => {
                // An older event's saga has not ended: its redelivery finishes it.
                return Err(Error::SagaPending {
                    tenant: tenant.clone(),
                    event_id,
                    sequence,
                });
            }
            Admission::Run { .. } => {}
        }
        self.wait_for_older(&v.record, event, delivery.sequence)
            .await?;
        self.acquire(&mut v, event, delivery.sequence).await?;
        // Held (or left to expire) until `handle` returns.
        let _lease = GaugeGuard::hold(&metrics().leases_held);
        let result = self.run(&mut v, event, delivery.sequence).await;
        if let Err(e) = &result
            && e.is_transient()
        {
            self.checkpoint_failure(&mut v, delivery, e).await;
        }
        result
    }

    pub(super) async fn load(&self, tenant: &TenantId) -> Result<Versioned, Error> {
        Ok(match self.bus.state().load(tenant).await? {
            Some(v) => v,
            None => Versioned {
                record: TenantRecord::new(tenant.clone(), self.cluster.namespace_for(tenant)),
                revision: None,
            },
        })
    }

    /// Runs the saga of `event` (resumed where its log stands), publishes its
    /// completion once, updates the route and closes the record.
    async fn run(
        &self,
        v: &mut Versioned,
        event: &InboundEvent,
        sequence: u64,
    ) -> Result<Handled, Error> {
        let saga = v.record.saga.as_ref().expect("acquire opened the saga");
        let decided = match saga.stage() {
            SagaStage::Decided(completion) => Some(completion.clone()),
            SagaStage::Forward | SagaStage::Compensating(_) => None,
        };
        let completion = match decided {
            Some(completion) => {
                info!(outcome = %completion.event_type, "completion already decided; publishing it");
                completion
            }
            None => {
                let outcome = match &event.intent {
                    Intent::Requested(d) => {
                        let shape = Shape::requested(v.record.app_version.as_deref(), d);
                        self.provision(v, event, shape).await?
                    }
                    Intent::Upgraded(d) => self.upgrade(v, event, d).await?,
                    Intent::Deleted(_) => self.deprovision(v).await?,
                };
                log_outcome(&outcome, &v.record);
                self.decide(v, completion_event(event, &outcome)).await?
            }
        };
        self.conclude(v, event, sequence, completion).await
    }

    /// Writes the completion event into the saga log before it is published.
    pub(super) async fn decide(
        &self,
        v: &mut Versioned,
        completion: CloudEvent<Value>,
    ) -> Result<CloudEvent<Value>, Error> {
        let saga = v.record.saga.as_mut().expect("a saga is open");
        saga.completion = Some(completion.clone());
        self.save(v).await?;
        crash_point("saga.before_publish");
        Ok(completion)
    }

    /// Publishes the decided completion (unless `TENANT_STATUS` has it
    /// already), updates the route, and closes the record, releasing the lease.
    pub(super) async fn conclude(
        &self,
        v: &mut Versioned,
        event: &InboundEvent,
        sequence: u64,
        completion: CloudEvent<Value>,
    ) -> Result<Handled, Error> {
        if self.bus.is_published(&completion).await? {
            info!(outcome = %completion.event_type, "completion event already on TENANT_STATUS");
        } else {
            self.bus.publish_completion(&completion).await?;
        }
        crash_point("saga.after_publish");
        count_completion(event, &completion);
        let event_type = completion.event_type;
        self.update_route(&event.tenant_id, &v.record, event_type, sequence)
            .await?;
        v.record
            .finish(event.id, event.intent.event_type(), sequence, event_type);
        debug!(replica = %self.settings.replica_id, "lease released");
        self.save(v).await?;
        Ok(Handled::Completed(event_type))
    }

    pub(super) fn rejected(reason: RejectReason, message: String) -> Outcome {
        Outcome::Rejected(Rejected { reason, message })
    }

    async fn provision(
        &self,
        v: &mut Versioned,
        event: &InboundEvent,
        shape: Shape,
    ) -> Result<Outcome, Error> {
        let tenant = &event.tenant_id;
        let plan_name = &shape.plan;
        let Some(plan) = self.plans.get(plan_name) else {
            return Ok(Self::rejected(
                RejectReason::UnknownPlan,
                format!(
                    "plan {plan_name:?} does not exist; known plans: {}",
                    self.plans.names().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        if let Some(rejected) =
            gateway_collision(&self.cluster.namespace_for(tenant), &self.settings)
        {
            return Ok(Outcome::Rejected(rejected));
        }
        let namespace = self.cluster.namespace_state(tenant).await?;
        if namespace == NamespaceState::Foreign {
            return Ok(self.not_owned(tenant));
        }
        // A tenant that is live keeps running on its previous plan if this fails.
        let rollback = self.rollback_plan(&v.record);
        let app_version = shape
            .app_version
            .unwrap_or_else(|| self.plans.default_app_version().to_owned());
        let status = if rollback.is_some() {
            TenantStatus::Upgrading
        } else {
            TenantStatus::Provisioning
        };
        let target = Target {
            status,
            namespace_absent: namespace == NamespaceState::Absent,
            plan,
            app_version: &app_version,
            values: &shape.values,
            rollback,
        };
        Ok(match self.run_steps(v, event, &target).await? {
            StepsResult::Rejected(r) => Outcome::Rejected(r),
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
        d: &TenantUpgraded,
    ) -> Result<Outcome, Error> {
        let tenant = &event.tenant_id;
        let Some(previous) = self.rollback_plan(&v.record) else {
            return Ok(Self::rejected(
                RejectReason::TenantNotFound,
                format!(
                    "tenant {tenant} is {}, not provisioned: nothing to upgrade",
                    v.record.status.as_str()
                ),
            ));
        };
        let current = Shape {
            plan: previous.name.clone(),
            app_version: v.record.app_version.clone(),
            values: v.record.values.clone(),
        };
        let next = current.upgraded(d);
        let plan_name = &next.plan;
        let Some(plan) = self.plans.get(plan_name) else {
            return Ok(Self::rejected(
                RejectReason::UnknownPlan,
                format!("plan {plan_name:?} does not exist"),
            ));
        };
        let namespace = self.cluster.namespace_state(tenant).await?;
        if namespace == NamespaceState::Foreign {
            return Ok(self.not_owned(tenant));
        }
        let default_version = || self.plans.default_app_version().to_owned();
        let previous_app_version = current.app_version.unwrap_or_else(default_version);
        let app_version = next.app_version.unwrap_or_else(default_version);
        let previous_plan = current.plan;
        let values = next.values;
        let target = Target {
            status: TenantStatus::Upgrading,
            namespace_absent: namespace == NamespaceState::Absent,
            plan,
            app_version: &app_version,
            values: &values,
            rollback: Some(previous),
        };
        Ok(match self.run_steps(v, event, &target).await? {
            StepsResult::Rejected(r) => Outcome::Rejected(r),
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

    /// Withdraws the route, deletes the namespace (everything in it goes with
    /// it) and waits until it is gone. Every part is idempotent, so a resumed
    /// deprovisioning simply runs again.
    async fn deprovision(&self, v: &mut Versioned) -> Result<Outcome, Error> {
        let tenant = v.record.tenant_id.clone();
        let namespace = self.cluster.namespace_for(&tenant);
        match self.cluster.namespace_state(&tenant).await? {
            NamespaceState::Foreign => return Ok(self.not_owned(&tenant)),
            NamespaceState::Absent => {}
            NamespaceState::Owned { .. } => {
                v.record.status = TenantStatus::Deprovisioning;
                self.save(v).await?;
                // No traffic to a dying tenant: the route goes before the namespace.
                self.bus.delete_route(&tenant).await?;
                let deleting = self.cluster.delete_namespace(&tenant);
                self.leased(v, deleting).await??;
                crash_point("saga.after_delete_namespace");
                let gone = self.wait_namespace_gone(&tenant);
                self.leased(v, gone).await??;
            }
        }
        // `update_route` withdraws any route left over for an absent namespace.
        let record = &mut v.record;
        // The plan billing meters until now: a record keeps a plan only while
        // the tenant runs on it (a failed first install clears it; a failed
        // rollback keeps it, the tenant still runs).
        let billed = record.plan.take();
        record.status = match record.status {
            TenantStatus::Absent => TenantStatus::Absent,
            _ => TenantStatus::Deleted,
        };
        record.plan = None;
        record.app_version = None;
        record.release_revision = 0;
        record.values = Value::Object(Map::new());
        Ok(Outcome::Deprovisioned(Deprovisioned {
            namespace,
            plan: billed,
            deleted_at: Timestamp::now(),
        }))
    }

    pub(super) async fn wait_namespace_gone(&self, tenant: &TenantId) -> Result<(), Error> {
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

    /// The plan of a tenant that is live, if it is: the one to roll back to.
    pub(super) fn rollback_plan(&self, record: &TenantRecord) -> Option<&Plan> {
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
            host: service_host(&self.settings.app_service, namespace),
            port: self.settings.app_port,
        }
    }

    /// Brings `tenant_routes` in line with the record after an outcome of type
    /// `outcome` of the event at stream `sequence`: a route for a live tenant
    /// (its generation is that sequence), none otherwise.
    async fn update_route(
        &self,
        tenant: &TenantId,
        record: &TenantRecord,
        outcome: EventType,
        sequence: u64,
    ) -> Result<(), Error> {
        match outcome {
            EventType::Provisioned | EventType::UpgradeCompleted => {
                let route = Route::for_record(
                    record,
                    &self.settings.app_service,
                    self.settings.app_port,
                    sequence,
                );
                self.bus.put_route(tenant, &route).await
            }
            EventType::Deprovisioned => self.bus.delete_route(tenant).await,
            EventType::Failed if record.status != TenantStatus::Ready => {
                self.bus.delete_route(tenant).await
            }
            _ => Ok(()),
        }
    }
}

/// The rejection of a tenant whose namespace would be the routing gateway's:
/// every tenant's NetworkPolicy admits that namespace, so a tenant living
/// there would reach every other tenant (whether or not the gateway is
/// installed yet).
fn gateway_collision(namespace: &str, settings: &EngineSettings) -> Option<Rejected> {
    (namespace == settings.gateway_namespace).then(|| Rejected {
        reason: RejectReason::NamespaceNotOwned,
        message: format!(
            "namespace {namespace} is the routing gateway's namespace, which every tenant's \
             NetworkPolicy admits; no tenant may live there"
        ),
    })
}

/// One log line per decided outcome.
pub(super) fn log_outcome(outcome: &Outcome, record: &TenantRecord) {
    match outcome {
        Outcome::Rejected(r) => {
            info!(reason = r.reason.as_str(), message = %r.message, "rejected");
        }
        Outcome::Failed(f) => {
            warn!(failed_step = %f.failed_step, error = %f.error, compensated = f.compensated, compensation = ?f.compensation, "saga failed");
        }
        _ => {
            info!(outcome = %outcome.event_type(), status = record.status.as_str(), "done");
        }
    }
}

/// Counts a saga's end in the metrics.
fn count_completion(event: &InboundEvent, completion: &CloudEvent<Value>) {
    let intent = event.intent.kind().as_str();
    let m = metrics();
    m.sagas_completed
        .get_or_create(&OutcomeLabels {
            intent,
            outcome: completion.event_type.short_name(),
        })
        .inc();
    if completion.event_type == EventType::Failed {
        m.sagas_failed.get_or_create(&IntentLabels { intent }).inc();
        if completion.data["compensated"] == Value::Bool(true) {
            m.sagas_compensated
                .get_or_create(&IntentLabels { intent })
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_tenant_may_live_in_the_gateway_namespace() {
        let settings = EngineSettings {
            gateway_namespace: "tenant-gateway".into(),
            ..EngineSettings::default()
        };
        let refused = gateway_collision("tenant-gateway", &settings).expect("refused");
        assert_eq!(refused.reason, RejectReason::NamespaceNotOwned);
        assert!(
            refused.message.contains("tenant-gateway"),
            "{}",
            refused.message
        );
        assert!(gateway_collision("tenant-acme", &settings).is_none());
        assert!(gateway_collision("tenant-gateway2", &settings).is_none());
    }
}
