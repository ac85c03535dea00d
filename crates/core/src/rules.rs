//! What an event does to a tenant, decided from the tenant's record alone.
//!
//! The saga engine, giving up on an event, drift repair and `replay`'s fold
//! all decide with these functions, so the rules are written once and tested
//! here, table by table, without a cluster or a NATS server.

use jiff::Timestamp;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::contract::{
    InboundEvent, RejectReason, Rejected, TenantRequested, TenantUpgraded, Values,
};
use crate::record::{Lease, SagaLog, StepState, TenantRecord};
use crate::steps::Step;

/// What to do with an inbound event when it is delivered.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// The event was applied already: acknowledge it, publish nothing.
    Duplicate,
    /// Another replica holds the tenant's lease: try again after `until`.
    Busy {
        /// The replica holding the lease.
        holder: String,
        /// When its lease expires unless renewed.
        until: Timestamp,
    },
    /// The event is older than what the tenant has applied (or, for a
    /// replay, than what the replay read): it changes nothing and is answered
    /// with `tenant.rejected` / `superseded`.
    Superseded(Rejected),
    /// An older event's saga has not ended: its redelivery finishes it first.
    Pending {
        /// The event whose saga is open.
        event_id: Uuid,
        /// Its stream sequence.
        sequence: u64,
    },
    /// Run the event's saga (once the events published before it are
    /// applied).
    Run {
        /// The record holds this event's own saga, which resumes.
        resuming: bool,
    },
}

/// Decides what the delivery of `event` at stream `sequence` does to the
/// tenant of `record`, for the replica `replica` at `now`. The guards, in
/// order: an event applied already; a lease another replica holds; an event
/// superseded by a newer one (a saga that has started is never superseded);
/// another event's open saga.
pub fn admit(
    record: &TenantRecord,
    event: &InboundEvent,
    sequence: u64,
    replica: &str,
    now: Timestamp,
) -> Admission {
    if record.has_applied(&event.id) {
        return Admission::Duplicate;
    }
    if let Some(lease) = &record.lease
        && lease.excludes(replica, now)
    {
        return Admission::Busy {
            holder: lease.holder.clone(),
            until: lease.expires_at,
        };
    }
    let resuming = record.saga.as_ref().is_some_and(|s| s.event_id == event.id);
    if !resuming && let Some(rejected) = superseded(record, event, sequence) {
        return Admission::Superseded(rejected);
    }
    match &record.saga {
        Some(saga) if saga.event_id != event.id => Admission::Pending {
            event_id: saga.event_id,
            sequence: saga.sequence,
        },
        _ => Admission::Run { resuming },
    }
}

/// The rejection of an intent older than what the tenant has seen.
///
/// A replayed event (`replay_as_of`) is also superseded when the tenant
/// applied an event published after the replay read the stream: the replay
/// was computed from an intent that is no longer the last.
pub fn superseded(record: &TenantRecord, event: &InboundEvent, sequence: u64) -> Option<Rejected> {
    let newest = record.saga.as_ref().map_or(record.last_sequence, |s| {
        s.sequence.max(record.last_sequence)
    });
    let message = if sequence < newest {
        format!(
            "a later event for tenant {} (stream sequence {newest}) was applied first; \
             this one (sequence {sequence}) changes nothing",
            record.tenant_id
        )
    } else {
        let as_of = event.replay_as_of.filter(|&as_of| newest > as_of)?;
        format!(
            "this replay was computed from TENANT_LIFECYCLE up to sequence {as_of}, and \
             tenant {} has since applied the event at sequence {newest}; it changes nothing",
            record.tenant_id
        )
    };
    Some(Rejected {
        reason: RejectReason::Superseded,
        message,
    })
}

/// How an event ends after its last allowed delivery failed.
#[derive(Debug, Clone, PartialEq)]
pub enum GiveUp {
    /// It was applied after all: nothing to do.
    Applied,
    /// Another replica runs this very event's saga now: that replica
    /// publishes its completion.
    LeftToHolder(Lease),
    /// Its saga never got the tenant (another event's saga holds it, or it
    /// could not start): `tenant.failed` with nothing undone, since nothing
    /// was done.
    NotStarted,
    /// Its saga ran: publish the completion it decided, or undo its steps
    /// and publish `tenant.failed`.
    Unwind,
}

/// Decides how `event` ends for good, for the replica `replica` at `now`
/// (the same lease rule as [`admit`]).
pub fn give_up(
    record: &TenantRecord,
    event: &InboundEvent,
    replica: &str,
    now: Timestamp,
) -> GiveUp {
    if record.has_applied(&event.id) {
        return GiveUp::Applied;
    }
    let holder = record.lease.as_ref().filter(|l| l.excludes(replica, now));
    match holder {
        Some(lease) if lease.event_id == event.id => GiveUp::LeftToHolder(lease.clone()),
        Some(_) => GiveUp::NotStarted,
        None if record.saga.as_ref().is_some_and(|s| s.event_id == event.id) => GiveUp::Unwind,
        None => GiveUp::NotStarted,
    }
}

/// The order in which a failed saga's steps are undone: the failed step
/// first (it may have half-applied: the RBAC step writes three objects),
/// then every other step the log names, in reverse saga order. Steps the log
/// never reached are not undone.
pub fn compensation_order(failed: Option<Step>, log: &SagaLog) -> Vec<Step> {
    let logged = |s: Step| log.steps.iter().any(|e| e.step == s);
    failed
        .into_iter()
        .chain(
            Step::ALL
                .iter()
                .rev()
                .copied()
                .filter(|s| Some(*s) != failed && logged(*s)),
        )
        .collect()
}

/// Whether the log says `step` was undone already (by an earlier delivery).
pub fn is_compensated(log: &SagaLog, step: Step) -> bool {
    log.steps
        .iter()
        .any(|e| e.step == step && e.state == StepState::Compensated)
}

/// The step a saga that stopped without a logged failure was about to run:
/// the one named when it is given up.
pub fn next_step(log: &SagaLog) -> Step {
    Step::ALL
        .iter()
        .copied()
        .find(|s| !log.is_done(*s))
        .unwrap_or(Step::Namespace)
}

/// What a tenant runs, as its events shape it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Shape {
    /// The plan.
    pub plan: String,
    /// The application version an event named (`None`: the worker's default).
    pub app_version: Option<String>,
    /// The tenant's own chart values (the event layer).
    pub values: Value,
}

impl Shape {
    /// What a `tenant.requested` asks for: its plan and values (a request
    /// states them anew), its version or else the one the tenant ran.
    pub fn requested(current_app_version: Option<&str>, d: &TenantRequested) -> Self {
        Self {
            plan: d.plan.clone(),
            app_version: d
                .app_version
                .clone()
                .or_else(|| current_app_version.map(str::to_owned)),
            values: Value::Object(d.values.clone().unwrap_or_default()),
        }
    }

    /// What a `tenant.upgraded` makes of the live tenant `self`: the plan
    /// and version it names, else the current ones; the values it names
    /// merged into the tenant's (a `null` removes one), the rest kept.
    pub fn upgraded(&self, d: &TenantUpgraded) -> Self {
        Self {
            plan: d.plan.clone().unwrap_or_else(|| self.plan.clone()),
            app_version: d.app_version.clone().or_else(|| self.app_version.clone()),
            values: match &d.values {
                Some(changes) => merge_values(&self.values, changes),
                None => self.values.clone(),
            },
        }
    }
}

fn merge_values(current: &Value, changes: &Values) -> Value {
    helm::merge_values(
        current,
        &Value::Object(changes.clone()),
        &Value::Object(Map::new()),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::contract::{EventType, Intent, IntentKind, TenantDeleted, TenantId};

    const ME: &str = "replica-a";

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn event(replay_as_of: Option<u64>) -> InboundEvent {
        InboundEvent {
            id: Uuid::new_v4(),
            source: "test".into(),
            time: Timestamp::now(),
            tenant_id: tenant(),
            intent: Intent::Deleted(TenantDeleted {
                tenant_id: tenant(),
                reason: None,
                metadata: None,
            }),
            replay_as_of,
        }
    }

    fn record() -> TenantRecord {
        TenantRecord::new(tenant(), "tenant-acme".into())
    }

    fn lease(holder: &str, event_id: Uuid, now: Timestamp, secs: i64) -> Lease {
        Lease {
            holder: holder.into(),
            event_id,
            expires_at: now + jiff::SignedDuration::from_secs(secs),
        }
    }

    /// Each guard of [`admit`], and the ones before it winning over it.
    #[test]
    fn admission_table() {
        let now = Timestamp::now();
        let ev = event(None);
        let other = Uuid::new_v4();
        type Setup = fn(&mut TenantRecord, &InboundEvent, Uuid, Timestamp);
        type Expect = fn(&Admission) -> bool;
        let cases: Vec<(&str, u64, Setup, Expect)> = vec![
            (
                "a new tenant runs",
                5,
                |_, _, _, _| {},
                |a| *a == Admission::Run { resuming: false },
            ),
            (
                "an applied event is a duplicate, even under another's lease",
                5,
                |r, e, o, now| {
                    r.finish(e.id, EventType::Deleted, 5, EventType::Deprovisioned);
                    r.lease = Some(lease("replica-b", o, now, 30));
                },
                |a| *a == Admission::Duplicate,
            ),
            (
                "another replica's live lease keeps the event out",
                5,
                |r, _, o, now| r.lease = Some(lease("replica-b", o, now, 30)),
                |a| matches!(a, Admission::Busy { holder, .. } if holder == "replica-b"),
            ),
            (
                "an expired lease does not",
                5,
                |r, _, o, now| r.lease = Some(lease("replica-b", o, now, -1)),
                |a| *a == Admission::Run { resuming: false },
            ),
            (
                "our own lease does not",
                5,
                |r, _, o, now| r.lease = Some(lease(ME, o, now, 30)),
                |a| *a == Admission::Run { resuming: false },
            ),
            (
                "an older sequence than the last applied is superseded",
                3,
                |r, _, _, _| r.last_sequence = 4,
                |a| matches!(a, Admission::Superseded(r) if r.reason == RejectReason::Superseded),
            ),
            (
                "an older sequence than an open saga is superseded",
                3,
                |r, _, o, _| r.saga = Some(SagaLog::new(o, 4, IntentKind::Requested)),
                |a| matches!(a, Admission::Superseded(_)),
            ),
            (
                "a saga that started is resumed, never superseded",
                3,
                |r, e, _, _| {
                    r.saga = Some(SagaLog::new(e.id, 3, IntentKind::Deleted));
                    r.last_sequence = 9;
                },
                |a| *a == Admission::Run { resuming: true },
            ),
            (
                "a newer event waits for the open saga of an older one",
                8,
                |r, _, o, _| r.saga = Some(SagaLog::new(o, 4, IntentKind::Requested)),
                |a| matches!(a, Admission::Pending { sequence: 4, .. }),
            ),
        ];
        for (name, sequence, setup, expect) in cases {
            let mut r = record();
            setup(&mut r, &ev, other, now);
            let got = admit(&r, &ev, sequence, ME, now);
            assert!(expect(&got), "{name}: got {got:?}");
        }
    }

    #[test]
    fn a_replay_is_superseded_by_what_was_applied_after_it_read_the_stream() {
        let mut r = record();
        r.last_sequence = 10;
        // The replay read the stream up to 12 and is published at 15: current.
        assert_eq!(superseded(&r, &event(Some(12)), 15), None);
        // It read up to 8; the tenant has since applied 10.
        let stale = superseded(&r, &event(Some(8)), 15).expect("superseded");
        assert!(
            stale.message.contains("up to sequence 8"),
            "{}",
            stale.message
        );
        // Equal sequences are not older.
        assert_eq!(superseded(&r, &event(None), 10), None);
    }

    #[test]
    fn give_up_table() {
        let now = Timestamp::now();
        let ev = event(None);
        let other = Uuid::new_v4();
        let mut applied = record();
        applied.finish(ev.id, EventType::Deleted, 1, EventType::Deprovisioned);
        let mut held_for_it = record();
        held_for_it.saga = Some(SagaLog::new(ev.id, 1, IntentKind::Deleted));
        held_for_it.lease = Some(lease("replica-b", ev.id, now, 30));
        let mut held_for_other = record();
        held_for_other.lease = Some(lease("replica-b", other, now, 30));
        let mut own_saga = record();
        own_saga.saga = Some(SagaLog::new(ev.id, 1, IntentKind::Deleted));
        own_saga.lease = Some(lease("replica-b", ev.id, now, -1));
        let mut other_saga = record();
        other_saga.saga = Some(SagaLog::new(other, 1, IntentKind::Requested));
        let cases = [
            ("applied", applied, GiveUp::Applied),
            (
                "held for this event",
                held_for_it,
                GiveUp::LeftToHolder(lease("replica-b", ev.id, now, 30)),
            ),
            ("held for another", held_for_other, GiveUp::NotStarted),
            ("its own saga, lease expired", own_saga, GiveUp::Unwind),
            ("another event's saga", other_saga, GiveUp::NotStarted),
            ("nothing at all", record(), GiveUp::NotStarted),
        ];
        for (name, r, want) in cases {
            assert_eq!(give_up(&r, &ev, ME, now), want, "{name}");
        }
    }

    fn log_with(steps: &[(Step, StepState)]) -> SagaLog {
        let mut log = SagaLog::new(Uuid::new_v4(), 1, IntentKind::Requested);
        for (step, state) in steps {
            log.mark(*step, *state);
        }
        log
    }

    #[test]
    fn compensation_order_table() {
        use Step::*;
        use StepState::*;
        type Log<'a> = &'a [(Step, StepState)];
        let cases: [(Option<Step>, Log<'_>, &[Step]); 4] = [
            (
                Some(Release),
                &[
                    (Namespace, Done),
                    (ResourceQuota, Done),
                    (LimitRange, Done),
                    (NetworkPolicy, Done),
                    (Rbac, Done),
                ],
                &[
                    Release,
                    Rbac,
                    NetworkPolicy,
                    LimitRange,
                    ResourceQuota,
                    Namespace,
                ],
            ),
            (
                Some(Rbac),
                &[(Namespace, Done), (ResourceQuota, Done)],
                &[Rbac, ResourceQuota, Namespace],
            ),
            // A resumed compensation: the failed step is still first; steps
            // undone already stay in the order (and are skipped by the engine).
            (
                Some(LimitRange),
                &[
                    (Namespace, Done),
                    (ResourceQuota, Compensated),
                    (LimitRange, Compensated),
                ],
                &[LimitRange, ResourceQuota, Namespace],
            ),
            (None, &[(Namespace, Done)], &[Namespace]),
        ];
        for (failed, steps, want) in cases {
            assert_eq!(
                compensation_order(failed, &log_with(steps)),
                want,
                "{failed:?} {steps:?}"
            );
        }
        let log = log_with(&[(Step::Namespace, StepState::Compensated)]);
        assert!(is_compensated(&log, Step::Namespace));
        assert!(!is_compensated(&log, Step::Rbac));
    }

    #[test]
    fn the_next_step_is_the_first_not_done() {
        assert_eq!(next_step(&log_with(&[])), Step::Namespace);
        assert_eq!(
            next_step(&log_with(&[
                (Step::Namespace, StepState::Done),
                (Step::ResourceQuota, StepState::Done)
            ])),
            Step::LimitRange
        );
        let all: Vec<_> = Step::ALL.iter().map(|s| (*s, StepState::Done)).collect();
        assert_eq!(
            next_step(&log_with(&all)),
            Step::Namespace,
            "nothing left: named as the first"
        );
    }

    #[test]
    fn a_request_states_values_anew_and_keeps_the_version_it_does_not_name() {
        let d: TenantRequested = serde_json::from_value(json!({
            "tenant_id": "acme", "plan": "standard", "values": {"a": 1}
        }))
        .unwrap();
        let shape = Shape::requested(Some("1.2.0"), &d);
        assert_eq!(shape.plan, "standard");
        assert_eq!(shape.app_version.as_deref(), Some("1.2.0"));
        assert_eq!(shape.values, json!({"a": 1}));
        assert_eq!(Shape::requested(None, &d).app_version, None);
    }

    #[test]
    fn an_upgrade_merges_the_values_it_names_and_keeps_the_rest() {
        let live = Shape {
            plan: "standard".into(),
            app_version: Some("1.0.0".into()),
            values: json!({"keep": 1, "change": 1, "drop": 1}),
        };
        let cases = [
            (
                json!({"tenant_id": "acme", "plan": "premium"}),
                "premium",
                Some("1.0.0"),
                json!({"keep": 1, "change": 1, "drop": 1}),
            ),
            (
                json!({"tenant_id": "acme", "app_version": "2.0.0"}),
                "standard",
                Some("2.0.0"),
                json!({"keep": 1, "change": 1, "drop": 1}),
            ),
            (
                json!({"tenant_id": "acme", "values": {"change": 2, "drop": null}}),
                "standard",
                Some("1.0.0"),
                json!({"keep": 1, "change": 2}),
            ),
        ];
        for (event, plan, version, values) in cases {
            let d: TenantUpgraded = serde_json::from_value(event.clone()).unwrap();
            let next = live.upgraded(&d);
            assert_eq!(next.plan, plan, "{event}");
            assert_eq!(next.app_version.as_deref(), version, "{event}");
            assert_eq!(next.values, values, "{event}");
        }
    }
}
