//! The deployment artifacts under `k8s/` (the chart templates excepted: they
//! are Go templates, covered by `releases.rs` and `helm_diff.rs`):
//!
//! - every YAML document parses into its `k8s-openapi` type (or, for NACK's
//!   kinds, a struct of the CRD's fields) and serializes back to the same
//!   JSON, so that a misspelt field is not silently dropped;
//! - the Deployment wires what the worker reads (env names `run` knows, the
//!   plans ConfigMap, the NATS Secret, probes on the metrics port, the pod
//!   name as replica id, a grace period above the worker's shutdown grace) and
//!   runs non-root, read-only, without capabilities;
//! - the plans ConfigMap is `k8s/plans.yaml` byte for byte
//!   (`UPDATE_MANIFESTS=1 cargo test --test suite manifests::` regenerates it);
//! - the NACK resources describe what `bus::ensure_topology` creates, compared
//!   on a real nats-server;
//! - RBAC: the worker provisions, upgrades, fails and compensates, repairs
//!   drift with `reconcile --apply` and deprovisions against the embedded
//!   Kubernetes API while it records every request; each request must be
//!   allowed by the ClusterRoles bound to the worker's ServiceAccount, and
//!   each rule of the `tenant-worker` ClusterRole must be used by some request
//!   (least privilege both ways). The `tenant-worker-grantable` ClusterRole
//!   must equal what the worker grants tenant admins (`build_role`), which
//!   RBAC's escalation prevention makes it hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::cluster::first_container;
use crate::support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::DeleteParams;
use kube_double::{EmbeddedApiConfig, FaultRule, RecordedRequest};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tenant_worker::contract::{
    CONSUMER_NAME, DEADLETTER_STREAM, DEADLETTER_SUBJECT_PREFIX, LIFECYCLE_STREAM,
    LIFECYCLE_SUBJECT_PREFIX, ROUTES_BUCKET, STATE_BUCKET, STATUS_STREAM, STATUS_SUBJECT_PREFIX,
};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const PLANS_CONFIGMAP: &str = "k8s/worker/plans-configmap.yaml";
/// The `User-Agent` of this test's own client, whose requests are not the worker's.
const OBSERVER: &str = "tenant-worker-manifests-test";

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// One YAML document of a manifest file.
#[derive(Debug, Clone)]
struct Doc {
    file: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }
}

/// Every `.yaml`/`.yml` file under `k8s/`, except the chart directories.
fn manifest_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "charts") {
                    continue;
                }
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(ROOT).join("k8s"), &mut out);
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(ROOT).unwrap().display().to_string()
}

fn documents(path: &Path) -> Vec<Doc> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", relative(path))))
        .filter(|v| !v.is_null())
        .map(|value| Doc {
            file: relative(path),
            value,
        })
        .collect()
}

/// Every Kubernetes object document under `k8s/` (plans and kustomizations aside).
fn objects() -> Vec<Doc> {
    manifest_files()
        .iter()
        .filter(|p| !is_plans(p) && !is_kustomization(p))
        .flat_map(|p| documents(p))
        .collect()
}

fn is_plans(path: &Path) -> bool {
    relative(path) == "k8s/plans.yaml"
}

fn is_kustomization(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "kustomization.yaml")
}

fn find<'a>(docs: &'a [Doc], kind: &str, name: &str) -> &'a Doc {
    docs.iter()
        .find(|d| d.kind() == kind && d.name() == name)
        .unwrap_or_else(|| panic!("no {kind} {name} under k8s/"))
}

fn typed<K: DeserializeOwned>(doc: &Doc) -> K {
    serde_json::from_value(doc.value.clone())
        .unwrap_or_else(|e| panic!("{} {} in {}: {e}", doc.kind(), doc.name(), doc.file))
}

/// Parses `doc` as `K` and requires that serializing it back gives the same
/// JSON: `k8s-openapi` types ignore unknown fields, and this is how a typo
/// (`readOnlyRootFilesytem`) is caught instead of silently dropped.
fn round_trip<K: DeserializeOwned + Serialize>(doc: &Doc) {
    let parsed: K = typed(doc);
    let back = serde_json::to_value(&parsed).unwrap();
    if back != doc.value {
        let mut missing = Vec::new();
        diff(&doc.value, &back, "", &mut missing);
        panic!(
            "{} {} in {}: fields lost or changed by its type (misspelt?): {missing:#?}",
            doc.kind(),
            doc.name(),
            doc.file
        );
    }
}

fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => diff(v, w, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}")),
                }
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                out.push(format!("{path}.{k} (added)"));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                diff(v, w, &format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} -> {b}")),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// NACK (jetstream.nats.io/v1beta2): the fields of its CRDs that these
// manifests use (nats-io/nack deploy/crds.yml); anything else is refused.
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NackObject<S> {
    api_version: String,
    kind: String,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: S,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StreamSpec {
    name: String,
    description: String,
    subjects: Vec<String>,
    retention: String,
    discard: String,
    storage: String,
    replicas: usize,
    duplicate_window: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConsumerSpec {
    stream_name: String,
    durable_name: String,
    description: String,
    deliver_policy: String,
    ack_policy: String,
    ack_wait: String,
    max_deliver: i64,
    max_ack_pending: i64,
    filter_subject: String,
    replay_policy: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyValueSpec {
    bucket: String,
    description: String,
    history: i64,
    storage: String,
    replicas: usize,
}

/// `kustomization.yaml`: the fields used here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Kustomization {
    api_version: String,
    kind: String,
    resources: Vec<String>,
    #[serde(default)]
    images: Vec<KustomizeImage>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct KustomizeImage {
    name: String,
    new_name: Option<String>,
    new_tag: Option<String>,
}

/// A Go `time.Duration` string as NACK takes them (`30s`, `2m`, `1h30m`, `500ms`).
fn go_duration(s: &str) -> Duration {
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits]
            .parse()
            .unwrap_or_else(|_| panic!("duration {s}"));
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        total += match &rest[..unit] {
            "h" => Duration::from_secs(n * 3600),
            "m" => Duration::from_secs(n * 60),
            "s" => Duration::from_secs(n),
            "ms" => Duration::from_millis(n),
            other => panic!("duration {s}: unit {other:?}"),
        };
        rest = &rest[unit..];
    }
    total
}

// ---------------------------------------------------------------------------
// Parsing every manifest
// ---------------------------------------------------------------------------

#[test]
fn every_manifest_parses_into_its_type_without_losing_a_field() {
    let files = manifest_files();
    let mut kinds = BTreeSet::new();
    for path in &files {
        if is_plans(path) {
            tenant_worker::plans::PlanCatalog::load(Some(path)).unwrap();
            continue;
        }
        if is_kustomization(path) {
            let k: Kustomization =
                serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let dir = path.parent().unwrap();
            // Every manifest of the directory is listed, and every listed file exists.
            let listed: BTreeSet<&str> = k.resources.iter().map(String::as_str).collect();
            for sibling in std::fs::read_dir(dir).unwrap() {
                let name = sibling.unwrap().file_name().to_string_lossy().into_owned();
                if name.ends_with(".yaml") && name != "kustomization.yaml" {
                    assert!(
                        listed.contains(name.as_str()),
                        "{}: {name} not listed",
                        relative(path)
                    );
                }
            }
            for r in &k.resources {
                assert!(dir.join(r).is_file(), "{}: {r} missing", relative(path));
            }
            continue;
        }
        for doc in documents(path) {
            let api_version = doc.value["apiVersion"].as_str().unwrap_or_default();
            match (api_version, doc.kind()) {
                ("v1", "Namespace") => round_trip::<Namespace>(&doc),
                ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(&doc),
                ("v1", "Secret") => round_trip::<Secret>(&doc),
                ("v1", "ConfigMap") => round_trip::<ConfigMap>(&doc),
                ("apps/v1", "Deployment") => round_trip::<Deployment>(&doc),
                ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(&doc),
                ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(&doc),
                ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                    round_trip::<ClusterRoleBinding>(&doc)
                }
                ("jetstream.nats.io/v1beta2", "Stream") => {
                    round_trip::<NackObject<StreamSpec>>(&doc)
                }
                ("jetstream.nats.io/v1beta2", "Consumer") => {
                    round_trip::<NackObject<ConsumerSpec>>(&doc)
                }
                ("jetstream.nats.io/v1beta2", "KeyValue") => {
                    round_trip::<NackObject<KeyValueSpec>>(&doc)
                }
                (v, k) => panic!("{}: {v} {k} has no type in this test: add it", doc.file),
            }
            // Namespaced objects say where they go.
            let cluster_scoped = ["Namespace", "ClusterRole", "ClusterRoleBinding"];
            if !cluster_scoped.contains(&doc.kind()) {
                assert_eq!(
                    doc.value["metadata"]["namespace"],
                    "tenant-worker",
                    "{} {} in {}",
                    doc.kind(),
                    doc.name(),
                    doc.file
                );
            }
            kinds.insert(doc.kind().to_owned());
        }
    }
    for expected in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Secret",
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Stream",
        "Consumer",
        "KeyValue",
    ] {
        assert!(kinds.contains(expected), "no {expected} under k8s/");
    }
}

// ---------------------------------------------------------------------------
// The plans ConfigMap
// ---------------------------------------------------------------------------

/// The ConfigMap file as generated from `k8s/plans.yaml`.
fn plans_configmap(plans: &str) -> String {
    let mut out = String::from(
        "# GENERATED from k8s/plans.yaml: do not edit. Regenerate with
#   UPDATE_MANIFESTS=1 cargo test --locked --test suite manifests::
# (tests/manifests.rs fails while the two differ). The worker reads the plans at
# start: after changing them, `kubectl -n tenant-worker rollout restart
# deployment/tenant-worker`.
apiVersion: v1
kind: ConfigMap
metadata:
  name: tenant-worker-plans
  namespace: tenant-worker
  labels:
    app.kubernetes.io/name: tenant-worker
    app.kubernetes.io/part-of: tenant-worker
data:
  plans.yaml: |
",
    );
    for line in plans.lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn the_plans_configmap_is_k8s_plans_yaml() {
    let plans = std::fs::read_to_string(Path::new(ROOT).join("k8s/plans.yaml")).unwrap();
    assert!(
        plans.ends_with('\n') && !plans.ends_with("\n\n") && !plans.contains('\t'),
        "k8s/plans.yaml must end with one newline and hold no tabs to fit a YAML block scalar"
    );
    let path = Path::new(ROOT).join(PLANS_CONFIGMAP);
    let expected = plans_configmap(&plans);
    if std::env::var_os("UPDATE_MANIFESTS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{PLANS_CONFIGMAP} differs from k8s/plans.yaml: regenerate it with \
         UPDATE_MANIFESTS=1 cargo test --locked --test suite manifests::"
    );
    // And YAML reads it back as the same text.
    let docs = documents(&path);
    let cm: ConfigMap = typed(&docs[0]);
    assert_eq!(cm.data.unwrap()["plans.yaml"], plans);
}

// ---------------------------------------------------------------------------
// The Deployment
// ---------------------------------------------------------------------------

fn env_value<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
    c.env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .as_deref()
}

/// Environment variables the worker reads that are not a flag's: `RUST_LOG`
/// is read by the log filter.
const ENV_NOT_IN_FLAGS: &[&str] = &["RUST_LOG"];

#[test]
fn the_deployment_wires_what_the_worker_reads_and_runs_locked_down() {
    use clap::CommandFactory;
    let docs = objects();
    let deployment: Deployment = typed(find(&docs, "Deployment", "tenant-worker"));
    let spec = deployment.spec.as_ref().unwrap();
    assert!(spec.replicas.unwrap() >= 2, "at least two replicas");
    let pod = spec.template.spec.as_ref().unwrap();
    let c = first_container(&deployment);
    assert_eq!(c.args.as_deref(), Some(&["run".to_owned()][..]));

    // Every environment variable is one `run` reads (catches a misspelt name,
    // which the worker would silently ignore).
    let cli = tenant_worker::config::Cli::command();
    let run = cli.find_subcommand("run").expect("run command");
    let known: BTreeSet<String> = run
        .get_arguments()
        .chain(cli.get_arguments())
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    for e in c.env.as_ref().unwrap() {
        assert!(
            known.contains(&e.name) || ENV_NOT_IN_FLAGS.contains(&e.name.as_str()),
            "env {} is not read by `tenant-worker run` (known: {known:?})",
            e.name
        );
    }

    // NATS_URL from the Secret.
    let nats = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == "NATS_URL")
        .expect("NATS_URL");
    let key_ref = nats
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("NATS_URL from a Secret");
    let secret: Secret = typed(find(&docs, "Secret", &key_ref.name));
    assert!(secret.string_data.unwrap().contains_key(&key_ref.key));

    // The replica id is the pod name.
    let replica = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == "TENANT_WORKER_REPLICA_ID")
        .expect("TENANT_WORKER_REPLICA_ID");
    assert_eq!(
        replica
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .map(|f| f.field_path.as_str()),
        Some("metadata.name")
    );

    // The plans: a file of the mounted ConfigMap.
    let plans_path = env_value(c, "TENANT_WORKER_PLANS").expect("TENANT_WORKER_PLANS");
    let mount = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| plans_path.starts_with(&format!("{}/", m.mount_path)))
        .expect("TENANT_WORKER_PLANS is in a mounted volume");
    let volume = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == mount.name)
        .unwrap();
    let cm_name = &volume.config_map.as_ref().expect("a ConfigMap volume").name;
    let cm: ConfigMap = typed(find(&docs, "ConfigMap", cm_name));
    let key = &plans_path[mount.mount_path.len() + 1..];
    assert!(cm.data.unwrap().contains_key(key), "{cm_name} has {key}");

    // The chart: baked into the image by the Dockerfile.
    let chart = env_value(c, "TENANT_WORKER_CHART").expect("TENANT_WORKER_CHART");
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    assert!(
        dockerfile
            .lines()
            .any(|l| l.starts_with("COPY") && l.ends_with(&format!(" {chart}/"))),
        "the Dockerfile copies the chart to {chart}/"
    );

    // Probes and metrics on the named port `http` 9090.
    let ports = c.ports.as_ref().unwrap();
    assert!(ports.iter().any(|p| p.name.as_deref() == Some("http")
        && p.container_port == 9090
        && p.protocol.as_deref() == Some("TCP")));
    let probe_path = |p: Option<&k8s_openapi::api::core::v1::Probe>| {
        let get = p
            .and_then(|p| p.http_get.as_ref())
            .expect("an httpGet probe");
        assert_eq!(get.port, IntOrString::String("http".into()));
        get.path.clone().unwrap()
    };
    assert_eq!(probe_path(c.liveness_probe.as_ref()), "/healthz");
    assert_eq!(probe_path(c.readiness_probe.as_ref()), "/readyz");
    let annotations = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .clone()
        .unwrap();
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "9090");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    let listen = env_value(c, "TENANT_WORKER_METRICS_LISTEN").unwrap();
    assert!(listen.ends_with(":9090"), "{listen}");

    // Resources.
    let resources = c.resources.as_ref().unwrap();
    for field in [&resources.requests, &resources.limits] {
        let f = field.as_ref().expect("requests and limits");
        assert!(f.contains_key("cpu") && f.contains_key("memory"));
    }

    // Locked down: non-root, read-only root, no escalation, no capabilities,
    // the runtime's seccomp profile.
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(psc.run_as_user.unwrap() > 0);
    assert_eq!(
        psc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_owned()][..])
    );
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    assert!(sc.privileged.is_none() || sc.privileged == Some(false));

    // The kubelet waits longer than the worker's own shutdown grace.
    let grace = env_value(c, "TENANT_WORKER_SHUTDOWN_GRACE_SECS")
        .map_or_else(default_shutdown_grace, |v| v.parse::<i64>().unwrap());
    assert!(
        pod.termination_grace_period_seconds.unwrap() > grace + 5,
        "terminationGracePeriodSeconds must exceed the shutdown grace ({grace} s) with a margin"
    );

    // Spread over nodes.
    let spread = pod.topology_spread_constraints.as_ref().unwrap();
    assert!(
        spread
            .iter()
            .any(|t| t.topology_key == "kubernetes.io/hostname")
    );
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    for t in spread {
        let selector = t
            .label_selector
            .as_ref()
            .unwrap()
            .match_labels
            .clone()
            .unwrap();
        assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
    }
    let selector = spec.selector.match_labels.clone().unwrap();
    assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));

    // The PodDisruptionBudget keeps one replica and selects these pods.
    let pdb: PodDisruptionBudget = typed(find(&docs, "PodDisruptionBudget", "tenant-worker"));
    let pdb_spec = pdb.spec.unwrap();
    assert_eq!(pdb_spec.min_available, Some(IntOrString::Int(1)));
    let pdb_selector = pdb_spec.selector.unwrap().match_labels.unwrap();
    assert!(
        pdb_selector
            .iter()
            .all(|(k, v)| pod_labels.get(k) == Some(v))
    );

    // It runs as the ServiceAccount that the RBAC binds, with its token.
    let sa_name = pod.service_account_name.as_deref().unwrap();
    find(&docs, "ServiceAccount", sa_name);
    assert_ne!(pod.automount_service_account_token, Some(false));
}

/// The default of `run --shutdown-grace-secs`, from the flag's definition
/// (not from this process's environment).
fn default_shutdown_grace() -> i64 {
    use clap::CommandFactory;
    let cli = tenant_worker::config::Cli::command();
    let run = cli.find_subcommand("run").expect("run command");
    let arg = run
        .get_arguments()
        .find(|a| a.get_id() == "shutdown_grace_secs")
        .expect("--shutdown-grace-secs");
    arg.get_default_values()[0]
        .to_string_lossy()
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------
// NACK resources against what the worker creates
// ---------------------------------------------------------------------------

fn nack<S: DeserializeOwned>(docs: &[Doc], kind: &str) -> Vec<S> {
    docs.iter()
        .filter(|d| d.kind() == kind && d.value["apiVersion"] == "jetstream.nats.io/v1beta2")
        .map(|d| typed::<NackObject<S>>(d).spec)
        .collect()
}

#[tokio::test]
async fn nack_resources_are_the_topology_the_worker_creates() {
    use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, ReplayPolicy};
    use async_nats::jetstream::stream::{DiscardPolicy, RetentionPolicy, StorageType};

    let docs = objects();
    let streams: Vec<StreamSpec> = nack(&docs, "Stream");
    let consumers: Vec<ConsumerSpec> = nack(&docs, "Consumer");
    let buckets: Vec<KeyValueSpec> = nack(&docs, "KeyValue");

    // The names are the contract's.
    let names: BTreeSet<&str> = streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([LIFECYCLE_STREAM, STATUS_STREAM, DEADLETTER_STREAM])
    );
    let subjects = |name: &str| -> Vec<String> {
        streams
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .subjects
            .clone()
    };
    assert_eq!(
        subjects(LIFECYCLE_STREAM),
        [format!("{LIFECYCLE_SUBJECT_PREFIX}.>")]
    );
    assert_eq!(
        subjects(STATUS_STREAM),
        [format!("{STATUS_SUBJECT_PREFIX}.>")]
    );
    assert_eq!(
        subjects(DEADLETTER_STREAM),
        [format!("{DEADLETTER_SUBJECT_PREFIX}.>")]
    );
    assert_eq!(consumers.len(), 1);
    assert_eq!(consumers[0].durable_name, CONSUMER_NAME);
    assert_eq!(consumers[0].stream_name, LIFECYCLE_STREAM);
    let bucket_names: BTreeSet<&str> = buckets.iter().map(|b| b.bucket.as_str()).collect();
    assert_eq!(bucket_names, BTreeSet::from([STATE_BUCKET, ROUTES_BUCKET]));

    // The settings are what ensure_topology creates, with the flags the
    // Deployment sets, on a real nats-server.
    let deployment: Deployment = typed(find(&docs, "Deployment", "tenant-worker"));
    let c = first_container(&deployment);
    let mut settings = tenant_worker::bus::TopologySettings::default();
    if let Some(r) = env_value(c, "TENANT_WORKER_STREAM_REPLICAS") {
        settings.replicas = r.parse().unwrap();
    }
    if let Some(m) = env_value(c, "TENANT_WORKER_MAX_DELIVER") {
        settings.max_deliver = m.parse().unwrap();
    }
    if let Some(a) = env_value(c, "TENANT_WORKER_ACK_WAIT_SECS") {
        settings.ack_wait = Duration::from_secs(a.parse().unwrap());
    }
    let nats = tenant_worker_test_support::nats_server::NatsServer::start(None).unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    tenant_worker::bus::ensure_topology(&js, &settings)
        .await
        .unwrap();

    let retention = |s: &str| match s {
        "limits" => RetentionPolicy::Limits,
        "interest" => RetentionPolicy::Interest,
        "workqueue" => RetentionPolicy::WorkQueue,
        other => panic!("retention {other}"),
    };
    let storage = |s: &str| match s {
        "file" => StorageType::File,
        "memory" => StorageType::Memory,
        other => panic!("storage {other}"),
    };
    for s in &streams {
        let info = js
            .get_stream(&s.name)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .clone();
        let live = info.config;
        let at = &s.name;
        assert_eq!(live.subjects, s.subjects, "{at}");
        assert_eq!(
            live.description.as_deref(),
            Some(s.description.as_str()),
            "{at}"
        );
        assert_eq!(live.retention, retention(&s.retention), "{at}");
        let discard = match s.discard.as_str() {
            "old" => DiscardPolicy::Old,
            "new" => DiscardPolicy::New,
            other => panic!("discard {other}"),
        };
        assert_eq!(live.discard, discard, "{at}");
        assert_eq!(live.storage, storage(&s.storage), "{at}");
        assert_eq!(live.num_replicas, s.replicas, "{at}");
        assert_eq!(
            live.duplicate_window,
            go_duration(&s.duplicate_window),
            "{at}"
        );
        // What NACK leaves at its defaults is unlimited, as the worker's is.
        assert_eq!(live.max_age, Duration::ZERO, "{at}");
        assert_eq!((live.max_messages, live.max_bytes), (-1, -1), "{at}");
    }

    let spec = &consumers[0];
    let stream = js.get_stream(LIFECYCLE_STREAM).await.unwrap();
    let live = stream
        .consumer_info(CONSUMER_NAME)
        .await
        .unwrap()
        .config
        .clone();
    assert_eq!(
        live.durable_name.as_deref(),
        Some(spec.durable_name.as_str())
    );
    assert_eq!(live.description.as_deref(), Some(spec.description.as_str()));
    assert_eq!(live.deliver_policy, DeliverPolicy::All);
    assert_eq!(spec.deliver_policy, "all");
    assert_eq!(live.ack_policy, AckPolicy::Explicit);
    assert_eq!(spec.ack_policy, "explicit");
    assert_eq!(live.replay_policy, ReplayPolicy::Instant);
    assert_eq!(spec.replay_policy, "instant");
    assert_eq!(live.ack_wait, go_duration(&spec.ack_wait));
    assert_eq!(live.max_deliver, spec.max_deliver);
    assert_eq!(live.max_ack_pending, spec.max_ack_pending);
    assert_eq!(live.filter_subject, spec.filter_subject);
    assert!(live.deliver_subject.is_none(), "a pull consumer");

    for b in &buckets {
        let mut backing = js.get_stream(format!("KV_{}", b.bucket)).await.unwrap();
        let live = backing.info().await.unwrap().config.clone();
        let at = &b.bucket;
        assert_eq!(live.max_messages_per_subject, b.history, "{at}");
        assert_eq!(
            live.description.as_deref(),
            Some(b.description.as_str()),
            "{at}"
        );
        assert_eq!(live.storage, storage(&b.storage), "{at}");
        assert_eq!(live.num_replicas, b.replicas, "{at}");
    }
}

// ---------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------

/// One permission: (verb, API group, resource[/subresource]), with the object
/// name when a rule restricts names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Permission {
    verb: String,
    group: String,
    resource: String,
    name: Option<String>,
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {group}/{}", self.verb, self.resource)?;
        if let Some(n) = &self.name {
            write!(f, " ({n})")?;
        }
        Ok(())
    }
}

fn matches_any(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

/// RBAC's resource matching: exact, `*`, or `*/<subresource>`.
fn resource_matches(rule: &[String], resource: &str) -> bool {
    rule.iter().any(|r| {
        r == "*"
            || r == resource
            || resource
                .split_once('/')
                .is_some_and(|(_, sub)| r == &format!("*/{sub}"))
    })
}

/// Whether `rule` allows the request `(verb, group, resource, name)`, as
/// Kubernetes' RBAC authorizer decides for resource requests.
fn allows(rule: &PolicyRule, p: &Permission) -> bool {
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    let resources = rule.resources.as_deref().unwrap_or_default();
    let names = rule.resource_names.as_deref().unwrap_or_default();
    matches_any(&rule.verbs, &p.verb)
        && matches_any(groups, &p.group)
        && resource_matches(resources, &p.resource)
        && (names.is_empty() || p.name.as_ref().is_some_and(|n| names.contains(n)))
}

/// Every (verb, group, resource, name) a set of rules names, expanded.
fn expand(rules: &[PolicyRule]) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for rule in rules {
        let names: Vec<Option<String>> = match rule.resource_names.as_deref() {
            None | Some([]) => vec![None],
            Some(names) => names.iter().cloned().map(Some).collect(),
        };
        for verb in &rule.verbs {
            for group in rule.api_groups.as_deref().unwrap_or_default() {
                for resource in rule.resources.as_deref().unwrap_or_default() {
                    for name in &names {
                        out.insert(Permission {
                            verb: verb.clone(),
                            group: group.clone(),
                            resource: resource.clone(),
                            name: name.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

/// The ClusterRoles bound to the worker's ServiceAccount, by name.
fn worker_cluster_roles(docs: &[Doc]) -> BTreeMap<String, ClusterRole> {
    let deployment: Deployment = typed(find(docs, "Deployment", "tenant-worker"));
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let sa = pod.service_account_name.unwrap();
    let ns = deployment.metadata.namespace.unwrap();
    let mut out = BTreeMap::new();
    for doc in docs.iter().filter(|d| d.kind() == "ClusterRoleBinding") {
        let binding: ClusterRoleBinding = typed(doc);
        let binds_worker = binding.subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount" && s.name == sa && s.namespace.as_deref() == Some(&ns)
        });
        if binds_worker {
            assert_eq!(binding.role_ref.kind, "ClusterRole");
            let role: ClusterRole = typed(find(docs, "ClusterRole", &binding.role_ref.name));
            out.insert(binding.role_ref.name.clone(), role);
        }
    }
    // No namespaced Roles or RoleBindings: tenant namespaces do not exist yet.
    assert!(
        docs.iter()
            .all(|d| d.kind() != "Role" && d.kind() != "RoleBinding")
    );
    out
}

/// The rules the worker writes into every tenant's `tenant-admin` Role.
fn tenant_admin_rules() -> Vec<PolicyRule> {
    use tenant_worker::steps::{IsolationObject, Step, StepObjects};
    let catalog = tenant_worker::plans::PlanCatalog::load(None).unwrap();
    let tenant = tenant("acme");
    let objects = tenant_worker::steps::TenantObjects {
        tenant: &tenant,
        namespace: "tenant-acme",
        plan: catalog.get("free").unwrap(),
        gateway_namespace: "tenant-gateway",
    };
    let StepObjects::Isolation(rbac) = Step::Rbac.objects(&objects) else {
        unreachable!("the RBAC step builds objects");
    };
    rbac.into_iter()
        .find_map(|o| match o {
            IsolationObject::Role(role) => role.rules,
            _ => None,
        })
        .expect("the RBAC step builds a Role")
}

/// A client for this test's own requests, told apart by its `User-Agent`.
fn observer(h: &Harness) -> kube::Client {
    let mut config = kube::Config::new(h.api.url().parse().unwrap());
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(OBSERVER),
    ));
    tenant_worker::cluster::client_from(config).unwrap()
}

async fn expect_completion(h: &Harness, tenant: &str, id: uuid::Uuid, kind: &str) -> Value {
    let done = h.completion(tenant, id).await;
    assert_eq!(done["type"], kind, "{done:#}");
    done
}

async fn wait_namespace_gone(kube: &kube::Client, ns: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while Api::<Namespace>::all(kube.clone())
        .get_opt(ns)
        .await
        .unwrap()
        .is_some()
    {
        assert!(tokio::time::Instant::now() < deadline, "{ns} not removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Drives the worker through every path that touches the cluster, recording
/// the requests; returns the worker's (not this test's) requests.
async fn record_provisioning() -> Vec<RecordedRequest> {
    let mut h = Harness::start_bare(EmbeddedApiConfig::default()).await;
    h.api.requests().start();
    h.start_worker(|_| {}).await;
    let kube = observer(&h);

    // Install on premium with an ingress: every kind the sample chart renders
    // (ConfigMap, Service, ServiceAccount, Deployment, HPA, Ingress, PDB).
    let mut install = requested("rbac", "premium");
    install.data["values"] = json!({"ingress": {"enabled": true}});
    h.publish(&install).await;
    expect_completion(&h, "rbac", install.id, "tenant.provisioned").await;
    let kinds: BTreeSet<String> = h
        .api
        .requests()
        .snapshot()
        .iter()
        .filter(|r| r.verb == "patch")
        .map(|r| r.resource.clone())
        .collect();
    for plural in [
        "configmaps",
        "services",
        "serviceaccounts",
        "deployments",
        "horizontalpodautoscalers",
        "ingresses",
        "poddisruptionbudgets",
    ] {
        assert!(
            kinds.contains(plural),
            "the install applied no {plural}: {kinds:?}"
        );
    }

    // Upgrade to standard without the ingress: the HPA and the Ingress go
    // (objects the new revision lacks are deleted).
    let mut upgrade = upgraded("rbac", "standard");
    upgrade.data["values"] = json!({"ingress": {"enabled": false}});
    h.publish(&upgrade).await;
    expect_completion(&h, "rbac", upgrade.id, "tenant.upgrade_completed").await;

    // A first install that fails for good at its last object (the Ingress,
    // after the Deployment): the release is uninstalled (its objects
    // deleted) and every step compensated in reverse.
    h.api.faults().add_rule(
        FaultRule::new(422)
            .method("PATCH")
            .resource("ingresses")
            .namespace("tenant-rbacfail")
            .message("Ingress.networking.k8s.io is invalid"),
    );
    let mut doomed = requested("rbacfail", "standard");
    doomed.data["values"] = json!({"ingress": {"enabled": true}});
    h.publish(&doomed).await;
    let failed = expect_completion(&h, "rbacfail", doomed.id, "tenant.failed").await;
    assert_eq!(failed["data"]["compensated"], true, "{failed:#}");
    h.api.faults().clear();
    wait_namespace_gone(&kube, "tenant-rbacfail").await;

    // Drift: someone deletes the Deployment; `reconcile --apply` puts it back.
    let deployments = Api::<Deployment>::namespaced(kube.clone(), "tenant-rbac");
    let list = deployments.list(&Default::default()).await.unwrap();
    let name = list.items[0].metadata.name.clone().unwrap();
    deployments
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenant-worker"))
        .args(["reconcile", "--apply", "--kubeconfig"])
        .arg(h.kubeconfig())
        .env("NATS_URL", h.nats.url())
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(deployments.get_opt(&name).await.unwrap().is_some());

    // Deprovisioning.
    let gone = deleted("rbac");
    h.publish(&gone).await;
    expect_completion(&h, "rbac", gone.id, "tenant.deprovisioned").await;
    wait_namespace_gone(&kube, "tenant-rbac").await;
    h.wait_idle().await;
    h.stop_worker().await.unwrap();

    h.api
        .requests()
        .snapshot()
        .into_iter()
        .filter(|r| r.user_agent.as_deref() != Some(OBSERVER))
        .collect()
}

/// Permissions that no recorded request uses but that a rule of the
/// `tenant-worker` ClusterRole may still hold, each with why. Empty: every
/// rule is used. (The escalation need is the separate
/// `tenant-worker-grantable` ClusterRole, checked against `build_role`.)
const UNUSED_BUT_JUSTIFIED: &[(&str, &str)] = &[];

#[tokio::test]
async fn rbac_allows_every_request_the_worker_makes_and_nothing_else() {
    let docs = objects();
    let roles = worker_cluster_roles(&docs);
    let used_role = roles
        .get("tenant-worker")
        .expect("ClusterRole tenant-worker bound");
    let grantable = roles
        .get("tenant-worker-grantable")
        .expect("ClusterRole tenant-worker-grantable bound");
    assert_eq!(
        roles.len(),
        2,
        "unexpected ClusterRoles bound: {:?}",
        roles.keys()
    );
    let all_rules: Vec<PolicyRule> = roles
        .values()
        .flat_map(|r| r.rules.clone().unwrap_or_default())
        .collect();

    // Escalation prevention: the worker can only write the tenant-admin Role
    // (and bind it) if it holds every permission in it; the grantable role is
    // exactly that, no more.
    let admin = tenant_admin_rules();
    assert_eq!(
        expand(grantable.rules.as_deref().unwrap()),
        expand(&admin),
        "tenant-worker-grantable must equal the rules of build_role"
    );
    for p in expand(&admin) {
        assert!(all_rules.iter().any(|r| allows(r, &p)), "cannot grant {p}");
    }

    let requests = record_provisioning().await;
    assert!(!requests.is_empty());

    // Non-resource requests are discovery only (allowed to every
    // authenticated client by the built-in system:discovery ClusterRole).
    let non_resource: BTreeSet<String> = requests
        .iter()
        .filter(|r| !r.is_resource())
        .map(|r| format!("{} {}", r.verb, r.path))
        .collect();
    for r in &non_resource {
        let path = r.split_once(' ').unwrap().1;
        assert!(
            r.starts_with("get ")
                && (path == "/api"
                    || path.starts_with("/api/")
                    || path == "/apis"
                    || path.starts_with("/apis/")
                    || path == "/version"),
            "a non-resource request beyond discovery: {r}"
        );
    }

    let made: BTreeSet<Permission> = requests
        .iter()
        .filter(|r| r.is_resource())
        .map(|r| Permission {
            verb: r.verb.clone(),
            group: r.api_group.clone().unwrap(),
            resource: r.resource.clone(),
            name: r.name.clone(),
        })
        .collect();
    let summary: BTreeSet<String> = made
        .iter()
        .map(|p| {
            Permission {
                name: None,
                ..p.clone()
            }
            .to_string()
        })
        .collect();
    println!("the worker's requests (verb group/resource):");
    for s in &summary {
        println!("  {s}");
    }
    println!("non-resource requests: {non_resource:?}");

    // 1. Every request is allowed.
    let denied: Vec<String> = made
        .iter()
        .filter(|p| !all_rules.iter().any(|r| allows(r, p)))
        .map(ToString::to_string)
        .collect();
    assert!(
        denied.is_empty(),
        "requests the worker made that k8s/worker/rbac.yaml does not allow:\n  {}",
        denied.join("\n  ")
    );

    // 2. Every permission of the tenant-worker ClusterRole is used.
    let justified: BTreeSet<&str> = UNUSED_BUT_JUSTIFIED.iter().map(|(p, _)| *p).collect();
    let unused: Vec<String> = expand(used_role.rules.as_deref().unwrap())
        .into_iter()
        .filter(|granted| {
            !made.iter().any(|p| {
                p.verb == granted.verb
                    && p.group == granted.group
                    && p.resource == granted.resource
                    && (granted.name.is_none() || granted.name == p.name)
            })
        })
        .map(|p| p.to_string())
        .filter(|p| !justified.contains(p.as_str()))
        .collect();
    assert!(
        unused.is_empty(),
        "permissions of ClusterRole tenant-worker that no request used (least privilege):\n  {}",
        unused.join("\n  ")
    );
}

// ---------------------------------------------------------------------------
// compose/ and the Dockerfile (Docker is not run here: their shape is checked)
// ---------------------------------------------------------------------------

#[test]
fn compose_and_the_dockerfile_agree_with_the_worker() {
    use clap::CommandFactory;
    // compose/plans.yaml: the shipped plans and quotas, with an image that exists.
    let shipped = tenant_worker::plans::PlanCatalog::load(None).unwrap();
    let compose_plans =
        tenant_worker::plans::PlanCatalog::load(Some(&Path::new(ROOT).join("compose/plans.yaml")))
            .unwrap();
    assert_eq!(
        shipped.names().collect::<Vec<_>>(),
        compose_plans.names().collect::<Vec<_>>()
    );
    for name in shipped.names() {
        assert_eq!(
            shipped.get(name).unwrap().quota,
            compose_plans.get(name).unwrap().quota,
            "{name}"
        );
    }

    // The worker service: flags and environment variables `run` knows.
    let text = std::fs::read_to_string(Path::new(ROOT).join("compose/compose.yaml")).unwrap();
    let compose: Value = serde_yaml_ng::from_str(&text).unwrap();
    for service in ["nats", "k3s", "kubeconfig", "worker"] {
        assert!(
            compose["services"][service].is_object(),
            "service {service}"
        );
    }
    let worker = &compose["services"]["worker"];
    let cli = tenant_worker::config::Cli::command();
    let run = cli.find_subcommand("run").unwrap();
    let longs: BTreeSet<String> = run
        .get_arguments()
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    let command: Vec<&str> = worker["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(command[0], "run");
    for flag in command.iter().filter(|a| a.starts_with("--")) {
        assert!(longs.contains(*flag), "compose: run has no {flag}");
    }
    let envs: BTreeSet<String> = run
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    for name in worker["environment"].as_object().unwrap().keys() {
        assert!(
            envs.contains(name) || ENV_NOT_IN_FLAGS.contains(&name.as_str()),
            "compose: run does not read {name}"
        );
    }

    // The image runs the worker as a non-root user by number.
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    let last_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    assert!(last_stage.starts_with("gcr.io/distroless/cc-debian12:nonroot"));
    assert!(last_stage.contains("\nUSER 65532:65532\n"));
    assert!(last_stage.contains("\nENTRYPOINT [\"/tenant-worker\"]\n"));
    assert!(last_stage.contains("\nCMD [\"run\"]\n"));
}
