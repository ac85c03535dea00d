//! `render`: how long a chart takes to render, tenant-worker's renderer
//! beside Helm v4's own (helm-python-sdk, the reference of
//! tests/helm_diff.rs), with the same chart, chart-default values and
//! release; each chart loaded once, the median of `--runs` renders. Budget:
//! within `--max-ratio` (5×) of Helm on every chart.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use helm::{Capabilities, Chart, ReleaseInfo, merge_values, render};
use serde_json::{Value, json};

use crate::common::{BenchResult, Report, Samples, ms_f};

#[derive(Args, Clone)]
pub(crate) struct RenderBench {
    /// Chart directories, comma-separated; by default the sample chart and
    /// the charts of the differential tests.
    #[arg(long, value_delimiter = ',')]
    pub charts: Vec<PathBuf>,
    /// Timed renders per chart and renderer (after one untimed warm-up).
    #[arg(long, default_value_t = 30)]
    pub runs: usize,
    /// The budget: tenant-worker's median over Helm's, for every chart.
    #[arg(long, default_value_t = 5.0)]
    pub max_ratio: f64,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with helm-python-sdk (as tests/helm_diff.rs finds it).
fn python() -> BenchResult<PathBuf> {
    let p = std::env::var_os("TENANT_WORKER_HELM_PYTHON")
        .map_or_else(|| repo().join(".venv-helm/bin/python"), PathBuf::from);
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "no Python with helm-python-sdk at {}: run scripts/install-helm-sdk.sh",
            p.display()
        )
        .into())
    }
}

const NAME: &str = "acme";
const NAMESPACE: &str = "tenant-acme";

/// Helm's render times of `chart`, in seconds, from tests/helm/render.py.
fn helm_times(chart: &std::path::Path, runs: usize) -> BenchResult<Samples> {
    let request = json!([{"mode": "time", "chart_dir": chart, "runs": runs + 1,
        "name": NAME, "namespace": NAMESPACE}]);
    let mut child = Command::new(python()?)
        .arg(repo().join("tests/helm/render.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(request.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    let results: Vec<Value> = serde_json::from_slice(&out.stdout)?;
    let times = results
        .first()
        .and_then(|r| r.get("ok"))
        .and_then(Value::as_array)
        .ok_or_else(|| format!("Helm did not render {}: {results:?}", chart.display()))?;
    Ok(Samples(
        times
            .iter()
            .skip(1)
            .filter_map(Value::as_f64)
            .map(Duration::from_secs_f64)
            .collect(),
    ))
}

fn our_times(chart_dir: &std::path::Path, runs: usize) -> BenchResult<Samples> {
    let chart = Chart::load(chart_dir)?;
    let values = merge_values(&chart.values, &json!({}), &json!({}));
    let release = ReleaseInfo {
        name: NAME.into(),
        namespace: NAMESPACE.into(),
        revision: 1,
        is_install: true,
        is_upgrade: false,
    };
    let caps = Capabilities::default();
    let mut times = Vec::with_capacity(runs);
    for run in 0..=runs {
        let start = Instant::now();
        render(
            &chart,
            &values,
            &release,
            &caps,
            std::sync::Arc::new(helm::Offline),
        )?;
        if run > 0 {
            times.push(start.elapsed());
        }
    }
    Ok(Samples(times))
}

pub(crate) fn render_bench(args: &RenderBench) -> BenchResult<Report> {
    if args.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    let charts = if args.charts.is_empty() {
        let fixtures = repo().join("tests/fixtures/charts");
        vec![
            repo().join("k8s/charts/tenant-app"),
            fixtures.join("shared-maps"),
            fixtures.join("functions"),
            fixtures.join("patterns"),
        ]
    } else {
        args.charts.clone()
    };
    let mut rows = Vec::new();
    let mut passed = true;
    let mut worst: f64 = 0.0;
    for chart in &charts {
        eprintln!("harness: rendering {}", chart.display());
        let ours = our_times(chart, args.runs)?;
        let helm = helm_times(chart, args.runs)?;
        let ratio = ours.median().as_secs_f64() / helm.median().as_secs_f64().max(1e-9);
        worst = worst.max(ratio);
        let ok = ratio <= args.max_ratio;
        passed &= ok;
        let name = chart
            .strip_prefix(repo())
            .unwrap_or(chart)
            .display()
            .to_string();
        rows.push(vec![
            format!("`{name}`"),
            ms_f(ours.median()),
            ms_f(ours.max()),
            ms_f(helm.median()),
            format!("{ratio:.2}×"),
            if ok { "yes" } else { "**no**" }.to_owned(),
        ]);
    }
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    Ok(Report {
        title: "Chart rendering beside Helm v4".into(),
        command: format!(
            "cargo bench --bench harness -- render --runs {}{}",
            args.runs,
            if args.charts.is_empty() {
                String::new()
            } else {
                format!(
                    " --charts {}",
                    args.charts
                        .iter()
                        .map(|c| c.display().to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            }
        ),
        machine: format!(
            "Machine: {cpus} CPUs, {} {}; tenant-worker {} (release build) in-process; Helm v4 (helm-python-sdk) in-process in Python.",
            std::env::consts::OS,
            std::env::consts::ARCH,
            env!("CARGO_PKG_VERSION")
        ),
        headers: [
            "chart",
            "tenant-worker median",
            "tenant-worker max",
            "Helm median",
            "ratio",
            &format!("within {}×", args.max_ratio),
        ]
        .map(str::to_owned)
        .to_vec(),
        rows,
        notes: vec![format!(
            "Each chart is loaded once and rendered {} times by each renderer with its default values (release `{NAME}` in `{NAMESPACE}`, Helm's default capabilities); worst ratio {worst:.2}×.",
            args.runs
        )],
        passed,
    })
}
