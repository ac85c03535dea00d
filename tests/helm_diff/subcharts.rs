//! Subcharts against Helm v4: the `subcharts` fixture chart (`shop`, with
//! a database subchart that has its own subchart and schema, one cache
//! chart installed twice under two aliases, a library chart, a packaged
//! `.tgz` subchart made here from `subcharts-packaged/metrics`, a
//! declaration whose version range matches nothing, an undeclared chart)
//! rendered by Helm and by the worker's path (load, process dependencies,
//! coalesce, validate, render) for values that turn each feature: value
//! scoping, `null` deletes, conditions (true, false, missing, not a
//! boolean), tags, aliases, globals (the parent's, a subchart's, the
//! user's), both forms of `import-values`, nested subcharts. Errors (a
//! subchart's schema, values for a subchart that are not a map) fail in
//! both, and `tenant-worker render` prints Helm's objects.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use helm::{Capabilities, Chart, coalesce_values, process_dependencies, render};
use serde_json::{Value, json};
use tenant_worker::plans::PlanCatalog;

use super::{
    Case, assert_prints_helms_objects, case, fixture, helm, helm_layers, repo, request,
    run_cases_with,
};
use crate::support::assert_succeeded;

/// A copy of the fixture chart with its packaged subchart
/// (`charts/metrics-2.1.0.tgz`, made with `tar czf` as `helm package`
/// lays one out).
fn shop_chart(dir: &Path) -> PathBuf {
    let chart = dir.join("shop");
    copy_dir(&fixture("subcharts"), &chart);
    let out = Command::new("tar")
        .arg("czf")
        .arg(chart.join("charts/metrics-2.1.0.tgz"))
        .arg("-C")
        .arg(fixture("subcharts-packaged"))
        .arg("metrics")
        .output()
        .expect("tar runs");
    assert_succeeded(&out, "tar czf");
    chart
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creates the copy's directory");
    for entry in std::fs::read_dir(from).expect("reads the fixture") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copies a fixture file");
        }
    }
}

/// What the worker renders for `c`, as `release_values` and `render` chain
/// it: load, dependencies processed with the user's values, values
/// coalesced over the processed chart, every schema checked, render.
fn ours(c: &Case) -> Result<BTreeMap<String, String>, String> {
    let chart = Chart::load(&c.chart).map_err(|e| e.to_string())?;
    let user = helm_layers(&c.plan, &c.overrides);
    let chart = process_dependencies(&chart, &user).map_err(|e| e.to_string())?;
    let values = coalesce_values(&chart, &user).map_err(|e| e.to_string())?;
    helm::validate_chart_values(&chart, &values).map_err(|e| e.to_string())?;
    render(
        &chart,
        &values,
        &c.release,
        &Capabilities::default(),
        std::sync::Arc::new(helm::Offline),
    )
    .map_err(|e| e.to_string())
}

fn shop_case(chart: &Path, name: &str, values: Value) -> Case {
    case(&format!("shop: {name}"), chart, json!({}), values)
}

#[test]
fn subcharts_render_as_helm_renders_them() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let chart = shop_chart(dir.path());
    let sets = [
        ("defaults", json!({})),
        (
            "a condition set to false beats the global one",
            json!({"database": {"enabled": false}}),
        ),
        (
            "a condition that is not a boolean is skipped for the next path",
            json!({"database": {"enabled": "no"}, "global": {"database": {"enabled": false}}}),
        ),
        (
            "a condition that is not a boolean and no other path",
            json!({"cacheA": {"enabled": "true"}}),
        ),
        (
            "a disabled subchart's schema is not checked",
            json!({"database": {"enabled": false, "replicas": 0}}),
        ),
        ("a tag set to false", json!({"tags": {"caching": false}})),
        (
            "a condition beats the tags",
            json!({"tags": {"caching": false}, "cacheA": {"enabled": true}}),
        ),
        (
            "one true tag among false ones",
            json!({"tags": {"caching": false, "extra": true}}),
        ),
        (
            "the packaged subchart's tag off",
            json!({"tags": {"monitoring": false}}),
        ),
        (
            "globals from the user",
            json!({"global": {"env": "staging", "region": "us", "labels": {"team": "platform", "nested": {"extra": 1}}, "scrape": false}}),
        ),
        (
            "subchart values, aliases and null deletes",
            json!({"database": {"service": {"port": null, "type": "NodePort"}, "password": "s3cret"},
                "cache-a": {"size": null, "image": "valkey"}, "cache-b": {"image": "memcached"},
                "dbService": {"type": null}, "dbHost": "db.example.com", "extra": {"k": "v"}}),
        ),
        (
            "a subchart of a subchart",
            json!({"database": {"backup": {"enabled": true, "schedule": "@hourly"}}}),
        ),
        (
            "the declaration whose range matches nothing, disabled",
            json!({"legacy": {"enabled": false}}),
        ),
        (
            "imported values under the user's",
            json!({"dbPort": 1, "dbService": {"port": 2}, "conn": {"dbHost": "x"}}),
        ),
        (
            "a global that is not a map, and tags that are not booleans",
            json!({"tags": {"caching": "false"}, "metrics": {"global": {"scrape": "sub-level"}}}),
        ),
    ];
    let mut cases: Vec<Case> = sets
        .into_iter()
        .map(|(n, v)| shop_case(&chart, n, v))
        .collect();
    let mut upgrade = shop_case(&chart, "an upgrade", json!({"database": {"replicas": 3}}));
    upgrade.release.revision = 4;
    upgrade.release.is_install = false;
    upgrade.release.is_upgrade = true;
    cases.push(upgrade);

    run_cases_with(&cases, ours);
    assert_eq!(cases.len(), 16);
}

/// Values Helm refuses fail here too, at the same place.
#[test]
fn subchart_values_errors_are_helms() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let chart = shop_chart(dir.path());
    // (values, what Helm's message holds, what ours holds)
    let specs = [
        (
            json!({"database": {"replicas": 0}}),
            ["database:", "at '/replicas': minimum: got 0, want 1"],
            [
                "at '/database/replicas'",
                "minimum: got 0, want 1",
                "subchart database",
            ],
        ),
        (
            json!({"database": {"replicas": "two"}}),
            ["database:", "at '/replicas': got string, want integer"],
            [
                "at '/database/replicas'",
                "got string, want integer",
                "subchart database",
            ],
        ),
        (
            json!({"database": "x"}),
            ["type mismatch on database: %!t(string=x)", ""],
            ["type mismatch on database: %!t(string=x)", "", ""],
        ),
    ];
    let cases: Vec<Case> = specs
        .iter()
        .map(|(v, _, _)| shop_case(&chart, &v.to_string(), v.clone()))
        .collect();
    let results = helm(&cases.iter().map(request).collect::<Vec<_>>());
    for ((c, r), (_, theirs_has, ours_has)) in cases.iter().zip(&results).zip(&specs) {
        let theirs = r
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{}: Helm rendered", c.name));
        for part in theirs_has {
            assert!(theirs.contains(part), "{}: Helm said {theirs:?}", c.name);
        }
        let mine = ours(c).expect_err("ours refuses too");
        for part in ours_has {
            assert!(mine.contains(part), "{}: ours said {mine:?}", c.name);
        }
    }
}

/// `tenant-worker render` of a chart with subcharts prints Helm's objects
/// (every enabled chart's), in install order, without any NOTES.txt.
#[test]
fn render_command_prints_subcharts_as_helm_renders_them() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let chart = shop_chart(dir.path());
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "database:\n  backup:\n    enabled: true\ntags:\n  caching: false\ncacheB:\n  enabled: true\n",
    )
    .expect("writes the values file");
    let out = Command::new(env!("CARGO_BIN_EXE_tenant-worker"))
        .args(["render", "acme", "--app-version", "2.1.0", "--values"])
        .arg(&values)
        .arg("--chart")
        .arg(&chart)
        .arg("--plans")
        .arg(repo().join("k8s/plans.yaml"))
        .output()
        .expect("tenant-worker runs");
    assert_succeeded(&out, "render");
    let printed = String::from_utf8(out.stdout).expect("UTF-8 output");

    let catalog = PlanCatalog::load(Some(&repo().join("k8s/plans.yaml"))).expect("plans load");
    let mut plan = json!({});
    helm::set_path(&mut plan, catalog.app_version_value(), json!("2.1.0"));
    let c = case(
        "render command",
        &chart,
        plan,
        json!({"database": {"backup": {"enabled": true}}, "tags": {"caching": false}, "cacheB": {"enabled": true}}),
    );
    assert_prints_helms_objects(&printed, &c);
    assert!(
        printed.contains("# Source: shop/charts/database/charts/backup/templates/cronjob.yaml")
    );
    assert!(printed.contains("# Source: shop/charts/cache-b/templates/deployment.yaml"));
    assert!(!printed.contains("cache-a/"), "disabled by its tag");
    assert!(!printed.contains("NOTES.txt"));
}
