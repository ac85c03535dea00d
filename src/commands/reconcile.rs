//! `tenant-worker reconcile`: finds tenants whose objects drifted from what
//! their record says, and with `--apply` repairs them through the saga engine
//! (see [`crate::saga::reconcile`]).

use async_nats::jetstream;
use serde_json::json;

use super::output;
use crate::bus::Bus;
use crate::config::ReconcileArgs;
use crate::contract::TenantId;
use crate::error::Error;
use crate::saga::Engine;
use crate::saga::reconcile::{PassMode, TenantReport};

/// Builds an engine for a tool run against the workers' NATS and cluster,
/// with the workers' settings; its leases name `<role>@<host>-<pid>`.
///
/// # Errors
/// Bad settings, an unreachable NATS or cluster, or missing buckets.
pub async fn tool_engine(
    nats: &crate::config::NatsArgs,
    kubeconfig: Option<&std::path::Path>,
    worker: &crate::config::WorkerArgs,
    role: &str,
) -> Result<Engine, Error> {
    let mut settings = worker.settings(&nats.nats_url)?;
    settings.engine.replica_id = format!("{role}@{}", settings.engine.replica_id);
    let client = nats.connect(&format!("tenant-worker-{role}")).await?;
    let bus = Bus::open(&jetstream::new(client)).await?;
    let kube = crate::cluster::connect(kubeconfig).await?;
    Ok(settings.engine(kube, bus))
}

/// Runs `reconcile`.
///
/// # Errors
/// An unreachable NATS or cluster; in a dry run, drift found (so that a cron
/// job or a CI check fails, as `kubectl diff` does); with `--apply`, tenants
/// that could not be repaired.
pub async fn run(args: &ReconcileArgs) -> Result<(), Error> {
    let engine = tool_engine(
        &args.nats,
        args.kubeconfig.as_deref(),
        &args.worker,
        "reconcile",
    )
    .await?;
    let records = match &args.tenant {
        Some(t) => {
            let tenant =
                TenantId::parse(t).map_err(|e| Error::Setup(format!("tenant {t:?}: {e}")))?;
            match engine.bus.state().load(&tenant).await? {
                Some(v) => vec![v.record],
                None => {
                    return Err(Error::Setup(format!(
                        "no record of tenant {tenant} in tenant_state"
                    )));
                }
            }
        }
        None => engine.bus.state().all().await?,
    };
    // A closed stdout does not stop the pass halfway through its repairs: it
    // ends the command afterwards (unless drift is left, which still fails).
    let mut printed = Ok(());
    let mode = if args.apply {
        PassMode::Repair
    } else {
        PassMode::Report
    };
    let summary = engine
        .reconcile_pass(&records, mode, |report| {
            if printed.is_ok() {
                printed = if args.json {
                    output::line(json_line(report))
                } else {
                    output::line(report)
                };
            }
        })
        .await?;
    if !args.json && printed.is_ok() {
        printed = output::line(format_args!(
            "{} tenants checked: {} in sync, {} drifted{}, {} skipped",
            summary.checked,
            summary.in_sync,
            summary.drifted,
            if args.apply {
                format!(" ({} repaired)", summary.repaired)
            } else {
                String::new()
            },
            summary.skipped
        ));
    }
    let unrepaired = summary.drifted - summary.repaired;
    match (args.apply, unrepaired) {
        (_, 0) => printed,
        (false, n) => Err(Error::Found(format!(
            "{n} tenant(s) drifted; run with --apply to repair"
        ))),
        (true, n) => Err(Error::Found(format!(
            "{n} drifted tenant(s) could not be repaired"
        ))),
    }
}

/// One JSON object per tenant not in sync: its inspection, with `tenant`
/// and, after a repair, `repair`.
fn json_line(report: &TenantReport) -> String {
    let mut line = serde_json::to_value(&report.inspection).expect("inspections serialize");
    line["tenant"] = json!(report.tenant);
    if let Some(repair) = &report.repair {
        line["repair"] = serde_json::to_value(repair).expect("repairs serialize");
    }
    line.to_string()
}
