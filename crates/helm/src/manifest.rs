//! From rendered templates to Kubernetes objects, as Helm splits, parses
//! and orders them for an install.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::Value;

use super::render::goyaml::load;

/// A rendered template's document that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{template}: document {index}: {message}")]
pub struct ManifestError {
    /// The template (`<chart>/templates/<path>`).
    pub template: String,
    /// 0-based index of the document in the template's output.
    pub index: usize,
    /// What is wrong with it.
    pub message: String,
}

/// One object a chart renders.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The template it comes from (`<chart>/templates/<path>`).
    pub template: String,
    /// The object, as JSON (YAML read as Helm and Kubernetes read it).
    pub object: Value,
}

impl Manifest {
    fn str_at(&self, pointer: &str) -> Option<&str> {
        self.object.pointer(pointer).and_then(Value::as_str)
    }

    /// `kind`, or `""`.
    pub fn kind(&self) -> &str {
        self.str_at("/kind").unwrap_or("")
    }

    /// `apiVersion`, or `""`.
    pub fn api_version(&self) -> &str {
        self.str_at("/apiVersion").unwrap_or("")
    }

    /// `metadata.name`, or `""`.
    pub fn name(&self) -> &str {
        self.str_at("/metadata/name").unwrap_or("")
    }

    /// `metadata.namespace`, when set.
    pub fn namespace(&self) -> Option<&str> {
        self.str_at("/metadata/namespace")
    }

    /// Whether it is a Helm hook (annotation `helm.sh/hook`).
    pub fn is_hook(&self) -> bool {
        self.object
            .pointer("/metadata/annotations/helm.sh~1hook")
            .is_some()
    }

    /// The hook events (`pre-install`, `post-upgrade`...), trimmed, in order.
    pub fn hook_events(&self) -> Vec<String> {
        self.str_at("/metadata/annotations/helm.sh~1hook")
            .map(|s| {
                s.split(',')
                    .map(|e| e.trim().to_owned())
                    .filter(|e| !e.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Helm's document separator (`releaseutil.SplitManifests`).
static SEPARATOR: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"(?:^|\s*\n)---\s*").unwrap_or_else(|e| panic!("separator regex: {e}"))
});

/// Splits a rendered template into YAML documents as Helm does (trimmed,
/// empty ones dropped).
pub(crate) fn split_documents(text: &str) -> Vec<String> {
    SEPARATOR
        .split(text.trim())
        .filter(|d| !d.is_empty())
        .map(|d| d.trim().to_owned())
        .collect()
}

/// The objects of rendered templates (as [`super::render()`] returns them),
/// in template-name order then document order: `NOTES.txt` and partials
/// skipped, documents split as Helm does, and documents holding only
/// comments or whitespace dropped.
///
/// # Errors
/// A document that is not YAML, or not a mapping, naming the template and
/// the document's index.
pub fn manifests(rendered: &BTreeMap<String, String>) -> Result<Vec<Manifest>, ManifestError> {
    Ok(documents(rendered)?
        .into_iter()
        .filter_map(|d| d.manifest)
        .collect())
}

/// One document of a rendered template, as `helm template` prints it.
pub struct Document {
    /// The template (`<chart>/templates/<path>`).
    pub template: String,
    /// The document's text, trimmed.
    pub text: String,
    /// Its object; `None` for a document of comments only, which Helm
    /// keeps in its output and in the release's manifest (as a manifest of
    /// no kind) but which holds nothing to apply.
    pub manifest: Option<Manifest>,
}

/// Every document of rendered templates, comment-only ones included, in
/// template-name order then document order (see [`manifests`]).
///
/// # Errors
/// As [`manifests`].
pub fn documents(rendered: &BTreeMap<String, String>) -> Result<Vec<Document>, ManifestError> {
    let mut out = Vec::new();
    for (template, text) in rendered {
        let base = template.rsplit('/').next().unwrap_or(template);
        if base.starts_with('_') || template.ends_with("/NOTES.txt") {
            continue;
        }
        for (index, doc) in split_documents(text).into_iter().enumerate() {
            let err = |message: String| ManifestError {
                template: template.clone(),
                index,
                message,
            };
            let node = load::load_first(&doc).map_err(|e| err(format!("YAML parse error: {e}")))?;
            let manifest = match node {
                None => None,
                Some(node) => match load::to_json(&node).map_err(err)? {
                    object @ Value::Object(_) => Some(Manifest {
                        template: template.clone(),
                        object,
                    }),
                    other => {
                        return Err(err(format!(
                            "not a Kubernetes object (a mapping), but {other}"
                        )));
                    }
                },
            };
            out.push(Document {
                template: template.clone(),
                text: doc,
                manifest,
            });
        }
    }
    Ok(out)
}

/// Helm's install order by kind (`InstallOrder` in Helm's kind sorter);
/// other kinds come after, alphabetically by kind.
pub const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Orders manifests as Helm installs them: by kind in [`INSTALL_ORDER`],
/// unknown kinds last sorted by kind name; a stable sort, so objects of one
/// kind keep their order (template name, then document).
pub fn sort_for_install(manifests: &mut [Manifest]) {
    manifests.sort_by(install_cmp);
}

/// The order of [`sort_for_install`].
pub fn install_cmp(a: &Manifest, b: &Manifest) -> std::cmp::Ordering {
    let rank = |kind: &str| INSTALL_ORDER.iter().position(|k| *k == kind);
    match (rank(a.kind()), rank(b.kind())) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.kind().cmp(b.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn splits_like_helm() {
        assert_eq!(
            split_documents("\n---\na: 1\n---\n# only a comment\n---   \nb: 2\n"),
            ["a: 1", "# only a comment", "b: 2"]
        );
        assert_eq!(split_documents("a: 1\n---\n"), ["a: 1"]);
        assert!(split_documents("\n\n").is_empty());
    }

    #[test]
    fn parses_documents_and_skips_notes_and_empties() {
        let r = rendered(&[
            ("c/templates/NOTES.txt", "kind: nope"),
            (
                "c/templates/a.yaml",
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: ns\n---\n# nothing\n",
            ),
            ("c/templates/b.yaml", "\n"),
            (
                "c/templates/h.yaml",
                "kind: Job\nmetadata:\n  name: j\n  annotations:\n    helm.sh/hook: pre-install, post-upgrade\n",
            ),
        ]);
        let m = manifests(&r).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            (
                m[0].kind(),
                m[0].api_version(),
                m[0].name(),
                m[0].namespace()
            ),
            ("Service", "v1", "s", Some("ns"))
        );
        assert!(!m[0].is_hook());
        assert!(m[1].is_hook());
        assert_eq!(m[1].hook_events(), ["pre-install", "post-upgrade"]);
    }

    #[test]
    fn errors_name_template_and_document() {
        let e = manifests(&rendered(&[("c/templates/a.yaml", "a: 1\n---\nb: [1\n")])).unwrap_err();
        assert_eq!((e.template.as_str(), e.index), ("c/templates/a.yaml", 1));
        let e = manifests(&rendered(&[("c/templates/a.yaml", "- 1\n")])).unwrap_err();
        assert!(e.message.contains("mapping"), "{e}");
    }

    #[test]
    fn install_order() {
        let mk = |kind: &str, name: &str| Manifest {
            template: "t".into(),
            object: serde_json::json!({"kind": kind, "metadata": {"name": name}}),
        };
        let mut m = vec![
            mk("Deployment", "d"),
            mk("Zeta", "z"),
            mk("Alpha", "a"),
            mk("ServiceAccount", "sa"),
            mk("Service", "s2"),
            mk("Service", "s1"),
            mk("Namespace", "n"),
        ];
        sort_for_install(&mut m);
        let got: Vec<(&str, &str)> = m.iter().map(|x| (x.kind(), x.name())).collect();
        assert_eq!(
            got,
            [
                ("Namespace", "n"),
                ("ServiceAccount", "sa"),
                ("Service", "s2"),
                ("Service", "s1"),
                ("Deployment", "d"),
                ("Alpha", "a"),
                ("Zeta", "z")
            ]
        );
    }
}
