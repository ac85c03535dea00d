//! Restarts: NATS killed and restarted mid-run on the same store, and a worker
//! stopped with SIGTERM while sagas are in flight.

use std::time::Duration;

use crate::support::cluster::{expected_ready_objects, tenant_objects};
use crate::support::process::WorkerOptions;
use crate::support::*;
use kube_double::EmbeddedApiConfig;

/// Publishes, retrying while the client reconnects after a server restart.
async fn status_count(h: &Harness) -> u64 {
    match h.js.get_stream("TENANT_STATUS").await {
        Ok(mut s) => s.info().await.map_or(0, |i| i.state.messages),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_run_loses_no_event() {
    let mut h = Harness::start_with(
        |s| s.topology.ack_wait = Duration::from_secs(3),
        EmbeddedApiConfig::default(),
    )
    .await;
    h.api.faults().set_latency(Duration::from_millis(20));
    let mut events = Vec::new();
    for i in 0..60 {
        let e = requested(&format!("restart-{i:02}"), "standard");
        h.publish(&e).await;
        events.push(e);
    }
    // Kill NATS (SIGKILL) once some sagas are done and others are in flight.
    while status_count(&h).await < 10 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::task::block_in_place(|| h.nats.restart()).expect("nats restarts");
    for i in 60..80 {
        let e = requested(&format!("restart-{i:02}"), "standard");
        publish_until_stored(&h.js, &e, PATIENCE).await;
        events.push(e);
    }
    for e in &events {
        let done = h.completion(e.subject.as_str(), e.id).await;
        assert_eq!(done["type"], "tenant.provisioned", "{done:#}");
    }
    h.wait_idle().await;
    h.api.faults().clear();
    assert_eq!(h.completion_events().await.len(), events.len());
    for e in &events {
        let t = e.subject.as_str();
        assert_eq!(
            tenant_objects(&h.kube(), t).await,
            expected_ready_objects(&h.kube(), t).await
        );
        assert!(h.kv("tenant_routes", t).await.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_checkpoints_sagas_in_flight_and_exits_within_the_grace_period() {
    let h = Harness::start_bare(EmbeddedApiConfig::default()).await;
    // Slow API: each saga takes seconds, so SIGTERM finds them mid-way.
    h.api.faults().set_latency(Duration::from_millis(300));
    let mut first = h.spawn_worker(WorkerOptions {
        name: "first",
        failpoints: None,
        args: &["--shutdown-grace-secs", "2"],
    });
    h.wait_topology().await;
    let mut events = Vec::new();
    for i in 0..8 {
        let e = requested(&format!("term-{i}"), "standard");
        h.publish(&e).await;
        events.push(e);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopping = std::time::Instant::now();
    first.terminate();
    let status = first
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("worker exits");
    let took = stopping.elapsed();
    assert!(
        status.success(),
        "clean exit: {status}\n{}",
        first.log_text()
    );
    assert!(took < Duration::from_secs(4), "exited after {took:?}");
    let log = first.log_text();
    assert!(
        log.contains("asking the remaining sagas to checkpoint"),
        "{log}"
    );
    // Every saga it stopped left its log and released its lease.
    let mut open = 0;
    for e in &events {
        let record = h
            .kv("tenant_state", e.subject.as_str())
            .await
            .expect("record");
        assert!(record["lease"].is_null(), "lease released: {record:#}");
        open += usize::from(!record["saga"].is_null());
    }
    assert!(open > 0, "some sagas were interrupted");

    // Another worker finishes them.
    h.api.faults().clear();
    let _second = h.spawn_worker(WorkerOptions {
        name: "second",
        failpoints: None,
        args: &[],
    });
    for e in &events {
        let done = h.completion(e.subject.as_str(), e.id).await;
        assert_eq!(done["type"], "tenant.provisioned", "{done:#}");
    }
    h.wait_idle().await;
    assert_eq!(h.completion_events().await.len(), events.len());
}
