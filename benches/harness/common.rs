//! What every benchmark shares: a nats-server with the worker's topology, the
//! embedded Kubernetes API, `tenant-worker` processes (the release binary),
//! inbound events, the completion events they cause, and the Markdown report.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use kube_double::{EmbeddedApi, EmbeddedApiConfig};
use serde_json::{Value, json};
use tenant_worker::bus::{Bus, TopologySettings, ensure_topology};
use tenant_worker::contract::{CloudEvent, EventType, TenantDeleted, TenantId, TenantRequested};
use tenant_worker_test_support::nats_server::{self, NatsServer};
use uuid::Uuid;

/// The `tenant-worker` binary that cargo built for this bench (release profile).
pub(crate) const TENANT_WORKER: &str = env!("CARGO_BIN_EXE_tenant-worker");

pub(crate) type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A fresh nats-server with the worker's streams, consumer and buckets, and a
/// runtime to drive the library's async API from the (synchronous) harness.
pub(crate) struct BenchEnv {
    pub rt: tokio::runtime::Runtime,
    pub nats: NatsServer,
    pub js: jetstream::Context,
    pub bus: Bus,
    pub machine: Machine,
    /// Kubeconfig, worker logs.
    pub dir: tempfile::TempDir,
}

impl BenchEnv {
    pub(crate) fn start() -> BenchResult<Self> {
        let machine = Machine::detect()?;
        let nats = NatsServer::start(None)?;
        let rt = tokio::runtime::Runtime::new()?;
        let (js, bus) = rt.block_on(async {
            let client = async_nats::connect(nats.url()).await?;
            let js = jetstream::new(client);
            let (bus, _consumer) = ensure_topology(&js, &TopologySettings::default()).await?;
            BenchResult::Ok((js, bus))
        })?;
        Ok(Self {
            rt,
            nats,
            js,
            bus,
            machine,
            dir: tempfile::tempdir()?,
        })
    }
}

/// What the figures were measured on.
pub(crate) struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory: String,
    pub nats_server: String,
}

impl Machine {
    pub(crate) fn detect() -> BenchResult<Self> {
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

    pub(crate) fn markdown(&self) -> String {
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

pub(crate) fn gib(kib: u64) -> f64 {
    kib as f64 / (1024.0 * 1024.0)
}

/// One run of the `tenant-worker` binary.
pub(crate) struct CliRun {
    /// From spawn to exit (process start-up and exit included).
    pub wall: Duration,
    /// Peak resident set size in KiB (`VmHWM` of /proc/<pid>/status, sampled
    /// every millisecond while the process runs: a lower bound, off only by
    /// what the process may allocate in its last millisecond).
    pub peak_rss_kib: u64,
    pub stdout: Vec<u8>,
}

/// Runs `tenant-worker <args>` with `envs`, measuring its wall time and peak
/// RSS; fails when it exits with an error.
pub(crate) fn run_cli(args: &[&str], envs: &[(&str, &str)]) -> BenchResult<CliRun> {
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
pub(crate) fn vm_hwm_kib(pid: u32) -> Option<u64> {
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
pub(crate) struct Samples(pub Vec<Duration>);

impl Samples {
    pub(crate) fn sorted(&self) -> Vec<Duration> {
        let mut v = self.0.clone();
        v.sort();
        v
    }
    pub(crate) fn min(&self) -> Duration {
        self.sorted()[0]
    }
    pub(crate) fn max(&self) -> Duration {
        *self.sorted().last().expect("at least one sample")
    }
    /// The middle sample (the mean of the two middle ones for an even count).
    pub(crate) fn median(&self) -> Duration {
        let v = self.sorted();
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2
        }
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// `1.23 ms`
pub(crate) fn ms_f(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `12,345`
pub(crate) fn thousands(n: usize) -> String {
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
pub(crate) struct Report {
    pub title: String,
    pub command: String,
    pub machine: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub notes: Vec<String>,
    pub passed: bool,
}

impl Report {
    /// A passing report on this machine with no rows or notes yet.
    pub(crate) fn new(title: &str, command: String, headers: &[&str]) -> BenchResult<Self> {
        Ok(Self {
            title: title.to_owned(),
            command,
            machine: Machine::detect()?.markdown(),
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
            passed: true,
        })
    }

    pub(crate) fn markdown(&self) -> String {
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

impl BenchEnv {
    /// Starts an embedded Kubernetes API (0 latency: objects are ready in the
    /// response that creates them) in this process and writes its kubeconfig.
    pub(crate) fn start_api(&self, name: &str) -> BenchResult<Cluster> {
        let api = self.rt.block_on(EmbeddedApi::start(
            "127.0.0.1:0".parse()?,
            EmbeddedApiConfig::default(),
        ))?;
        let kubeconfig = self.dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(&kubeconfig, api.kubeconfig_yaml())?;
        Ok(Cluster { api, kubeconfig })
    }

    /// Starts `tenant-worker run` against this NATS and the cluster of
    /// `kubeconfig`.
    pub(crate) fn spawn_worker(
        &self,
        kubeconfig: &Path,
        name: &str,
        extra: &[&str],
    ) -> BenchResult<Worker> {
        Worker::spawn(&self.nats.url(), kubeconfig, self.dir.path(), name, extra)
    }

    /// Starts `replicas` workers named `<prefix>-<i>` with `--concurrency
    /// concurrency` against the cluster of `kubeconfig`, and waits until each
    /// is ready.
    pub(crate) fn start_workers(
        &self,
        kubeconfig: &Path,
        prefix: &str,
        replicas: usize,
        concurrency: usize,
    ) -> BenchResult<Vec<Worker>> {
        let concurrency = concurrency.to_string();
        let mut workers = (0..replicas)
            .map(|i| {
                self.spawn_worker(
                    kubeconfig,
                    &format!("{prefix}-{i}"),
                    &["--concurrency", &concurrency],
                )
            })
            .collect::<BenchResult<Vec<_>>>()?;
        for w in &mut workers {
            w.wait_ready(Duration::from_secs(30))?;
        }
        Ok(workers)
    }
}

/// An embedded Kubernetes API served from this process.
pub(crate) struct Cluster {
    pub api: EmbeddedApi,
    pub kubeconfig: PathBuf,
}

/// A `tenant-worker run` process (the release binary, default settings, its
/// log at info level in a file); killed on drop.
pub(crate) struct Worker {
    child: Child,
    pub name: String,
    metrics_port: u16,
    log: PathBuf,
}

impl Worker {
    fn spawn(
        nats_url: &str,
        kubeconfig: &Path,
        dir: &Path,
        name: &str,
        extra: &[&str],
    ) -> BenchResult<Self> {
        let metrics_port = nats_server::free_port()?;
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = Command::new(TENANT_WORKER)
            .args(["--log-format", "json", "run", "--nats-url", nats_url])
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--replica-id", name])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(Self {
            child,
            name: name.to_owned(),
            metrics_port,
            log,
        })
    }

    /// Waits until `/readyz` answers 200 (NATS, the stream and the Kubernetes
    /// API all answer); returns how long that took.
    pub(crate) fn wait_ready(&mut self, limit: Duration) -> BenchResult<Duration> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!(
                    "worker {} exited ({status}) before it was ready:\n{}",
                    self.name,
                    self.log_tail(20)
                )
                .into());
            }
            if http_status(self.metrics_port, "/readyz") == Some(200) {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                return Err(format!("worker {} not ready after {limit:?}", self.name).into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Peak resident set size so far (`VmHWM`), KiB.
    pub(crate) fn peak_rss_kib(&self) -> Option<u64> {
        vm_hwm_kib(self.child.id())
    }

    /// CPU time (user and system) the process has used so far.
    pub(crate) fn cpu(&self) -> Duration {
        cpu_of(&self.child.id().to_string())
    }

    /// Fails when the process has exited (it must not, whatever it was sent).
    pub(crate) fn check_alive(&mut self) -> BenchResult<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(format!(
                "worker {} exited ({status}):\n{}",
                self.name,
                self.log_tail(20)
            )
            .into()),
        }
    }

    /// The last `n` lines of its log.
    pub(crate) fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM, then waits for it to exit (SIGKILL after 30 s).
    pub(crate) fn stop(mut self) -> BenchResult<()> {
        let pid = i32::try_from(self.child.id())?;
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        let started = Instant::now();
        while self.child.try_wait()?.is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                self.child.kill()?;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

/// The CPU time (user and system) `workers` have used so far, together.
pub(crate) fn workers_cpu(workers: &[Worker]) -> Duration {
    workers.iter().map(Worker::cpu).sum()
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user and system) of process `pid` (`self` for this one), from
/// `/proc/<pid>/stat` in clock ticks of 1/100 s (Linux's `USER_HZ`).
pub(crate) fn cpu_of(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold blanks.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The status code of `GET path` on 127.0.0.1:`port`, if it answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// An inbound event, ready to publish.
pub(crate) struct Inbound {
    pub id: Uuid,
    pub subject: String,
    pub payload: Bytes,
}

fn inbound<D: serde::Serialize>(source: &str, t: EventType, tenant: &TenantId, data: D) -> Inbound {
    let event = CloudEvent::new(source, t, tenant.clone(), data);
    Inbound {
        id: event.id,
        subject: t.subject(tenant),
        payload: serde_json::to_vec(&event).expect("events serialize").into(),
    }
}

/// Tenant number `i` of a benchmark run: `bench-<run>-<i>`.
pub(crate) fn tenant_id(run: &str, i: usize) -> TenantId {
    TenantId::parse(&format!("{run}-{i:05}")).expect("a valid tenant id")
}

/// `tenant.requested` for `tenant` on one of the three plans (by `i`), with
/// billing metadata, as signup sends it.
pub(crate) fn requested(tenant: &TenantId, i: usize) -> Inbound {
    const PLANS: [&str; 3] = ["free", "standard", "premium"];
    inbound(
        "signup",
        EventType::Requested,
        tenant,
        TenantRequested {
            tenant_id: tenant.clone(),
            plan: PLANS[i % PLANS.len()].into(),
            app_version: None,
            values: None,
            metadata: json!({"billing_account": format!("ba_{tenant}")})
                .as_object()
                .cloned(),
        },
    )
}

/// `tenant.deleted` for `tenant`, as billing sends it.
pub(crate) fn deleted(tenant: &TenantId) -> Inbound {
    inbound(
        "billing",
        EventType::Deleted,
        tenant,
        TenantDeleted {
            tenant_id: tenant.clone(),
            reason: Some("subscription cancelled".into()),
            metadata: None,
        },
    )
}

/// Publishes `events` with `Nats-Msg-Id` = event id, pipelined: up to
/// [`PUBLISH_WINDOW`] stream acknowledgements are awaited at once (async-nats
/// holds back a publish while too many acknowledgements are outstanding, so
/// an unbounded pipeline would wait for itself). Returns when each was sent.
pub(crate) async fn publish_all(
    js: &jetstream::Context,
    events: &[Inbound],
) -> BenchResult<Vec<Instant>> {
    let mut sent = Vec::with_capacity(events.len());
    let mut acks = std::collections::VecDeque::with_capacity(PUBLISH_WINDOW);
    for e in events {
        if acks.len() == PUBLISH_WINDOW {
            acks.pop_front().expect("a full window").await?;
        }
        sent.push(Instant::now());
        acks.push_back(publish_one(js, e).await?);
    }
    for ack in acks {
        ack.await?;
    }
    Ok(sent)
}

/// Publish acknowledgements outstanding at once in [`publish_all`].
pub(crate) const PUBLISH_WINDOW: usize = 256;

/// Sends one event; the returned future resolves when the stream has it.
pub(crate) async fn publish_one(
    js: &jetstream::Context,
    e: &Inbound,
) -> BenchResult<jetstream::context::PublishAckFuture> {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", e.id.to_string().as_str());
    Ok(js
        .publish_with_headers(e.subject.clone(), headers, e.payload.clone())
        .await?)
}

/// Completion events as they arrive on `tenant.status.>` (a core NATS
/// subscription: the earliest moment a consumer could see them), by the
/// inbound event they answer (`data.causation_id`).
#[derive(Clone, Default)]
pub(crate) struct Completions(Arc<Mutex<HashMap<Uuid, (Instant, String)>>>);

impl Completions {
    /// Subscribes; completions are recorded from when this returns.
    pub(crate) async fn subscribe(nats_url: &str) -> BenchResult<Self> {
        let client = async_nats::connect(nats_url).await?;
        let mut sub = client.subscribe("tenant.status.>").await?;
        client.flush().await?;
        let seen = Self::default();
        let out = seen.clone();
        tokio::spawn(async move {
            let _client = client;
            while let Some(msg) = sub.next().await {
                let at = Instant::now();
                let Ok(v) = serde_json::from_slice::<Value>(&msg.payload) else {
                    continue;
                };
                let cause = v["data"]["causation_id"]
                    .as_str()
                    .and_then(|s| s.parse().ok());
                if let (Some(cause), Some(t)) = (cause, v["type"].as_str()) {
                    out.0
                        .lock()
                        .expect("completions lock")
                        .entry(cause)
                        .or_insert((at, t.to_owned()));
                }
            }
        });
        Ok(seen)
    }

    /// Waits until every event of `ids` has its completion; returns them in
    /// the order of `ids`. Fails after `limit`, saying how many are missing.
    pub(crate) async fn wait_for(
        &self,
        ids: &[Uuid],
        limit: Duration,
    ) -> BenchResult<Vec<(Instant, String)>> {
        let deadline = Instant::now() + limit;
        loop {
            {
                let seen = self.0.lock().expect("completions lock");
                let missing = ids.iter().filter(|id| !seen.contains_key(id)).count();
                if missing == 0 {
                    return Ok(ids.iter().map(|id| seen[id].clone()).collect());
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "{missing} of {} events without a completion after {limit:?}",
                        ids.len()
                    )
                    .into());
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Fails unless every completion is of type `expected`.
pub(crate) fn check_types(done: &[(Instant, String)], expected: &str) -> BenchResult<()> {
    match done.iter().find(|(_, t)| t != expected) {
        None => Ok(()),
        Some((_, t)) => Err(format!(
            "a completion was {t}, expected only {expected} (the run is not measuring what it should)"
        )
        .into()),
    }
}

/// The `q`-quantile (0..=1) of `samples` by nearest rank.
pub(crate) fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// `12.3 /s`
pub(crate) fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

/// `items` as the harness's command lines take them: `1000,10000`.
pub(crate) fn comma_list<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
