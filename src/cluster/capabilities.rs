//! The cluster's capabilities, read as `helm install` reads them (Helm v4's
//! `getCapabilities` and `GetVersionSet`, pkg/action/action.go), so that a
//! chart renders for the cluster it goes to: `.Capabilities.KubeVersion` from
//! `GET /version`, and `.Capabilities.APIVersions` from discovery: every group
//! version served (`v1` for the core group, `apps/v1`, ...) and a
//! `group/version/Kind` entry for each kind listed in each, subresources'
//! included (`v1/Pod`, `v1/Eviction` for `pods/eviction`, `apps/v1/Deployment`).
//!
//! One reading serves every saga of the worker for [`CAPABILITIES_TTL`]; the
//! first saga after that reads again (the others wait for its reading), so a
//! CRD installed or an API turned on is seen within a minute, for about one
//! discovery round (a few dozen GETs) per minute and replica.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{Cluster, ClusterError, describe};
use helm::{Capabilities, KubeVersion};

/// How long one reading of the cluster's capabilities is used. Helm reads
/// them anew for every install; the worker installs far more often, and a
/// minute is how long a newly installed CRD or API may go unseen.
pub const CAPABILITIES_TTL: Duration = Duration::from_secs(60);

/// Group versions whose resources are read at once.
const CONCURRENT_READS: usize = 8;

/// A reading and when it was made.
type Reading = (Instant, Arc<Capabilities>);

/// The last reading, shared by the clones of a [`Cluster`]; the lock is held
/// while reading, so that concurrent sagas make one reading between them.
#[derive(Clone, Default)]
pub(super) struct CapabilitiesCache(Arc<Mutex<Option<Reading>>>);

impl Cluster {
    /// The cluster's capabilities, as read at most [`CAPABILITIES_TTL`] ago.
    ///
    /// # Guarantees
    /// Never built-in defaults: either what the cluster said, or an error. A
    /// group version whose own resource list cannot be read (an aggregated
    /// API whose backend is down: Helm's "orphaned API service") is still
    /// listed, without its kinds, and logged as a warning, as Helm does; such
    /// a reading is used once and not kept.
    ///
    /// # Errors
    /// [`ClusterError::Discovery`] (transient: the saga retries) when
    /// `/version`, `/api` or `/apis` cannot be read after the in-process
    /// retries.
    pub async fn capabilities(&self) -> Result<Arc<Capabilities>, ClusterError> {
        let mut cached = self.capabilities.0.lock().await;
        if let Some((read_at, caps)) = cached.as_ref()
            && read_at.elapsed() < CAPABILITIES_TTL
        {
            return Ok(caps.clone());
        }
        let (caps, complete) = self.read_capabilities().await?;
        let caps = Arc::new(caps);
        *cached = complete.then(|| (Instant::now(), caps.clone()));
        Ok(caps)
    }

    /// Reads the version and discovery; `true` with them when every group
    /// version's resources could be read.
    async fn read_capabilities(&self) -> Result<(Capabilities, bool), ClusterError> {
        let failed = |what: &'static str| move |source| ClusterError::Discovery { what, source };
        let info = self
            .request(|| self.client.apiserver_version())
            .await
            .map_err(failed("GET /version"))?;
        let core = self
            .request(|| self.client.list_core_api_versions())
            .await
            .map_err(failed("GET /api"))?;
        let groups = self
            .request(|| self.client.list_api_groups())
            .await
            .map_err(failed("GET /apis"))?;
        let group_versions: Vec<(bool, String)> = core
            .versions
            .into_iter()
            .map(|v| (true, v))
            .chain(
                groups
                    .groups
                    .into_iter()
                    .flat_map(|g| g.versions)
                    .map(|v| (false, v.group_version)),
            )
            .collect();
        let mut api_versions: BTreeSet<String> =
            group_versions.iter().map(|(_, gv)| gv.clone()).collect();
        // Owned futures: the worker's tasks must be `Send` for any lifetime.
        let lists: Vec<_> = futures::stream::iter(group_versions)
            .map(|(core, gv)| {
                let cluster = self.clone();
                async move {
                    let list = if core {
                        cluster
                            .request(|| cluster.client.list_core_api_resources(&gv))
                            .await
                    } else {
                        cluster
                            .request(|| cluster.client.list_api_group_resources(&gv))
                            .await
                    };
                    (gv, list)
                }
            })
            .buffer_unordered(CONCURRENT_READS)
            .collect()
            .await;
        let mut complete = true;
        for (gv, list) in lists {
            match list {
                Ok(list) => {
                    api_versions.extend(list.resources.iter().map(|r| format!("{gv}/{}", r.kind)));
                }
                Err(e) => {
                    complete = false;
                    tracing::warn!(
                        group_version = %gv,
                        error = %describe(&e),
                        "the cluster lists an API it does not serve; its kinds are left out of .Capabilities.APIVersions"
                    );
                }
            }
        }
        let kube_version = KubeVersion::reported(&info.git_version, &info.major, &info.minor);
        tracing::debug!(
            kube_version = kube_version.version(),
            api_versions = api_versions.len(),
            "read the cluster's capabilities"
        );
        let caps = Capabilities {
            kube_version,
            api_versions: api_versions.into_iter().collect(),
            ..Capabilities::default()
        };
        Ok((caps, complete))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use kube_double::{EmbeddedApi, EmbeddedApiConfig};

    async fn embedded() -> (EmbeddedApi, Cluster) {
        let api = EmbeddedApi::start("127.0.0.1:0".parse().unwrap(), EmbeddedApiConfig::default())
            .await
            .unwrap();
        let cluster = Cluster::new(api.client(), "tenant-", Default::default());
        (api, cluster)
    }

    #[tokio::test]
    async fn reads_the_version_and_every_group_version_and_kind() {
        let (_api, cluster) = embedded().await;
        let caps = cluster.capabilities().await.unwrap();
        let kube = &caps.kube_version;
        assert_eq!(
            (kube.version(), kube.major(), kube.minor()),
            ("v1.33.0-embedded", "1", "33")
        );
        for entry in [
            "v1",
            "v1/Pod",
            "v1/Namespace",
            "apps/v1",
            "apps/v1/Deployment",
            "policy/v1",
            "policy/v1/PodDisruptionBudget",
            "autoscaling/v2/HorizontalPodAutoscaler",
            "networking.k8s.io/v1/Ingress",
        ] {
            assert!(
                caps.api_versions.iter().any(|a| a == entry),
                "{entry} in {:?}",
                caps.api_versions
            );
        }
        // What it does not serve is not there (no defaults mixed in).
        for absent in [
            "policy/v1beta1",
            "autoscaling/v2beta2",
            "monitoring.coreos.com/v1",
        ] {
            assert!(!caps.api_versions.iter().any(|a| a == absent), "{absent}");
        }
    }

    #[tokio::test]
    async fn one_reading_serves_until_it_is_stale() {
        let (api, cluster) = embedded().await;
        let first = cluster.capabilities().await.unwrap();
        api.requests().start();
        let again = cluster.clone().capabilities().await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the clone shares the reading");
        assert!(
            api.requests().snapshot().is_empty(),
            "no request while fresh"
        );

        // Stale: read again.
        if let Some((read_at, _)) = cluster.capabilities.0.lock().await.as_mut() {
            *read_at = read_at.checked_sub(CAPABILITIES_TTL).unwrap();
        }
        let fresh = cluster.capabilities().await.unwrap();
        assert!(!Arc::ptr_eq(&first, &fresh));
        assert!(
            api.requests()
                .snapshot()
                .iter()
                .any(|r| r.path == "/version"),
            "read again"
        );
    }

    /// A server that serves discovery only: the core group with `Pod`, and
    /// `metrics.k8s.io/v1beta1` listed but unreadable (an aggregated API
    /// whose backend is down); `/apis` fails while `apis_down` is set.
    async fn discovery_only(apis_down: Arc<AtomicBool>) -> Cluster {
        use axum::Json;
        use axum::http::StatusCode;
        use axum::routing::get;
        use serde_json::json;
        let app = axum::Router::new()
            .route(
                "/version",
                get(|| async {
                    Json(json!({
                        "major": "1", "minor": "20+", "gitVersion": "v1.20.2-gke.100",
                        "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
                        "goVersion": "go1.15", "compiler": "gc", "platform": "linux/amd64",
                    }))
                }),
            )
            .route("/api", get(|| async { Json(json!({"versions": ["v1"]})) }))
            .route(
                "/api/v1",
                get(|| async {
                    Json(json!({"groupVersion": "v1", "resources": [
                        {"name": "pods", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
                        {"name": "pods/eviction", "namespaced": true, "kind": "Eviction", "verbs": ["create"]},
                    ]}))
                }),
            )
            .route(
                "/apis",
                get(move || {
                    let down = apis_down.load(Ordering::SeqCst);
                    async move {
                        if down {
                            return Err(StatusCode::SERVICE_UNAVAILABLE);
                        }
                        let gv = json!({"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"});
                        Ok(Json(json!({"groups": [
                            {"name": "metrics.k8s.io", "versions": [gv], "preferredVersion": gv},
                        ]})))
                    }
                }),
            )
            .route(
                "/apis/metrics.k8s.io/v1beta1",
                get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = kube::Config::new(url.parse().unwrap());
        Cluster::new(
            super::super::client_from(config).unwrap(),
            "tenant-",
            Default::default(),
        )
    }

    #[tokio::test]
    async fn an_unreadable_group_is_listed_without_its_kinds_and_not_kept() {
        let cluster = discovery_only(Arc::default()).await;
        let caps = cluster.capabilities().await.unwrap();
        let kube = &caps.kube_version;
        assert_eq!(
            (kube.version(), kube.major(), kube.minor()),
            ("v1.20.2-gke.100", "1", "20+"),
            "as the server reports them"
        );
        assert_eq!(
            caps.api_versions,
            ["metrics.k8s.io/v1beta1", "v1", "v1/Eviction", "v1/Pod"]
        );
        assert!(
            cluster.capabilities.0.lock().await.is_none(),
            "an incomplete reading is not kept"
        );
    }

    #[tokio::test]
    async fn an_unreadable_discovery_is_a_transient_error_never_defaults() {
        let apis_down = Arc::new(AtomicBool::new(true));
        let cluster = discovery_only(apis_down.clone()).await;
        let e = cluster.capabilities().await.unwrap_err();
        assert!(
            matches!(
                e,
                ClusterError::Discovery {
                    what: "GET /apis",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.is_transient());
        assert!(e.to_string().contains("503"), "{e}");
        apis_down.store(false, Ordering::SeqCst);
        assert!(cluster.capabilities().await.is_ok(), "read once it answers");
    }
}
