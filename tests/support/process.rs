//! Worker processes: the real `tenant-worker run` binary, so that tests can
//! kill one (SIGKILL, or a failpoint abort) and start another.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A `tenant-worker run` process; killed on drop.
pub(crate) struct WorkerProcess {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

/// How to start a worker process.
pub(crate) struct WorkerOptions<'a> {
    /// Replica id and log file name.
    pub name: &'a str,
    /// `FAILPOINTS` (e.g. `saga.after_apply.rbac=return`), if any.
    pub failpoints: Option<&'a str>,
    /// Extra `run` flags.
    pub args: &'a [&'a str],
}

impl WorkerProcess {
    /// Starts `tenant-worker run` against `nats_url` and the cluster of
    /// `kubeconfig`, logging (JSON) to `<dir>/<name>.log` (appended). Short
    /// ack wait and lease so that a killed worker's tenants move on quickly.
    pub(crate) fn spawn(
        nats_url: &str,
        kubeconfig: &Path,
        dir: &Path,
        opts: WorkerOptions<'_>,
    ) -> Self {
        let log = dir.join(format!("{}.log", opts.name));
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file opens");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenant-worker"));
        cmd.args(["--log-format", "json", "run", "--nats-url", nats_url])
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--replica-id", opts.name]);
        for (flag, value) in [
            ("--ack-wait-secs", "3"),
            ("--lease-ttl-secs", "3"),
            ("--shutdown-grace-secs", "5"),
            // Several processes per machine: each on a free port.
            ("--metrics-listen", "127.0.0.1:0"),
        ] {
            if !opts.args.contains(&flag) {
                cmd.args([flag, value]);
            }
        }
        cmd.args(opts.args)
            .env("RUST_LOG", "info,tenant_worker=debug")
            .env_remove("FAILPOINTS")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file clones"))
            .stderr(out);
        if let Some(fp) = opts.failpoints {
            cmd.env("FAILPOINTS", fp);
        }
        let child = cmd.spawn().expect("worker binary starts");
        Self {
            name: opts.name.to_owned(),
            child,
            log,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no clean-up of any kind.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: the graceful shutdown path.
    pub(crate) fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM to {} failed", self.name);
    }

    /// Waits up to `limit` for the process to exit by itself (asynchronously:
    /// the embedded API it talks to runs on the test's runtime).
    pub(crate) async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if start.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether it is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// The log so far.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
