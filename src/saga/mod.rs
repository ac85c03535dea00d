//! The tenant saga: from (the tenant's record, an inbound intent) to steps run
//! against the cluster, a step log persisted after each step, compensation in
//! reverse on failure, and the completion event.

pub mod engine;
mod give_up;
pub mod state;
pub mod store;

pub use engine::{Delivery, Engine, EngineSettings, Handled};
pub use give_up::ACQUIRE_STEP;
