//! Crash points for the crash tests: named places where a test can make the
//! process abort on the spot (no destructors, no acks, no log flush beyond what
//! was written), as a SIGKILL would.
//!
//! Compiled only with the `failpoints` feature, on the `fail` crate: the
//! process reads `FAILPOINTS` at start (see [`setup`]); `FAILPOINTS=
//! saga.after_apply.rbac=return` aborts right after the `rbac` step's objects
//! are applied and before the step log is written. Without the feature every
//! call here compiles to nothing.
//!
//! The points:
//! - `saga.after_apply.<step>`: the step's objects are applied, the log not yet written.
//! - `release.after_pending_record`: the revision's pending record (its manifest) is
//!   written, no object of it applied yet.
//! - `saga.after_compensate.<step>`: the step is undone, the log not yet written.
//! - `saga.after_delete_namespace`: the namespace deletion is requested.
//! - `saga.before_publish`: the completion event is decided and logged, not published.
//! - `saga.after_publish`: the completion event is published; route and record not written.
//! - `worker.before_ack`: the record is closed; the inbound message is not acknowledged.

/// Configures the crash points from `FAILPOINTS`; keep the guard for the
/// life of the process.
#[cfg(feature = "failpoints")]
pub fn setup() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

/// Aborts the process if the crash point `name` is configured (any action).
#[cfg_attr(not(feature = "failpoints"), inline(always))]
pub fn crash_point(name: &str) {
    #[cfg(feature = "failpoints")]
    if fail::eval(name, |_| ()).is_some() {
        eprintln!("failpoint {name}: aborting the process");
        std::process::abort();
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}
