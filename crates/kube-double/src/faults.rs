//! Fault injection, simulated-readiness holds and request counting.
//!
//! A [`FaultInjector`] is a cheap, cloneable handle shared by the server and
//! the test that drives it; it can also be driven over HTTP
//! (`POST /_embedded/faults` with a [`FaultSpec`] body, `DELETE` to clear,
//! `GET /_embedded/faults` and `GET /_embedded/requests` to inspect), so that a
//! separately started `embedded-api` process can be steered by tests.
//!
//! Faults apply to resource requests only; discovery (`/version`, `/api`,
//! `/apis`, ...) and `/_embedded/*` are never faulted nor counted, so clients
//! can always discover and tests can always reset.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::status::ApiError;

/// Serde for `Duration` as whole milliseconds (JSON bodies of `/_embedded/faults`).
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// What a randomly faulted request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RandomFaultKind {
    /// 500 InternalError.
    ServerError,
    /// 429 TooManyRequests with `Retry-After: 1`. Note that `kube`'s default
    /// client retries 429 (and 503/504) itself, honouring `Retry-After`.
    TooManyRequests,
    /// Stall for [`RandomFaults::stall`], then 504 Timeout.
    Timeout,
}

fn all_kinds() -> Vec<RandomFaultKind> {
    vec![
        RandomFaultKind::ServerError,
        RandomFaultKind::TooManyRequests,
        RandomFaultKind::Timeout,
    ]
}

fn default_stall() -> Duration {
    Duration::from_secs(2)
}

/// Random failures of a share of resource requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomFaults {
    /// Share of requests that fail, in `[0, 1]` (clamped).
    pub rate: f64,
    /// Seed of the RNG, for reproducible runs; `None` picks one at random.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Which failures to pick from, uniformly; defaults to all three.
    #[serde(default = "all_kinds")]
    pub kinds: Vec<RandomFaultKind>,
    /// How long a `Timeout` fault stalls before answering 504 (JSON: `stall_ms`, default 2000).
    #[serde(default = "default_stall", with = "millis", rename = "stall_ms")]
    pub stall: Duration,
}

impl RandomFaults {
    /// All three kinds at `rate`, random seed, 2 s stall.
    pub fn new(rate: f64) -> Self {
        RandomFaults {
            rate,
            seed: None,
            kinds: all_kinds(),
            stall: default_stall(),
        }
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    pub fn kinds(mut self, kinds: &[RandomFaultKind]) -> Self {
        self.kinds = kinds.to_vec();
        self
    }

    pub fn stall(mut self, stall: Duration) -> Self {
        self.stall = stall;
        self
    }
}

/// Fails matching requests with `status` (and a proper `Status` body).
/// Unset filters match everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// HTTP method (`GET`, `PATCH`, ...), case-insensitive.
    #[serde(default)]
    pub method: Option<String>,
    /// Resource plural, e.g. `networkpolicies`.
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    /// Object name (requests on collections have none and do not match).
    #[serde(default)]
    pub name: Option<String>,
    /// HTTP status to answer; the `reason` is the one a real server pairs with it.
    pub status: u16,
    /// How many requests to fail; `None` = forever.
    #[serde(default)]
    pub times: Option<u32>,
    /// Status message; a generic one by default.
    #[serde(default)]
    pub message: Option<String>,
}

impl FaultRule {
    /// A rule failing every resource request with `status`, forever.
    pub fn new(status: u16) -> Self {
        FaultRule {
            method: None,
            resource: None,
            namespace: None,
            name: None,
            status,
            times: None,
            message: None,
        }
    }

    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }

    pub fn resource(mut self, plural: &str) -> Self {
        self.resource = Some(plural.to_string());
        self
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_string());
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    pub fn times(mut self, times: u32) -> Self {
        self.times = Some(times);
        self
    }

    pub fn message(mut self, message: &str) -> Self {
        self.message = Some(message.to_string());
        self
    }

    fn matches(
        &self,
        method: &str,
        plural: &str,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.resource.as_deref().is_none_or(|r| r == plural)
            && self
                .namespace
                .as_deref()
                .is_none_or(|n| Some(n) == namespace)
            && self.name.as_deref().is_none_or(|n| Some(n) == name)
    }
}

/// An object whose simulated readiness is held back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    pub namespace: String,
    /// `Deployment`, `StatefulSet` or `Job` (case-insensitive).
    pub kind: String,
    pub name: String,
}

impl ObjectRef {
    fn new(namespace: &str, kind: &str, name: &str) -> Self {
        ObjectRef {
            namespace: namespace.to_string(),
            kind: kind.to_ascii_lowercase(),
            name: name.to_string(),
        }
    }
}

/// Body of `POST /_embedded/faults`; every part is optional and adds to (or,
/// for `random` and `latency_ms`, replaces) the current settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    #[serde(default)]
    pub random: Option<RandomFaults>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    #[serde(default)]
    pub rules: Vec<FaultRule>,
    #[serde(default)]
    pub keep_unready: Vec<ObjectRef>,
    #[serde(default)]
    pub release_unready: Vec<ObjectRef>,
}

/// What the server must do with one request before serving it.
#[derive(Debug)]
pub(crate) enum FaultAction {
    Fail(ApiError),
    /// Sleep, then fail (the timeout-like stall).
    StallThenFail(Duration, ApiError),
}

#[derive(Debug)]
struct FaultState {
    random: Option<RandomFaults>,
    rng: fastrand::Rng,
    latency: Duration,
    rules: Vec<FaultRule>,
    unready: BTreeSet<ObjectRef>,
    counts: BTreeMap<(String, String), u64>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<FaultState>,
    /// Wakes the simulated controllers when a readiness hold is released.
    wake: Notify,
}

/// Runtime fault injection, readiness holds and request counters.
///
/// Cheap to clone; all clones share state. Thread-safe (`Send + Sync`).
#[derive(Debug, Clone)]
pub struct FaultInjector {
    inner: Arc<Inner>,
}

impl Default for FaultInjector {
    fn default() -> Self {
        FaultInjector {
            inner: Arc::new(Inner {
                state: Mutex::new(FaultState {
                    random: None,
                    rng: fastrand::Rng::new(),
                    latency: Duration::ZERO,
                    rules: Vec::new(),
                    unready: BTreeSet::new(),
                    counts: BTreeMap::new(),
                }),
                wake: Notify::new(),
            }),
        }
    }
}

impl FaultInjector {
    fn state(&self) -> MutexGuard<'_, FaultState> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails a share of requests at random (replaces earlier random settings
    /// and reseeds the RNG).
    pub fn set_random(&self, faults: RandomFaults) {
        let mut s = self.state();
        s.rng = match faults.seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        s.random = Some(faults);
    }

    /// Stops random faults.
    pub fn clear_random(&self) {
        self.state().random = None;
    }

    /// Adds `latency` before every resource request is served.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// Adds a targeted rule; rules are checked in the order added, before random faults.
    pub fn add_rule(&self, rule: FaultRule) {
        self.state().rules.push(rule);
    }

    /// Removes all faults, latency and readiness holds (request counts stay).
    pub fn clear(&self) {
        {
            let mut s = self.state();
            s.random = None;
            s.latency = Duration::ZERO;
            s.rules.clear();
            s.unready.clear();
        }
        self.inner.wake.notify_one();
    }

    /// Keeps a Deployment/StatefulSet/Job from becoming ready until released.
    pub fn keep_unready(&self, namespace: &str, kind: &str, name: &str) {
        self.state()
            .unready
            .insert(ObjectRef::new(namespace, kind, name));
    }

    /// Releases a hold; the object becomes ready once its `ready_delay` has passed.
    pub fn release_unready(&self, namespace: &str, kind: &str, name: &str) {
        self.state()
            .unready
            .remove(&ObjectRef::new(namespace, kind, name));
        self.inner.wake.notify_one();
    }

    pub fn is_kept_unready(&self, namespace: &str, kind: &str, name: &str) -> bool {
        self.state()
            .unready
            .contains(&ObjectRef::new(namespace, kind, name))
    }

    /// Resource requests received for `(method, plural)`, e.g. `("PATCH",
    /// "networkpolicies")`, including those failed by injected faults.
    pub fn request_count(&self, method: &str, plural: &str) -> u64 {
        self.state()
            .counts
            .get(&(method.to_ascii_uppercase(), plural.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// All counters, keyed by `(METHOD, plural)`.
    pub fn request_counts(&self) -> BTreeMap<(String, String), u64> {
        self.state().counts.clone()
    }

    pub fn reset_request_counts(&self) {
        self.state().counts.clear();
    }

    /// Applies a [`FaultSpec`] (the HTTP form).
    pub fn apply_spec(&self, spec: FaultSpec) {
        if let Some(r) = spec.random {
            self.set_random(r);
        }
        if let Some(ms) = spec.latency_ms {
            self.set_latency(Duration::from_millis(ms));
        }
        for rule in spec.rules {
            self.add_rule(rule);
        }
        for o in spec.keep_unready {
            self.keep_unready(&o.namespace, &o.kind, &o.name);
        }
        for o in spec.release_unready {
            self.release_unready(&o.namespace, &o.kind, &o.name);
        }
    }

    /// The current settings, in the HTTP form.
    pub fn snapshot(&self) -> FaultSpec {
        let s = self.state();
        FaultSpec {
            random: s.random.clone(),
            latency_ms: Some(u64::try_from(s.latency.as_millis()).unwrap_or(u64::MAX)),
            rules: s.rules.clone(),
            keep_unready: s.unready.iter().cloned().collect(),
            release_unready: Vec::new(),
        }
    }

    pub(crate) async fn wait_for_release(&self) {
        self.inner.wake.notified().await;
    }

    /// Counts a resource request and decides its fate: the latency to add and
    /// the fault, if any.
    pub(crate) fn on_request(
        &self,
        method: &str,
        plural: &str,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> (Duration, Option<FaultAction>) {
        let mut s = self.state();
        *s.counts
            .entry((method.to_ascii_uppercase(), plural.to_string()))
            .or_insert(0) += 1;
        let latency = s.latency;
        if let Some(i) = s
            .rules
            .iter()
            .position(|r| r.times != Some(0) && r.matches(method, plural, namespace, name))
        {
            let rule = &mut s.rules[i];
            let err = ApiError::from_code(rule.status, rule.message.clone());
            if let Some(t) = rule.times.as_mut() {
                *t -= 1;
                if *t == 0 {
                    s.rules.remove(i);
                }
            }
            return (latency, Some(FaultAction::Fail(err)));
        }
        let Some(random) = s.random.clone() else {
            return (latency, None);
        };
        if random.kinds.is_empty() || s.rng.f64() >= random.rate.clamp(0.0, 1.0) {
            return (latency, None);
        }
        let kind = random.kinds[s.rng.usize(..random.kinds.len())];
        let action = match kind {
            RandomFaultKind::ServerError => FaultAction::Fail(ApiError::from_code(500, None)),
            RandomFaultKind::TooManyRequests => FaultAction::Fail(ApiError::from_code(429, None)),
            RandomFaultKind::Timeout => {
                FaultAction::StallThenFail(random.stall, ApiError::from_code(504, None))
            }
        };
        (latency, Some(action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(a: Option<FaultAction>) -> Option<u16> {
        match a {
            Some(FaultAction::Fail(e)) | Some(FaultAction::StallThenFail(_, e)) => Some(e.code),
            None => None,
        }
    }

    #[test]
    fn rules_fire_n_times_then_stop() {
        let f = FaultInjector::default();
        f.add_rule(
            FaultRule::new(500)
                .method("patch")
                .resource("networkpolicies")
                .times(2),
        );
        let hit = || {
            f.on_request("PATCH", "networkpolicies", Some("ns"), Some("x"))
                .1
        };
        assert_eq!(
            code(
                f.on_request("GET", "networkpolicies", Some("ns"), Some("x"))
                    .1
            ),
            None
        );
        assert_eq!(code(hit()), Some(500));
        assert_eq!(code(hit()), Some(500));
        assert_eq!(code(hit()), None);
        assert_eq!(f.request_count("PATCH", "networkpolicies"), 3);
        assert_eq!(f.request_count("GET", "networkpolicies"), 1);
    }

    #[test]
    fn namespace_and_name_filters() {
        let f = FaultInjector::default();
        f.add_rule(FaultRule::new(409).namespace("a").name("n"));
        assert_eq!(
            code(f.on_request("GET", "pods", Some("b"), Some("n")).1),
            None
        );
        assert_eq!(code(f.on_request("GET", "pods", Some("a"), None).1), None);
        assert_eq!(
            code(f.on_request("GET", "pods", Some("a"), Some("n")).1),
            Some(409)
        );
    }

    #[test]
    fn random_faults_are_seeded() {
        let run = || {
            let f = FaultInjector::default();
            f.set_random(RandomFaults::new(0.5).seed(7));
            (0..50)
                .map(|_| code(f.on_request("GET", "pods", None, None).1))
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert!(a.iter().any(Option::is_some) && a.iter().any(Option::is_none));
        let f = FaultInjector::default();
        f.set_random(RandomFaults::new(1.0).kinds(&[RandomFaultKind::TooManyRequests]));
        assert_eq!(code(f.on_request("GET", "pods", None, None).1), Some(429));
    }

    #[test]
    fn holds_and_clear() {
        let f = FaultInjector::default();
        f.keep_unready("ns", "Deployment", "web");
        assert!(f.is_kept_unready("ns", "deployment", "web"));
        f.release_unready("ns", "Deployment", "web");
        assert!(!f.is_kept_unready("ns", "Deployment", "web"));
        f.keep_unready("ns", "Job", "j");
        f.set_latency(Duration::from_millis(5));
        f.clear();
        assert!(!f.is_kept_unready("ns", "Job", "j"));
        assert_eq!(f.on_request("GET", "pods", None, None).0, Duration::ZERO);
    }

    #[test]
    fn spec_round_trips_as_json() {
        let spec: FaultSpec = serde_json::from_str(
            r#"{"random": {"rate": 0.1, "seed": 3, "stall_ms": 50},
                "rules": [{"method": "PATCH", "resource": "networkpolicies", "status": 500, "times": 2}],
                "latency_ms": 5}"#,
        )
        .unwrap();
        assert_eq!(
            spec.random.as_ref().unwrap().stall,
            Duration::from_millis(50)
        );
        assert_eq!(spec.random.as_ref().unwrap().kinds.len(), 3);
        let f = FaultInjector::default();
        f.apply_spec(spec);
        assert_eq!(f.snapshot().rules.len(), 1);
        assert_eq!(f.snapshot().latency_ms, Some(5));
    }
}
