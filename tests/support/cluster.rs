//! What a user would check in the cluster: the objects labelled for a tenant.

use std::time::Duration;

use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tenant_worker::contract::TENANT_LABEL;

use super::PATIENCE;

async fn list<K>(kube: &kube::Client, selector: &str) -> Vec<String>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    Api::<K>::all(kube.clone())
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list")
        .items
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

/// Every object in the cluster labelled for `tenant`, as `Kind/namespace/name`, sorted.
pub async fn tenant_objects(kube: &kube::Client, tenant: &str) -> Vec<String> {
    let selector = format!("{TENANT_LABEL}={tenant}");
    let mut all = list::<Namespace>(kube, &selector).await;
    all.extend(list::<ResourceQuota>(kube, &selector).await);
    all.extend(list::<LimitRange>(kube, &selector).await);
    all.extend(list::<NetworkPolicy>(kube, &selector).await);
    all.extend(list::<ServiceAccount>(kube, &selector).await);
    all.extend(list::<Role>(kube, &selector).await);
    all.extend(list::<RoleBinding>(kube, &selector).await);
    all.sort();
    all
}

/// The objects a ready tenant has.
pub fn ready_objects(tenant: &str) -> Vec<String> {
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
pub async fn wait_objects(kube: &kube::Client, tenant: &str, expected: &[String]) {
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
