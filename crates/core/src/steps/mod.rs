//! The steps of a tenant saga, one module each, and what each one owns.
//!
//! A step is one module here plus one arm of [`Step`]. The module builds the
//! step's objects from the tenant and its plan ([`TenantObjects`]); the
//! worker applies them in the order they come, removes them in reverse, and
//! reads them back for drift. Everything else is derived from the enum:
//! [`Step::ALL`] (the saga's order) is the declaration order, every `match`
//! on a step is exhaustive, and the names a chart may not use
//! ([`Step::reserved`]) are the names of the isolation objects. So a new step
//! cannot be forgotten by the saga, by compensation, by the drift check or by
//! the release's checks.

mod limit_range;
mod namespace;
mod network_policy;
mod rbac;
mod resource_quota;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contract::{MANAGED_BY_LABEL, MANAGER, TENANT_LABEL, TenantId};
use crate::plans::Plan;

pub use limit_range::LIMIT_RANGE_NAME;
pub use namespace::PLAN_LABEL;
pub use network_policy::NETWORK_POLICY_NAME;
pub use rbac::{ADMIN_NAME, admin_group};
pub use resource_quota::QUOTA_NAME;

/// One step of a tenant saga. The declaration order is the order a saga
/// applies them in ([`Step::ALL`]); compensation goes in reverse.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::VariantArray,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Step {
    /// The namespace with its ownership and pod-security labels.
    Namespace,
    /// The plan's ResourceQuota.
    ResourceQuota,
    /// The plan's LimitRange.
    LimitRange,
    /// Default-deny NetworkPolicy admitting the gateway.
    NetworkPolicy,
    /// ServiceAccount, Role and RoleBinding for the tenant's admins.
    Rbac,
    /// The tenant's application: a Helm-compatible release of the chart.
    Release,
}

impl Step {
    /// Every step, in the order a saga applies them (the declaration order).
    pub const ALL: &'static [Step] = <Step as strum::VariantArray>::VARIANTS;

    /// The name used in logs, the step log, metrics and `tenant.failed`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The objects the step brings about for the tenant `t`.
    pub fn objects(self, t: &TenantObjects<'_>) -> StepObjects {
        StepObjects::Isolation(match self {
            Self::Namespace => vec![namespace::build(t)],
            Self::ResourceQuota => vec![resource_quota::build(t)],
            Self::LimitRange => vec![limit_range::build(t)],
            Self::NetworkPolicy => vec![network_policy::build(t)],
            Self::Rbac => rbac::build(t),
            Self::Release => return StepObjects::Release,
        })
    }

    /// `(kind, name)` of the namespaced objects the step owns in every
    /// tenant's namespace: a chart may not render one of them.
    pub fn reserved(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Namespace | Self::Release => &[],
            Self::ResourceQuota => &[("ResourceQuota", QUOTA_NAME)],
            Self::LimitRange => &[("LimitRange", LIMIT_RANGE_NAME)],
            Self::NetworkPolicy => &[("NetworkPolicy", NETWORK_POLICY_NAME)],
            Self::Rbac => rbac::RESERVED,
        }
    }

    /// Whether a chart object `kind`/`name` is one a step owns.
    pub fn is_reserved(kind: &str, name: &str) -> bool {
        Self::ALL
            .iter()
            .flat_map(|s| s.reserved())
            .any(|&(k, n)| k == kind && n == name)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a step brings about.
#[derive(Debug, Clone, PartialEq)]
pub enum StepObjects {
    /// Objects built from the tenant and its plan, in apply order.
    Isolation(Vec<IsolationObject>),
    /// The objects of the chart's release: rendered when a saga starts and
    /// recorded in the release's records (the Helm storage format).
    Release,
}

/// An object that isolates a tenant, built by a step. The worker applies
/// each kind with its typed client, and removes it only when it carries the
/// tenant's ownership labels.
#[derive(Debug, Clone, PartialEq)]
pub enum IsolationObject {
    /// The tenant's namespace (cluster-scoped; removing it removes all).
    Namespace(Namespace),
    /// The plan's quota.
    ResourceQuota(ResourceQuota),
    /// The plan's per-container defaults and ceilings.
    LimitRange(LimitRange),
    /// The default-deny policy admitting the gateway.
    NetworkPolicy(NetworkPolicy),
    /// The tenant admins' ServiceAccount.
    ServiceAccount(ServiceAccount),
    /// What tenant admins may do in the namespace.
    Role(Role),
    /// The binding of the Role to the admins.
    RoleBinding(RoleBinding),
}

impl IsolationObject {
    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::Namespace(o) => &o.metadata,
            Self::ResourceQuota(o) => &o.metadata,
            Self::LimitRange(o) => &o.metadata,
            Self::NetworkPolicy(o) => &o.metadata,
            Self::ServiceAccount(o) => &o.metadata,
            Self::Role(o) => &o.metadata,
            Self::RoleBinding(o) => &o.metadata,
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The object as JSON, with `apiVersion` and `kind`.
    pub fn to_value(&self) -> Value {
        let value = match self {
            Self::Namespace(o) => serde_json::to_value(o),
            Self::ResourceQuota(o) => serde_json::to_value(o),
            Self::LimitRange(o) => serde_json::to_value(o),
            Self::NetworkPolicy(o) => serde_json::to_value(o),
            Self::ServiceAccount(o) => serde_json::to_value(o),
            Self::Role(o) => serde_json::to_value(o),
            Self::RoleBinding(o) => serde_json::to_value(o),
        };
        value.expect("Kubernetes objects serialize to JSON")
    }
}

/// What the steps need to know about the tenant to build its objects.
#[derive(Debug, Clone)]
pub struct TenantObjects<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// Its namespace.
    pub namespace: &'a str,
    /// The plan it runs on.
    pub plan: &'a Plan,
    /// Namespace of the routing gateway, admitted by the NetworkPolicy.
    pub gateway_namespace: &'a str,
}

impl TenantObjects<'_> {
    /// Metadata of a namespaced object `name` of the tenant, with the
    /// ownership labels.
    fn meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(self.namespace.to_owned()),
            labels: Some(owner_labels(self.tenant)),
            ..ObjectMeta::default()
        }
    }
}

/// The labels that mark an object as the worker's, for `tenant`.
pub fn owner_labels(tenant: &TenantId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGER.to_owned()),
        (TENANT_LABEL.to_owned(), tenant.to_string()),
    ])
}

/// Whether `meta` carries the worker's ownership labels for `tenant`.
pub fn is_owned_by(meta: &ObjectMeta, tenant: &TenantId) -> bool {
    meta.labels.as_ref().is_some_and(|l| {
        l.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGER)
            && l.get(TENANT_LABEL).map(String::as_str) == Some(tenant.as_str())
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plans::PlanCatalog;

    /// Calls `f` with the objects input of tenant `acme` on plan `standard`.
    pub(crate) fn with_tenant<R>(f: impl FnOnce(&TenantObjects<'_>) -> R) -> R {
        let catalog = PlanCatalog::load(None).unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        f(&TenantObjects {
            tenant: &tenant,
            namespace: "tenant-acme",
            plan: catalog.get("standard").unwrap(),
            gateway_namespace: "gateway",
        })
    }

    fn isolation(step: Step) -> Vec<IsolationObject> {
        match with_tenant(|t| step.objects(t)) {
            StepObjects::Isolation(objects) => objects,
            StepObjects::Release => Vec::new(),
        }
    }

    #[test]
    fn steps_run_in_declaration_order_and_keep_their_wire_names() {
        let names: Vec<&str> = Step::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "namespace",
                "resource_quota",
                "limit_range",
                "network_policy",
                "rbac",
                "release"
            ]
        );
        for step in Step::ALL {
            let json = serde_json::to_value(step).unwrap();
            assert_eq!(json, step.as_str(), "the step log's name is the metric's");
            assert_eq!(step.as_str().parse::<Step>().unwrap(), *step);
        }
    }

    #[test]
    fn every_isolation_object_is_owned_and_in_the_tenant_namespace() {
        let tenant = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("other").unwrap();
        for step in Step::ALL {
            for object in isolation(*step) {
                let meta = object.metadata();
                assert!(is_owned_by(meta, &tenant), "{step}: {:?}", meta.name);
                assert!(!is_owned_by(meta, &other));
                if !matches!(object, IsolationObject::Namespace(_)) {
                    assert_eq!(meta.namespace.as_deref(), Some("tenant-acme"));
                }
            }
        }
    }

    #[test]
    fn the_reserved_names_are_the_names_of_the_namespaced_objects() {
        for step in Step::ALL {
            let built: Vec<(String, String)> = isolation(*step)
                .iter()
                .filter(|o| !matches!(o, IsolationObject::Namespace(_)))
                .map(|o| {
                    let v = o.to_value();
                    (v["kind"].as_str().unwrap().to_owned(), o.name().to_owned())
                })
                .collect();
            let reserved: Vec<(String, String)> = step
                .reserved()
                .iter()
                .map(|(k, n)| ((*k).to_owned(), (*n).to_owned()))
                .collect();
            assert_eq!(built, reserved, "{step}");
        }
        assert!(Step::is_reserved("Role", ADMIN_NAME));
        assert!(!Step::is_reserved("ConfigMap", ADMIN_NAME));
    }
}
