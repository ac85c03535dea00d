//! `tenant-worker status`: the worker's record of each tenant, as a table or JSON.

use async_nats::jetstream;

use super::output;
use crate::bus::state::StateStore;
use crate::config::StatusArgs;
use crate::contract::{STATE_BUCKET, TenantId};
use crate::error::Error;
use crate::record::{Lease, SagaLog, SagaPhase, StepState, TenantRecord};

/// Runs `tenant-worker status`.
///
/// # Errors
/// A bad tenant id, an unreachable NATS, or no `tenant_state` bucket.
pub async fn run(args: &StatusArgs) -> Result<(), Error> {
    let tenant = args
        .tenant
        .as_deref()
        .map(TenantId::parse)
        .transpose()
        .map_err(|e| Error::Setup(e.to_string()))?;
    let client = args.nats.connect("tenant-worker-cli").await?;
    let js = jetstream::new(client);
    let kv = js.get_key_value(STATE_BUCKET).await.map_err(|e| {
        Error::nats(
            "open tenant_state",
            format!("{e} (has a worker run against this NATS? it creates the bucket)"),
        )
    })?;
    let store = StateStore::new(kv);
    let records = match &tenant {
        Some(t) => match store.load(t).await? {
            Some(v) => vec![v.record],
            None => return Err(Error::Setup(format!("no record for tenant {t}"))),
        },
        None => store.all().await?,
    };
    if args.json {
        let out = if tenant.is_some() {
            serde_json::to_string_pretty(&records[0])
        } else {
            serde_json::to_string_pretty(&records)
        };
        output::line(out.expect("records serialize"))
    } else {
        output::text(table(&records))
    }
}

/// A human-readable table of records, one line each.
pub fn table(records: &[TenantRecord]) -> String {
    let header = [
        "TENANT",
        "STATUS",
        "PLAN",
        "VERSION",
        "NAMESPACE",
        "SAGA",
        "LAST EVENT",
        "UPDATED",
    ];
    let rows: Vec<[String; 8]> = records
        .iter()
        .map(|r| {
            let saga = r
                .saga
                .as_ref()
                .map_or_else(|| "-".to_owned(), |s| saga_cell(s, r.lease.as_ref()));
            let last = r.last_event.as_ref().map_or_else(
                || "-".to_owned(),
                |e| format!("{} -> {} (seq {})", e.event_type, e.outcome, e.sequence),
            );
            [
                r.tenant_id.to_string(),
                r.status.as_str().to_owned(),
                r.plan.clone().unwrap_or_else(|| "-".into()),
                r.app_version.clone().unwrap_or_else(|| "-".into()),
                r.namespace.clone(),
                saga,
                last,
                r.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

/// The saga in flight in one cell: intent, target plan, phase, the step log
/// (`~step` undone, `!step` whose undoing failed) and the replica holding it,
/// e.g. `requested premium forward [namespace,resource_quota] on worker-0-1`.
fn saga_cell(saga: &SagaLog, lease: Option<&Lease>) -> String {
    let steps: Vec<String> = saga
        .steps
        .iter()
        .map(|e| match e.state {
            StepState::Done => e.step.as_str().to_owned(),
            StepState::Compensated => format!("~{}", e.step),
            StepState::CompensationFailed => format!("!{}", e.step),
        })
        .collect();
    let mut cell = saga.intent.as_str().to_owned();
    if let Some(plan) = &saga.plan {
        cell.push(' ');
        cell.push_str(plan);
    }
    cell.push_str(match saga.phase {
        SagaPhase::Forward => " forward",
        SagaPhase::Compensating => " compensating",
    });
    cell.push_str(&format!(" [{}]", steps.join(",")));
    if let Some(lease) = lease.filter(|l| l.event_id == saga.event_id) {
        cell.push_str(&format!(" on {}", lease.holder));
    }
    cell
}
