//! Step `limit_range`: the plan's LimitRange (`tenant-limits`): per-container
//! defaults and ceilings, so pods without resources still fit the quota.

use k8s_openapi::api::core::v1::{LimitRange, LimitRangeItem, LimitRangeSpec};

use super::resource_quota::quantities;
use super::{IsolationObject, TenantObjects};

/// Name of the tenant's LimitRange.
pub const LIMIT_RANGE_NAME: &str = "tenant-limits";

pub(super) fn build(t: &TenantObjects<'_>) -> IsolationObject {
    let limits = &t.plan.container_limits;
    IsolationObject::LimitRange(LimitRange {
        metadata: t.meta(LIMIT_RANGE_NAME),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default: Some(quantities(&limits.default)),
                default_request: Some(quantities(&limits.default_request)),
                max: Some(quantities(&limits.max)),
                ..LimitRangeItem::default()
            }],
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::tests::with_tenant;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    #[test]
    fn the_container_limits_are_the_plan_s() {
        let IsolationObject::LimitRange(lr) = with_tenant(build) else {
            panic!("a limit range");
        };
        let item = &lr.spec.unwrap().limits[0];
        assert_eq!(item.type_, "Container");
        assert_eq!(item.max.as_ref().unwrap()["memory"], Quantity("4Gi".into()));
    }
}
