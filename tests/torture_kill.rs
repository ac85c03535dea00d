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

use std::collections::BTreeMap;
use std::time::Duration;

use kube_double::{EmbeddedApiConfig, RandomFaultKind, RandomFaults};
use support::Harness;
use support::intents::{Step, assert_converged, await_completions, interleave, script};
use support::process::{WorkerOptions, WorkerProcess};
use tenant_worker::contract::DEADLETTER_STREAM;

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
    let (order, ids) = interleave(&mut rng, &scripts);
    let published = order.len();

    // Publish in as many chunks as there are kills, one chunk per round, so
    // that every kill lands while sagas run.
    let chunk = published.div_ceil(form.kills);
    let mut chunks = order.chunks(chunk);
    let mut kills = 0;
    while kills < form.kills {
        if let Some(events) = chunks.next() {
            for event in events {
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
    for event in chunks.flatten() {
        h.publish(event).await;
    }
    eprintln!("{published} events published, {kills} workers killed");

    await_completions(&h, &scripts, &ids, Duration::from_secs(180)).await;
    h.wait_idle().await;
    h.api.faults().clear_random();
    assert_converged(&h, &scripts, published).await;
    assert!(
        h.stream_messages(DEADLETTER_STREAM).await.is_empty(),
        "nothing dead-lettered"
    );

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
