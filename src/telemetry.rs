//! Logging set-up: human-readable text or JSON lines, filtered by `RUST_LOG`
//! (default `info` for long-running commands, `warn` for one-shot CLI commands,
//! whose output is their result).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber with `default_level` unless `RUST_LOG` is
/// set. Call once, from `main`.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
