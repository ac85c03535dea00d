//! The worker's record of a tenant, stored as JSON in KV `tenant_state` under
//! the tenant id: its status, what it runs, the last applied inbound event, and
//! the saga in flight with its step log.

use std::collections::VecDeque;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::contract::{CloudEvent, EventType, IntentKind, TenantId};
use crate::steps::Step;

/// How many recent inbound event ids a record remembers, to recognise an event
/// that is published again with a new stream sequence.
pub const RECENT_EVENT_IDS: usize = 64;

/// Where a tenant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Never provisioned (only rejected or deleted events seen so far).
    Absent,
    /// A saga is installing a tenant that was not live.
    Provisioning,
    /// Live: runs `plan` at `app_version` (also after a failed change was rolled back).
    Ready,
    /// A saga is changing a live tenant; compensation puts its previous plan back.
    Upgrading,
    /// A delete saga is withdrawing the route and deleting the namespace.
    Deprovisioning,
    /// Deprovisioned; the record stays as a tombstone for ordering and idempotency.
    Deleted,
    /// The last saga gave up and was compensated.
    Failed,
}

impl TenantStatus {
    /// The status as stored in the record (snake case), for logs and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Provisioning => "provisioning",
            Self::Ready => "ready",
            Self::Upgrading => "upgrading",
            Self::Deprovisioning => "deprovisioning",
            Self::Deleted => "deleted",
            Self::Failed => "failed",
        }
    }
}

/// The last inbound event the worker finished with, and what it published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastEvent {
    /// The inbound event's `id`.
    pub id: Uuid,
    /// The inbound event's type (`tenant.requested`, `tenant.upgraded` or `tenant.deleted`).
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Stream sequence in `TENANT_LIFECYCLE`.
    pub sequence: u64,
    /// The completion event published for it.
    pub outcome: EventType,
    /// When the worker finished with it.
    pub at: Timestamp,
}

/// Progress of one step in a saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Applied; a resumed saga does not run it again.
    Done,
    /// Undone (or, for a live tenant, put back to its previous plan); not undone again.
    Compensated,
    /// Undoing it failed; reported in `tenant.failed` under `compensation_failed`.
    CompensationFailed,
}

/// One step of a saga's step log and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepEntry {
    /// The step (stored by its name).
    pub step: Step,
    /// Its latest state.
    pub state: StepState,
    /// When it reached that state.
    pub at: Timestamp,
}

/// Which way a saga is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaPhase {
    /// Applying steps; a redelivery resumes with the first step not done.
    Forward,
    /// A step failed for good; a redelivery goes on undoing the done steps.
    Compensating,
}

/// How many failed deliveries a saga log remembers (the dead-letter history).
pub const SAGA_ATTEMPTS: usize = 10;

/// The step that failed for good, which compensation is undoing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepFailure {
    /// The step (stored by its name, as in the step log).
    pub step: Step,
    /// Its error message, as reported in `tenant.failed`.
    pub error: String,
}

/// A delivery of the saga's event that ended with a transient error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// JetStream delivery count (1-based).
    pub delivery: u64,
    /// The replica that made the attempt.
    pub replica: String,
    /// The error the delivery ended with.
    pub error: String,
    /// When the attempt was recorded.
    pub at: Timestamp,
}

/// The saga in flight: written after every step, so a crash leaves a log that
/// the next delivery of the same event resumes (phase `forward`) or unwinds
/// (phase `compensating`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaLog {
    /// The inbound event the saga applies.
    pub event_id: Uuid,
    /// That event's stream sequence in `TENANT_LIFECYCLE`.
    pub sequence: u64,
    /// What the event asks for (request, upgrade or delete).
    pub intent: IntentKind,
    /// Forward or compensating.
    pub phase: SagaPhase,
    /// The plan and version the saga brings the tenant to (none for deletes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The application version the saga brings the tenant to (none for deletes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// The plan a live tenant ran before; compensation re-applies it instead of
    /// removing the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_plan: Option<String>,
    /// The release revision the saga installs, fixed when it starts so that a
    /// resumed saga installs the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_revision: Option<u32>,
    /// The step log: each step the saga reached, in the order first reached.
    pub steps: Vec<StepEntry>,
    /// Set when a step failed for good (phase `compensating`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<StepFailure>,
    /// Deliveries that ended with a transient error, oldest first, at most
    /// [`SAGA_ATTEMPTS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// The completion event, once decided: a resumed saga publishes exactly
    /// this (same id, same payload) instead of running again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion: Option<CloudEvent<Value>>,
    /// When the saga was opened (by the first delivery of its event to take the lease).
    pub started_at: Timestamp,
}

impl SagaLog {
    /// A new log for the inbound event `event_id` at stream `sequence`.
    pub fn new(event_id: Uuid, sequence: u64, intent: IntentKind) -> Self {
        Self {
            event_id,
            sequence,
            intent,
            phase: SagaPhase::Forward,
            plan: None,
            app_version: None,
            rollback_plan: None,
            release_revision: None,
            steps: Vec::new(),
            failure: None,
            attempts: Vec::new(),
            completion: None,
            started_at: Timestamp::now(),
        }
    }

    /// Whether `step` is done (applied and not undone).
    pub fn is_done(&self, step: Step) -> bool {
        self.steps
            .iter()
            .any(|e| e.step == step && e.state == StepState::Done)
    }

    /// Sets the state of `step`, adding it to the log if it is not there.
    pub fn mark(&mut self, step: Step, state: StepState) {
        let at = Timestamp::now();
        match self.steps.iter_mut().find(|e| e.step == step) {
            Some(entry) => {
                entry.state = state;
                entry.at = at;
            }
            None => self.steps.push(StepEntry { step, state, at }),
        }
    }

    /// Where the saga stands: its completion decided, or undoing a failure,
    /// or going forward.
    pub fn stage(&self) -> SagaStage<'_> {
        match (&self.completion, &self.failure) {
            (Some(completion), _) => SagaStage::Decided(completion),
            (None, Some(failure)) => SagaStage::Compensating(failure),
            (None, None) => SagaStage::Forward,
        }
    }

    /// Records that `failure` ended the way forward: from now on the saga
    /// undoes what it did.
    pub fn fail(&mut self, failure: StepFailure) {
        self.phase = SagaPhase::Compensating;
        self.failure = Some(failure);
    }

    /// Remembers a failed delivery, keeping the newest [`SAGA_ATTEMPTS`].
    pub fn record_attempt(&mut self, attempt: Attempt) {
        self.attempts.push(attempt);
        let excess = self.attempts.len().saturating_sub(SAGA_ATTEMPTS);
        self.attempts.drain(..excess);
    }
}

/// Where a saga stands, read from its log ([`SagaLog::stage`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SagaStage<'a> {
    /// Going forward: the steps not done yet run next.
    Forward,
    /// A step failed for good: the done steps are undone, in reverse.
    Compensating(&'a StepFailure),
    /// The completion event is decided: a resumed delivery publishes exactly
    /// this event and runs nothing.
    Decided(&'a CloudEvent<Value>),
}

/// Which replica works on a tenant, for which event, until when. Taken before
/// a saga starts, renewed while it runs, released when it ends; a replica that
/// dies leaves it to expire, and another replica takes over after that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The replica id of the holder (`EngineSettings::replica_id`).
    pub holder: String,
    /// The inbound event the holder works on.
    pub event_id: Uuid,
    /// When the lease lapses unless renewed; after that any replica may take it.
    pub expires_at: Timestamp,
}

impl Lease {
    /// A lease of the tenant for `holder`, working on `event_id`, that keeps
    /// other replicas out for `ttl` from `now`.
    pub fn new(holder: &str, event_id: Uuid, now: Timestamp, ttl: std::time::Duration) -> Self {
        Self {
            holder: holder.to_owned(),
            event_id,
            expires_at: now + ttl,
        }
    }

    /// Extends the lease to `ttl` from `now`.
    pub fn renew(&mut self, now: Timestamp, ttl: std::time::Duration) {
        self.expires_at = now + ttl;
    }

    /// Whether this lease keeps `replica` out at `now`.
    pub fn excludes(&self, replica: &str, now: Timestamp) -> bool {
        self.holder != replica && self.expires_at > now
    }
}

/// The worker's record of one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// The tenant, also the record's KV key.
    pub tenant_id: TenantId,
    /// Where the tenant stands.
    pub status: TenantStatus,
    /// The tenant's Kubernetes namespace (the worker's namespace prefix and the tenant id).
    pub namespace: String,
    /// The plan the tenant runs on (none while it runs nothing).
    #[serde(default)]
    pub plan: Option<String>,
    /// The application version the tenant runs (none while it runs nothing).
    #[serde(default)]
    pub app_version: Option<String>,
    /// Helm release revision deployed (0: none).
    #[serde(default)]
    pub release_revision: u32,
    /// The tenant's own chart values (from its events), kept across upgrades.
    #[serde(default = "empty_values", skip_serializing_if = "is_empty_values")]
    pub values: Value,
    /// Highest `TENANT_LIFECYCLE` sequence applied; older intents are superseded.
    #[serde(default)]
    pub last_sequence: u64,
    /// The last inbound event finished with (none before the first).
    #[serde(default)]
    pub last_event: Option<LastEvent>,
    /// Ids of recently applied inbound events (newest last), at most [`RECENT_EVENT_IDS`].
    #[serde(default)]
    pub recent_event_ids: VecDeque<Uuid>,
    /// The saga in flight (none between sagas).
    #[serde(default)]
    pub saga: Option<SagaLog>,
    /// The replica working on the tenant, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// When the record was last written.
    pub updated_at: Timestamp,
}

fn empty_values() -> Value {
    Value::Object(serde_json::Map::new())
}

fn is_empty_values(v: &Value) -> bool {
    v.as_object().is_some_and(serde_json::Map::is_empty)
}

impl TenantRecord {
    /// A record for a tenant the worker has not seen before.
    pub fn new(tenant_id: TenantId, namespace: String) -> Self {
        Self {
            tenant_id,
            status: TenantStatus::Absent,
            namespace,
            plan: None,
            app_version: None,
            release_revision: 0,
            values: empty_values(),
            last_sequence: 0,
            last_event: None,
            recent_event_ids: VecDeque::new(),
            saga: None,
            lease: None,
            updated_at: Timestamp::now(),
        }
    }

    /// Whether the inbound event `id` was already applied.
    pub fn has_applied(&self, id: &Uuid) -> bool {
        self.recent_event_ids.contains(id)
    }

    /// Records that the inbound event was applied with `outcome`: closes its
    /// saga and releases its lease (another event's saga and lease stay).
    pub fn finish(&mut self, id: Uuid, event_type: EventType, sequence: u64, outcome: EventType) {
        let now = Timestamp::now();
        self.last_sequence = self.last_sequence.max(sequence);
        self.last_event = Some(LastEvent {
            id,
            event_type,
            sequence,
            outcome,
            at: now,
        });
        if !self.recent_event_ids.contains(&id) {
            self.recent_event_ids.push_back(id);
        }
        while self.recent_event_ids.len() > RECENT_EVENT_IDS {
            self.recent_event_ids.pop_front();
        }
        if self.saga.as_ref().is_some_and(|s| s.event_id == id) {
            self.saga = None;
        }
        if self.lease.as_ref().is_some_and(|l| l.event_id == id) {
            self.lease = None;
        }
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_remembers_a_bounded_window_of_ids() {
        let mut r = TenantRecord::new(TenantId::parse("acme").unwrap(), "tenant-acme".into());
        let first = Uuid::new_v4();
        r.finish(first, EventType::Requested, 1, EventType::Provisioned);
        assert!(r.has_applied(&first));
        for seq in 2..=(RECENT_EVENT_IDS as u64 + 1) {
            r.finish(
                Uuid::new_v4(),
                EventType::Upgraded,
                seq,
                EventType::UpgradeCompleted,
            );
        }
        assert_eq!(r.recent_event_ids.len(), RECENT_EVENT_IDS);
        assert!(!r.has_applied(&first));
        assert_eq!(r.last_sequence, RECENT_EVENT_IDS as u64 + 1);
    }

    #[test]
    fn sequence_never_goes_back() {
        let mut r = TenantRecord::new(TenantId::parse("acme").unwrap(), "tenant-acme".into());
        r.finish(
            Uuid::new_v4(),
            EventType::Deleted,
            9,
            EventType::Deprovisioned,
        );
        r.finish(Uuid::new_v4(), EventType::Requested, 3, EventType::Rejected);
        assert_eq!(r.last_sequence, 9);
    }

    #[test]
    fn a_lease_keeps_out_other_replicas_until_it_expires() {
        let now = Timestamp::now();
        let lease = Lease {
            holder: "a".into(),
            event_id: Uuid::new_v4(),
            expires_at: now + std::time::Duration::from_secs(30),
        };
        assert!(lease.excludes("b", now));
        assert!(!lease.excludes("a", now), "the holder itself");
        assert!(!lease.excludes("b", now + std::time::Duration::from_secs(31)));
    }

    #[test]
    fn finish_closes_only_its_own_saga_and_lease() {
        let mut r = TenantRecord::new(TenantId::parse("acme").unwrap(), "tenant-acme".into());
        let open = Uuid::new_v4();
        r.saga = Some(SagaLog::new(open, 5, IntentKind::Requested));
        r.lease = Some(Lease {
            holder: "a".into(),
            event_id: open,
            expires_at: Timestamp::now(),
        });
        let other = Uuid::new_v4();
        r.finish(other, EventType::Upgraded, 7, EventType::Failed);
        assert!(
            r.saga.is_some() && r.lease.is_some(),
            "another event's saga stays"
        );
        r.finish(open, EventType::Requested, 5, EventType::Provisioned);
        assert!(r.saga.is_none() && r.lease.is_none());
        assert_eq!(r.last_sequence, 7);
    }

    #[test]
    fn the_stage_follows_the_failure_and_the_decided_completion() {
        let mut log = SagaLog::new(Uuid::new_v4(), 1, IntentKind::Requested);
        assert_eq!(log.stage(), SagaStage::Forward);
        let failure = StepFailure {
            step: Step::Release,
            error: "not ready".into(),
        };
        log.fail(failure.clone());
        assert_eq!(log.phase, SagaPhase::Compensating);
        assert_eq!(log.stage(), SagaStage::Compensating(&failure));
        let completion = CloudEvent::new(
            "test",
            EventType::Failed,
            TenantId::parse("acme").unwrap(),
            serde_json::json!({}),
        );
        log.completion = Some(completion.clone());
        assert_eq!(log.stage(), SagaStage::Decided(&completion));
    }

    #[test]
    fn the_saga_log_marks_steps_and_keeps_the_last_attempts() {
        let mut log = SagaLog::new(Uuid::new_v4(), 1, IntentKind::Requested);
        log.mark(Step::Namespace, StepState::Done);
        log.mark(Step::ResourceQuota, StepState::Done);
        log.mark(Step::Namespace, StepState::Compensated);
        assert!(!log.is_done(Step::Namespace));
        assert!(log.is_done(Step::ResourceQuota));
        assert_eq!(log.steps.len(), 2);
        for delivery in 1..=(SAGA_ATTEMPTS as u64 + 3) {
            log.record_attempt(Attempt {
                delivery,
                replica: "a".into(),
                error: "503".into(),
                at: Timestamp::now(),
            });
        }
        assert_eq!(log.attempts.len(), SAGA_ATTEMPTS);
        assert_eq!(log.attempts[0].delivery, 4, "the oldest are dropped");
    }
}
