//! The tenant saga: from (the tenant's record, an inbound intent) to steps run
//! against the cluster, a step log persisted after each step, compensation in
//! reverse on failure, and the completion event.
//!
//! - `engine`: one event end to end (the guarantees are documented there).
//! - `lease`: one replica per tenant.
//! - `ordering`: per-tenant order by stream sequence.
//! - `prepare`: values, rendering and the isolation check, before any step.
//! - `render_once`: a resumed saga installs its recorded revision, not a new rendering.
//! - `execution`: the steps forward, and compensation.
//! - `reconcile`: drift detection and repair between sagas.
//! - `give_up`: the end of an event after its last allowed delivery.
//!
//! The decisions are [`tenant_core::rules`]. The record is [`crate::record`]; it is stored with compare-and-set by
//! [`crate::bus::state`].

pub mod engine;
mod execution;
mod give_up;
mod lease;
mod ordering;
mod prepare;
pub mod reconcile;
mod render_once;

pub use engine::{Delivery, Engine, EngineSettings, Handled};
pub use give_up::ACQUIRE_STEP;
