//! Random per-tenant scripts of intents (requested / upgraded / deleted), what
//! each must lead to when applied in stream order, and the checks that the
//! workers converged on them, for tests that throw many tenants at the
//! workers (`tests/race.rs`, `tests/torture_kill.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value;
use tenant_worker::contract::CloudEvent;
use uuid::Uuid;

use super::cluster::{expected_ready_objects, tenant_objects};
use super::{Harness, PATIENCE};

/// The plans the scripts choose from (all in the shipped catalogue).
pub(crate) const PLANS: [&str; 3] = ["free", "standard", "premium"];

/// One inbound event of a script.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Request(&'static str),
    Upgrade(&'static str),
    Delete,
}

/// A random script for one tenant, from the shapes that matter: a plain
/// request, request then delete (then request again), upgrades of a live and
/// of an absent tenant, a delete of an absent tenant, a repeated request.
pub(crate) fn script(rng: &mut fastrand::Rng) -> Vec<Step> {
    let mut plan = || PLANS[rng.usize(..PLANS.len())];
    let (a, b, c) = (plan(), plan(), plan());
    match rng.usize(..8) {
        0 => vec![Step::Request(a)],
        1 => vec![Step::Request(a), Step::Delete],
        2 => vec![Step::Request(a), Step::Delete, Step::Request(b)],
        3 => vec![Step::Request(a), Step::Upgrade(b)],
        4 => vec![Step::Request(a), Step::Upgrade(b), Step::Delete],
        5 => vec![Step::Delete],
        6 => vec![Step::Upgrade(a)],
        _ => vec![Step::Request(a), Step::Request(b), Step::Upgrade(c)],
    }
}

/// The event of `step` for `tenant`.
pub(crate) fn event_of(tenant: &str, step: &Step) -> CloudEvent<Value> {
    match step {
        Step::Request(p) => super::requested(tenant, p),
        Step::Upgrade(p) => super::upgraded(tenant, p),
        Step::Delete => super::deleted(tenant),
    }
}

/// The plan a tenant must end on (`None`: not live), and the completion type
/// of each step, when its events are applied in stream order.
pub(crate) fn expected(steps: &[Step]) -> (Option<&'static str>, Vec<&'static str>) {
    let mut live = None;
    let mut types = Vec::new();
    for step in steps {
        types.push(match (step, live) {
            (Step::Request(p), _) => {
                live = Some(*p);
                "tenant.provisioned"
            }
            (Step::Upgrade(p), Some(_)) => {
                live = Some(*p);
                "tenant.upgrade_completed"
            }
            (Step::Upgrade(_), None) => "tenant.rejected",
            (Step::Delete, _) => {
                live = None;
                "tenant.deprovisioned"
            }
        });
    }
    (live, types)
}

/// Scripts interleaved at random into one publishing order that keeps each
/// tenant's own order, with the ids of each tenant's events in that order.
pub(crate) fn interleave(
    rng: &mut fastrand::Rng,
    scripts: &BTreeMap<String, Vec<Step>>,
) -> (Vec<CloudEvent<Value>>, HashMap<String, Vec<Uuid>>) {
    let mut order = Vec::new();
    let mut ids: HashMap<String, Vec<Uuid>> = HashMap::new();
    let mut cursors: Vec<(&String, &Vec<Step>, usize)> =
        scripts.iter().map(|(t, s)| (t, s, 0)).collect();
    while !cursors.is_empty() {
        let i = rng.usize(..cursors.len());
        let (tenant, steps, next) = &mut cursors[i];
        let event = event_of(tenant, &steps[*next]);
        ids.entry((*tenant).clone()).or_default().push(event.id);
        order.push(event);
        *next += 1;
        if *next == steps.len() {
            cursors.swap_remove(i);
        }
    }
    (order, ids)
}

/// Waits (up to `limit` per event) until every event of `ids` has its
/// completion, and asserts each is of the type stream order implies.
pub(crate) async fn await_completions(
    h: &Harness,
    scripts: &BTreeMap<String, Vec<Step>>,
    ids: &HashMap<String, Vec<Uuid>>,
    limit: Duration,
) {
    for (tenant, steps) in scripts {
        let (_, types) = expected(steps);
        for (id, want) in ids[tenant].iter().zip(types) {
            let got = h.completion_within(tenant, *id, limit).await;
            assert_eq!(got["type"], want, "{tenant} {steps:?}: {got:#}");
        }
    }
}

/// Asserts that the workers converged on every script, once they are idle:
/// exactly one completion per inbound event (`published` of them) and no
/// event completed twice; for each tenant, no saga or lease left in its
/// record, and then either its objects, record and route on the last plan, or
/// no objects (none orphaned), no route and a `deleted`/`absent` record.
pub(crate) async fn assert_converged(
    h: &Harness,
    scripts: &BTreeMap<String, Vec<Step>>,
    published: usize,
) {
    let completions = h.completion_events().await;
    assert_eq!(
        completions.len(),
        published,
        "exactly one completion per inbound event"
    );
    let causes: BTreeSet<&str> = completions
        .iter()
        .map(|c| c["data"]["causation_id"].as_str().expect("causation_id"))
        .collect();
    assert_eq!(causes.len(), published, "no event completed twice");

    let kube = h.kube();
    for (tenant, steps) in scripts {
        let (live, _) = expected(steps);
        let route = h.kv("tenant_routes", tenant).await;
        let record = h.kv("tenant_state", tenant).await.expect("record");
        assert!(
            record["saga"].is_null() && record["lease"].is_null(),
            "{tenant}: {record:#}"
        );
        match live {
            Some(plan) => {
                assert_eq!(
                    tenant_objects(&kube, tenant).await,
                    expected_ready_objects(&kube, tenant).await,
                    "{tenant} {steps:?}"
                );
                assert_eq!(record["status"], "ready", "{tenant} {steps:?}");
                assert_eq!(record["plan"], plan, "{tenant} {steps:?}");
                assert_eq!(route.expect("route")["plan"], plan);
            }
            None => {
                // A deleted namespace may still be terminating for a moment.
                let deadline = tokio::time::Instant::now() + PATIENCE;
                while !tenant_objects(&kube, tenant).await.is_empty() {
                    assert!(tokio::time::Instant::now() < deadline, "{tenant} orphaned");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                assert!(route.is_none(), "{tenant} {steps:?} has a route");
                assert!(
                    ["deleted", "absent"].contains(&record["status"].as_str().unwrap()),
                    "{tenant} {steps:?}: {record:#}"
                );
            }
        }
    }
}
