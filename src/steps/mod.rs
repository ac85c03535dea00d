//! The saga steps of a tenant, one module each, and the compiler-checked list
//! of them: [`Step`] is an enum and every `match` on it is exhaustive, so a new
//! step cannot be forgotten by `apply` or by compensation.
//!
//! # Guarantees
//! Every step's `apply` and `compensate` are idempotent, tolerate running twice,
//! and tolerate the other never having run. `compensate` only removes objects that
//! carry the worker's labels for the tenant.

mod limit_range;
mod namespace;
mod network_policy;
mod quota;
mod rbac;
pub mod release;

use serde::{Deserialize, Serialize};

use crate::cluster::objects::TenantObjects;
use crate::cluster::{Cluster, ClusterError};
use crate::contract::TenantId;
use crate::plans::Plan;

/// One step of a tenant saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The namespace with its ownership and pod-security labels.
    Namespace,
    /// The plan's ResourceQuota.
    ResourceQuota,
    /// The plan's LimitRange.
    LimitRange,
    /// Default-deny NetworkPolicy admitting the gateway.
    NetworkPolicy,
    /// ServiceAccount, Role and RoleBinding for the tenant's admins.
    Rbac,
    /// The tenant's application: a Helm-compatible release of the chart.
    Release,
}

impl Step {
    /// The steps that provision (or re-size) a tenant, in order.
    pub const PROVISION: [Step; 6] = [
        Step::Namespace,
        Step::ResourceQuota,
        Step::LimitRange,
        Step::NetworkPolicy,
        Step::Rbac,
        Step::Release,
    ];

    /// The name used in logs, the step log and `tenant.failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Namespace => "namespace",
            Self::ResourceQuota => "resource_quota",
            Self::LimitRange => "limit_range",
            Self::NetworkPolicy => "network_policy",
            Self::Rbac => "rbac",
            Self::Release => "release",
        }
    }

    /// Brings the step's objects to the desired state.
    ///
    /// # Errors
    /// [`ClusterError`]; `is_transient` says whether a retry can succeed.
    pub async fn apply(self, ctx: &StepContext<'_>) -> Result<(), ClusterError> {
        match self {
            Self::Namespace => namespace::apply(ctx).await,
            Self::ResourceQuota => quota::apply(ctx).await,
            Self::LimitRange => limit_range::apply(ctx).await,
            Self::NetworkPolicy => network_policy::apply(ctx).await,
            Self::Rbac => rbac::apply(ctx).await,
            Self::Release => release::apply(ctx).await,
        }
    }

    /// Undoes the step: removes the objects it creates, if they are ours.
    ///
    /// # Errors
    /// [`ClusterError`]; an object that is not ours is left alone and reported.
    pub async fn compensate(self, ctx: &StepContext<'_>) -> Result<(), ClusterError> {
        match self {
            Self::Namespace => namespace::compensate(ctx).await,
            Self::ResourceQuota => quota::compensate(ctx).await,
            Self::LimitRange => limit_range::compensate(ctx).await,
            Self::NetworkPolicy => network_policy::compensate(ctx).await,
            Self::Rbac => rbac::compensate(ctx).await,
            Self::Release => release::uninstall(ctx).await,
        }
    }

    /// Undoes the step for a tenant that was live on `previous`: puts back what
    /// it ran before (the previous plan's objects; for the release, a rollback
    /// to the last good revision).
    ///
    /// # Errors
    /// [`ClusterError`]; `is_transient` says whether a retry can succeed.
    pub async fn roll_back(
        self,
        ctx: &StepContext<'_>,
        previous: &Plan,
    ) -> Result<(), ClusterError> {
        match self {
            Self::Release => release::rollback(ctx, previous.readiness_timeout()).await,
            _ => {
                self.apply(&StepContext {
                    plan: previous,
                    ..*ctx
                })
                .await
            }
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a step needs: the cluster and the tenant's desired shape.
pub struct StepContext<'a> {
    pub cluster: &'a Cluster,
    pub tenant: &'a TenantId,
    pub namespace: &'a str,
    pub plan: &'a Plan,
    pub gateway_namespace: &'a str,
    /// The rendered release this saga installs (absent when only undoing).
    pub release: Option<&'a release::ReleaseSpec>,
}

impl StepContext<'_> {
    /// The input of the pure object builders.
    pub fn objects(&self) -> TenantObjects<'_> {
        TenantObjects {
            tenant: self.tenant,
            namespace: self.namespace,
            plan: self.plan,
            gateway_namespace: self.gateway_namespace,
        }
    }
}
