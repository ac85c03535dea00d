//! What a user would check in the cluster: the objects labelled for a tenant.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DynamicObject, ListParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tenant_worker::cluster::release_records::{Release, ReleaseStatus, decode};
use tenant_worker::contract::TENANT_LABEL;
use tenant_worker_test_support::kinds::older_versions;

use super::PATIENCE;

/// The objects of kind `K` matching `selector`; none when the cluster does
/// not serve `K`'s version (e.g. `policy/v1` on Kubernetes 1.20).
async fn list<K>(kube: &kube::Client, selector: &str) -> Vec<String>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    served(
        Api::<K>::all(kube.clone())
            .list(&ListParams::default().labels(selector))
            .await,
    )
    .iter()
    .map(|o| {
        format!(
            "{}/{}/{}",
            K::kind(&()),
            o.namespace().unwrap_or_default(),
            o.name_any()
        )
    })
    .collect()
}

/// The items of a list, or none when the cluster does not serve the kind.
fn served<K: Clone>(list: kube::Result<kube::core::ObjectList<K>>) -> Vec<K> {
    match list {
        Ok(list) => list.items,
        Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
        Err(e) => panic!("list: {e}"),
    }
}

/// Objects in [`older_versions`] matching `selector`, as (tenant label,
/// `Kind/namespace/name`).
async fn list_older_versions(kube: &kube::Client, selector: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for resource in older_versions() {
        let kind = &resource.kind;
        let api = Api::<DynamicObject>::all_with(kube.clone(), &resource);
        for o in served(api.list(&ListParams::default().labels(selector)).await) {
            let tenant = o.labels().get(TENANT_LABEL).cloned().unwrap_or_default();
            let name = format!(
                "{kind}/{}/{}",
                o.namespace().unwrap_or_default(),
                o.name_any()
            );
            out.push((tenant, name));
        }
    }
    out
}

/// Every object in the cluster labelled for `tenant` (the isolation objects
/// and every kind a release can hold), as `Kind/namespace/name`, sorted.
pub(crate) async fn tenant_objects(kube: &kube::Client, tenant: &str) -> Vec<String> {
    let selector = format!("{TENANT_LABEL}={tenant}");
    let mut all = list::<Namespace>(kube, &selector).await;
    all.extend(list::<ResourceQuota>(kube, &selector).await);
    all.extend(list::<LimitRange>(kube, &selector).await);
    all.extend(list::<NetworkPolicy>(kube, &selector).await);
    all.extend(list::<ServiceAccount>(kube, &selector).await);
    all.extend(list::<Role>(kube, &selector).await);
    all.extend(list::<RoleBinding>(kube, &selector).await);
    all.extend(list::<Deployment>(kube, &selector).await);
    all.extend(list::<StatefulSet>(kube, &selector).await);
    all.extend(list::<Job>(kube, &selector).await);
    all.extend(list::<Service>(kube, &selector).await);
    all.extend(list::<ConfigMap>(kube, &selector).await);
    all.extend(list::<Secret>(kube, &selector).await);
    all.extend(list::<Ingress>(kube, &selector).await);
    all.extend(list::<HorizontalPodAutoscaler>(kube, &selector).await);
    all.extend(list::<PodDisruptionBudget>(kube, &selector).await);
    all.extend(
        list_older_versions(kube, &selector)
            .await
            .into_iter()
            .map(|(_, name)| name),
    );
    // A cluster serving both versions of a kind lists its objects twice.
    all.sort();
    all.dedup();
    all
}

async fn list_labelled<K>(kube: &kube::Client, out: &mut BTreeMap<String, Vec<String>>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    for o in served(
        Api::<K>::all(kube.clone())
            .list(&ListParams::default().labels(TENANT_LABEL))
            .await,
    ) {
        let tenant = o.labels()[TENANT_LABEL].clone();
        out.entry(tenant).or_default().push(format!(
            "{}/{}/{}",
            K::kind(&()),
            o.namespace().unwrap_or_default(),
            o.name_any()
        ));
    }
}

/// Every object in the cluster labelled for any tenant, as in
/// [`tenant_objects`], by tenant: one list request per kind for the whole
/// cluster, for tests with hundreds of tenants.
pub(crate) async fn objects_by_tenant(kube: &kube::Client) -> BTreeMap<String, Vec<String>> {
    let mut all = BTreeMap::new();
    list_labelled::<Namespace>(kube, &mut all).await;
    list_labelled::<ResourceQuota>(kube, &mut all).await;
    list_labelled::<LimitRange>(kube, &mut all).await;
    list_labelled::<NetworkPolicy>(kube, &mut all).await;
    list_labelled::<ServiceAccount>(kube, &mut all).await;
    list_labelled::<Role>(kube, &mut all).await;
    list_labelled::<RoleBinding>(kube, &mut all).await;
    list_labelled::<Deployment>(kube, &mut all).await;
    list_labelled::<StatefulSet>(kube, &mut all).await;
    list_labelled::<Job>(kube, &mut all).await;
    list_labelled::<Service>(kube, &mut all).await;
    list_labelled::<ConfigMap>(kube, &mut all).await;
    list_labelled::<Secret>(kube, &mut all).await;
    list_labelled::<Ingress>(kube, &mut all).await;
    list_labelled::<HorizontalPodAutoscaler>(kube, &mut all).await;
    list_labelled::<PodDisruptionBudget>(kube, &mut all).await;
    for (tenant, name) in list_older_versions(kube, TENANT_LABEL).await {
        all.entry(tenant).or_default().push(name);
    }
    for objects in all.values_mut() {
        objects.sort();
        objects.dedup();
    }
    all
}

/// The Helm release records of `tenant`, oldest first, decoded.
pub(crate) async fn releases(kube: &kube::Client, tenant: &str) -> Vec<Release> {
    let mut out: Vec<Release> =
        Api::<Secret>::namespaced(kube.clone(), &format!("tenant-{tenant}"))
            .list(&ListParams::default().labels(&format!("owner=helm,name={tenant}")))
            .await
            .expect("list release records")
            .items
            .iter()
            .map(|s| decode(&s.data.as_ref().expect("data")["release"].0).expect("a Helm record"))
            .collect();
    out.sort_by_key(|r| r.version);
    out
}

/// What a ready tenant has: the isolation objects, the objects of its deployed
/// release revision's manifest, and the release records. Panics when no
/// revision is deployed.
pub(crate) async fn expected_ready_objects(kube: &kube::Client, tenant: &str) -> Vec<String> {
    let ns = format!("tenant-{tenant}");
    let history = releases(kube, tenant).await;
    let deployed = history
        .iter()
        .rev()
        .find(|r| r.info.status == ReleaseStatus::Deployed)
        .unwrap_or_else(|| panic!("{tenant} has no deployed release: {history:#?}"));
    let mut all = ready_objects(tenant);
    for object in tenant_worker::steps::release::manifest_objects(&deployed.manifest) {
        all.push(format!(
            "{}/{ns}/{}",
            object["kind"].as_str().unwrap(),
            object["metadata"]["name"].as_str().unwrap()
        ));
    }
    for r in &history {
        all.push(format!("Secret/{ns}/{}", r.secret_name()));
    }
    all.sort();
    all
}

/// The isolation objects of a ready tenant (without its release).
pub(crate) fn ready_objects(tenant: &str) -> Vec<String> {
    let ns = format!("tenant-{tenant}");
    let mut v = vec![
        format!("Namespace//{ns}"),
        format!("ResourceQuota/{ns}/tenant-quota"),
        format!("LimitRange/{ns}/tenant-limits"),
        format!("NetworkPolicy/{ns}/tenant-isolation"),
        format!("ServiceAccount/{ns}/tenant-admin"),
        format!("Role/{ns}/tenant-admin"),
        format!("RoleBinding/{ns}/tenant-admin"),
    ];
    v.sort();
    v
}

/// Waits until the tenant's objects are exactly `expected` (a deleted
/// namespace takes a while to go).
pub(crate) async fn wait_objects(kube: &kube::Client, tenant: &str, expected: &[String]) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = tenant_objects(kube, tenant).await;
        if now == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "objects of {tenant}: {now:#?}, expected {expected:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first container of a Deployment's pod template (the application's).
pub(crate) fn first_container(d: &Deployment) -> &k8s_openapi::api::core::v1::Container {
    &d.spec
        .as_ref()
        .expect("a Deployment has a spec")
        .template
        .spec
        .as_ref()
        .expect("a pod template has a spec")
        .containers[0]
}

/// The image of the first container of a Deployment.
pub(crate) fn image_of(d: &Deployment) -> String {
    first_container(d).image.clone().expect("an image")
}
