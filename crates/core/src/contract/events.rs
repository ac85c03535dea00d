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
    /// `"1.0"`.
    #[serde(rename = "1.0")]
    V1_0,
}

/// The only `datacontenttype` the contract uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataContentType {
    /// `"application/json"`: `data` is a JSON object.
    #[serde(rename = "application/json")]
    Json,
}

/// Every event type of the contract, inbound and outbound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// `tenant.requested` (inbound): signup asks for a new tenant on a plan.
    #[serde(rename = "tenant.requested")]
    Requested,
    /// `tenant.upgraded` (inbound): change a tenant's plan, app version and/or values.
    #[serde(rename = "tenant.upgraded")]
    Upgraded,
    /// `tenant.deleted` (inbound): remove the tenant.
    #[serde(rename = "tenant.deleted")]
    Deleted,
    /// `tenant.provisioned` (outbound): a requested tenant is ready.
    #[serde(rename = "tenant.provisioned")]
    Provisioned,
    /// `tenant.upgrade_completed` (outbound): an upgrade is live.
    #[serde(rename = "tenant.upgrade_completed")]
    UpgradeCompleted,
    /// `tenant.deprovisioned` (outbound): the tenant is gone (also when it never existed).
    #[serde(rename = "tenant.deprovisioned")]
    Deprovisioned,
    /// `tenant.failed` (outbound): a saga gave up, after undoing what it could.
    #[serde(rename = "tenant.failed")]
    Failed,
    /// `tenant.rejected` (outbound): the request is invalid; nothing was changed.
    #[serde(rename = "tenant.rejected")]
    Rejected,
    /// `tenant.drift_repaired` (outbound): the reconciler put back objects that had
    /// drifted from the tenant's record; completes no inbound event.
    #[serde(rename = "tenant.drift_repaired")]
    DriftRepaired,
}

impl EventType {
    /// Every event type: the three inbound ones first, then the outbound ones.
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
    /// CloudEvents version; always `"1.0"`.
    pub specversion: SpecVersion,
    /// Unique per event; the idempotency key.
    pub id: Uuid,
    /// Who emitted it (`billing`, `signup`, `tenant-worker`, ...).
    pub source: String,
    /// The `type` attribute; selects the schema of `data`.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the event was emitted (`time`, RFC 3339).
    pub time: Timestamp,
    /// The tenant id.
    pub subject: TenantId,
    /// Media type of `data`; always `"application/json"`.
    pub datacontenttype: DataContentType,
    /// The payload of the event type.
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
    /// The tenant the event is about; always equal to the envelope's `subject`.
    pub tenant_id: TenantId,
    /// Name of a plan in the plan catalogue; unknown plans are `tenant.rejected`.
    pub plan: String,
    /// Application version to install; when absent, the version the tenant
    /// already runs, if any, else the catalogue's `default_app_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// Chart value overrides, merged over chart defaults and plan values; they
    /// replace any earlier overrides of the tenant. Absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Values>,
    /// Opaque producer metadata, passed through unchanged to the completion event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// `tenant.upgraded`: change plan, app version and/or values (at least one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantUpgraded {
    /// The tenant the event is about; always equal to the envelope's `subject`.
    pub tenant_id: TenantId,
    /// The new plan; absent keeps the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The new application version; absent keeps the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// Value overrides merged into the tenant's current ones (a `null` removes
    /// one); absent keeps them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Values>,
    /// Opaque producer metadata, passed through unchanged to the completion event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// `tenant.deleted`: remove the tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantDeleted {
    /// The tenant the event is about; always equal to the envelope's `subject`.
    pub tenant_id: TenantId,
    /// Why the tenant is removed, for humans (at most 1024 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Opaque producer metadata, passed through unchanged to the completion event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// What an inbound event asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    /// A `tenant.requested` event's data.
    Requested(TenantRequested),
    /// A `tenant.upgraded` event's data.
    Upgraded(TenantUpgraded),
    /// A `tenant.deleted` event's data.
    Deleted(TenantDeleted),
}

impl Intent {
    /// The inbound event type this intent came from.
    pub fn event_type(&self) -> EventType {
        match self {
            Self::Requested(_) => EventType::Requested,
            Self::Upgraded(_) => EventType::Upgraded,
            Self::Deleted(_) => EventType::Deleted,
        }
    }

    /// `data.tenant_id`.
    pub fn tenant_id(&self) -> &TenantId {
        match self {
            Self::Requested(d) => &d.tenant_id,
            Self::Upgraded(d) => &d.tenant_id,
            Self::Deleted(d) => &d.tenant_id,
        }
    }

    /// `data.metadata`, to be copied into the completion event; `None` when absent.
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
    /// `requested`: from `tenant.requested`.
    Requested,
    /// `upgraded`: from `tenant.upgraded`.
    Upgraded,
    /// `deleted`: from `tenant.deleted`.
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
    /// The event `id`: the idempotency key, and `causation_id` of its completion.
    pub id: Uuid,
    /// The producer (`source` attribute), e.g. `billing` or `signup`.
    pub source: String,
    /// When the producer emitted it (`time` attribute).
    pub time: Timestamp,
    /// The tenant (`subject`, checked equal to `data.tenant_id`).
    pub tenant_id: TenantId,
    /// What the event asks for, with its `data`.
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
    /// Host name of the tenant's Service (`<service>.<namespace>.svc.cluster.local`).
    pub host: String,
    /// TCP port (1 to 65535).
    pub port: u16,
}

/// Fields every completion event carries besides its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion<D> {
    /// The tenant the event is about; always equal to the envelope's `subject`.
    pub tenant_id: TenantId,
    /// The id of the inbound event this completes.
    pub causation_id: Uuid,
    /// The inbound event's `metadata`, unchanged (`{}` when it had none).
    #[serde(default)]
    pub metadata: Metadata,
    /// The type-specific fields, flattened into the same `data` object.
    #[serde(flatten)]
    pub detail: D,
}

/// `tenant.provisioned`: the requested tenant is ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provisioned {
    /// The plan the tenant runs on (and is billed for).
    pub plan: String,
    /// The application version installed.
    pub app_version: String,
    /// The tenant's namespace (`tenant-<tenant_id>` by default).
    pub namespace: String,
    /// Where the tenant's application answers.
    pub endpoint: Endpoint,
    /// Revision of the tenant's Helm release now running.
    pub release_revision: u32,
    /// The quota billed: ResourceQuota `hard` limits, e.g. `{"limits.cpu": "2"}`.
    pub resources: BTreeMap<String, String>,
    /// When the tenant became ready.
    pub completed_at: Timestamp,
}

/// `tenant.upgrade_completed`: the upgrade is live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpgradeCompleted {
    /// The plan before the upgrade.
    pub previous_plan: String,
    /// The plan from `effective_at` on (the previous one if the event named none).
    pub plan: String,
    /// The application version before the upgrade.
    pub previous_app_version: String,
    /// The application version from `effective_at` on.
    pub app_version: String,
    /// Helm revision of the tenant's release after the upgrade.
    pub release_revision: u32,
    /// The quota billed from `effective_at` on.
    pub resources: BTreeMap<String, String>,
    /// When the upgrade went live.
    pub effective_at: Timestamp,
}

/// `tenant.deprovisioned`: the tenant is gone (also when it never existed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deprovisioned {
    /// The namespace that was removed (or would have been).
    pub namespace: String,
    /// The plan billed until now; absent when nothing was billed (the tenant
    /// never existed, or its first install failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// When the tenant was found gone.
    pub deleted_at: Timestamp,
}

/// `tenant.failed`: a saga gave up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failed {
    /// What the inbound event asked for (`requested`, `upgraded`, `deleted`).
    pub intent: IntentKind,
    /// Name of the saga step that failed, e.g. `release` or `resource_quota`.
    pub failed_step: String,
    /// Why the step failed, for humans.
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
    /// The tenant's namespace.
    pub namespace: String,
    /// The tenant's plan (absent for a deleted tenant whose leftovers were removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The tenant's application version; absent exactly when `plan` is.
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
    /// The object's `apiVersion`, e.g. `v1` or `networking.k8s.io/v1`.
    pub api_version: String,
    /// The object's `kind`, e.g. `NetworkPolicy`.
    pub kind: String,
    /// The object's name, in the event's `namespace` (a Namespace is named by itself).
    pub name: String,
    /// How it differed, and so what was done to it.
    pub drift: DriftKind,
    /// For `modified`: the fields that differed, as dotted paths
    /// (`spec.hard.limits.cpu`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// How an object differed from what the tenant's record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::VariantArray)]
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
    /// Every drift kind, in declaration order.
    pub const ALL: &'static [DriftKind] = <Self as strum::VariantArray>::VARIANTS;

    /// The wire name: `missing`, `modified` or `unexpected`.
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
    /// Name of the saga step whose undoing failed, e.g. `namespace`.
    pub step: String,
    /// Why undoing it failed, for humans.
    pub error: String,
}

/// `tenant.rejected`: the request is invalid; nothing was changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    /// A stable machine-readable code, e.g. `unknown_plan`.
    pub reason: RejectReason,
    /// What is wrong, for humans (not stable; match on `reason`).
    pub message: String,
}

/// The stable codes of `tenant.rejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::VariantArray)]
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
    /// Every reject code, in declaration order.
    pub const ALL: &'static [RejectReason] = <Self as strum::VariantArray>::VARIANTS;

    /// The wire code, e.g. `unknown_plan`.
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

/// Any completion event the worker publishes for an inbound event (not `tenant.drift_repaired`).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Publish `tenant.provisioned`.
    Provisioned(Provisioned),
    /// Publish `tenant.upgrade_completed`.
    UpgradeCompleted(UpgradeCompleted),
    /// Publish `tenant.deprovisioned`.
    Deprovisioned(Deprovisioned),
    /// Publish `tenant.failed`.
    Failed(Failed),
    /// Publish `tenant.rejected`.
    Rejected(Rejected),
}

impl Outcome {
    /// The `type` of the completion event this outcome is published as.
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
