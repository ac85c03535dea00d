//! What billing sees: it can start, change and stop metering a tenant from
//! the completion events alone (plan, resources, timestamps, its own metadata
//! back), and a request that failed and was compensated bills nothing.

use crate::support::cluster::tenant_objects;
use crate::support::*;
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::Api;
use kube_double::FaultRule;
use serde_json::{Value, json};
use tenant_worker::contract::{
    CloudEvent, EventType, TenantDeleted, TenantRequested, TenantUpgraded,
};
use tenant_worker::plans::PlanCatalog;

fn ts(v: &Value) -> jiff::Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("a timestamp: {v}"))
        .parse()
        .unwrap()
}

fn with_metadata<D: serde::Serialize>(t: EventType, tenant: &str, data: D) -> CloudEvent<Value> {
    CloudEvent::new(
        "billing",
        t,
        crate::support::tenant(tenant),
        serde_json::to_value(data).unwrap(),
    )
}

/// The quota enforced in the tenant's namespace now, as billing's `resources`.
async fn enforced(h: &Harness, tenant: &str) -> Value {
    let quota = Api::<ResourceQuota>::namespaced(h.kube(), &format!("tenant-{tenant}"))
        .get("tenant-quota")
        .await
        .unwrap();
    serde_json::to_value(quota.spec.unwrap().hard.unwrap()).unwrap()
}

#[tokio::test]
async fn billing_meters_a_tenant_from_completion_events_alone() {
    let h = Harness::start().await;
    let plans = PlanCatalog::load(None).unwrap();
    let meta = |step: &str| {
        json!({"subscription": "sub_42", "step": step, "nested": {"cents": 1999, "tags": ["a", "ü"]}})
            .as_object()
            .cloned()
    };
    let start = with_metadata(
        EventType::Requested,
        "metered",
        TenantRequested {
            tenant_id: tenant("metered"),
            plan: "premium".into(),
            app_version: None,
            values: None,
            metadata: meta("start"),
        },
    );
    let change = with_metadata(
        EventType::Upgraded,
        "metered",
        TenantUpgraded {
            tenant_id: tenant("metered"),
            plan: Some("standard".into()),
            app_version: None,
            values: None,
            metadata: meta("downgrade"),
        },
    );
    let stop = with_metadata(
        EventType::Deleted,
        "metered",
        TenantDeleted {
            tenant_id: tenant("metered"),
            reason: Some("cancelled".into()),
            metadata: meta("stop"),
        },
    );

    let before_start = jiff::Timestamp::now();
    h.publish(&start).await;
    let provisioned = h.completion("metered", start.id).await;
    assert_eq!(provisioned["type"], "tenant.provisioned", "{provisioned:#}");
    // Start: the plan and what it enforces, from when the tenant was ready.
    let d = &provisioned["data"];
    assert_eq!(d["plan"], "premium");
    assert_eq!(d["resources"], json!(plans.get("premium").unwrap().quota));
    assert_eq!(d["resources"], enforced(&h, "metered").await);
    assert_eq!(d["metadata"], json!(meta("start")));
    let started = ts(&d["completed_at"]);
    assert!(before_start <= started && started <= ts(&provisioned["time"]));

    h.publish(&change).await;
    let upgraded = h.completion("metered", change.id).await;
    assert_eq!(upgraded["type"], "tenant.upgrade_completed", "{upgraded:#}");
    let d = &upgraded["data"];
    assert_eq!(
        (d["previous_plan"].as_str(), d["plan"].as_str()),
        (Some("premium"), Some("standard"))
    );
    assert_eq!(d["resources"], json!(plans.get("standard").unwrap().quota));
    assert_eq!(d["resources"], enforced(&h, "metered").await);
    assert_eq!(d["metadata"], json!(meta("downgrade")));
    let changed = ts(&d["effective_at"]);
    assert!(started < changed && changed <= ts(&upgraded["time"]));

    h.publish(&stop).await;
    let gone = h.completion("metered", stop.id).await;
    assert_eq!(gone["type"], "tenant.deprovisioned", "{gone:#}");
    let d = &gone["data"];
    assert_eq!(d["plan"], "standard", "the plan whose metering stops");
    assert_eq!(d["metadata"], json!(meta("stop")));
    let stopped = ts(&d["deleted_at"]);
    assert!(changed < stopped && stopped <= ts(&gone["time"]));
    // Deleted means gone when billing hears of it.
    assert!(tenant_objects(&h.kube(), "metered").await.is_empty());
    for e in [&provisioned, &upgraded, &gone] {
        assert_matches_schema(e);
    }
}

#[tokio::test]
async fn a_compensated_failure_leaves_nothing_billable() {
    let h = Harness::start().await;
    h.api.faults().add_rule(
        FaultRule::new(422)
            .method("PATCH")
            .resource("deployments")
            .message("Deployment.apps is invalid"),
    );
    let request = with_metadata(
        EventType::Requested,
        "unbilled",
        TenantRequested {
            tenant_id: tenant("unbilled"),
            plan: "standard".into(),
            app_version: None,
            values: None,
            metadata: json!({"subscription": "sub_7"}).as_object().cloned(),
        },
    );
    h.publish(&request).await;
    let failed = h.completion("unbilled", request.id).await;
    assert_eq!(failed["type"], "tenant.failed", "{failed:#}");
    assert_eq!(failed["data"]["compensated"], true);
    assert_eq!(failed["data"]["metadata"]["subscription"], "sub_7");
    assert_matches_schema(&failed);
    // Billing saw no provisioned for this tenant, and there is nothing to bill:
    // no objects, no route.
    let events = h.completion_events().await;
    let about: Vec<&str> = events
        .iter()
        .filter(|e| e["subject"] == "unbilled")
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(about, ["tenant.failed"]);
    assert!(tenant_objects(&h.kube(), "unbilled").await.is_empty());
    assert!(h.kv("tenant_routes", "unbilled").await.is_none());
}
