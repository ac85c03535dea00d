//! Runs the saga's steps against the cluster. What the steps are, and the
//! objects each one owns, is the domain's ([`tenant_core::steps`]); this
//! module applies a step's objects in order, removes them in reverse, and
//! hands the release step to [`release`].
//!
//! # Guarantees
//! Every step's `apply` and `compensate` are idempotent, tolerate running twice,
//! and tolerate the other never having run. `compensate` only removes objects that
//! carry the worker's labels for the tenant.

pub mod release;

use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};

pub use tenant_core::steps::*;

use crate::cluster::{Cluster, ClusterError};
use crate::plans::Plan;
use release::ReleaseSpec;

/// Brings `step`'s objects to the desired state; the release step installs
/// or upgrades to `release`, the revision the saga rendered.
///
/// # Errors
/// [`ClusterError`]; `is_transient` says whether a retry can succeed.
pub async fn apply(
    step: Step,
    ctx: &StepContext<'_>,
    release: &ReleaseSpec,
) -> Result<(), ClusterError> {
    match step.objects(&ctx.tenant) {
        StepObjects::Isolation(objects) => apply_isolation(ctx, &objects).await,
        StepObjects::Release => release::apply(ctx, release).await,
    }
}

/// Undoes `step`: removes the objects it creates, if they are ours (the last
/// first); the release step uninstalls.
///
/// # Errors
/// [`ClusterError`]; an object that is not ours is left alone and reported.
pub async fn compensate(step: Step, ctx: &StepContext<'_>) -> Result<(), ClusterError> {
    match step.objects(&ctx.tenant) {
        StepObjects::Isolation(objects) => {
            for object in objects.iter().rev() {
                remove(ctx, object).await?;
            }
            Ok(())
        }
        StepObjects::Release => release::uninstall(ctx).await,
    }
}

/// Undoes `step` for a tenant that was live on `previous`: puts back what it
/// ran before (the previous plan's objects; for the release, a rollback to
/// the last good revision).
///
/// # Errors
/// [`ClusterError`]; `is_transient` says whether a retry can succeed.
pub async fn roll_back(
    step: Step,
    ctx: &StepContext<'_>,
    previous: &Plan,
) -> Result<(), ClusterError> {
    let ctx = StepContext {
        cluster: ctx.cluster,
        tenant: TenantObjects {
            plan: previous,
            ..ctx.tenant.clone()
        },
    };
    match step.objects(&ctx.tenant) {
        StepObjects::Isolation(objects) => apply_isolation(&ctx, &objects).await,
        StepObjects::Release => release::rollback(&ctx, previous.readiness_timeout()).await,
    }
}

/// Server-side applies isolation objects in order; the namespace only if it
/// is absent or ours.
///
/// # Errors
/// As [`Cluster::apply`] and [`Cluster::apply_namespace`].
pub async fn apply_isolation(
    ctx: &StepContext<'_>,
    objects: &[IsolationObject],
) -> Result<(), ClusterError> {
    let (cluster, tenant) = (ctx.cluster, ctx.tenant.tenant);
    for object in objects {
        match object {
            IsolationObject::Namespace(o) => cluster.apply_namespace(tenant, o).await,
            IsolationObject::ResourceQuota(o) => cluster.apply(tenant, o).await,
            IsolationObject::LimitRange(o) => cluster.apply(tenant, o).await,
            IsolationObject::NetworkPolicy(o) => cluster.apply(tenant, o).await,
            IsolationObject::ServiceAccount(o) => cluster.apply(tenant, o).await,
            IsolationObject::Role(o) => cluster.apply(tenant, o).await,
            IsolationObject::RoleBinding(o) => cluster.apply(tenant, o).await,
        }?;
    }
    Ok(())
}

/// Deletes one isolation object if it is ours; the namespace (and so
/// everything in it) starts terminating.
async fn remove(ctx: &StepContext<'_>, object: &IsolationObject) -> Result<(), ClusterError> {
    let (cluster, tenant, ns) = (ctx.cluster, ctx.tenant.tenant, ctx.tenant.namespace);
    let name = object.name();
    match object {
        IsolationObject::Namespace(_) => cluster.delete_namespace(tenant).await.map(drop),
        IsolationObject::ResourceQuota(_) => {
            cluster
                .delete_owned::<ResourceQuota>(tenant, ns, name)
                .await
        }
        IsolationObject::LimitRange(_) => {
            cluster.delete_owned::<LimitRange>(tenant, ns, name).await
        }
        IsolationObject::NetworkPolicy(_) => {
            cluster
                .delete_owned::<NetworkPolicy>(tenant, ns, name)
                .await
        }
        IsolationObject::ServiceAccount(_) => {
            cluster
                .delete_owned::<ServiceAccount>(tenant, ns, name)
                .await
        }
        IsolationObject::Role(_) => cluster.delete_owned::<Role>(tenant, ns, name).await,
        IsolationObject::RoleBinding(_) => {
            cluster.delete_owned::<RoleBinding>(tenant, ns, name).await
        }
    }
}

/// What a step needs: the cluster, and the tenant with the plan it is
/// brought to.
#[derive(Clone)]
pub struct StepContext<'a> {
    /// The cluster the tenant lives on.
    pub cluster: &'a Cluster,
    /// The tenant, its namespace, the plan and the gateway namespace.
    pub tenant: TenantObjects<'a>,
}
