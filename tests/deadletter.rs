//! Bad input: every message that is not a well-formed event goes, unchanged,
//! with its headers and the reason, to TENANT_DEADLETTER; nothing changes in
//! the cluster; the worker keeps going.

use crate::support::*;
use async_nats::HeaderMap;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

#[tokio::test]
async fn malformed_messages_are_dead_lettered_and_the_worker_keeps_going() {
    let h = Harness::start().await;
    let valid = serde_json::to_value(requested("fine", "free")).unwrap();
    let mut wrong_type = valid.clone();
    wrong_type["data"]["plan"] = json!(42);
    let mut missing = valid.clone();
    missing["data"].as_object_mut().unwrap().remove("plan");
    let mut bad_id = valid.clone();
    bad_id["subject"] = json!("Not_A_Tenant");
    bad_id["data"]["tenant_id"] = json!("Not_A_Tenant");
    let mut huge = valid.clone();
    huge["data"]["values"] = json!({"blob": "x".repeat(1 << 20)});

    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "malformed_json",
            "tenant.lifecycle.requested.fine",
            b"{not json".to_vec(),
        ),
        (
            "schema_violation",
            "tenant.lifecycle.requested.fine",
            serde_json::to_vec(&wrong_type).unwrap(),
        ),
        (
            "schema_violation",
            "tenant.lifecycle.requested.fine",
            serde_json::to_vec(&missing).unwrap(),
        ),
        (
            "too_large",
            "tenant.lifecycle.requested.fine",
            serde_json::to_vec(&huge).unwrap(),
        ),
        (
            "schema_violation",
            "tenant.lifecycle.requested.bad",
            serde_json::to_vec(&bad_id).unwrap(),
        ),
        (
            "unknown_type",
            "tenant.lifecycle.requested.fine",
            br#"{"hello":"world"}"#.to_vec(),
        ),
        (
            "inconsistent",
            "tenant.lifecycle.deleted.fine",
            serde_json::to_vec(&valid).unwrap(),
        ),
    ];
    for (i, (_, subject, payload)) in cases.iter().enumerate() {
        let mut headers = HeaderMap::new();
        headers.insert("X-Test-Case", i.to_string().as_str());
        h.publish_raw_with(subject, headers, payload.clone()).await;
    }
    let letters = h.deadletters(cases.len()).await;
    assert_eq!(letters.len(), cases.len());
    for (i, (reason, subject, payload)) in cases.iter().enumerate() {
        let (dl_subject, headers, dl_payload) = letters
            .iter()
            .find(|(_, hdr, _)| {
                hdr.as_ref()
                    .and_then(|h| h.get("X-Test-Case"))
                    .map(|v| v.as_str())
                    == Some(i.to_string().as_str())
            })
            .unwrap_or_else(|| panic!("case {i} ({reason}) dead-lettered with its headers"));
        let headers = headers.as_ref().unwrap();
        assert_eq!(
            dl_subject,
            &format!("tenant.deadletter.{reason}"),
            "case {i}"
        );
        assert_eq!(
            dl_payload.as_ref(),
            payload.as_slice(),
            "case {i}: payload unchanged"
        );
        assert_eq!(
            headers
                .get("Tenant-Worker-Original-Subject")
                .unwrap()
                .as_str(),
            *subject
        );
        let why = headers
            .get("Tenant-Worker-Deadletter-Reason")
            .unwrap()
            .as_str();
        assert!(why.starts_with(reason), "case {i}: reason {why:?}");
    }

    // Still alive, and nothing was created for any of them.
    let ours = Api::<Namespace>::all(h.kube())
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=tenant-worker"))
        .await
        .unwrap();
    assert!(ours.items.is_empty(), "no tenant namespace created");
    let ok = requested("after", "free");
    h.publish(&ok).await;
    assert_eq!(
        h.completion("after", ok.id).await["type"],
        "tenant.provisioned"
    );
    assert!(
        h.completion_events()
            .await
            .iter()
            .all(|e| e["subject"] == "after")
    );
}
