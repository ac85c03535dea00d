//! Races across replicas: three worker processes share the consumer while 300
//! tenants receive random interleavings of requested / upgraded / deleted
//! (including requested, deleted and re-requested in quick succession). Every
//! tenant must end in the state its events ask for in stream order, every
//! inbound event must get exactly one completion event of the expected type,
//! and no tenant may ever have been held by two sagas at once (checked on the
//! lease intervals the workers log).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use support::cluster::{expected_ready_objects, tenant_objects};
use support::process::WorkerOptions;
use support::*;
use tenant_worker::embedded_api::EmbeddedApiConfig;

const TENANTS: usize = 300;
const PLANS: [&str; 3] = ["free", "standard", "premium"];

#[derive(Debug, Clone)]
enum Step {
    Request(&'static str),
    Upgrade(&'static str),
    Delete,
}

/// A random script for one tenant, from the shapes that matter.
fn script(rng: &mut fastrand::Rng) -> Vec<Step> {
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

/// The state a tenant must end in, and the completion type of each step, when
/// its events are applied in stream order.
fn expected(steps: &[Step]) -> (Option<&'static str>, Vec<&'static str>) {
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

/// Lease intervals `[taken, released]` per tenant from the workers' JSON logs.
fn lease_intervals(logs: &[String]) -> HashMap<String, Vec<(Timestamp, Timestamp, String)>> {
    let mut open: HashMap<(String, String), Timestamp> = HashMap::new();
    let mut done: HashMap<String, Vec<(Timestamp, Timestamp, String)>> = HashMap::new();
    for (replica, log) in logs.iter().enumerate() {
        for line in log.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let message = v["message"].as_str().unwrap_or_default();
            if message != "lease taken" && message != "lease released" {
                continue;
            }
            let tenant = v["span"]["tenant_id"]
                .as_str()
                .expect("span names the tenant");
            let at: Timestamp = v["timestamp"].as_str().unwrap().parse().unwrap();
            let key = (tenant.to_owned(), replica.to_string());
            if message == "lease taken" {
                open.insert(key, at);
            } else if let Some(start) = open.remove(&key) {
                done.entry(key.0)
                    .or_default()
                    .push((start, at, format!("replica {replica}")));
            }
        }
    }
    assert!(open.is_empty(), "leases never released: {open:?}");
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_converge_on_the_last_intent_of_every_tenant() {
    let h = Harness::start_bare(EmbeddedApiConfig {
        namespace_termination_delay: Duration::from_millis(200),
        ..EmbeddedApiConfig::default()
    })
    .await;
    let workers: Vec<_> = ["r1", "r2", "r3"]
        .into_iter()
        .map(|name| {
            h.spawn_worker(WorkerOptions {
                name,
                failpoints: None,
                args: &["--lease-ttl-secs", "30", "--ack-wait-secs", "30"],
            })
        })
        .collect();
    h.wait_topology().await;

    let seed = std::env::var("RACE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("RACE_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let scripts: BTreeMap<String, Vec<Step>> = (0..TENANTS)
        .map(|i| (format!("race-{i:03}"), script(&mut rng)))
        .collect();
    // Interleave: repeatedly pick a random tenant with events left.
    let mut cursors: Vec<(&String, &Vec<Step>, usize)> =
        scripts.iter().map(|(t, s)| (t, s, 0)).collect();
    let mut ids: HashMap<String, Vec<uuid::Uuid>> = HashMap::new();
    let mut published = 0;
    while !cursors.is_empty() {
        let i = rng.usize(..cursors.len());
        let (tenant, steps, next) = &mut cursors[i];
        let event = match &steps[*next] {
            Step::Request(p) => requested(tenant, p),
            Step::Upgrade(p) => upgraded(tenant, p),
            Step::Delete => deleted(tenant),
        };
        h.publish(&event).await;
        published += 1;
        ids.entry((*tenant).clone()).or_default().push(event.id);
        *next += 1;
        if *next == steps.len() {
            cursors.swap_remove(i);
        }
    }

    // Every event gets its completion, of the type stream order implies.
    for (tenant, steps) in &scripts {
        let (_, types) = expected(steps);
        for (id, want) in ids[tenant].iter().zip(types) {
            let got = h
                .completion_within(tenant, *id, Duration::from_secs(120))
                .await;
            assert_eq!(got["type"], want, "{tenant} {steps:?}: {got:#}");
        }
    }
    h.wait_idle().await;
    let completions = h.completion_events().await;
    assert_eq!(
        completions.len(),
        published,
        "one completion per inbound event"
    );

    let kube = h.kube();
    for (tenant, steps) in &scripts {
        let (live, _) = expected(steps);
        let route = h.kv("tenant_routes", tenant).await;
        let record = h.kv("tenant_state", tenant).await.expect("record");
        assert!(
            record["saga"].is_null() && record["lease"].is_null(),
            "{record:#}"
        );
        match live {
            Some(plan) => {
                assert_eq!(
                    tenant_objects(&kube, tenant).await,
                    expected_ready_objects(&kube, tenant).await
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

    // Never two sagas on one tenant at once, across all replicas.
    let logs: Vec<String> = workers.iter().map(|w| w.log_text()).collect();
    let intervals = lease_intervals(&logs);
    assert!(
        intervals.len() >= TENANTS / 2,
        "leases logged for {} tenants",
        intervals.len()
    );
    for (tenant, mut spans) in intervals {
        spans.sort();
        for pair in spans.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "{tenant}: two sagas at once: {:?} and {:?}",
                pair[0],
                pair[1]
            );
        }
    }
    let working = logs.iter().filter(|l| l.contains("lease taken")).count();
    assert!(working >= 2, "more than one replica worked");
    let deferred: usize = logs
        .iter()
        .map(|l| l.matches("not now; redelivering later").count())
        .sum();
    eprintln!(
        "{published} events, {deferred} deliveries deferred for per-tenant order or a busy tenant"
    );
}
