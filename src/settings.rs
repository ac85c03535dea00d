//! The worker's settings as the library sees them (the CLI in `config` builds
//! them from flags and environment variables; tests build them directly).

use std::sync::Arc;
use std::time::Duration;

use crate::bus::TopologySettings;
use crate::error::Error;
use crate::plans::PlanCatalog;
use crate::release::Chart;
use crate::saga::EngineSettings;

/// The sample chart shipped in this repository (`k8s/charts/tenant-app`).
pub const SAMPLE_CHART_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/k8s/charts/tenant-app");

/// How to reach NATS.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    pub url: String,
    /// Client name shown in the server's connection list.
    pub name: String,
}

impl NatsSettings {
    /// Connects, retrying until the server answers (a worker that starts before
    /// NATS should wait for it, not crash-loop).
    ///
    /// # Errors
    /// [`Error::Nats`] when the URL is unusable.
    pub async fn connect(&self) -> Result<async_nats::Client, Error> {
        async_nats::ConnectOptions::new()
            .name(&self.name)
            .retry_on_initial_connect()
            .connect(&self.url)
            .await
            .map_err(|e| Error::nats("connect", e))
    }
}

/// Everything `worker::run` needs besides the Kubernetes client.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub nats: NatsSettings,
    pub plans: PlanCatalog,
    /// The chart installed as every tenant's release.
    pub chart: Arc<Chart>,
    /// Namespace of tenant `t` is `<namespace_prefix><t>`.
    pub namespace_prefix: String,
    pub engine: EngineSettings,
    pub topology: TopologySettings,
    /// Sagas run at once by this replica.
    pub concurrency: usize,
    /// How long in-flight sagas may run after a shutdown signal.
    pub shutdown_grace: Duration,
    /// How often this replica checks every tenant for drift and repairs it
    /// (`None`: never).
    pub reconcile_interval: Option<Duration>,
}

impl WorkerSettings {
    /// Settings with the shipped plans and defaults, for tests and `dev`.
    pub fn for_tests(nats_url: &str) -> Self {
        Self {
            nats: NatsSettings {
                url: nats_url.to_owned(),
                name: "tenant-worker".into(),
            },
            plans: PlanCatalog::load(None).expect("shipped plans are valid"),
            chart: Arc::new(
                Chart::load(std::path::Path::new(SAMPLE_CHART_DIR))
                    .expect("the sample chart loads"),
            ),
            namespace_prefix: "tenant-".into(),
            engine: EngineSettings::default(),
            topology: TopologySettings::default(),
            concurrency: 32,
            shutdown_grace: Duration::from_secs(25),
            reconcile_interval: None,
        }
    }

    /// `max_deliver` as an unsigned count.
    pub fn max_deliver(&self) -> u64 {
        u64::try_from(self.topology.max_deliver).unwrap_or(1)
    }
}
