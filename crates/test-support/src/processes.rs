//! Child processes of a control plane: started with their output in a log
//! file, stopped in reverse order of start, and never outliving the test
//! process.
//!
//! A test binary may end without dropping a process-wide cluster (statics are
//! never dropped) or be killed outright. Two guards cover that: every child
//! gets `PR_SET_PDEATHSIG = SIGKILL`, so it dies with the thread that started
//! it (each cluster's own long-lived thread), and an `atexit` handler kills
//! what is still registered and removes the clusters' directories when the
//! test binary exits normally.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use crate::ControlPlaneError;

/// Pids of running children and directories of running clusters, for the
/// exit handler.
static LIVE: Mutex<(Vec<u32>, Vec<PathBuf>)> = Mutex::new((Vec::new(), Vec::new()));
static EXIT_HANDLER: Once = Once::new();

extern "C" fn clean_up_at_exit() {
    let Ok(live) = LIVE.lock() else { return };
    for pid in &live.0 {
        // SAFETY: kill(2) with a pid this process started and still owns.
        unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
    }
    for dir in &live.1 {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn register_exit_handler() {
    EXIT_HANDLER.call_once(|| {
        // SAFETY: registers a plain extern "C" function.
        unsafe { libc::atexit(clean_up_at_exit) };
    });
}

/// Registers a cluster directory that the exit handler removes.
pub(crate) fn register_dir(dir: &Path) {
    register_exit_handler();
    LIVE.lock().expect("live list").1.push(dir.to_owned());
}

/// Forgets a directory removed by its owner.
pub(crate) fn forget_dir(dir: &Path) {
    LIVE.lock().expect("live list").1.retain(|d| d != dir);
}

/// A started child whose output goes to `log`.
#[derive(Debug)]
pub(crate) struct Process {
    pub log: PathBuf,
    child: Child,
}

impl Process {
    /// Starts `program args...` with stdout and stderr appended to
    /// `<log_dir>/<name>.log`.
    ///
    /// # Errors
    /// [`ControlPlaneError::Start`] when the program cannot be started.
    pub(crate) fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        log_dir: &Path,
    ) -> Result<Self, ControlPlaneError> {
        register_exit_handler();
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log).map_err(|e| {
            ControlPlaneError::Setup(format!("cannot create {}: {e}", log.display()))
        })?;
        let err = out
            .try_clone()
            .map_err(|e| ControlPlaneError::Setup(format!("cannot open {}: {e}", log.display())))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork
        // and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| ControlPlaneError::Start {
            what: name,
            detail: format!("cannot run {}: {e}", program.display()),
        })?;
        LIVE.lock().expect("live list").0.push(child.id());
        Ok(Self { log, child })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` when the process has exited.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of the process's log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Sends `signal` to the process.
    pub(crate) fn signal(&self, signal: libc::c_int) -> std::io::Result<()> {
        send_signal(self.child.id(), signal)
    }

    /// SIGTERM (after SIGCONT, in case it was stopped), then SIGKILL when it
    /// has not exited within `grace`; reaps it.
    pub(crate) fn stop(&mut self, grace: Duration) {
        let _ = self.signal(libc::SIGCONT);
        let _ = self.signal(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while self.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pid = self.child.id();
        LIVE.lock().expect("live list").0.retain(|p| *p != pid);
    }
}

/// Sends `signal` to process `pid`, a child this process started.
pub(crate) fn send_signal(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    // SAFETY: kill(2) on a child of this process.
    if unsafe { libc::kill(pid as libc::pid_t, signal) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Children stopped in reverse order of start when dropped.
#[derive(Debug, Default)]
pub(crate) struct Processes(pub Vec<Process>);

impl Drop for Processes {
    fn drop(&mut self) {
        while let Some(mut p) = self.0.pop() {
            p.stop(Duration::from_secs(5));
        }
    }
}
