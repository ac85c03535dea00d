//! Races across replicas: three worker processes share the consumer while 300
//! tenants receive random interleavings of requested / upgraded / deleted
//! (including requested, deleted and re-requested in quick succession). Every
//! tenant must end in the state its events ask for in stream order, every
//! inbound event must get exactly one completion event of the expected type,
//! and no tenant may ever have been held by two sagas at once (checked on the
//! lease intervals the workers log).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::support::Harness;
use crate::support::intents::{Step, assert_converged, await_completions, interleave, script};
use crate::support::process::WorkerOptions;
use jiff::Timestamp;
use kube_double::EmbeddedApiConfig;
use serde_json::Value;

const TENANTS: usize = 300;
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
    let (order, ids) = interleave(&mut rng, &scripts);
    for event in &order {
        h.publish(event).await;
    }
    let published = order.len();

    await_completions(&h, &scripts, &ids, Duration::from_secs(120)).await;
    h.wait_idle().await;
    assert_converged(&h, &scripts, published).await;

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
