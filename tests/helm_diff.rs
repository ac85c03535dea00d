//! Differential test of the chart renderer against Helm v4 itself.
//!
//! Helm's own Go renderer comes from the PyPI package `helm-python-sdk` (a
//! shared library with Helm v4 inside; `scripts/install-helm-sdk.sh` puts it
//! in `.venv-helm`). Every case renders the same chart, values and release
//! with both, and compares each template: YAML templates as their lists of
//! documents parsed to JSON, other templates (NOTES.txt, the fixtures'
//! `.txt` probes) as text. Helm is run once for all cases
//! (`tests/helm/render.py` takes a list of requests).
//!
//! The cases: the chart `helm create` writes, with the value sets its
//! templates branch on; the sample chart `k8s/charts/tenant-app` with each
//! plan of `k8s/plans.yaml` and the options a tenant turns on; the fixture
//! charts under `tests/fixtures/charts/` (every function family, the
//! built-in objects); `merge_values` against Helm's coalescing; template
//! errors (same file and line, `required`'s and `fail`'s messages verbatim);
//! `tenant-worker render` against Helm; and YAML constructs read as Helm's
//! YAML reader reads them (tests/helm_diff/yaml_constructs.rs).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use helm::{
    Capabilities, Chart, ReleaseInfo, RenderError, RenderErrorKind, manifests, merge_values, render,
};
use serde_json::{Value, json};
use tenant_worker::plans::PlanCatalog;

use crate::support::assert_succeeded;

#[path = "helm_diff/random.rs"]
mod random;
#[path = "helm_diff/shared_maps.rs"]
mod shared_maps;
#[path = "helm_diff/subcharts.rs"]
mod subcharts;
#[path = "helm_diff/yaml_constructs.rs"]
mod yaml_constructs;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with helm-python-sdk: `TENANT_WORKER_HELM_PYTHON`, else the
/// repository's `.venv-helm`. Missing is a failure, not a skip: this test is
/// the proof that the renderer is Helm's.
fn python() -> PathBuf {
    let p = std::env::var_os("TENANT_WORKER_HELM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv-helm/bin/python"));
    assert!(
        p.exists(),
        "no Python with helm-python-sdk at {}: run scripts/install-helm-sdk.sh (or set TENANT_WORKER_HELM_PYTHON)",
        p.display()
    );
    p
}

/// Runs Helm on `requests` (see tests/helm/render.py), one result each.
fn helm(requests: &[Value]) -> Vec<Value> {
    let mut child = Command::new(python())
        .arg(repo().join("tests/helm/render.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts the Helm reference renderer");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(
            serde_json::to_string(requests)
                .expect("requests serialize")
                .as_bytes(),
        )
        .expect("writes the requests");
    let out = child
        .wait_with_output()
        .expect("Helm reference renderer runs");
    assert_succeeded(&out, "tests/helm/render.py");
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("render.py writes JSON");
    assert_eq!(results.len(), requests.len());
    results
}

/// Helm's `-f a -f b`: maps merge deeply, anything else replaces.
fn helm_layers(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut out = x.clone();
            for (k, v) in y {
                let merged = match out.get(k) {
                    Some(old @ Value::Object(_)) if v.is_object() => helm_layers(old, v),
                    _ => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        _ => b.clone(),
    }
}

struct Case {
    name: String,
    chart: PathBuf,
    plan: Value,
    overrides: Value,
    release: ReleaseInfo,
}

fn release(name: &str, namespace: &str) -> ReleaseInfo {
    ReleaseInfo {
        name: name.into(),
        namespace: namespace.into(),
        revision: 1,
        is_install: true,
        is_upgrade: false,
    }
}

fn case(name: &str, chart: &Path, plan: Value, overrides: Value) -> Case {
    Case {
        name: name.into(),
        chart: chart.to_path_buf(),
        plan,
        overrides,
        release: release("acme", "tenant-acme"),
    }
}

fn request(c: &Case) -> Value {
    json!({
        "mode": "render",
        "chart_dir": c.chart,
        "values": helm_layers(&c.plan, &c.overrides),
        "name": c.release.name,
        "namespace": c.release.namespace,
        "revision": c.release.revision,
        "is_install": c.release.is_install,
        "is_upgrade": c.release.is_upgrade,
    })
}

/// The case's chart, loaded, and its values as the worker merges them.
fn chart_and_values(c: &Case) -> (Chart, Value) {
    let chart = Chart::load(&c.chart).unwrap_or_else(|e| panic!("case {}: {e}", c.name));
    let values = merge_values(&chart.values, &c.plan, &c.overrides);
    (chart, values)
}

/// `helm template`'s `lookup`: nothing in the cluster.
fn offline() -> std::sync::Arc<dyn helm::Lookup> {
    std::sync::Arc::new(helm::Offline)
}

fn ours(c: &Case) -> Result<BTreeMap<String, String>, RenderError> {
    let (chart, values) = chart_and_values(c);
    render(
        &chart,
        &values,
        &c.release,
        &Capabilities::default(),
        offline(),
    )
}

fn is_yaml(template: &str) -> bool {
    template.ends_with(".yaml") || template.ends_with(".yml")
}

/// The YAML documents of one template, parsed (the normalisation).
fn documents(template: &str, text: &str) -> Result<Vec<Value>, String> {
    let one = BTreeMap::from([(template.to_owned(), text.to_owned())]);
    manifests(&one)
        .map(|m| m.into_iter().map(|m| m.object).collect())
        .map_err(|e| e.to_string())
}

/// Compares one case's renderings; the differences, described.
fn compare(
    name: &str,
    helm: &BTreeMap<String, String>,
    ours: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut diffs = Vec::new();
    let hk: Vec<&String> = helm.keys().collect();
    let ok: Vec<&String> = ours.keys().collect();
    if hk != ok {
        diffs.push(format!(
            "{name}: templates differ:\n  helm: {hk:?}\n  ours: {ok:?}"
        ));
        return diffs;
    }
    for (template, h) in helm {
        let o = &ours[template];
        if !is_yaml(template) {
            if h.trim() != o.trim() {
                diffs.push(format!(
                    "{name}: {template} differs as text\n--- helm\n{h}\n--- ours\n{o}\n{}",
                    first_difference(h, o)
                ));
            }
            continue;
        }
        match (documents(template, h), documents(template, o)) {
            (Ok(hd), Ok(od)) if hd == od => {}
            (Ok(hd), Ok(od)) => {
                let index = hd.iter().zip(&od).position(|(a, b)| a != b).unwrap_or(hd.len().min(od.len()));
                diffs.push(format!(
                    "{name}: {template} document {index} differs ({} documents in Helm's, {} in ours)\n--- helm\n{h}\n--- ours\n{o}\n{}",
                    hd.len(),
                    od.len(),
                    first_difference(h, o)
                ));
            }
            (hr, or) => diffs.push(format!("{name}: {template} does not parse: helm {:?}, ours {:?}\n--- helm\n{h}\n--- ours\n{o}", hr.err(), or.err())),
        }
    }
    diffs
}

fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!(
                "first difference at line {}:\n  helm: {x:?}\n  ours: {y:?}",
                i + 1
            );
        }
    }
    format!(
        "line counts differ: helm {}, ours {}",
        a.lines().count(),
        b.lines().count()
    )
}

/// Runs `cases` through both renderers; fails with every difference.
fn run_cases(cases: &[Case]) {
    run_cases_with(cases, ours);
}

/// As [`run_cases`], with `ours` as this side's renderer.
fn run_cases_with<E: std::fmt::Display>(
    cases: &[Case],
    ours: impl Fn(&Case) -> Result<BTreeMap<String, String>, E>,
) {
    let requests: Vec<Value> = cases.iter().map(request).collect();
    let results = helm(&requests);
    let mut diffs = Vec::new();
    for (c, r) in cases.iter().zip(&results) {
        let theirs: BTreeMap<String, String> = match r.get("ok") {
            Some(ok) => serde_json::from_value(ok.clone()).expect("a map of rendered templates"),
            None => {
                diffs.push(format!("{}: Helm failed: {}", c.name, r["error"]));
                continue;
            }
        };
        match ours(c) {
            Ok(mine) => diffs.extend(compare(&c.name, &theirs, &mine)),
            Err(e) => diffs.push(format!("{}: ours failed where Helm rendered: {e}", c.name)),
        }
    }
    assert!(
        diffs.is_empty(),
        "{} difference(s) from Helm:\n\n{}",
        diffs.len(),
        diffs.join("\n\n")
    );
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/charts").join(name)
}

fn sample_chart() -> PathBuf {
    repo().join("k8s/charts/tenant-app")
}

/// The chart `helm create` writes (Helm writes it, in a temporary directory).
fn scaffold(dir: &Path) -> PathBuf {
    let r = helm(&[json!({"mode": "create", "name": "webapp", "dir": dir})]);
    PathBuf::from(
        r[0]["ok"]
            .as_str()
            .unwrap_or_else(|| panic!("helm create failed: {}", r[0])),
    )
}

#[test]
fn helm_create_chart_renders_as_helm_renders_it() {
    let tmp = tempfile::tempdir().unwrap();
    let chart = scaffold(tmp.path());
    let none = json!({});
    let sets = [
        ("defaults", json!({})),
        (
            "ingress with hosts and tls",
            json!({"ingress": {"enabled": true, "className": "nginx",
                "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                "hosts": [{"host": "a.example.com", "paths": [{"path": "/", "pathType": "Prefix"}, {"path": "/api", "pathType": "Exact"}]},
                          {"host": "b.example.com", "paths": [{"path": "/", "pathType": "ImplementationSpecific"}]}],
                "tls": [{"secretName": "tls-a", "hosts": ["a.example.com", "b.example.com"]}]}}),
        ),
        (
            "autoscaling",
            json!({"autoscaling": {"enabled": true, "minReplicas": 2, "maxReplicas": 7, "targetMemoryUtilizationPercentage": 75}}),
        ),
        (
            "no service account",
            json!({"serviceAccount": {"create": false, "name": "shared"}}),
        ),
        (
            "service account annotations",
            json!({"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}, "automount": false}}),
        ),
        (
            "httpRoute",
            json!({"httpRoute": {"enabled": true, "annotations": {"a": "b"}}}),
        ),
        (
            "httpRoute without hostnames",
            json!({"httpRoute": {"enabled": true, "hostnames": [], "parentRefs": [{"name": "gw", "namespace": "gateways"}]}}),
        ),
        (
            "pod placement and volumes",
            json!({"podAnnotations": {"prometheus.io/scrape": "true", "note": "yes"}, "podLabels": {"team": "a", "tier": "web"},
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
                "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100,
                    "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "x"}}}}]}},
                "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}}],
                "volumeMounts": [{"name": "cache", "mountPath": "/cache", "readOnly": false}],
                "imagePullSecrets": [{"name": "regcred"}]}),
        ),
        (
            "resources and security",
            json!({"resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": 0.25, "memory": "64Mi"}},
                "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "capabilities": {"drop": ["ALL"]}},
                "podSecurityContext": {"fsGroup": 2000}, "replicaCount": 3,
                "image": {"tag": "1.27.1", "pullPolicy": "Always"}, "fullnameOverride": "custom-name-that-is-quite-long-and-goes-past-sixty-three-chars-x"}),
        ),
        (
            "NodePort",
            json!({"service": {"type": "NodePort", "port": 8080}, "nameOverride": "web"}),
        ),
        ("LoadBalancer", json!({"service": {"type": "LoadBalancer"}})),
    ];
    let cases: Vec<Case> = sets
        .into_iter()
        .map(|(n, v)| case(&format!("helm create: {n}"), &chart, none.clone(), v))
        .collect();
    run_cases(&cases);
}

#[test]
fn sample_chart_renders_as_helm_renders_it_for_every_plan() {
    let chart = sample_chart();
    let catalog =
        PlanCatalog::load(Some(&repo().join("k8s/plans.yaml"))).expect("k8s/plans.yaml loads");
    let mut cases = vec![case("sample: chart defaults", &chart, json!({}), json!({}))];
    let mut with_values = 0;
    for name in catalog.names() {
        let plan = catalog.get(name).expect("listed plan");
        if plan.values.as_object().is_some_and(|m| !m.is_empty()) {
            with_values += 1;
        }
        let mut layer = plan.values.clone();
        layer["image"] = json!({"tag": catalog.default_app_version()});
        cases.push(case(
            &format!("sample: plan {name}"),
            &chart,
            layer,
            json!({}),
        ));
    }
    assert!(
        with_values > 0,
        "k8s/plans.yaml gives no plan chart values; the sample chart's cases need them"
    );
    let standard = catalog
        .get("standard")
        .expect("plan standard")
        .values
        .clone();
    let options = [
        ("ingress", json!({"ingress": {"enabled": true}})),
        (
            "ingress with tls, class and annotations",
            json!({"ingress": {"enabled": true, "className": "nginx", "tlsSecretName": "acme-tls", "host": "{{ .Release.Name }}.{{ .Release.Namespace }}.apps.example.com",
                "path": "/app", "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"}}}),
        ),
        (
            "autoscaling",
            json!({"autoscaling": {"enabled": true, "minReplicas": 2, "maxReplicas": 8, "targetMemoryUtilizationPercentage": 70}}),
        ),
        (
            "config",
            json!({"config": {"LOG_LEVEL": "debug", "FEATURE_X": "yes", "RATIO": "1.0", "EMPTY": "", "TILDE": "~", "MULTI": "a\nb\n",
                "URL": "https://example.com/a?b=c#d", "QUOTE": "it's \"quoted\"", "UNICODE": "héllo ☃", "NUMBERISH": "0755", "item10": "x", "item9": "y",
                "LONG": "a sentence long enough to be folded by the YAML emitter at eighty columns, which the checksum sees"}}),
        ),
        (
            "pdb percentage",
            json!({"pdb": {"enabled": true, "minAvailable": "50%"}}),
        ),
        (
            "placement",
            json!({"podAnnotations": {"a": "b"}, "podLabels": {"tier": "web"}, "nodeSelector": {"pool": "tenants"},
                "tolerations": [{"key": "tenants", "operator": "Exists"}], "affinity": {"nodeAffinity": {}},
                "serviceAccount": {"create": false}, "imagePullSecrets": [{"name": "regcred"}]}),
        ),
    ];
    for (n, v) in options {
        cases.push(case(
            &format!("sample: standard plan + {n}"),
            &chart,
            standard.clone(),
            v,
        ));
    }
    run_cases(&cases);
}

#[test]
fn fixture_charts_exercise_every_function_family_as_helm_does() {
    let functions = fixture("functions");
    let mut cases = vec![case(
        "functions: defaults",
        &functions,
        json!({}),
        json!({}),
    )];
    cases.push(Case {
        name: "functions: an upgrade".into(),
        chart: functions.clone(),
        plan: json!({}),
        overrides: json!({"name": "Upgraded", "flag": false, "list": ["z", "y", "x", "w"], "map": {"a": null}}),
        release: ReleaseInfo { name: "tenant-with-a-long-name".into(), namespace: "ns".into(), revision: 7, is_install: false, is_upgrade: true },
    });
    cases.push(case(
        "patterns: defaults",
        &fixture("patterns"),
        json!({}),
        json!({}),
    ));
    cases.push(case(
        "patterns: other values",
        &fixture("patterns"),
        json!({"mode": "y", "sa": "custom", "env": {"Z": "last"}, "list": []}),
        json!({"annotations": {"checksum": null, "new": "1.0"}}),
    ));
    run_cases(&cases);
}

/// Renders `case` with our renderer from a chart loaded once, `runs`
/// times in each of `threads` threads at once; every rendering must be
/// `want`.
fn render_repeatedly(c: &Case, want: &BTreeMap<String, String>, threads: usize, runs: usize) {
    let (chart, values) = chart_and_values(c);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for run in 0..runs {
                    let got = render(
                        &chart,
                        &values,
                        &c.release,
                        &Capabilities::default(),
                        offline(),
                    )
                    .unwrap_or_else(|e| panic!("{}: run {run} failed: {e}", c.name));
                    if &got != want {
                        let diffs = compare(&c.name, want, &got);
                        panic!(
                            "{}: run {run} rendered something else:\n{}",
                            c.name,
                            diffs.join("\n")
                        );
                    }
                }
            });
        }
    });
}

/// The property of `shared_maps`: generated charts that change and share
/// maps in every way Go templates can render as Helm renders them, and the
/// same in every one of many renderings in 8 threads at once; so does the
/// `shared-maps` fixture chart (built like public charts that assemble
/// objects from files with helpers, `tpl`, `mergeOverwrite` and `deepCopy`),
/// 104 times.
#[test]
fn charts_that_change_shared_maps_render_as_helm_every_time_in_many_threads() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut cases = vec![case(
        "shared-maps fixture",
        &fixture("shared-maps"),
        json!({}),
        json!({}),
    )];
    for seed in 1..=150 {
        let chart = dir.path().join(format!("generated-{seed}"));
        shared_maps::write_chart(seed, &chart);
        cases.push(case(
            &format!("generated chart {seed}"),
            &chart,
            json!({}),
            json!({}),
        ));
    }
    run_cases(&cases);
    for (i, c) in cases.iter().enumerate() {
        let first = ours(c).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let runs = if i == 0 { 13 } else { 3 };
        render_repeatedly(c, &first, 8, runs);
    }
}

#[test]
fn merge_values_coalesces_as_helm_does() {
    let chart_dir = fixture("functions");
    let chart = Chart::load(&chart_dir).expect("fixture loads");
    let user_sets = [
        json!({}),
        json!({"name": null, "map": {"a": null, "c": {"d": null, "new": 1}}, "newkey": null, "list": ["x"]}),
        json!({"map": "scalar over a table", "int": {"table": "over a scalar"}}),
        json!({"nested": {"level1": {"level2": {"value": null, "other": [1, 2]}}}, "emptyMap": {"k": null}}),
    ];
    let requests: Vec<Value> = user_sets
        .iter()
        .map(|u| json!({"mode": "merge", "chart_dir": chart_dir, "values": u}))
        .collect();
    for (user, result) in user_sets.iter().zip(helm(&requests)) {
        let theirs = result
            .get("ok")
            .unwrap_or_else(|| panic!("Helm merge failed: {result}"));
        let mine = merge_values(&chart.values, &json!({}), user);
        assert_eq!(
            &normalise_numbers(&mine),
            &normalise_numbers(theirs),
            "merge of {user}"
        );
        // The same layers split between plan and event give the same result.
        let split = merge_values(&chart.values, user, &json!({}));
        assert_eq!(normalise_numbers(&split), normalise_numbers(theirs));
    }
}

/// JSON numbers as f64 (Helm's values are float64 after JSON).
fn normalise_numbers(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.iter().map(normalise_numbers).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), normalise_numbers(x)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Where and what Helm reports: (file, line, column if any, kind, message).
fn helm_error(message: &str) -> (String, usize, Option<usize>, RenderErrorKind, String) {
    let loc = |s: &str| -> (String, usize, Option<usize>) {
        let mut parts = s.rsplitn(3, ':').collect::<Vec<_>>();
        parts.reverse();
        match parts.as_slice() {
            [f, l, c] if c.parse::<usize>().is_ok() && l.parse::<usize>().is_ok() => {
                ((*f).into(), l.parse().unwrap(), c.parse().ok())
            }
            _ => {
                let (f, l) = s.rsplit_once(':').expect("file:line");
                (f.into(), l.parse().expect("a line number"), None)
            }
        }
    };
    if let Some(rest) = message.strip_prefix("execution error at (") {
        let (at, msg) = rest.split_once("): ").expect("execution error format");
        let (f, l, c) = loc(at);
        return (f, l, c, RenderErrorKind::Fail, msg.to_owned());
    }
    if let Some(rest) = message.strip_prefix("parse error at (") {
        let (at, msg) = rest.split_once("): ").expect("parse error format");
        let (f, l, c) = loc(at);
        return (f, l, c, RenderErrorKind::Parse, msg.to_owned());
    }
    let first = message.strip_prefix("template: ").unwrap_or(message);
    let at = first
        .split(['\n', ' '])
        .next()
        .expect("a location")
        .trim_end_matches(':');
    let (f, l, c) = loc(at);
    let msg = message
        .rsplit([':', '\n'])
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    (f, l, c, RenderErrorKind::Execution, msg)
}

#[test]
fn template_errors_name_the_same_file_and_line_as_helm() {
    let errors = fixture("errors");
    let parse = fixture("parse-error");
    let cases_spec = [
        ("required", &errors, json!({"case": "required"})),
        ("required piped", &errors, json!({"case": "required-piped"})),
        (
            "required inside include",
            &errors,
            json!({"case": "required-include"}),
        ),
        (
            "required inside tpl",
            &errors,
            json!({"case": "required-tpl"}),
        ),
        ("fail", &errors, json!({"case": "fail"})),
        ("nil pointer", &errors, json!({"case": "nil"})),
        (
            "nil pointer in a define",
            &errors,
            json!({"case": "nil-template"}),
        ),
        ("wrong argument type", &errors, json!({"case": "type"})),
        ("index out of range", &errors, json!({"case": "index"})),
        (
            "incompatible comparison",
            &errors,
            json!({"case": "compare"}),
        ),
        ("missing include", &errors, json!({"case": "no-include"})),
        ("range over a string", &errors, json!({"case": "range"})),
        ("endless include", &errors, json!({"case": "recursion"})),
        ("unknown function", &parse, json!({})),
    ];
    let cases: Vec<Case> = cases_spec
        .iter()
        .map(|(n, chart, v)| case(n, chart, json!({}), v.clone()))
        .collect();
    let results = helm(&cases.iter().map(request).collect::<Vec<_>>());
    let mut diffs = Vec::new();
    for (c, r) in cases.iter().zip(&results) {
        let Some(theirs) = r.get("error").and_then(Value::as_str) else {
            diffs.push(format!("{}: Helm rendered without error", c.name));
            continue;
        };
        let mine = match ours(c) {
            Ok(_) => {
                diffs.push(format!(
                    "{}: ours rendered, Helm failed with: {theirs}",
                    c.name
                ));
                continue;
            }
            Err(e) => e,
        };
        let (file, line, col, kind, msg) = helm_error(theirs);
        let same_place = mine.template == file
            && mine.line == Some(line)
            && (col.is_none() || mine.column == col);
        let same_kind = mine.kind == kind;
        let same_message = kind != RenderErrorKind::Fail || mine.message == msg;
        if !(same_place && same_kind && same_message) {
            diffs.push(format!(
                "{}:\n  helm: {theirs}\n        ({file}:{line}:{col:?} {kind:?} {msg:?})\n  ours: {mine}\n        ({}:{:?}:{:?} {:?} {:?})",
                c.name, mine.template, mine.line, mine.column, mine.kind, mine.message
            ));
        }
        if kind == RenderErrorKind::Fail {
            assert_eq!(
                mine.to_string(),
                theirs.trim_end(),
                "{}: `required`/`fail` errors read as Helm's",
                c.name
            );
        }
    }
    assert!(
        diffs.is_empty(),
        "{} error(s) differ from Helm's:\n\n{}",
        diffs.len(),
        diffs.join("\n\n")
    );
}

/// `tenant-worker render acme --plan standard` of the sample chart with the shipped plans.
fn render_standard() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenant-worker"));
    cmd.args(["render", "acme", "--plan", "standard", "--chart"])
        .arg(sample_chart())
        .arg("--plans")
        .arg(repo().join("k8s/plans.yaml"));
    cmd
}

#[test]
fn render_command_prints_what_helm_renders() {
    let values = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        values.path(),
        "config:\n  GREETING: hello\n  ENABLED: \"yes\"\n",
    )
    .unwrap();
    let out = render_standard()
        .args(["--app-version", "2.1.0", "--values"])
        .arg(values.path())
        .output()
        .expect("tenant-worker runs");
    assert_succeeded(&out, "render");
    let printed = String::from_utf8(out.stdout).unwrap();

    let catalog = PlanCatalog::load(Some(&repo().join("k8s/plans.yaml"))).unwrap();
    let mut plan = catalog.get("standard").unwrap().values.clone();
    plan["image"] = json!({"tag": "2.1.0"});
    let c = case(
        "render command",
        &sample_chart(),
        plan,
        json!({"config": {"GREETING": "hello", "ENABLED": "yes"}}),
    );
    assert_prints_helms_objects(&printed, &c);
    assert!(!printed.contains("NOTES.txt"));

    // Bad input: exit code 1, a precise message, nothing on stdout.
    let bad = render_standard()
        .env("TENANT_WORKER_RENDER_VALUES", values.path())
        .env("TENANT_WORKER_RENDER_APP_VERSION", "x")
        .output()
        .unwrap();
    assert!(
        bad.status.success(),
        "the environment variables work: {}",
        String::from_utf8_lossy(&bad.stderr)
    );
    std::fs::write(values.path(), "image:\n  repository: evil.example.com/x\n").unwrap();
    let refused = render_standard()
        .arg("--values")
        .arg(values.path())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(refused.stdout.is_empty());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("/image/repository") && err.contains("does not allow"),
        "{err}"
    );
}

/// Asserts that `printed` (`tenant-worker render`'s output, `helm template`
/// style: a `# Source:` line before each document) holds the objects Helm
/// renders for `c`, in Helm's install order.
fn assert_prints_helms_objects(printed: &str, c: &Case) {
    let r = helm(&[request(c)]);
    let theirs: BTreeMap<String, String> =
        serde_json::from_value(r[0]["ok"].clone()).expect("Helm renders");
    let mut expected = manifests(&theirs).expect("Helm's output parses");
    helm::sort_for_install(&mut expected);
    let mut printed_docs = Vec::new();
    for chunk in printed.split("---\n").filter(|d| !d.is_empty()) {
        let (source, doc) = chunk.split_once('\n').expect("a source line");
        let template = source
            .strip_prefix("# Source: ")
            .expect("starts with # Source:");
        printed_docs.extend(
            manifests(&BTreeMap::from([(template.to_owned(), doc.to_owned())]))
                .expect("printed YAML parses"),
        );
    }
    assert_eq!(
        printed_docs, expected,
        "tenant-worker render prints Helm's objects in install order"
    );
}
