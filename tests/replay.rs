//! Replaying history after an incident: `tenant-worker replay` reads 500
//! events, shows per tenant what differs from what they ask for (a wiped
//! namespace, a lost record, a drifted quota, a deleted tenant's namespace
//! back from a backup) and changes nothing; `--apply` re-drives exactly those
//! through the workers, and a second `--apply` finds nothing to do. A replay
//! that is interrupted is resumed by running it again, and a replayed intent
//! that a newer event overtook changes nothing.

use std::process::Output;
use std::time::Duration;

use crate::support::cluster::{expected_ready_objects, tenant_objects, wait_objects};
use crate::support::*;
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tenant_worker::contract::{
    CloudEvent, EventType, LIFECYCLE_STREAM, STATUS_STREAM, TenantRequested,
};

async fn replay(h: &Harness, args: &[&str]) -> Output {
    operator_command(h, "replay", args).await
}

/// `--json` output: tenant -> its line.
fn by_tenant(o: &Output) -> std::collections::BTreeMap<String, Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (v["tenant"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

async fn messages(h: &Harness, stream: &str) -> u64 {
    let mut s = h.js.get_stream(stream).await.unwrap();
    s.info().await.unwrap().state.messages
}

async fn wait_messages(h: &Harness, stream: &str, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while messages(h, stream).await < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{stream} has {} of {n} messages",
            messages(h, stream).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// 500 events over 100 tenants: five shapes of history, including deletes,
/// re-requests and events the worker rejects, and a sixth of only rejected
/// intents and deletes of tenants that never existed.
fn history() -> Vec<CloudEvent<Value>> {
    let mut events = Vec::new();
    for i in 0..100 {
        let t = format!("rp-{i:02}");
        let shape: Vec<CloudEvent<Value>> = match if i < 50 { i % 5 } else { 5 } {
            0 => vec![
                requested(&t, "free"),
                upgrade_with(&t, Some("standard"), None, None),
                upgrade_with(&t, Some("premium"), Some("1.2.0"), None),
                deleted(&t),
                requested(&t, "standard"),
            ],
            1 => vec![
                requested(&t, "free"),
                upgrade_with(&t, None, None, Some(json!({"config": {"greeting": "hi"}}))),
                deleted(&t),
                requested(&t, "free"),
                deleted(&t),
            ],
            2 => vec![
                requested(&t, "standard"),
                upgrade_with(&t, Some("platinum"), None, None),
                upgrade_with(&t, None, Some("1.1.0"), None),
                upgrade_with(&t, None, None, Some(json!({"config": {"a": "1"}}))),
                upgrade_with(&t, Some("free"), None, None),
            ],
            3 => vec![
                upgrade_with(&t, Some("premium"), None, None),
                requested(&t, "premium"),
                upgrade_with(&t, None, None, Some(json!({"config": {"b": "2"}}))),
                upgrade_with(
                    &t,
                    None,
                    None,
                    Some(json!({"config": {"b": null, "c": "3"}})),
                ),
                upgrade_with(&t, None, Some("1.3.0"), None),
            ],
            // Half the tenants never get past the worker's checks (cheap
            // to apply, and the fold must agree that they change nothing).
            5 => vec![
                upgrade_with(&t, Some("premium"), None, None),
                requested(&t, "platinum"),
                deleted(&t),
                upgrade_with(&t, None, Some("2.0.0"), None),
                deleted(&t),
            ],
            _ => vec![
                requested(&t, "free"),
                upgrade_with(&t, Some("standard"), None, None),
                upgrade_with(&t, Some("free"), None, None),
                upgrade_with(&t, Some("standard"), Some("1.4.0"), None),
                upgrade_with(&t, None, None, Some(json!({"replicaCount": 9}))),
            ],
        };
        events.extend(shape);
    }
    events
}

#[tokio::test]
async fn replay_shows_what_differs_changes_nothing_then_restores_it_once() {
    let h = Harness::start().await;
    let started = std::time::Instant::now();
    // Interleave tenants the way billing would: round-robin over their
    // histories (a round at a time, so that no event waits for its tenant's
    // previous one: ordering is tested elsewhere, this is about replay).
    let events = history();
    for round in 0..5 {
        for tenant in 0..100 {
            h.publish(&events[tenant * 5 + round]).await;
        }
        wait_messages(&h, STATUS_STREAM, (round as u64 + 1) * 100).await;
    }
    assert_eq!(events.len(), 500);
    wait_messages(&h, STATUS_STREAM, 500).await;
    h.wait_idle().await;
    eprintln!("500 events applied in {:?}", started.elapsed());

    // Nothing has happened yet: everything is in sync.
    let out = replay(&h, &["--json"]).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let plans = by_tenant(&out);
    assert_eq!(plans.len(), 100);
    let not_in_sync: Vec<_> = plans
        .iter()
        .filter(|(_, p)| p["action"] != "in_sync")
        .collect();
    assert!(not_in_sync.is_empty(), "{not_in_sync:#?}");
    assert!(
        output_text(&out).contains("500 events read"),
        "{}",
        output_text(&out)
    );
    // The fold follows the engine: rp-02 ends on free with both upgrades'
    // values and version; its platinum upgrade changed nothing.
    let p = &plans["rp-02"];
    assert_eq!(p["target"]["plan"], "free");
    assert_eq!(p["target"]["app_version"], "1.1.0");
    assert_eq!(p["target"]["values"], json!({"config": {"a": "1"}}));
    assert_eq!(p["ignored"][0][0], p["events"][1]);
    assert_eq!(plans["rp-01"]["target"], Value::Null);
    assert_eq!(
        plans["rp-03"]["target"]["values"],
        json!({"config": {"c": "3"}})
    );

    // The incident: rp-02's namespace wiped, rp-03's record lost, rp-04's
    // quota edited, and rp-01 (deleted) back from a backup.
    let kube = h.kube();
    Api::<Namespace>::all(kube.clone())
        .delete("tenant-rp-02", &DeleteParams::default())
        .await
        .unwrap();
    wait_objects(&kube, "rp-02", &[]).await;
    h.js.get_key_value("tenant_state")
        .await
        .unwrap()
        .purge("rp-03")
        .await
        .unwrap();
    let rp03_objects = tenant_objects(&kube, "rp-03").await;
    let quotas = Api::<ResourceQuota>::namespaced(kube.clone(), "tenant-rp-04");
    let pods_before = quotas
        .get("tenant-quota")
        .await
        .unwrap()
        .spec
        .unwrap()
        .hard
        .unwrap()["pods"]
        .0
        .clone();
    quotas
        .patch(
            "tenant-quota",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hard": {"pods": "500"}}})),
        )
        .await
        .unwrap();
    let leftover: Namespace = serde_json::from_value(json!({
        "metadata": {"name": "tenant-rp-01", "labels": {
            "app.kubernetes.io/managed-by": "tenant-worker", "tenant-worker/tenant": "rp-01"}}
    }))
    .unwrap();
    Api::<Namespace>::all(kube.clone())
        .create(&PostParams::default(), &leftover)
        .await
        .unwrap();
    let lifecycle_before = messages(&h, LIFECYCLE_STREAM).await;
    let status_before = messages(&h, STATUS_STREAM).await;

    // The dry run shows each difference and changes nothing.
    let out = replay(&h, &[]).await;
    let report = output_text(&out);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("rp-02: would re-provision"), "{report}");
    assert!(
        report.contains("objects: Namespace tenant-rp-02 missing"),
        "{report}"
    );
    assert!(report.contains("rp-03: would re-provision"), "{report}");
    assert!(report.contains("status: absent -> ready"), "{report}");
    assert!(report.contains("plan: - -> premium"), "{report}");
    assert!(report.contains("rp-04: would re-provision"), "{report}");
    assert!(
        report.contains("objects: ResourceQuota tenant-quota modified: spec.hard.pods"),
        "{report}"
    );
    assert!(report.contains("rp-01: would deprovision"), "{report}");
    assert!(
        report.contains("96 in sync, 3 to provision, 1 to deprovision, 0 pending"),
        "{report}"
    );
    assert!(report.contains("dry run: nothing was changed"), "{report}");
    assert_eq!(messages(&h, LIFECYCLE_STREAM).await, lifecycle_before);
    assert_eq!(messages(&h, STATUS_STREAM).await, status_before);
    assert!(tenant_objects(&kube, "rp-02").await.is_empty());
    assert_eq!(tenant_objects(&kube, "rp-03").await, rp03_objects);
    assert!(h.kv("tenant_state", "rp-03").await.is_none());

    // Selections: one tenant; a sequence range with nothing in it.
    let one = by_tenant(&replay(&h, &["--json", "--tenant", "rp-02"]).await);
    assert_eq!(one.keys().collect::<Vec<_>>(), ["rp-02"]);
    assert_eq!(one["rp-02"]["events"].as_array().unwrap().len(), 5);
    let later = replay(&h, &["--json", "--from-seq", "100000"]).await;
    assert!(by_tenant(&later).is_empty(), "{}", output_text(&later));
    // A range picks tenants; their whole history decides.
    let ranged = by_tenant(&replay(&h, &["--json", "--from-seq", "401", "--to-seq", "402"]).await);
    assert_eq!(ranged.keys().collect::<Vec<_>>(), ["rp-00", "rp-01"]);
    assert_eq!(ranged["rp-01"]["events"].as_array().unwrap().len(), 5);
    assert_eq!(ranged["rp-01"]["action"], "deprovision");

    // --apply re-drives the four, and they complete.
    let out = replay(&h, &["--apply"]).await;
    let report = output_text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("4 intents re-driven and completed"),
        "{report}"
    );
    assert!(
        report.contains("rp-01: re-driven tenant.deleted"),
        "{report}"
    );
    assert_eq!(messages(&h, LIFECYCLE_STREAM).await, lifecycle_before + 4);
    for t in ["rp-02", "rp-03", "rp-04"] {
        assert_eq!(
            tenant_objects(&kube, t).await,
            expected_ready_objects(&kube, t).await,
            "{t}"
        );
        let record = h.kv("tenant_state", t).await.unwrap();
        assert_eq!(record["status"], "ready", "{t}: {record:#}");
    }
    assert_eq!(
        h.kv("tenant_state", "rp-03").await.unwrap()["plan"],
        "premium"
    );
    let quota = quotas.get("tenant-quota").await.unwrap();
    assert_eq!(quota.spec.unwrap().hard.unwrap()["pods"].0, pods_before);
    wait_objects(&kube, "rp-01", &[]).await;
    let replayed: Vec<Value> = h
        .stream_messages(LIFECYCLE_STREAM)
        .await
        .into_iter()
        .map(|(_, _, p)| serde_json::from_slice(&p).unwrap())
        .filter(|e: &Value| e["source"] == "tenant-worker-replay")
        .collect();
    assert_eq!(replayed.len(), 4);
    assert!(
        replayed
            .iter()
            .all(|e| e["replayasof"].as_u64() == Some(lifecycle_before))
    );

    // A second replay finds nothing to do and publishes nothing.
    let out = replay(&h, &["--apply"]).await;
    let report = output_text(&out);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("100 in sync"), "{report}");
    assert!(report.contains("nothing to re-drive"), "{report}");
    assert_eq!(messages(&h, LIFECYCLE_STREAM).await, lifecycle_before + 4);
}

#[tokio::test]
async fn an_interrupted_replay_resumes_and_applies_nothing_twice() {
    let mut h = Harness::start().await;
    for t in ["ir-a", "ir-b"] {
        let e = requested(t, "free");
        h.publish(&e).await;
        h.completion(t, e.id).await;
    }
    h.stop_worker().await.unwrap();
    for t in ["ir-a", "ir-b"] {
        Api::<Namespace>::all(h.kube())
            .delete(&format!("tenant-{t}"), &DeleteParams::default())
            .await
            .unwrap();
        wait_objects(&h.kube(), t, &[]).await;
    }
    // No worker: the replay publishes its two events and gives up waiting,
    // as if it had been interrupted.
    let out = replay(&h, &["--apply", "--wait", "1"]).await;
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("2 of 2 re-driven intents did not complete"),
        "{}",
        output_text(&out)
    );
    let published = messages(&h, LIFECYCLE_STREAM).await;
    assert_eq!(published, 4);
    // Run again: the queued events are the workers' now; nothing is re-published.
    let out = replay(&h, &["--apply", "--wait", "1"]).await;
    let report = output_text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("0 in sync, 0 to provision, 0 to deprovision, 2 pending"),
        "{report}"
    );
    assert_eq!(messages(&h, LIFECYCLE_STREAM).await, published);
    h.start_worker(|_| {}).await;
    wait_messages(&h, STATUS_STREAM, 4).await;
    h.wait_idle().await;
    for t in ["ir-a", "ir-b"] {
        assert_eq!(
            tenant_objects(&h.kube(), t).await,
            expected_ready_objects(&h.kube(), t).await
        );
    }
    let out = replay(&h, &["--apply"]).await;
    assert!(
        output_text(&out).contains("2 in sync"),
        "{}",
        output_text(&out)
    );
    assert_eq!(messages(&h, LIFECYCLE_STREAM).await, published);
    assert_eq!(messages(&h, STATUS_STREAM).await, 4);
}

#[tokio::test]
async fn a_replayed_intent_overtaken_by_a_newer_event_changes_nothing() {
    let h = Harness::start().await;
    let first = requested("overtaken", "free");
    let as_of = h.publish(&first).await;
    h.completion("overtaken", first.id).await;
    let newer = deleted("overtaken");
    h.publish(&newer).await;
    h.completion("overtaken", newer.id).await;
    // A replay computed before the delete (as of the request) arrives after it.
    let mut stale = CloudEvent::new(
        "tenant-worker-replay",
        EventType::Requested,
        crate::support::tenant("overtaken"),
        serde_json::to_value(TenantRequested {
            tenant_id: crate::support::tenant("overtaken"),
            plan: "free".into(),
            app_version: None,
            values: None,
            metadata: None,
        })
        .unwrap(),
    );
    stale.id = uuid::Uuid::new_v4();
    let mut json = serde_json::to_value(&stale).unwrap();
    json["replayasof"] = json!(as_of);
    h.publish_raw(
        "tenant.lifecycle.requested.overtaken",
        serde_json::to_vec(&json).unwrap(),
    )
    .await;
    let done = h.completion("overtaken", stale.id).await;
    assert_eq!(done["type"], "tenant.rejected", "{done:#}");
    assert_eq!(done["data"]["reason"], "superseded");
    assert!(tenant_objects(&h.kube(), "overtaken").await.is_empty());
    // A malformed replayasof is refused like any bad event.
    json["replayasof"] = json!("yesterday");
    json["id"] = json!(uuid::Uuid::new_v4());
    h.publish_raw(
        "tenant.lifecycle.requested.overtaken",
        serde_json::to_vec(&json).unwrap(),
    )
    .await;
    let dead = h.deadletters(1).await;
    let (subject, _, _) = &dead[0];
    assert_eq!(subject, "tenant.deadletter.schema_violation");
}
