//! The worker against a real Kubernetes control plane (kube-apiserver +
//! kube-controller-manager + etcd, v1.20.2 unless TENANT_WORKER_TEST_KUBECONFIG
//! names another cluster), as an operator runs it: worker processes holding
//! only the shipped `k8s/worker` RBAC, through their ServiceAccount's token.
//!
//! What the embedded API cannot witness is checked here: RBAC (every request
//! the worker makes is authorized by the real authorizer), admission
//! (ResourceQuota, LimitRange, NamespaceLifecycle), server-side apply by the
//! real merge logic, readiness from real controllers' status, and namespaces
//! finalized by the namespace controller.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::cluster::{expected_ready_objects, image_of, releases, tenant_objects, wait_objects};
use support::process::WorkerProcess;
use support::real_cluster::RealCluster;
use support::*;
use tenant_worker::cluster::release_records::ReleaseStatus;

/// Test plans: the shipped `free`, and `cramped` (quota for one pod, a
/// release of two).
const TEST_PLANS: &str = "tests/fixtures/real-cluster/plans.yaml";

/// Longer than [`PATIENCE`]: a real API server and its controllers on two
/// busy cores.
const REAL_PATIENCE: Duration = Duration::from_secs(90);

async fn completion(rc: &RealCluster, tenant: &str, id: uuid::Uuid) -> Value {
    rc.completion_within(tenant, id, REAL_PATIENCE).await
}

/// The release's `(revision, status)` records, oldest first, asserting that
/// the last is `revision`, deployed.
async fn statuses_ending_deployed(
    rc: &RealCluster,
    tenant: &str,
    revision: u32,
) -> Vec<(u32, ReleaseStatus)> {
    let history = releases(&rc.admin, tenant).await;
    let statuses: Vec<_> = history.iter().map(|r| (r.version, r.info.status)).collect();
    assert_eq!(
        statuses.last(),
        Some(&(revision, ReleaseStatus::Deployed)),
        "{statuses:?}"
    );
    statuses
}

/// The shared cluster with one worker, `w1`, on the test plans, and a tenant
/// id made unique from `name`.
async fn with_worker(name: &str) -> (RealCluster, WorkerProcess, String) {
    let rc = RealCluster::start().await;
    let worker = rc.spawn_worker("w1", None, &["--plans", TEST_PLANS]).await;
    let tenant = rc.tenant(name);
    (rc, worker, tenant)
}

/// Publishes a `tenant.upgraded` of `tenant` to application `version`,
/// waits for its completion and asserts that it completed (with `worker`'s
/// log when not).
async fn upgrade_to_version(
    rc: &RealCluster,
    worker: &WorkerProcess,
    tenant: &str,
    version: &str,
) -> Value {
    let up = upgrade_with(tenant, None, Some(version), None);
    rc.publish(&up).await;
    let done = completion(rc, tenant, up.id).await;
    assert_eq!(
        done["type"],
        "tenant.upgrade_completed",
        "{done:#}\n{}",
        worker.log_text()
    );
    done
}

/// Publishes `tenant.requested` for `tenant` on `plan` and waits for its
/// completion event.
async fn request(rc: &RealCluster, tenant: &str, plan: &str) -> Value {
    let req = requested(tenant, plan);
    rc.publish(&req).await;
    completion(rc, tenant, req.id).await
}

/// The completion events caused by inbound event `id`.
async fn completions_of(rc: &RealCluster, id: uuid::Uuid) -> Vec<Value> {
    rc.completion_events()
        .await
        .into_iter()
        .filter(|e| e["data"]["causation_id"] == json!(id.to_string()))
        .collect()
}

/// The tenant's Deployment, as the administrator reads it.
async fn deployment(rc: &RealCluster, tenant: &str) -> Deployment {
    let list = Api::<Deployment>::namespaced(rc.admin.clone(), &format!("tenant-{tenant}"))
        .list(&ListParams::default())
        .await
        .expect("list deployments");
    assert_eq!(list.items.len(), 1, "{tenant}: {:?}", list.items);
    list.items.into_iter().next().unwrap()
}

/// Waits until the tenant's namespace is gone: finalized by the
/// controller-manager's namespace controller, everything in it deleted.
async fn wait_namespace_gone(rc: &RealCluster, tenant: &str) {
    let namespaces = Api::<Namespace>::all(rc.admin.clone());
    let name = format!("tenant-{tenant}");
    let deadline = tokio::time::Instant::now() + REAL_PATIENCE;
    while namespaces
        .get_opt(&name)
        .await
        .expect("get namespace")
        .is_some()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} not finalized"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn logs_of(workers: &[&WorkerProcess]) -> String {
    workers.iter().map(|w| w.log_text()).collect()
}

#[tokio::test]
async fn every_shipped_plan_is_provisioned_and_deprovisioned_with_the_workers_own_rights() {
    let rc = RealCluster::start().await;
    let worker = rc.spawn_worker("w1", None, &[]).await;
    let plans = ["free", "standard", "premium"];
    let mut requests = Vec::new();
    for plan in plans {
        let tenant = rc.tenant(plan);
        let req = requested(&tenant, plan);
        rc.publish(&req).await;
        requests.push((tenant, req));
    }
    for (tenant, req) in &requests {
        let done = completion(&rc, tenant, req.id).await;
        assert_eq!(
            done["type"],
            "tenant.provisioned",
            "{done:#}\n{}",
            worker.log_text()
        );
        assert_matches_schema(&done);
        // The real controllers report the replicas the plan asked for.
        let d = deployment(&rc, tenant).await;
        let status = d.status.expect("deployment status");
        assert_eq!(status.available_replicas, d.spec.unwrap().replicas);
        assert_eq!(
            tenant_objects(&rc.admin, tenant).await,
            expected_ready_objects(&rc.admin, tenant).await
        );
    }
    // Plans that gate on the cluster's API versions got what it serves.
    let (premium, _) = &requests[2];
    let served = tenant_objects(&rc.admin, premium).await;
    assert!(
        served.iter().any(|o| o.starts_with("PodDisruptionBudget/"))
            && served
                .iter()
                .any(|o| o.starts_with("HorizontalPodAutoscaler/")),
        "{served:#?}"
    );

    let mut deletions = Vec::new();
    for (tenant, _) in &requests {
        let del = deleted(tenant);
        rc.publish(&del).await;
        deletions.push((tenant, del));
    }
    for (tenant, del) in deletions {
        let done = completion(&rc, tenant, del.id).await;
        assert_eq!(done["type"], "tenant.deprovisioned", "{done:#}");
        wait_namespace_gone(&rc, tenant).await;
        assert!(tenant_objects(&rc.admin, tenant).await.is_empty());
        assert!(rc.kv("tenant_routes", tenant).await.is_none());
    }
    rc.wait_idle().await;
}

#[tokio::test]
async fn an_upgrade_succeeds_and_one_that_never_becomes_ready_is_rolled_back() {
    let (rc, worker, tenant) = with_worker("upgrades").await;
    let done = request(&rc, &tenant, "free").await;
    assert_eq!(done["type"], "tenant.provisioned", "{done:#}");

    // A new application version: a new revision, rolled out by the real
    // deployment controller.
    upgrade_to_version(&rc, &worker, &tenant, "1.1.0").await;
    let d = deployment(&rc, &tenant).await;
    let image = image_of(&d);
    assert!(image.ends_with(":1.1.0"), "{image}");
    assert_eq!(d.status.unwrap().updated_replicas, Some(1));

    // `cramped` asks for two pods where its quota admits one: the API
    // server refuses the second pod, the rollout never completes, and the
    // worker rolls back to revision 2.
    let up = upgraded(&tenant, "cramped");
    rc.publish(&up).await;
    let done = completion(&rc, &tenant, up.id).await;
    assert_eq!(done["type"], "tenant.failed", "{done:#}");
    assert_eq!(done["data"]["compensated"], true, "{done:#}");
    assert!(
        done["data"]["error"]
            .as_str()
            .unwrap()
            .contains("not ready after 8s"),
        "{done:#}"
    );
    let statuses = statuses_ending_deployed(&rc, &tenant, 4).await;
    assert!(
        statuses.contains(&(3, ReleaseStatus::Failed)),
        "{statuses:?}"
    );
    let d = deployment(&rc, &tenant).await;
    assert_eq!(d.spec.unwrap().replicas, Some(1));
    assert_eq!(
        tenant_objects(&rc.admin, &tenant).await,
        expected_ready_objects(&rc.admin, &tenant).await
    );
}

#[tokio::test]
async fn an_install_that_never_becomes_ready_is_compensated_and_the_namespace_finalized() {
    let (rc, _worker, tenant) = with_worker("cramped").await;
    let done = request(&rc, &tenant, "cramped").await;
    assert_eq!(done["type"], "tenant.failed", "{done:#}");
    assert_eq!(done["data"]["failed_step"], "release", "{done:#}");
    assert_eq!(done["data"]["compensated"], true, "{done:#}");
    wait_namespace_gone(&rc, &tenant).await;
    assert!(tenant_objects(&rc.admin, &tenant).await.is_empty());
    assert!(rc.kv("tenant_routes", &tenant).await.is_none());
}

#[tokio::test]
async fn drift_made_by_an_administrator_is_found_and_repaired_by_reconcile() {
    let rc = RealCluster::start().await;
    let _worker = rc.spawn_worker("w1", None, &[]).await;
    let tenant = rc.tenant("drifty");
    let done = request(&rc, &tenant, "free").await;
    assert_eq!(done["type"], "tenant.provisioned", "{done:#}");
    rc.wait_idle().await;
    let expected = expected_ready_objects(&rc.admin, &tenant).await;

    let ns = format!("tenant-{tenant}");
    Api::<NetworkPolicy>::namespaced(rc.admin.clone(), &ns)
        .delete("tenant-isolation", &DeleteParams::default())
        .await
        .unwrap();
    let name = deployment(&rc, &tenant).await.metadata.name.unwrap();
    Api::<Deployment>::namespaced(rc.admin.clone(), &ns)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();

    let out = rc.operator_command("reconcile", &[]).await;
    let report = output_text(&out);
    assert!(!out.status.success(), "drift found: exit 1\n{report}");
    assert!(
        report.contains("+ NetworkPolicy tenant-isolation missing"),
        "{report}"
    );
    assert!(
        report.contains(&format!("~ Deployment {name} modified: spec.replicas")),
        "{report}"
    );

    let out = rc.operator_command("reconcile", &["--apply"]).await;
    let report = output_text(&out);
    assert!(out.status.success(), "{report}");
    assert_eq!(tenant_objects(&rc.admin, &tenant).await, expected);
    assert_eq!(
        deployment(&rc, &tenant).await.spec.unwrap().replicas,
        Some(1)
    );
    let repaired: Vec<Value> = rc
        .completion_events()
        .await
        .into_iter()
        .filter(|e| e["type"] == "tenant.drift_repaired")
        .collect();
    assert_eq!(repaired.len(), 1, "{repaired:#?}");

    let out = rc.operator_command("reconcile", &[]).await;
    assert!(out.status.success(), "in sync: {}", output_text(&out));
}

#[tokio::test]
async fn a_worker_killed_mid_saga_is_finished_by_another_replica() {
    let rc = RealCluster::start().await;
    let point = "saga.after_apply.network_policy";
    let mut doomed = rc
        .spawn_worker("doomed", Some(&format!("{point}=return")), &[])
        .await;
    let tenant = rc.tenant("orphaned");
    let req = requested(&tenant, "free");
    rc.publish(&req).await;
    let status = doomed
        .wait_exit(REAL_PATIENCE)
        .await
        .unwrap_or_else(|| panic!("did not reach {point}:\n{}", doomed.log_text()));
    assert!(!status.success());
    assert!(doomed.log_text().contains(&format!("failpoint {point}")));

    let heir = rc.spawn_worker("heir", None, &[]).await;
    let done = completion(&rc, &tenant, req.id).await;
    assert_eq!(
        done["type"],
        "tenant.provisioned",
        "{done:#}\n{}",
        logs_of(&[&doomed, &heir])
    );
    rc.wait_idle().await;
    assert_eq!(completions_of(&rc, req.id).await.len(), 1);
    assert_eq!(
        tenant_objects(&rc.admin, &tenant).await,
        expected_ready_objects(&rc.admin, &tenant).await
    );
}

#[tokio::test]
async fn a_frozen_api_server_delays_a_burst_but_every_tenant_converges_once() {
    let Some(rc) = RealCluster::start_own().await else {
        eprintln!("skipped: freezing the API server needs a control plane started by the tests");
        return;
    };
    let w1 = rc.spawn_worker("w1", None, &["--plans", TEST_PLANS]).await;
    let w2 = rc.spawn_worker("w2", None, &["--plans", TEST_PLANS]).await;
    let tenants: Vec<String> = (0..12).map(|i| rc.tenant(&format!("burst{i}"))).collect();
    let mut events = Vec::new();
    for tenant in &tenants {
        let req = requested(tenant, "free");
        rc.publish(&req).await;
        events.push((tenant.clone(), req));
    }
    // Freeze the API server once the burst is under way: some tenants are
    // done, others are mid-saga.
    completion(&rc, &events[0].0, events[0].1.id).await;
    let frozen = rc
        .control_plane()
        .freeze_api_server()
        .expect("a local control plane");
    // Upgrades and deletions keep arriving while it is frozen.
    for tenant in tenants.iter().take(4) {
        let up = upgrade_with(tenant, None, Some("1.1.0"), None);
        rc.publish(&up).await;
        events.push((tenant.clone(), up));
    }
    for tenant in tenants.iter().skip(10) {
        let del = deleted(tenant);
        rc.publish(&del).await;
        events.push((tenant.clone(), del));
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    frozen.thaw();

    for (tenant, event) in &events {
        let done = rc
            .completion_within(tenant, event.id, Duration::from_secs(180))
            .await;
        assert!(
            done["type"] != "tenant.failed",
            "{done:#}\n{}",
            logs_of(&[&w1, &w2])
        );
    }
    rc.wait_idle().await;
    for (_, event) in &events {
        let all = completions_of(&rc, event.id).await;
        assert_eq!(all.len(), 1, "one completion per event: {all:#?}");
    }
    for (i, tenant) in tenants.iter().enumerate() {
        if i >= 10 {
            wait_objects(&rc.admin, tenant, &[]).await;
        } else {
            assert_eq!(
                tenant_objects(&rc.admin, tenant).await,
                expected_ready_objects(&rc.admin, tenant).await,
                "{tenant}"
            );
        }
    }
}

/// The password of the tenant's `<tenant>-db` Secret (fixture chart
/// `generated-password`), as the administrator reads it.
async fn db_password(rc: &RealCluster, tenant: &str) -> String {
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(
        rc.admin.clone(),
        &format!("tenant-{tenant}"),
    )
    .get(&format!("{tenant}-db"))
    .await
    .expect("the password Secret");
    String::from_utf8(secret.data.expect("data")["password"].0.clone()).expect("UTF-8")
}

#[tokio::test]
async fn a_password_generated_at_install_is_kept_by_lookup_through_three_upgrades() {
    let rc = RealCluster::start().await;
    let worker = rc
        .spawn_worker(
            "w1",
            None,
            &["--chart", "tests/fixtures/charts/generated-password"],
        )
        .await;
    let tenant = rc.tenant("keeper");
    let done = request(&rc, &tenant, "free").await;
    assert_eq!(
        done["type"],
        "tenant.provisioned",
        "{done:#}\n{}",
        worker.log_text()
    );
    let password = db_password(&rc, &tenant).await;
    assert_eq!(password.len(), 24, "{password}");
    // lookup sees the tenant's namespace only, with the worker's own rights.
    let generated = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(
        rc.admin.clone(),
        &format!("tenant-{tenant}"),
    )
    .get(&format!("{tenant}-generated"))
    .await
    .expect("the generated ConfigMap")
    .data
    .expect("data");
    for (key, keys) in [
        ("lookupOtherNamespace", "0"),
        ("lookupAllNamespaces", "0"),
        ("lookupClusterScoped", "0"),
        ("lookupOwnSecrets", "4"),
    ] {
        assert_eq!(generated[key], keys, "{key}: {generated:?}");
    }
    assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));

    for (revision, version) in [(2, "1.1.0"), (3, "1.2.0"), (4, "1.3.0")] {
        let done = upgrade_to_version(&rc, &worker, &tenant, version).await;
        assert_eq!(done["data"]["release_revision"], revision);
        assert_eq!(
            db_password(&rc, &tenant).await,
            password,
            "revision {revision}"
        );
    }
    statuses_ending_deployed(&rc, &tenant, 4).await;
    rc.wait_idle().await;
}
