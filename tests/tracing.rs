//! One inbound event with a W3C `traceparent` yields one connected trace: the
//! event's span continues the producer's, every saga step and every
//! Kubernetes request hangs under it, the messaging attributes are there, and
//! the completion event carries the trace on.
//!
//! The spans go to an in-memory exporter through the worker's own trace layer
//! (`telemetry::otel_layer`), the one `main` installs for OTLP. Without any
//! exporter configured, a `tenant-worker run` process still carries the trace
//! from the inbound event to the completion event.

mod support;

use std::collections::HashSet;

use async_nats::HeaderMap;
use opentelemetry::trace::{SpanId, SpanKind, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use support::process::WorkerOptions;
use support::*;
use tenant_worker::contract::STATUS_STREAM;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test]
async fn one_event_yields_one_connected_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    tenant_worker::telemetry::install_propagator();
    tracing_subscriber::registry()
        .with(tenant_worker::telemetry::otel_layer(
            provider.tracer("test"),
            true,
        ))
        .init();

    let h = Harness::start().await;
    let event = requested("traced", "standard");
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", format!("00-{TRACE}-{PARENT}-01").as_str());
    headers.insert("Nats-Msg-Id", event.id.to_string().as_str());
    h.publish_raw_with(
        "tenant.lifecycle.requested.traced",
        headers,
        serde_json::to_vec(&event).unwrap(),
    )
    .await;
    assert_eq!(
        h.completion("traced", event.id).await["type"],
        "tenant.provisioned"
    );
    h.wait_idle().await;
    provider.force_flush().unwrap();

    let trace = TraceId::from_hex(TRACE).unwrap();
    let spans: Vec<SpanData> = exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();

    // The event's span continues the producer's span.
    let root: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.parent_span_id == SpanId::from_hex(PARENT).unwrap())
        .collect();
    assert_eq!(
        root.len(),
        1,
        "one span continues the producer's: {names:?}"
    );
    let root = root[0];
    assert_eq!(root.name, "process tenant.lifecycle.requested.traced");
    assert_eq!(root.span_kind, SpanKind::Consumer);
    for (key, value) in [
        ("messaging.system", "nats"),
        (
            "messaging.destination.name",
            "tenant.lifecycle.requested.traced",
        ),
        ("messaging.operation.type", "process"),
        ("messaging.consumer.group.name", "tenant-worker"),
        ("tenant_id", "traced"),
    ] {
        assert_eq!(
            attribute(root, key).as_deref(),
            Some(value),
            "{key}: {:?}",
            root.attributes
        );
    }
    assert_eq!(
        attribute(root, "messaging.message.id"),
        Some(event.id.to_string())
    );
    assert_eq!(attribute(root, "event_id"), Some(event.id.to_string()));

    // Connected: every span's parent is the producer's or another span of the trace.
    let ids: HashSet<SpanId> = spans.iter().map(|s| s.span_context.span_id()).collect();
    for s in &spans {
        assert!(
            s.parent_span_id == root.parent_span_id || ids.contains(&s.parent_span_id),
            "{} is not connected to the trace: {names:?}",
            s.name
        );
    }
    // A span per step, each under the event's span...
    let steps: Vec<&SpanData> = spans.iter().filter(|s| s.name == "step").collect();
    let step_names: HashSet<String> = steps.iter().filter_map(|s| attribute(s, "step")).collect();
    for step in STEP_NAMES {
        assert!(
            step_names.contains(step),
            "no span for step {step}: {names:?}"
        );
    }
    // ... and a client span per Kubernetes request, under a step (or the event).
    let kube: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect();
    assert!(kube.len() >= 10, "Kubernetes request spans: {names:?}");
    let step_ids: HashSet<SpanId> = steps.iter().map(|s| s.span_context.span_id()).collect();
    assert!(
        kube.iter()
            .filter(|s| step_ids.contains(&s.parent_span_id))
            .count()
            >= 7,
        "requests of the steps hang under them"
    );

    // The completion event carries the trace on.
    let traceparent = completion_traceparent(&h, "tenant.status.provisioned.traced").await;
    assert!(
        traceparent.starts_with(&format!("00-{TRACE}-")),
        "{traceparent}"
    );
}

/// The `traceparent` of the completion event published on `subject`.
async fn completion_traceparent(h: &Harness, subject: &str) -> String {
    let published = h.stream_messages(STATUS_STREAM).await;
    let (_, headers, _) = published
        .iter()
        .find(|(s, _, _)| s == subject)
        .expect("the completion event");
    headers
        .as_ref()
        .and_then(|h| h.get("traceparent"))
        .map(|v| v.as_str().to_owned())
        .expect("the completion event has a traceparent")
}

#[tokio::test]
async fn without_an_exporter_the_trace_context_still_travels() {
    let h = Harness::start_bare(Default::default()).await;
    let _worker = h.spawn_worker(WorkerOptions {
        name: "untraced",
        failpoints: None,
        args: &[],
    });
    h.wait_topology().await;
    let event = requested("carried", "free");
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", format!("00-{TRACE}-{PARENT}-01").as_str());
    h.publish_raw_with(
        "tenant.lifecycle.requested.carried",
        headers,
        serde_json::to_vec(&event).unwrap(),
    )
    .await;
    assert_eq!(
        h.completion("carried", event.id).await["type"],
        "tenant.provisioned"
    );
    let traceparent = completion_traceparent(&h, "tenant.status.provisioned.carried").await;
    assert!(
        traceparent.starts_with(&format!("00-{TRACE}-")),
        "{traceparent}"
    );
    assert!(
        !traceparent.contains(PARENT),
        "a span of the worker's is the parent: {traceparent}"
    );
}
