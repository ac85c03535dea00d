//! The vertical slice, end to end against a real nats-server and the embedded
//! Kubernetes API: what a user would check in the cluster, on the streams and
//! in the KV buckets.

use std::collections::BTreeMap;

use crate::support::*;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::Value;
use tenant_worker::plans::PlanCatalog;

fn labels_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

fn assert_owned(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, tenant: &str) {
    let labels = labels_of(meta);
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("tenant-worker"),
        "{:?}",
        meta.name
    );
    assert_eq!(
        labels.get("tenant-worker/tenant").map(String::as_str),
        Some(tenant),
        "{:?}",
        meta.name
    );
}

#[tokio::test]
async fn requested_tenant_gets_an_isolated_namespace_a_route_and_a_record() {
    let h = Harness::start().await;
    let event = requested("acme", "standard");
    h.publish(&event).await;
    let done = h.completion("acme", event.id).await;

    assert_eq!(done["type"], "tenant.provisioned");
    assert_eq!(done["subject"], "acme");
    assert_eq!(done["source"], "tenant-worker");
    assert_eq!(done["data"]["causation_id"], event.id.to_string());
    assert_eq!(done["data"]["namespace"], "tenant-acme");
    assert_eq!(done["data"]["plan"], "standard");
    assert_eq!(done["data"]["metadata"]["billing_account"], "ba_acme");
    assert_eq!(
        done["data"]["endpoint"]["host"],
        "app.tenant-acme.svc.cluster.local"
    );
    let plan = PlanCatalog::load(None)
        .unwrap()
        .get("standard")
        .unwrap()
        .clone();
    let billed: BTreeMap<String, String> =
        serde_json::from_value(done["data"]["resources"].clone()).unwrap();
    assert_eq!(billed, plan.quota);
    assert_matches_schema(&done);

    let kube = h.kube();
    let ns = Api::<Namespace>::all(kube.clone())
        .get("tenant-acme")
        .await
        .unwrap();
    assert_owned(&ns.metadata, "acme");
    assert_eq!(
        labels_of(&ns.metadata)["pod-security.kubernetes.io/enforce"],
        "restricted"
    );

    let quota = Api::<ResourceQuota>::namespaced(kube.clone(), "tenant-acme")
        .get("tenant-quota")
        .await
        .unwrap();
    assert_owned(&quota.metadata, "acme");
    let hard = quota.spec.unwrap().hard.unwrap();
    for (k, v) in &plan.quota {
        assert_eq!(hard[k], Quantity(v.clone()), "quota {k}");
    }
    let lr = Api::<LimitRange>::namespaced(kube.clone(), "tenant-acme")
        .get("tenant-limits")
        .await
        .unwrap();
    assert_owned(&lr.metadata, "acme");
    assert_eq!(
        lr.spec.unwrap().limits[0].max.clone().unwrap()["cpu"],
        Quantity(plan.container_limits.max["cpu"].clone())
    );

    let np = Api::<NetworkPolicy>::namespaced(kube.clone(), "tenant-acme")
        .get("tenant-isolation")
        .await
        .unwrap();
    assert_owned(&np.metadata, "acme");
    let spec = np.spec.unwrap();
    assert_eq!(spec.policy_types.unwrap(), vec!["Ingress", "Egress"]);
    let gateway_admitted = spec.ingress.unwrap()[0]
        .from
        .clone()
        .unwrap()
        .iter()
        .any(|peer| {
            peer.namespace_selector
                .as_ref()
                .and_then(|s| s.match_labels.clone())
                .is_some_and(|l| l["kubernetes.io/metadata.name"] == "tenant-gateway")
        });
    assert!(gateway_admitted, "gateway namespace admitted");

    for meta in [
        Api::<ServiceAccount>::namespaced(kube.clone(), "tenant-acme")
            .get("tenant-admin")
            .await
            .unwrap()
            .metadata,
        Api::<Role>::namespaced(kube.clone(), "tenant-acme")
            .get("tenant-admin")
            .await
            .unwrap()
            .metadata,
        Api::<RoleBinding>::namespaced(kube.clone(), "tenant-acme")
            .get("tenant-admin")
            .await
            .unwrap()
            .metadata,
    ] {
        assert_owned(&meta, "acme");
    }

    let route = h
        .kv("tenant_routes", "acme")
        .await
        .expect("route published");
    assert_eq!(route["namespace"], "tenant-acme");
    assert_eq!(route["status"], "ready");
    assert_eq!(route["plan"], "standard");
    assert_eq!(route["port"], 8080);

    h.wait_idle().await;
    let record = h.kv("tenant_state", "acme").await.expect("record written");
    assert_eq!(record["status"], "ready");
    assert_eq!(record["plan"], "standard");
    assert_eq!(record["last_event"]["id"], event.id.to_string());
    assert_eq!(record["last_event"]["outcome"], "tenant.provisioned");
    assert!(record["saga"].is_null(), "no saga left in flight: {record}");
}

#[tokio::test]
async fn deleted_tenant_is_removed_with_its_route() {
    let h = Harness::start().await;
    let req = requested("gone", "free");
    h.publish(&req).await;
    assert_eq!(
        h.completion("gone", req.id).await["type"],
        "tenant.provisioned"
    );

    let del = deleted("gone");
    h.publish(&del).await;
    let done = h.completion("gone", del.id).await;
    assert_eq!(done["type"], "tenant.deprovisioned");
    assert_eq!(done["data"]["namespace"], "tenant-gone");
    assert_matches_schema(&done);

    let kube = h.kube();
    assert!(
        Api::<Namespace>::all(kube.clone())
            .get_opt("tenant-gone")
            .await
            .unwrap()
            .is_none()
    );
    let leftovers = Api::<ResourceQuota>::all(kube)
        .list(&ListParams::default().labels("tenant-worker/tenant=gone"))
        .await
        .unwrap();
    assert!(
        leftovers.items.is_empty(),
        "nothing labelled for the tenant is left"
    );
    assert!(
        h.kv("tenant_routes", "gone").await.is_none(),
        "route withdrawn"
    );
    h.wait_idle().await;
    assert_eq!(
        h.kv("tenant_state", "gone").await.unwrap()["status"],
        "deleted"
    );
}

#[tokio::test]
async fn deleting_a_tenant_that_never_existed_is_deprovisioned() {
    let h = Harness::start().await;
    let del = deleted("never");
    h.publish(&del).await;
    let done = h.completion("never", del.id).await;
    assert_eq!(done["type"], "tenant.deprovisioned");
    assert_matches_schema(&done);
    assert!(
        done["data"].get("plan").is_none(),
        "nothing was billed: {done:#}"
    );
}

#[tokio::test]
async fn unknown_plan_is_rejected_and_nothing_is_created() {
    let h = Harness::start().await;
    let event = requested("typo", "platinum");
    h.publish(&event).await;
    let done = h.completion("typo", event.id).await;
    assert_eq!(done["type"], "tenant.rejected");
    assert_eq!(done["data"]["reason"], "unknown_plan");
    assert!(
        done["data"]["message"]
            .as_str()
            .unwrap()
            .contains("platinum")
    );
    assert_matches_schema(&done);
    assert!(
        Api::<Namespace>::all(h.kube())
            .get_opt("tenant-typo")
            .await
            .unwrap()
            .is_none()
    );
    assert!(h.kv("tenant_routes", "typo").await.is_none());
}

#[tokio::test]
async fn a_chart_that_needs_a_newer_kubernetes_is_rejected_and_nothing_is_created() {
    // The embedded API is Kubernetes v1.33.0-embedded; this chart asks for
    // >=1.34.0-0, as a chart written for a newer cluster would.
    let chart = helm::Chart::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/charts/kube-next"),
    )
    .unwrap();
    let h = Harness::start_with(
        |s| s.chart = std::sync::Arc::new(chart),
        kube_double::EmbeddedApiConfig::default(),
    )
    .await;
    h.api.requests().start();
    let event = requested("too-new", "free");
    h.publish(&event).await;
    let done = h.completion("too-new", event.id).await;
    assert_eq!(done["type"], "tenant.rejected", "{done:#}");
    assert_eq!(done["data"]["reason"], "chart_incompatible");
    assert_eq!(
        done["data"]["message"],
        "chart requires kubeVersion: >=1.34.0-0 which is incompatible with Kubernetes v1.33.0-embedded"
    );
    assert_matches_schema(&done);
    assert!(
        Api::<Namespace>::all(h.kube())
            .get_opt("tenant-too-new")
            .await
            .unwrap()
            .is_none()
    );
    assert!(h.kv("tenant_routes", "too-new").await.is_none());
    let writes: Vec<_> = h
        .api
        .requests()
        .snapshot()
        .into_iter()
        .filter(|r| r.verb != "get" && r.verb != "list")
        .collect();
    assert!(
        writes.is_empty(),
        "nothing written to the cluster: {writes:?}"
    );
}

#[tokio::test]
async fn a_namespace_that_is_not_ours_is_rejected_and_left_untouched() {
    let h = Harness::start().await;
    let namespaces = Api::<Namespace>::all(h.kube());
    let foreign: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "tenant-squat", "labels": {"team": "someone-else"}}
    }))
    .unwrap();
    let before = namespaces
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();

    let req = requested("squat", "standard");
    h.publish(&req).await;
    let done = h.completion("squat", req.id).await;
    assert_eq!(done["type"], "tenant.rejected");
    assert_eq!(done["data"]["reason"], "namespace_not_owned");
    assert_matches_schema(&done);

    let del = deleted("squat");
    h.publish(&del).await;
    let done = h.completion("squat", del.id).await;
    assert_eq!(done["type"], "tenant.rejected");
    assert_eq!(done["data"]["reason"], "namespace_not_owned");

    let after = namespaces.get("tenant-squat").await.unwrap();
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "namespace unchanged"
    );
    assert!(after.metadata.deletion_timestamp.is_none());
    let quotas = Api::<ResourceQuota>::namespaced(h.kube(), "tenant-squat")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(quotas.items.is_empty(), "nothing created inside");
}

#[tokio::test]
async fn upgrade_resizes_the_quota() {
    let h = Harness::start().await;
    let req = requested("grow", "free");
    h.publish(&req).await;
    h.completion("grow", req.id).await;
    let up = upgraded("grow", "premium");
    h.publish(&up).await;
    let done = h.completion("grow", up.id).await;
    assert_eq!(done["type"], "tenant.upgrade_completed");
    assert_eq!(done["data"]["previous_plan"], "free");
    assert_eq!(done["data"]["plan"], "premium");
    assert_matches_schema(&done);
    let premium = PlanCatalog::load(None)
        .unwrap()
        .get("premium")
        .unwrap()
        .clone();
    let quota = Api::<ResourceQuota>::namespaced(h.kube(), "tenant-grow")
        .get("tenant-quota")
        .await
        .unwrap();
    assert_eq!(
        quota.spec.unwrap().hard.unwrap()["limits.cpu"],
        Quantity(premium.quota["limits.cpu"].clone())
    );
    assert_eq!(
        h.kv("tenant_routes", "grow").await.unwrap()["plan"],
        "premium"
    );
}

#[tokio::test]
async fn upgrading_a_tenant_that_does_not_exist_is_rejected() {
    let h = Harness::start().await;
    let up = upgraded("ghost", "premium");
    h.publish(&up).await;
    let done = h.completion("ghost", up.id).await;
    assert_eq!(done["type"], "tenant.rejected");
    assert_eq!(done["data"]["reason"], "tenant_not_found");
    assert!(
        Api::<Namespace>::all(h.kube())
            .get_opt("tenant-ghost")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_same_event_id_twice_gives_one_completion_event_and_one_change() {
    let h = Harness::start().await;
    let event = requested("twice", "standard");
    // Raw, without Nats-Msg-Id: the stream keeps both copies, so the worker's
    // own idempotency is what is tested.
    let payload = serde_json::to_vec(&event).unwrap();
    h.publish_raw("tenant.lifecycle.requested.twice", payload.clone())
        .await;
    h.completion("twice", event.id).await;
    let ns_version = Api::<Namespace>::all(h.kube())
        .get("tenant-twice")
        .await
        .unwrap()
        .metadata
        .resource_version;
    h.publish_raw("tenant.lifecycle.requested.twice", payload)
        .await;
    h.wait_idle().await;

    let events = h.completion_events().await;
    let for_event: Vec<&Value> = events
        .iter()
        .filter(|e| e["data"]["causation_id"] == event.id.to_string())
        .collect();
    assert_eq!(
        for_event.len(),
        1,
        "exactly one completion event: {for_event:#?}"
    );
    let ns_after = Api::<Namespace>::all(h.kube())
        .get("tenant-twice")
        .await
        .unwrap()
        .metadata
        .resource_version;
    assert_eq!(ns_version, ns_after, "no second change");
}

#[tokio::test]
async fn a_hundred_tenants_requested_at_once_are_all_provisioned() {
    let h = Harness::start().await;
    let events: Vec<_> = (0..100)
        .map(|i| requested(&format!("bulk-{i:03}"), "free"))
        .collect();
    for e in &events {
        h.publish(e).await;
    }
    h.wait_idle().await;
    let completions = h.completion_events().await;
    let provisioned = completions
        .iter()
        .filter(|e| e["type"] == "tenant.provisioned")
        .count();
    assert_eq!(provisioned, 100, "{} completion events", completions.len());
    let namespaces = Api::<Namespace>::all(h.kube())
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=tenant-worker"))
        .await
        .unwrap();
    assert_eq!(namespaces.items.len(), 100);
    for e in &events {
        assert!(
            h.kv("tenant_routes", e.subject.as_str()).await.is_some(),
            "route of {}",
            e.subject
        );
    }
    // `status` lists every record, in tenant order.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenant-worker"))
        .args(["status", "--json", "--nats-url", &h.nats.url()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let tenants: Vec<&str> = records
        .iter()
        .map(|r| r["tenant_id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..100).map(|i| format!("bulk-{i:03}")).collect();
    assert_eq!(tenants, expected);
    assert!(records.iter().all(|r| r["status"] == "ready"));
}
