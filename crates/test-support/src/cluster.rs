//! Starting, sharing and stopping a control plane.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::node::NodeStandIn;
use crate::pki::{ClientCert, Pki};
use crate::processes::{self, Process, Processes};
use crate::{CONTROL_PLANE_DIR_ENV, ControlPlaneError, EXTERNAL_KUBECONFIG_ENV, KUBE_VERSION};

/// How long each process may take to become ready (the API server takes
/// 5 to 15 s on 2 busy cores).
const START_PATIENCE: Duration = Duration::from_secs(120);

/// The controllers the tests rely on. Not `*`: without kubelets, the node
/// lifecycle controller would taint the stand-in node and evict its pods.
const CONTROLLERS: &str = "namespace,garbagecollector,deployment,replicaset,statefulset,job,\
                           serviceaccount,serviceaccount-token,resourcequota";

const INSTALL_HINT: &str = "run scripts/install-control-plane.sh (builds it once, about 5 \
     minutes, and caches it), set TENANT_WORKER_CONTROL_PLANE_DIR to where it is cached, or set \
     TENANT_WORKER_TEST_KUBECONFIG to use an existing cluster";

/// A Kubernetes cluster for tests: started here, or an existing one named by
/// `TENANT_WORKER_TEST_KUBECONFIG`.
///
/// A cluster started here stops (processes killed, files removed) when the
/// value is dropped, or at exit for the process-wide [`ControlPlane::shared`].
#[derive(Debug)]
pub struct ControlPlane {
    admin_kubeconfig: PathBuf,
    local: Option<Local>,
}

#[derive(Debug)]
struct Local {
    api_server_pid: u32,
    logs: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the control-plane thread reports once everything is ready.
struct Started {
    admin_kubeconfig: PathBuf,
    api_server_pid: u32,
    logs: PathBuf,
}

static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

impl ControlPlane {
    /// The cluster of this test process: the one `TENANT_WORKER_TEST_KUBECONFIG`
    /// names, else a control plane started on first use and shared by every
    /// test of the process (each test works in its own tenants).
    ///
    /// # Errors
    /// Why the cluster could not be started, the same for every caller.
    pub fn shared() -> Result<&'static ControlPlane, String> {
        SHARED
            .get_or_init(|| Self::from_env_or_start().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A cluster of the caller's own: the external one when
    /// `TENANT_WORKER_TEST_KUBECONFIG` is set, else a new control plane.
    ///
    /// # Errors
    /// See [`ControlPlane::start`].
    pub fn from_env_or_start() -> Result<Self, ControlPlaneError> {
        match std::env::var_os(EXTERNAL_KUBECONFIG_ENV) {
            Some(path) if !path.is_empty() => Ok(Self::external(PathBuf::from(path))),
            _ => Self::start(),
        }
    }

    /// An existing cluster reached with `admin_kubeconfig` (which must allow
    /// creating namespaces, service accounts and cluster RBAC).
    pub fn external(admin_kubeconfig: PathBuf) -> Self {
        Self {
            admin_kubeconfig,
            local: None,
        }
    }

    /// Starts etcd, kube-apiserver, kube-controller-manager and the node
    /// stand-in on free loopback ports and waits until the cluster serves
    /// requests and its controllers work. Blocks for 10 to 30 seconds.
    ///
    /// # Errors
    /// [`ControlPlaneError::Missing`] when a binary is not installed, and the
    /// other variants when a process fails to start (with its log's tail).
    pub fn start() -> Result<Self, ControlPlaneError> {
        let binaries = Binaries::find()?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        // One thread owns the processes (they die with it: PR_SET_PDEATHSIG)
        // and runs the node stand-in, whatever runtime the caller is on.
        let thread = std::thread::Builder::new()
            .name("control-plane".into())
            .spawn(move || run(binaries, &ready_tx, stop_rx))
            .map_err(|e| ControlPlaneError::Setup(format!("cannot start a thread: {e}")))?;
        let started = ready_rx.recv().map_err(|_| ControlPlaneError::Start {
            what: "control plane",
            detail: "its thread ended without a word".into(),
        })??;
        Ok(Self {
            admin_kubeconfig: started.admin_kubeconfig,
            local: Some(Local {
                api_server_pid: started.api_server_pid,
                logs: started.logs,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
        })
    }

    /// The administrator's kubeconfig (group `system:masters`).
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// A client with the administrator's rights.
    ///
    /// # Errors
    /// When the kubeconfig cannot be read or names no usable cluster.
    pub async fn admin_client(&self) -> Result<kube::Client, ControlPlaneError> {
        client_from(&self.admin_kubeconfig).await
    }

    /// Whether the control plane was started by this process (its processes
    /// can be frozen, its logs read).
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// The API server's process id, for a cluster started here (to read its
    /// CPU time).
    pub fn api_server_pid(&self) -> Option<u32> {
        self.local.as_ref().map(|l| l.api_server_pid)
    }

    /// Where the processes' logs are, for a cluster started here.
    pub fn logs(&self) -> Option<&Path> {
        self.local.as_ref().map(|l| l.logs.as_path())
    }

    /// Stops the API server process (SIGSTOP) until the returned guard is
    /// dropped or [`ApiServerFrozen::thaw`]ed (SIGCONT): requests hang, as
    /// they do when an API server is overloaded or partitioned.
    ///
    /// # Errors
    /// [`ControlPlaneError::NotLocal`] for an external cluster.
    pub fn freeze_api_server(&self) -> Result<ApiServerFrozen, ControlPlaneError> {
        let local = self
            .local
            .as_ref()
            .ok_or(ControlPlaneError::NotLocal("freezing the API server"))?;
        processes::send_signal(local.api_server_pid, libc::SIGSTOP)
            .map_err(|e| ControlPlaneError::Setup(format!("cannot stop the API server: {e}")))?;
        Ok(ApiServerFrozen {
            pid: Some(local.api_server_pid),
        })
    }

    /// A kubeconfig for service account `namespace/name` of this cluster,
    /// with a token from the TokenRequest API valid for `lifetime`, written
    /// to `path`: how a test runs a program with that account's rights only.
    ///
    /// # Errors
    /// When the token cannot be requested or the file written.
    pub async fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
        lifetime: Duration,
        path: &Path,
    ) -> Result<(), ControlPlaneError> {
        let admin = self.admin_client().await?;
        let request = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": lifetime.as_secs()},
        });
        let answer: serde_json::Value = Api::<ServiceAccount>::namespaced(admin, namespace)
            .create_subresource("token", name, &Default::default(), &request)
            .await?;
        let token = answer["status"]["token"].as_str().ok_or_else(|| {
            ControlPlaneError::Setup(format!("TokenRequest for {namespace}/{name}: no token"))
        })?;
        let admin = Kubeconfig::read_from(&self.admin_kubeconfig)?;
        let cluster = admin
            .clusters
            .first()
            .and_then(|c| c.cluster.clone())
            .ok_or_else(|| {
                ControlPlaneError::Setup("the admin kubeconfig has no cluster".into())
            })?;
        let text = kubeconfig_yaml(
            &cluster.server.unwrap_or_default(),
            cluster.certificate_authority_data.as_deref(),
            &format!("system:serviceaccount:{namespace}:{name}"),
            &serde_json::json!({"token": token}),
        );
        std::fs::write(path, text)
            .map_err(|e| ControlPlaneError::Setup(format!("cannot write {}: {e}", path.display())))
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(local) = &mut self.local {
            if let Some(stop) = local.stop.take() {
                let _ = stop.send(());
            }
            if let Some(thread) = local.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// The API server stopped by [`ControlPlane::freeze_api_server`]; resumed
/// when dropped.
#[derive(Debug)]
pub struct ApiServerFrozen {
    pid: Option<u32>,
}

impl ApiServerFrozen {
    /// Resumes the API server.
    pub fn thaw(mut self) {
        self.resume();
    }

    fn resume(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = processes::send_signal(pid, libc::SIGCONT);
        }
    }
}

impl Drop for ApiServerFrozen {
    fn drop(&mut self) {
        self.resume();
    }
}

/// A client from a kubeconfig file.
async fn client_from(path: &Path) -> Result<kube::Client, ControlPlaneError> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// A one-context kubeconfig; `user` holds the credentials
/// (`client-certificate-data`/`client-key-data`, or `token`).
fn kubeconfig_yaml(
    server: &str,
    ca_data: Option<&str>,
    user_name: &str,
    user: &serde_json::Value,
) -> String {
    let mut cluster = serde_json::json!({"server": server});
    if let Some(ca) = ca_data {
        cluster["certificate-authority-data"] = ca.into();
    }
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": user_name}}],
        "current-context": "test",
    });
    serde_yaml_ng::to_string(&config).expect("JSON serializes to YAML")
}

fn cert_user(cert: &ClientCert) -> serde_json::Value {
    serde_json::json!({
        "client-certificate-data": BASE64.encode(&cert.cert_pem),
        "client-key-data": BASE64.encode(&cert.key_pem),
    })
}

/// The three programs.
struct Binaries {
    etcd: PathBuf,
    api_server: PathBuf,
    controller_manager: PathBuf,
}

impl Binaries {
    fn find() -> Result<Self, ControlPlaneError> {
        let dir = match std::env::var_os(CONTROL_PLANE_DIR_ENV) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => std::env::var_os("XDG_CACHE_HOME")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"))
                .join(format!("tenant-worker/kube-{KUBE_VERSION}")),
        };
        let bin = dir.join("bin");
        let present = |what: &'static str, path: PathBuf| {
            if path.is_file() {
                Ok(path)
            } else {
                Err(ControlPlaneError::Missing {
                    what,
                    path: path.display().to_string(),
                    hint: INSTALL_HINT,
                })
            }
        };
        let etcd = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join("etcd"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("etcd (on PATH)"));
        Ok(Self {
            etcd: present("etcd", etcd)?,
            api_server: present("kube-apiserver", bin.join("kube-apiserver"))?,
            controller_manager: present(
                "kube-controller-manager",
                bin.join("kube-controller-manager"),
            )?,
        })
    }
}

fn free_port() -> Result<u16, ControlPlaneError> {
    crate::nats_server::free_port()
        .map_err(|e| ControlPlaneError::Setup(format!("no free port: {e}")))
}

fn path_arg(flag: &str, path: &Path) -> String {
    format!("--{flag}={}", path.display())
}

/// The control-plane thread: starts everything, reports, then runs the
/// node stand-in until told to stop; the processes and files go with it.
fn run(
    binaries: Binaries,
    ready: &mpsc::Sender<Result<Started, ControlPlaneError>>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(ControlPlaneError::Setup(format!("no runtime: {e}"))));
            return;
        }
    };
    // etcd's data is written on every request: on tmpfs when there is one.
    let base = Path::new("/dev/shm");
    let dir = if base.is_dir() {
        tempfile::Builder::new()
            .prefix("tenant-worker-cluster.")
            .tempdir_in(base)
    } else {
        tempfile::Builder::new()
            .prefix("tenant-worker-cluster.")
            .tempdir()
    };
    let dir = match dir {
        Ok(dir) => dir,
        Err(e) => {
            let _ = ready.send(Err(ControlPlaneError::Setup(format!(
                "no temporary directory: {e}"
            ))));
            return;
        }
    };
    processes::register_dir(dir.path());
    let mut processes = Processes::default();
    runtime.block_on(async {
        let booted = boot(&binaries, dir.path(), &mut processes).await;
        let (started, node) = match booted {
            Ok(booted) => booted,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(started));
        let node = tokio::spawn(node.run());
        tokio::select! {
            _ = stop => {}
            () = watch_for_exits(&mut processes) => {}
        }
        node.abort();
    });
    drop(runtime);
    drop(processes);
    processes::forget_dir(dir.path());
}

async fn boot(
    binaries: &Binaries,
    dir: &Path,
    processes: &mut Processes,
) -> Result<(Started, NodeStandIn), ControlPlaneError> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)
        .map_err(|e| ControlPlaneError::Setup(format!("cannot create {}: {e}", logs.display())))?;
    let pki = Pki::write(dir)?;

    let etcd_port = free_port()?;
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{}", free_port()?);
    processes.0.push(Process::spawn(
        "etcd",
        &binaries.etcd,
        &[
            "--name=test".into(),
            path_arg("data-dir", &dir.join("etcd")),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=test={peer_url}"),
            "--logger=zap".into(),
            "--log-level=warn".into(),
        ],
        &logs,
    )?);
    wait_until(processes, "etcd", || async {
        http_get_ok("127.0.0.1", etcd_port, "/health", "\"health\":\"true\"")
    })
    .await?;

    let api_port = free_port()?;
    let server = format!("https://127.0.0.1:{api_port}");
    processes.0.push(Process::spawn(
        "kube-apiserver",
        &binaries.api_server,
        &[
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            path_arg("cert-dir", &dir.join("apiserver")),
            path_arg("tls-cert-file", &pki.serving_cert),
            path_arg("tls-private-key-file", &pki.serving_key),
            path_arg("client-ca-file", &pki.ca),
            "--authorization-mode=RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            path_arg("service-account-key-file", &pki.service_account_public_key),
            path_arg("service-account-signing-key-file", &pki.service_account_key),
            // kubeadm's default: room for a million Services (a /24 runs
            // out at 253 tenants with one Service each).
            "--service-cluster-ip-range=10.96.0.0/12".into(),
            "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,\
             DefaultTolerationSeconds,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,\
             ResourceQuota"
                .into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
            "--v=0".into(),
        ],
        &logs,
    )?);
    let api_server_pid = processes.0.last().expect("just pushed").pid();
    let ca_data = BASE64.encode(&pki.ca_pem);
    let admin_kubeconfig = dir.join("admin.kubeconfig");
    write_file(
        &admin_kubeconfig,
        &kubeconfig_yaml(
            &server,
            Some(&ca_data),
            "tenant-worker-test-admin",
            &cert_user(&pki.admin),
        ),
    )?;
    let admin = client_from(&admin_kubeconfig).await?;
    wait_until(processes, "kube-apiserver", || {
        let admin = admin.clone();
        async move {
            let request = http::Request::get("/readyz").body(Vec::new()).ok()?;
            (admin.request_text(request).await.ok()? == "ok").then_some(())
        }
    })
    .await?;

    let cm_kubeconfig = dir.join("controller-manager.kubeconfig");
    write_file(
        &cm_kubeconfig,
        &kubeconfig_yaml(
            &server,
            Some(&ca_data),
            "system:kube-controller-manager",
            &cert_user(&pki.controller_manager),
        ),
    )?;
    processes.0.push(Process::spawn(
        "kube-controller-manager",
        &binaries.controller_manager,
        &[
            path_arg("kubeconfig", &cm_kubeconfig),
            "--leader-elect=false".into(),
            // No ports of its own: several clusters run side by side.
            "--port=0".into(),
            "--secure-port=0".into(),
            format!("--controllers={CONTROLLERS}"),
            path_arg("service-account-private-key-file", &pki.service_account_key),
            path_arg("root-ca-file", &pki.ca),
            "--use-service-account-credentials=true".into(),
            // The default (20/s) makes the controllers, not the code under
            // test, the pace of every test; a test cluster has room.
            "--kube-api-qps=200".into(),
            "--kube-api-burst=400".into(),
            "--v=0".into(),
        ],
        &logs,
    )?);
    // The controllers work once the service-account controller has given the
    // `default` namespace its `default` account (every pod needs one).
    wait_until(processes, "kube-controller-manager", || {
        let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), "default");
        async move { accounts.get_opt("default").await.ok().flatten().map(|_| ()) }
    })
    .await?;

    let node =
        NodeStandIn::register(admin.clone())
            .await
            .map_err(|e| ControlPlaneError::Start {
                what: "node stand-in",
                detail: e.to_string(),
            })?;
    Ok((
        Started {
            admin_kubeconfig,
            api_server_pid,
            logs,
        },
        node,
    ))
}

/// Says on stderr, with the end of its log, when a process of the cluster
/// exits by itself: whatever the tests see next (requests refused,
/// controllers idle) is explained there. Never returns.
async fn watch_for_exits(processes: &mut Processes) {
    let mut reported = vec![false; processes.0.len()];
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (process, reported) in processes.0.iter_mut().zip(&mut reported) {
            if !*reported && let Some(status) = process.exited() {
                *reported = true;
                eprintln!(
                    "control plane: {} exited ({status}); its log ends:\n{}",
                    process.log.display(),
                    process.log_tail()
                );
            }
        }
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), ControlPlaneError> {
    std::fs::write(path, text)
        .map_err(|e| ControlPlaneError::Setup(format!("cannot write {}: {e}", path.display())))
}

/// Polls `ready` every 100 ms until it answers, failing when the last
/// process started has exited or [`START_PATIENCE`] has passed.
async fn wait_until<F, Fut>(
    processes: &mut Processes,
    what: &'static str,
    mut ready: F,
) -> Result<(), ControlPlaneError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    let started = Instant::now();
    loop {
        if ready().await.is_some() {
            tracing::debug!(what, elapsed = ?started.elapsed(), "ready");
            return Ok(());
        }
        let process = processes.0.last_mut().expect("a process was started");
        if let Some(status) = process.exited() {
            return Err(ControlPlaneError::Start {
                what,
                detail: format!(
                    "exited with {status}; its log ends:\n{}",
                    process.log_tail()
                ),
            });
        }
        if started.elapsed() > START_PATIENCE {
            return Err(ControlPlaneError::Start {
                what,
                detail: format!(
                    "not ready after {START_PATIENCE:?}; its log ends:\n{}",
                    process.log_tail()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET path` over plain HTTP: `Some(())` when the answer is 200 and
/// contains `expect`.
fn http_get_ok(host: &str, port: u16, path: &str, expect: &str) -> Option<()> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect((host, port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).ok()?;
    (answer.starts_with("HTTP/1.") && answer.contains(" 200 ") && answer.contains(expect))
        .then_some(())
}
