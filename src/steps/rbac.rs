//! Step `rbac`: the ServiceAccount, Role and RoleBinding (`tenant-admin`) for
//! the tenant's admins.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};

use super::StepContext;
use crate::cluster::ClusterError;
use crate::cluster::objects::{ADMIN_NAME, build_role, build_role_binding, build_service_account};

pub(super) async fn apply(ctx: &StepContext<'_>) -> Result<(), ClusterError> {
    let objects = ctx.objects();
    ctx.cluster
        .apply(ctx.tenant, &build_service_account(&objects))
        .await?;
    ctx.cluster.apply(ctx.tenant, &build_role(&objects)).await?;
    ctx.cluster
        .apply(ctx.tenant, &build_role_binding(&objects))
        .await
}

/// Removes the binding first, so no subject keeps rights to a half-removed role.
pub(super) async fn compensate(ctx: &StepContext<'_>) -> Result<(), ClusterError> {
    let (tenant, ns) = (ctx.tenant, ctx.namespace);
    ctx.cluster
        .delete_owned::<RoleBinding>(tenant, ns, ADMIN_NAME)
        .await?;
    ctx.cluster
        .delete_owned::<Role>(tenant, ns, ADMIN_NAME)
        .await?;
    ctx.cluster
        .delete_owned::<ServiceAccount>(tenant, ns, ADMIN_NAME)
        .await
}
