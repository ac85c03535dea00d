//! Helm's `ProcessDependencies`: which subcharts a release installs, under
//! which names, and with which values, for the user's values.
//!
//! In Helm's order: for each chart that declares `dependencies`, the charts
//! under `charts/` that no declaration matches (by name and version range)
//! are kept as they are; each declaration takes the first chart of its name
//! whose version its range accepts, renamed to its `alias` when it has one
//! (so one chart can be installed twice); then, with the user's values
//! coalesced over the chart's, `tags` and then `condition`s decide which
//! are enabled (the first condition path that holds a boolean wins, paths
//! relative to the top chart's values); disabled ones are dropped, and the
//! enabled ones processed the same way in turn. Last, from the deepest
//! chart up, `import-values` copy values from a subchart into its parent's
//! defaults (below the parent's own), and every chart that declares
//! dependencies gets its subcharts' defaults merged into its own, as Helm
//! stores it in the release.
//!
//! One difference from Helm: Helm's copies of a chart used under two
//! aliases share their subcharts' metadata, so that what one copy's values
//! disable among *its* subcharts is disabled in the other copy too; here
//! each copy is processed on its own.

use serde_json::Value;

use crate::Chart;
use crate::chart::Dependency;
use crate::coalesce::{
    Table, Val, ValuesTree, coalesce_tables, coalesce_values, deep_copy, new_table, path_value,
    table_at, table_of, table_to_json,
};
use crate::render::semver;
use crate::values::ValuesError;

/// A chart while its dependencies are processed: its values as Go maps.
#[derive(Clone)]
pub(crate) struct Node {
    chart: Chart,
    values: Table,
    deps: Vec<Node>,
}

impl ValuesTree for Node {
    fn name(&self) -> &str {
        &self.chart.metadata.name
    }
    fn defaults(&self) -> &Table {
        &self.values
    }
    fn subcharts(&self) -> &[Node] {
        &self.deps
    }
}

impl Node {
    pub(crate) fn of(chart: &Chart) -> Node {
        Node {
            chart: chart.without_dependencies(),
            values: table_of(&chart.values),
            deps: chart.dependencies.iter().map(Node::of).collect(),
        }
    }

    fn into_chart(self) -> Chart {
        let mut chart = self.chart;
        chart.values = table_to_json(&self.values);
        chart.dependencies = self.deps.into_iter().map(Node::into_chart).collect();
        chart
    }
}

/// Helm's `IsCompatibleRange`: whether `version` is a semantic version that
/// the constraint `range` accepts (a range that does not parse accepts none).
pub(crate) fn is_compatible_range(range: &str, version: &str) -> bool {
    let Ok(v) = semver::Version::parse(version) else {
        return false;
    };
    semver::Constraints::parse(range).is_ok_and(|c| c.check(&v))
}

/// `chart` as Helm installs it with the user's values `user` (the values a
/// release is given, above the chart's defaults): the enabled subcharts
/// only, aliased ones renamed, each chart's `metadata.dependencies` reduced
/// to the enabled declarations (with `enabled: true` and `import-values` in
/// Helm's `{child, parent}` form), and the defaults of every chart that
/// declares dependencies merged with its subcharts' and the imported values.
/// A chart that declares no dependencies comes back as it is.
///
/// # Errors
/// Helm's: values for a subchart that are not a table (`type mismatch on
/// <subchart>: ...`).
pub fn process_dependencies(chart: &Chart, user: &Value) -> Result<Chart, ValuesError> {
    if chart.metadata.dependencies.is_none() {
        return Ok(chart.clone());
    }
    let failed = |reason: String| ValuesError {
        path: String::new(),
        reason: format!("chart dependencies processing failed: {reason}"),
    };
    let mut node = Node::of(chart);
    process_enabled(&mut node, &table_of(user), "").map_err(failed)?;
    process_import_values(&mut node).map_err(failed)?;
    Ok(node.into_chart())
}

fn alias_dependency(charts: &[Node], dep: &Dependency) -> Option<Node> {
    let found = charts.iter().find(|c| {
        c.chart.metadata.name == dep.name
            && is_compatible_range(&dep.version, &c.chart.metadata.version)
    })?;
    let mut out = found.clone();
    if !dep.alias.is_empty() {
        out.chart.metadata.name = dep.alias.clone();
    }
    Some(out)
}

/// Helm's `processDependencyEnabled`.
fn process_enabled(c: &mut Node, v: &Table, path: &str) -> Result<(), String> {
    let Some(mut reqs) = c.chart.metadata.dependencies.take() else {
        return Ok(());
    };
    let existing = std::mem::take(&mut c.deps);
    let mut chart_deps: Vec<Node> = existing
        .iter()
        .filter(|e| {
            !reqs.iter().any(|r| {
                r.name == e.chart.metadata.name
                    && is_compatible_range(&r.version, &e.chart.metadata.version)
            })
        })
        .cloned()
        .collect();
    for req in &mut reqs {
        if let Some(dep) = alias_dependency(&existing, req) {
            chart_deps.push(dep);
        }
        if !req.alias.is_empty() {
            req.name = req.alias.clone();
        }
    }
    c.deps = chart_deps;
    for r in &mut reqs {
        r.enabled = true;
    }
    let cvals = coalesce_values(c, v, false)?;
    process_tags(&mut reqs, &cvals);
    process_conditions(&mut reqs, &cvals, path);
    let removed: Vec<String> = reqs
        .iter()
        .filter(|r| !r.enabled)
        .map(|r| r.name.clone())
        .collect();
    c.deps.retain(|d| !removed.contains(&d.chart.metadata.name));
    reqs.retain(|r| !removed.contains(&r.name));
    for t in &mut c.deps {
        let subpath = format!("{path}{}.", t.chart.metadata.name);
        process_enabled(t, &cvals, &subpath)?;
    }
    c.chart.metadata.dependencies = (!reqs.is_empty()).then_some(reqs);
    Ok(())
}

/// Helm's `processDependencyTags`: a dependency with a tag set to `true`
/// is enabled; one whose tags are all set to `false` is disabled; tags are
/// read from the `tags` table at the top of the values.
fn process_tags(reqs: &mut [Dependency], cvals: &Table) {
    let Some(tags) = table_at(cvals, "tags") else {
        return;
    };
    let tags = tags.borrow();
    for r in reqs {
        let (mut has_true, mut has_false) = (false, false);
        for k in &r.tags {
            // A tag that is not a boolean: Helm warns and ignores it.
            if let Some(Val::Leaf(Value::Bool(b))) = tags.get(k) {
                if *b {
                    has_true = true;
                } else {
                    has_false = true;
                }
            }
        }
        r.enabled = has_true || !has_false;
    }
}

/// Helm's `processDependencyConditions`: the first of the comma-separated
/// paths whose value is a boolean sets the dependency's `enabled`.
fn process_conditions(reqs: &mut [Dependency], cvals: &Table, cpath: &str) {
    for r in reqs {
        for c in r.condition.trim().split(',') {
            if c.is_empty() {
                continue;
            }
            // A value that is not a boolean: Helm warns and tries the next.
            if let Some(Val::Leaf(Value::Bool(b))) = path_value(cvals, &format!("{cpath}{c}")) {
                r.enabled = b;
                break;
            }
        }
    }
}

/// Go's `%v` of an `import-values` map entry.
fn sprint_v(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "<nil>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => crate::render::gofmt::to_v(
            &crate::render::objects::Objects::default(),
            &gotmpl::Value::Float(n.as_f64().unwrap_or(0.0)),
        ),
        Some(Value::Bool(b)) => b.to_string(),
        Some(other) => other.to_string(),
    }
}

/// Helm's `pathToMap`: `data` under the dotted `path` (`.` for the top).
fn path_to_map(path: &str, data: Table) -> Table {
    if path == "." {
        return data;
    }
    let mut cur = data;
    for step in path.split('.').rev() {
        let t = new_table();
        t.borrow_mut().insert(step.to_owned(), Val::Table(cur));
        cur = t;
    }
    cur
}

/// Helm's `processDependencyImportValues` (with merging, as
/// `ProcessDependencies` calls it): the deepest charts first.
fn process_import_values(c: &mut Node) -> Result<(), String> {
    for d in &mut c.deps {
        process_import_values(d)?;
    }
    let Some(mut reqs) = c.chart.metadata.dependencies.take() else {
        return Ok(());
    };
    let cvals = coalesce_values(c, &new_table(), true);
    let cvals = match cvals {
        Ok(v) => v,
        Err(e) => {
            c.chart.metadata.dependencies = Some(reqs);
            return Err(e);
        }
    };
    let b = new_table();
    for r in &mut reqs {
        let mut out = Vec::new();
        for riv in &r.import_values {
            match riv {
                Value::Object(iv) => {
                    let child = sprint_v(iv.get("child"));
                    let parent = sprint_v(iv.get("parent"));
                    out.push(serde_json::json!({"child": child, "parent": parent}));
                    // A missing table: Helm warns and skips it.
                    if let Some(vv) = table_at(&cvals, &format!("{}.{child}", r.name)) {
                        coalesce_tables(&b, &path_to_map(&parent, vv), true);
                    }
                }
                Value::String(iv) => {
                    let child = format!("exports.{iv}");
                    out.push(serde_json::json!({"child": child, "parent": "."}));
                    if let Some(vm) = table_at(&cvals, &format!("{}.{child}", r.name)) {
                        coalesce_tables(&b, &vm, true);
                    }
                }
                // Anything else: Helm ignores it (and drops it).
                _ => {}
            }
        }
        r.import_values = out;
    }
    c.chart.metadata.dependencies = Some(reqs);
    let merged = deep_copy(&cvals);
    coalesce_tables(&merged, &b, true);
    c.values = merged;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    fn write(dir: &std::path::Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// `top` declaring `db` (condition, import-values both ways) and `cache`
    /// twice (aliases, tags); `db` declaring `inner` (a condition relative to
    /// the top's values); `loose` undeclared.
    fn tree() -> (tempfile::TempDir, Chart) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(
            root,
            "Chart.yaml",
            "apiVersion: v2\nname: top\nversion: 1.0.0\ndependencies:\n\
             - name: db\n  version: 1.x\n  condition: db.enabled,global.dbOn\n  import-values: [conn, {child: svc, parent: imported.svc}]\n\
             - name: cache\n  alias: c1\n  version: '>=0'\n  tags: [caches]\n\
             - name: cache\n  alias: c2\n  version: '>=0'\n  tags: [caches, second]\n  condition: c2.enabled\n",
        );
        write(
            root,
            "values.yaml",
            "imported:\n  svc:\n    port: 1\nglobal:\n  dbOn: true\n",
        );
        write(
            root,
            "charts/db/Chart.yaml",
            "apiVersion: v2\nname: db\nversion: 1.4.0\ndependencies:\n- name: inner\n  version: 0.1.0\n  condition: inner.enabled\n",
        );
        write(
            root,
            "charts/db/values.yaml",
            "svc:\n  port: 5432\n  type: ClusterIP\nexports:\n  conn:\n    host: db\ninner:\n  enabled: false\n",
        );
        write(
            root,
            "charts/db/charts/inner/Chart.yaml",
            "apiVersion: v2\nname: inner\nversion: 0.1.0\n",
        );
        write(
            root,
            "charts/cache/Chart.yaml",
            "apiVersion: v2\nname: cache\nversion: 0.3.0\n",
        );
        write(root, "charts/cache/values.yaml", "size: 1\n");
        write(
            root,
            "charts/loose/Chart.yaml",
            "apiVersion: v2\nname: loose\nversion: 0.0.1\n",
        );
        let chart = Chart::load(root).unwrap();
        (d, chart)
    }

    fn names(c: &Chart) -> Vec<&str> {
        c.dependencies()
            .iter()
            .map(|d| d.metadata.name.as_str())
            .collect()
    }

    #[test]
    fn aliases_undeclared_charts_and_defaults() {
        let (_d, chart) = tree();
        let p = process_dependencies(&chart, &json!({})).unwrap();
        assert_eq!(names(&p), ["loose", "db", "c1", "c2"], "undeclared first");
        let db = &p.dependencies()[1];
        assert!(
            db.dependencies().is_empty(),
            "inner.enabled is false in db's values"
        );
        let deps = p.metadata.dependencies.as_ref().unwrap();
        assert!(deps.iter().all(|d| d.enabled));
        assert_eq!(deps[1].name, "c1", "declarations take their alias");
        assert_eq!(
            deps[0].import_values,
            [
                json!({"child": "exports.conn", "parent": "."}),
                json!({"child": "svc", "parent": "imported.svc"})
            ]
        );
        // The parent's values hold its subcharts' and the imports, below
        // its own.
        assert_eq!(p.values["host"], "db");
        assert_eq!(
            p.values["imported"]["svc"],
            json!({"port": 1, "type": "ClusterIP"})
        );
        assert_eq!(p.values["c2"]["size"], 1);
        assert_eq!(p.values["db"]["global"]["dbOn"], true);
        // Helm's record: the top chart with the enabled declarations.
        let r = p.record();
        assert_eq!(r["metadata"]["dependencies"][2]["alias"], "c2");
        assert_eq!(r["metadata"]["dependencies"][2]["enabled"], true);
        assert!(r.get("dependencies").is_none());
        assert_eq!(r["values"]["host"], "db");
    }

    #[test]
    fn conditions_and_tags() {
        let (_d, chart) = tree();
        let run = |user: serde_json::Value| {
            let p = process_dependencies(&chart, &user).unwrap();
            let mut all: Vec<String> = names(&p).iter().map(|s| (*s).to_owned()).collect();
            for d in p.dependencies() {
                all.extend(names(d).iter().map(|n| format!("{}/{n}", d.metadata.name)));
            }
            all
        };
        assert_eq!(
            run(json!({"db": {"enabled": false}})),
            ["loose", "c1", "c2"]
        );
        assert_eq!(
            run(json!({"db": {"enabled": "no"}, "global": {"dbOn": false}})),
            ["loose", "c1", "c2"],
            "a condition that is not a boolean gives way to the next path"
        );
        assert_eq!(
            run(json!({"db": {"inner": {"enabled": true}}})),
            ["loose", "db", "c1", "c2", "db/inner"],
            "a nested condition is read under the subchart's name"
        );
        assert_eq!(run(json!({"tags": {"caches": false}})), ["loose", "db"]);
        assert_eq!(
            run(json!({"tags": {"caches": false}, "c2": {"enabled": true}})),
            ["loose", "db", "c2"],
            "a condition overrides the tags"
        );
        assert_eq!(
            run(json!({"tags": {"caches": false, "second": true}})),
            ["loose", "db", "c2"],
            "any true tag enables"
        );
    }

    #[test]
    fn values_for_a_subchart_must_be_a_map() {
        let (_d, chart) = tree();
        let e = process_dependencies(&chart, &json!({"c1": [1]})).unwrap_err();
        assert!(
            e.reason
                .ends_with("type mismatch on c1: %!t([]interface {}=[1])"),
            "{e}"
        );
    }

    #[test]
    fn a_chart_without_declarations_is_kept_whole() {
        let (d, _) = tree();
        write(
            d.path(),
            "Chart.yaml",
            "apiVersion: v2\nname: top\nversion: 1.0.0\n",
        );
        let chart = Chart::load(d.path()).unwrap();
        let p = process_dependencies(&chart, &json!({"db": {"enabled": false}})).unwrap();
        assert_eq!(names(&p), ["cache", "db", "loose"]);
        assert_eq!(
            names(&p.dependencies()[1]),
            ["inner"],
            "Helm processes no declaration below a chart that declares none"
        );
    }

    #[test]
    fn version_ranges_as_helm_matches_them() {
        assert!(is_compatible_range(">=0.1.0", "0.2.0"));
        assert!(is_compatible_range("0.1.x", "0.1.9"));
        assert!(is_compatible_range("^1.2.0", "1.9.0"));
        assert!(!is_compatible_range("~1.2.0", "1.3.0"));
        assert!(!is_compatible_range("1.0.0", "not-semver"));
        assert!(!is_compatible_range("not a range", "1.0.0"));
    }

    #[test]
    fn path_to_map_nests() {
        let data = table_of(&serde_json::json!({"k": 1}));
        assert_eq!(
            table_to_json(&path_to_map("a.b", data.clone())),
            serde_json::json!({"a": {"b": {"k": 1}}})
        );
        assert_eq!(
            table_to_json(&path_to_map(".", data)),
            serde_json::json!({"k": 1})
        );
    }
}
