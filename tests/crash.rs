//! Crash safety: a worker process is aborted at every step boundary (right
//! after the step's side effect, before its log write), before and after the
//! completion event is published, and before the ack; a fresh process (another
//! replica, after the dead one's lease and ack wait run out) finishes the saga.
//! Each run must end with exactly one completion event for the inbound event,
//! the expected objects, and nothing orphaned.
//!
//! Needs the `failpoints` feature (`scripts/test.sh` enables it).

mod support;

use std::time::Duration;

use kube_double::{EmbeddedApiConfig, FaultRule};
use serde_json::{Value, json};
use support::cluster::{expected_ready_objects, tenant_objects, wait_objects};
use support::process::{WorkerOptions, WorkerProcess};
use support::*;

/// Starts a worker that aborts at `point` and waits until it has.
fn crashing_worker(h: &Harness, name: &str, point: &str) -> WorkerProcess {
    h.spawn_worker(WorkerOptions {
        name,
        failpoints: Some(&format!("{point}=return")),
        args: &[],
    })
}

fn worker(h: &Harness, name: &str) -> WorkerProcess {
    h.spawn_worker(WorkerOptions {
        name,
        failpoints: None,
        args: &[],
    })
}

async fn wait_crash(w: &mut WorkerProcess, point: &str) {
    let status = w
        .wait_exit(PATIENCE)
        .await
        .unwrap_or_else(|| panic!("{} did not reach {point}:\n{}", w.name, w.log_text()));
    assert!(!status.success(), "{} exited normally", w.name);
    assert!(
        w.log_text()
            .contains(&format!("failpoint {point}: aborting")),
        "{} died elsewhere:\n{}",
        w.name,
        w.log_text()
    );
}

/// The completion events published for inbound event `id`.
async fn completions_of(h: &Harness, id: uuid::Uuid) -> Vec<Value> {
    h.completion_events()
        .await
        .into_iter()
        .filter(|e| e["data"]["causation_id"] == json!(id.to_string()))
        .collect()
}

async fn assert_ready(h: &Harness, tenant: &str, id: uuid::Uuid) {
    let done = h.completion(tenant, id).await;
    assert_eq!(done["type"], "tenant.provisioned", "{done:#}");
    h.wait_idle().await;
    assert_eq!(completions_of(h, id).await.len(), 1, "one completion event");
    wait_objects(
        &h.kube(),
        tenant,
        &expected_ready_objects(&h.kube(), tenant).await,
    )
    .await;
    assert_eq!(
        h.kv("tenant_routes", tenant).await.expect("route")["plan"],
        "standard"
    );
    let record = h.kv("tenant_state", tenant).await.expect("record");
    assert_eq!(record["status"], "ready", "{record:#}");
    assert!(
        record["saga"].is_null() && record["lease"].is_null(),
        "{record:#}"
    );
}

/// Provisioning with a crash at `point`, finished by another process.
async fn provision_across_a_crash(point: &str) {
    let h = Harness::start_bare(EmbeddedApiConfig::default()).await;
    let mut first = crashing_worker(&h, "first", point);
    h.wait_topology().await;
    let event = requested("phoenix", "standard");
    h.publish(&event).await;
    wait_crash(&mut first, point).await;

    let record = h.kv("tenant_state", "phoenix").await.expect("record");
    if point == "worker.before_ack" {
        assert!(
            record["saga"].is_null(),
            "closed before the ack: {record:#}"
        );
    } else {
        // Died mid-saga, holding the tenant.
        assert_eq!(record["lease"]["holder"], "first", "{record:#}");
        assert_eq!(record["saga"]["event_id"], json!(event.id.to_string()));
    }

    let _second = worker(&h, "second");
    assert_ready(&h, "phoenix", event.id).await;
}

macro_rules! provision_crash {
    ($($name:ident => $point:literal,)*) => {$(
        #[tokio::test]
        async fn $name() {
            provision_across_a_crash($point).await;
        }
    )*};
}

provision_crash! {
    crash_after_namespace_before_its_log => "saga.after_apply.namespace",
    crash_after_resource_quota_before_its_log => "saga.after_apply.resource_quota",
    crash_after_limit_range_before_its_log => "saga.after_apply.limit_range",
    crash_after_network_policy_before_its_log => "saga.after_apply.network_policy",
    crash_after_rbac_before_its_log => "saga.after_apply.rbac",
    crash_after_release_before_its_log => "saga.after_apply.release",
    crash_after_deciding_before_publishing => "saga.before_publish",
    crash_after_publishing_before_the_record => "saga.after_publish",
    crash_before_the_ack => "worker.before_ack",
}

#[tokio::test]
async fn crash_while_deleting_the_namespace() {
    let h = Harness::start_bare(EmbeddedApiConfig {
        namespace_termination_delay: Duration::from_millis(500),
        ..EmbeddedApiConfig::default()
    })
    .await;
    let mut first = worker(&h, "first");
    h.wait_topology().await;
    let req = requested("phoenix", "standard");
    h.publish(&req).await;
    h.completion("phoenix", req.id).await;
    first.kill();

    let point = "saga.after_delete_namespace";
    let mut second = crashing_worker(&h, "second", point);
    let del = deleted("phoenix");
    h.publish(&del).await;
    wait_crash(&mut second, point).await;
    // The route was withdrawn before the namespace went.
    assert!(h.kv("tenant_routes", "phoenix").await.is_none());

    let _third = worker(&h, "third");
    let done = h.completion("phoenix", del.id).await;
    assert_eq!(done["type"], "tenant.deprovisioned", "{done:#}");
    h.wait_idle().await;
    assert_eq!(completions_of(&h, del.id).await.len(), 1);
    assert!(tenant_objects(&h.kube(), "phoenix").await.is_empty());
    let record = h.kv("tenant_state", "phoenix").await.unwrap();
    assert_eq!(record["status"], "deleted");
}

#[tokio::test]
async fn crash_while_compensating_resumes_the_unwinding() {
    let h = Harness::start_bare(EmbeddedApiConfig::default()).await;
    h.api.faults().add_rule(
        FaultRule::new(422)
            .method("PATCH")
            .resource("networkpolicies")
            .message("NetworkPolicy.networking.k8s.io \"tenant-isolation\" is invalid"),
    );
    let point = "saga.after_compensate.limit_range";
    let mut first = crashing_worker(&h, "first", point);
    h.wait_topology().await;
    let event = requested("phoenix", "standard");
    h.publish(&event).await;
    wait_crash(&mut first, point).await;
    let record = h.kv("tenant_state", "phoenix").await.unwrap();
    assert_eq!(record["saga"]["phase"], "compensating", "{record:#}");

    let _second = worker(&h, "second");
    let done = h.completion("phoenix", event.id).await;
    assert_eq!(done["type"], "tenant.failed", "{done:#}");
    assert_network_policy_compensated(&done["data"]);
    h.wait_idle().await;
    assert_eq!(completions_of(&h, event.id).await.len(), 1);
    wait_objects(&h.kube(), "phoenix", &[]).await;
    assert!(h.kv("tenant_routes", "phoenix").await.is_none());
}

/// A saga that dies after its revision's pending record is written is
/// resumed by installing what the record stores, not a new rendering: the
/// fixture chart draws a password and a UUID at each render, and the ones
/// applied are those of the record the first process wrote.
#[tokio::test]
async fn a_resumed_release_applies_the_manifest_its_record_stores() {
    let chart = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/charts/generated-password"
    );
    let h = Harness::start_bare(EmbeddedApiConfig::default()).await;
    let point = "release.after_pending_record";
    let mut first = h.spawn_worker(WorkerOptions {
        name: "first",
        failpoints: Some(&format!("{point}=return")),
        args: &["--chart", chart],
    });
    h.wait_topology().await;
    let event = requested("phoenix", "standard");
    h.publish(&event).await;
    wait_crash(&mut first, point).await;

    let pending = support::cluster::releases(&h.kube(), "phoenix").await;
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].info.status,
        tenant_worker::cluster::release_records::ReleaseStatus::PendingInstall
    );
    let stored = pending[0].manifest.clone();
    assert!(stored.contains("kind: Secret"), "{stored}");

    let _second = h.spawn_worker(WorkerOptions {
        name: "second",
        failpoints: None,
        args: &["--chart", chart],
    });
    let done = h.completion("phoenix", event.id).await;
    assert_eq!(done["type"], "tenant.provisioned", "{done:#}");
    h.wait_idle().await;
    let after = support::cluster::releases(&h.kube(), "phoenix").await;
    assert_eq!(after.len(), 1, "the same revision");
    assert_eq!(
        after[0].manifest, stored,
        "the stored manifest, not a new rendering"
    );

    // What is in the cluster is what the record says.
    let secret =
        kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(h.kube(), "tenant-phoenix")
            .get("phoenix-db")
            .await
            .unwrap();
    let password = String::from_utf8(secret.data.unwrap()["password"].0.clone()).unwrap();
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &password);
    assert!(stored.contains(&format!("password: {encoded}")), "{stored}");
    let cm =
        kube::Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(h.kube(), "tenant-phoenix")
            .get("phoenix-generated")
            .await
            .unwrap();
    let uuid = cm.data.unwrap()["uuid"].clone();
    assert!(stored.contains(&format!("uuid: {uuid}")), "{stored}");
}
