//! Most integration tests, in one test binary: each module is one former
//! test file (`tests/<name>.rs`), so the suite links once instead of once per
//! file. Run one file's tests with `cargo test --test suite <name>::`.
//!
//! Separate binaries, each for a reason: `crash` (needs the `failpoints`
//! feature), `tracing` (installs a process-wide tracing subscriber),
//! `torture_kill` and `torture_cluster` (long forms run on their own),
//! `real_cluster` (runs against TENANT_WORKER_TEST_KUBECONFIG's cluster alone),
//! `operations` (asserts the process-wide metric gauges go back to zero).

mod support;

mod billing;
mod cli;
mod deadletter;
mod embedded_api;
mod helm_diff;
mod manifests;
mod nats_auth;
mod provisioning;
mod race;
mod reconcile;
mod releases;
mod replay;
mod restart;
mod sagas;
mod schemas;
mod torture_input;
