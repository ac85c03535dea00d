//! The tenant's application as a Helm-compatible release: what is installed
//! and how Helm's records show it, upgrades, rollbacks, uninstalls of failed
//! first installs, values rules, and charts that try to leave the namespace.

use std::sync::Arc;
use std::time::Duration;

use crate::support::cluster::{
    expected_ready_objects, image_of, releases, tenant_objects, wait_objects,
};
use crate::support::*;
use helm::Chart;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Api;
use kube::api::ListParams;
use kube_double::{EmbeddedApiConfig, FaultRule};
use serde_json::{Value, json};
use tenant_worker::cluster::release_records::{RELEASE_SECRET_TYPE, ReleaseStatus};
use tenant_worker::contract::{CloudEvent, EventType, TenantRequested};
use tenant_worker::plans::{DEFAULT_PLANS_YAML, PlanCatalog};

/// The shipped plans with every readiness timeout set to `secs`.
fn plans_with_readiness(secs: u64) -> PlanCatalog {
    let text = ["120", "300", "600"]
        .iter()
        .fold(DEFAULT_PLANS_YAML.to_owned(), |text, old| {
            text.replace(
                &format!("readiness_timeout_secs: {old}"),
                &format!("readiness_timeout_secs: {secs}"),
            )
        });
    PlanCatalog::parse(&text, "test plans").unwrap()
}

fn request_with(
    tenant: &str,
    plan: &str,
    app_version: Option<&str>,
    values: Value,
) -> CloudEvent<Value> {
    CloudEvent::new(
        "signup",
        EventType::Requested,
        crate::support::tenant(tenant),
        serde_json::to_value(TenantRequested {
            tenant_id: crate::support::tenant(tenant),
            plan: plan.into(),
            app_version: app_version.map(Into::into),
            values: values.as_object().cloned(),
            metadata: None,
        })
        .unwrap(),
    )
}

async fn deployment(h: &Harness, tenant: &str) -> Deployment {
    let list = Api::<Deployment>::namespaced(h.kube(), &format!("tenant-{tenant}"))
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1, "one Deployment");
    list.items.into_iter().next().unwrap()
}

#[tokio::test]
async fn a_tenant_gets_its_release_recorded_as_helm_records_it() {
    let h = Harness::start().await;
    let event = request_with("helmy", "standard", Some("1.4.2"), json!({}));
    h.publish(&event).await;
    let done = h.completion("helmy", event.id).await;
    assert_eq!(done["type"], "tenant.provisioned", "{done:#}");
    assert_eq!(done["data"]["release_revision"], 1);
    h.wait_idle().await;

    // The application runs the requested version, labelled as ours and as Helm's.
    let d = deployment(&h, "helmy").await;
    assert!(image_of(&d).ends_with(":1.4.2"), "{}", image_of(&d));
    let labels = d.metadata.labels.clone().unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "tenant-worker");
    assert_eq!(labels["tenant-worker/tenant"], "helmy");
    let annotations = d.metadata.annotations.clone().unwrap();
    assert_eq!(annotations["meta.helm.sh/release-name"], "helmy");
    assert_eq!(
        annotations["meta.helm.sh/release-namespace"],
        "tenant-helmy"
    );

    // The record, as `helm list` / `helm get` read it.
    let secret = Api::<Secret>::namespaced(h.kube(), "tenant-helmy")
        .get("sh.helm.release.v1.helmy.v1")
        .await
        .unwrap();
    assert_eq!(secret.type_.as_deref(), Some(RELEASE_SECRET_TYPE));
    let labels = secret.metadata.labels.unwrap();
    for (k, v) in [
        ("name", "helmy"),
        ("owner", "helm"),
        ("status", "deployed"),
        ("version", "1"),
    ] {
        assert_eq!(labels[k], v, "label {k}");
    }
    let history = releases(&h.kube(), "helmy").await;
    assert_eq!(history.len(), 1);
    let r = &history[0];
    assert_eq!((r.version, r.info.status), (1, ReleaseStatus::Deployed));
    assert_eq!(r.namespace, "tenant-helmy");
    assert_eq!(r.chart["metadata"]["name"], "tenant-app");
    assert_eq!(r.config["image"]["tag"], "1.4.2");
    assert!(
        r.manifest
            .contains("# Source: tenant-app/templates/deployment.yaml")
    );
    assert!(!r.info.notes.is_empty(), "NOTES.txt rendered");
    assert_eq!(
        tenant_objects(&h.kube(), "helmy").await,
        expected_ready_objects(&h.kube(), "helmy").await
    );
    let record = h.kv("tenant_state", "helmy").await.unwrap();
    assert_eq!(record["release_revision"], 1);
}

#[tokio::test]
async fn an_upgrade_makes_a_new_revision_and_removes_what_it_no_longer_renders() {
    let h = Harness::start().await;
    let req = request_with("grower", "standard", Some("1.0.0"), json!({}));
    h.publish(&req).await;
    h.completion("grower", req.id).await;
    let before = tenant_objects(&h.kube(), "grower").await;
    assert!(
        before.iter().any(|o| o.starts_with("PodDisruptionBudget/")),
        "{before:#?}"
    );

    // Down to free (no PodDisruptionBudget there) on a new version.
    let up = upgrade_with("grower", Some("free"), Some("1.1.0"), None);
    h.publish(&up).await;
    let done = h.completion("grower", up.id).await;
    assert_eq!(done["type"], "tenant.upgrade_completed", "{done:#}");
    assert_eq!(done["data"]["release_revision"], 2);
    h.wait_idle().await;

    let history = releases(&h.kube(), "grower").await;
    let states: Vec<_> = history.iter().map(|r| (r.version, r.info.status)).collect();
    assert_eq!(
        states,
        [(1, ReleaseStatus::Superseded), (2, ReleaseStatus::Deployed)]
    );
    let d = deployment(&h, "grower").await;
    assert!(image_of(&d).ends_with(":1.1.0"));
    assert_eq!(d.spec.unwrap().replicas, Some(1));
    let after = tenant_objects(&h.kube(), "grower").await;
    assert!(
        !after.iter().any(|o| o.starts_with("PodDisruptionBudget/")),
        "{after:#?}"
    );
    assert_eq!(after, expected_ready_objects(&h.kube(), "grower").await);
}

#[tokio::test]
async fn a_failed_upgrade_rolls_back_to_the_previous_revision() {
    let h = Harness::start().await;
    let req = request_with("steady", "standard", Some("1.0.0"), json!({}));
    h.publish(&req).await;
    h.completion("steady", req.id).await;
    h.wait_idle().await;
    let old_image = image_of(&deployment(&h, "steady").await);

    // The new revision's Deployment is refused once (422: permanent).
    h.api.faults().add_rule(
        FaultRule::new(422)
            .method("PATCH")
            .resource("deployments")
            .namespace("tenant-steady")
            .times(1)
            .message("Deployment.apps is invalid: spec.template: admission refused"),
    );
    let up = upgrade_with("steady", Some("premium"), Some("2.0.0"), None);
    h.publish(&up).await;
    let done = h.completion("steady", up.id).await;
    assert_eq!(done["type"], "tenant.failed", "{done:#}");
    assert_matches_schema(&done);
    assert_eq!(done["data"]["failed_step"], "release");
    assert_eq!(done["data"]["compensated"], true);
    assert_eq!(done["data"]["compensation"][0], "release");
    h.wait_idle().await;

    let history = releases(&h.kube(), "steady").await;
    let states: Vec<_> = history
        .iter()
        .map(|r| (r.version, r.info.status, r.info.description.clone()))
        .collect();
    assert_eq!(states[0].1, ReleaseStatus::Superseded, "{states:#?}");
    assert_eq!(states[1].1, ReleaseStatus::Failed, "{states:#?}");
    assert_eq!(
        (states[2].0, states[2].1, states[2].2.as_str()),
        (3, ReleaseStatus::Deployed, "Rollback to 1"),
        "{states:#?}"
    );
    assert_eq!(image_of(&deployment(&h, "steady").await), old_image);
    let record = h.kv("tenant_state", "steady").await.unwrap();
    assert_eq!(record["status"], "ready");
    assert_eq!(record["plan"], "standard");
    assert_eq!(record["release_revision"], 3);
    assert_eq!(
        h.kv("tenant_routes", "steady").await.unwrap()["plan"],
        "standard"
    );
    assert_eq!(
        tenant_objects(&h.kube(), "steady").await,
        expected_ready_objects(&h.kube(), "steady").await
    );
}

#[tokio::test]
async fn an_upgrade_that_never_becomes_ready_is_rolled_back() {
    let h = Harness::start_with(
        |s| s.plans = plans_with_readiness(3),
        EmbeddedApiConfig::default(),
    )
    .await;
    let req = request_with("sleepy", "standard", Some("1.0.0"), json!({}));
    h.publish(&req).await;
    h.completion("sleepy", req.id).await;
    h.wait_idle().await;
    let name = deployment(&h, "sleepy").await.metadata.name.unwrap();

    h.api
        .faults()
        .keep_unready("tenant-sleepy", "Deployment", &name);
    let up = upgrade_with("sleepy", None, Some("2.0.0"), None);
    h.publish(&up).await;
    // Once the failed revision is marked, the old pods would be fine again.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let history = releases(&h.kube(), "sleepy").await;
        if history
            .iter()
            .any(|r| r.info.status == ReleaseStatus::Failed)
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{history:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.api
        .faults()
        .release_unready("tenant-sleepy", "Deployment", &name);
    let done = h.completion("sleepy", up.id).await;
    assert_eq!(done["type"], "tenant.failed", "{done:#}");
    assert!(
        done["data"]["error"]
            .as_str()
            .unwrap()
            .contains("not ready after 3s"),
        "{done:#}"
    );
    assert_eq!(done["data"]["compensated"], true);
    assert!(image_of(&deployment(&h, "sleepy").await).ends_with(":1.0.0"));
    let last = releases(&h.kube(), "sleepy").await.pop().unwrap();
    assert_eq!(
        (last.version, last.info.status),
        (3, ReleaseStatus::Deployed)
    );
}

#[tokio::test]
async fn a_first_install_that_never_becomes_ready_is_uninstalled() {
    let h = Harness::start_with(
        |s| s.plans = plans_with_readiness(2),
        EmbeddedApiConfig::default(),
    )
    .await;
    // Every Deployment in this tenant's namespace stays unready.
    h.api
        .faults()
        .keep_unready("tenant-stuck", "Deployment", "stuck-tenant-app");
    let req = request_with("stuck", "free", None, json!({}));
    h.publish(&req).await;
    let done = h.completion("stuck", req.id).await;
    assert_eq!(done["type"], "tenant.failed", "{done:#}");
    assert_eq!(done["data"]["failed_step"], "release");
    assert_eq!(done["data"]["compensated"], true);
    h.wait_idle().await;
    wait_objects(&h.kube(), "stuck", &[]).await;
    assert!(h.kv("tenant_routes", "stuck").await.is_none());
}

#[tokio::test]
async fn values_are_restricted_by_the_plan_and_checked_by_the_chart_schema() {
    let h = Harness::start().await;
    // `config` is overridable on free: it reaches the ConfigMap.
    let ok = request_with(
        "valued",
        "free",
        None,
        json!({"config": {"GREETING": "hello"}}),
    );
    h.publish(&ok).await;
    assert_eq!(
        h.completion("valued", ok.id).await["type"],
        "tenant.provisioned"
    );
    let maps = Api::<ConfigMap>::namespaced(h.kube(), "tenant-valued")
        .list(&ListParams::default().labels("tenant-worker/tenant=valued"))
        .await
        .unwrap();
    assert!(
        maps.items.iter().any(|m| m
            .data
            .as_ref()
            .is_some_and(|d| d.get("GREETING").map(String::as_str) == Some("hello"))),
        "{maps:#?}"
    );

    // Not overridable on free: refused, naming the path; nothing created.
    for (tenant, values, expect) in [
        (
            "sneaky",
            json!({"image": {"repository": "evil.example/miner"}}),
            "/image/repository",
        ),
        ("typo", json!({"config": ["not", "a", "map"]}), "config"),
    ] {
        let bad = request_with(tenant, "free", None, values);
        h.publish(&bad).await;
        let done = h.completion(tenant, bad.id).await;
        assert_eq!(done["type"], "tenant.rejected", "{done:#}");
        assert_eq!(done["data"]["reason"], "invalid_values");
        let message = done["data"]["message"].as_str().unwrap();
        assert!(message.contains(expect), "{message}");
        assert!(
            Api::<Namespace>::all(h.kube())
                .get_opt(&format!("tenant-{tenant}"))
                .await
                .unwrap()
                .is_none(),
            "nothing created for {tenant}"
        );
    }
}

#[tokio::test]
async fn a_chart_that_tries_to_leave_the_namespace_is_refused() {
    let chart = Chart::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/escape-chart"),
    )
    .expect("fixture chart loads");
    let plans = PlanCatalog::parse(
        &DEFAULT_PLANS_YAML.replace(
            "overridable_values: [config]",
            "overridable_values: [config, clusterRole, elsewhere, quota, explode, smuggle]",
        ),
        "test plans",
    )
    .unwrap();
    let h = Harness::start_with(
        move |s| {
            s.chart = Arc::new(chart);
            s.plans = plans;
        },
        EmbeddedApiConfig::default(),
    )
    .await;
    for (tenant, key, reason, expect) in [
        (
            "cluster-wide",
            "clusterRole",
            "forbidden_object",
            "cluster-scoped",
        ),
        ("elsewhere", "elsewhere", "forbidden_object", "kube-system"),
        ("loose", "quota", "forbidden_object", "ResourceQuota"),
        (
            "smuggled",
            "smuggle",
            "forbidden_object",
            "NetworkPolicys; a chart may not create one (escape/charts/smuggler/templates/networkpolicy.yaml)",
        ),
        ("boom", "explode", "render_failed", "explode was set"),
    ] {
        let event = request_with(tenant, "free", None, json!({ key: true }));
        h.publish(&event).await;
        let done = h.completion(tenant, event.id).await;
        assert_eq!(done["type"], "tenant.rejected", "{done:#}");
        assert_matches_schema(&done);
        assert_eq!(done["data"]["reason"], reason, "{done:#}");
        let message = done["data"]["message"].as_str().unwrap();
        assert!(message.contains(expect), "{tenant}: {message}");
        assert!(tenant_objects(&h.kube(), tenant).await.is_empty());
    }
    assert!(
        Api::<ConfigMap>::namespaced(h.kube(), "kube-system")
            .get_opt("elsewhere-planted")
            .await
            .unwrap()
            .is_none()
    );
    // The same chart with harmless values installs.
    let fine = request_with("fine", "free", None, json!({}));
    h.publish(&fine).await;
    assert_eq!(
        h.completion("fine", fine.id).await["type"],
        "tenant.provisioned"
    );
}

#[tokio::test]
async fn at_most_ten_revisions_are_kept() {
    let h = Harness::start().await;
    let req = request_with("busy", "free", Some("1.0.0"), json!({}));
    h.publish(&req).await;
    h.completion("busy", req.id).await;
    for minor in 1..=11 {
        let up = upgrade_with("busy", None, Some(&format!("1.{minor}.0")), None);
        h.publish(&up).await;
        assert_eq!(
            h.completion("busy", up.id).await["data"]["release_revision"],
            minor + 1
        );
    }
    h.wait_idle().await;
    let history = releases(&h.kube(), "busy").await;
    let versions: Vec<u32> = history.iter().map(|r| r.version).collect();
    assert_eq!(versions, (3..=12).collect::<Vec<_>>());
    assert_eq!(history.last().unwrap().info.status, ReleaseStatus::Deployed);
    assert!(
        history[..9]
            .iter()
            .all(|r| r.info.status == ReleaseStatus::Superseded)
    );
    assert!(image_of(&deployment(&h, "busy").await).ends_with(":1.11.0"));
}

/// The worker writes a revision's record twice (pending, then deployed), the
/// second time pinned to the version it wrote first instead of reading it
/// again. A record that someone else replaced in between is not overwritten:
/// the pinned write is refused, and the ownership check that follows names
/// the record as not the worker's.
#[tokio::test]
async fn a_record_replaced_between_the_two_writes_is_not_overwritten() {
    use kube::ResourceExt;
    use tenant_worker::cluster::release_records::{Release, ReleaseInfo};
    use tenant_worker::cluster::{Cluster, ClusterError};
    use tenant_worker::steps::owner_labels;

    let h = Harness::start_bare(EmbeddedApiConfig::default()).await;
    let owner = tenant("pinned");
    let namespaces: Api<Namespace> = Api::all(h.kube());
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": "tenant-pinned", "labels": owner_labels(&owner)}
    }))
    .unwrap();
    namespaces.create(&Default::default(), &ns).await.unwrap();
    let cluster = Cluster::new(h.kube(), "tenant-", Default::default());
    let now = jiff::Timestamp::now();
    let mut record = Release {
        name: "pinned".into(),
        info: ReleaseInfo {
            first_deployed: now,
            last_deployed: now,
            deleted: String::new(),
            description: "Install complete".into(),
            status: ReleaseStatus::PendingInstall,
            notes: String::new(),
        },
        chart: json!({"metadata": {"name": "tenant-app", "version": "0.1.0"}}),
        config: json!({}),
        manifest: String::new(),
        hooks: Vec::new(),
        version: 1,
        namespace: "tenant-pinned".into(),
    };
    let secrets: Api<Secret> = Api::namespaced(h.kube(), "tenant-pinned");
    let name = record.secret_name();

    // Unchanged in between: the pinned write lands, without a read.
    let first = cluster.write_release(&owner, &record, None).await.unwrap();
    h.api.requests().start();
    record.info.status = ReleaseStatus::Deployed;
    let second = cluster
        .write_release(&owner, &record, Some(&first))
        .await
        .unwrap();
    let requests = h.api.requests().snapshot();
    assert_eq!(
        requests.iter().map(|r| r.verb.as_str()).collect::<Vec<_>>(),
        ["patch"],
        "{requests:?}"
    );
    let stored = secrets.get(&name).await.unwrap();
    assert_eq!(
        stored.metadata.resource_version.as_deref(),
        Some(second.as_str())
    );
    assert_eq!(stored.labels()["status"], "deployed");

    // Replaced by someone else: refused, and theirs is left as it was.
    secrets.delete(&name, &Default::default()).await.unwrap();
    let theirs: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"owner": "someone-else"}},
        "data": {"release": "bm90IHlvdXJz"}
    }))
    .unwrap();
    secrets.create(&Default::default(), &theirs).await.unwrap();
    let before = secrets.get(&name).await.unwrap();
    record.info.status = ReleaseStatus::Superseded;
    let refused = cluster
        .write_release(&owner, &record, Some(&second))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ClusterError::NotOwned { ref name, .. } if *name == record.secret_name()),
        "{refused:?}"
    );
    let after = secrets.get(&name).await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert_eq!(after.labels(), before.labels());
}

/// The password of the tenant's `<tenant>-db` Secret (fixture chart
/// `generated-password`).
async fn db_password(h: &Harness, tenant: &str) -> String {
    let secret = Api::<Secret>::namespaced(h.kube(), &format!("tenant-{tenant}"))
        .get(&format!("{tenant}-db"))
        .await
        .unwrap();
    let bytes = secret.data.unwrap()["password"].0.clone();
    String::from_utf8(bytes).unwrap()
}

/// The fixture chart with a password kept by `lookup`, else `randAlphaNum`.
pub(crate) fn generated_password_chart() -> Chart {
    Chart::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/charts/generated-password"),
    )
    .expect("fixture chart loads")
}

#[tokio::test]
async fn a_generated_password_is_kept_across_upgrades_by_lookup() {
    let h = Harness::start_with(
        |s| s.chart = Arc::new(generated_password_chart()),
        EmbeddedApiConfig::default(),
    )
    .await;
    let req = request_with("keeper", "standard", Some("1.0.0"), json!({}));
    h.publish(&req).await;
    let done = h.completion("keeper", req.id).await;
    assert_eq!(done["type"], "tenant.provisioned", "{done:#}");
    let password = db_password(&h, "keeper").await;
    assert_eq!(password.len(), 24);
    assert!(
        password.chars().all(|c| c.is_ascii_alphanumeric()),
        "{password}"
    );
    let generated = |h: &Harness| {
        let kube = h.kube();
        async move {
            Api::<ConfigMap>::namespaced(kube, "tenant-keeper")
                .get("keeper-generated")
                .await
                .unwrap()
                .data
                .unwrap()
        }
    };
    let first = generated(&h).await;
    // lookup sees the tenant's namespace only.
    for (key, keys) in [
        ("lookupOtherNamespace", "0"),
        ("lookupAllNamespaces", "0"),
        ("lookupClusterScoped", "0"),
        ("lookupOwnSecrets", "4"),
    ] {
        assert_eq!(first[key], keys, "{key}: {first:?}");
    }
    let mut uuids = vec![first["uuid"].clone()];

    for (revision, version) in [(2, "1.1.0"), (3, "1.2.0"), (4, "1.3.0")] {
        let up = upgrade_with("keeper", None, Some(version), None);
        h.publish(&up).await;
        let done = h.completion("keeper", up.id).await;
        assert_eq!(done["type"], "tenant.upgrade_completed", "{done:#}");
        assert_eq!(done["data"]["release_revision"], revision);
        assert_eq!(
            db_password(&h, "keeper").await,
            password,
            "revision {revision}"
        );
        let data = generated(&h).await;
        assert_eq!(data["version"], version);
        // What is not looked up is drawn anew at each revision, as in Helm.
        assert!(!uuids.contains(&data["uuid"]), "{data:?}");
        uuids.push(data["uuid"].clone());
    }
    // Every record's manifest holds the one password.
    h.wait_idle().await;
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &password);
    for r in releases(&h.kube(), "keeper").await {
        assert!(
            r.manifest.contains(&format!("password: {encoded}")),
            "revision {}: {}",
            r.version,
            r.manifest
        );
    }
}
