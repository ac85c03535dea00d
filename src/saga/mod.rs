//! The tenant saga: from (the tenant's record, an inbound intent) to steps run
//! against the cluster, a step log persisted after each step, compensation in
//! reverse on failure, and the completion event.

pub mod engine;
pub mod state;
pub mod store;

pub use engine::{Engine, EngineSettings, Handled};
