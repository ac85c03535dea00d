//! The benchmark harness: `cargo bench --bench harness -- <benchmark> [options]`.
//!
//! Each benchmark starts its own `nats-server -js` (a free port, a temporary
//! store), creates the worker's topology with the library, seeds what it
//! needs, measures, and prints a Markdown report on stdout (progress goes to
//! stderr) that can be pasted into docs/benchmarks.md. A benchmark with a budget exits
//! with status 1 when the budget is missed, after printing its report.
//!
//! Benchmarks:
//! - `lifecycle [--tenants 1000] [--replicas 1,2,3]`: the worker's provisioning
//!   and deletion throughput per replica count beside the bare async-nats and
//!   bare kube-client limits, then publish-to-completion latency at 25, 50 and
//!   90% of the best rate; targets: one replica at least 40% of the kube
//!   limit, p99 at 50% load at most 100 ms. With `--real-cluster` (a fresh
//!   control plane of the test suite per run) or `--kubeconfig FILE`, the
//!   worker and the bare kube client on a real API server instead, with
//!   requests counted by the API server itself (`apiserver_request_total`).
//! - `growth [--tenants 1000,10000]`: one replica's throughput, peak RSS,
//!   start-up and `status` time as the tenant count grows; targets: peak RSS
//!   at most 64 MiB at 10,000, and no rate drop from the smallest count.
//! - `status [--tenants 1000,10000] [--runs 5] [--revisions 1]`: wall time and
//!   peak RSS of the real `tenant-worker status` binary (table and `--json`)
//!   with N records in KV `tenant_state`; budget 1 s per run.
//! - `render [--charts DIR,...] [--runs 30]`: chart render time beside Helm
//!   v4's own renderer (helm-python-sdk); budget: within 5× of Helm.
//!
//! Adding one: a module with its `Args` struct and a function returning a
//! [`common::Report`], using [`common::BenchEnv`] and the helpers beside it.
//!
//! Not run by `cargo test` (benches are not test targets by default); when
//! `cargo test --all-targets` does start it (without cargo bench's `--bench`
//! flag and without a benchmark name), it only prints its usage.
//! `cargo bench` alone runs every benchmark with its defaults (about half an hour).

mod common;
mod growth;
mod lifecycle;
mod lifecycle_real;
mod render;
mod status;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use growth::GrowthBench;
use lifecycle::LifecycleBench;
use render::RenderBench;
use status::StatusBench;

#[derive(Parser)]
#[command(
    name = "harness",
    about = "tenant-worker benchmarks: cargo bench --bench harness -- <benchmark> [options]"
)]
struct Cli {
    #[command(subcommand)]
    benchmark: Option<Benchmark>,
    /// Added by `cargo bench`; with no benchmark name, runs every benchmark
    /// with its defaults.
    #[arg(long = "bench", hide = true, global = true)]
    cargo_bench: bool,
}

#[derive(Subcommand)]
enum Benchmark {
    /// Worker throughput for 1, 2 and 3 replicas beside the bare async-nats
    /// and kube-client limits, then latency at 25/50/90% of the best rate.
    Lifecycle(LifecycleBench),
    /// One replica at 1,000 and 10,000 tenants: throughput, peak RSS,
    /// start-up and `status` time.
    Growth(GrowthBench),
    /// `tenant-worker status` (table and --json) with N records in KV
    /// tenant_state: wall time per run, printed rows, peak RSS; budget 1 s.
    Status(StatusBench),
    /// Chart render time beside Helm v4's own renderer (helm-python-sdk);
    /// budget: within 5× of Helm on every chart.
    Render(RenderBench),
}

fn main() -> ExitCode {
    // `cargo bench` adds `--bench`; without it (`cargo test --all-targets`,
    // maybe with libtest flags) the harness does nothing.
    let from_cargo_bench = std::env::args().any(|a| a == "--bench");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if from_cargo_bench || e.kind() == clap::error::ErrorKind::DisplayHelp => e.exit(),
        Err(_) => {
            println!("harness: not started by `cargo bench`; nothing to do");
            return ExitCode::SUCCESS;
        }
    };
    let benchmarks = match cli.benchmark {
        Some(b) => vec![b],
        None if cli.cargo_bench => vec![
            defaults("lifecycle"),
            defaults("growth"),
            defaults("status"),
            defaults("render"),
        ],
        None => {
            println!("{}", Cli::command().render_help());
            return ExitCode::SUCCESS;
        }
    };
    let mut ok = true;
    for benchmark in benchmarks {
        let result = match benchmark {
            Benchmark::Lifecycle(args) => lifecycle::lifecycle_bench(&args),
            Benchmark::Growth(args) => growth::growth_bench(&args),
            Benchmark::Status(args) => status::status_bench(&args),
            Benchmark::Render(args) => render::render_bench(&args),
        };
        match result {
            Ok(report) => {
                println!("{}", report.markdown());
                ok &= report.passed;
            }
            Err(e) => {
                eprintln!("harness: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("harness: a budget was missed (see the report)");
        ExitCode::FAILURE
    }
}

/// A benchmark with its default options, as if it were named alone.
fn defaults(name: &str) -> Benchmark {
    Cli::parse_from(["harness", name])
        .benchmark
        .expect("a benchmark name was given")
}
