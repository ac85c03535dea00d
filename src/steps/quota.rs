//! Step `resource_quota`: the plan's ResourceQuota (`tenant-quota`).

use k8s_openapi::api::core::v1::ResourceQuota;

use super::StepContext;
use crate::cluster::ClusterError;
use crate::cluster::objects::{QUOTA_NAME, build_resource_quota};

pub(super) async fn apply(ctx: &StepContext<'_>) -> Result<(), ClusterError> {
    ctx.cluster
        .apply(ctx.tenant, &build_resource_quota(&ctx.objects()))
        .await
}

pub(super) async fn compensate(ctx: &StepContext<'_>) -> Result<(), ClusterError> {
    ctx.cluster
        .delete_owned::<ResourceQuota>(ctx.tenant, ctx.namespace, QUOTA_NAME)
        .await
}
