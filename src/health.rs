//! The operator's HTTP endpoints of `run`, on `--metrics-listen`:
//!
//! - `GET /metrics`: the Prometheus metrics ([`crate::metrics`]), OpenMetrics text.
//! - `GET /healthz`: 200 while the process serves requests (liveness).
//! - `GET /readyz`: 200 when NATS is connected, `TENANT_LIFECYCLE` answers and
//!   the Kubernetes API answers; otherwise 503 naming each check that failed
//!   (readiness: a replica that cannot work should not count as available).

use std::net::SocketAddr;
use std::time::Duration;

use async_nats::jetstream;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::contract::LIFECYCLE_STREAM;
use crate::error::Error;

/// How long one readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/readyz` checks.
#[derive(Clone)]
pub struct Probes {
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub kube: kube::Client,
}

impl Probes {
    /// The checks that fail now, each as one line.
    pub async fn failing(&self) -> Vec<String> {
        let mut failing = Vec::new();
        let state = self.nats.connection_state();
        if state != async_nats::connection::State::Connected {
            failing.push(format!("nats: {state}"));
        } else {
            match tokio::time::timeout(CHECK_TIMEOUT, self.js.get_stream(LIFECYCLE_STREAM)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => failing.push(format!("nats: stream {LIFECYCLE_STREAM}: {e}")),
                Err(_) => failing.push(format!(
                    "nats: stream {LIFECYCLE_STREAM}: no answer within {CHECK_TIMEOUT:?}"
                )),
            }
        }
        match tokio::time::timeout(CHECK_TIMEOUT, self.kube.apiserver_version()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failing.push(format!("kubernetes: {}", crate::cluster::describe(&e))),
            Err(_) => failing.push(format!("kubernetes: no answer within {CHECK_TIMEOUT:?}")),
        }
        failing
    }
}

/// Binds `addr` (port 0 picks a free one).
///
/// # Errors
/// [`Error::Setup`] naming the address when it cannot be bound.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Setup(format!("cannot listen on {addr} (--metrics-listen): {e}")))
}

/// Serves the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, probes: Probes) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(probes);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics and health endpoints stopped");
    }
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::metrics().encode(),
    )
}

async fn ready(State(probes): State<Probes>) -> impl IntoResponse {
    let failing = probes.failing().await;
    if failing.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{}\n", failing.join("\n")),
        )
    }
}
