//! The benchmark harness: `cargo bench --bench harness -- <benchmark> [options]`.
//!
//! Each benchmark starts its own `nats-server -js` (a free port, a temporary
//! store), creates the worker's topology with the library, seeds what it
//! needs, measures, and prints a Markdown report on stdout (progress goes to
//! stderr) that can be pasted into the README. A benchmark with a budget exits
//! with status 1 when the budget is missed, after printing its report.
//!
//! Benchmarks:
//! - `status [--tenants 1000,10000] [--runs 5] [--revisions 1]`: wall time and
//!   peak RSS of the real `tenant-worker status` binary (table and `--json`)
//!   with N records in KV `tenant_state`; budget 1 s per run.
//!
//! Adding one: a variant in [`Benchmark`] with its `Args` struct, and a
//! function that uses [`BenchEnv`], [`run_cli`], [`Samples`] and [`Report`].
//!
//! Not run by `cargo test` (benches are not test targets by default); when
//! `cargo test --all-targets` does start it (without cargo bench's `--bench`
//! flag and without a benchmark name), it only prints its usage.
//! `cargo bench` alone runs every benchmark with its defaults.

use std::fmt::Write as _;
use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use clap::{Args, CommandFactory, Parser, Subcommand};
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tenant_worker::bus::{Bus, TopologySettings, ensure_topology};
use tenant_worker::contract::{EventType, IntentKind, TenantId};
use tenant_worker::nats_server::{self, NatsServer};
use tenant_worker::saga::state::{Lease, SagaLog, StepState, TenantRecord, TenantStatus};
use tenant_worker::saga::store::Versioned;
use tenant_worker::steps::Step;
use uuid::Uuid;

/// The `tenant-worker` binary that cargo built for this bench (release profile).
const TENANT_WORKER: &str = env!("CARGO_BIN_EXE_tenant-worker");

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
    /// `tenant-worker status` (table and --json) with N records in KV
    /// tenant_state: wall time per run, printed rows, peak RSS; budget 1 s.
    Status(StatusBench),
}

#[derive(Args, Clone)]
struct StatusBench {
    /// Numbers of tenant records to measure with, comma-separated, ascending
    /// (one server: the bucket is topped up between sizes).
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    tenants: Vec<usize>,
    /// Timed runs per size and output format (after one untimed warm-up run).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// KV revisions written per tenant (the worker writes one per saga step;
    /// the bucket keeps 5): intermediate `provisioning` records, then the final one.
    #[arg(long, default_value_t = 1)]
    revisions: usize,
    /// Concurrent KV writes while seeding.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The budget for every run, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    budget_ms: u64,
}

impl Default for StatusBench {
    /// The options' defaults, as if `status` were given alone.
    fn default() -> Self {
        match Cli::parse_from(["harness", "status"]).benchmark {
            Some(Benchmark::Status(args)) => args,
            None => unreachable!("a benchmark was given"),
        }
    }
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
        None if cli.cargo_bench => vec![Benchmark::Status(StatusBench::default())],
        None => {
            println!("{}", Cli::command().render_help());
            return ExitCode::SUCCESS;
        }
    };
    let mut ok = true;
    for benchmark in benchmarks {
        let result = match benchmark {
            Benchmark::Status(args) => status_bench(&args),
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

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

// ---------------------------------------------------------------------------
// Shared infrastructure
// ---------------------------------------------------------------------------

/// A fresh nats-server with the worker's streams, consumer and buckets, and a
/// runtime to drive the library's async API from the (synchronous) harness.
struct BenchEnv {
    rt: tokio::runtime::Runtime,
    nats: NatsServer,
    bus: Bus,
    machine: Machine,
}

impl BenchEnv {
    fn start() -> BenchResult<Self> {
        let machine = Machine::detect()?;
        let nats = NatsServer::start(None)?;
        let rt = tokio::runtime::Runtime::new()?;
        let bus = rt.block_on(async {
            let client = async_nats::connect(nats.url()).await?;
            let js = jetstream::new(client);
            let (bus, _consumer) = ensure_topology(&js, &TopologySettings::default()).await?;
            BenchResult::<Bus>::Ok(bus)
        })?;
        Ok(Self {
            rt,
            nats,
            bus,
            machine,
        })
    }
}

/// What the figures were measured on.
struct Machine {
    cpus: usize,
    cpu_model: String,
    memory: String,
    nats_server: String,
}

impl Machine {
    fn detect() -> BenchResult<Self> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or_else(|| "?".to_owned(), |kib| format!("{:.1} GiB", gib(kib)));
        Ok(Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            memory,
            nats_server: nats_server::check_installed()?,
        })
    }

    fn markdown(&self) -> String {
        format!(
            "Machine: {} CPUs ({}), {} RAM, {} {}; nats-server {} (local, file storage); \
             tenant-worker {} (release build).",
            self.cpus,
            self.cpu_model,
            self.memory,
            std::env::consts::OS,
            std::env::consts::ARCH,
            self.nats_server,
            env!("CARGO_PKG_VERSION"),
        )
    }
}

fn gib(kib: u64) -> f64 {
    kib as f64 / (1024.0 * 1024.0)
}

/// One run of the `tenant-worker` binary.
struct CliRun {
    /// From spawn to exit (process start-up and exit included).
    wall: Duration,
    /// Peak resident set size in KiB (`VmHWM` of /proc/<pid>/status, sampled
    /// every millisecond while the process runs: a lower bound, off only by
    /// what the process may allocate in its last millisecond).
    peak_rss_kib: u64,
    stdout: Vec<u8>,
}

/// Runs `tenant-worker <args>` with `envs`, measuring its wall time and peak
/// RSS; fails when it exits with an error.
fn run_cli(args: &[&str], envs: &[(&str, &str)]) -> BenchResult<CliRun> {
    let mut cmd = Command::new(TENANT_WORKER);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let stdout = std::thread::spawn(move || {
        let mut buf = Vec::new();
        out.read_to_end(&mut buf).map(|_| buf)
    });
    let stderr = std::thread::spawn(move || {
        let mut buf = String::new();
        err.read_to_string(&mut buf).map(|_| buf)
    });
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = vm_hwm_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let status = child.wait()?;
    let wall = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler thread");
    let stdout = stdout.join().expect("stdout thread")?;
    let stderr = stderr.join().expect("stderr thread")?;
    if !status.success() {
        return Err(format!(
            "tenant-worker {} failed ({status}): {stderr}",
            args.join(" ")
        )
        .into());
    }
    Ok(CliRun {
        wall,
        peak_rss_kib: peak.load(Ordering::Relaxed),
        stdout,
    })
}

/// `VmHWM` (peak RSS so far) of a live process, in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Durations of repeated runs.
struct Samples(Vec<Duration>);

impl Samples {
    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.0.clone();
        v.sort();
        v
    }
    fn min(&self) -> Duration {
        self.sorted()[0]
    }
    fn max(&self) -> Duration {
        *self.sorted().last().expect("at least one sample")
    }
    /// The middle sample (the mean of the two middle ones for an even count).
    fn median(&self) -> Duration {
        let v = self.sorted();
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// `12,345`
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A benchmark's result, rendered as Markdown.
struct Report {
    title: String,
    command: String,
    machine: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
    passed: bool,
}

impl Report {
    fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### {}\n", self.title);
        let _ = writeln!(out, "`{}`\n", self.command);
        let _ = writeln!(out, "{}\n", self.machine);
        let _ = writeln!(out, "| {} |", self.headers.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(self.headers.len()));
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------

fn status_bench(args: &StatusBench) -> BenchResult<Report> {
    if args.runs == 0 || args.revisions == 0 || args.concurrency == 0 {
        return Err("--runs, --revisions and --concurrency must be at least 1".into());
    }
    if args.tenants.windows(2).any(|w| w[0] > w[1]) {
        return Err("--tenants must be ascending".into());
    }
    let env = BenchEnv::start()?;
    eprintln!(
        "harness: nats-server {} at {}",
        env.machine.nats_server,
        env.nats.url()
    );
    let url = env.nats.url();
    let budget = Duration::from_millis(args.budget_ms);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut passed = true;
    let mut seeded = 0;
    for &n in &args.tenants {
        let writes = (n - seeded) * args.revisions;
        eprintln!("harness: seeding tenants {seeded}..{n} ({writes} KV writes)");
        let started = Instant::now();
        env.rt
            .block_on(seed(&env.bus, seeded..n, args.revisions, args.concurrency))?;
        let took = started.elapsed();
        notes.push(format!(
            "Seeding tenants {}..{}: {} KV writes in {:.2} s ({:.0} writes/s, concurrency {}).",
            thousands(seeded),
            thousands(n),
            thousands(writes),
            took.as_secs_f64(),
            writes as f64 / took.as_secs_f64(),
            args.concurrency,
        ));
        eprintln!("harness: {}", notes.last().expect("just pushed"));
        seeded = n;

        for json in [false, true] {
            let mut cli_args = vec!["status"];
            if json {
                cli_args.push("--json");
            }
            let envs = [("NATS_URL", url.as_str())];
            run_cli(&cli_args, &envs)?; // warm-up: page cache, server-side caches
            let mut walls = Vec::new();
            let mut peak = 0;
            let mut printed = 0;
            for _ in 0..args.runs {
                let run = run_cli(&cli_args, &envs)?;
                printed = count_records(&run.stdout, json)?;
                if printed != n {
                    return Err(format!(
                        "tenant-worker {} printed {printed} records, expected {n}",
                        cli_args.join(" ")
                    )
                    .into());
                }
                walls.push(run.wall);
                peak = peak.max(run.peak_rss_kib);
            }
            let samples = Samples(walls);
            let within = samples.max() < budget;
            passed &= within;
            eprintln!(
                "harness: {n} tenants, {}: median {}, max {}",
                cli_args.join(" "),
                ms(samples.median()),
                ms(samples.max())
            );
            rows.push(vec![
                thousands(n),
                format!("`{}`", cli_args.join(" ")),
                ms(samples.min()),
                ms(samples.median()),
                ms(samples.max()),
                format!("{:.1} MiB", peak as f64 / 1024.0),
                thousands(printed),
                if within { "yes" } else { "**no**" }.to_owned(),
            ]);
        }
    }
    notes.push(format!(
        "Wall time from spawn to exit of the release binary (connect, read the bucket, \
         print), {} timed runs after one warm-up; peak RSS is the highest VmHWM sampled \
         every 1 ms from /proc; rows are the records the command printed (checked to be N). \
         {} KV revision(s) per tenant.",
        args.runs, args.revisions
    ));
    let tenants: Vec<String> = args.tenants.iter().map(ToString::to_string).collect();
    Ok(Report {
        title: "`tenant-worker status`".to_owned(),
        command: format!(
            "cargo bench --bench harness -- status --tenants {}{}",
            tenants.join(","),
            if args.revisions == 1 {
                String::new()
            } else {
                format!(" --revisions {}", args.revisions)
            }
        ),
        machine: env.machine.markdown(),
        headers: [
            "tenants", "command", "min", "median", "max", "peak RSS", "rows",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([format!("every run < {}", ms(budget))])
        .collect(),
        rows,
        notes,
        passed,
    })
}

/// How many records `status` printed: table lines after the header, or the
/// length of the JSON array.
fn count_records(stdout: &[u8], json: bool) -> BenchResult<usize> {
    if json {
        let records: Vec<serde_json::Value> = serde_json::from_slice(stdout)?;
        Ok(records.len())
    } else {
        let text = std::str::from_utf8(stdout)?;
        Ok(text.lines().count().saturating_sub(1))
    }
}

/// Writes the records of tenants `range` (each `revisions` times, the last
/// one final) through the library's `StateStore`, `concurrency` tenants at a time.
async fn seed(
    bus: &Bus,
    range: std::ops::Range<usize>,
    revisions: usize,
    concurrency: usize,
) -> BenchResult<()> {
    let store = bus.state();
    let mut writes = futures::stream::iter(range)
        .map(|i| async move {
            let mut v = Versioned {
                record: tenant_record(i, 0, revisions),
                revision: None,
            };
            store.save(&mut v).await?;
            for r in 1..revisions {
                v.record = tenant_record(i, r, revisions);
                store.save(&mut v).await?;
            }
            Ok::<(), tenant_worker::Error>(())
        })
        .buffer_unordered(concurrency);
    while let Some(result) = writes.next().await {
        result?;
    }
    Ok(())
}

/// Tenant `i`'s record at write `r` of `revisions`: the final write is what a
/// worker leaves after provisioning (`ready`, plan, version, values, last
/// event, recent event ids), except that one tenant in 50 has an upgrade saga
/// in flight; earlier writes are `provisioning` with a growing step log.
fn tenant_record(i: usize, r: usize, revisions: usize) -> TenantRecord {
    const PLANS: [&str; 3] = ["free", "standard", "premium"];
    let id = TenantId::parse(&format!("acme-{i:06}")).expect("valid tenant id");
    let namespace = format!("tenant-{id}");
    let mut record = TenantRecord::new(id, namespace);
    let plan = PLANS[i % PLANS.len()];
    let version = format!("1.{}.{}", 4 + i % 3, i % 10);
    let now = Timestamp::now();
    let seq = (i as u64 + 1) * 3;
    let requested = Uuid::new_v4();
    record.plan = Some(plan.to_owned());
    record.app_version = Some(version.clone());
    record.values = json!({
        "replicas": 1 + i % 3,
        "config": {"locale": "en-US", "feature_flags": ["audit-log", "sso"]},
        "ingress": {"host": format!("acme-{i:06}.apps.example.com")},
    });
    if r + 1 < revisions {
        record.status = TenantStatus::Provisioning;
        let mut saga = SagaLog::new(requested, seq, IntentKind::Requested);
        saga.plan = Some(plan.to_owned());
        saga.app_version = Some(version);
        saga.release_revision = Some(1);
        for step in Step::PROVISION.iter().take(r) {
            saga.mark(*step, StepState::Done);
        }
        record.lease = Some(lease(requested, now));
        record.saga = Some(saga);
        return record;
    }
    record.status = TenantStatus::Ready;
    record.release_revision = 1 + (i % 4) as u32;
    record.finish(requested, EventType::Requested, seq, EventType::Provisioned);
    let upgraded = Uuid::new_v4();
    record.finish(
        upgraded,
        EventType::Upgraded,
        seq + 1,
        EventType::UpgradeCompleted,
    );
    if i % 50 == 49 {
        // An upgrade in flight, three steps in.
        let next = Uuid::new_v4();
        record.status = TenantStatus::Upgrading;
        let mut saga = SagaLog::new(next, seq + 2, IntentKind::Upgraded);
        saga.plan = Some("premium".to_owned());
        saga.app_version = record.app_version.clone();
        saga.rollback_plan = Some(plan.to_owned());
        saga.release_revision = Some(record.release_revision + 1);
        for step in Step::PROVISION.iter().take(3) {
            saga.mark(*step, StepState::Done);
        }
        record.lease = Some(lease(next, now));
        record.saga = Some(saga);
    }
    record
}

fn lease(event_id: Uuid, now: Timestamp) -> Lease {
    Lease {
        holder: "tenant-worker-7d9f-0".to_owned(),
        event_id,
        expires_at: now
            .checked_add(SignedDuration::from_secs(30))
            .expect("in range"),
    }
}
