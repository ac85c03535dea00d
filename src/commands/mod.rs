//! The operator-facing subcommands besides `run`: `dev`, `embedded-api`,
//! `publish`, `status`, `routes`, `render`, `reconcile` and `replay`.

pub mod dev;
pub mod output;
pub mod publish;
pub mod reconcile;
pub mod render;
pub mod replay;
pub mod routes;
pub mod status;
