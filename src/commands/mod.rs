//! The operator-facing subcommands besides `run`: `publish`, `status`,
//! `routes`, `render`, `reconcile` and `replay`; and, in builds with the
//! `dev` feature only, `dev` and `embedded-api`.

#[cfg(feature = "dev")]
pub mod dev;
pub mod output;
pub mod publish;
pub mod reconcile;
pub mod render;
pub mod replay;
pub mod routes;
pub mod status;
