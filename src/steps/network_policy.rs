//! Step `network_policy`: the default-deny NetworkPolicy (`tenant-isolation`) admitting the tenant's own pods and the gateway.

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::StepContext;
use crate::cluster::ClusterError;
use crate::cluster::objects::{NETWORK_POLICY_NAME, build_network_policy};

pub(super) async fn apply(ctx: &StepContext<'_>) -> Result<(), ClusterError> {
    ctx.cluster
        .apply(ctx.tenant, &build_network_policy(&ctx.objects()))
        .await
}

pub(super) async fn compensate(ctx: &StepContext<'_>) -> Result<(), ClusterError> {
    ctx.cluster
        .delete_owned::<NetworkPolicy>(ctx.tenant, ctx.namespace, NETWORK_POLICY_NAME)
        .await
}
