//! tenant-worker's domain, with no IO: no Kubernetes client, no NATS client,
//! no async runtime (`cargo tree -p tenant-worker-core` shows none).
//!
//! - [`contract`]: the wire contract (event types, payloads, subjects,
//!   buckets, labels) and the validation of inbound events.
//! - [`names`]: the Kubernetes name rules, checked once.
//! - [`plans`]: the plan catalogue.
//! - [`record`]: the worker's record of a tenant and the log of its saga.
//! - [`steps`]: the saga's steps and the objects each one owns.
//! - [`rules`]: what an event does to a tenant (admission, the target of an
//!   intent, the order of compensation), as pure functions.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod contract;
pub mod names;
pub mod plans;
pub mod record;
pub mod rules;
pub mod steps;
