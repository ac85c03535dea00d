//! `growth`: what one replica costs as the number of tenants grows: the
//! provisioning and deletion rates, its peak RSS, `status` and start-up time,
//! at 1,000 and 10,000 tenants.

use std::time::{Duration, Instant};

use clap::Args;

use crate::common::{
    BenchEnv, BenchResult, Completions, Report, Samples, ms, run_cli, tenant_id, thousands,
};
use crate::lifecycle::{deprovision_all, provision_all};

#[derive(Args, Clone)]
pub(crate) struct GrowthBench {
    /// Tenant counts, each measured on a fresh NATS and cluster.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub tenants: Vec<usize>,
    /// Sagas the replica runs at once (the worker's default `--concurrency`).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Target: peak RSS of the replica at the largest count, MiB.
    #[arg(long, default_value_t = 64)]
    pub max_rss_mib: u64,
    /// Target: the provisioning rate at the largest count is at least this
    /// fraction of the rate at the smallest (1.0 less the run-to-run noise).
    #[arg(long, default_value_t = 0.9)]
    pub min_rate_kept: f64,
}

struct Size {
    tenants: usize,
    provision_rate: f64,
    deprovision_rate: f64,
    peak_rss_kib: u64,
    startup: Duration,
    status: Duration,
}

pub(crate) fn growth_bench(args: &GrowthBench) -> BenchResult<Report> {
    if args.tenants.is_empty() || args.tenants.contains(&0) || args.concurrency == 0 {
        return Err("--tenants and --concurrency must be at least 1".into());
    }
    let mut sizes = Vec::new();
    for &n in &args.tenants {
        eprintln!("harness: growth, {n} tenants");
        sizes.push(measure(n, args.concurrency)?);
        let s = sizes.last().expect("just pushed");
        eprintln!(
            "harness: {n} tenants: {:.1} provisioned/s, {:.1} deprovisioned/s, peak RSS {:.1} MiB, \
             start-up {}, status {}",
            s.provision_rate,
            s.deprovision_rate,
            s.peak_rss_kib as f64 / 1024.0,
            ms(s.startup),
            ms(s.status)
        );
    }
    let first = &sizes[0];
    let last = sizes.last().expect("at least one size");
    let rss_ok = last.peak_rss_kib <= args.max_rss_mib * 1024;
    let rate_ok = last.provision_rate >= first.provision_rate * args.min_rate_kept;
    let rows = sizes
        .iter()
        .map(|s| {
            vec![
                thousands(s.tenants),
                format!("{:.1}/s", s.provision_rate),
                format!("{:.1}/s", s.deprovision_rate),
                format!("{:.1} MiB", s.peak_rss_kib as f64 / 1024.0),
                ms(s.startup),
                ms(s.status),
            ]
        })
        .collect();
    let headers = [
        "tenants",
        "requested → provisioned",
        "deleted → deprovisioned",
        "peak RSS (worker)",
        "start-up to ready",
        "`status` (median of 3)",
    ];
    Ok(Report {
        rows,
        notes: vec![
            format!(
                "Each count on a fresh nats-server and embedded API (0 latency), one replica with \
                 {} sagas at once: N `tenant.requested` published at once, timed from the first \
                 publish to the last `tenant.provisioned`; then the worker is stopped (SIGTERM) \
                 and a new one started with N tenants in its buckets and cluster (start-up: \
                 spawn to `/readyz` 200); `status` lists the N records; then N `tenant.deleted`. \
                 Peak RSS is the worker's VmHWM over the provisioning run.",
                args.concurrency
            ),
            format!(
                "Targets: peak RSS ≤ {} MiB at {} tenants ({}); provisioning rate at {} tenants \
                 ≥ {:.0}% of the rate at {} ({}).",
                args.max_rss_mib,
                thousands(last.tenants),
                if rss_ok { "met" } else { "**missed**" },
                thousands(last.tenants),
                args.min_rate_kept * 100.0,
                thousands(first.tenants),
                if rate_ok { "met" } else { "**missed**" },
            ),
        ],
        passed: rss_ok && rate_ok,
        ..Report::new(
            "Cost growth with the number of tenants (one replica)",
            format!(
                "cargo bench --bench harness -- growth --tenants {}",
                crate::common::comma_list(&args.tenants)
            ),
            &headers,
        )?
    })
}

fn measure(n: usize, concurrency: usize) -> BenchResult<Size> {
    let env = BenchEnv::start()?;
    let cluster = env.start_api("growth")?;
    let mut worker = env
        .start_workers(&cluster.kubeconfig, "growth", 1, concurrency)?
        .remove(0);
    let tenants: Vec<_> = (0..n).map(|i| tenant_id("grow", i)).collect();
    let completions = env.rt.block_on(Completions::subscribe(&env.nats.url()))?;
    let provision_rate = env
        .rt
        .block_on(provision_all(&env, &completions, &tenants))?;
    worker.check_alive()?;
    let peak_rss_kib = worker.peak_rss_kib().unwrap_or(0);
    worker.stop()?;

    let spawned = Instant::now();
    let concurrency = concurrency.to_string();
    let mut worker = env.spawn_worker(
        &cluster.kubeconfig,
        "growth-restart",
        &["--concurrency", &concurrency],
    )?;
    worker.wait_ready(Duration::from_secs(60))?;
    let startup = spawned.elapsed();

    let url = env.nats.url();
    let mut walls = Vec::new();
    for _ in 0..3 {
        let run = run_cli(&["status"], &[("NATS_URL", url.as_str())])?;
        let rows = run.stdout.iter().filter(|b| **b == b'\n').count();
        if rows != n + 1 {
            return Err(format!("`status` printed {rows} lines for {n} tenants").into());
        }
        walls.push(run.wall);
    }

    let deprovision_rate = env
        .rt
        .block_on(deprovision_all(&env, &completions, &tenants))?;
    worker.check_alive()?;
    worker.stop()?;
    Ok(Size {
        tenants: n,
        provision_rate,
        deprovision_rate,
        peak_rss_kib,
        startup,
        status: Samples(walls).median(),
    })
}
