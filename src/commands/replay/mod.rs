//! `tenant-worker replay`: re-reads `TENANT_LIFECYCLE` and shows, per tenant,
//! what the worker would do to bring the tenant to what its events ask for;
//! with `--apply`, re-drives those intents through the workers.
//!
//! # How it decides
//! - The selection (`--tenant`, `--since`/`--until`, `--from-seq`/`--to-seq`)
//!   chooses which tenants to look at: those with an event in it. The target
//!   of each is always its *whole* history up to the moment the replay read
//!   the stream, folded by the engine's rules ([`fold`]): a replay never
//!   brings back an intent that a later event replaced.
//! - The target is compared with the tenant's record (status, plan, version,
//!   values) and, for a ready tenant, with its objects in the cluster (the
//!   drift check of `reconcile`).
//! - A tenant with an event the workers have not finished with yet (past the
//!   consumer's ack floor, and not in its record), or a saga in flight, is
//!   left alone: the workers are on it.
//!
//! # Re-driving
//! A tenant that differs gets one new inbound event on `TENANT_LIFECYCLE`:
//! `tenant.requested` with the target plan, version, values and the last
//! event's metadata, or `tenant.deleted`. The workers apply it like any
//! other, with their idempotency and ordering rules:
//! - its id is derived from the tenant's last event and the record's last
//!   applied sequence, so running the same replay twice publishes the same
//!   event (JetStream drops the copy; the worker acknowledges a re-published
//!   id without applying it again);
//! - it carries the CloudEvents extension `replayasof` (the last stream
//!   sequence the replay read): if the tenant applies a newer event before
//!   the replayed one runs, the replayed one is rejected as `superseded`.
//!
//! Interrupting a replay is safe; running it again resumes it: tenants done
//! are in sync, tenants whose re-driven event is still queued are skipped.

pub mod fold;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use self::fold::{Folded, Live};
use super::output;
use super::reconcile::tool_engine;
use crate::cluster::NamespaceState;
use crate::config::ReplayArgs;
use crate::contract::{
    CONSUMER_NAME, CloudEvent, EventType, InboundEvent, LIFECYCLE_STREAM, LIFECYCLE_SUBJECT_PREFIX,
    REPLAY_AS_OF, TenantDeleted, TenantId, TenantRequested, decode_inbound,
};
use crate::error::Error;
use crate::record::{TenantRecord, TenantStatus};
use crate::saga::Engine;
use crate::saga::reconcile::{Drifted, Inspection};

/// The `source` of re-driven events.
pub const REPLAY_SOURCE: &str = "tenant-worker-replay";

/// What the replay would do for one tenant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Already what the events ask for.
    InSync,
    /// Re-drive `tenant.requested` to the target.
    Provision,
    /// Re-drive `tenant.deleted`.
    Deprovision,
    /// Left alone: the workers have not applied everything yet.
    Pending,
}

/// One tenant's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct TenantPlan {
    pub tenant: TenantId,
    pub action: Action,
    /// Why (pending), or what differs, one line each.
    pub changes: Vec<String>,
    /// Objects that differ in the cluster (a ready tenant whose record matches).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<Drifted>,
    pub target: Option<Live>,
    /// Sequences of the tenant's events read.
    pub events: Vec<u64>,
    /// Events that change nothing (the worker rejects them), with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<(u64, String)>,
    #[serde(skip)]
    last: Option<(u64, Uuid)>,
    #[serde(skip)]
    record_sequence: u64,
}

/// Runs `replay`.
///
/// # Errors
/// Bad arguments, NATS or the cluster failing, or (with `--apply`) tenants
/// whose re-driven event did not complete as asked.
pub async fn run(args: &ReplayArgs) -> Result<(), Error> {
    let tenants = args
        .tenant
        .iter()
        .map(|t| TenantId::parse(t).map_err(|e| Error::Setup(format!("--tenant {t:?}: {e}"))))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let engine = tool_engine(
        &args.nats,
        args.kubeconfig.as_deref(),
        &args.worker,
        "replay",
    )
    .await?;
    let client = args.nats.connect("tenant-worker-replay").await?;
    let js = jetstream::new(client);
    let mut stream = js
        .get_stream(LIFECYCLE_STREAM)
        .await
        .map_err(|e| Error::nats("open TENANT_LIFECYCLE", e))?;
    let state = stream
        .info()
        .await
        .map_err(|e| Error::nats("read TENANT_LIFECYCLE", e))?
        .state
        .clone();
    // Everything after this is left to the workers: the snapshot the replay
    // is computed from.
    let as_of = state.last_sequence;
    // Every message up to the consumer's ack floor is done with: an event
    // there that a record does not reflect (a tenant_state restored from an
    // older backup) is not pending, it is lost, and replay re-drives it.
    let done = stream
        .consumer_info(CONSUMER_NAME)
        .await
        .map_err(|e| Error::nats("read the tenant-worker consumer", e))?
        .ack_floor
        .stream_sequence;
    let selection = Selection::from_args(args, state.first_sequence, as_of)?;
    let filters = subject_filters(&tenants);
    let scanned = read(&stream, &filters, &selection, "reading").await?;
    let touched: BTreeSet<TenantId> = scanned.iter().map(|(_, e)| e.tenant_id.clone()).collect();
    // The whole history of each tenant in the selection.
    let histories = if selection.is_everything(state.first_sequence) {
        group(scanned)
    } else if touched.is_empty() {
        BTreeMap::new()
    } else {
        let everything = Selection {
            from: state.first_sequence,
            to: as_of,
            since: None,
            until: None,
        };
        let mut all =
            group(read(&stream, &subject_filters(&touched), &everything, "history").await?);
        all.retain(|t, _| touched.contains(t));
        all
    };
    let mut plans = Vec::new();
    for (tenant, events) in histories {
        let mut folded = Folded::default();
        for (sequence, event) in &events {
            folded.apply(*sequence, event, &engine.plans, &engine.chart);
        }
        let record = engine.bus.state().load(&tenant).await?.map(|v| v.record);
        plans.push(compare(&engine, tenant, folded, record.as_ref(), done).await?);
    }
    for plan in &plans {
        if args.json {
            output::line(serde_json::to_string(plan).expect("plans serialize"))?;
        } else if plan.action != Action::InSync {
            output::line(describe(plan))?;
        }
    }
    let count = |a: Action| plans.iter().filter(|p| p.action == a).count();
    let summary = format!(
        "{} events read (up to stream sequence {as_of}); {} tenants: {} in sync, {} to provision, {} to deprovision, {} pending",
        plans.iter().map(|p| p.events.len()).sum::<usize>(),
        plans.len(),
        count(Action::InSync),
        count(Action::Provision),
        count(Action::Deprovision),
        count(Action::Pending),
    );
    if !args.apply {
        eprintln!("{summary}");
        if count(Action::Provision) + count(Action::Deprovision) > 0 {
            eprintln!("dry run: nothing was changed; run with --apply to re-drive these intents");
        }
        return Ok(());
    }
    eprintln!("{summary}");
    apply(&js, &plans, as_of, Duration::from_secs(args.wait)).await
}

/// The selected part of the stream.
#[derive(Debug, Clone, Copy)]
struct Selection {
    from: u64,
    to: u64,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
}

impl Selection {
    fn from_args(args: &ReplayArgs, first: u64, last: u64) -> Result<Self, Error> {
        let from = args.from_seq.unwrap_or(first).max(first);
        let to = args.to_seq.unwrap_or(last).min(last);
        if let (Some(a), Some(b)) = (args.from_seq, args.to_seq)
            && a > b
        {
            return Err(Error::Setup(format!(
                "--from-seq {a} is after --to-seq {b}"
            )));
        }
        if let (Some(a), Some(b)) = (args.since, args.until)
            && a > b
        {
            return Err(Error::Setup(format!("--since {a} is after --until {b}")));
        }
        Ok(Self {
            from,
            to,
            since: args.since,
            until: args.until,
        })
    }

    fn is_everything(&self, first: u64) -> bool {
        self.since.is_none() && self.until.is_none() && self.from <= first
    }
}

fn subject_filters(tenants: &BTreeSet<TenantId>) -> Vec<String> {
    if tenants.is_empty() {
        vec![format!("{LIFECYCLE_SUBJECT_PREFIX}.>")]
    } else {
        tenants
            .iter()
            .map(|t| format!("{LIFECYCLE_SUBJECT_PREFIX}.*.{t}"))
            .collect()
    }
}

fn group(events: Vec<(u64, InboundEvent)>) -> BTreeMap<TenantId, Vec<(u64, InboundEvent)>> {
    let mut out: BTreeMap<TenantId, Vec<(u64, InboundEvent)>> = BTreeMap::new();
    for (sequence, event) in events {
        out.entry(event.tenant_id.clone())
            .or_default()
            .push((sequence, event));
    }
    out
}

fn bar(len: u64, what: &str) -> ProgressBar {
    // Drawn on stderr, and only on a terminal.
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>9} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// The well-formed events of the selection, in stream order (what does not
/// decode was dead-lettered by the workers and changed nothing).
async fn read(
    stream: &jetstream::stream::Stream,
    filters: &[String],
    s: &Selection,
    what: &str,
) -> Result<Vec<(u64, InboundEvent)>, Error> {
    if s.from > s.to {
        return Ok(Vec::new());
    }
    let deliver_policy = match s.since {
        Some(since) if s.from <= 1 => DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::from_unix_timestamp_nanos(since.as_nanosecond())
                .map_err(|e| Error::Setup(format!("--since {since}: {e}")))?,
        },
        _ => DeliverPolicy::ByStartSequence {
            start_sequence: s.from,
        },
    };
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subjects: filters.to_vec(),
            deliver_policy,
            ..OrderedConfig::default()
        })
        .await
        .map_err(|e| Error::nats("read TENANT_LIFECYCLE", e))?;
    if consumer.cached_info().num_pending == 0 {
        return Ok(Vec::new());
    }
    let progress = bar(s.to - s.from + 1, what);
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| Error::nats("read TENANT_LIFECYCLE", e))?;
    let mut out = Vec::new();
    while let Some(msg) = messages.next().await {
        let msg = msg.map_err(|e| Error::nats("read TENANT_LIFECYCLE", e))?;
        let info = msg
            .info()
            .map_err(|e| Error::nats("read TENANT_LIFECYCLE", e))?;
        let (sequence, pending) = (info.stream_sequence, info.pending);
        let published = Timestamp::from_nanosecond(info.published.unix_timestamp_nanos())
            .unwrap_or(Timestamp::MIN);
        if sequence > s.to || s.until.is_some_and(|until| published > until) {
            break;
        }
        progress.set_position(sequence.saturating_sub(s.from) + 1);
        if s.since.is_none_or(|since| published >= since)
            && let Ok(event) = decode_inbound(&msg.subject, &msg.payload, usize::MAX)
        {
            out.push((sequence, event));
        }
        if pending == 0 {
            break;
        }
    }
    progress.finish_and_clear();
    Ok(out)
}

/// Compares the fold of a tenant's events with its record and objects.
async fn compare(
    engine: &Engine,
    tenant: TenantId,
    folded: Folded,
    record: Option<&TenantRecord>,
    done: u64,
) -> Result<TenantPlan, Error> {
    let mut plan = TenantPlan {
        tenant: tenant.clone(),
        action: Action::InSync,
        changes: Vec::new(),
        objects: Vec::new(),
        target: folded.target.clone(),
        events: folded.sequences.clone(),
        ignored: folded.ignored.clone(),
        last: folded.last,
        record_sequence: record.map_or(0, |r| r.last_sequence),
    };
    if let Some(r) = record {
        if let Some(saga) = &r.saga {
            plan.action = Action::Pending;
            plan.changes
                .push(format!("the saga of event {} is in flight", saga.event_id));
            return Ok(plan);
        }
        let unapplied: Vec<u64> = folded
            .sequences
            .iter()
            .copied()
            .filter(|s| *s > r.last_sequence && *s > done)
            .collect();
        if !unapplied.is_empty() {
            plan.action = Action::Pending;
            plan.changes.push(format!(
                "events at sequence {unapplied:?} are not applied yet (the workers are on it, or a replay's event is queued)"
            ));
            return Ok(plan);
        }
    }
    let status = record.map_or(TenantStatus::Absent, |r| r.status);
    match &folded.target {
        Some(live) => {
            let current = record.filter(|r| r.status == TenantStatus::Ready);
            let app_version =
                |r: &TenantRecord| r.app_version.clone().unwrap_or_else(|| "-".into());
            match current {
                None => {
                    plan.changes
                        .push(format!("status: {} -> ready", status.as_str()));
                    plan.changes.push(format!(
                        "plan: {} -> {}",
                        record
                            .and_then(|r| r.plan.clone())
                            .unwrap_or_else(|| "-".into()),
                        live.shape.plan
                    ));
                    if let Some(v) = &live.shape.app_version {
                        plan.changes.push(format!("app_version: -> {v}"));
                    }
                    if engine.cluster.namespace_state(&tenant).await? == NamespaceState::Absent {
                        plan.changes.push(format!(
                            "objects: + Namespace {} and everything the plan and chart put in it",
                            engine.cluster.namespace_for(&tenant)
                        ));
                    }
                }
                Some(r) => {
                    if r.plan.as_deref() != Some(live.shape.plan.as_str()) {
                        plan.changes.push(format!(
                            "plan: {} -> {}",
                            r.plan.as_deref().unwrap_or("-"),
                            live.shape.plan
                        ));
                    }
                    if let Some(v) = &live.shape.app_version
                        && r.app_version.as_ref() != Some(v)
                    {
                        plan.changes
                            .push(format!("app_version: {} -> {v}", app_version(r)));
                    }
                    if r.values != live.shape.values {
                        plan.changes
                            .push(format!("values: {} -> {}", r.values, live.shape.values));
                    }
                    if plan.changes.is_empty() {
                        match engine.inspect(r).await? {
                            Inspection::InSync => {}
                            Inspection::Drifted { objects, .. } => plan.objects = objects,
                            Inspection::Skipped { reason } => {
                                plan.action = Action::Pending;
                                plan.changes.push(reason);
                                return Ok(plan);
                            }
                        }
                    }
                }
            }
            if !plan.changes.is_empty() || !plan.objects.is_empty() {
                plan.action = Action::Provision;
            }
        }
        None => {
            let namespace = engine.cluster.namespace_state(&tenant).await?;
            let live = matches!(status, TenantStatus::Ready | TenantStatus::Failed)
                && record.is_some_and(|r| r.plan.is_some());
            if live || matches!(namespace, NamespaceState::Owned { .. }) {
                plan.action = Action::Deprovision;
                plan.changes
                    .push(format!("status: {} -> deleted", status.as_str()));
                if matches!(namespace, NamespaceState::Owned { .. }) {
                    plan.changes.push(format!(
                        "objects: - Namespace {} and everything in it",
                        engine.cluster.namespace_for(&tenant)
                    ));
                }
            }
        }
    }
    Ok(plan)
}

fn describe(plan: &TenantPlan) -> String {
    let (first, last) = (
        plan.events.first().copied().unwrap_or_default(),
        plan.events.last().copied().unwrap_or_default(),
    );
    let head = match plan.action {
        Action::Provision => "would re-provision",
        Action::Deprovision => "would deprovision",
        Action::Pending => "pending, left alone",
        Action::InSync => "in sync",
    };
    let mut text = format!(
        "{}: {head} ({} events, sequences {first}..{last})",
        plan.tenant,
        plan.events.len()
    );
    for change in &plan.changes {
        text.push_str(&format!("\n  {change}"));
    }
    for d in &plan.objects {
        text.push_str(&format!("\n  objects: {} {}", d.object, d.drift.as_str()));
        if !d.fields.is_empty() {
            text.push_str(&format!(": {}", d.fields.join(", ")));
        }
    }
    for (sequence, why) in &plan.ignored {
        text.push_str(&format!("\n  (sequence {sequence} changes nothing: {why})"));
    }
    text
}

/// The event that re-drives `plan`, as JSON with the `replayasof` extension.
fn redrive_event(plan: &TenantPlan, as_of: u64) -> Option<(CloudEvent<Value>, Value)> {
    let (_, last_id) = plan.last?;
    let tenant = plan.tenant.clone();
    let data = match (&plan.action, &plan.target) {
        (Action::Provision, Some(live)) => serde_json::to_value(TenantRequested {
            tenant_id: tenant.clone(),
            plan: live.shape.plan.clone(),
            app_version: live.shape.app_version.clone(),
            values: live.shape.values.as_object().cloned(),
            metadata: live.metadata.clone(),
        }),
        (Action::Deprovision, _) => serde_json::to_value(TenantDeleted {
            tenant_id: tenant.clone(),
            reason: Some("replay".into()),
            metadata: None,
        }),
        _ => return None,
    }
    .expect("events serialize");
    let event_type = match plan.action {
        Action::Provision => EventType::Requested,
        _ => EventType::Deleted,
    };
    let mut event = CloudEvent::new(REPLAY_SOURCE, event_type, tenant, data);
    // The same replay of the same state is the same event.
    event.id = Uuid::new_v5(
        &last_id,
        format!("replay:{}:{}", event_type.as_str(), plan.record_sequence).as_bytes(),
    );
    let mut json = serde_json::to_value(&event).expect("events serialize");
    json[REPLAY_AS_OF] = json!(as_of);
    Some((event, json))
}

/// Publishes the re-driven events and waits for their completion events.
async fn apply(
    js: &jetstream::Context,
    plans: &[TenantPlan],
    as_of: u64,
    wait: Duration,
) -> Result<(), Error> {
    let events: Vec<_> = plans
        .iter()
        .filter_map(|p| redrive_event(p, as_of))
        .collect();
    if events.is_empty() {
        eprintln!("nothing to re-drive");
        return Ok(());
    }
    let progress = bar(events.len() as u64, "applying");
    let mut failed = Vec::new();
    let results = futures::stream::iter(events.iter().map(|(event, json)| async move {
        let result = publish_and_wait(js, event, json, wait).await;
        (event, result)
    }))
    .buffer_unordered(8);
    tokio::pin!(results);
    while let Some((event, result)) = results.next().await {
        progress.inc(1);
        let line = match result {
            Ok(completion) => {
                let mut outcome = completion["type"].as_str().unwrap_or("?").to_owned();
                let expected = match event.event_type {
                    EventType::Requested => {
                        ["tenant.provisioned", "tenant.upgrade_completed"].as_slice()
                    }
                    _ => ["tenant.deprovisioned"].as_slice(),
                };
                if !expected.contains(&outcome.as_str()) {
                    failed.push(event.subject.clone());
                    // What went wrong, as the completion event says it.
                    let data = &completion["data"];
                    for why in [
                        &data["failed_step"],
                        &data["error"],
                        &data["reason"],
                        &data["message"],
                    ] {
                        if let Some(why) = why.as_str() {
                            outcome.push_str(&format!(": {why}"));
                        }
                    }
                }
                format!(
                    "{}: re-driven {} {} -> {outcome}",
                    event.subject, event.event_type, event.id
                )
            }
            Err(e) => {
                failed.push(event.subject.clone());
                format!(
                    "{}: re-driven {} {}: {e}",
                    event.subject, event.event_type, event.id
                )
            }
        };
        progress.suspend(|| output::line(line))?;
    }
    progress.finish_and_clear();
    if failed.is_empty() {
        eprintln!("{} intents re-driven and completed", events.len());
        Ok(())
    } else {
        Err(Error::Found(format!(
            "{} of {} re-driven intents did not complete as asked: {}",
            failed.len(),
            events.len(),
            failed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

async fn publish_and_wait(
    js: &jetstream::Context,
    event: &CloudEvent<Value>,
    json: &Value,
    wait: Duration,
) -> Result<Value, Error> {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", event.id.to_string().as_str());
    headers.insert("Content-Type", "application/cloudevents+json");
    let payload = serde_json::to_vec(json).expect("events serialize");
    js.publish_with_headers(
        event.event_type.subject(&event.subject),
        headers,
        payload.into(),
    )
    .await
    .map_err(|e| Error::nats("publish to TENANT_LIFECYCLE", e))?
    .await
    .map_err(|e| Error::nats("confirm publication to TENANT_LIFECYCLE", e))?;
    super::publish::wait_for_completion(js, &event.subject, event.id, wait).await
}
