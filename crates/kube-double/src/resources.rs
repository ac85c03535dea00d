//! The static table of resources the embedded API serves.
//!
//! Everything else (routing, discovery, validation, tables) looks resources up
//! here, so adding a resource is one new row plus, if it needs one, a typed
//! validation arm in `validation.rs` and columns in `table.rs`.

/// One REST resource: where it lives in the URL space and what discovery says about it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ResourceDef {
    /// API group; `""` is the legacy core group served under `/api`.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The URL segment, e.g. `networkpolicies`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    /// What kubectl accepts as abbreviations (`netpol`, `sa`, ...).
    pub short_names: &'static [&'static str],
    /// Discovery categories; `all` makes `kubectl get all` include the resource.
    pub categories: &'static [&'static str],
    /// Whether a real server has a `/status` subresource, which means `status`
    /// sent to the main resource is ignored.
    pub has_status: bool,
}

impl ResourceDef {
    /// `v1` for the core group, `group/version` otherwise.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural` for core, `plural.group` otherwise: how real servers name a
    /// resource in error messages (`deployments.apps "web" not found`).
    pub(crate) fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub(crate) fn is(&self, group: &str, kind: &str) -> bool {
        self.group == group && self.kind == kind
    }
}

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

macro_rules! res {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $namespaced:expr, $short:expr, $cat:expr, $status:expr) => {
        ResourceDef {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $namespaced,
            short_names: $short,
            categories: $cat,
            has_status: $status,
        }
    };
}

/// Every resource served. Order is the order discovery lists them in.
/// Columns: group, version, kind, plural, singular, namespaced, short names,
/// categories, has a status subresource.
#[rustfmt::skip]
pub(crate) static RESOURCES: &[ResourceDef] = &[
    res!("", "v1", "Namespace", "namespaces", "namespace", false, &["ns"], NONE, true),
    res!("", "v1", "ConfigMap", "configmaps", "configmap", true, &["cm"], NONE, false),
    res!("", "v1", "Secret", "secrets", "secret", true, NONE, NONE, false),
    res!("", "v1", "Service", "services", "service", true, &["svc"], ALL, true),
    res!("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, &["sa"], NONE, false),
    res!("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", true, &["quota"], NONE, true),
    res!("", "v1", "LimitRange", "limitranges", "limitrange", true, &["limits"], NONE, false),
    res!("", "v1", "Pod", "pods", "pod", true, &["po"], ALL, true),
    res!("", "v1", "Event", "events", "event", true, &["ev"], NONE, false),
    res!("apps", "v1", "Deployment", "deployments", "deployment", true, &["deploy"], ALL, true),
    res!("apps", "v1", "StatefulSet", "statefulsets", "statefulset", true, &["sts"], ALL, true),
    res!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, &["rs"], ALL, true),
    res!("batch", "v1", "Job", "jobs", "job", true, NONE, ALL, true),
    res!("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", true, &["netpol"], NONE, false),
    res!("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", true, &["ing"], NONE, true),
    res!("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", true, NONE, NONE, false),
    res!("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", true, NONE, NONE, false),
    res!("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", false, NONE, NONE, false),
    res!("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", false, NONE, NONE, false),
    res!("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", true, &["hpa"], ALL, true),
    res!("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", true, &["pdb"], NONE, true),
];

/// The resource served at `group/version/plural`, if any.
pub(crate) fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The `Namespace` resource, which namespace checks need everywhere.
pub(crate) fn namespaces() -> &'static ResourceDef {
    &RESOURCES[0]
}

/// Index of a resource in [`RESOURCES`]; the store keys objects by it.
pub(crate) fn index_of(res: &'static ResourceDef) -> usize {
    RESOURCES
        .iter()
        .position(|r| std::ptr::eq(r, res))
        .expect("resource defs only come from RESOURCES")
}

/// `(group, versions)` in discovery order, without the core group.
pub(crate) fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        assert_eq!(namespaces().kind, "Namespace");
        for r in RESOURCES {
            assert!(std::ptr::eq(find(r.group, r.version, r.plural).unwrap(), r));
            assert_eq!(r.singular, r.kind.to_lowercase());
        }
        assert_eq!(
            find("apps", "v1", "deployments").unwrap().kind,
            "Deployment"
        );
        assert!(find("", "v1", "deployments").is_none());
        assert_eq!(index_of(find("", "v1", "secrets").unwrap()), 2);
    }

    #[test]
    fn groups_are_listed_once() {
        let gs = groups();
        assert_eq!(gs.iter().filter(|(g, _)| *g == "apps").count(), 1);
        assert!(gs.iter().any(|(g, v)| *g == "autoscaling" && v == &["v2"]));
    }
}
