//! `status`: wall time and peak RSS of `tenant-worker status` with N records.

use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tenant_worker::bus::Bus;
use tenant_worker::bus::state::Versioned;
use tenant_worker::contract::{EventType, IntentKind, TenantId};
use tenant_worker::record::{Lease, SagaLog, StepState, TenantRecord, TenantStatus};
use tenant_worker::steps::Step;
use uuid::Uuid;

use crate::common::{BenchEnv, BenchResult, Report, Samples, ms, run_cli, thousands};

#[derive(Args, Clone)]
pub(crate) struct StatusBench {
    /// Numbers of tenant records to measure with, comma-separated, ascending
    /// (one server: the bucket is topped up between sizes).
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    pub tenants: Vec<usize>,
    /// Timed runs per size and output format (after one untimed warm-up run).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// KV revisions written per tenant (the worker writes one per saga step;
    /// the bucket keeps 5): intermediate `provisioning` records, then the final one.
    #[arg(long, default_value_t = 1)]
    pub revisions: usize,
    /// Concurrent KV writes while seeding.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// The budget for every run, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub budget_ms: u64,
}

pub(crate) fn status_bench(args: &StatusBench) -> BenchResult<Report> {
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
    Ok(Report {
        title: "`tenant-worker status`".to_owned(),
        command: format!(
            "cargo bench --bench harness -- status --tenants {}{}",
            crate::common::comma_list(&args.tenants),
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
        for step in Step::ALL.iter().take(r) {
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
        for step in Step::ALL.iter().take(3) {
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
