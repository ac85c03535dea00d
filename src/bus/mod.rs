//! JetStream topology and publishing: the streams, the durable consumer and the
//! KV buckets of CONTRACT.md, created or updated idempotently at start, and the
//! publishers of completion events, routes and dead letters; [`state`]: the
//! tenant records in KV.

pub mod state;

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream::{
    Config as StreamConfig, DiscardPolicy, RetentionPolicy, StorageType,
};
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contract::{
    CONSUMER_NAME, CloudEvent, DEADLETTER_DELIVERIES_HEADER, DEADLETTER_HISTORY_HEADER,
    DEADLETTER_REASON_HEADER, DEADLETTER_SEQUENCE_HEADER, DEADLETTER_STREAM,
    DEADLETTER_SUBJECT_HEADER, DEADLETTER_SUBJECT_PREFIX, EventType, LIFECYCLE_STREAM,
    LIFECYCLE_SUBJECT_PREFIX, ROUTES_BUCKET, STATE_BUCKET, STATUS_STREAM, STATUS_SUBJECT_PREFIX,
    TenantId, completion_msg_id_of,
};
use crate::error::Error;
use crate::record::{Attempt, TenantRecord};
use state::StateStore;

/// What a dead letter says about the deliveries before it.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterHistory {
    /// JetStream's delivery count of the message.
    pub deliveries: u64,
    /// The failed deliveries, oldest first (empty for poison messages, which
    /// are dead-lettered at their first delivery).
    pub attempts: Vec<Attempt>,
}

/// Settings of the JetStream objects the worker creates.
#[derive(Debug, Clone)]
pub struct TopologySettings {
    /// Deliveries of one inbound message before it is dead-lettered.
    pub max_deliver: i64,
    /// How long the server waits for an ack before redelivering; the worker
    /// sends progress acks while a saga runs longer than this.
    pub ack_wait: Duration,
    /// Messages delivered and not yet acknowledged, across all replicas.
    pub max_ack_pending: i64,
    /// How long `TENANT_STATUS` remembers `Nats-Msg-Id`s: longer than the
    /// longest redelivery sequence, so a completion event re-published after a
    /// crash is dropped as a duplicate.
    pub status_duplicate_window: Duration,
    /// Stream and bucket replicas (1 for a single server, 3 for a cluster).
    pub replicas: usize,
}

impl Default for TopologySettings {
    fn default() -> Self {
        Self {
            max_deliver: 10,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 1000,
            status_duplicate_window: Duration::from_secs(30 * 60),
            replicas: 1,
        }
    }
}

fn stream_config(
    name: &str,
    subject_prefix: &str,
    description: &str,
    s: &TopologySettings,
) -> StreamConfig {
    StreamConfig {
        name: name.to_owned(),
        description: Some(description.to_owned()),
        subjects: vec![format!("{subject_prefix}.>")],
        // History is kept (limits, not work-queue) so replay tooling can re-read it.
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        storage: StorageType::File,
        num_replicas: s.replicas,
        duplicate_window: Duration::from_secs(120),
        ..StreamConfig::default()
    }
}

/// How many times [`ensure_topology`] sends a request that goes unanswered
/// while the server is connected: a JetStream cluster that has just started,
/// or lost its meta leader, answers "temporarily unavailable" or not at all
/// until it has elected one. Each attempt waits up to the JetStream request
/// timeout (5 s), so the worker gives up after about 40 s and says why.
const TOPOLOGY_ATTEMPTS: u32 = 6;

/// The JetStream API error somewhere in `err`'s chain of causes (a bucket's
/// errors wrap the stream's or the account's), if there is one.
fn api_error(err: &(dyn std::error::Error + 'static)) -> Option<async_nats::jetstream::Error> {
    use async_nats::jetstream::context::{
        AccountError, AccountErrorKind, CreateStreamError, CreateStreamErrorKind,
    };
    use async_nats::jetstream::stream::{ConsumerError, ConsumerErrorKind};
    let mut cause = Some(err);
    while let Some(e) = cause {
        let api = if let Some(e) = e.downcast_ref::<CreateStreamError>() {
            match e.kind() {
                CreateStreamErrorKind::JetStream(api) => Some(api),
                _ => None,
            }
        } else if let Some(e) = e.downcast_ref::<ConsumerError>() {
            match e.kind() {
                ConsumerErrorKind::JetStream(api) => Some(api),
                _ => None,
            }
        } else if let Some(e) = e.downcast_ref::<AccountError>() {
            match e.kind() {
                AccountErrorKind::JetStream(api) => Some(api),
                _ => None,
            }
        } else {
            None
        };
        if api.is_some() {
            return api;
        }
        cause = e.source();
    }
    None
}

/// Whether a JetStream API request failed for want of an answer (it timed
/// out, or the cluster said it is temporarily unavailable), so that the same
/// request can succeed later; not when the server refused it (a conflicting
/// configuration, too few servers for the replicas, no JetStream).
fn unanswered(err: &(dyn std::error::Error + 'static)) -> bool {
    use async_nats::jetstream::ErrorCode;
    use async_nats::jetstream::context::{
        AccountError, AccountErrorKind, CreateKeyValueError, CreateKeyValueErrorKind,
        CreateStreamError, CreateStreamErrorKind,
    };
    use async_nats::jetstream::stream::{ConsumerError, ConsumerErrorKind};
    if api_error(err).is_some_and(|api| api.error_code() == ErrorCode::CLUSTER_NOT_AVAILABLE) {
        return true;
    }
    let mut cause = Some(err);
    while let Some(e) = cause {
        let timed_out = e
            .downcast_ref::<CreateStreamError>()
            .is_some_and(|e| e.kind() == CreateStreamErrorKind::TimedOut)
            || e.downcast_ref::<ConsumerError>()
                .is_some_and(|e| e.kind() == ConsumerErrorKind::TimedOut)
            || e.downcast_ref::<AccountError>()
                .is_some_and(|e| e.kind() == AccountErrorKind::TimedOut)
            || e.downcast_ref::<CreateKeyValueError>()
                .is_some_and(|e| e.kind() == CreateKeyValueErrorKind::TimedOut);
        if timed_out {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Whether creating a stream (or bucket) failed because it exists with
/// another configuration.
fn exists_otherwise(err: &(dyn std::error::Error + 'static)) -> bool {
    api_error(err)
        .is_some_and(|api| api.error_code() == async_nats::jetstream::ErrorCode::STREAM_NAME_EXIST)
}

/// Sends one topology request (`what`, e.g. `create stream X`) until it is
/// answered, at most [`TOPOLOGY_ATTEMPTS`] times; a refusal, or no answer
/// while NATS is not even connected, is returned at once.
async fn until_answered<T, E, F>(
    js: &jetstream::Context,
    what: &'static str,
    mut request: impl FnMut() -> F,
) -> Result<T, Error>
where
    F: Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut attempt = 1;
    loop {
        match request().await {
            Ok(answer) => return Ok(answer),
            Err(e)
                if attempt < TOPOLOGY_ATTEMPTS
                    && unanswered(&e)
                    && js.client().connection_state()
                        == async_nats::connection::State::Connected =>
            {
                tracing::warn!(attempt, error = %e, "{what}: JetStream did not answer; asking again");
                tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                attempt += 1;
            }
            Err(e) if attempt > 1 => {
                return Err(Error::nats(what, format!("{e} (attempt {attempt})")));
            }
            Err(e) => return Err(Error::nats(what, e)),
        }
    }
}

/// Creates the stream `config` describes, or updates it when it exists with
/// another configuration.
///
/// Create comes first (async-nats' `create_or_update_stream` updates first):
/// a create identical to the stream is answered with the stream as it is,
/// whereas an update that reaches a clustered nats-server while another
/// replica's create of the same stream is being placed leaves both requests
/// unanswered, and the stream without a leader for about 10 s (seen with
/// 2.10.27: two replicas starting together took 10 s per stream).
async fn create_or_update_stream(
    js: &jetstream::Context,
    config: &StreamConfig,
) -> Result<(), jetstream::context::CreateStreamError> {
    match js.create_stream(config.clone()).await {
        Ok(_) => Ok(()),
        Err(e) if exists_otherwise(&e) => js.update_stream(config.clone()).await.map(drop),
        Err(e) => Err(e),
    }
}

/// [`create_or_update_stream`] for a bucket.
async fn create_or_update_bucket(
    js: &jetstream::Context,
    config: &kv::Config,
) -> Result<kv::Store, jetstream::context::CreateKeyValueError> {
    match js.create_key_value(config.clone()).await {
        Err(e) if exists_otherwise(&e) => js.create_or_update_key_value(config.clone()).await,
        created => created,
    }
}

/// Creates or updates every stream, the consumer and the buckets; safe to run
/// from every replica at every start, also at the same time.
///
/// # Errors
/// [`Error::Nats`] naming the object that could not be created.
pub async fn ensure_topology(
    js: &jetstream::Context,
    s: &TopologySettings,
) -> Result<(Bus, PullConsumer), Error> {
    let lifecycle = stream_config(
        LIFECYCLE_STREAM,
        LIFECYCLE_SUBJECT_PREFIX,
        "tenant intents from billing and signup (tenant.requested/upgraded/deleted)",
        s,
    );
    until_answered(js, "create stream TENANT_LIFECYCLE", || {
        create_or_update_stream(js, &lifecycle)
    })
    .await?;
    let mut status = stream_config(
        STATUS_STREAM,
        STATUS_SUBJECT_PREFIX,
        "completion events published by tenant-worker",
        s,
    );
    status.duplicate_window = s.status_duplicate_window;
    until_answered(js, "create stream TENANT_STATUS", || {
        create_or_update_stream(js, &status)
    })
    .await?;
    let deadletter = stream_config(
        DEADLETTER_STREAM,
        DEADLETTER_SUBJECT_PREFIX,
        "inbound messages tenant-worker could not use, unchanged, with the reason in headers",
        s,
    );
    until_answered(js, "create stream TENANT_DEADLETTER", || {
        create_or_update_stream(js, &deadletter)
    })
    .await?;

    let consumer_config = PullConfig {
        durable_name: Some(CONSUMER_NAME.to_owned()),
        description: Some("tenant-worker replicas (shared durable pull consumer)".into()),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: s.ack_wait,
        max_deliver: s.max_deliver,
        max_ack_pending: s.max_ack_pending,
        filter_subject: format!("{LIFECYCLE_SUBJECT_PREFIX}.>"),
        ..PullConfig::default()
    };
    let consumer: PullConsumer = until_answered(js, "create consumer tenant-worker", || {
        js.create_consumer_on_stream(consumer_config.clone(), LIFECYCLE_STREAM)
    })
    .await?;

    let bucket = |name: &str, description: &str| kv::Config {
        bucket: name.to_owned(),
        description: description.to_owned(),
        history: 5,
        storage: StorageType::File,
        num_replicas: s.replicas,
        ..kv::Config::default()
    };
    let state_config = bucket(
        STATE_BUCKET,
        "tenant-worker's record of each tenant (status, plan, saga step log)",
    );
    let state = until_answered(js, "create bucket tenant_state", || {
        create_or_update_bucket(js, &state_config)
    })
    .await?;
    let routes_config = bucket(
        ROUTES_BUCKET,
        "tenant id -> live endpoint of each ready tenant, for routing gateways",
    );
    let routes = until_answered(js, "create bucket tenant_routes", || {
        create_or_update_bucket(js, &routes_config)
    })
    .await?;
    Ok((
        Bus {
            js: js.clone(),
            state: StateStore::new(state),
            routes,
        },
        consumer,
    ))
}

/// The value of a tenant's entry in `tenant_routes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub namespace: String,
    pub host: String,
    pub port: u16,
    pub app_version: String,
    pub plan: String,
    /// `ready` while the tenant serves traffic.
    pub status: String,
    /// The `TENANT_LIFECYCLE` stream sequence of the event that set this
    /// route. Events apply in stream order per tenant, so it only grows: a
    /// gateway ignores a route older than the one it has.
    #[serde(default)]
    pub generation: u64,
}

/// `<service>.<namespace>.svc.cluster.local`: the in-cluster name of a tenant's application.
pub fn service_host(service: &str, namespace: &str) -> String {
    format!("{service}.{namespace}.svc.cluster.local")
}

impl Route {
    /// The route of a live tenant, from its record: its application service
    /// `service:port` in its namespace, at `generation`.
    pub fn for_record(record: &TenantRecord, service: &str, port: u16, generation: u64) -> Self {
        Self {
            namespace: record.namespace.clone(),
            host: service_host(service, &record.namespace),
            port,
            app_version: record.app_version.clone().unwrap_or_default(),
            plan: record.plan.clone().unwrap_or_default(),
            status: "ready".into(),
            generation,
        }
    }
}

/// Publishers and stores on an established topology.
#[derive(Clone)]
pub struct Bus {
    js: jetstream::Context,
    state: StateStore,
    routes: kv::Store,
}

impl Bus {
    /// The topology a worker created, for tools (`reconcile`, `replay`): opens
    /// the buckets without creating or changing anything.
    ///
    /// # Errors
    /// [`Error::Nats`] when a bucket does not exist (no worker ran against
    /// this NATS yet) or NATS cannot be reached.
    pub async fn open(js: &jetstream::Context) -> Result<Self, Error> {
        let open = async |name: &'static str| {
            js.get_key_value(name).await.map_err(|e| {
                Error::nats(
                    "open bucket",
                    format!(
                        "{name}: {e} (has a worker run against this NATS? it creates the buckets)"
                    ),
                )
            })
        };
        Ok(Self {
            js: js.clone(),
            state: StateStore::new(open(STATE_BUCKET).await?),
            routes: open(ROUTES_BUCKET).await?,
        })
    }

    pub fn state(&self) -> &StateStore {
        &self.state
    }

    /// Publishes a completion event with `Nats-Msg-Id: msg_id` and waits for the
    /// stream's acknowledgement. A second publication with the same id inside the
    /// duplicate window is acknowledged by the server and dropped.
    ///
    /// # Errors
    /// [`Error::Nats`] when the stream does not confirm.
    pub async fn publish_completion(&self, event: &CloudEvent<Value>) -> Result<(), Error> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", completion_msg_id_of(event).as_str());
        headers.insert("Content-Type", "application/cloudevents+json");
        crate::telemetry::inject_current(&mut headers);
        let subject = event.event_type.subject(&event.subject);
        let payload = Bytes::from(serde_json::to_vec(event).expect("events serialize"));
        self.js
            .publish_with_headers(subject, headers, payload)
            .await
            .map_err(|e| Error::nats("publish completion event", e))?
            .await
            .map_err(|e| Error::nats("confirm completion event", e))?;
        Ok(())
    }

    /// Whether `TENANT_STATUS` already holds `event` (a saga that crashed after
    /// publishing and is resumed after the duplicate window must not publish it
    /// twice). Only the last message on the tenant's subject of that type can
    /// be it: no other saga of the tenant runs while this one is open.
    ///
    /// # Errors
    /// [`Error::Nats`] when the stream cannot be read.
    pub async fn is_published(&self, event: &CloudEvent<Value>) -> Result<bool, Error> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        let subject = event.event_type.subject(&event.subject);
        let stream = self
            .js
            .get_stream_no_info(STATUS_STREAM)
            .await
            .map_err(|e| Error::nats("look up TENANT_STATUS", e))?;
        match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => {
                let published: serde_json::Result<CloudEvent<Value>> =
                    serde_json::from_slice(&message.payload);
                Ok(published.is_ok_and(|p| p.id == event.id))
            }
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(false),
            Err(e) => Err(Error::nats("read TENANT_STATUS", e)),
        }
    }

    /// The first inbound event (`requested`, `upgraded` or `deleted`) on
    /// `TENANT_LIFECYCLE` about `tenant` at or after stream sequence `from`,
    /// as (sequence, subject, payload). Messages on other subjects of the
    /// tenant are not inbound events and are not looked at.
    ///
    /// # Errors
    /// [`Error::Nats`] when the stream cannot be read.
    pub async fn next_lifecycle_message(
        &self,
        tenant: &TenantId,
        from: u64,
    ) -> Result<Option<(u64, String, Bytes)>, Error> {
        use async_nats::jetstream::stream::RawMessageErrorKind;
        let stream = self
            .js
            .get_stream_no_info(LIFECYCLE_STREAM)
            .await
            .map_err(|e| Error::nats("look up TENANT_LIFECYCLE", e))?;
        // One lookup per inbound type, by literal subject, side by side:
        // nats-server finds a literal subject's next message from its
        // per-subject index, where one wildcard lookup
        // (`tenant.lifecycle.*.<tenant>`) scanned every block between `from`
        // and the match. Measured on 2.10.27 with 10,000 tenants requested
        // then deleted: 4.6 ms per wildcard lookup from after the request
        // against 0.4 ms literal, which made deletion slow down as the
        // stream grew.
        let lookups = EventType::ALL
            .into_iter()
            .filter(|t| t.is_inbound())
            .map(|t| {
                let stream = &stream;
                async move {
                    let found = stream
                        .raw_message_builder()
                        .sequence(from)
                        .next_by_subject(t.subject(tenant))
                        .send()
                        .await;
                    match found {
                        Ok(m) => Ok(Some((m.sequence, m.subject.to_string(), m.payload))),
                        Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
                        Err(e) => Err(Error::nats("read TENANT_LIFECYCLE", e)),
                    }
                }
            });
        let found = futures::future::try_join_all(lookups).await?;
        Ok(found.into_iter().flatten().min_by_key(|(seq, ..)| *seq))
    }

    /// Sets the live route of `tenant`.
    ///
    /// # Errors
    /// [`Error::Nats`] when KV cannot be written.
    pub async fn put_route(&self, tenant: &TenantId, route: &Route) -> Result<(), Error> {
        let value = Bytes::from(serde_json::to_vec(route).expect("routes serialize"));
        self.routes
            .put(tenant.as_str(), value)
            .await
            .map_err(|e| Error::nats("write tenant_routes", e))?;
        Ok(())
    }

    /// Withdraws the route of `tenant` (a delete marker, so watchers see it go).
    ///
    /// # Errors
    /// [`Error::Nats`] when KV cannot be written.
    pub async fn delete_route(&self, tenant: &TenantId) -> Result<(), Error> {
        let present = self
            .routes
            .get(tenant.as_str())
            .await
            .map_err(|e| Error::nats("read tenant_routes", e))?
            .is_some();
        if present {
            self.routes
                .delete(tenant.as_str())
                .await
                .map_err(|e| Error::nats("delete from tenant_routes", e))?;
        }
        Ok(())
    }

    /// The route of `tenant`, if it has one.
    ///
    /// # Errors
    /// [`Error::Nats`] when KV cannot be read.
    pub async fn route(&self, tenant: &TenantId) -> Result<Option<Route>, Error> {
        let value = self
            .routes
            .get(tenant.as_str())
            .await
            .map_err(|e| Error::nats("read tenant_routes", e))?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Copies an inbound message, unchanged, to `tenant.deadletter.<reason_code>`
    /// with its headers and the reason. Idempotent per stream sequence.
    ///
    /// # Errors
    /// [`Error::Nats`] when the dead-letter stream does not confirm.
    pub async fn deadletter(
        &self,
        message: &async_nats::Message,
        stream_sequence: u64,
        reason_code: &str,
        reason: &str,
        history: &DeadLetterHistory,
    ) -> Result<(), Error> {
        let mut headers = HeaderMap::new();
        if let Some(original) = &message.headers {
            for (name, values) in original.iter() {
                // JetStream control headers (Nats-Msg-Id, Nats-Expected-*) would
                // change how the dead-letter stream stores the copy; keep them
                // under another name instead.
                let name_str: &str = name.as_ref();
                let target = if name_str.starts_with("Nats-") {
                    format!("Tenant-Worker-Original-{name_str}")
                } else {
                    name_str.to_owned()
                };
                for value in values {
                    headers.append(target.as_str(), value.as_str());
                }
            }
        }
        headers.insert(DEADLETTER_REASON_HEADER, single_line(reason).as_str());
        headers.insert(DEADLETTER_SUBJECT_HEADER, message.subject.as_str());
        headers.insert(
            DEADLETTER_SEQUENCE_HEADER,
            stream_sequence.to_string().as_str(),
        );
        headers.insert(
            DEADLETTER_DELIVERIES_HEADER,
            history.deliveries.to_string().as_str(),
        );
        if !history.attempts.is_empty() {
            let json = serde_json::to_string(&history.attempts).expect("attempts serialize");
            headers.insert(DEADLETTER_HISTORY_HEADER, json.as_str());
        }
        headers.insert(
            "Nats-Msg-Id",
            format!("deadletter:{LIFECYCLE_STREAM}:{stream_sequence}").as_str(),
        );
        self.js
            .publish_with_headers(
                format!("{DEADLETTER_SUBJECT_PREFIX}.{reason_code}"),
                headers,
                message.payload.clone(),
            )
            .await
            .map_err(|e| Error::nats("publish dead letter", e))?
            .await
            .map_err(|e| Error::nats("confirm dead letter", e))?;
        Ok(())
    }
}

/// Header values cannot hold line breaks; reasons are capped to stay readable.
fn single_line(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(1024)
        .collect();
    flat
}
