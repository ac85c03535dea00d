//! Helm release records in the cluster: one `Secret` per revision, in Helm's
//! storage format ([`helm::storage`]), labelled as Helm does and as the
//! worker's. At most [`MAX_REVISIONS`] are kept.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};

pub use helm::storage::{
    MAX_REVISIONS, RELEASE_SECRET_TYPE, Release, ReleaseInfo, ReleaseStatus, decode, deployed,
    deployed_at, encode, secret_name,
};

use super::{Cluster, ClusterError};
use crate::contract::TenantId;
use tenant_core::steps::owner_labels;

/// The Secret holding `release`, labelled as Helm does and as the worker's.
pub fn to_secret(release: &Release, tenant: &TenantId) -> Secret {
    let mut labels = owner_labels(tenant);
    labels.insert("name".into(), release.name.clone());
    labels.insert("owner".into(), "helm".into());
    labels.insert("status".into(), release.info.status.as_str().into());
    labels.insert("version".into(), release.version.to_string());
    labels.insert(
        "modifiedAt".into(),
        Timestamp::now().as_second().to_string(),
    );
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(release.secret_name()),
            namespace: Some(release.namespace.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        type_: Some(RELEASE_SECRET_TYPE.into()),
        data: Some(BTreeMap::from([(
            "release".to_owned(),
            ByteString(encode(release)),
        )])),
        ..Default::default()
    }
}

impl Cluster {
    /// Every stored revision of `release` in `namespace`, oldest first.
    /// Records the worker cannot read are skipped with a warning.
    ///
    /// # Errors
    /// [`ClusterError::Api`] when the Secrets cannot be listed.
    pub async fn release_history(
        &self,
        namespace: &str,
        release: &str,
    ) -> Result<Vec<Release>, ClusterError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let params = ListParams::default().labels(&format!("owner=helm,name={release}"));
        let list = self.request(|| api.list(&params)).await?;
        let mut releases: Vec<Release> = list
            .items
            .iter()
            .filter(|s| s.type_.as_deref() == Some(RELEASE_SECRET_TYPE))
            .filter_map(|s| {
                let data = s.data.as_ref()?.get("release")?;
                match decode(&data.0) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::warn!(secret = ?s.metadata.name, error = %e, "unreadable Helm release record; skipped");
                        None
                    }
                }
            })
            .collect();
        releases.sort_by_key(|r| r.version);
        Ok(releases)
    }

    /// Writes (creates or replaces) the record of `release`, and returns the
    /// Secret's `resourceVersion`. With `over`, the version of the record this
    /// worker wrote last, the write needs no ownership read (see
    /// [`Cluster::apply_over`]).
    ///
    /// # Errors
    /// [`ClusterError::NotOwned`] when a record of that name is not ours;
    /// [`ClusterError::Api`] otherwise.
    pub async fn write_release(
        &self,
        tenant: &TenantId,
        release: &Release,
        over: Option<&str>,
    ) -> Result<String, ClusterError> {
        let secret = to_secret(release, tenant);
        match over {
            Some(version) => self.apply_over(tenant, &secret, version).await,
            None => self.apply_versioned(tenant, &secret).await,
        }
    }

    /// Deletes the oldest of `records` beyond [`MAX_REVISIONS`]. `records`
    /// are the release's records as the caller knows them after its own write
    /// (it holds the tenant's lease, so nobody else adds any): pruning needs
    /// no second listing of records it has just read.
    ///
    /// # Errors
    /// As [`Cluster::delete_owned`].
    pub async fn prune_releases(
        &self,
        tenant: &TenantId,
        records: &[&Release],
    ) -> Result<(), ClusterError> {
        let mut versions: Vec<&Release> = records.to_vec();
        versions.sort_by_key(|r| r.version);
        versions.dedup_by_key(|r| r.version);
        let excess = versions.len().saturating_sub(MAX_REVISIONS as usize);
        for old in &versions[..excess] {
            self.delete_owned::<Secret>(tenant, &old.namespace, &old.secret_name())
                .await?;
        }
        Ok(())
    }

    /// Deletes every record of `release` (an uninstall without `--keep-history`).
    ///
    /// # Errors
    /// As [`Cluster::delete_owned`].
    pub async fn delete_release_records(
        &self,
        tenant: &TenantId,
        namespace: &str,
        release: &str,
    ) -> Result<(), ClusterError> {
        for r in self.release_history(namespace, release).await? {
            self.delete_owned::<Secret>(tenant, namespace, &r.secret_name())
                .await?;
        }
        Ok(())
    }
}
