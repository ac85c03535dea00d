//! Helm's release storage format: a release revision as Helm v3/v4 records
//! it, and its encoding in the `data.release` of the record's Secret (base64
//! of the gzip of the release JSON: chart metadata, templates, values,
//! config, manifest, info, status), so that `helm list`, `helm history`,
//! `helm get manifest` and `helm get values` read what another tool wrote.
//!
//! The record itself is the Secret `sh.helm.release.v1.<release>.v<revision>`
//! of type [`RELEASE_SECRET_TYPE`], labelled `name`, `owner=helm`, `status`
//! and `version`; writing it is the caller's (this crate has no Kubernetes
//! client).

use std::io::{Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Revisions kept per release (Helm's `--history-max` default is 10).
pub const MAX_REVISIONS: u32 = 10;

/// The Secret type Helm's storage driver uses.
pub const RELEASE_SECRET_TYPE: &str = "helm.sh/release.v1";

/// A release's status, as Helm spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseStatus {
    /// The revision that is live now.
    Deployed,
    /// Was deployed, and a newer revision replaced it.
    Superseded,
    /// The install, upgrade or rollback that wrote this revision failed.
    Failed,
    /// An uninstall is under way.
    Uninstalling,
    /// An install is under way; `helm upgrade` refuses to run meanwhile.
    PendingInstall,
    /// An upgrade is under way; `helm upgrade` refuses to run meanwhile.
    PendingUpgrade,
    /// A rollback is under way; `helm upgrade` refuses to run meanwhile.
    PendingRollback,
}

impl ReleaseStatus {
    /// The status as Helm spells it (`info.status` and the Secret's `status` label).
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
    /// When the release's first revision was deployed (carried over by later revisions).
    pub first_deployed: Timestamp,
    /// When this revision's install, upgrade or rollback ran.
    pub last_deployed: Timestamp,
    /// Helm writes the zero time when not deleted; kept as text to round-trip it.
    #[serde(default)]
    pub deleted: String,
    /// Helm's one-line log entry for the revision (e.g. `Install complete`), shown by `helm history`.
    #[serde(default)]
    pub description: String,
    /// Where this revision stands.
    pub status: ReleaseStatus,
    /// The chart's rendered `NOTES.txt` (empty: none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
}

/// A release revision in Helm's JSON shape (`helm.sh/helm/v3/pkg/release.Release`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// The release name, the same in every revision.
    pub name: String,
    /// Timestamps, status and notes of this revision.
    pub info: ReleaseInfo,
    /// The chart: `metadata`, `templates` (`[{name, data: base64}]`), `values`,
    /// `schema`, `files`, in Helm's field names.
    pub chart: Value,
    /// The values given on top of the chart's defaults (what `helm get values` shows).
    pub config: Value,
    /// The rendered manifests, `---\n# Source: <template>\n<yaml>` per document.
    pub manifest: String,
    /// The chart's rendered hooks, as Helm's `Hook` JSON objects (empty: none).
    #[serde(default)]
    pub hooks: Vec<Value>,
    /// The revision number (1-based; each install, upgrade or rollback writes the next).
    pub version: u32,
    /// The Kubernetes namespace the release is installed in (and its Secrets live in).
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

/// The revision deployed now: the newest record whose status is `deployed`.
pub fn deployed(history: &[Release]) -> Option<&Release> {
    history
        .iter()
        .rev()
        .find(|r| r.info.status == ReleaseStatus::Deployed)
}

/// The record of `revision`, if its status is `deployed`.
pub fn deployed_at(history: &[Release], revision: u32) -> Option<&Release> {
    history
        .iter()
        .find(|r| r.version == revision && r.info.status == ReleaseStatus::Deployed)
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
    fn the_deployed_revision_is_the_newest_deployed_record() {
        let mut history = vec![sample(), sample(), sample()];
        for (i, r) in history.iter_mut().enumerate() {
            r.version = i as u32 + 1;
        }
        history[0].info.status = ReleaseStatus::Superseded;
        history[2].info.status = ReleaseStatus::Failed;
        assert_eq!(deployed(&history).map(|r| r.version), Some(2));
        assert!(deployed_at(&history, 2).is_some());
        assert!(deployed_at(&history, 3).is_none(), "failed");
        assert!(deployed_at(&history, 1).is_none(), "superseded");
        history[1].info.status = ReleaseStatus::Superseded;
        assert!(deployed(&history).is_none());
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
