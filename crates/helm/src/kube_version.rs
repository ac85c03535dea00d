//! Kubernetes versions as Helm v4 sees them: `.Capabilities.KubeVersion`,
//! from a version given by hand (`helm template --kube-version`, Helm's
//! `common.ParseKubeVersion`) or as a cluster reports it (`GET /version`,
//! Helm's `getCapabilities`), and the check of a chart's `kubeVersion`
//! against it that `helm install` makes before rendering
//! (`chartutil.IsCompatibleRange`).

use super::chart::ChartMetadata;
use super::render::semver::{Constraints, Version};

/// `.Capabilities.KubeVersion` (Helm's `common.KubeVersion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeVersion {
    version: String,
    major: String,
    minor: String,
    /// Helm's `String()`: what chart constraints are checked against.
    checked: String,
}

impl KubeVersion {
    /// A version given by hand, read as Helm's `ParseKubeVersion` reads
    /// `--kube-version` (Kubernetes' generic version syntax: `1.20`,
    /// `v1.20.2`, `1.33.4-gke.1245000`, `1.28+`). `.Version` is the text with
    /// a `v` prefix; constraints are checked against its numbers alone
    /// (`v1.33.4`), so that a vendor suffix does not make it a pre-release.
    ///
    /// # Errors
    /// Kubernetes' message for text that is not such a version (no number,
    /// fewer than two components, a zero-prefixed major).
    pub fn parse(text: &str) -> Result<KubeVersion, String> {
        let body = text.trim_start();
        let body = body.strip_prefix('v').unwrap_or(body);
        // `[0-9]+(\.[0-9]+)*` at the start; whatever follows is ignored.
        let mut end = 0;
        let bytes = body.as_bytes();
        while end < bytes.len() {
            let digits = bytes[end..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if digits == 0 {
                break;
            }
            end += digits;
            let more =
                bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
            if !more {
                break;
            }
            end += 1;
        }
        if end == 0 {
            return Err(format!("could not parse {text:?} as version"));
        }
        let parts: Vec<&str> = body[..end].split('.').collect();
        if parts.len() < 2 {
            return Err(format!("illegal version string {text:?}"));
        }
        if parts[0].len() > 1 && parts[0].starts_with('0') {
            return Err(format!(
                "illegal zero-prefixed version component {:?} in {text:?}",
                parts[0]
            ));
        }
        let numbers = parts
            .iter()
            .map(|p| {
                p.parse::<u64>().map_err(|e| {
                    format!("illegal non-numeric version component {p:?} in {text:?}: {e}")
                })
            })
            .collect::<Result<Vec<u64>, String>>()?;
        let joined = numbers
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".");
        Ok(KubeVersion {
            version: if text.starts_with('v') {
                text.to_owned()
            } else {
                format!("v{text}")
            },
            major: numbers[0].to_string(),
            minor: numbers[1].to_string(),
            checked: format!("v{joined}"),
        })
    }

    /// What a cluster reports (`GET /version`), taken as Helm takes it: the
    /// `gitVersion`, `major` and `minor` as they are (`minor` may be `20+` on
    /// some providers). Constraints are checked against the `gitVersion`
    /// itself, so a vendor suffix (`v1.20.2-gke.100`, the embedded API's
    /// `v1.33.0-embedded`) is a pre-release that only a constraint naming one
    /// admits (`>=1.20.0-0`, not `>=1.20.0`).
    pub fn reported(git_version: &str, major: &str, minor: &str) -> KubeVersion {
        KubeVersion {
            version: git_version.to_owned(),
            major: major.to_owned(),
            minor: minor.to_owned(),
            checked: git_version.to_owned(),
        }
    }

    /// `.Capabilities.KubeVersion.Version`, like `v1.20.2`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// `.Capabilities.KubeVersion.Major`.
    pub fn major(&self) -> &str {
        &self.major
    }

    /// `.Capabilities.KubeVersion.Minor`.
    pub fn minor(&self) -> &str {
        &self.minor
    }

    /// Whether this version meets a chart's `kubeVersion` constraint
    /// (Masterminds semver, as Helm's `IsCompatibleRange`). A constraint that
    /// does not parse is never met, as in Helm.
    pub fn satisfies(&self, constraint: &str) -> bool {
        match (
            Version::parse(&self.checked),
            Constraints::parse(constraint),
        ) {
            (Ok(v), Ok(c)) => c.check(&v),
            _ => false,
        }
    }
}

/// A chart whose `kubeVersion` the cluster's Kubernetes does not meet; the
/// message is Helm's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chart requires kubeVersion: {constraint} which is incompatible with Kubernetes {version}")]
pub struct IncompatibleChart {
    /// The chart's `kubeVersion`.
    pub constraint: String,
    /// `.Capabilities.KubeVersion.Version`.
    pub version: String,
}

/// Checks `chart`'s `kubeVersion` (none: any Kubernetes) against `kube`, as
/// `helm install` and `helm template` do before rendering.
///
/// # Errors
/// [`IncompatibleChart`] when `kube` does not meet it.
pub fn check_kube_version(
    chart: &ChartMetadata,
    kube: &KubeVersion,
) -> Result<(), IncompatibleChart> {
    let constraint = &chart.kube_version;
    if constraint.is_empty() || kube.satisfies(constraint) {
        return Ok(());
    }
    Err(IncompatibleChart {
        constraint: constraint.clone(),
        version: kube.version.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions_given_by_hand_as_helm_does() {
        // (input, .Version, String(), .Major, .Minor): Helm's own cases.
        for (input, version, checked, major, minor) in [
            ("v1.16.0", "v1.16.0", "v1.16.0", "1", "16"),
            ("1.20.2", "v1.20.2", "v1.20.2", "1", "20"),
            ("1.20", "v1.20", "v1.20", "1", "20"),
            (
                "v1.33.4-gke.1245000",
                "v1.33.4-gke.1245000",
                "v1.33.4",
                "1",
                "33",
            ),
            (
                "1.30.2-gke.1587003",
                "v1.30.2-gke.1587003",
                "v1.30.2",
                "1",
                "30",
            ),
            ("v1.28+", "v1.28+", "v1.28", "1", "28"),
            ("1.28+", "v1.28+", "v1.28", "1", "28"),
        ] {
            let kv = KubeVersion::parse(input).unwrap();
            assert_eq!(
                (kv.version(), kv.checked.as_str(), kv.major(), kv.minor()),
                (version, checked, major, minor),
                "{input}"
            );
        }
        for (input, error) in [
            ("", "could not parse"),
            ("latest", "could not parse"),
            ("1", "illegal version string"),
            ("1.x", "illegal version string"),
            ("01.20", "zero-prefixed"),
        ] {
            let e = KubeVersion::parse(input).unwrap_err();
            assert!(e.contains(error), "{input}: {e}");
        }
    }

    #[test]
    fn constraints_are_checked_as_helm_checks_them() {
        let reported = |v: &str| KubeVersion::reported(v, "1", "");
        let given = |v: &str| KubeVersion::parse(v).unwrap();
        // (constraint, version, met)
        for (constraint, kube, met) in [
            (">=1.20.0-0", given("1.20.2"), true),
            (">=1.20.0-0", given("v1.19.16"), false),
            (">=1.20.0", given("v1.20.2"), true),
            // A cluster's vendor suffix is a pre-release: only `-0` admits it.
            (">=1.20.0", reported("v1.20.2-gke.100"), false),
            (">=1.20.0-0", reported("v1.20.2-gke.100"), true),
            (">=1.20.0-0", reported("v1.33.0-embedded"), true),
            // By hand, the suffix is dropped before checking (Helm's String()).
            (">=1.20.0", given("1.20.2-gke.100"), true),
            // `v` prefixes on either side.
            (">=v1.20.0", given("v1.21.0"), true),
            // Ranges.
            (">=1.20.0-0 <1.30.0-0", given("1.29.9"), true),
            (">=1.20.0-0 <1.30.0-0", given("1.30.0"), false),
            (">=1.20.0-0 <1.30.0-0", reported("v1.33.0-embedded"), false),
            (">=1.20.0-0, <1.30.0-0", given("1.19.0"), false),
            ("^1.20", given("1.33.0"), true),
            ("^1.20", given("1.19.5"), false),
            ("^1.20", given("2.0.0"), false),
            ("~1.20.0", given("1.20.9"), true),
            ("~1.20.0", given("1.21.0"), false),
            ("<1.19 || >=1.21", given("1.20.0"), false),
            ("<1.19 || >=1.21", given("1.22.0"), true),
            // What does not parse is never met.
            ("not a constraint", given("1.20.0"), false),
            (">=1.20.0", reported("weird"), false),
        ] {
            assert_eq!(kube.satisfies(constraint), met, "{constraint} on {kube:?}");
        }
    }

    #[test]
    fn an_incompatible_chart_is_refused_with_helms_message() {
        let mut chart: ChartMetadata = serde_yaml_ng::from_str(
            "apiVersion: v2\nname: c\nversion: 1.0.0\nkubeVersion: \">=1.25.0-0\"\n",
        )
        .unwrap();
        let e =
            check_kube_version(&chart, &KubeVersion::reported("v1.20.2", "1", "20")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "chart requires kubeVersion: >=1.25.0-0 which is incompatible with Kubernetes v1.20.2"
        );
        assert!(check_kube_version(&chart, &KubeVersion::parse("1.25.0").unwrap()).is_ok());
        chart.kube_version.clear();
        assert!(check_kube_version(&chart, &KubeVersion::parse("1.0").unwrap()).is_ok());
    }
}
