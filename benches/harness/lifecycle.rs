//! `lifecycle`: the worker's throughput for 1, 2 and 3 replicas beside the
//! limits of what it is built on (a bare async-nats consumer that only acks
//! the same events; a bare `kube` client that server-side-applies the same
//! objects with the same concurrency), then the latency from publish to
//! completion event at fractions of the measured maximum rate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Map, Value};
use tenant_worker::contract::{CONSUMER_NAME, LIFECYCLE_STREAM, TENANT_LABEL, TenantId};
use tenant_worker_test_support::kinds::older_versions;
use tokio::sync::Semaphore;

use crate::common::{
    BenchEnv, BenchResult, Completions, Inbound, PUBLISH_WINDOW, Report, check_types, cpu_of,
    deleted, publish_all, publish_one, quantile, rate, requested, tenant_id, thousands,
    workers_cpu,
};

#[derive(Args, Clone)]
pub(crate) struct LifecycleBench {
    /// Tenants per throughput run: each is requested, then deleted.
    #[arg(long, default_value_t = 1000)]
    pub tenants: usize,
    /// Worker replica counts to measure (one process each, sharing the consumer).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub replicas: Vec<usize>,
    /// Sagas a replica runs at once (the worker's default `--concurrency`);
    /// the bare clients use the same.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Loads of the latency runs, in percent of the best measured provisioning rate.
    #[arg(long, value_delimiter = ',', default_value = "25,50,90")]
    pub loads: Vec<u32>,
    /// Seconds of publishing per latency run.
    #[arg(long, default_value_t = 20)]
    pub latency_secs: u64,
    /// Target: one replica's provisioning rate as a fraction of the bare kube limit.
    #[arg(long, default_value_t = 0.40)]
    pub min_ratio: f64,
    /// Target: p99 latency at 50% load, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub max_p99_ms: u64,
    /// Measure on a real API server instead of the embedded one: a fresh
    /// control plane of the test suite (etcd, kube-apiserver and
    /// kube-controller-manager v1.20.2 with the node stand-in; built by
    /// scripts/install-control-plane.sh) for each run. No latency runs.
    #[arg(long, conflicts_with = "kubeconfig")]
    pub real_cluster: bool,
    /// Measure on the cluster of this kubeconfig (administrator's rights:
    /// the worker's RBAC is applied and the workers run with its
    /// ServiceAccount's token). Every run shares the cluster; tenants get
    /// names of their own. No latency runs.
    #[arg(long)]
    pub kubeconfig: Option<std::path::PathBuf>,
}

/// The command that runs the benchmark with `args`' tenants and replicas.
pub(crate) fn command_line(args: &LifecycleBench) -> String {
    format!(
        "cargo bench --bench harness -- lifecycle --tenants {} --replicas {}",
        args.tenants,
        crate::common::comma_list(&args.replicas)
    )
}

/// How long a run may take before it is declared stuck.
pub(crate) fn patience(events: usize) -> Duration {
    Duration::from_secs(60) + Duration::from_millis(200) * u32::try_from(events).unwrap_or(u32::MAX)
}

pub(crate) fn lifecycle_bench(args: &LifecycleBench) -> BenchResult<Report> {
    if args.tenants == 0 || args.concurrency == 0 || args.replicas.contains(&0) {
        return Err("--tenants, --concurrency and every --replicas must be at least 1".into());
    }
    if args.real_cluster || args.kubeconfig.is_some() {
        return crate::lifecycle_real::lifecycle_real(args);
    }
    let n = args.tenants;
    let mut rows = Vec::new();
    let mut notes = Vec::new();

    eprintln!("harness: bare async-nats consumer, {n} events");
    let nats_limit = bare_nats(n, args.concurrency)?;

    let mut runs = Vec::new();
    let mut objects = None;
    for &replicas in &args.replicas {
        eprintln!("harness: worker x{replicas}, {n} tenants");
        let run = worker_run(n, replicas, args.concurrency, objects.is_none())?;
        eprintln!(
            "harness: worker x{replicas}: {:.1} provisioned/s, {:.1} deprovisioned/s",
            run.provision_rate, run.deprovision_rate
        );
        if objects.is_none() {
            objects = run.objects.clone();
        }
        runs.push((replicas, run));
    }
    let objects = objects.expect("the first run captures the objects");
    let per_tenant = objects.values().map(Vec::len).sum::<usize>() as f64 / objects.len() as f64;
    eprintln!("harness: bare kube client, {n} tenants ({per_tenant:.1} objects each)");
    let kube_limit = bare_kube(&objects, args.concurrency)?;

    rows.push(vec![
        "bare async-nats consumer (ack only)".to_owned(),
        format!("{:.0} events/s", nats_limit),
        format!("{:.0} events/s", nats_limit),
        "".to_owned(),
        "".to_owned(),
        "".to_owned(),
        "".to_owned(),
    ]);
    rows.push(vec![
        format!(
            "bare kube client (apply the same {per_tenant:.1} objects per tenant; delete them)"
        ),
        format!("{:.1} tenants/s", kube_limit.apply),
        format!("{:.1} tenants/s", kube_limit.delete),
        "1.00 / 1.00".to_owned(),
        format!("{:.1}", kube_limit.requests_per_tenant),
        format!(
            "{} (client and API)",
            crate::common::ms_f(kube_limit.cpu_per_tenant)
        ),
        "".to_owned(),
    ]);
    let mut passed = true;
    for (replicas, run) in &runs {
        let ratio = run.provision_rate / kube_limit.apply;
        if *replicas == 1 {
            passed &= ratio >= args.min_ratio;
        }
        rows.push(vec![
            format!("tenant-worker ×{replicas}"),
            format!("{:.1} tenants/s", run.provision_rate),
            format!("{:.1} tenants/s", run.deprovision_rate),
            format!(
                "{ratio:.2} / {:.2}",
                run.deprovision_rate / kube_limit.delete
            ),
            format!("{:.1}", run.requests_per_tenant),
            format!(
                "{} + {}",
                crate::common::ms_f(run.worker_cpu_per_tenant),
                crate::common::ms_f(run.api_cpu_per_tenant)
            ),
            format!("{:.1} MiB", run.peak_rss_kib as f64 / 1024.0),
        ]);
    }

    // Latency against the best configuration's maximum.
    let (best_replicas, best) = runs
        .iter()
        .max_by(|a, b| a.1.provision_rate.total_cmp(&b.1.provision_rate))
        .expect("at least one replica count");
    let max_rate = best.provision_rate;
    let latency = latency_runs(args, *best_replicas, max_rate)?;
    let mut latency_rows = Vec::new();
    for l in &latency {
        if l.load == 50 {
            passed &= l.p99 <= Duration::from_millis(args.max_p99_ms);
        }
        latency_rows.push(vec![
            format!("{}%", l.load),
            format!("{:.1}/s", l.rate),
            thousands(l.events),
            crate::common::ms(l.p50),
            crate::common::ms(l.p95),
            crate::common::ms(l.p99),
            crate::common::ms(l.max),
        ]);
    }

    notes.push(format!(
        "Throughput: {n} `tenant.requested` published at once (pipelined) to replicas that are \
         ready (`/readyz`), timed from the first publish to the last completion event \
         (`tenant.provisioned`, checked), then the same for {n} `tenant.deleted` \
         (`tenant.deprovisioned`). Each replica runs {} sagas at once; the bare clients \
         use the same concurrency. The embedded API answers at once (0 latency, objects ready \
         in the response that creates them) and runs in the harness process.",
        args.concurrency
    ));
    notes.push(
        "API requests and CPU are counted over the provisioning run: requests as the \
         embedded API counted them; CPU (user + system, from /proc) of the worker processes, \
         and of the harness process, which serves the embedded API (and publishes and \
         subscribes). For the bare client, the harness process is client and API."
            .to_owned(),
    );
    notes.push(format!(
        "Ratio = worker ÷ bare kube client (provision / deprovision). Target: one replica \
         ≥ {:.0}% of the bare kube client's rate.",
        args.min_ratio * 100.0
    ));
    notes.push(format!(
        "Latency: tenant.requested published open-loop at the given fraction of {max_rate:.1}/s \
         (the best rate above, {best_replicas} replica(s)) for {} s each, from publish to the \
         completion event's arrival at a subscriber. Target: p99 ≤ {} ms at 50%.",
        args.latency_secs, args.max_p99_ms
    ));
    let mut table = String::from(
        "\n| load | rate | events | p50 | p95 | p99 | max |\n|---|---|---|---|---|---|---|\n",
    );
    for row in &latency_rows {
        table.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    notes.push(format!("Publish → completion latency:\n{table}"));
    let headers = [
        "",
        "requested → provisioned",
        "deleted → deprovisioned",
        "ratio to kube limit",
        "API requests per provisioned tenant",
        "CPU per provisioned tenant (worker + API)",
        "peak RSS per replica",
    ];
    Ok(Report {
        rows,
        notes,
        passed,
        ..Report::new(
            "Worker lifecycle throughput and latency",
            command_line(args),
            &headers,
        )?
    })
}

/// A bare consumer of the worker's own durable consumer (same stream and
/// consumer configuration) that only acks (double ack, as the worker does),
/// `concurrency` at a time; events/s from the first publish to the last ack.
fn bare_nats(n: usize, concurrency: usize) -> BenchResult<f64> {
    let env = BenchEnv::start()?;
    env.rt.block_on(async {
        let consumer: async_nats::jetstream::consumer::PullConsumer = env
            .js
            .get_stream(LIFECYCLE_STREAM)
            .await?
            .get_consumer(CONSUMER_NAME)
            .await?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(concurrency)
            .messages()
            .await?;
        let events: Vec<Inbound> = (0..n)
            .map(|i| requested(&tenant_id("nats", i), i))
            .collect();
        let started = Instant::now();
        let publishing = {
            let js = env.js.clone();
            tokio::spawn(async move { publish_all(&js, &events).await.map(|_| ()) })
        };
        let slots = Arc::new(Semaphore::new(concurrency));
        let mut acks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let msg = messages.next().await.ok_or("consumer ended")??;
            let permit = slots.clone().acquire_owned().await?;
            acks.spawn(async move {
                let r = msg.double_ack().await;
                drop(permit);
                r
            });
        }
        while let Some(r) = acks.join_next().await {
            r?.map_err(|e| e.to_string())?;
        }
        let took = started.elapsed();
        publishing.await?.map_err(|e| e.to_string())?;
        Ok(rate(n, took))
    })
}

/// One worker run's figures.
struct WorkerRun {
    provision_rate: f64,
    /// Kubernetes API requests per provisioned tenant.
    requests_per_tenant: f64,
    /// CPU per provisioned tenant: the replicas', and the harness process's
    /// (the embedded API, and the publisher and subscriber).
    worker_cpu_per_tenant: Duration,
    api_cpu_per_tenant: Duration,
    deprovision_rate: f64,
    /// The highest peak RSS among the replicas, KiB.
    peak_rss_kib: u64,
    /// Each tenant's objects as the worker left them, when captured.
    objects: Option<BTreeMap<String, Vec<Applied>>>,
}

/// `replicas` worker processes provision `n` tenants, then delete them.
fn worker_run(
    n: usize,
    replicas: usize,
    concurrency: usize,
    capture: bool,
) -> BenchResult<WorkerRun> {
    let env = BenchEnv::start()?;
    let cluster = env.start_api("api")?;
    let mut workers = env.start_workers(&cluster.kubeconfig, "bench", replicas, concurrency)?;
    let tenants: Vec<_> = (0..n).map(|i| tenant_id("life", i)).collect();
    let faults = cluster.api.faults().clone();
    faults.reset_request_counts();
    let (worker_cpu0, api_cpu0) = (workers_cpu(&workers), cpu_of("self"));
    let (provision_rate, (requests, worker_cpu, api_cpu), deprovision_rate, objects) =
        env.rt.block_on(async {
            let completions = Completions::subscribe(&env.nats.url()).await?;
            let provision = provision_all(&env, &completions, &tenants).await?;
            let worker_cpu = workers_cpu(&workers) - worker_cpu0;
            let api_cpu = cpu_of("self") - api_cpu0;
            let counts = faults.request_counts();
            eprintln!("harness: API requests while provisioning: {counts:?}");
            let requests: u64 = counts.values().sum();
            let objects = if capture {
                Some(capture_objects(&cluster.api.client()).await?)
            } else {
                None
            };
            let deprovision = deprovision_all(&env, &completions, &tenants).await?;
            BenchResult::Ok((
                provision,
                (requests, worker_cpu, api_cpu),
                deprovision,
                objects,
            ))
        })?;
    let mut peak_rss_kib = 0;
    for w in &mut workers {
        w.check_alive()?;
        peak_rss_kib = peak_rss_kib.max(w.peak_rss_kib().unwrap_or(0));
    }
    for w in workers {
        w.stop()?;
    }
    if let Some(objects) = &objects
        && objects.len() != n
    {
        return Err(format!(
            "captured the objects of {} tenants, expected {n}",
            objects.len()
        )
        .into());
    }
    Ok(WorkerRun {
        provision_rate,
        requests_per_tenant: requests as f64 / n as f64,
        worker_cpu_per_tenant: worker_cpu / u32::try_from(n)?,
        api_cpu_per_tenant: api_cpu / u32::try_from(n)?,
        deprovision_rate,
        peak_rss_kib,
        objects,
    })
}

/// Publishes `events` and waits for their completions (all of type
/// `expected`); events/s from the first publish to the last completion.
pub(crate) async fn timed_batch(
    env: &BenchEnv,
    completions: &Completions,
    events: Vec<Inbound>,
    expected: &str,
) -> BenchResult<f64> {
    let ids: Vec<_> = events.iter().map(|e| e.id).collect();
    let sent = publish_all(&env.js, &events).await?;
    let done = completions.wait_for(&ids, patience(ids.len())).await?;
    check_types(&done, expected)?;
    let last = done.iter().map(|(at, _)| *at).max().expect("at least one");
    Ok(rate(ids.len(), last - sent[0]))
}

/// Requests `tenants` (plans in turn) and waits until each is provisioned; tenants/s.
pub(crate) async fn provision_all(
    env: &BenchEnv,
    completions: &Completions,
    tenants: &[TenantId],
) -> BenchResult<f64> {
    let events = tenants
        .iter()
        .enumerate()
        .map(|(i, t)| requested(t, i))
        .collect();
    timed_batch(env, completions, events, "tenant.provisioned").await
}

/// Deletes `tenants` and waits until each is deprovisioned; tenants/s.
pub(crate) async fn deprovision_all(
    env: &BenchEnv,
    completions: &Completions,
    tenants: &[TenantId],
) -> BenchResult<f64> {
    let events = tenants.iter().map(deleted).collect();
    timed_batch(env, completions, events, "tenant.deprovisioned").await
}

/// Each tenant's objects, by tenant id.
pub(crate) type TenantObjects = BTreeMap<String, Vec<Applied>>;

/// One object to apply: its API resource and its body.
#[derive(Clone)]
pub(crate) struct Applied {
    pub resource: ApiResource,
    pub namespaced: bool,
    pub name: String,
    pub body: Value,
}

/// Every object labelled with a tenant, by tenant, in the order the worker
/// applies them (namespace, isolation, release), stripped to what a client
/// sends (no status, no server-set metadata). Kinds in versions the cluster
/// does not serve are skipped; the older versions that a Kubernetes 1.20
/// serves instead are listed too.
pub(crate) async fn capture_objects(
    kube: &kube::Client,
) -> BenchResult<BTreeMap<String, Vec<Applied>>> {
    let mut out: BTreeMap<String, Vec<Applied>> = BTreeMap::new();
    let kinds: Vec<(ApiResource, bool)> = vec![
        (ApiResource::erase::<Namespace>(&()), false),
        (ApiResource::erase::<ResourceQuota>(&()), true),
        (ApiResource::erase::<LimitRange>(&()), true),
        (ApiResource::erase::<NetworkPolicy>(&()), true),
        (ApiResource::erase::<ServiceAccount>(&()), true),
        (ApiResource::erase::<Role>(&()), true),
        (ApiResource::erase::<RoleBinding>(&()), true),
        (ApiResource::erase::<ConfigMap>(&()), true),
        (ApiResource::erase::<Secret>(&()), true),
        (ApiResource::erase::<Service>(&()), true),
        (ApiResource::erase::<Deployment>(&()), true),
        (ApiResource::erase::<StatefulSet>(&()), true),
        (ApiResource::erase::<Job>(&()), true),
        (ApiResource::erase::<Ingress>(&()), true),
        (ApiResource::erase::<HorizontalPodAutoscaler>(&()), true),
        (ApiResource::erase::<PodDisruptionBudget>(&()), true),
    ];
    let kinds = kinds
        .into_iter()
        .chain(older_versions().into_iter().map(|r| (r, true)));
    for (resource, namespaced) in kinds {
        let list = match Api::<DynamicObject>::all_with(kube.clone(), &resource)
            .list(&ListParams::default().labels(TENANT_LABEL))
            .await
        {
            Ok(list) => list,
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(e) => return Err(e.into()),
        };
        for object in list.items {
            let tenant = object
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(TENANT_LABEL))
                .cloned()
                .ok_or("a listed object without its tenant label")?;
            let name = object
                .metadata
                .name
                .clone()
                .ok_or("an object without a name")?;
            let objects = out.entry(tenant).or_default();
            // A cluster serving two versions of a kind lists its objects twice.
            if !objects
                .iter()
                .any(|o| o.resource.kind == resource.kind && o.name == name)
            {
                objects.push(Applied {
                    resource: resource.clone(),
                    namespaced,
                    name,
                    body: client_side(&resource, &serde_json::to_value(&object)?),
                });
            }
        }
    }
    Ok(out)
}

/// What a client sends for `object` (a list item, so without its type): its
/// type, no status, and only name, namespace, labels and annotations in the
/// metadata.
fn client_side(resource: &ApiResource, object: &Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".to_owned(), resource.api_version.clone().into());
    out.insert("kind".to_owned(), resource.kind.clone().into());
    for (k, v) in object.as_object().into_iter().flatten() {
        match k.as_str() {
            "status" | "apiVersion" | "kind" => {}
            "metadata" => {
                let mut meta = Map::new();
                for key in ["name", "namespace", "labels", "annotations"] {
                    if let Some(v) = v.get(key) {
                        meta.insert(key.to_owned(), v.clone());
                    }
                }
                out.insert(k.clone(), Value::Object(meta));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Tenants/s of a bare client.
struct KubeLimit {
    apply: f64,
    /// CPU of the harness process (client and embedded API) per tenant applied.
    cpu_per_tenant: Duration,
    requests_per_tenant: f64,
    delete: f64,
}

/// A bare `kube` client against a fresh embedded API: per tenant, applies its
/// objects in order (server-side apply), `concurrency` tenants at a time;
/// then deletes them (the namespace last), the same way.
fn bare_kube(
    objects: &BTreeMap<String, Vec<Applied>>,
    concurrency: usize,
) -> BenchResult<KubeLimit> {
    let env = BenchEnv::start()?;
    let cluster = env.start_api("bare")?;
    env.rt.block_on(async {
        let url = cluster.api.url().parse()?;
        let kube = kube::Client::try_from(kube::Config::new(url))?;
        let cpu0 = cpu_of("self");
        let applied = apply_objects(&kube, objects, concurrency).await?;
        let cpu = (cpu_of("self") - cpu0) / u32::try_from(objects.len())?;
        let requests: u64 = cluster.api.faults().request_counts().values().sum();
        Ok(KubeLimit {
            apply: applied,
            cpu_per_tenant: cpu,
            requests_per_tenant: requests as f64 / objects.len() as f64,
            delete: delete_objects(&kube, objects, concurrency).await?,
        })
    })
}

fn api_of(kube: &kube::Client, o: &Applied) -> Api<DynamicObject> {
    let ns = o.body["metadata"]["namespace"].as_str().unwrap_or_default();
    if o.namespaced {
        Api::<DynamicObject>::namespaced_with(kube.clone(), ns, &o.resource)
    } else {
        Api::<DynamicObject>::all_with(kube.clone(), &o.resource)
    }
}

/// Per tenant, applies its objects in order (server-side apply, field
/// manager `bench`), `concurrency` tenants at a time; tenants/s.
pub(crate) async fn apply_objects(
    kube: &kube::Client,
    objects: &BTreeMap<String, Vec<Applied>>,
    concurrency: usize,
) -> BenchResult<f64> {
    let apply = &PatchParams::apply("bench").force();
    for_each_tenant(objects, concurrency, |list| async move {
        for o in list {
            api_of(kube, o)
                .patch(&o.name, apply, &Patch::Apply(&o.body))
                .await?;
        }
        Ok(())
    })
    .await
}

/// Per tenant, deletes its objects in reverse order (the namespace last),
/// `concurrency` tenants at a time; tenants/s.
pub(crate) async fn delete_objects(
    kube: &kube::Client,
    objects: &BTreeMap<String, Vec<Applied>>,
    concurrency: usize,
) -> BenchResult<f64> {
    for_each_tenant(objects, concurrency, |list| async move {
        for o in list.iter().rev() {
            api_of(kube, o)
                .delete(&o.name, &DeleteParams::default())
                .await?;
        }
        Ok(())
    })
    .await
}

/// Runs `each` on every tenant's objects, `concurrency` tenants at a time; tenants/s.
async fn for_each_tenant<'a, F, Fut>(
    objects: &'a TenantObjects,
    concurrency: usize,
    each: F,
) -> BenchResult<f64>
where
    F: Fn(&'a [Applied]) -> Fut,
    Fut: Future<Output = Result<(), kube::Error>>,
{
    let started = Instant::now();
    let mut tenants = futures::stream::iter(objects.values())
        .map(|list| each(list))
        .buffer_unordered(concurrency);
    while let Some(r) = tenants.next().await {
        r?;
    }
    Ok(rate(objects.len(), started.elapsed()))
}

/// One latency run.
struct Latency {
    load: u32,
    rate: f64,
    events: usize,
    p50: Duration,
    p95: Duration,
    p99: Duration,
    max: Duration,
}

/// `replicas` workers; for each load, `tenant.requested` for new tenants
/// published open-loop (on a fixed schedule, whatever the worker does) at
/// `load`% of `max_rate`.
fn latency_runs(
    args: &LifecycleBench,
    replicas: usize,
    max_rate: f64,
) -> BenchResult<Vec<Latency>> {
    let env = BenchEnv::start()?;
    let cluster = env.start_api("latency")?;
    let mut workers =
        env.start_workers(&cluster.kubeconfig, "latency", replicas, args.concurrency)?;
    let mut out = Vec::new();
    let mut next_tenant = 0;
    for &load in &args.loads {
        let rate = max_rate * f64::from(load) / 100.0;
        let events = ((rate * args.latency_secs as f64).round() as usize).max(1);
        eprintln!("harness: latency at {load}% ({rate:.1}/s, {events} events)");
        let batch: Vec<Inbound> = (next_tenant..next_tenant + events)
            .map(|i| requested(&tenant_id("lat", i), i))
            .collect();
        next_tenant += events;
        let mut latencies = env.rt.block_on(async {
            let completions = Completions::subscribe(&env.nats.url()).await?;
            let interval = Duration::from_secs_f64(1.0 / rate);
            let start = tokio::time::Instant::now();
            let mut sent = Vec::with_capacity(events);
            let mut acks = std::collections::VecDeque::new();
            for (i, e) in batch.iter().enumerate() {
                tokio::time::sleep_until(start + interval * u32::try_from(i)?).await;
                if acks.len() == PUBLISH_WINDOW {
                    acks.pop_front().expect("a full window").await?;
                }
                sent.push(Instant::now());
                acks.push_back(publish_one(&env.js, e).await?);
            }
            for ack in acks {
                ack.await?;
            }
            let ids: Vec<_> = batch.iter().map(|e| e.id).collect();
            let done = completions.wait_for(&ids, patience(events)).await?;
            check_types(&done, "tenant.provisioned")?;
            BenchResult::Ok(
                done.iter()
                    .zip(&sent)
                    .map(|((at, _), sent)| *at - *sent)
                    .collect::<Vec<_>>(),
            )
        })?;
        out.push(Latency {
            load,
            rate,
            events,
            p50: quantile(&mut latencies, 0.50),
            p95: quantile(&mut latencies, 0.95),
            p99: quantile(&mut latencies, 0.99),
            max: quantile(&mut latencies, 1.0),
        });
    }
    for w in &mut workers {
        w.check_alive()?;
    }
    for w in workers {
        w.stop()?;
    }
    Ok(out)
}
