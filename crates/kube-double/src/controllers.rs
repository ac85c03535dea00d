//! What a cluster's controllers would do, simulated, since nothing runs pods:
//!
//! - **readiness**: Deployments, StatefulSets and Jobs report progress right
//!   after a spec change and become ready/complete after
//!   `EmbeddedApiConfig::ready_delay`, unless held by
//!   [`FaultInjector::keep_unready`];
//! - **namespace finalization**: a deleted namespace stays `Terminating` for
//!   `namespace_termination_delay`, then its content and it are removed;
//! - **quota status**: `ResourceQuota.status` reports `hard` and the object
//!   counts `used`, and creation beyond an object-count quota is refused
//!   (403 `exceeded quota`), as quota admission does.
//!
//! Every status change bumps the resourceVersion, as a controller's write would.

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::faults::FaultInjector;
use super::resources::{self, RESOURCES, ResourceDef};
use super::status::ApiError;
use super::store::{Key, Store, key};

/// Kinds whose readiness is simulated.
pub(crate) fn is_workload(res: &ResourceDef) -> bool {
    res.is("apps", "Deployment") || res.is("apps", "StatefulSet") || res.is("batch", "Job")
}

fn int_at(obj: &Value, pointer: &str, default: i64) -> i64 {
    obj.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

/// A short stable hash, standing in for pod-template-hash / controller revisions.
fn short_hash(v: Option<&Value>) -> String {
    // FNV-1a: stable across runs, unlike std's RandomState.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in v.map(Value::to_string).unwrap_or_default().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:010x}", h & 0xff_ffff_ffff)
}

fn condition(ty: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": ty, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": now, "lastUpdateTime": now,
    })
}

/// Sets the integer fields that are non-zero; real controllers omit zeros.
fn counts(pairs: &[(&str, i64)]) -> Map<String, Value> {
    pairs
        .iter()
        .filter(|(_, n)| *n != 0)
        .map(|(k, n)| (k.to_string(), json!(n)))
        .collect()
}

/// Whether a Job is suspended (it then never completes).
pub(crate) fn is_suspended(res: &ResourceDef, obj: &Value) -> bool {
    res.is("batch", "Job") && obj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true)
}

/// The status a workload reports while its (simulated) pods are not ready.
pub(crate) fn unready_status(res: &ResourceDef, obj: &Value, now: &str) -> Value {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let generation = int_at(obj, "/metadata/generation", 1);
    let replicas = int_at(obj, "/spec/replicas", 1);
    let revision = format!("{name}-{}", short_hash(obj.pointer("/spec/template")));
    match res.kind {
        "Deployment" => {
            let mut s = counts(&[
                ("observedGeneration", generation),
                ("replicas", replicas),
                ("updatedReplicas", replicas),
                ("unavailableReplicas", replicas),
            ]);
            s.insert(
                "conditions".into(),
                json!([
                    condition(
                        "Available",
                        "False",
                        "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability.",
                        now
                    ),
                    condition(
                        "Progressing",
                        "True",
                        "ReplicaSetUpdated",
                        &format!("ReplicaSet \"{revision}\" is progressing."),
                        now
                    ),
                ]),
            );
            Value::Object(s)
        }
        "StatefulSet" => {
            let mut s = counts(&[
                ("observedGeneration", generation),
                ("replicas", replicas),
                ("currentReplicas", replicas),
                ("updatedReplicas", replicas),
            ]);
            s.insert("currentRevision".into(), json!(revision));
            s.insert("updateRevision".into(), json!(revision));
            s.insert("collisionCount".into(), json!(0));
            Value::Object(s)
        }
        "Job" => {
            let start = obj
                .pointer("/status/startTime")
                .cloned()
                .unwrap_or_else(|| json!(now));
            if is_suspended(res, obj) {
                return json!({
                    "conditions": [condition("Suspended", "True", "JobSuspended", "Job suspended", now)],
                });
            }
            let mut s = counts(&[("active", int_at(obj, "/spec/parallelism", 1))]);
            s.insert("startTime".into(), start);
            s.insert("ready".into(), json!(0));
            s.insert("terminating".into(), json!(0));
            s.insert("uncountedTerminatedPods".into(), json!({}));
            Value::Object(s)
        }
        _ => obj.get("status").cloned().unwrap_or_else(|| json!({})),
    }
}

/// The status a workload reports once all its (simulated) pods are ready,
/// or, for a Job, once it has succeeded.
pub(crate) fn ready_status(res: &ResourceDef, obj: &Value, now: &str) -> Value {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let generation = int_at(obj, "/metadata/generation", 1);
    let replicas = int_at(obj, "/spec/replicas", 1);
    let revision = format!("{name}-{}", short_hash(obj.pointer("/spec/template")));
    match res.kind {
        "Deployment" => {
            let mut s = counts(&[
                ("observedGeneration", generation),
                ("replicas", replicas),
                ("updatedReplicas", replicas),
                ("readyReplicas", replicas),
                ("availableReplicas", replicas),
            ]);
            s.insert(
                "conditions".into(),
                json!([
                    condition(
                        "Available",
                        "True",
                        "MinimumReplicasAvailable",
                        "Deployment has minimum availability.",
                        now
                    ),
                    condition(
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        &format!("ReplicaSet \"{revision}\" has successfully progressed."),
                        now
                    ),
                ]),
            );
            Value::Object(s)
        }
        "StatefulSet" => {
            let mut s = counts(&[
                ("observedGeneration", generation),
                ("replicas", replicas),
                ("readyReplicas", replicas),
                ("currentReplicas", replicas),
                ("updatedReplicas", replicas),
                ("availableReplicas", replicas),
            ]);
            s.insert("currentRevision".into(), json!(revision));
            s.insert("updateRevision".into(), json!(revision));
            s.insert("collisionCount".into(), json!(0));
            Value::Object(s)
        }
        "Job" => {
            let start = obj
                .pointer("/status/startTime")
                .cloned()
                .unwrap_or_else(|| json!(now));
            let msg = "Reached expected number of succeeded pods";
            let mut s = counts(&[("succeeded", int_at(obj, "/spec/completions", 1))]);
            s.insert("startTime".into(), start);
            s.insert("completionTime".into(), json!(now));
            s.insert("ready".into(), json!(0));
            s.insert("terminating".into(), json!(0));
            s.insert("uncountedTerminatedPods".into(), json!({}));
            s.insert(
                "conditions".into(),
                json!([
                    condition("SuccessCriteriaMet", "True", "CompletionsReached", msg, now),
                    condition("Complete", "True", "CompletionsReached", msg, now),
                ]),
            );
            Value::Object(s)
        }
        _ => obj.get("status").cloned().unwrap_or_else(|| json!({})),
    }
}

/// The resource a quota key counts (`configmaps`, `count/deployments.apps`).
fn counted_resource(quota_key: &str) -> Option<&'static ResourceDef> {
    let spec = match quota_key {
        "pods" | "services" | "configmaps" | "secrets" | "resourcequotas" => quota_key,
        other => other.strip_prefix("count/")?,
    };
    let (plural, group) = spec.split_once('.').unwrap_or((spec, ""));
    RESOURCES
        .iter()
        .find(|r| r.plural == plural && r.group == group)
}

/// What quota key `k` reports as used in `namespace`: object counts for count
/// quotas, "0" for compute resources (no pods run).
fn quota_used(store: &Store, namespace: &str, k: &str) -> String {
    match counted_resource(k) {
        Some(res) => store.count(res, namespace).to_string(),
        None => "0".to_string(),
    }
}

/// Recomputes `status` of every ResourceQuota in `namespace`.
pub(crate) fn refresh_quotas(store: &mut Store, namespace: &str) {
    let quotas = resources::find("", "v1", "resourcequotas").expect("resourcequotas are served");
    let keys: Vec<Key> = store
        .list(quotas, Some(namespace))
        .map(|(k, _)| k.clone())
        .collect();
    for k in keys {
        let Some(entry) = store.get(&k) else { continue };
        let hard = entry
            .object
            .pointer("/spec/hard")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let used: Map<String, Value> = hard
            .as_object()
            .map(|m| {
                m.keys()
                    .map(|q| (q.clone(), json!(quota_used(store, namespace, q))))
                    .collect()
            })
            .unwrap_or_default();
        let status = json!({ "hard": hard, "used": used });
        if entry.object.get("status") == Some(&status) {
            continue;
        }
        let rv = store.next_rv();
        let entry = store.get_mut(&k).expect("key was just listed");
        entry.object["status"] = status;
        entry.object["metadata"]["resourceVersion"] = json!(rv.to_string());
        entry.rv = rv;
    }
}

/// Quota admission for creating one `res` object in `namespace`: 403 when an
/// object-count quota would be exceeded.
pub(crate) fn quota_violation(
    store: &Store,
    res: &ResourceDef,
    namespace: &str,
    name: &str,
) -> Option<ApiError> {
    let quotas = resources::find("", "v1", "resourcequotas").expect("resourcequotas are served");
    for (_, entry) in store.list(quotas, Some(namespace)) {
        let Some(hard) = entry
            .object
            .pointer("/spec/hard")
            .and_then(Value::as_object)
        else {
            continue;
        };
        for (k, limit) in hard {
            if counted_resource(k).is_none_or(|r| r != res) {
                continue;
            }
            let Some(limit) = limit.as_str().and_then(|l| l.parse::<usize>().ok()) else {
                continue;
            };
            let used = store.count(counted_resource(k).expect("checked above"), namespace);
            if used + 1 > limit {
                let quota_name = entry
                    .object
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                return Some(ApiError::forbidden(
                    res,
                    name,
                    &format!(
                        "exceeded quota: {quota_name}, requested: {k}=1, used: {k}={used}, limited: {k}={limit}"
                    ),
                ));
            }
        }
    }
    None
}

/// One pass of every simulated controller. Returns when the next pass is due
/// (`None`: nothing scheduled; wake-ups come from writes and releases).
pub(crate) fn tick(
    store: &mut Store,
    faults: &FaultInjector,
    now: Instant,
    now_ts: &str,
) -> Option<Instant> {
    let finished: Vec<String> = store
        .terminating
        .iter()
        .filter(|(_, due)| **due <= now)
        .map(|(ns, _)| ns.clone())
        .collect();
    for ns in finished {
        store.terminating.remove(&ns);
        let removed = store.remove_namespace_content(&ns);
        store.remove(&key(resources::namespaces(), None, &ns));
        store.quota_dirty.remove(&ns);
        store.next_rv();
        tracing::debug!(namespace = %ns, objects = removed, "embedded api: namespace finalized");
    }

    let due: Vec<Key> = store
        .pending_ready
        .iter()
        .filter(|(_, due)| **due <= now)
        .map(|(k, _)| k.clone())
        .collect();
    for k in due {
        let res = &RESOURCES[k.0];
        let Some(entry) = store.get(&k) else {
            store.pending_ready.remove(&k);
            continue;
        };
        if faults.is_kept_unready(&k.1, res.kind, &k.2) {
            continue;
        }
        let suspended = is_suspended(res, &entry.object);
        let status = ready_status(res, &entry.object, now_ts);
        store.pending_ready.remove(&k);
        if suspended {
            continue;
        }
        let rv = store.next_rv();
        let entry = store.get_mut(&k).expect("entry exists");
        entry.object["status"] = status;
        entry.object["metadata"]["resourceVersion"] = json!(rv.to_string());
        entry.rv = rv;
        tracing::debug!(kind = res.kind, namespace = %k.1, name = %k.2, "embedded api: simulated ready");
    }

    for ns in std::mem::take(&mut store.quota_dirty) {
        refresh_quotas(store, &ns);
    }

    // Held objects are left out: they are re-checked when a hold is released.
    store
        .terminating
        .values()
        .chain(store.pending_ready.values().filter(|due| **due > now))
        .min()
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::Managers;
    use crate::store::Entry;
    use std::time::Duration;

    fn deployment() -> Value {
        json!({"metadata": {"name": "web", "namespace": "ns", "generation": 2}, "spec": {"replicas": 3}})
    }

    #[test]
    fn deployment_statuses() {
        let res = resources::find("apps", "v1", "deployments").unwrap();
        let un = unready_status(res, &deployment(), "t");
        assert_eq!(un["unavailableReplicas"], 3);
        assert!(un.get("availableReplicas").is_none());
        let ready = ready_status(res, &deployment(), "t");
        assert_eq!(ready["availableReplicas"], 3);
        assert_eq!(ready["observedGeneration"], 2);
        assert_eq!(ready["conditions"][0]["status"], "True");
    }

    #[test]
    fn job_completes_unless_suspended() {
        let res = resources::find("batch", "v1", "jobs").unwrap();
        let job = json!({"metadata": {"name": "j"}, "spec": {}});
        assert_eq!(ready_status(res, &job, "t")["succeeded"], 1);
        assert!(is_suspended(res, &json!({"spec": {"suspend": true}})));
    }

    #[test]
    fn tick_readies_unless_held() {
        let res = resources::find("apps", "v1", "deployments").unwrap();
        let mut store = Store::default();
        let k = key(res, Some("ns"), "web");
        store.insert(
            k.clone(),
            Entry {
                object: deployment(),
                rv: 1,
                managers: Managers::default(),
            },
        );
        let now = Instant::now();
        store.pending_ready.insert(k.clone(), now);
        let faults = FaultInjector::default();
        faults.keep_unready("ns", "Deployment", "web");
        assert_eq!(tick(&mut store, &faults, now, "t"), None);
        assert!(store.get(&k).unwrap().object.get("status").is_none());
        faults.release_unready("ns", "Deployment", "web");
        tick(&mut store, &faults, now, "t");
        assert_eq!(
            store.get(&k).unwrap().object["status"]["availableReplicas"],
            3
        );
        assert!(store.pending_ready.is_empty());
    }

    #[test]
    fn tick_finalizes_namespaces_when_due() {
        let cm = resources::find("", "v1", "configmaps").unwrap();
        let mut store = Store::default();
        let e = || Entry {
            object: json!({}),
            rv: 1,
            managers: Managers::default(),
        };
        store.insert(key(resources::namespaces(), None, "ns"), e());
        store.insert(key(cm, Some("ns"), "a"), e());
        let now = Instant::now();
        store
            .terminating
            .insert("ns".into(), now + Duration::from_secs(5));
        let next = tick(&mut store, &FaultInjector::default(), now, "t");
        assert_eq!(next, Some(now + Duration::from_secs(5)));
        assert_eq!(store.count(cm, "ns"), 1);
        tick(
            &mut store,
            &FaultInjector::default(),
            now + Duration::from_secs(5),
            "t",
        );
        assert_eq!(store.count(cm, "ns"), 0);
        assert!(
            store
                .get(&key(resources::namespaces(), None, "ns"))
                .is_none()
        );
    }

    #[test]
    fn quotas_count_and_refuse() {
        let cm = resources::find("", "v1", "configmaps").unwrap();
        let rq = resources::find("", "v1", "resourcequotas").unwrap();
        let mut store = Store::default();
        store.insert(
            key(rq, Some("ns"), "q"),
            Entry {
                object: json!({"metadata": {"name": "q"}, "spec": {"hard": {"count/configmaps": "1", "requests.cpu": "1"}}}),
                rv: 1,
                managers: Managers::default(),
            },
        );
        assert!(quota_violation(&store, cm, "ns", "a").is_none());
        store.insert(
            key(cm, Some("ns"), "a"),
            Entry {
                object: json!({}),
                rv: 2,
                managers: Managers::default(),
            },
        );
        let err = quota_violation(&store, cm, "ns", "b").unwrap();
        assert_eq!(err.code, 403);
        assert!(err.message.contains("exceeded quota: q"), "{}", err.message);
        refresh_quotas(&mut store, "ns");
        let status = &store.get(&key(rq, Some("ns"), "q")).unwrap().object["status"];
        assert_eq!(
            status["used"],
            json!({"count/configmaps": "1", "requests.cpu": "0"})
        );
    }
}
