//! Step `namespace`: the tenant's namespace, labelled with the tenant, the
//! manager and the `restricted` pod security standard.

use super::StepContext;
use crate::cluster::ClusterError;
use crate::cluster::objects::build_namespace;

/// Applies the namespace; refuses a namespace of that name that is not ours.
pub(super) async fn apply(ctx: &StepContext<'_>) -> Result<(), ClusterError> {
    ctx.cluster
        .apply_namespace(ctx.tenant, &build_namespace(&ctx.objects()))
        .await
}

/// Starts deleting the namespace if it is ours (everything in it goes with it).
pub(super) async fn compensate(ctx: &StepContext<'_>) -> Result<(), ClusterError> {
    ctx.cluster.delete_namespace(ctx.tenant).await.map(|_| ())
}
