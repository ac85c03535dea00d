//! The control plane and its node stand-in behave as a cluster with nodes
//! does for what tenant-worker relies on: RBAC, deployments becoming
//! available, Jobs completing, namespaces finalized by the controllers.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use tenant_worker_test_support::ControlPlane;

async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn pods_run_jobs_complete_and_namespaces_are_finalized() {
    let cluster = ControlPlane::shared().unwrap_or_else(|e| panic!("{e}"));
    let kube = cluster.admin_client().await.expect("admin client");
    let ns = format!("support-{}", std::process::id());
    let apply = PatchParams::apply("test").force();
    Api::<Namespace>::all(kube.clone())
        .patch(
            &ns,
            &apply,
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            ),
        )
        .await
        .expect("namespace");

    let pod_template = |labels: serde_json::Value| {
        json!({
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": "example.com/app:1"}], "restartPolicy": "Never"},
        })
    };
    let deployments = Api::<Deployment>::namespaced(kube.clone(), &ns);
    let mut template = pod_template(json!({"app": "web"}));
    template["spec"]["restartPolicy"] = "Always".into();
    deployments
        .patch("web", &apply, &Patch::Apply(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template},
        })))
        .await
        .expect("deployment");
    eventually("the deployment becoming available", || async {
        let d = deployments.get("web").await.ok()?;
        (d.status?.available_replicas? == 2).then_some(())
    })
    .await;

    let jobs = Api::<Job>::namespaced(kube.clone(), &ns);
    jobs.patch(
        "migrate",
        &apply,
        &Patch::Apply(json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
            "spec": {"template": pod_template(json!({"job": "migrate"}))},
        })),
    )
    .await
    .expect("job");
    eventually("the job succeeding", || async {
        (jobs.get("migrate").await.ok()?.status?.succeeded? == 1).then_some(())
    })
    .await;

    let namespaces = Api::<Namespace>::all(kube.clone());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
    eventually("the namespace being finalized", || async {
        namespaces.get_opt(&ns).await.ok()?.is_none().then_some(())
    })
    .await;
}
