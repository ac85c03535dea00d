//! The running server: shared state, the HTTP listener and the loop that
//! runs the simulated controllers.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::EmbeddedApiConfig;
use super::admission::{FieldValidation, WriteCtx, now_ts};
use super::controllers;
use super::faults::FaultInjector;
use super::handlers;
use super::request_log::RequestLog;
use super::store::Store;
use super::verbs;

/// State shared by all requests and the controller loop.
pub(crate) struct App {
    pub config: EmbeddedApiConfig,
    store: Mutex<Store>,
    pub faults: FaultInjector,
    /// Wakes the controller loop after writes that schedule work.
    pub wake: Notify,
    /// `host:port` advertised by `/api`.
    pub server_address: String,
    /// What clients asked for, when recording is on (see `request_log`).
    pub requests: RequestLog,
}

impl App {
    /// A server with the namespaces every cluster has (`default`,
    /// `kube-system`, `kube-public`, `kube-node-lease`).
    pub(crate) fn new(
        config: EmbeddedApiConfig,
        faults: FaultInjector,
        addr: SocketAddr,
    ) -> Arc<App> {
        let app = Arc::new(App {
            config,
            store: Mutex::new(Store::default()),
            faults,
            wake: Notify::new(),
            server_address: addr.to_string(),
            requests: RequestLog::default(),
        });
        verbs::bootstrap(&app);
        app
    }

    /// Locks the store. Hold the guard only for short synchronous sections:
    /// never across an `.await`.
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        // The store is plain data; a panic elsewhere must not take the server down.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write_ctx(&self, validation: FieldValidation) -> WriteCtx<'_> {
        WriteCtx {
            faults: &self.faults,
            ready_delay: self.config.ready_delay,
            validation,
            now: now_ts(),
        }
    }
}

/// Runs the simulated controllers until the task is aborted.
async fn run_controllers(app: Arc<App>) {
    loop {
        let next = {
            let mut store = app.store();
            controllers::tick(&mut store, &app.faults, Instant::now(), &now_ts())
        };
        // Sleep until the next deadline, a write, or a released readiness hold;
        // wake at least every second as a safety net.
        let deadline = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = app.wake.notified() => {}
            _ = app.faults.wait_for_release() => {}
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub(crate) async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::debug!(addr = %app.server_address, "embedded api: serving");
    let controllers = tokio::spawn(run_controllers(app.clone()));
    let result = axum::serve(listener, handlers::router(app))
        .with_graceful_shutdown(shutdown)
        .await;
    controllers.abort();
    tracing::debug!("embedded api: stopped");
    result
}
