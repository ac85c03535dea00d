//! tenant-worker: turns tenant lifecycle events from NATS JetStream into
//! isolated tenants (namespace, quota, limits, network policy, RBAC) on
//! Kubernetes, and publishes what happened.
//!
//! `main` parses the command line and calls into this library, so tests drive
//! the same code: [`run`] is the worker.
#![forbid(unsafe_code)]

pub mod bus;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod error;
pub mod failpoint;
pub mod health;
pub mod metrics;
pub mod retry;
pub mod saga;
pub mod settings;
pub mod steps;
pub mod telemetry;
pub mod worker;

// The domain (crates/core), under the names the worker has always used.
pub use tenant_core::{contract, plans, record};

pub use error::{Error, Result};
pub use settings::WorkerSettings;
pub use worker::run;
