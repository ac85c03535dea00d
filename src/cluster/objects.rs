//! Pure builders of the Kubernetes objects that isolate a tenant: one function
//! per object, from the tenant and its plan, with no IO (unit-tested below).
//!
//! Every object carries the ownership labels ([`owner_labels`]) and sets every
//! default that matters explicitly, because real API servers are stricter under
//! server-side apply than the embedded one (e.g. a NetworkPolicy port's protocol).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::contract::{MANAGED_BY_LABEL, MANAGER, TENANT_LABEL, TenantId};
use crate::plans::Plan;

/// Name of the tenant's ResourceQuota.
pub const QUOTA_NAME: &str = "tenant-quota";
/// Name of the tenant's LimitRange.
pub const LIMIT_RANGE_NAME: &str = "tenant-limits";
/// Name of the tenant's NetworkPolicy.
pub const NETWORK_POLICY_NAME: &str = "tenant-isolation";
/// Name of the ServiceAccount, Role and RoleBinding for the tenant's admins.
pub const ADMIN_NAME: &str = "tenant-admin";
/// Label carrying the tenant's plan on its namespace.
pub const PLAN_LABEL: &str = "tenant-worker/plan";

/// What the builders need to know about the tenant.
#[derive(Debug, Clone)]
pub struct TenantObjects<'a> {
    pub tenant: &'a TenantId,
    pub namespace: &'a str,
    pub plan: &'a Plan,
    /// Namespace of the routing gateway, admitted by the NetworkPolicy.
    pub gateway_namespace: &'a str,
}

/// The labels that mark an object as the worker's, for `tenant`.
pub fn owner_labels(tenant: &TenantId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGER.to_owned()),
        (TENANT_LABEL.to_owned(), tenant.to_string()),
    ])
}

/// The label selector that finds the worker's objects of `tenant`.
pub fn owner_selector(tenant: &TenantId) -> String {
    format!("{MANAGED_BY_LABEL}={MANAGER},{TENANT_LABEL}={tenant}")
}

/// Whether `meta` carries the worker's ownership labels for `tenant`.
pub fn is_owned_by(meta: &ObjectMeta, tenant: &TenantId) -> bool {
    meta.labels.as_ref().is_some_and(|l| {
        l.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGER)
            && l.get(TENANT_LABEL).map(String::as_str) == Some(tenant.as_str())
    })
}

fn meta(t: &TenantObjects<'_>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(t.namespace.to_owned()),
        labels: Some(owner_labels(t.tenant)),
        ..ObjectMeta::default()
    }
}

fn quantities(amounts: &BTreeMap<String, String>) -> BTreeMap<String, Quantity> {
    amounts
        .iter()
        .map(|(k, v)| (k.clone(), Quantity(v.clone())))
        .collect()
}

/// The tenant's namespace, enforcing the `restricted` pod security standard.
pub fn build_namespace(t: &TenantObjects<'_>) -> Namespace {
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
    Namespace {
        metadata: ObjectMeta {
            name: Some(t.namespace.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The plan's quota: what the tenant may use in total, and what billing meters.
pub fn build_resource_quota(t: &TenantObjects<'_>) -> ResourceQuota {
    ResourceQuota {
        metadata: meta(t, QUOTA_NAME),
        spec: Some(ResourceQuotaSpec {
            hard: Some(quantities(&t.plan.quota)),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    }
}

/// Per-container defaults and ceilings, so pods without resources still fit the quota.
pub fn build_limit_range(t: &TenantObjects<'_>) -> LimitRange {
    let limits = &t.plan.container_limits;
    LimitRange {
        metadata: meta(t, LIMIT_RANGE_NAME),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default: Some(quantities(&limits.default)),
                default_request: Some(quantities(&limits.default_request)),
                max: Some(quantities(&limits.max)),
                ..LimitRangeItem::default()
            }],
        }),
    }
}

fn namespace_peer(namespace: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                namespace.to_owned(),
            )])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}

fn same_namespace_peer() -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    }
}

/// Default deny in both directions, then: ingress from the tenant's own pods and
/// from the gateway namespace; egress to the tenant's own pods and to cluster DNS.
pub fn build_network_policy(t: &TenantObjects<'_>) -> NetworkPolicy {
    let dns_port = |protocol: &str| NetworkPolicyPort {
        port: Some(IntOrString::Int(53)),
        protocol: Some(protocol.to_owned()),
        ..NetworkPolicyPort::default()
    };
    NetworkPolicy {
        metadata: meta(t, NETWORK_POLICY_NAME),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![
                    same_namespace_peer(),
                    namespace_peer(t.gateway_namespace),
                ]),
                ..NetworkPolicyIngressRule::default()
            }]),
            egress: Some(vec![
                NetworkPolicyEgressRule {
                    to: Some(vec![same_namespace_peer()]),
                    ..NetworkPolicyEgressRule::default()
                },
                NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector::default()),
                        pod_selector: Some(LabelSelector {
                            match_labels: Some(BTreeMap::from([(
                                "k8s-app".to_owned(),
                                "kube-dns".to_owned(),
                            )])),
                            ..LabelSelector::default()
                        }),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![dns_port("UDP"), dns_port("TCP")]),
                },
            ]),
        }),
    }
}

/// The ServiceAccount the tenant's admins (and their automation) act as.
pub fn build_service_account(t: &TenantObjects<'_>) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(t, ADMIN_NAME),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// What a tenant admin may do inside the namespace: operate the application
/// (read everything, restart and scale workloads, read logs), but not change
/// isolation (quota, limits, network policy, RBAC are the worker's).
pub fn build_role(t: &TenantObjects<'_>) -> Role {
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(groups.iter().map(|s| (*s).to_owned()).collect()),
        resources: Some(resources.iter().map(|s| (*s).to_owned()).collect()),
        verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
        ..PolicyRule::default()
    };
    let read = ["get", "list", "watch"];
    Role {
        metadata: meta(t, ADMIN_NAME),
        rules: Some(vec![
            rule(
                &[""],
                &[
                    "pods",
                    "services",
                    "endpoints",
                    "configmaps",
                    "events",
                    "persistentvolumeclaims",
                    "resourcequotas",
                    "limitranges",
                ],
                &read,
            ),
            rule(&[""], &["pods/log"], &["get"]),
            rule(&[""], &["pods"], &["delete"]),
            rule(
                &["apps"],
                &["deployments", "statefulsets", "replicasets"],
                &read,
            ),
            rule(&["apps"], &["deployments", "statefulsets"], &["patch"]),
            rule(
                &["apps"],
                &["deployments/scale", "statefulsets/scale"],
                &["get", "update", "patch"],
            ),
            rule(&["batch"], &["jobs", "cronjobs"], &read),
            rule(
                &["networking.k8s.io"],
                &["ingresses", "networkpolicies"],
                &read,
            ),
        ]),
    }
}

/// Binds the admin Role to the ServiceAccount and to the group
/// `tenant-worker:<tenant>:admins`, which an identity provider can map people to.
pub fn build_role_binding(t: &TenantObjects<'_>) -> RoleBinding {
    RoleBinding {
        metadata: meta(t, ADMIN_NAME),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: ADMIN_NAME.into(),
        },
        subjects: Some(vec![
            Subject {
                kind: "ServiceAccount".into(),
                name: ADMIN_NAME.into(),
                namespace: Some(t.namespace.to_owned()),
                ..Subject::default()
            },
            Subject {
                kind: "Group".into(),
                name: admin_group(t.tenant),
                api_group: Some("rbac.authorization.k8s.io".into()),
                ..Subject::default()
            },
        ]),
    }
}

/// The group whose members administer `tenant`.
pub fn admin_group(tenant: &TenantId) -> String {
    format!("tenant-worker:{tenant}:admins")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plans::PlanCatalog;

    fn with_tenant<R>(f: impl FnOnce(&TenantObjects<'_>) -> R) -> R {
        let catalog = PlanCatalog::load(None).unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        f(&TenantObjects {
            tenant: &tenant,
            namespace: "tenant-acme",
            plan: catalog.get("standard").unwrap(),
            gateway_namespace: "gateway",
        })
    }

    #[test]
    fn namespace_enforces_restricted_and_is_labelled() {
        let ns = with_tenant(build_namespace);
        let labels = ns.metadata.labels.unwrap();
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGER);
        assert_eq!(labels[TENANT_LABEL], "acme");
        assert_eq!(labels[PLAN_LABEL], "standard");
        assert_eq!(ns.metadata.name.as_deref(), Some("tenant-acme"));
    }

    #[test]
    fn quota_and_limits_come_from_the_plan() {
        let quota = with_tenant(build_resource_quota);
        let hard = quota.spec.unwrap().hard.unwrap();
        assert_eq!(hard["limits.cpu"], Quantity("4".into()));
        assert_eq!(hard["pods"], Quantity("20".into()));
        let lr = with_tenant(build_limit_range);
        let item = &lr.spec.unwrap().limits[0];
        assert_eq!(item.type_, "Container");
        assert_eq!(item.max.as_ref().unwrap()["memory"], Quantity("4Gi".into()));
    }

    #[test]
    fn network_policy_denies_by_default_and_admits_the_gateway() {
        let np = with_tenant(build_network_policy);
        let spec = np.spec.unwrap();
        assert_eq!(
            spec.policy_types.as_deref(),
            Some(&["Ingress".to_owned(), "Egress".to_owned()][..])
        );
        let from = spec.ingress.unwrap()[0].from.clone().unwrap();
        assert!(from.iter().any(|p| {
            p.namespace_selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref())
                .is_some_and(|l| l["kubernetes.io/metadata.name"] == "gateway")
        }));
        let egress = spec.egress.unwrap();
        let ports = egress[1].ports.clone().unwrap();
        assert!(
            ports.iter().all(|p| p.protocol.is_some()),
            "protocol set explicitly"
        );
    }

    #[test]
    fn every_object_is_owned() {
        let tenant = TenantId::parse("acme").unwrap();
        with_tenant(|t| {
            for meta in [
                build_namespace(t).metadata,
                build_resource_quota(t).metadata,
                build_limit_range(t).metadata,
                build_network_policy(t).metadata,
                build_service_account(t).metadata,
                build_role(t).metadata,
                build_role_binding(t).metadata,
            ] {
                assert!(is_owned_by(&meta, &tenant), "{:?}", meta.name);
            }
        });
        let other = TenantId::parse("other").unwrap();
        assert!(!is_owned_by(&with_tenant(build_namespace).metadata, &other));
    }

    #[test]
    fn role_binding_names_sa_and_group() {
        let rb = with_tenant(build_role_binding);
        let subjects = rb.subjects.unwrap();
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(subjects[1].name, "tenant-worker:acme:admins");
    }
}
