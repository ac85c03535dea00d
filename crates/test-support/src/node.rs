//! A node stand-in: what a scheduler and a kubelet would do to pods, without
//! containers, so that readiness waits, Jobs and namespace deletion behave
//! as on a cluster with nodes.
//!
//! It registers one Ready node and watches every pod:
//! - a pod with no node is bound to it (the `pods/binding` subresource, as
//!   the scheduler binds);
//! - a bound pod is reported running and Ready, or, when a Job owns it,
//!   succeeded (its containers exit 0);
//! - a bound pod being deleted is removed at once (grace period 0), as the
//!   kubelet confirms a deletion once the containers are gone.
//!
//! It never runs anything, checks no resources and ignores taints: every pod
//! "starts" instantly.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

/// The stand-in node's name.
pub const NODE_NAME: &str = "tenant-worker-test-node";

/// How many pods it handles at once.
const CONCURRENCY: usize = 16;

/// A registered node whose [`NodeStandIn::run`] plays its kubelet.
#[derive(Clone)]
pub struct NodeStandIn {
    client: kube::Client,
}

impl NodeStandIn {
    /// Registers the node (Ready, room for 1,000 pods).
    ///
    /// # Errors
    /// When the API server refuses the node.
    pub async fn register(client: kube::Client) -> Result<Self, kube::Error> {
        let nodes = Api::<Node>::all(client.clone());
        let node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": NODE_NAME, "labels": {"kubernetes.io/hostname": NODE_NAME}},
        });
        let params = PatchParams::apply("tenant-worker-node-stand-in").force();
        nodes
            .patch(NODE_NAME, &params, &Patch::Apply(&node))
            .await?;
        let now = now();
        let resources = json!({"cpu": "64", "memory": "256Gi", "pods": "1000"});
        let status = json!({
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "node stand-in of tenant-worker's tests",
                    "lastHeartbeatTime": now, "lastTransitionTime": now,
                }],
                "nodeInfo": {
                    "kubeletVersion": crate::KUBE_VERSION, "kubeProxyVersion": crate::KUBE_VERSION,
                    "operatingSystem": "linux", "architecture": "amd64",
                    "containerRuntimeVersion": "none://", "kernelVersion": "", "osImage": "",
                    "machineID": "", "systemUUID": "", "bootID": "",
                },
            }
        });
        nodes
            .patch_status(NODE_NAME, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        Ok(Self { client })
    }

    /// Plays the kubelet and scheduler until the task is dropped.
    pub async fn run(self) {
        let pods = Api::<Pod>::all(self.client.clone());
        watcher(pods, watcher::Config::default())
            .for_each_concurrent(CONCURRENCY, |event| {
                let this = self.clone();
                async move {
                    match event {
                        Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                            this.handle(pod).await;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "node stand-in: watch error");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            })
            .await;
    }

    /// Moves `pod` one step on, retrying a few times: the watch will not
    /// bring the pod again unless it changes.
    async fn handle(&self, pod: Pod) {
        let (Some(namespace), Some(name)) =
            (pod.metadata.namespace.clone(), pod.metadata.name.clone())
        else {
            return;
        };
        let pods = Api::<Pod>::namespaced(self.client.clone(), &namespace);
        for attempt in 0..5u32 {
            match self.step(&pods, &name, &pod).await {
                Ok(()) => return,
                // Gone, or changed since: the next watch event says what now.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return,
                Err(e) => {
                    tracing::debug!(%namespace, %name, attempt, error = %e, "node stand-in: retrying");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
            }
        }
    }

    async fn step(&self, pods: &Api<Pod>, name: &str, pod: &Pod) -> Result<(), kube::Error> {
        let spec = pod.spec.as_ref();
        let node = spec.and_then(|s| s.node_name.as_deref());
        if pod.metadata.deletion_timestamp.is_some() {
            if node == Some(NODE_NAME) {
                pods.delete(name, &DeleteParams::default().grace_period(0))
                    .await?;
            }
            return Ok(());
        }
        match node {
            None => {
                let binding = json!({
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": name},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME},
                });
                pods.create_subresource::<_, serde_json::Value>(
                    "binding",
                    name,
                    &PostParams::default(),
                    &binding,
                )
                .await?;
            }
            Some(NODE_NAME) => {
                let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                if matches!(phase, Some("Running" | "Succeeded" | "Failed")) {
                    return Ok(());
                }
                pods.patch_status(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(&status_of(pod)),
                )
                .await?;
            }
            Some(_) => {}
        }
        Ok(())
    }
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .expect("whole seconds")
        .to_string()
}

/// The status a kubelet would report for `pod` once its containers run
/// (or, for a Job's pod, have exited 0).
fn status_of(pod: &Pod) -> serde_json::Value {
    let now = now();
    let finishes = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Job");
    let containers: Vec<serde_json::Value> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| {
            let state = if finishes {
                json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}})
            } else {
                json!({"running": {"startedAt": now}})
            };
            json!({
                "name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "",
                "ready": !finishes, "started": !finishes, "restartCount": 0, "state": state,
            })
        })
        .collect();
    let ready = if finishes { "False" } else { "True" };
    let condition = |kind: &str, status: &str| json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    json!({
        "status": {
            "phase": if finishes { "Succeeded" } else { "Running" },
            "hostIP": "127.0.0.1",
            "podIP": "10.244.0.10",
            "podIPs": [{"ip": "10.244.0.10"}],
            "startTime": now,
            "conditions": [
                condition("Initialized", "True"),
                condition("Ready", ready),
                condition("ContainersReady", ready),
                condition("PodScheduled", "True"),
            ],
            "containerStatuses": containers,
        }
    })
}
