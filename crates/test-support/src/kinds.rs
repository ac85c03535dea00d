//! Kinds a tenant's release can hold that Kubernetes 1.20 serves only in
//! versions older than the typed API (k8s-openapi's 1.33) knows.

use kube::api::{ApiResource, GroupVersionKind};

/// PodDisruptionBudget in `policy/v1beta1` and HorizontalPodAutoscaler in
/// `autoscaling/v2beta2`: what a chart gated on `.Capabilities.APIVersions`
/// creates on a 1.20 cluster, where `policy/v1` and `autoscaling/v2` are not
/// served. A listing of one of these on a newer cluster may answer 404 (no
/// longer served) or list the same objects as the newer version does.
pub fn older_versions() -> [ApiResource; 2] {
    let resource = |group, version, kind, plural| {
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
    };
    [
        resource(
            "policy",
            "v1beta1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
        ),
        resource(
            "autoscaling",
            "v2beta2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
        ),
    ]
}
