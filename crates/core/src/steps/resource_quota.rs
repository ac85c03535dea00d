//! Step `resource_quota`: the plan's ResourceQuota (`tenant-quota`): what the
//! tenant may use in total, and what billing meters.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{IsolationObject, TenantObjects};

/// Name of the tenant's ResourceQuota.
pub const QUOTA_NAME: &str = "tenant-quota";

pub(super) fn build(t: &TenantObjects<'_>) -> IsolationObject {
    IsolationObject::ResourceQuota(ResourceQuota {
        metadata: t.meta(QUOTA_NAME),
        spec: Some(ResourceQuotaSpec {
            hard: Some(quantities(&t.plan.quota)),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    })
}

/// A plan's resource amounts as Kubernetes quantities (the plan catalogue
/// validated them when it was loaded).
pub(super) fn quantities(amounts: &BTreeMap<String, String>) -> BTreeMap<String, Quantity> {
    amounts
        .iter()
        .map(|(k, v)| (k.clone(), Quantity(v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::tests::with_tenant;

    #[test]
    fn the_quota_is_the_plan_s() {
        let IsolationObject::ResourceQuota(quota) = with_tenant(build) else {
            panic!("a quota");
        };
        let hard = quota.spec.unwrap().hard.unwrap();
        assert_eq!(hard["limits.cpu"], Quantity("4".into()));
        assert_eq!(hard["pods"], Quantity("20".into()));
    }
}
