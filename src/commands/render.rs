//! `tenant-worker render`: renders the chart for a tenant, with the values
//! the worker would use, and prints the manifests as `helm template` does, so
//! a chart can be debugged without NATS, with `helm template`'s capabilities
//! or a cluster's (`--kubeconfig`, read only).

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::output;
use crate::cluster::{Cluster, connect};
use crate::config::RenderArgs;
use crate::contract::TenantId;
use crate::error::Error;
use crate::plans::PlanCatalog;
use crate::retry::RetryPolicy;
use helm::Manifest;
use helm::manifest::{Document, documents, install_cmp};
use helm::{
    Capabilities, Chart, KubeVersion, ReleaseInfo, check_kube_version, release_values, render,
};

/// The event-values file: YAML (JSON included), read as Helm reads `-f`.
fn read_values(path: &std::path::Path) -> Result<Value, Error> {
    let what = |m: String| Error::Setup(format!("--values {}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| what(e.to_string()))?;
    match helm::parse_yaml_document(&text).map_err(what)? {
        None => Ok(Value::Object(Map::new())),
        Some(v @ Value::Object(_)) => Ok(v),
        Some(_) => Err(what("must hold a mapping of chart values".into())),
    }
}

/// The `.Capabilities` `args` ask for: `helm template`'s, or with
/// `--kubeconfig` the cluster's; `--kube-version` replaces the version and
/// `--api-versions` are added, as `helm template` adds them to its own.
///
/// # Errors
/// [`Error::Setup`] for a `--kube-version` that is not a Kubernetes version;
/// [`Error::Cluster`] when the kubeconfig cannot be loaded or the cluster's
/// version and discovery cannot be read.
pub async fn capabilities(args: &RenderArgs) -> Result<Capabilities, Error> {
    // Checked before any cluster is asked.
    let kube_version = match &args.kube_version {
        Some(v) => Some(KubeVersion::parse(v).map_err(|e| {
            Error::Setup(format!(
                "--kube-version {v:?} is not a Kubernetes version ({e}); give one like 1.20.2 or v1.20.2"
            ))
        })?),
        None => None,
    };
    let mut caps = match &args.kubeconfig {
        Some(path) => {
            let cluster = Cluster::new(
                connect(Some(path)).await?,
                args.namespace_prefix.clone(),
                RetryPolicy::default(),
            );
            Capabilities::clone(&*cluster.capabilities().await?)
        }
        None => Capabilities::default(),
    };
    if let Some(v) = kube_version {
        caps.kube_version = v;
    }
    caps.api_versions.extend(
        args.api_versions
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
            .map(str::to_owned),
    );
    Ok(caps)
}

/// The manifests `args` describe, rendered with `caps`, as `helm template`
/// prints them.
///
/// # Errors
/// [`Error::Setup`] naming what is wrong: the tenant id, the chart, the plan
/// or plan file, the values file, values the plan does not allow or the
/// chart's schema refuses, a chart whose `kubeVersion` `caps` do not meet
/// (the constraint and the version), a template that fails (file and line),
/// a rendered document that is not an object.
pub fn output(args: &RenderArgs, caps: &Capabilities) -> Result<String, Error> {
    let tenant = TenantId::parse(&args.tenant).map_err(|e| Error::Setup(e.to_string()))?;
    let chart = Chart::load(&args.chart)
        .map_err(|e| Error::Setup(format!("--chart {}: {e}", args.chart.display())))?;
    let catalog = PlanCatalog::load(args.plans.as_deref())?;
    let overrides = match &args.values {
        Some(path) => read_values(path)?,
        None => Value::Object(Map::new()),
    };
    let plan = match &args.plan {
        Some(name) => Some(catalog.get(name).ok_or_else(|| {
            Error::Setup(format!(
                "--plan {name:?} is not in the catalogue (plans: {})",
                catalog.names().collect::<Vec<_>>().join(", ")
            ))
        })?),
        None => None,
    };
    let app_version = args
        .app_version
        .clone()
        .unwrap_or_else(|| catalog.default_app_version().to_owned());
    let empty = Value::Object(Map::new());
    let values = release_values(
        &chart,
        plan.map_or(&empty, |p| &p.values),
        plan.map(|p| p.overridable_values.as_slice()),
        (catalog.app_version_value(), &app_version),
        &overrides,
    )
    .map_err(|e| Error::Setup(format!("--values: {e}")))?;
    let release = ReleaseInfo {
        name: tenant.to_string(),
        namespace: format!("{}{tenant}", args.namespace_prefix),
        revision: 1,
        is_install: true,
        is_upgrade: false,
    };
    check_kube_version(&chart.metadata, &caps.kube_version)
        .map_err(|e| Error::Setup(format!("--chart {}: {e}", args.chart.display())))?;
    // The chart with the subcharts the values enable, as `helm template`:
    // offline, so `lookup` finds nothing, even with --kubeconfig (which
    // gives the cluster's capabilities only, as `helm template
    // --kube-version` would).
    let offline = std::sync::Arc::new(helm::Offline);
    let rendered = render(&values.chart, &values.values, &release, caps, offline)
        .map_err(|e| Error::Setup(e.to_string()))?;
    let docs = documents(&rendered).map_err(|e| Error::Setup(e.to_string()))?;
    // As `helm template` prints them: the manifests in install order, then
    // the hooks. A document of comments only is a manifest of no kind to
    // Helm: after every known kind, before other unknown ones.
    let no_kind = |d: &Document| Manifest {
        template: d.template.clone(),
        object: Value::Object(Map::new()),
    };
    let (hooks, mut objects): (Vec<_>, Vec<_>) = docs
        .iter()
        .map(|d| (d.manifest.clone().unwrap_or_else(|| no_kind(d)), d))
        .partition(|(m, _)| m.is_hook());
    objects.sort_by(|a, b| install_cmp(&a.0, &b.0));
    let mut out = String::new();
    for (_, d) in objects.iter().chain(hooks.iter()) {
        let _ = write!(out, "---\n# Source: {}\n{}\n", d.template, d.text);
    }
    Ok(out)
}

/// Runs `tenant-worker render`: prints the manifests, or nothing on error.
///
/// # Errors
/// See [`capabilities`] and [`output`]; [`Error::Stdout`] when the manifests
/// cannot be written.
pub async fn run(args: &RenderArgs) -> Result<(), Error> {
    let caps = capabilities(args).await?;
    output::text(output(args, &caps)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(chart: &std::path::Path) -> RenderArgs {
        RenderArgs {
            tenant: "acme".into(),
            chart: chart.to_owned(),
            plan: None,
            app_version: None,
            values: None,
            namespace_prefix: "tenant-".into(),
            plans: None,
            kube_version: None,
            api_versions: Vec::new(),
            kubeconfig: None,
        }
    }

    #[test]
    fn prints_comment_only_documents_where_helm_template_does() {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("Chart.yaml", "apiVersion: v2\nname: t\nversion: 1.0.0\n");
        write(
            "templates/a.yaml",
            "# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
        );
        write(
            "templates/b.yaml",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: b\n",
        );
        // Known kinds, then the document of no kind, then other kinds.
        assert_eq!(
            output(&args(dir.path()), &Capabilities::default()).unwrap(),
            "---\n# Source: t/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n\
             ---\n# Source: t/templates/a.yaml\n# only a comment\n\
             ---\n# Source: t/templates/b.yaml\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: b\n"
        );
    }

    #[tokio::test]
    async fn flags_set_the_version_and_add_api_versions_as_helm_template_does() {
        let mut a = args(std::path::Path::new(crate::settings::SAMPLE_CHART_DIR));
        a.kube_version = Some("1.20.2".into());
        a.api_versions = vec!["monitoring.coreos.com/v1".into(), "example.com/v1".into()];
        let caps = capabilities(&a).await.unwrap();
        assert_eq!(caps.kube_version.version(), "v1.20.2");
        let defaults = Capabilities::default().api_versions;
        assert_eq!(caps.api_versions[..defaults.len()], defaults[..], "kept");
        assert_eq!(
            caps.api_versions[defaults.len()..],
            ["monitoring.coreos.com/v1", "example.com/v1"]
        );

        a.kube_version = Some("latest".into());
        let e = capabilities(&a).await.unwrap_err().to_string();
        assert!(
            e.contains("--kube-version \"latest\" is not a Kubernetes version"),
            "{e}"
        );
    }

    /// The sample chart on a cluster without `autoscaling/v2` and `policy/v1`
    /// (Kubernetes 1.20) uses their beta versions, with the same spec.
    #[test]
    fn the_sample_chart_gates_on_what_the_cluster_serves() {
        let mut a = args(std::path::Path::new(crate::settings::SAMPLE_CHART_DIR));
        a.plan = Some("premium".into());
        let k1_20 = Capabilities {
            kube_version: KubeVersion::reported("v1.20.2", "1", "20"),
            api_versions: [
                "v1",
                "apps/v1",
                "autoscaling/v1",
                "autoscaling/v2beta1",
                "autoscaling/v2beta2",
                "networking.k8s.io/v1",
                "policy/v1beta1",
            ]
            .map(str::to_owned)
            .to_vec(),
            ..Capabilities::default()
        };
        let old = output(&a, &k1_20).unwrap();
        let new = output(&a, &Capabilities::default()).unwrap();
        assert!(old.contains("apiVersion: autoscaling/v2beta2\nkind: HorizontalPodAutoscaler"));
        assert!(old.contains("apiVersion: policy/v1beta1\nkind: PodDisruptionBudget"));
        assert!(new.contains("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler"));
        assert!(new.contains("apiVersion: policy/v1\nkind: PodDisruptionBudget"));
        assert_eq!(
            old.replace("autoscaling/v2beta2", "autoscaling/v2")
                .replace("policy/v1beta1", "policy/v1"),
            new,
            "nothing else differs"
        );

        // Kubernetes 1.19 is older than the chart's kubeVersion.
        let e = output(
            &a,
            &Capabilities {
                kube_version: KubeVersion::parse("1.19.0").unwrap(),
                ..k1_20
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.ends_with("chart requires kubeVersion: >=1.20.0-0 which is incompatible with Kubernetes v1.19.0"),
            "{e}"
        );
    }
}
