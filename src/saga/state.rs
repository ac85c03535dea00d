//! The worker's record of a tenant, stored as JSON in KV `tenant_state` under
//! the tenant id: its status, what it runs, the last applied inbound event, and
//! the saga in flight with its step log.

use std::collections::VecDeque;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::contract::{EventType, IntentKind, TenantId};
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
    Provisioning,
    Ready,
    Upgrading,
    Deprovisioning,
    /// Deprovisioned; the record stays as a tombstone for ordering and idempotency.
    Deleted,
    /// The last saga gave up and was compensated.
    Failed,
}

impl TenantStatus {
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
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Stream sequence in `TENANT_LIFECYCLE`.
    pub sequence: u64,
    /// The completion event published for it.
    pub outcome: EventType,
    pub at: Timestamp,
}

/// Progress of one step in a saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Done,
    Compensated,
    CompensationFailed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepEntry {
    pub step: Step,
    pub state: StepState,
    pub at: Timestamp,
}

/// Which way a saga is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaPhase {
    Forward,
    Compensating,
}

/// The saga in flight: written after every step, so a crash leaves a log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaLog {
    pub event_id: Uuid,
    pub sequence: u64,
    pub intent: IntentKind,
    pub phase: SagaPhase,
    pub steps: Vec<StepEntry>,
    pub started_at: Timestamp,
}

/// The worker's record of one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub tenant_id: TenantId,
    pub status: TenantStatus,
    pub namespace: String,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub app_version: Option<String>,
    /// Helm release revision installed (0: none yet).
    #[serde(default)]
    pub release_revision: u32,
    /// Highest `TENANT_LIFECYCLE` sequence applied; older intents are superseded.
    #[serde(default)]
    pub last_sequence: u64,
    #[serde(default)]
    pub last_event: Option<LastEvent>,
    /// Ids of recently applied inbound events (newest last), at most [`RECENT_EVENT_IDS`].
    #[serde(default)]
    pub recent_event_ids: VecDeque<Uuid>,
    #[serde(default)]
    pub saga: Option<SagaLog>,
    pub updated_at: Timestamp,
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
            last_sequence: 0,
            last_event: None,
            recent_event_ids: VecDeque::new(),
            saga: None,
            updated_at: Timestamp::now(),
        }
    }

    /// Whether the inbound event `id` was already applied.
    pub fn has_applied(&self, id: &Uuid) -> bool {
        self.recent_event_ids.contains(id)
    }

    /// Records that the inbound event was applied with `outcome`, closing any saga.
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
        self.saga = None;
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
}
