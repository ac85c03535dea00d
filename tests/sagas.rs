//! Saga behaviour under Kubernetes faults, injected by the embedded API:
//! compensation of a permanent failure at every step, random transient faults
//! with latency, giving up after `max_deliver`, a namespace still terminating
//! when its tenant is re-requested, and per-tenant ordering when an older
//! intent is delayed behind a newer one.

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use kube::Api;
use kube::api::ListParams;
use std::time::Duration;

use crate::support::cluster::{expected_ready_objects, tenant_objects, wait_objects};
use crate::support::*;
use kube_double::{EmbeddedApiConfig, FaultRule, RandomFaults};
use serde_json::json;

#[tokio::test]
async fn a_permanent_failure_compensates_every_done_step_in_reverse() {
    let h = Harness::start().await;
    // A real API server refuses an invalid object with 422: not worth retrying.
    h.api.faults().add_rule(
        FaultRule::new(422)
            .method("PATCH")
            .resource("networkpolicies")
            .message("NetworkPolicy.networking.k8s.io \"tenant-isolation\" is invalid"),
    );
    let event = requested("doomed", "standard");
    h.publish(&event).await;
    let done = h.completion("doomed", event.id).await;
    assert_eq!(done["type"], "tenant.failed", "{done:#}");
    assert_matches_schema(&done);
    let data = &done["data"];
    assert_eq!(data["intent"], "requested");
    assert_network_policy_compensated(data);
    assert!(
        data["error"].as_str().unwrap().contains("422")
            || data["error"].as_str().unwrap().contains("invalid"),
        "{data}"
    );

    // Nothing labelled for the tenant is left, and no route.
    h.wait_idle().await;
    let kube = h.kube();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while Api::<Namespace>::all(kube.clone())
        .get_opt("tenant-doomed")
        .await
        .unwrap()
        .is_some()
    {
        assert!(tokio::time::Instant::now() < deadline, "namespace removed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let quotas = Api::<ResourceQuota>::all(kube)
        .list(&ListParams::default().labels("tenant-worker/tenant=doomed"))
        .await
        .unwrap();
    assert!(quotas.items.is_empty());
    assert!(h.kv("tenant_routes", "doomed").await.is_none());
    let record = h.kv("tenant_state", "doomed").await.unwrap();
    assert_eq!(record["status"], "failed");
    assert!(record["saga"].is_null(), "saga closed: {record}");

    // The same tenant can be requested again once the cause is gone.
    h.api.faults().clear();
    let again = requested("doomed", "standard");
    h.publish(&again).await;
    assert_eq!(
        h.completion("doomed", again.id).await["type"],
        "tenant.provisioned"
    );
}

#[tokio::test]
async fn a_newer_intent_waits_for_the_saga_in_flight_and_wins() {
    let h = Harness::start().await;
    // The request's namespace apply fails transiently (500) for a while, so
    // its saga is open when the delete arrives.
    h.api.faults().add_rule(
        FaultRule::new(500)
            .method("PATCH")
            .resource("namespaces")
            .times(6),
    );
    let req = requested("late", "free");
    let del = deleted("late");
    let req_seq = h.publish(&req).await;
    let del_seq = h.publish(&del).await;
    assert!(req_seq < del_seq);

    let deprovisioned = h.completion("late", del.id).await;
    assert_eq!(deprovisioned["type"], "tenant.deprovisioned");
    // The request either finished first (its saga was open, so the delete
    // waited) or, had the delete got the tenant first, was superseded.
    let first = h.completion("late", req.id).await;
    match first["type"].as_str().unwrap() {
        "tenant.provisioned" => {}
        "tenant.rejected" => assert_eq!(first["data"]["reason"], "superseded"),
        other => panic!("unexpected completion {other}: {first:#}"),
    }
    assert_matches_schema(&first);

    // The last intent (deleted) wins: no namespace, no route, one completion each.
    h.wait_idle().await;
    assert!(
        Api::<Namespace>::all(h.kube())
            .get_opt("tenant-late")
            .await
            .unwrap()
            .is_none()
    );
    assert!(h.kv("tenant_routes", "late").await.is_none());
    let record = h.kv("tenant_state", "late").await.unwrap();
    assert_eq!(record["last_sequence"], del_seq);
    assert_eq!(record["status"], "deleted");
    assert!(record["lease"].is_null(), "lease released: {record}");
    assert_eq!(h.completion_events().await.len(), 2);
}

#[tokio::test]
async fn a_permanent_fault_at_any_step_leaves_nothing_behind() {
    let h = Harness::start().await;
    // (tenant, the step that fails, the resource it writes)
    let cases = [
        ("perm-ns", "namespace", "namespaces"),
        ("perm-quota", "resource_quota", "resourcequotas"),
        ("perm-limits", "limit_range", "limitranges"),
        ("perm-netpol", "network_policy", "networkpolicies"),
        ("perm-rbac", "rbac", "roles"),
        ("perm-release", "release", "deployments"),
    ];
    let order = STEP_NAMES;
    let mut events = Vec::new();
    for (tenant, _, resource) in cases {
        let ns = format!("tenant-{tenant}");
        let rule = FaultRule::new(422).method("PATCH").resource(resource);
        h.api.faults().add_rule(if resource == "namespaces" {
            rule.name(&ns)
        } else {
            rule.namespace(&ns)
        });
        let event = requested(tenant, "premium");
        h.publish(&event).await;
        events.push(event);
    }
    for ((tenant, step, _), event) in cases.iter().zip(&events) {
        let done = h.completion(tenant, event.id).await;
        assert_eq!(done["type"], "tenant.failed", "{done:#}");
        assert_matches_schema(&done);
        assert_eq!(done["data"]["failed_step"], *step);
        assert_eq!(done["data"]["compensated"], true);
        // The failed step first, then every done step in reverse.
        let k = order.iter().position(|s| s == step).unwrap();
        let mut undone = vec![*step];
        undone.extend(order[..k].iter().rev());
        assert_eq!(done["data"]["compensation"], json!(undone), "{tenant}");
    }
    h.wait_idle().await;
    for (tenant, _, _) in cases {
        wait_objects(&h.kube(), tenant, &[]).await;
        assert!(h.kv("tenant_routes", tenant).await.is_none());
        assert_eq!(
            h.kv("tenant_state", tenant).await.unwrap()["status"],
            "failed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_percent_transient_faults_with_latency_all_converge() {
    let h = Harness::start().await;
    h.api.faults().set_random(
        RandomFaults::new(0.2)
            .seed(7)
            .stall(Duration::from_millis(300)),
    );
    h.api.faults().set_latency(Duration::from_millis(5));
    let tenants: Vec<String> = (0..40).map(|i| format!("flaky-{i:02}")).collect();
    let mut expected = Vec::new();
    for (i, tenant) in tenants.iter().enumerate() {
        let req = requested(tenant, "standard");
        h.publish(&req).await;
        expected.push((tenant.clone(), req.id, "tenant.provisioned"));
        // Every fourth tenant is upgraded, every fifth deleted again.
        if i % 4 == 0 {
            let up = upgraded(tenant, "premium");
            h.publish(&up).await;
            expected.push((tenant.clone(), up.id, "tenant.upgrade_completed"));
        }
        if i % 5 == 0 {
            let del = deleted(tenant);
            h.publish(&del).await;
            expected.push((tenant.clone(), del.id, "tenant.deprovisioned"));
        }
    }
    // Convergence, not speed, is the point: an unlucky event may need several
    // redeliveries with growing delays.
    for (tenant, id, want) in &expected {
        let got = h
            .completion_within(tenant, *id, Duration::from_secs(120))
            .await;
        assert_eq!(got["type"], *want, "{tenant}: {got:#}");
    }
    h.wait_idle().await;
    h.api.faults().clear();
    assert_eq!(h.completion_events().await.len(), expected.len());
    for (i, tenant) in tenants.iter().enumerate() {
        if i % 5 == 0 {
            wait_objects(&h.kube(), tenant, &[]).await;
            assert!(h.kv("tenant_routes", tenant).await.is_none());
        } else {
            assert_eq!(
                tenant_objects(&h.kube(), tenant).await,
                expected_ready_objects(&h.kube(), tenant).await
            );
            let plan = if i % 4 == 0 { "premium" } else { "standard" };
            assert_eq!(h.kv("tenant_routes", tenant).await.unwrap()["plan"], plan);
        }
    }
}

#[tokio::test]
async fn after_max_deliver_the_tenant_is_reported_failed_and_dead_lettered_with_history() {
    let h = Harness::start_with(|s| s.topology.max_deliver = 3, EmbeddedApiConfig::default()).await;
    // The quota step of this tenant keeps failing with 503: transient, forever.
    h.api.faults().add_rule(
        FaultRule::new(503)
            .method("PATCH")
            .resource("resourcequotas")
            .namespace("tenant-stuck"),
    );
    let stuck = requested("stuck", "standard");
    h.publish(&stuck).await;
    // Others are not held up meanwhile.
    let fine = requested("fine", "free");
    h.publish(&fine).await;
    assert_eq!(
        h.completion("fine", fine.id).await["type"],
        "tenant.provisioned"
    );

    let done = h.completion("stuck", stuck.id).await;
    assert_eq!(done["type"], "tenant.failed", "{done:#}");
    assert_matches_schema(&done);
    assert_eq!(done["data"]["failed_step"], "resource_quota");
    assert!(
        done["data"]["error"]
            .as_str()
            .unwrap()
            .contains("gave up after 3 deliveries"),
        "{done:#}"
    );
    assert_eq!(done["data"]["compensated"], true);
    assert_eq!(
        done["data"]["compensation"],
        json!(["resource_quota", "namespace"])
    );

    let letters = h.deadletters(1).await;
    let (subject, headers, payload) = &letters[0];
    assert_eq!(subject, "tenant.deadletter.max_deliver");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(payload).unwrap()["id"],
        json!(stuck.id.to_string()),
        "the original event, unchanged"
    );
    let headers = headers.as_ref().expect("headers");
    assert_eq!(
        headers
            .get("Tenant-Worker-Deadletter-Deliveries")
            .unwrap()
            .as_str(),
        "3"
    );
    let history: Vec<serde_json::Value> = serde_json::from_str(
        headers
            .get("Tenant-Worker-Deadletter-History")
            .expect("history header")
            .as_str(),
    )
    .unwrap();
    let deliveries: Vec<u64> = history
        .iter()
        .map(|a| a["delivery"].as_u64().unwrap())
        .collect();
    assert_eq!(deliveries, [1, 2, 3], "{history:#?}");
    assert!(
        history
            .iter()
            .all(|a| a["error"].as_str().unwrap().contains("503"))
    );

    h.wait_idle().await;
    wait_objects(&h.kube(), "stuck", &[]).await;
    let record = h.kv("tenant_state", "stuck").await.unwrap();
    assert_eq!(record["status"], "failed");
    assert!(
        record["saga"].is_null() && record["lease"].is_null(),
        "{record:#}"
    );
}

#[tokio::test]
async fn a_namespace_still_terminating_when_re_requested_is_waited_for() {
    let h = Harness::start_with(
        |_| {},
        EmbeddedApiConfig {
            namespace_termination_delay: Duration::from_secs(2),
            ..EmbeddedApiConfig::default()
        },
    )
    .await;
    // The first attempt fails for good at the network policy; compensation
    // deletes the namespace, which then terminates for 2 s.
    h.api.faults().add_rule(
        FaultRule::new(422)
            .method("PATCH")
            .resource("networkpolicies")
            .times(1),
    );
    let first = requested("again", "standard");
    h.publish(&first).await;
    assert_eq!(
        h.completion("again", first.id).await["type"],
        "tenant.failed"
    );
    let ns = Api::<Namespace>::all(h.kube())
        .get("tenant-again")
        .await
        .expect("namespace still there");
    assert!(ns.metadata.deletion_timestamp.is_some(), "terminating");

    let second = requested("again", "standard");
    h.publish(&second).await;
    let done = h.completion("again", second.id).await;
    assert_eq!(done["type"], "tenant.provisioned", "{done:#}");
    h.wait_idle().await;
    assert_eq!(
        tenant_objects(&h.kube(), "again").await,
        expected_ready_objects(&h.kube(), "again").await
    );
    let ns = Api::<Namespace>::all(h.kube())
        .get("tenant-again")
        .await
        .unwrap();
    assert!(ns.metadata.deletion_timestamp.is_none(), "a new namespace");
}

#[tokio::test]
async fn a_compensation_that_fails_is_reported() {
    let h = Harness::start().await;
    h.api.faults().add_rule(
        FaultRule::new(422)
            .method("PATCH")
            .resource("networkpolicies")
            .namespace("tenant-messy"),
    );
    h.api.faults().add_rule(
        FaultRule::new(403)
            .method("DELETE")
            .resource("limitranges")
            .namespace("tenant-messy")
            .message("limitranges \"tenant-limits\" is forbidden: admission webhook said no"),
    );
    let event = requested("messy", "standard");
    h.publish(&event).await;
    let done = h.completion("messy", event.id).await;
    assert_eq!(done["type"], "tenant.failed", "{done:#}");
    assert_matches_schema(&done);
    let data = &done["data"];
    assert_eq!(data["compensated"], false);
    assert_eq!(
        data["compensation"],
        json!(["network_policy", "resource_quota", "namespace"])
    );
    assert_eq!(data["compensation_failed"][0]["step"], "limit_range");
    assert!(
        data["compensation_failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("403"),
        "{data:#}"
    );
    // Deleting the namespace took the limit range with it all the same.
    h.wait_idle().await;
    wait_objects(&h.kube(), "messy", &[]).await;
    assert_eq!(
        h.kv("tenant_state", "messy").await.unwrap()["status"],
        "failed"
    );
}
