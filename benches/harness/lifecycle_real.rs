//! `lifecycle --real-cluster | --kubeconfig FILE`: the worker and a bare
//! `kube` client applying the same objects on a real API server, side by
//! side, with requests counted by the API server itself.
//!
//! With `--real-cluster`, each run gets a fresh control plane of the test
//! suite (etcd, kube-apiserver, kube-controller-manager v1.20.2 and the node
//! stand-in, see crates/test-support), so that no run inherits another's
//! objects; the API server's CPU time is read from /proc. With
//! `--kubeconfig`, every run shares that cluster and its tenants get names
//! of their own.

use std::path::Path;
use std::time::Duration;

use tenant_worker_test_support::{ControlPlane, manifests, metrics};

use crate::common::{
    BenchEnv, BenchResult, Completions, Report, cpu_of, ms_f, tenant_id, workers_cpu,
};
use crate::lifecycle::{
    Applied, LifecycleBench, TenantObjects, apply_objects, capture_objects, command_line,
    delete_objects, deprovision_all, provision_all,
};

/// One measured run on a real API server.
struct RealRun {
    label: String,
    provision_rate: f64,
    deprovision_rate: f64,
    requests_per_tenant: f64,
    /// The worker processes' CPU per tenant (none for the bare client).
    client_cpu_per_tenant: Option<Duration>,
    /// The API server's CPU per tenant, when it runs here.
    api_cpu_per_tenant: Option<Duration>,
}

/// The cluster of one run.
fn open_cluster(args: &LifecycleBench) -> BenchResult<ControlPlane> {
    Ok(match &args.kubeconfig {
        Some(path) => ControlPlane::external(path.clone()),
        None => {
            eprintln!("harness: starting a control plane");
            ControlPlane::start()?
        }
    })
}

/// Four random letters: tenants of a shared cluster get names of their own.
fn run_tag() -> String {
    (0..4)
        .map(|_| char::from(b'a' + fastrand::u8(..26)))
        .collect()
}

/// The counters a run is measured by: requests the API server answered, and
/// its CPU time when it runs here.
async fn counters(cluster: &ControlPlane, admin: &kube::Client) -> BenchResult<(u64, Duration)> {
    let requests = metrics::api_requests_total(admin).await?;
    let cpu = cluster
        .api_server_pid()
        .map_or(Duration::ZERO, |pid| cpu_of(&pid.to_string()));
    Ok((requests, cpu))
}

pub(crate) fn lifecycle_real(args: &LifecycleBench) -> BenchResult<Report> {
    let n = args.tenants;
    let mut runs = Vec::new();
    let mut objects: Option<TenantObjects> = None;
    for &replicas in &args.replicas {
        let cluster = open_cluster(args)?;
        eprintln!("harness: worker x{replicas}, {n} tenants, real API server");
        let (run, captured) = worker_run(&cluster, args, replicas, objects.is_none())?;
        eprintln!(
            "harness: worker x{replicas}: {:.1} provisioned/s, {:.1} requests per tenant",
            run.provision_rate, run.requests_per_tenant
        );
        if objects.is_none() {
            objects = captured;
        }
        runs.push(run);
    }
    let objects = objects.ok_or("the first run captures the objects")?;
    let per_tenant = objects.values().map(Vec::len).sum::<usize>() as f64 / objects.len() as f64;
    let cluster = open_cluster(args)?;
    eprintln!(
        "harness: bare kube client, {n} tenants ({per_tenant:.1} objects each), real API server"
    );
    let bare = bare_run(&cluster, &objects, args.concurrency, per_tenant)?;
    drop(cluster);

    let mut rows = Vec::new();
    for run in std::iter::once(&bare).chain(&runs) {
        rows.push(vec![
            run.label.clone(),
            format!("{:.1} tenants/s", run.provision_rate),
            format!("{:.1} tenants/s", run.deprovision_rate),
            format!(
                "{:.2} / {:.2}",
                run.provision_rate / bare.provision_rate,
                run.deprovision_rate / bare.deprovision_rate
            ),
            format!("{:.1}", run.requests_per_tenant),
            run.client_cpu_per_tenant.map_or("".to_owned(), ms_f),
            run.api_cpu_per_tenant.map_or("n/a".to_owned(), ms_f),
        ]);
    }
    let target = match &args.kubeconfig {
        Some(path) => format!("the cluster of {}", path.display()),
        None => format!(
            "a fresh control plane per run: etcd, kube-apiserver and kube-controller-manager \
             {} (controllers at 200 requests/s) with the test suite's node stand-in, on this \
             machine",
            tenant_worker_test_support::KUBE_VERSION
        ),
    };
    let notes = vec![
        format!(
            "On {target}. {n} `tenant.requested` (plans free, standard, premium in turn) \
             published at once to worker replicas running with the shipped k8s/worker RBAC \
             (their ServiceAccount's token), timed from the first publish to the last \
             `tenant.provisioned`; then {n} `tenant.deleted`. Each replica runs {} sagas at once; \
             the bare client applies the objects the first worker run left (server-side apply, \
             in the worker's order) with the same concurrency, then deletes them.",
            args.concurrency
        ),
        "Requests per tenant: the growth of the API server's own `apiserver_request_total` over \
         the provisioning run, divided by the tenants; it includes the controllers' and the \
         node stand-in's requests (pods bound and marked ready), which the worker waits for \
         and the bare client does not. API server CPU: user + system time of its process over \
         the provisioning run."
            .to_owned(),
    ];
    let mut command = command_line(args);
    command.push_str(match &args.kubeconfig {
        Some(_) => " --kubeconfig <admin kubeconfig>",
        None => " --real-cluster",
    });
    let headers = [
        "",
        "requested → provisioned",
        "deleted → deprovisioned",
        "ratio to bare client",
        "API requests per provisioned tenant",
        "worker CPU per tenant",
        "API server CPU per tenant",
    ];
    Ok(Report {
        rows,
        notes,
        ..Report::new(
            "Worker lifecycle throughput on a real API server",
            command,
            &headers,
        )?
    })
}

/// `replicas` worker processes provision `n` tenants, then delete them.
fn worker_run(
    cluster: &ControlPlane,
    args: &LifecycleBench,
    replicas: usize,
    capture: bool,
) -> BenchResult<(RealRun, Option<TenantObjects>)> {
    let n = args.tenants;
    let env = BenchEnv::start()?;
    let kubeconfig = env.dir.path().join("worker.kubeconfig");
    let admin = env.rt.block_on(async {
        manifests::worker_kubeconfig(
            cluster,
            Path::new(env!("CARGO_MANIFEST_DIR")),
            Duration::from_secs(4 * 3600),
            &kubeconfig,
        )
        .await?;
        cluster.admin_client().await
    })?;
    let workers = env.start_workers(&kubeconfig, "real", replicas, args.concurrency)?;
    let run = format!("real{replicas}{}", run_tag());
    let tenants: Vec<_> = (0..n).map(|i| tenant_id(&run, i)).collect();
    let worker_cpu0 = workers_cpu(&workers);
    let (provision, (requests, api_cpu), deprovision, objects) = env.rt.block_on(async {
        let completions = Completions::subscribe(&env.nats.url()).await?;
        let before = counters(cluster, &admin).await?;
        let provision = provision_all(&env, &completions, &tenants).await?;
        let after = counters(cluster, &admin).await?;
        let objects = if capture {
            Some(capture_objects(&admin).await?)
        } else {
            None
        };
        let deprovision = deprovision_all(&env, &completions, &tenants).await?;
        BenchResult::Ok((
            provision,
            (after.0 - before.0, after.1 - before.1),
            deprovision,
            objects,
        ))
    })?;
    let worker_cpu = workers_cpu(&workers) - worker_cpu0;
    for w in workers {
        w.stop()?;
    }
    let per = u32::try_from(n)?;
    Ok((
        RealRun {
            label: format!("tenant-worker ×{replicas}"),
            provision_rate: provision,
            deprovision_rate: deprovision,
            requests_per_tenant: requests as f64 / n as f64,
            client_cpu_per_tenant: Some(worker_cpu / per),
            api_cpu_per_tenant: cluster.api_server_pid().map(|_| api_cpu / per),
        },
        objects,
    ))
}

/// The bare client applies `objects`, renamed to tenants of their own (the
/// cluster may be the one the worker runs used), then deletes them.
fn bare_run(
    cluster: &ControlPlane,
    objects: &TenantObjects,
    concurrency: usize,
    per_tenant: f64,
) -> BenchResult<RealRun> {
    let tag = run_tag();
    let renamed: TenantObjects = objects
        .iter()
        .enumerate()
        .map(|(i, (tenant, list))| {
            let new = tenant_id(&format!("bare{tag}"), i).to_string();
            let list = list
                .iter()
                .map(|o| {
                    let body = serde_json::to_string(&o.body).expect("JSON");
                    Applied {
                        name: o.name.replace(tenant.as_str(), &new),
                        body: serde_json::from_str(&body.replace(tenant.as_str(), &new))
                            .expect("still JSON"),
                        ..o.clone()
                    }
                })
                .collect();
            (new, list)
        })
        .collect();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let admin = cluster.admin_client().await?;
        let before = counters(cluster, &admin).await?;
        let apply = apply_objects(&admin, &renamed, concurrency).await?;
        let after = counters(cluster, &admin).await?;
        let delete = delete_objects(&admin, &renamed, concurrency).await?;
        let per = u32::try_from(renamed.len())?;
        Ok(RealRun {
            label: format!("bare kube client (server-side apply of the same {per_tenant:.1} objects; delete them)"),
            provision_rate: apply,
            deprovision_rate: delete,
            requests_per_tenant: (after.0 - before.0) as f64 / renamed.len() as f64,
            client_cpu_per_tenant: None,
            api_cpu_per_tenant: cluster.api_server_pid().map(|_| (after.1 - before.1) / per),
        })
    })
}
