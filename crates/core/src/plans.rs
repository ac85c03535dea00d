//! The plan catalogue: what each plan gives a tenant (quota, container limits,
//! default application version), loaded from a YAML file (`k8s/plans.yaml`).
//!
//! Loading validates everything a typo could break (unknown fields, plan names,
//! resource names, quantities), so a bad file stops the worker at start with a
//! message that names the plan and the field, instead of failing tenants later.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::names::{is_dns_label, is_label_value};

/// The plans shipped with the worker (`k8s/plans.yaml`), used when no file is given.
pub const DEFAULT_PLANS_YAML: &str = include_str!("../../../k8s/plans.yaml");

/// A plan file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file could not be read.
    #[error("cannot read plan file {path}: {source}")]
    Read {
        /// The file's path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML of the plan-file shape, or a file-wide
    /// setting is wrong (no plans, a bad `default_app_version` or `app_version_value`).
    #[error("plan file {path} is not valid: {message}")]
    Parse {
        /// The file's path (`<built-in k8s/plans.yaml>` for the shipped plans).
        path: String,
        /// What is wrong, with the YAML parser's location when it has one.
        message: String,
    },
    /// One plan is wrong.
    #[error("plan file {path}: plan {plan:?}: {message}")]
    Invalid {
        /// The file's path (`<built-in k8s/plans.yaml>` for the shipped plans).
        path: String,
        /// The plan's name, as written in the file.
        plan: String,
        /// The field and what is wrong with it, e.g. `quota.limits.cpu: ...`.
        message: String,
    },
}

/// Container resource amounts of a LimitRange entry (`cpu`, `memory`, ...).
pub type Amounts = BTreeMap<String, String>;

/// Per-container defaults and ceilings, applied as a `LimitRange`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerLimits {
    /// Limits given to a container that sets none.
    pub default: Amounts,
    /// Requests given to a container that sets none.
    pub default_request: Amounts,
    /// The most one container may ask for.
    pub max: Amounts,
}

/// One plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The plan name, as events spell it.
    #[serde(skip_deserializing)]
    pub name: String,
    /// Human-readable description, for `--help`-like listings.
    #[serde(default)]
    pub description: String,
    /// `ResourceQuota.spec.hard` of the tenant's namespace; also what billing meters.
    pub quota: BTreeMap<String, String>,
    /// `LimitRange` of the tenant's namespace.
    pub container_limits: ContainerLimits,
    /// Chart values of the plan: above the chart's `values.yaml`, below an
    /// event's `values`.
    #[serde(default = "empty_mapping")]
    pub values: serde_json::Value,
    /// The value paths (dotted, e.g. `ingress.enabled`) an event's `values` may
    /// set, each with everything under it. Empty: events may override nothing.
    #[serde(default)]
    pub overridable_values: Vec<String>,
    /// How long the tenant's release may take to become ready (Deployments and
    /// StatefulSets available, Jobs complete) before the saga fails.
    #[serde(default = "default_readiness_timeout_secs")]
    pub readiness_timeout_secs: u64,
}

fn empty_mapping() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

fn default_readiness_timeout_secs() -> u64 {
    300
}

impl Plan {
    /// [`Plan::readiness_timeout_secs`] as a duration.
    pub fn readiness_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.readiness_timeout_secs)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    /// Application version installed when a request names none.
    default_app_version: String,
    /// The chart value path that carries the tenant's application version.
    #[serde(default = "default_app_version_value")]
    app_version_value: String,
    plans: BTreeMap<String, Plan>,
}

fn default_app_version_value() -> String {
    "image.tag".into()
}

/// All plans, by name.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanCatalog {
    default_app_version: String,
    app_version_value: String,
    plans: BTreeMap<String, Plan>,
}

/// Resource names a `ResourceQuota` may limit that the worker accepts in a plan.
const QUOTA_KEYS: &[&str] = &[
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.ephemeral-storage",
    "cpu",
    "memory",
    "pods",
    "services",
    "services.loadbalancers",
    "services.nodeports",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "replicationcontrollers",
    "resourcequotas",
    "count/deployments.apps",
    "count/statefulsets.apps",
    "count/jobs.batch",
    "count/cronjobs.batch",
    "count/ingresses.networking.k8s.io",
];

/// Resource names a plan's container limits may set.
const CONTAINER_KEYS: &[&str] = &["cpu", "memory", "ephemeral-storage"];

impl PlanCatalog {
    /// Loads the catalogue from `path`, or the shipped plans when `path` is `None`.
    ///
    /// # Errors
    /// [`PlanError`] naming the file, the plan and the field that is wrong.
    pub fn load(path: Option<&Path>) -> Result<Self, PlanError> {
        match path {
            None => Self::parse(DEFAULT_PLANS_YAML, "<built-in k8s/plans.yaml>"),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| PlanError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Self::parse(&text, &p.display().to_string())
            }
        }
    }

    /// Parses and validates a plan file's text; `origin` names it in errors.
    ///
    /// # Errors
    /// See [`PlanCatalog::load`].
    pub fn parse(text: &str, origin: &str) -> Result<Self, PlanError> {
        let file: PlanFile = serde_yaml_ng::from_str(text).map_err(|e| PlanError::Parse {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        let invalid = |plan: &str, message: String| PlanError::Invalid {
            path: origin.to_owned(),
            plan: plan.to_owned(),
            message,
        };
        if file.plans.is_empty() {
            return Err(PlanError::Parse {
                path: origin.to_owned(),
                message: "`plans` is empty: at least one plan is needed".into(),
            });
        }
        if !is_label_value(&file.default_app_version) {
            return Err(PlanError::Parse {
                path: origin.to_owned(),
                message: format!(
                    "default_app_version {:?} is not a valid label value",
                    file.default_app_version
                ),
            });
        }
        let mut plans = BTreeMap::new();
        for (name, mut plan) in file.plans {
            if !is_dns_label(&name, 63) {
                return Err(invalid(
                    &name,
                    "plan names must be DNS-1123 labels (lower-case letters, digits, '-')".into(),
                ));
            }
            if plan.quota.is_empty() {
                return Err(invalid(&name, "`quota` is empty".into()));
            }
            for (key, value) in &plan.quota {
                if !QUOTA_KEYS.contains(&key.as_str()) {
                    return Err(invalid(
                        &name,
                        format!(
                            "quota.{key}: not a resource name the worker knows ({QUOTA_KEYS:?})"
                        ),
                    ));
                }
                check_quantity(value).map_err(|m| invalid(&name, format!("quota.{key}: {m}")))?;
            }
            let limits = &plan.container_limits;
            for (field, amounts) in [
                ("default", &limits.default),
                ("default_request", &limits.default_request),
                ("max", &limits.max),
            ] {
                for (key, value) in amounts {
                    if !CONTAINER_KEYS.contains(&key.as_str()) {
                        return Err(invalid(
                            &name,
                            format!(
                                "container_limits.{field}.{key}: not one of {CONTAINER_KEYS:?}"
                            ),
                        ));
                    }
                    check_quantity(value).map_err(|m| {
                        invalid(&name, format!("container_limits.{field}.{key}: {m}"))
                    })?;
                }
            }
            if !plan.values.is_object() {
                return Err(invalid(
                    &name,
                    "`values` must be a mapping of chart values".into(),
                ));
            }
            for path in &plan.overridable_values {
                if !is_value_path(path) {
                    return Err(invalid(
                        &name,
                        format!(
                            "overridable_values: {path:?} is not a dotted value path like `ingress.enabled`"
                        ),
                    ));
                }
            }
            if !(1..=3600).contains(&plan.readiness_timeout_secs) {
                return Err(invalid(
                    &name,
                    "readiness_timeout_secs must be between 1 and 3600".into(),
                ));
            }
            plan.name.clone_from(&name);
            plans.insert(name, plan);
        }
        if !is_value_path(&file.app_version_value) {
            return Err(PlanError::Parse {
                path: origin.to_owned(),
                message: format!(
                    "app_version_value {:?} is not a dotted value path like `image.tag`",
                    file.app_version_value
                ),
            });
        }
        Ok(Self {
            default_app_version: file.default_app_version,
            app_version_value: file.app_version_value,
            plans,
        })
    }

    /// The plan called `name`, if the catalogue has it.
    pub fn get(&self, name: &str) -> Option<&Plan> {
        self.plans.get(name)
    }

    /// Plan names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.plans.keys().map(String::as_str)
    }

    /// The application version installed when an event names none.
    pub fn default_app_version(&self) -> &str {
        &self.default_app_version
    }

    /// The chart value path set to the tenant's application version (`image.tag`).
    pub fn app_version_value(&self) -> &str {
        &self.app_version_value
    }
}

/// `a.b.c`: non-empty segments of letters, digits, `_` and `-`.
fn is_value_path(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        })
}

/// Checks a Kubernetes quantity (`500m`, `1Gi`, `2`, `1.5`, `1e3`) the way the
/// API server parses it, so a typo fails at load time rather than at apply.
fn check_quantity(s: &str) -> Result<(), String> {
    const SUFFIXES: &[&str] = &[
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E", "",
    ];
    let bad = || format!("{s:?} is not a Kubernetes quantity (e.g. 500m, 2, 1Gi)");
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let number = number.strip_prefix('+').unwrap_or(number);
    let valid_number = !number.is_empty()
        && !number.starts_with('-')
        && number.chars().filter(|c| *c == '.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit())
        && number.chars().all(|c| c.is_ascii_digit() || c == '.');
    let valid_suffix = SUFFIXES.contains(&suffix)
        || suffix.strip_prefix(['e', 'E']).is_some_and(|exp| {
            let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit())
        });
    if valid_number && valid_suffix {
        Ok(())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_plans_load() {
        let catalog = PlanCatalog::load(None).expect("shipped plans are valid");
        for name in ["free", "standard", "premium"] {
            let plan = catalog.get(name).expect(name);
            assert_eq!(plan.name, name);
            assert!(plan.quota.contains_key("limits.cpu"));
        }
    }

    #[test]
    fn quantities() {
        for ok in ["500m", "2", "1Gi", "1.5", "1e3", "0", "128Mi", "+1"] {
            assert!(check_quantity(ok).is_ok(), "{ok}");
        }
        for bad in ["", "abc", "1 Gi", "1GB", "-1", "1.2.3", "Gi", "1e"] {
            assert!(check_quantity(bad).is_err(), "{bad}");
        }
    }

    fn with_free(body: &str) -> String {
        format!("default_app_version: \"1.0.0\"\nplans:\n  free:\n{body}")
    }

    #[test]
    fn errors_name_the_plan_and_field() {
        let text = with_free(
            "    quota: {limits.cpu: \"lots\"}\n    container_limits: {default: {}, default_request: {}, max: {}}\n",
        );
        let err = PlanCatalog::parse(&text, "p.yaml").unwrap_err().to_string();
        assert!(
            err.contains("\"free\"") && err.contains("quota.limits.cpu"),
            "{err}"
        );

        let text = with_free(
            "    quota: {limits.cpu: \"1\"}\n    container_limits: {default: {gpu: \"1\"}, default_request: {}, max: {}}\n",
        );
        let err = PlanCatalog::parse(&text, "p.yaml").unwrap_err().to_string();
        assert!(err.contains("container_limits.default.gpu"), "{err}");

        let text = with_free(
            "    quota: {limits.cpu: \"1\"}\n    quotas: {}\n    container_limits: {default: {}, default_request: {}, max: {}}\n",
        );
        let err = PlanCatalog::parse(&text, "p.yaml").unwrap_err().to_string();
        assert!(err.contains("quotas"), "{err}");
    }

    #[test]
    fn release_settings_are_checked() {
        let base = "    quota: {pods: \"1\"}\n    container_limits: {default: {}, default_request: {}, max: {}}\n";
        for (extra, expected) in [
            ("    values: [1, 2]\n", "`values` must be a mapping"),
            (
                "    overridable_values: [\"ingress..enabled\"]\n",
                "overridable_values",
            ),
            ("    readiness_timeout_secs: 0\n", "readiness_timeout_secs"),
        ] {
            let text = with_free(&format!("{base}{extra}"));
            let err = PlanCatalog::parse(&text, "p.yaml").unwrap_err().to_string();
            assert!(err.contains("\"free\"") && err.contains(expected), "{err}");
        }
        let shipped = PlanCatalog::load(None).unwrap();
        assert_eq!(shipped.app_version_value(), "image.tag");
        let premium = shipped.get("premium").unwrap();
        assert!(premium.overridable_values.contains(&"config".to_owned()));
        assert_eq!(premium.values["autoscaling"]["enabled"], true);
    }

    #[test]
    fn plan_names_must_be_labels() {
        let text = "default_app_version: \"1.0.0\"\nplans:\n  Pro_Plan:\n    quota: {pods: \"1\"}\n    container_limits: {default: {}, default_request: {}, max: {}}\n";
        let err = PlanCatalog::parse(text, "p.yaml").unwrap_err().to_string();
        assert!(err.contains("DNS-1123"), "{err}");
    }
}
