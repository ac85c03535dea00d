//! The operator-facing subcommands besides `run`: `dev`, `embedded-api`,
//! `publish` and `status`.

pub mod dev;
pub mod publish;
pub mod render;
pub mod routes;
pub mod status;
