//! Step `limit_range`: the plan's per-container LimitRange (`tenant-limits`).

use k8s_openapi::api::core::v1::LimitRange;

use super::StepContext;
use crate::cluster::ClusterError;
use crate::cluster::objects::{LIMIT_RANGE_NAME, build_limit_range};

pub(super) async fn apply(ctx: &StepContext<'_>) -> Result<(), ClusterError> {
    ctx.cluster
        .apply(ctx.tenant, &build_limit_range(&ctx.objects()))
        .await
}

pub(super) async fn compensate(ctx: &StepContext<'_>) -> Result<(), ClusterError> {
    ctx.cluster
        .delete_owned::<LimitRange>(ctx.tenant, ctx.namespace, LIMIT_RANGE_NAME)
        .await
}
