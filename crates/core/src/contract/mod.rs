//! The wire contract (CONTRACT.md): names of streams, subjects, buckets and
//! labels, the event types, and decoding of inbound events.
//!
//! Other systems depend on every name in this module: change none of them
//! without a new `v2` event type.

mod decode;
mod events;
mod tenant_id;
pub mod typed;

pub use decode::{DecodeError, DecodeErrorKind, decode_inbound, schema_for};
pub use events::*;
pub use tenant_id::{MAX_TENANT_ID_LEN, TenantId, TenantIdError};

/// Inbound stream: tenant intents from billing and signup.
pub const LIFECYCLE_STREAM: &str = "TENANT_LIFECYCLE";
/// Subject prefix of inbound events: `tenant.lifecycle.<type>.<tenant>`.
pub const LIFECYCLE_SUBJECT_PREFIX: &str = "tenant.lifecycle";
/// Outbound stream: completion events.
pub const STATUS_STREAM: &str = "TENANT_STATUS";
/// Subject prefix of completion events: `tenant.status.<type>.<tenant>`.
pub const STATUS_SUBJECT_PREFIX: &str = "tenant.status";
/// Stream of inbound messages the worker could not use, with the reason.
pub const DEADLETTER_STREAM: &str = "TENANT_DEADLETTER";
/// Subject prefix of dead letters: `tenant.deadletter.<reason>`.
pub const DEADLETTER_SUBJECT_PREFIX: &str = "tenant.deadletter";
/// The durable pull consumer on [`LIFECYCLE_STREAM`] shared by every replica.
pub const CONSUMER_NAME: &str = "tenant-worker";
/// KV bucket: tenant id → the worker's record of the tenant.
pub const STATE_BUCKET: &str = "tenant_state";
/// KV bucket: tenant id → the live route of a ready tenant.
pub const ROUTES_BUCKET: &str = "tenant_routes";

/// Label on every object the worker creates, with value [`MANAGER`].
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`], and the server-side apply field manager.
pub const MANAGER: &str = "tenant-worker";
/// Label on every object the worker creates, with the tenant id as value.
pub const TENANT_LABEL: &str = "tenant-worker/tenant";

/// NATS header carrying the reason a message was dead-lettered.
pub const DEADLETTER_REASON_HEADER: &str = "Tenant-Worker-Deadletter-Reason";
/// NATS header carrying the subject a dead-lettered message was published on.
pub const DEADLETTER_SUBJECT_HEADER: &str = "Tenant-Worker-Original-Subject";
/// NATS header carrying the stream sequence of a dead-lettered message.
pub const DEADLETTER_SEQUENCE_HEADER: &str = "Tenant-Worker-Original-Sequence";
/// Dead-letter header: how many times the event was delivered before it was given up.
pub const DEADLETTER_DELIVERIES_HEADER: &str = "Tenant-Worker-Deadletter-Deliveries";
/// Dead-letter header: the failed deliveries, oldest first, as a JSON array of
/// `{delivery, replica, error, at}` (only for events given up after `max_deliver`).
pub const DEADLETTER_HISTORY_HEADER: &str = "Tenant-Worker-Deadletter-History";
