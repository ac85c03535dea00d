//! What an operator scrapes and probes: `/metrics` exposes every family after
//! sagas ran, `/healthz` answers while the process runs, and `/readyz` turns
//! unready when NATS goes away and ready again when it is back.
//!
//! A test binary of its own: the metrics are the process's, and the test
//! asserts that its gauges (sagas in flight, leases held) are back to zero,
//! which other tests' sagas running in the same process would falsify.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use kube_double::FaultRule;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` on `addr`: (status code, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("endpoint listens");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn with_endpoints() -> (Harness, SocketAddr) {
    let port = tenant_worker_test_support::nats_server::free_port().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let h = Harness::start_with(|s| s.metrics_listen = Some(addr), Default::default()).await;
    (h, addr)
}

/// The value of the sample `line` starts with, if it is there.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_expose_every_family_after_sagas() {
    let (h, addr) = with_endpoints().await;
    let ok = requested("scraped", "free");
    h.publish(&ok).await;
    h.completion("scraped", ok.id).await;
    // A compensated failure, after a few retried requests.
    h.api.faults().add_rule(
        FaultRule::new(503)
            .method("PATCH")
            .resource("limitranges")
            .times(2),
    );
    h.api.faults().add_rule(
        FaultRule::new(422)
            .method("PATCH")
            .resource("networkpolicies")
            .namespace("tenant-broken"),
    );
    let bad = requested("broken", "free");
    h.publish(&bad).await;
    assert_eq!(
        h.completion("broken", bad.id).await["type"],
        "tenant.failed"
    );
    h.publish_raw("tenant.lifecycle.requested.garbage", "{not json")
        .await;
    h.deadletters(1).await;

    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    for family in [
        "sagas_started",
        "sagas_completed",
        "sagas_failed",
        "sagas_compensated",
        "step_duration_seconds",
        "kube_retries",
        "deadlettered",
        "drift_repaired",
        "consumer_pending",
        "consumer_ack_pending",
        "sagas_in_flight",
        "leases_held",
    ] {
        assert!(
            text.contains(&format!("# TYPE tenant_worker_{family} ")),
            "{family}\n{text}"
        );
    }
    let at_least_one = |prefix: &str| {
        assert!(
            sample(&text, prefix).is_some_and(|v| v >= 1.0),
            "{prefix}\n{text}"
        );
    };
    at_least_one("tenant_worker_sagas_started_total{intent=\"requested\"}");
    at_least_one(
        "tenant_worker_sagas_completed_total{intent=\"requested\",outcome=\"provisioned\"}",
    );
    at_least_one("tenant_worker_sagas_completed_total{intent=\"requested\",outcome=\"failed\"}");
    at_least_one("tenant_worker_sagas_failed_total{intent=\"requested\"}");
    at_least_one("tenant_worker_sagas_compensated_total{intent=\"requested\"}");
    at_least_one("tenant_worker_step_duration_seconds_count{step=\"release\",direction=\"apply\"}");
    at_least_one(
        "tenant_worker_step_duration_seconds_count{step=\"namespace\",direction=\"compensate\"}",
    );
    at_least_one("tenant_worker_kube_retries_total");
    at_least_one("tenant_worker_deadlettered_total{reason=\"malformed_json\"}");
    // Nothing runs now: no saga, no lease.
    assert_eq!(
        sample(&text, "tenant_worker_sagas_in_flight "),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "tenant_worker_leases_held "),
        Some(0.0),
        "{text}"
    );
}

#[tokio::test]
async fn readiness_follows_nats() {
    let (mut h, addr) = with_endpoints().await;
    let wait_for = async |want: u16| -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (status, body) = get(addr, "/readyz").await;
            if status == want {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "/readyz still {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(wait_for(200).await, "ready\n");
    assert_eq!(get(addr, "/healthz").await, (200, "ok\n".into()));

    h.nats.kill();
    let body = wait_for(503).await;
    assert!(body.contains("nats"), "{body}");
    // Alive all the same: a restart would not help.
    assert_eq!(get(addr, "/healthz").await.0, 200);

    h.nats.restart().unwrap();
    wait_for(200).await;
    // And it works again.
    let after = requested("after-restart", "free");
    h.publish(&after).await;
    assert_eq!(
        h.completion("after-restart", after.id).await["type"],
        "tenant.provisioned"
    );
}
