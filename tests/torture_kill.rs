//! Torture: worker processes SIGKILLed at random while 500 tenants receive
//! mixed intents (requested, upgraded, deleted, in the shapes of
//! `support::intents`) and the Kubernetes API fails a share of requests
//! (500 and 429). A killed replica is started again under the same name, as a
//! Deployment would; its leases expire and its messages are redelivered.
//!
//! Pass: every tenant ends in the state of its last intent (records, routes,
//! objects), exactly one completion event per inbound event id and of the type
//! stream order implies, no orphaned namespaces, nothing dead-lettered, and no
//! worker ever exited except by our SIGKILL (no panic in any log).
//!
//! Short form (CI): 500 tenants, at least 20 kills. `TORTURE_LONG=1`: 2,000
//! tenants, at least 100 kills. `TORTURE_SEED=<n>` replays the inputs (the
//! seed is printed; process timing still varies).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use support::cluster::{expected_ready_objects, tenant_objects};
use support::intents::{Step, event_of, expected, script};
use support::process::{WorkerOptions, WorkerProcess};
use support::*;
use tenant_worker::contract::DEADLETTER_STREAM;
use tenant_worker::embedded_api::{EmbeddedApiConfig, RandomFaultKind, RandomFaults};

struct Form {
    tenants: usize,
    kills: usize,
}

fn form() -> Form {
    if std::env::var("TORTURE_LONG").is_ok_and(|v| v == "1") {
        Form {
            tenants: 2000,
            kills: 100,
        }
    } else {
        Form {
            tenants: 500,
            kills: 20,
        }
    }
}

const REPLICAS: [&str; 3] = ["k1", "k2", "k3"];

fn spawn(h: &Harness, name: &str) -> WorkerProcess {
    // Short lease and ack wait (the test default of 3 s) so that a killed
    // replica's tenants move on quickly.
    h.spawn_worker(WorkerOptions {
        name,
        failpoints: None,
        args: &[],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_and_a_faulty_api_still_converge_on_every_last_intent() {
    let form = form();
    let h = Harness::start_bare(EmbeddedApiConfig {
        namespace_termination_delay: Duration::from_millis(200),
        ..EmbeddedApiConfig::default()
    })
    .await;
    let seed = std::env::var("TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!(
        "TORTURE_SEED={seed} ({} tenants, at least {} kills)",
        form.tenants, form.kills
    );
    let mut rng = fastrand::Rng::with_seed(seed);
    h.api
        .faults()
        .set_random(RandomFaults::new(0.02).seed(seed).kinds(&[
            RandomFaultKind::ServerError,
            RandomFaultKind::TooManyRequests,
        ]));
    let mut workers: Vec<WorkerProcess> = REPLICAS.iter().map(|n| spawn(&h, n)).collect();
    h.wait_topology().await;

    let scripts: BTreeMap<String, Vec<Step>> = (0..form.tenants)
        .map(|i| (format!("kill-{i:04}"), script(&mut rng)))
        .collect();
    // Interleave the tenants' events at random, keeping each tenant's order.
    let mut order = Vec::new();
    let mut cursors: Vec<(&String, &Vec<Step>, usize)> =
        scripts.iter().map(|(t, s)| (t, s, 0)).collect();
    while !cursors.is_empty() {
        let i = rng.usize(..cursors.len());
        let (tenant, steps, next) = &mut cursors[i];
        order.push(((*tenant).clone(), event_of(tenant, &steps[*next])));
        *next += 1;
        if *next == steps.len() {
            cursors.swap_remove(i);
        }
    }
    let published = order.len();
    let mut ids: HashMap<String, Vec<uuid::Uuid>> = HashMap::new();
    for (tenant, event) in &order {
        ids.entry(tenant.clone()).or_default().push(event.id);
    }

    // Publish in as many chunks as there are kills, one chunk per round, so
    // that every kill lands while sagas run.
    let chunk = published.div_ceil(form.kills);
    let mut chunks = order.chunks(chunk);
    let mut kills = 0;
    while kills < form.kills {
        if let Some(events) = chunks.next() {
            for (_, event) in events {
                h.publish(event).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(300..1200))).await;
        let victim = rng.usize(..workers.len());
        assert!(
            workers[victim].is_running(),
            "{} exited on its own:\n{}",
            workers[victim].name,
            tail(&workers[victim].log_text())
        );
        workers[victim].kill();
        kills += 1;
        let name = REPLICAS[victim];
        workers[victim] = spawn(&h, name);
    }
    for (_, event) in chunks.flatten() {
        h.publish(event).await;
    }
    eprintln!("{published} events published, {kills} workers killed");

    // Every event gets its completion, of the type stream order implies.
    for (tenant, steps) in &scripts {
        let (_, types) = expected(steps);
        for (id, want) in ids[tenant].iter().zip(types) {
            let got = h
                .completion_within(tenant, *id, Duration::from_secs(180))
                .await;
            assert_eq!(got["type"], want, "{tenant} {steps:?}: {got:#}");
        }
    }
    h.wait_idle().await;
    h.api.faults().clear_random();
    let completions = h.completion_events().await;
    assert_eq!(
        completions.len(),
        published,
        "exactly one completion per inbound event"
    );
    let mut causes: Vec<_> = completions
        .iter()
        .map(|c| c["data"]["causation_id"].as_str().unwrap().to_owned())
        .collect();
    causes.sort();
    causes.dedup();
    assert_eq!(causes.len(), published, "no event completed twice");
    assert!(
        h.stream_messages(DEADLETTER_STREAM).await.is_empty(),
        "nothing dead-lettered"
    );

    let kube = h.kube();
    for (tenant, steps) in &scripts {
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

    for w in &mut workers {
        assert!(
            w.is_running(),
            "{} exited:\n{}",
            w.name,
            tail(&w.log_text())
        );
        assert!(
            !w.log_text().contains("panicked"),
            "{} panicked:\n{}",
            w.name,
            tail(&w.log_text())
        );
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
