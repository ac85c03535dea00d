//! The worker's Prometheus metrics, served as OpenMetrics text on `/metrics`
//! (see [`crate::health`]). One registry per process: every engine in the
//! process counts into it.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `tenant_worker_sagas_started` | counter | `intent` |
//! | `tenant_worker_sagas_completed` | counter | `intent`, `outcome` (the completion event type) |
//! | `tenant_worker_sagas_failed` | counter | `intent` |
//! | `tenant_worker_sagas_compensated` | counter | `intent` |
//! | `tenant_worker_saga_errors` | counter | `error` (the kind of error a delivery ended with, e.g. `kube_api`, `nats`, `tenant_busy`, `not_ready`) |
//! | `tenant_worker_step_duration_seconds` | histogram | `step`, `direction` (`apply`, `compensate`) |
//! | `tenant_worker_kube_retries` | counter | |
//! | `tenant_worker_deadlettered` | counter | `reason` |
//! | `tenant_worker_drift_repaired` | counter | |
//! | `tenant_worker_consumer_pending` | gauge | |
//! | `tenant_worker_consumer_ack_pending` | gauge | |
//! | `tenant_worker_sagas_in_flight` | gauge | |
//! | `tenant_worker_leases_held` | gauge | |

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `intent` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IntentLabels {
    pub intent: &'static str,
}

/// `intent` and `outcome` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub intent: &'static str,
    pub outcome: &'static str,
}

/// `step` and `direction` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub step: &'static str,
    pub direction: &'static str,
}

/// `error` label: [`crate::Error::metric_label`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: &'static str,
}

/// `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the worker exports.
pub struct Metrics {
    pub sagas_started: Family<IntentLabels, Counter>,
    pub sagas_completed: Family<OutcomeLabels, Counter>,
    pub sagas_failed: Family<IntentLabels, Counter>,
    pub sagas_compensated: Family<IntentLabels, Counter>,
    pub saga_errors: Family<ErrorLabels, Counter>,
    pub step_duration: HistogramFamily<StepLabels>,
    pub kube_retries: Counter,
    pub deadlettered: Family<ReasonLabels, Counter>,
    pub drift_repaired: Counter,
    pub consumer_pending: Gauge,
    pub consumer_ack_pending: Gauge,
    pub sagas_in_flight: Gauge,
    pub leases_held: Gauge,
    registry: Registry,
}

fn step_histogram() -> Histogram {
    // 5 ms to about 80 s: a quota apply to a release waiting for readiness.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("tenant_worker");
        let m = Self {
            sagas_started: Family::default(),
            sagas_completed: Family::default(),
            sagas_failed: Family::default(),
            sagas_compensated: Family::default(),
            saga_errors: Family::default(),
            step_duration: HistogramFamily::new_with_constructor(step_histogram),
            kube_retries: Counter::default(),
            deadlettered: Family::default(),
            drift_repaired: Counter::default(),
            consumer_pending: Gauge::default(),
            consumer_ack_pending: Gauge::default(),
            sagas_in_flight: Gauge::default(),
            leases_held: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "sagas_started",
            "Sagas started (a new event's saga opened), by intent",
            m.sagas_started.clone(),
        );
        registry.register(
            "sagas_completed",
            "Sagas ended with their completion event published, by intent and outcome",
            m.sagas_completed.clone(),
        );
        registry.register(
            "sagas_failed",
            "Sagas that ended in tenant.failed, by intent",
            m.sagas_failed.clone(),
        );
        registry.register(
            "sagas_compensated",
            "Failed sagas whose done steps were all undone, by intent",
            m.sagas_compensated.clone(),
        );
        registry.register(
            "saga_errors",
            "Deliveries of inbound events that ended with an error, by kind of error \
             (waits for another saga included: tenant_busy, saga_pending)",
            m.saga_errors.clone(),
        );
        registry.register(
            "step_duration_seconds",
            "Duration of one saga step (applying it, or undoing it)",
            m.step_duration.clone(),
        );
        registry.register(
            "kube_retries",
            "Kubernetes requests repeated after a transient failure",
            m.kube_retries.clone(),
        );
        registry.register(
            "deadlettered",
            "Inbound messages copied to TENANT_DEADLETTER, by reason",
            m.deadlettered.clone(),
        );
        registry.register(
            "drift_repaired",
            "Tenants whose drifted objects were repaired (tenant.drift_repaired published)",
            m.drift_repaired.clone(),
        );
        registry.register(
            "consumer_pending",
            "Messages of the tenant-worker consumer not yet delivered",
            m.consumer_pending.clone(),
        );
        registry.register(
            "consumer_ack_pending",
            "Messages of the tenant-worker consumer delivered and not yet acknowledged",
            m.consumer_ack_pending.clone(),
        );
        registry.register(
            "sagas_in_flight",
            "Sagas running in this process now",
            m.sagas_in_flight.clone(),
        );
        registry.register(
            "leases_held",
            "Tenant leases this process holds now",
            m.leases_held.clone(),
        );
        m.zero_known_series();
        Self { registry, ..m }
    }

    /// Creates every series whose labels are known in advance at 0, so that
    /// each family is exported (and `rate()` works) before its first event.
    fn zero_known_series(&self) {
        const INTENTS: [&str; 3] = ["requested", "upgraded", "deleted"];
        const OUTCOMES: [&str; 5] = [
            "provisioned",
            "upgrade_completed",
            "deprovisioned",
            "failed",
            "rejected",
        ];
        const DEADLETTER_REASONS: [&str; 7] = [
            "too_large",
            "malformed_json",
            "unknown_type",
            "schema_violation",
            "inconsistent",
            "max_deliver",
            "unprocessable",
        ];
        for intent in INTENTS {
            let labels = IntentLabels { intent };
            drop(self.sagas_started.get_or_create(&labels));
            drop(self.sagas_failed.get_or_create(&labels));
            drop(self.sagas_compensated.get_or_create(&labels));
            for outcome in OUTCOMES {
                drop(
                    self.sagas_completed
                        .get_or_create(&OutcomeLabels { intent, outcome }),
                );
            }
        }
        for step in tenant_core::steps::Step::ALL {
            for direction in ["apply", "compensate"] {
                drop(self.step_duration.get_or_create(&StepLabels {
                    step: step.as_str(),
                    direction,
                }));
            }
        }
        for reason in DEADLETTER_REASONS {
            drop(self.deadlettered.get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            }));
        }
    }

    /// The registry as OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Counts a delivery that ended with `error` in `saga_errors`.
pub fn count_error(error: &crate::Error) {
    metrics()
        .saga_errors
        .get_or_create(&ErrorLabels {
            error: error.metric_label(),
        })
        .inc();
}

/// Decrements `gauge` when dropped: counts something held for a scope.
pub struct GaugeGuard(&'static Gauge);

impl GaugeGuard {
    /// Increments `gauge` now and decrements it on drop.
    pub fn hold(gauge: &'static Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_exported_with_the_prefix() {
        let m = metrics();
        m.sagas_started
            .get_or_create(&IntentLabels {
                intent: "requested",
            })
            .inc();
        let text = m.encode();
        for family in [
            "tenant_worker_sagas_started",
            "tenant_worker_sagas_completed",
            "tenant_worker_sagas_compensated",
            "tenant_worker_deadlettered",
            "tenant_worker_step_duration_seconds",
            "tenant_worker_consumer_ack_pending",
            "tenant_worker_leases_held",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family}\n{text}"
            );
        }
        assert!(text.contains("tenant_worker_sagas_started_total{intent=\"requested\"}"));
        assert!(text.contains("tenant_worker_sagas_failed_total{intent=\"deleted\"} 0"));
    }

    #[test]
    fn errors_are_counted_by_their_kind() {
        let unreadable = crate::Error::CorruptRecord {
            tenant: crate::contract::TenantId::parse("acme").unwrap(),
            message: "not JSON".into(),
        };
        count_error(&unreadable);
        let text = metrics().encode();
        assert!(
            text.contains("tenant_worker_saga_errors_total{error=\"corrupt_record\"} 1"),
            "{text}"
        );
    }
}
