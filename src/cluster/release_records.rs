//! Helm release records: one `Secret` per revision, stored exactly as Helm v3/v4
//! stores them, so that `helm list`, `helm history`, `helm get manifest` and
//! `helm get values` on a real cluster show what the worker installed.
//!
//! A record is the Secret `sh.helm.release.v1.<release>.v<revision>` of type
//! `helm.sh/release.v1`, labelled `name`, `owner=helm`, `status`, `version`
//! (plus the worker's ownership labels), whose `data.release` is the base64 of
//! the gzip of the release JSON (chart metadata, templates, values, config,
//! manifest, info, status). At most [`MAX_REVISIONS`] are kept.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::objects::owner_labels;
use super::{Cluster, ClusterError};
use crate::contract::TenantId;

/// Revisions kept per release (Helm's `--history-max` default is 10).
pub const MAX_REVISIONS: u32 = 10;

/// The Secret type Helm's storage driver uses.
pub const RELEASE_SECRET_TYPE: &str = "helm.sh/release.v1";

/// A release's status, as Helm spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseStatus {
    Deployed,
    Superseded,
    Failed,
    Uninstalling,
    PendingInstall,
    PendingUpgrade,
    PendingRollback,
}

impl ReleaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployed => "deployed",
            Self::Superseded => "superseded",
            Self::Failed => "failed",
            Self::Uninstalling => "uninstalling",
            Self::PendingInstall => "pending-install",
            Self::PendingUpgrade => "pending-upgrade",
            Self::PendingRollback => "pending-rollback",
        }
    }
}

/// `Release.Info` in Helm's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    pub first_deployed: Timestamp,
    pub last_deployed: Timestamp,
    /// Helm writes the zero time when not deleted; kept as text to round-trip it.
    #[serde(default)]
    pub deleted: String,
    #[serde(default)]
    pub description: String,
    pub status: ReleaseStatus,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
}

/// A release revision in Helm's JSON shape (`helm.sh/helm/v3/pkg/release.Release`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub name: String,
    pub info: ReleaseInfo,
    /// The chart: `metadata`, `templates` (`[{name, data: base64}]`), `values`,
    /// `schema`, `files`, in Helm's field names.
    pub chart: Value,
    /// The values given on top of the chart's defaults (what `helm get values` shows).
    pub config: Value,
    /// The rendered manifests, `---\n# Source: <template>\n<yaml>` per document.
    pub manifest: String,
    #[serde(default)]
    pub hooks: Vec<Value>,
    pub version: u32,
    pub namespace: String,
}

impl Release {
    /// The Secret's name for this revision.
    pub fn secret_name(&self) -> String {
        secret_name(&self.name, self.version)
    }
}

/// `sh.helm.release.v1.<release>.v<revision>`.
pub fn secret_name(release: &str, revision: u32) -> String {
    format!("sh.helm.release.v1.{release}.v{revision}")
}

/// `data.release` of the Secret: base64 of gzip of the JSON (Helm's encoding).
///
/// Gzip at the fastest level: a record holds the whole chart and is written
/// twice per saga, and compressing it at the default level was a tenth of
/// the worker's CPU time in the lifecycle benchmark. Any level reads the same.
pub fn encode(release: &Release) -> Vec<u8> {
    let json = serde_json::to_vec(release).expect("releases serialize");
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&json).expect("writing to memory");
    BASE64
        .encode(gz.finish().expect("writing to memory"))
        .into_bytes()
}

/// Reads `data.release` as Helm does: base64, then gunzip when it is gzip
/// (Helm 2-era records are plain JSON), then JSON.
///
/// # Errors
/// A message saying which layer is broken.
pub fn decode(data: &[u8]) -> Result<Release, String> {
    let raw = BASE64
        .decode(data)
        .map_err(|e| format!("release data is not base64: {e}"))?;
    let json = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| format!("release data is not valid gzip: {e}"))?;
        out
    } else {
        raw
    };
    serde_json::from_slice(&json).map_err(|e| format!("release JSON is not a release: {e}"))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Release {
        let now = Timestamp::now();
        Release {
            name: "acme".into(),
            info: ReleaseInfo {
                first_deployed: now,
                last_deployed: now,
                deleted: String::new(),
                description: "Install complete".into(),
                status: ReleaseStatus::Deployed,
                notes: String::new(),
            },
            chart: serde_json::json!({"metadata": {"name": "tenant-app", "version": "0.1.0"}}),
            config: serde_json::json!({"image": {"tag": "1.2.0"}}),
            manifest: "---\n# Source: tenant-app/templates/service.yaml\nkind: Service\n".into(),
            hooks: Vec::new(),
            version: 3,
            namespace: "tenant-acme".into(),
        }
    }

    #[test]
    fn records_round_trip_through_helms_encoding() {
        let r = sample();
        let data = encode(&r);
        // base64 text of a gzip stream, as `kubectl get secret -o yaml` shows
        // it base64-encoded once more.
        let raw = BASE64.decode(&data).unwrap();
        assert_eq!(&raw[..2], &[0x1f, 0x8b]);
        assert_eq!(decode(&data).unwrap(), r);
        assert_eq!(r.secret_name(), "sh.helm.release.v1.acme.v3");
    }

    #[test]
    fn plain_json_records_are_read_too() {
        let r = sample();
        let plain = BASE64.encode(serde_json::to_vec(&r).unwrap());
        assert_eq!(decode(plain.as_bytes()).unwrap(), r);
        assert!(decode(b"%%%").unwrap_err().contains("base64"));
    }

    #[test]
    fn statuses_are_spelled_as_helm_does() {
        assert_eq!(
            serde_json::to_value(ReleaseStatus::PendingUpgrade).unwrap(),
            "pending-upgrade"
        );
        assert_eq!(ReleaseStatus::Superseded.as_str(), "superseded");
    }
}
