//! Step `rbac`: the ServiceAccount, Role and RoleBinding (`tenant-admin`) for
//! the tenant's admins. They are removed in reverse (the binding first), so
//! no subject keeps rights to a half-removed role.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::{IsolationObject, TenantObjects};
use crate::contract::TenantId;

/// Name of the ServiceAccount, Role and RoleBinding for the tenant's admins.
pub const ADMIN_NAME: &str = "tenant-admin";

/// The objects of [`build`], by kind and name.
pub(super) const RESERVED: &[(&str, &str)] = &[
    ("ServiceAccount", ADMIN_NAME),
    ("Role", ADMIN_NAME),
    ("RoleBinding", ADMIN_NAME),
];

/// The ServiceAccount, the Role, and the binding of one to the other, in
/// that order.
pub(super) fn build(t: &TenantObjects<'_>) -> Vec<IsolationObject> {
    vec![
        IsolationObject::ServiceAccount(service_account(t)),
        IsolationObject::Role(role(t)),
        IsolationObject::RoleBinding(role_binding(t)),
    ]
}

/// The ServiceAccount the tenant's admins (and their automation) act as.
fn service_account(t: &TenantObjects<'_>) -> ServiceAccount {
    ServiceAccount {
        metadata: t.meta(ADMIN_NAME),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// What a tenant admin may do inside the namespace: operate the application
/// (read everything, restart and scale workloads, read logs), but not change
/// isolation (quota, limits, network policy, RBAC are the worker's).
fn role(t: &TenantObjects<'_>) -> Role {
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(groups.iter().map(|s| (*s).to_owned()).collect()),
        resources: Some(resources.iter().map(|s| (*s).to_owned()).collect()),
        verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
        ..PolicyRule::default()
    };
    let read = ["get", "list", "watch"];
    Role {
        metadata: t.meta(ADMIN_NAME),
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
fn role_binding(t: &TenantObjects<'_>) -> RoleBinding {
    RoleBinding {
        metadata: t.meta(ADMIN_NAME),
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
    use crate::steps::tests::with_tenant;

    #[test]
    fn the_binding_names_the_service_account_and_the_admins_group() {
        let rb = with_tenant(role_binding);
        let subjects = rb.subjects.unwrap();
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(subjects[1].name, "tenant-worker:acme:admins");
    }
}
