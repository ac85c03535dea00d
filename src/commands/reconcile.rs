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
use crate::saga::reconcile::{Drifted, Inspection, Repair};
use crate::saga::state::TenantRecord;

/// Counts of one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub checked: usize,
    pub in_sync: usize,
    pub drifted: usize,
    pub repaired: usize,
    pub skipped: usize,
}

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
    Ok(Engine::for_worker(&settings, kube, bus))
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
    let summary = pass(
        &engine,
        &records,
        args.apply,
        |line| {
            if printed.is_ok() {
                printed = output::line(line);
            }
        },
        args.json,
    )
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

/// Checks `records` (and repairs them when `apply`), reporting each tenant
/// that is not in sync through `out`, as text or one JSON object per line.
///
/// # Errors
/// NATS or the cluster failing; a tenant whose repair fails is reported and
/// counted, not an error.
pub async fn pass(
    engine: &Engine,
    records: &[TenantRecord],
    apply: bool,
    mut out: impl FnMut(String),
    as_json: bool,
) -> Result<Summary, Error> {
    let mut summary = Summary::default();
    for record in records {
        summary.checked += 1;
        let tenant = &record.tenant_id;
        let inspection = engine.inspect(record).await?;
        let objects = match &inspection {
            Inspection::InSync => {
                summary.in_sync += 1;
                continue;
            }
            Inspection::Skipped { reason } => {
                summary.skipped += 1;
                out(if as_json {
                    json!({"tenant": tenant, "state": "skipped", "reason": reason}).to_string()
                } else {
                    format!("{tenant}: skipped: {reason}")
                });
                continue;
            }
            Inspection::Drifted { objects, .. } => objects.clone(),
        };
        summary.drifted += 1;
        let repair = if apply {
            Some(match engine.repair(tenant).await {
                Ok(r) => r,
                Err(e) => Repair::NotRepaired {
                    reason: e.to_string(),
                },
            })
        } else {
            None
        };
        if matches!(repair, Some(Repair::Repaired { .. } | Repair::InSync)) {
            summary.repaired += 1;
        }
        if as_json {
            let mut line = serde_json::to_value(&inspection).expect("inspections serialize");
            line["tenant"] = json!(tenant);
            if let Some(repair) = &repair {
                line["repair"] = serde_json::to_value(repair).expect("repairs serialize");
            }
            out(line.to_string());
        } else {
            out(describe(tenant, &inspection, &objects, repair.as_ref()));
        }
    }
    Ok(summary)
}

/// The text report of one drifted tenant.
fn describe(
    tenant: &TenantId,
    inspection: &Inspection,
    objects: &[Drifted],
    repair: Option<&Repair>,
) -> String {
    let mut text = format!("{tenant}: drifted");
    for d in objects {
        let mark = match d.drift {
            crate::contract::DriftKind::Missing => '+',
            crate::contract::DriftKind::Modified => '~',
            crate::contract::DriftKind::Unexpected => '-',
        };
        text.push_str(&format!("\n  {mark} {} {}", d.object, d.drift.as_str()));
        if !d.fields.is_empty() {
            text.push_str(&format!(": {}", d.fields.join(", ")));
        }
    }
    if let Inspection::Drifted { not_owned, .. } = inspection {
        for r in not_owned {
            text.push_str(&format!(
                "\n  ! {r} is in the way and not managed by tenant-worker (left alone)"
            ));
        }
    }
    match repair {
        Some(Repair::Repaired { event }) => {
            text.push_str(&format!("\n  repaired: tenant.drift_repaired {}", event.id));
        }
        Some(Repair::InSync) => text.push_str("\n  repaired meanwhile (in sync now)"),
        Some(Repair::NotRepaired { reason }) => {
            text.push_str(&format!("\n  not repaired: {reason}"));
        }
        None => {}
    }
    text
}
