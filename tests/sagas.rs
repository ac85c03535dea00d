//! Saga behaviour under Kubernetes faults, injected by the embedded API:
//! compensation of a permanent failure, and per-tenant ordering when an older
//! intent is delayed behind a newer one.

mod support;

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use kube::Api;
use kube::api::ListParams;
use serde_json::json;
use support::*;
use tenant_worker::embedded_api::FaultRule;

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
    assert_eq!(data["failed_step"], "network_policy");
    assert!(
        data["error"].as_str().unwrap().contains("422")
            || data["error"].as_str().unwrap().contains("invalid"),
        "{data}"
    );
    assert_eq!(data["compensated"], true);
    assert_eq!(
        data["compensation"],
        json!([
            "network_policy",
            "limit_range",
            "resource_quota",
            "namespace"
        ])
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
