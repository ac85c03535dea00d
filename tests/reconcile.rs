//! Drift repair as an operator sees it: `tenant-worker reconcile` reports what
//! someone changed behind the worker's back and changes nothing; `--apply`
//! puts it back and publishes `tenant.drift_repaired`; a second run finds
//! nothing; objects that are not the worker's are reported and left alone; a
//! deleted tenant's leftover namespace goes; `run` with a reconcile interval
//! repairs on its own.

use std::process::Output;
use std::time::Duration;

use crate::support::cluster::{expected_ready_objects, tenant_objects, wait_objects};
use crate::support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

async fn reconcile(h: &Harness, args: &[&str]) -> Output {
    operator_command(h, "reconcile", args).await
}

async fn provision(h: &Harness, tenant: &str, plan: &str) {
    let event = requested(tenant, plan);
    h.publish(&event).await;
    let done = h.completion(tenant, event.id).await;
    assert_eq!(done["type"], "tenant.provisioned", "{done:#}");
}

fn drift_events(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["type"] == "tenant.drift_repaired")
        .collect()
}

/// The quota's `spec.hard` as it is in the cluster.
async fn hard(h: &Harness, ns: &str) -> Value {
    let quota = Api::<ResourceQuota>::namespaced(h.kube(), ns)
        .get("tenant-quota")
        .await
        .unwrap();
    serde_json::to_value(quota.spec.unwrap().hard.unwrap()).unwrap()
}

#[tokio::test]
async fn reconcile_reports_each_kind_of_drift_then_repairs_it_once() {
    let h = Harness::start().await;
    provision(&h, "drifty", "standard").await;
    provision(&h, "steady", "free").await;
    let ns = "tenant-drifty";
    let expected = expected_ready_objects(&h.kube(), "drifty").await;
    let steady_objects = tenant_objects(&h.kube(), "steady").await;
    let hard_before = hard(&h, ns).await;

    // Someone deletes the NetworkPolicy, edits the quota and removes a
    // release object.
    Api::<NetworkPolicy>::namespaced(h.kube(), ns)
        .delete("tenant-isolation", &DeleteParams::default())
        .await
        .unwrap();
    Api::<ResourceQuota>::namespaced(h.kube(), ns)
        .patch(
            "tenant-quota",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hard": {"limits.cpu": "64"}}})),
        )
        .await
        .unwrap();
    let services = Api::<Service>::namespaced(h.kube(), ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    let service = services.items[0].metadata.name.clone().unwrap();
    Api::<Service>::namespaced(h.kube(), ns)
        .delete(&service, &DeleteParams::default())
        .await
        .unwrap();
    let drifted_objects = tenant_objects(&h.kube(), "drifty").await;
    let status_before = h.completion_events().await.len();

    // The dry run names each, fails, and changes nothing.
    let out = reconcile(&h, &[]).await;
    let report = output_text(&out);
    assert!(!out.status.success(), "drift found: exit 1\n{report}");
    assert!(report.contains("drifty: drifted"), "{report}");
    assert!(
        report.contains("+ NetworkPolicy tenant-isolation missing"),
        "{report}"
    );
    assert!(
        report.contains("~ ResourceQuota tenant-quota modified: spec.hard.limits.cpu"),
        "{report}"
    );
    assert!(
        report.contains(&format!("+ Service {service} missing")),
        "{report}"
    );
    assert!(
        !report.contains("steady"),
        "in sync tenants are not listed\n{report}"
    );
    assert!(
        report.contains("2 tenants checked: 1 in sync, 1 drifted, 0 skipped"),
        "{report}"
    );
    assert!(report.contains("--apply"), "says how to repair\n{report}");
    assert_eq!(tenant_objects(&h.kube(), "drifty").await, drifted_objects);
    assert_eq!(hard(&h, ns).await["limits.cpu"], "64");
    assert_eq!(h.completion_events().await.len(), status_before);

    // --json: one object per drifted tenant.
    let out = reconcile(&h, &["--json", "--tenant", "drifty"]).await;
    let line: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", output_text(&out)));
    assert_eq!(line["tenant"], "drifty");
    assert_eq!(line["state"], "drifted");
    assert_eq!(line["objects"].as_array().unwrap().len(), 3, "{line:#}");

    // --apply repairs all three and says so on TENANT_STATUS.
    let out = reconcile(&h, &["--apply"]).await;
    let report = output_text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("repaired: tenant.drift_repaired"),
        "{report}"
    );
    assert_eq!(tenant_objects(&h.kube(), "drifty").await, expected);
    assert_eq!(hard(&h, ns).await, hard_before);
    assert_eq!(tenant_objects(&h.kube(), "steady").await, steady_objects);
    let events = h.completion_events().await;
    let repaired = drift_events(&events);
    assert_eq!(repaired.len(), 1, "{events:#?}");
    let event = repaired[0];
    assert_matches_schema(event);
    assert_eq!(event["subject"], "drifty");
    assert_eq!(event["data"]["plan"], "standard");
    assert_eq!(event["data"]["release_revision"], 1);
    let mut kinds: Vec<(String, String)> = event["data"]["repaired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_owned(),
                o["drift"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("NetworkPolicy".into(), "missing".into()),
            ("ResourceQuota".into(), "modified".into()),
            ("Service".into(), "missing".into()),
        ]
    );
    // The record is idle again, on the same release revision.
    let record = h.kv("tenant_state", "drifty").await.unwrap();
    assert_eq!(record["lease"], Value::Null, "{record:#}");
    assert_eq!(record["release_revision"], 1);

    // Nothing left: a second run finds everything in sync and publishes nothing.
    let out = reconcile(&h, &["--apply"]).await;
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out)
            .contains("2 tenants checked: 2 in sync, 0 drifted (0 repaired), 0 skipped"),
        "{}",
        output_text(&out)
    );
    assert_eq!(h.completion_events().await.len(), events.len());
}

#[tokio::test]
async fn objects_that_are_not_the_workers_are_reported_and_left_alone() {
    let h = Harness::start().await;
    provision(&h, "squatted", "free").await;
    let ns = "tenant-squatted";
    let policies = Api::<NetworkPolicy>::namespaced(h.kube(), ns);
    policies
        .delete("tenant-isolation", &DeleteParams::default())
        .await
        .unwrap();
    let foreign: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": "tenant-isolation", "labels": {"team": "someone-else"}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
    }))
    .unwrap();
    policies
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();

    let out = reconcile(&h, &["--apply", "--tenant", "squatted"]).await;
    let report = output_text(&out);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains(
            "! NetworkPolicy tenant-isolation is in the way and not managed by tenant-worker"
        ),
        "{report}"
    );
    assert!(report.contains("could not be repaired"), "{report}");
    let still = policies.get("tenant-isolation").await.unwrap();
    assert_eq!(still.metadata.labels.unwrap()["team"], "someone-else");
    assert!(drift_events(&h.completion_events().await).is_empty());
    let record = h.kv("tenant_state", "squatted").await.unwrap();
    assert_eq!(record["lease"], Value::Null, "{record:#}");
}

#[tokio::test]
async fn a_deleted_tenants_leftover_namespace_is_removed() {
    let h = Harness::start().await;
    provision(&h, "ghost", "free").await;
    let gone = deleted("ghost");
    h.publish(&gone).await;
    let deprovisioned = h.completion("ghost", gone.id).await;
    assert_eq!(deprovisioned["type"], "tenant.deprovisioned");
    // Billing stops metering the plan it names.
    assert_eq!(deprovisioned["data"]["plan"], "free", "{deprovisioned:#}");
    wait_objects(&h.kube(), "ghost", &[]).await;
    // A restore from backup brings the namespace back, with the worker's labels.
    let leftover: Namespace = serde_json::from_value(json!({
        "metadata": {"name": "tenant-ghost", "labels": {
            "app.kubernetes.io/managed-by": "tenant-worker", "tenant-worker/tenant": "ghost"}}
    }))
    .unwrap();
    Api::<Namespace>::all(h.kube())
        .create(&PostParams::default(), &leftover)
        .await
        .unwrap();

    let out = reconcile(&h, &[]).await;
    assert!(
        output_text(&out).contains("- Namespace tenant-ghost unexpected"),
        "{}",
        output_text(&out)
    );
    let out = reconcile(&h, &["--apply"]).await;
    assert!(out.status.success(), "{}", output_text(&out));
    wait_objects(&h.kube(), "ghost", &[]).await;
    let events = h.completion_events().await;
    let repaired = drift_events(&events);
    assert_eq!(repaired.len(), 1);
    assert_matches_schema(repaired[0]);
    assert_eq!(repaired[0]["data"]["repaired"][0]["drift"], "unexpected");
    assert!(repaired[0]["data"].get("plan").is_none());
}

#[tokio::test]
async fn run_with_a_reconcile_interval_repairs_on_its_own() {
    let h = Harness::start_with(
        |s| s.reconcile_interval = Some(Duration::from_millis(500)),
        Default::default(),
    )
    .await;
    provision(&h, "selfheal", "free").await;
    let ns = "tenant-selfheal";
    let expected = expected_ready_objects(&h.kube(), "selfheal").await;
    let deployments = Api::<Deployment>::namespaced(h.kube(), ns);
    let name = deployments
        .list(&ListParams::default())
        .await
        .unwrap()
        .items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    deployments
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if !drift_events(&h.completion_events().await).is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no tenant.drift_repaired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(tenant_objects(&h.kube(), "selfheal").await, expected);
    let ready = deployments.get(&name).await.unwrap();
    assert!(
        ready.status.and_then(|s| s.available_replicas).unwrap_or(0) > 0,
        "the repaired Deployment is ready before the event"
    );
}
