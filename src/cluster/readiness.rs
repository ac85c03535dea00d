//! Whether an applied workload is ready, as `helm install --wait` judges it:
//! Deployments and StatefulSets have every replica updated and available (or
//! ready) for their current generation; Jobs have completed. Other kinds are
//! ready once applied.

use kube::api::DynamicObject;
use serde_json::Value;

use super::dynamic::ObjectRef;
use super::{Cluster, ClusterError};

/// What a readiness check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not yet; the text says what is missing.
    Waiting(String),
    /// It will not become ready (a failed Job).
    Failed(String),
}

/// Judges an object of `kind` as the API returned it (from a read or from an
/// apply). Kinds without a readiness notion are ready.
pub fn judge_object(kind: &str, object: &DynamicObject) -> Readiness {
    if !is_workload(kind) {
        return Readiness::Ready;
    }
    let json = serde_json::to_value(object).expect("objects serialize");
    judge(kind, &json)
}

/// Whether objects of `kind` have a readiness to wait for.
fn is_workload(kind: &str) -> bool {
    matches!(kind, "Deployment" | "StatefulSet" | "Job")
}

/// Judges an object from its (kind, full JSON) without a cluster.
pub fn judge(kind: &str, object: &Value) -> Readiness {
    let int = |path: &str| object.pointer(path).and_then(Value::as_i64);
    let generation = int("/metadata/generation").unwrap_or(0);
    let observed = int("/status/observedGeneration").unwrap_or(0);
    match kind {
        "Deployment" | "StatefulSet" => {
            let want = int("/spec/replicas").unwrap_or(1);
            let updated = int("/status/updatedReplicas").unwrap_or(0);
            let ready_field = if kind == "Deployment" {
                "/status/availableReplicas"
            } else {
                "/status/readyReplicas"
            };
            let ready = int(ready_field).unwrap_or(0);
            if observed < generation {
                Readiness::Waiting(format!(
                    "generation {generation} not yet observed (at {observed})"
                ))
            } else if updated < want || ready < want {
                Readiness::Waiting(format!(
                    "{ready} of {want} replicas ready, {updated} updated"
                ))
            } else {
                Readiness::Ready
            }
        }
        "Job" => {
            let failed = object
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Failed" && c["status"] == "True");
            if let Some(c) = failed {
                return Readiness::Failed(format!(
                    "job failed: {}",
                    c["message"].as_str().unwrap_or("no message")
                ));
            }
            let want = int("/spec/completions").unwrap_or(1);
            let done = int("/status/succeeded").unwrap_or(0);
            if done >= want {
                Readiness::Ready
            } else {
                Readiness::Waiting(format!("{done} of {want} completions"))
            }
        }
        _ => Readiness::Ready,
    }
}

impl Cluster {
    /// The readiness of `r` in `namespace` now.
    ///
    /// # Errors
    /// [`ClusterError::Api`] when it cannot be read; a missing object is
    /// `Waiting` (it may not be visible yet).
    pub async fn readiness(
        &self,
        namespace: &str,
        r: &ObjectRef,
    ) -> Result<Readiness, ClusterError> {
        if !is_workload(&r.kind) {
            return Ok(Readiness::Ready);
        }
        let Some(obj) = self.get_object(namespace, r).await? else {
            return Ok(Readiness::Waiting("not found".into()));
        };
        Ok(judge_object(&r.kind, &obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployments_need_every_replica_available_at_their_generation() {
        let d = |gen_, obs, replicas, updated, available| {
            json!({"metadata": {"generation": gen_}, "spec": {"replicas": replicas},
                   "status": {"observedGeneration": obs, "updatedReplicas": updated, "availableReplicas": available}})
        };
        assert_eq!(judge("Deployment", &d(2, 2, 3, 3, 3)), Readiness::Ready);
        assert!(
            matches!(judge("Deployment", &d(3, 2, 3, 3, 3)), Readiness::Waiting(m) if m.contains("generation 3"))
        );
        assert!(
            matches!(judge("Deployment", &d(2, 2, 3, 3, 2)), Readiness::Waiting(m) if m.contains("2 of 3"))
        );
        // No spec.replicas (an HPA owns it): one is the default.
        let hpa = json!({"metadata": {"generation": 1}, "spec": {},
                         "status": {"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1}});
        assert_eq!(judge("Deployment", &hpa), Readiness::Ready);
    }

    #[test]
    fn jobs_must_complete_and_a_failed_job_fails() {
        let done = json!({"spec": {"completions": 2}, "status": {"succeeded": 2}});
        assert_eq!(judge("Job", &done), Readiness::Ready);
        let running = json!({"spec": {}, "status": {}});
        assert!(matches!(judge("Job", &running), Readiness::Waiting(_)));
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}});
        assert!(
            matches!(judge("Job", &failed), Readiness::Failed(m) if m.contains("BackoffLimitExceeded"))
        );
        assert_eq!(judge("ConfigMap", &json!({})), Readiness::Ready);
    }
}
