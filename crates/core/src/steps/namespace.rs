//! Step `namespace`: the tenant's namespace, labelled with the tenant, the
//! manager, the plan and the `restricted` pod security standard. Removing it
//! removes everything in it.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{IsolationObject, TenantObjects, owner_labels};

/// Label carrying the tenant's plan on its namespace.
pub const PLAN_LABEL: &str = "tenant-worker/plan";

/// The tenant's namespace, enforcing the `restricted` pod security standard.
pub(super) fn build(t: &TenantObjects<'_>) -> IsolationObject {
    let mut labels = owner_labels(t.tenant);
    labels.insert(PLAN_LABEL.into(), t.plan.name.clone());
    for mode in ["enforce", "audit", "warn"] {
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            "restricted".into(),
        );
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}-version"),
            "latest".into(),
        );
    }
    IsolationObject::Namespace(Namespace {
        metadata: ObjectMeta {
            name: Some(t.namespace.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{MANAGED_BY_LABEL, MANAGER, TENANT_LABEL};
    use crate::steps::tests::with_tenant;

    #[test]
    fn the_namespace_enforces_restricted_and_is_labelled() {
        let IsolationObject::Namespace(ns) = with_tenant(build) else {
            panic!("a namespace");
        };
        let labels = ns.metadata.labels.unwrap();
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGER);
        assert_eq!(labels[TENANT_LABEL], "acme");
        assert_eq!(labels[PLAN_LABEL], "standard");
        assert_eq!(ns.metadata.name.as_deref(), Some("tenant-acme"));
    }
}
