//! Torture: clustered JetStream. A 3-node NATS cluster on loopback, every
//! stream and bucket R3, two worker processes each connected to all three
//! nodes (in different orders), and ~150 tenants receiving random
//! interleavings of requested / upgraded / deleted. After about a third of the
//! completions, the node leading `TENANT_LIFECYCLE` is SIGKILLed; events keep
//! coming while it is down; then it is restarted on its store.
//!
//! Pass: every tenant ends in the state of its last intent (record, route,
//! objects), exactly one completion event of the expected type per inbound
//! event id, nothing dead-lettered, no orphaned namespace or object, the
//! streams are still R3, and both worker processes ran throughout. (A second,
//! quick test: the topology a worker finds on the cluster is updated to its
//! settings, e.g. from R1 to R3.)
//!
//! `TORTURE_LONG=1`: 500 tenants, and two different nodes killed and
//! restarted in turn. `TORTURE_SEED=<n>` replays a run (the seed is printed).
//! Worker logs are `<tempdir>/w1.log` and `w2.log`; on failure their tails and
//! the nodes' are printed; `TORTURE_KEEP=1` keeps them all (the nodes' as
//! `<tempdir>/n1.log`, ..., each with its runs before and after a restart)
//! and prints where.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube_double::{EmbeddedApi, EmbeddedApiConfig};
use serde_json::Value;
use support::cluster::{expected_ready_objects, objects_by_tenant};
use support::intents::{Step, event_of, expected, script};
use support::process::{WorkerOptions, WorkerProcess};
use support::publish_until_stored;
use tenant_worker::contract::{
    CONSUMER_NAME, DEADLETTER_STREAM, LIFECYCLE_STREAM, ROUTES_BUCKET, STATE_BUCKET, STATUS_STREAM,
};
use tenant_worker_test_support::nats_server::NatsCluster;

const NODES: usize = 3;
/// How long a killed node stays down (at least; publishing goes on meanwhile).
const OUTAGE: Duration = Duration::from_secs(5);
/// How long the run may take to finish once everything is published.
const PATIENCE: Duration = Duration::from_secs(120);

/// One node outage of a run, in fractions of all the run's events.
struct Outage {
    /// Events published (from the start) before the kill.
    published_before: f64,
    /// The kill comes once this many completion events exist.
    kill_at_completions: f64,
    /// Events published (from the start) by the end of the outage.
    published_by_restart: f64,
}

/// What a run throws at the cluster.
struct Form {
    tenants: usize,
    outages: Vec<Outage>,
}

impl Form {
    fn from_env() -> Self {
        if std::env::var("TORTURE_LONG").is_ok_and(|v| v == "1") {
            Form {
                tenants: 500,
                outages: vec![
                    Outage {
                        published_before: 0.3,
                        kill_at_completions: 0.2,
                        published_by_restart: 0.5,
                    },
                    Outage {
                        published_before: 0.65,
                        kill_at_completions: 0.55,
                        published_by_restart: 0.85,
                    },
                ],
            }
        } else {
            Form {
                tenants: 150,
                outages: vec![Outage {
                    published_before: 0.5,
                    kill_at_completions: 1.0 / 3.0,
                    published_by_restart: 0.75,
                }],
            }
        }
    }
}

/// Prints the tails of the logs when the test panics.
struct DumpOnPanic(Vec<(String, PathBuf)>);

impl Drop for DumpOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (name, path) in &self.0 {
            let lines: Vec<String> = std::fs::File::open(path)
                .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect())
                .unwrap_or_default();
            eprintln!("----- last lines of {name} ({}) -----", path.display());
            for line in &lines[lines.len().saturating_sub(40)..] {
                let cut: String = line.chars().take(400).collect();
                eprintln!("{cut}");
            }
        }
    }
}

/// The streams `ensure_topology` creates, the buckets' included.
const TOPOLOGY_STREAMS: [&str; 5] = [
    LIFECYCLE_STREAM,
    STATUS_STREAM,
    DEADLETTER_STREAM,
    "KV_tenant_state",
    "KV_tenant_routes",
];

/// What the cluster says of `stream` now.
async fn stream_info(js: &jetstream::Context, stream: &str) -> jetstream::stream::Info {
    js.get_stream(stream)
        .await
        .expect("stream exists")
        .info()
        .await
        .expect("stream info")
        .clone()
}

/// The messages in `stream` (`None` while the cluster cannot say).
async fn message_count(js: &jetstream::Context, stream: &str) -> Option<u64> {
    let mut s = js.get_stream(stream).await.ok()?;
    s.info().await.ok().map(|i| i.state.messages)
}

/// Waits until `TENANT_STATUS` holds at least `n` completion events.
async fn wait_completions(js: &jetstream::Context, n: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let have = message_count(js, STATUS_STREAM).await.unwrap_or(0);
        if have >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {have} of {n} completions after {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node to kill: the leader of `TENANT_LIFECYCLE` unless it was killed
/// before (then the first node not killed yet), and the leader's name.
async fn victim(js: &jetstream::Context, nats: &NatsCluster, killed: &[usize]) -> (usize, String) {
    let deadline = Instant::now() + PATIENCE;
    let leader = loop {
        let leader = match js.get_stream(LIFECYCLE_STREAM).await {
            Ok(mut s) => s.info().await.ok().and_then(|i| i.cluster.clone()?.leader),
            Err(_) => None,
        };
        if let Some(leader) = leader {
            break leader;
        }
        assert!(Instant::now() < deadline, "TENANT_LIFECYCLE has no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let index = nats
        .index_of(&leader)
        .filter(|i| !killed.contains(i))
        .or_else(|| (0..nats.len()).find(|i| !killed.contains(i)))
        .expect("a node not killed yet");
    (index, leader)
}

/// Every message of `stream` as (subject, headers, payload), read with an
/// ordered consumer (retried while the cluster settles).
async fn read_all(
    js: &jetstream::Context,
    stream: &str,
) -> Vec<(String, Option<HeaderMap>, bytes::Bytes)> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let attempt = async {
            let mut s = js.get_stream(stream).await.ok()?;
            let count = s.info().await.ok()?.state.messages;
            if count == 0 {
                return Some(Vec::new());
            }
            let consumer = s
                .create_consumer(OrderedConfig {
                    deliver_policy: DeliverPolicy::All,
                    ..OrderedConfig::default()
                })
                .await
                .ok()?;
            let mut messages = consumer.messages().await.ok()?;
            let mut out = Vec::new();
            while (out.len() as u64) < count {
                let msg = tokio::time::timeout(Duration::from_secs(10), messages.next())
                    .await
                    .ok()??
                    .ok()?;
                out.push((
                    msg.subject.to_string(),
                    msg.headers.clone(),
                    msg.payload.clone(),
                ));
            }
            Some(out)
        };
        if let Some(all) = attempt.await {
            return all;
        }
        assert!(Instant::now() < deadline, "cannot read {stream}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The KV entry of `key` in `bucket`, parsed (retried while the cluster settles).
async fn kv_value(js: &jetstream::Context, bucket: &str, key: &str) -> Option<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let read = async {
            let kv = js.get_key_value(bucket).await.map_err(|e| e.to_string())?;
            kv.get(key).await.map_err(|e| e.to_string())
        };
        match read.await {
            Ok(v) => return v.map(|v| serde_json::from_slice(&v).expect("kv values are JSON")),
            Err(e) => {
                assert!(Instant::now() < deadline, "read {bucket}/{key}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_loses_a_node_mid_run_and_every_tenant_converges() {
    let form = Form::from_env();
    let seed = std::env::var("TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!(
        "TORTURE_SEED={seed} ({} tenants, {} outage(s))",
        form.tenants,
        form.outages.len()
    );
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut nats =
        tokio::task::block_in_place(|| NatsCluster::start(NODES)).unwrap_or_else(|e| panic!("{e}"));
    let api = EmbeddedApi::start(
        "127.0.0.1:0".parse().unwrap(),
        EmbeddedApiConfig {
            namespace_termination_delay: Duration::from_millis(200),
            ..EmbeddedApiConfig::default()
        },
    )
    .await
    .expect("embedded API starts");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig_yaml()).expect("kubeconfig written");
    // The test publishes as billing would: through a client of the cluster,
    // not of one node.
    let client = async_nats::ConnectOptions::new()
        .name("torture-cluster")
        .connect(nats.url_list())
        .await
        .expect("nats connects");
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(3))
        .build(client);

    let urls = nats.url_list();
    let reversed: Vec<String> = urls.iter().rev().cloned().collect();
    let mut workers: Vec<WorkerProcess> = [("w1", urls.join(",")), ("w2", reversed.join(","))]
        .iter()
        .map(|(name, url)| {
            WorkerProcess::spawn(
                url,
                &kubeconfig,
                dir.path(),
                WorkerOptions {
                    name,
                    failpoints: None,
                    args: &["--stream-replicas", "3"],
                },
            )
        })
        .collect();
    let mut logs: Vec<(String, PathBuf)> = workers
        .iter()
        .map(|w| (w.name.clone(), w.log.clone()))
        .collect();
    logs.extend((0..NODES).map(|i| {
        (
            nats.server_name(i).to_owned(),
            nats.log_path(i).to_path_buf(),
        )
    }));
    let _dump = DumpOnPanic(logs);

    // The workers create the R3 topology.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ready = async {
            let s = js.get_stream(LIFECYCLE_STREAM).await.ok()?;
            s.consumer_info(CONSUMER_NAME).await.ok()?;
            js.get_key_value(STATE_BUCKET).await.ok()?;
            js.get_key_value(ROUTES_BUCKET).await.ok()
        };
        if ready.await.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the workers did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("cluster and workers up after {:?}", started.elapsed());

    // Scripts, interleaved: repeatedly a random tenant with events left.
    let mut rng = fastrand::Rng::with_seed(seed);
    let scripts: BTreeMap<String, Vec<Step>> = (0..form.tenants)
        .map(|i| (format!("tc-{i:03}"), script(&mut rng)))
        .collect();
    let mut cursors: Vec<(&String, &Vec<Step>, usize)> =
        scripts.iter().map(|(t, s)| (t, s, 0)).collect();
    let mut events = Vec::new();
    let mut want: HashMap<String, (String, &'static str)> = HashMap::new();
    while !cursors.is_empty() {
        let i = rng.usize(..cursors.len());
        let (tenant, steps, next) = &mut cursors[i];
        let event = event_of(tenant, &steps[*next]);
        let types = expected(steps).1;
        want.insert(event.id.to_string(), ((*tenant).clone(), types[*next]));
        events.push(event);
        *next += 1;
        if *next == steps.len() {
            cursors.swap_remove(i);
        }
    }
    let total = events.len();
    let at = |fraction: f64| ((total as f64 * fraction) as usize).min(total);

    let mut published = 0;
    let mut failed_publishes = 0;
    let mut killed = Vec::new();
    for outage in &form.outages {
        for e in &events[published..at(outage.published_before)] {
            failed_publishes += publish_until_stored(&js, e, Duration::from_secs(60)).await;
        }
        published = at(outage.published_before);
        wait_completions(&js, at(outage.kill_at_completions) as u64).await;
        let (node, leader) = victim(&js, &nats, &killed).await;
        let done = message_count(&js, STATUS_STREAM).await.unwrap_or(0);
        nats.kill(node);
        let down = Instant::now();
        eprintln!(
            "{:?}: killed {} (TENANT_LIFECYCLE leader: {leader}) at {done}/{total} completions",
            started.elapsed(),
            nats.server_name(node)
        );
        for e in &events[published..at(outage.published_by_restart)] {
            failed_publishes += publish_until_stored(&js, e, Duration::from_secs(60)).await;
        }
        published = at(outage.published_by_restart);
        tokio::time::sleep(OUTAGE.saturating_sub(down.elapsed())).await;
        let outage_took = down.elapsed();
        tokio::task::block_in_place(|| nats.restart(node)).unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "{:?}: {} back and current after {outage_took:?} down, {:?} catching up",
            started.elapsed(),
            nats.server_name(node),
            down.elapsed() - outage_took
        );
        killed.push(node);
    }
    for e in &events[published..] {
        failed_publishes += publish_until_stored(&js, e, Duration::from_secs(60)).await;
    }
    eprintln!(
        "{:?}: all {total} events published ({failed_publishes} attempts failed and were retried)",
        started.elapsed()
    );

    // Done: a completion for every event, and nothing left on the consumer.
    wait_completions(&js, total as u64).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let info = async {
            let s = js.get_stream(LIFECYCLE_STREAM).await.ok()?;
            s.consumer_info(CONSUMER_NAME).await.ok()
        };
        let idle = info
            .await
            .is_some_and(|i| i.num_pending == 0 && i.num_ack_pending == 0);
        if idle {
            break;
        }
        assert!(Instant::now() < deadline, "the consumer never became idle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{:?}: every event handled", started.elapsed());

    // Still R3, each with a leader and two peers.
    for stream in TOPOLOGY_STREAMS {
        let info = stream_info(&js, stream).await;
        let cluster = info.cluster.clone().expect("clustered");
        assert_eq!(info.config.num_replicas, 3, "{stream}: {info:?}");
        assert!(
            cluster.leader.is_some() && cluster.replicas.len() == NODES - 1,
            "{stream}: {cluster:?}"
        );
    }

    // Nothing gave up.
    let deadletters = read_all(&js, DEADLETTER_STREAM).await;
    assert!(
        deadletters.is_empty(),
        "dead letters: {:#?}",
        deadletters
            .iter()
            .map(|(subject, headers, _)| format!("{subject}: {headers:?}"))
            .collect::<Vec<_>>()
    );

    // Every tenant as its last intent asks.
    let kube = api.client();
    let live: BTreeMap<&String, &'static str> = scripts
        .iter()
        .filter_map(|(t, steps)| expected(steps).0.map(|plan| (t, plan)))
        .collect();
    // Deleted namespaces may still be terminating for a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    let objects = loop {
        let objects = objects_by_tenant(&kube).await;
        let leftovers: Vec<&String> = objects.keys().filter(|t| !live.contains_key(t)).collect();
        if leftovers.is_empty() {
            break objects;
        }
        assert!(
            Instant::now() < deadline,
            "objects of tenants that are not live: {leftovers:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (tenant, steps) in &scripts {
        let record = kv_value(&js, STATE_BUCKET, tenant)
            .await
            .unwrap_or_else(|| panic!("{tenant} {steps:?} has no record"));
        let route = kv_value(&js, ROUTES_BUCKET, tenant).await;
        assert!(
            record["saga"].is_null() && record["lease"].is_null(),
            "{tenant}: {record:#}"
        );
        match live.get(tenant) {
            Some(plan) => {
                assert_eq!(
                    objects.get(tenant).cloned().unwrap_or_default(),
                    expected_ready_objects(&kube, tenant).await,
                    "{tenant} {steps:?}"
                );
                assert_eq!(record["status"], "ready", "{tenant} {steps:?}");
                assert_eq!(record["plan"], *plan, "{tenant} {steps:?}");
                let route = route.unwrap_or_else(|| panic!("{tenant} {steps:?} has no route"));
                assert_eq!(route["plan"], *plan, "{tenant} {steps:?}");
            }
            None => {
                assert!(route.is_none(), "{tenant} {steps:?} has a route");
                assert!(
                    ["deleted", "absent"].contains(&record["status"].as_str().unwrap()),
                    "{tenant} {steps:?}: {record:#}"
                );
            }
        }
    }
    // No namespace of a tenant that is not live (labelled or not).
    let namespaces: BTreeSet<String> = Api::<Namespace>::all(kube.clone())
        .list(&ListParams::default())
        .await
        .expect("list namespaces")
        .items
        .iter()
        .map(|n| n.name_any())
        .filter(|n| n.starts_with("tenant-"))
        .collect();
    let expected_namespaces: BTreeSet<String> =
        live.keys().map(|t| format!("tenant-{t}")).collect();
    assert_eq!(
        namespaces, expected_namespaces,
        "orphaned or missing namespaces"
    );

    // Exactly one completion per inbound event, of the type stream order implies.
    let completions = read_all(&js, STATUS_STREAM).await;
    let mut by_cause: HashMap<String, Vec<Value>> = HashMap::new();
    for (_, _, payload) in &completions {
        let event: Value = serde_json::from_slice(payload).expect("completion events are JSON");
        let cause = event["data"]["causation_id"]
            .as_str()
            .expect("causation_id")
            .to_owned();
        by_cause.entry(cause).or_default().push(event);
    }
    for (id, (tenant, want_type)) in &want {
        let got = by_cause.remove(id).unwrap_or_default();
        assert_eq!(got.len(), 1, "{tenant} event {id}: completions {got:#?}");
        assert_eq!(
            got[0]["type"], *want_type,
            "{tenant} event {id} ({:?}): {:#}",
            scripts[tenant], got[0]
        );
    }
    assert!(
        by_cause.is_empty(),
        "completions of no published event: {by_cause:#?}"
    );
    assert_eq!(completions.len(), total, "one completion per inbound event");

    // Both workers ran throughout, and both worked.
    for w in &mut workers {
        assert!(w.is_running(), "{} exited", w.name);
        let log = w.log_text();
        assert!(!log.contains("panicked"), "{} panicked", w.name);
        eprintln!(
            "{}: {} sagas started, {} deliveries deferred, {} not finished (retried)",
            w.name,
            log.matches("lease taken").count(),
            log.matches("not now; redelivering later").count(),
            log.matches("event not finished").count(),
        );
    }
    eprintln!(
        "{:?}: {total} events over {} tenants, all converged",
        started.elapsed(),
        form.tenants
    );
    if std::env::var("TORTURE_KEEP").is_ok_and(|v| v == "1") {
        for i in 0..NODES {
            let name = format!("{}.log", nats.server_name(i));
            let _ = std::fs::copy(nats.log_path(i), dir.path().join(name));
        }
        eprintln!("logs kept in {}", dir.keep().display());
    }
}

/// The topology a worker finds is brought to its settings: the same settings
/// again change nothing (an identical create is answered as it is), other
/// ones (R1 to R3, another ack wait) update the streams, buckets and consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_topology_is_updated_to_the_workers_settings() {
    let nats =
        tokio::task::block_in_place(|| NatsCluster::start(NODES)).unwrap_or_else(|e| panic!("{e}"));
    let client = async_nats::connect(nats.url_list())
        .await
        .expect("nats connects");
    let js = jetstream::new(client);
    let mut settings = tenant_worker::bus::TopologySettings::default();
    for (replicas, ack_wait) in [(1, 30), (1, 30), (3, 7)] {
        settings.replicas = replicas;
        settings.ack_wait = Duration::from_secs(ack_wait);
        let (_, mut consumer) = tenant_worker::bus::ensure_topology(&js, &settings)
            .await
            .unwrap_or_else(|e| panic!("R{replicas}: {e}"));
        for stream in TOPOLOGY_STREAMS {
            let info = stream_info(&js, stream).await;
            assert_eq!(info.config.num_replicas, replicas, "{stream}: {info:?}");
        }
        let info = consumer.info().await.expect("consumer info");
        assert_eq!(info.config.ack_wait, settings.ack_wait);
    }
}
