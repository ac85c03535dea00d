//! The CloudEvents envelope and the payload of every event type in CONTRACT.md.
//!
//! These types are the Rust side of `schemas/`: the tests check that every
//! valid example there round-trips through them and every invalid one is
//! refused by both. Unknown fields are ignored (producers may add fields;
//! CloudEvents extension attributes sit beside the standard ones).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::TenantId;

/// Opaque producer metadata, passed through unchanged to completion events.
pub type Metadata = Map<String, Value>;

/// Chart value overrides carried by an event (a JSON object).
pub type Values = Map<String, Value>;

/// The CloudEvents `specversion` this contract speaks. Only `"1.0"` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpecVersion {
    #[serde(rename = "1.0")]
    V1_0,
}

/// The only `datacontenttype` the contract uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataContentType {
    #[serde(rename = "application/json")]
    Json,
}

/// Every event type of the contract, inbound and outbound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "tenant.requested")]
    Requested,
    #[serde(rename = "tenant.upgraded")]
    Upgraded,
    #[serde(rename = "tenant.deleted")]
    Deleted,
    #[serde(rename = "tenant.provisioned")]
    Provisioned,
    #[serde(rename = "tenant.upgrade_completed")]
    UpgradeCompleted,
    #[serde(rename = "tenant.deprovisioned")]
    Deprovisioned,
    #[serde(rename = "tenant.failed")]
    Failed,
    #[serde(rename = "tenant.rejected")]
    Rejected,
    #[serde(rename = "tenant.drift_repaired")]
    DriftRepaired,
}

impl EventType {
    pub const ALL: [EventType; 9] = [
        Self::Requested,
        Self::Upgraded,
        Self::Deleted,
        Self::Provisioned,
        Self::UpgradeCompleted,
        Self::Deprovisioned,
        Self::Failed,
        Self::Rejected,
        Self::DriftRepaired,
    ];

    /// The `type` attribute, e.g. `tenant.requested`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "tenant.requested",
            Self::Upgraded => "tenant.upgraded",
            Self::Deleted => "tenant.deleted",
            Self::Provisioned => "tenant.provisioned",
            Self::UpgradeCompleted => "tenant.upgrade_completed",
            Self::Deprovisioned => "tenant.deprovisioned",
            Self::Failed => "tenant.failed",
            Self::Rejected => "tenant.rejected",
            Self::DriftRepaired => "tenant.drift_repaired",
        }
    }

    /// The type without the `tenant.` prefix: the subject token (`requested`).
    pub fn short_name(self) -> &'static str {
        &self.as_str()["tenant.".len()..]
    }

    /// Parses a `type` attribute.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether producers send this type to the worker (as opposed to the worker publishing it).
    pub fn is_inbound(self) -> bool {
        matches!(self, Self::Requested | Self::Upgraded | Self::Deleted)
    }

    /// The NATS subject an event of this type about `tenant` travels on.
    pub fn subject(self, tenant: &TenantId) -> String {
        let prefix = if self.is_inbound() {
            super::LIFECYCLE_SUBJECT_PREFIX
        } else {
            super::STATUS_SUBJECT_PREFIX
        };
        format!("{prefix}.{}.{tenant}", self.short_name())
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CloudEvents 1.0 event in structured mode, with a typed `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent<D> {
    pub specversion: SpecVersion,
    /// Unique per event; the idempotency key.
    pub id: Uuid,
    /// Who emitted it (`billing`, `signup`, `tenant-worker`, ...).
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub time: Timestamp,
    /// The tenant id.
    pub subject: TenantId,
    pub datacontenttype: DataContentType,
    pub data: D,
}

impl<D> CloudEvent<D> {
    /// A new event from `source` with a fresh id and the current time.
    pub fn new(source: &str, event_type: EventType, subject: TenantId, data: D) -> Self {
        Self {
            specversion: SpecVersion::V1_0,
            id: Uuid::new_v4(),
            source: source.to_owned(),
            event_type,
            time: Timestamp::now(),
            subject,
            datacontenttype: DataContentType::Json,
            data,
        }
    }
}

// ---------------------------------------------------------------- inbound

/// `tenant.requested`: create the tenant on `plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRequested {
    pub tenant_id: TenantId,
    pub plan: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Values>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// `tenant.upgraded`: change plan, app version and/or values (at least one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantUpgraded {
    pub tenant_id: TenantId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Values>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// `tenant.deleted`: remove the tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantDeleted {
    pub tenant_id: TenantId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// What an inbound event asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    Requested(TenantRequested),
    Upgraded(TenantUpgraded),
    Deleted(TenantDeleted),
}

impl Intent {
    pub fn event_type(&self) -> EventType {
        match self {
            Self::Requested(_) => EventType::Requested,
            Self::Upgraded(_) => EventType::Upgraded,
            Self::Deleted(_) => EventType::Deleted,
        }
    }

    pub fn tenant_id(&self) -> &TenantId {
        match self {
            Self::Requested(d) => &d.tenant_id,
            Self::Upgraded(d) => &d.tenant_id,
            Self::Deleted(d) => &d.tenant_id,
        }
    }

    pub fn metadata(&self) -> Option<&Metadata> {
        match self {
            Self::Requested(d) => d.metadata.as_ref(),
            Self::Upgraded(d) => d.metadata.as_ref(),
            Self::Deleted(d) => d.metadata.as_ref(),
        }
    }

    /// The intent name used in `tenant.failed` (`requested`, `upgraded`, `deleted`).
    pub fn kind(&self) -> IntentKind {
        match self {
            Self::Requested(_) => IntentKind::Requested,
            Self::Upgraded(_) => IntentKind::Upgraded,
            Self::Deleted(_) => IntentKind::Deleted,
        }
    }
}

/// The intent of an inbound event, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentKind {
    Requested,
    Upgraded,
    Deleted,
}

impl IntentKind {
    /// The name used on the wire (`tenant.failed`'s `intent`) and in `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Upgraded => "upgraded",
            Self::Deleted => "deleted",
        }
    }
}

/// A decoded, validated inbound event.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundEvent {
    pub id: Uuid,
    pub source: String,
    pub time: Timestamp,
    pub tenant_id: TenantId,
    pub intent: Intent,
    /// For an event that `tenant-worker replay --apply` published: the last
    /// `TENANT_LIFECYCLE` sequence the replay read (CloudEvents extension
    /// attribute [`REPLAY_AS_OF`]). If the tenant has applied anything later
    /// by the time it runs, the replay is stale and is rejected as superseded.
    pub replay_as_of: Option<u64>,
}

/// The CloudEvents extension attribute carrying [`InboundEvent::replay_as_of`].
pub const REPLAY_AS_OF: &str = "replayasof";

// ---------------------------------------------------------------- outbound

/// Where the tenant's application answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

/// Fields every completion event carries besides its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion<D> {
    pub tenant_id: TenantId,
    /// The id of the inbound event this completes.
    pub causation_id: Uuid,
    /// The inbound event's `metadata`, unchanged (`{}` when it had none).
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(flatten)]
    pub detail: D,
}

/// `tenant.provisioned`: the requested tenant is ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provisioned {
    pub plan: String,
    pub app_version: String,
    pub namespace: String,
    pub endpoint: Endpoint,
    pub release_revision: u32,
    /// The quota billed: ResourceQuota `hard` limits, e.g. `{"limits.cpu": "2"}`.
    pub resources: BTreeMap<String, String>,
    pub completed_at: Timestamp,
}

/// `tenant.upgrade_completed`: the upgrade is live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpgradeCompleted {
    pub previous_plan: String,
    pub plan: String,
    pub previous_app_version: String,
    pub app_version: String,
    pub release_revision: u32,
    /// The quota billed from `effective_at` on.
    pub resources: BTreeMap<String, String>,
    pub effective_at: Timestamp,
}

/// `tenant.deprovisioned`: the tenant is gone (also when it never existed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deprovisioned {
    pub namespace: String,
    /// The plan billed until now; absent when nothing was billed (the tenant
    /// never existed, or its first install failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    pub deleted_at: Timestamp,
}

/// `tenant.failed`: a saga gave up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failed {
    pub intent: IntentKind,
    pub failed_step: String,
    pub error: String,
    /// Whether every done step was undone.
    pub compensated: bool,
    /// The steps undone, in the order they were undone.
    pub compensation: Vec<String>,
    /// The steps whose undoing failed, with why (then `compensated` is false).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compensation_failed: Vec<CompensationFailure>,
}

/// `tenant.drift_repaired`: objects of a tenant that had drifted from what its
/// record says should be there were put back (not the completion of an
/// inbound event: `causation_id` is the last inbound event applied to the
/// tenant, the intent that the repair restores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftRepaired {
    pub namespace: String,
    /// The tenant's plan (absent for a deleted tenant whose leftovers were removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// The release revision whose objects were put back (`0`: none).
    pub release_revision: u32,
    /// One entry per object repaired.
    pub repaired: Vec<RepairedObject>,
    /// When the drift was found.
    pub detected_at: Timestamp,
    /// When every repaired object was back (and its workloads ready).
    pub repaired_at: Timestamp,
}

/// An object that `tenant.drift_repaired` put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairedObject {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub drift: DriftKind,
    /// For `modified`: the fields that differed, as dotted paths
    /// (`spec.hard.limits.cpu`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// How an object differed from what the tenant's record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// It should exist and did not: created again.
    Missing,
    /// It exists with fields the worker sets changed: applied again.
    Modified,
    /// It exists and should not (a deleted tenant's namespace): deleted.
    Unexpected,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Modified => "modified",
            Self::Unexpected => "unexpected",
        }
    }
}

/// A step that could not be undone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompensationFailure {
    pub step: String,
    pub error: String,
}

/// `tenant.rejected`: the request is invalid; nothing was changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    /// A stable machine-readable code, e.g. `unknown_plan`.
    pub reason: RejectReason,
    pub message: String,
}

/// The stable codes of `tenant.rejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The plan is not in the plan catalogue.
    UnknownPlan,
    /// `tenant-<id>` exists and is not labelled as this tenant's, managed by tenant-worker.
    NamespaceNotOwned,
    /// An upgrade for a tenant that is not provisioned.
    TenantNotFound,
    /// Values overrides that the plan or the chart refuses.
    InvalidValues,
    /// The chart failed to render with these values (a template error,
    /// `required` or `fail`).
    RenderFailed,
    /// The chart rendered an object that would break the tenant's isolation
    /// (cluster-scoped, another namespace, or one the plan owns).
    ForbiddenObject,
    /// A later event for the tenant (by stream sequence) was applied first.
    Superseded,
    /// The chart's `kubeVersion` does not admit the cluster's Kubernetes
    /// version (checked as Helm checks it, before rendering).
    ChartIncompatible,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownPlan => "unknown_plan",
            Self::NamespaceNotOwned => "namespace_not_owned",
            Self::TenantNotFound => "tenant_not_found",
            Self::InvalidValues => "invalid_values",
            Self::RenderFailed => "render_failed",
            Self::ForbiddenObject => "forbidden_object",
            Self::Superseded => "superseded",
            Self::ChartIncompatible => "chart_incompatible",
        }
    }
}

/// Any event the worker publishes.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Provisioned(Provisioned),
    UpgradeCompleted(UpgradeCompleted),
    Deprovisioned(Deprovisioned),
    Failed(Failed),
    Rejected(Rejected),
}

impl Outcome {
    pub fn event_type(&self) -> EventType {
        match self {
            Self::Provisioned(_) => EventType::Provisioned,
            Self::UpgradeCompleted(_) => EventType::UpgradeCompleted,
            Self::Deprovisioned(_) => EventType::Deprovisioned,
            Self::Failed(_) => EventType::Failed,
            Self::Rejected(_) => EventType::Rejected,
        }
    }

    fn detail_json(&self) -> serde_json::Result<Value> {
        match self {
            Self::Provisioned(d) => serde_json::to_value(d),
            Self::UpgradeCompleted(d) => serde_json::to_value(d),
            Self::Deprovisioned(d) => serde_json::to_value(d),
            Self::Failed(d) => serde_json::to_value(d),
            Self::Rejected(d) => serde_json::to_value(d),
        }
    }
}

/// The source attribute of every event the worker publishes.
pub const WORKER_SOURCE: &str = "tenant-worker";

/// Builds the completion event for `inbound` with `outcome`.
///
/// The event id is a UUID v5 of the inbound id and the outcome type, so that a
/// retried publication of the same outcome is the same event (and carries the
/// same `Nats-Msg-Id`, see [`completion_msg_id`]).
pub fn completion_event(inbound: &InboundEvent, outcome: &Outcome) -> CloudEvent<Value> {
    let detail = outcome
        .detail_json()
        .expect("outcome types serialize to JSON objects");
    let mut data = Map::new();
    data.insert(
        "tenant_id".into(),
        Value::String(inbound.tenant_id.to_string()),
    );
    data.insert(
        "causation_id".into(),
        Value::String(inbound.id.hyphenated().to_string()),
    );
    data.insert(
        "metadata".into(),
        Value::Object(inbound.intent.metadata().cloned().unwrap_or_default()),
    );
    if let Value::Object(fields) = detail {
        data.extend(fields);
    }
    let event_type = outcome.event_type();
    let mut event = CloudEvent::new(
        WORKER_SOURCE,
        event_type,
        inbound.tenant_id.clone(),
        Value::Object(data),
    );
    event.id = Uuid::new_v5(&inbound.id, event_type.as_str().as_bytes());
    event
}

/// The `Nats-Msg-Id` of the completion event for `inbound_id` with outcome `event_type`.
/// JetStream drops a second publication with the same id within the stream's
/// duplicate window.
pub fn completion_msg_id(inbound_id: &Uuid, event_type: EventType) -> String {
    format!("{inbound_id}:{}", event_type.short_name())
}

/// The `Nats-Msg-Id` of a completion event built by [`completion_event`], from
/// its `data.causation_id` (an event without one falls back to its own id,
/// which is just as stable). A `tenant.drift_repaired` completes no inbound
/// event: its own id.
pub fn completion_msg_id_of(event: &CloudEvent<Value>) -> String {
    if event.event_type == EventType::DriftRepaired {
        // Not the completion of an inbound event: each repair is its own.
        return event.id.to_string();
    }
    event
        .data
        .get("causation_id")
        .and_then(Value::as_str)
        .and_then(|id| Uuid::parse_str(id).ok())
        .map_or_else(
            || event.id.to_string(),
            |inbound| completion_msg_id(&inbound, event.event_type),
        )
}
