//! Test support: a real `nats-server -js` per test (free port, temporary store,
//! killed on drop), the embedded Kubernetes API, and the worker running in this
//! process through the same `tenant_worker::run` that `main` calls.
#![allow(dead_code)] // each test binary uses a different part of this module

pub(crate) mod cluster;
pub(crate) mod intents;
pub(crate) mod process;
pub(crate) mod real_cluster;

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use bytes::Bytes;
use futures::StreamExt;
use kube_double::{EmbeddedApi, EmbeddedApiConfig};
use serde_json::{Value, json};
use tenant_worker::WorkerSettings;
use tenant_worker::contract::{
    CloudEvent, DEADLETTER_STREAM, EventType, ROUTES_BUCKET, STATE_BUCKET, STATUS_STREAM,
    TenantDeleted, TenantId, TenantRequested, TenantUpgraded,
};
use tenant_worker_test_support::nats_server::NatsServer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for something the worker should do.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// The saga's steps by their wire names, in the order they run.
pub(crate) const STEP_NAMES: [&str; 6] = [
    "namespace",
    "resource_quota",
    "limit_range",
    "network_policy",
    "rbac",
    "release",
];

/// A test's own NATS server with JetStream, and what a test asks of it:
/// publish events, wait for completions, read streams and buckets.
pub(crate) struct EventStreams {
    pub nats: NatsServer,
    pub js: jetstream::Context,
    /// The NATS store, and kubeconfigs and logs of worker processes.
    pub dir: tempfile::TempDir,
}

/// A running worker with its NATS server and embedded API.
pub(crate) struct Harness {
    pub streams: EventStreams,
    pub api: EmbeddedApi,
    worker: Option<(JoinHandle<tenant_worker::Result<()>>, oneshot::Sender<()>)>,
}

impl std::ops::Deref for Harness {
    type Target = EventStreams;
    fn deref(&self) -> &EventStreams {
        &self.streams
    }
}

impl std::ops::DerefMut for Harness {
    fn deref_mut(&mut self) -> &mut EventStreams {
        &mut self.streams
    }
}

/// The nats-server settings of every test: payloads up to 8 MB, so that the
/// worker (not the server) is what refuses an oversized event.
const NATS_CONFIG: &str = "max_payload: 8MB\n";

impl Harness {
    /// Starts NATS, the embedded API and a worker with default settings.
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}, EmbeddedApiConfig::default()).await
    }

    /// Starts with settings adjusted by `adjust` and an API configured by `api`.
    pub(crate) async fn start_with(
        adjust: impl FnOnce(&mut WorkerSettings),
        api: EmbeddedApiConfig,
    ) -> Self {
        let mut h = Self::start_bare(api).await;
        h.start_worker(adjust).await;
        h
    }

    /// Starts NATS (its store in [`Harness::dir`], so it survives a restart)
    /// and the embedded API, with no worker: tests start worker processes.
    pub(crate) async fn start_bare(api: EmbeddedApiConfig) -> Self {
        let streams = EventStreams::start().await;
        let api = EmbeddedApi::start("127.0.0.1:0".parse().unwrap(), api)
            .await
            .expect("embedded API starts");
        std::fs::write(streams.dir.path().join("kubeconfig"), api.kubeconfig_yaml())
            .expect("kubeconfig written");
        Self {
            streams,
            api,
            worker: None,
        }
    }

    /// The kubeconfig of the embedded API, for worker processes.
    pub(crate) fn kubeconfig(&self) -> std::path::PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Starts a `tenant-worker run` process on this harness.
    pub(crate) fn spawn_worker(&self, opts: process::WorkerOptions<'_>) -> process::WorkerProcess {
        process::WorkerProcess::spawn(&self.nats.url(), &self.kubeconfig(), self.dir.path(), opts)
    }

    /// Starts (another) worker in this process and waits until it has created
    /// the topology.
    pub(crate) async fn start_worker(&mut self, adjust: impl FnOnce(&mut WorkerSettings)) {
        let mut settings = WorkerSettings::for_tests(&self.nats.url());
        settings.shutdown_grace = Duration::from_secs(5);
        adjust(&mut settings);
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(tenant_worker::run(settings, self.kube(), async {
            let _ = rx.await;
        }));
        self.worker = Some((handle, tx));
        self.wait_topology().await;
    }

    /// Stops the worker gracefully and returns what `run` returned.
    pub(crate) async fn stop_worker(&mut self) -> tenant_worker::Result<()> {
        let (handle, tx) = self.worker.take().expect("a worker is running");
        let _ = tx.send(());
        handle.await.expect("worker task does not panic")
    }

    /// A client of the embedded API built as the worker builds its own.
    pub(crate) fn kube(&self) -> kube::Client {
        tenant_worker::cluster::client_from(self.api.config())
            .expect("a client of the embedded API")
    }
}

impl EventStreams {
    /// Starts a nats-server with JetStream, its store in [`EventStreams::dir`]
    /// (so that it survives a restart), and connects to it.
    pub(crate) async fn start() -> Self {
        init_logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let nats =
            NatsServer::start_with_config(Some(&dir.path().join("jetstream")), Some(NATS_CONFIG))
                .unwrap_or_else(|e| panic!("{e}"));
        let client = async_nats::connect(nats.url())
            .await
            .expect("nats connects");
        let js = jetstream::new(client);
        Self { nats, js, dir }
    }

    /// Waits until a worker has created the streams, the consumer and the buckets.
    pub(crate) async fn wait_topology(&self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Ok(mut stream) = self.js.get_stream("TENANT_LIFECYCLE").await
                && stream.info().await.is_ok()
                && stream.consumer_info("tenant-worker").await.is_ok()
                && self.js.get_key_value(STATE_BUCKET).await.is_ok()
                && self.js.get_key_value(ROUTES_BUCKET).await.is_ok()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Publishes `event` on its subject with `Nats-Msg-Id` = its id; returns the stream sequence.
    pub(crate) async fn publish(&self, event: &CloudEvent<Value>) -> u64 {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.id.to_string().as_str());
        self.publish_raw_with(
            &event.event_type.subject(&event.subject),
            headers,
            serde_json::to_vec(event).unwrap(),
        )
        .await
    }

    /// Publishes arbitrary bytes on `subject` with no headers.
    pub(crate) async fn publish_raw(&self, subject: &str, payload: impl Into<Vec<u8>>) -> u64 {
        self.publish_raw_with(subject, HeaderMap::new(), payload.into())
            .await
    }

    pub(crate) async fn publish_raw_with(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: Vec<u8>,
    ) -> u64 {
        self.js
            .publish_with_headers(subject.to_owned(), headers, Bytes::from(payload))
            .await
            .expect("publish")
            .await
            .expect("stream confirms")
            .sequence
    }

    /// Waits for the completion event of inbound event `id` about `tenant`.
    pub(crate) async fn completion(&self, tenant: &str, id: uuid::Uuid) -> Value {
        self.completion_within(tenant, id, PATIENCE).await
    }

    /// Like [`Harness::completion`], waiting up to `limit`.
    pub(crate) async fn completion_within(
        &self,
        tenant: &str,
        id: uuid::Uuid,
        limit: Duration,
    ) -> Value {
        tenant_worker::commands::publish::wait_for_completion(
            &self.js,
            &TenantId::parse(tenant).unwrap(),
            id,
            limit,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every message currently in `stream`, as (subject, headers, payload).
    pub(crate) async fn stream_messages(
        &self,
        stream: &str,
    ) -> Vec<(String, Option<HeaderMap>, Bytes)> {
        let mut s = self.js.get_stream(stream).await.expect("stream exists");
        let count = s.info().await.expect("stream info").state.messages;
        if count == 0 {
            return Vec::new();
        }
        let consumer = s
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::All,
                ..OrderedConfig::default()
            })
            .await
            .expect("ordered consumer");
        let mut messages = consumer.messages().await.expect("messages");
        let mut out = Vec::new();
        while (out.len() as u64) < count {
            let msg = tokio::time::timeout(PATIENCE, messages.next())
                .await
                .expect("stream delivers")
                .expect("stream open")
                .expect("message");
            out.push((
                msg.subject.to_string(),
                msg.headers.clone(),
                msg.payload.clone(),
            ));
        }
        out
    }

    /// Every completion event published so far, parsed.
    pub(crate) async fn completion_events(&self) -> Vec<Value> {
        self.stream_messages(STATUS_STREAM)
            .await
            .into_iter()
            .map(|(_, _, p)| serde_json::from_slice(&p).expect("completion events are JSON"))
            .collect()
    }

    /// Waits until `TENANT_DEADLETTER` holds `n` messages and returns them.
    pub(crate) async fn deadletters(&self, n: usize) -> Vec<(String, Option<HeaderMap>, Bytes)> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let msgs = self.stream_messages(DEADLETTER_STREAM).await;
            if msgs.len() >= n {
                return msgs;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} dead letters, have {}",
                msgs.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The KV entry of `tenant` in `bucket`, parsed.
    pub(crate) async fn kv(&self, bucket: &str, tenant: &str) -> Option<Value> {
        let kv = self.js.get_key_value(bucket).await.expect("bucket exists");
        kv.get(tenant)
            .await
            .expect("kv read")
            .map(|v| serde_json::from_slice(&v).expect("kv values are JSON"))
    }

    /// Waits until the consumer has nothing pending or unacknowledged.
    pub(crate) async fn wait_idle(&self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let stream = self.js.get_stream("TENANT_LIFECYCLE").await.unwrap();
            let info = stream.consumer_info("tenant-worker").await.unwrap().clone();
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "consumer not idle: {info:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Logs of the in-process worker, when `TEST_LOG` sets a filter (e.g.
/// `TEST_LOG=tenant_worker=debug cargo test --test suite sagas:: -- --nocapture`).
fn init_logs() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// Publishes `event` on its subject with `Nats-Msg-Id` = its id until the
/// cluster confirms it. An attempt that times out may still have been stored;
/// the retry carries the same id, so the stream drops the copy. Returns the
/// number of failed attempts; panics when it is not stored within `limit`.
pub(crate) async fn publish_until_stored(
    js: &jetstream::Context,
    event: &CloudEvent<Value>,
    limit: Duration,
) -> u32 {
    let deadline = tokio::time::Instant::now() + limit;
    let mut failed = 0;
    loop {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.id.to_string().as_str());
        let sent = async {
            js.publish_with_headers(
                event.event_type.subject(&event.subject),
                headers,
                serde_json::to_vec(event).unwrap().into(),
            )
            .await?
            .await
            .map_err(async_nats::Error::from)
        };
        match sent.await {
            Ok(_) => return failed,
            Err(e) => {
                failed += 1;
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{} not stored after {failed} attempts: {e}",
                    event.id
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

pub(crate) fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

fn event<D: serde::Serialize>(
    source: &str,
    t: EventType,
    tenant_id: &str,
    data: D,
) -> CloudEvent<Value> {
    CloudEvent::new(
        source,
        t,
        tenant(tenant_id),
        serde_json::to_value(data).unwrap(),
    )
}

/// A `tenant.requested` from signup.
pub(crate) fn requested(tenant_id: &str, plan: &str) -> CloudEvent<Value> {
    event(
        "signup",
        EventType::Requested,
        tenant_id,
        TenantRequested {
            tenant_id: tenant(tenant_id),
            plan: plan.into(),
            app_version: None,
            values: None,
            metadata: json!({"billing_account": format!("ba_{tenant_id}")})
                .as_object()
                .cloned(),
        },
    )
}

/// A `tenant.upgraded` changing the plan.
pub(crate) fn upgraded(tenant_id: &str, plan: &str) -> CloudEvent<Value> {
    upgrade_with(tenant_id, Some(plan), None, None)
}

/// A `tenant.upgraded` changing what is given (plan, version, values).
pub(crate) fn upgrade_with(
    tenant_id: &str,
    plan: Option<&str>,
    app_version: Option<&str>,
    values: Option<Value>,
) -> CloudEvent<Value> {
    event(
        "billing",
        EventType::Upgraded,
        tenant_id,
        TenantUpgraded {
            tenant_id: tenant(tenant_id),
            plan: plan.map(Into::into),
            app_version: app_version.map(Into::into),
            values: values.and_then(|v| v.as_object().cloned()),
            metadata: None,
        },
    )
}

/// Runs `tenant-worker <command> <args>` as an operator would against this
/// harness: its NATS (`NATS_URL`) and its cluster (`--kubeconfig`).
pub(crate) async fn operator_command(
    h: &Harness,
    command: &str,
    args: &[&str],
) -> std::process::Output {
    operator_command_on(&h.nats.url(), &h.kubeconfig(), command, args).await
}

/// Runs `tenant-worker <command> <args>` against NATS at `nats_url` and the
/// cluster of `kubeconfig`.
pub(crate) async fn operator_command_on(
    nats_url: &str,
    kubeconfig: &std::path::Path,
    command: &str,
    args: &[&str],
) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tenant-worker"))
        .arg(command)
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("NATS_URL", nats_url)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("binary runs")
}

/// stdout then stderr of a command, for assertions and failure messages.
pub(crate) fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asserts that a process exited with success, showing its stderr when not.
#[track_caller]
pub(crate) fn assert_succeeded(o: &std::process::Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Asserts a `tenant.failed`'s data: the network policy failed and the steps
/// before it were undone in reverse.
#[track_caller]
pub(crate) fn assert_network_policy_compensated(data: &Value) {
    assert_eq!(data["failed_step"], "network_policy", "{data}");
    assert_eq!(data["compensated"], true, "{data}");
    assert_eq!(
        data["compensation"],
        json!([
            "network_policy",
            "limit_range",
            "resource_quota",
            "namespace"
        ]),
        "{data}"
    );
}

/// A `tenant.deleted` from billing.
pub(crate) fn deleted(tenant_id: &str) -> CloudEvent<Value> {
    event(
        "billing",
        EventType::Deleted,
        tenant_id,
        TenantDeleted {
            tenant_id: tenant(tenant_id),
            reason: Some("subscription cancelled".into()),
            metadata: None,
        },
    )
}

/// Validates a published event against its checked-in JSON Schema.
pub(crate) fn assert_matches_schema(event: &Value) {
    let t = EventType::parse(event["type"].as_str().expect("type")).expect("known type");
    let schema: Value = serde_json::from_str(tenant_worker::contract::schema_for(t)).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(event)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{t} event breaks its schema: {errors:?}\n{event:#}"
    );
}
