//! A release's values: Helm's coalescing of the chart's defaults with the
//! plan's values and an event's overrides, the plan's limits on what an
//! event may override, and the chart's JSON Schema.

use serde_json::{Map, Value};

/// Values that cannot be used: where (a JSON pointer like `/image/tag`, `""`
/// for the whole document) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at '{path}': {reason}")]
pub struct ValuesError {
    /// JSON pointer of the offending value (`/image/tag`; `""` for the root).
    pub path: String,
    /// What is wrong there, for people (`got number, want string`).
    pub reason: String,
}

fn object(v: &Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    }
}

/// Helm's merge of several `-f` files: maps merge deeply, anything else
/// (a `null` included) replaces.
fn merge_maps(a: &Map<String, Value>, b: &Map<String, Value>) -> Map<String, Value> {
    let mut out = a.clone();
    for (k, v) in b {
        if let (Value::Object(bv), Some(Value::Object(av))) = (v, out.get(k)) {
            let merged = merge_maps(av, bv);
            out.insert(k.clone(), Value::Object(merged));
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// A chart default as Helm v4 copies it: without the `null` map entries
/// (at any depth of maps; lists are kept as they are).
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), without_nulls(x)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Helm's `CoalesceTables(dst, src)`: `dst` wins; a `null` in `dst` deletes
/// the key `src` has; a `null` default is not copied.
fn coalesce_tables(dst: &mut Map<String, Value>, src: &Map<String, Value>) {
    for (k, sv) in src {
        match dst.get_mut(k) {
            Some(Value::Null) => {
                dst.remove(k);
            }
            None => {
                if !sv.is_null() {
                    dst.insert(k.clone(), without_nulls(sv));
                }
            }
            Some(Value::Object(dv)) => {
                if let Value::Object(sm) = sv {
                    coalesce_tables(dv, sm);
                }
            }
            Some(_) => {}
        }
    }
}

/// The values a release renders with, lowest to highest precedence: the
/// chart's defaults (`values.yaml`), the plan's values, the event's
/// overrides. This is what Helm v4 computes for `helm install -f plan.yaml
/// -f overrides.yaml`: maps merge deeply; lists and scalars replace; a
/// `null` removes a key the chart's defaults have (for a key the chart does
/// not have, Helm keeps the `null`, and so does this); the `null`s of the
/// chart's own defaults are dropped. A layer that is not an object counts as
/// empty (plans and events only carry objects).
pub fn merge_values(chart_defaults: &Value, plan_values: &Value, overrides: &Value) -> Value {
    let mut user = merge_maps(&object(plan_values), &object(overrides));
    // Helm's coalesceValues: the chart's keys into the user's values.
    for (k, dv) in object(chart_defaults) {
        match user.get_mut(&k) {
            Some(Value::Null) => {
                user.remove(&k);
            }
            Some(Value::Object(uv)) => {
                if let Value::Object(dm) = &dv {
                    coalesce_tables(uv, dm);
                }
            }
            Some(_) => {}
            None => {
                if !dv.is_null() {
                    user.insert(k, without_nulls(&dv));
                }
            }
        }
    }
    Value::Object(user)
}

fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Helm's `CoalesceValues`: the user's values `user` (the `-f` layers,
/// merged) over the defaults of `chart` and, under each subchart's name
/// (or alias), the subchart's defaults, recursively; `global` handed down
/// from each chart to its subcharts (the parent's win); a `null` deletes
/// the default it covers. For a chart without subcharts this is
/// [`merge_values`] of `user` over the chart's defaults. Give it the chart
/// [`crate::process_dependencies`] made for `user`.
///
/// # Errors
/// Helm's `type mismatch on <subchart>: ...` when the values for a
/// subchart are not a map, at the subchart's path.
pub fn coalesce_values(chart: &crate::Chart, user: &Value) -> Result<Value, ValuesError> {
    use crate::coalesce;
    let node = crate::dependencies::Node::of(chart);
    coalesce::coalesce_values(&node, &coalesce::table_of(user), false)
        .map(|t| coalesce::table_to_json(&t))
        .map_err(|reason| ValuesError {
            path: String::new(),
            reason,
        })
}

/// A tenant release's values: what it renders with, what Helm records as
/// the user-supplied values (`helm get values`), and the chart as the
/// release installs it.
#[derive(Debug, Clone)]
pub struct ReleaseValues {
    /// Chart defaults < plan layer < tenant layer, coalesced over the
    /// chart and its enabled subcharts.
    pub values: Value,
    /// Plan layer < tenant layer: everything above the chart's defaults.
    pub config: Value,
    /// The chart with the dependencies these values enable (see
    /// [`crate::process_dependencies`]): what to render, and to record.
    pub chart: crate::Chart,
}

/// The values the worker installs a tenant's release with, and that
/// `tenant-worker render` shows, computed as `helm install -f plan.yaml -f
/// tenant.yaml` computes them: the chart's defaults < the plan's values,
/// with the application version set at `app_version_path` < the tenant's own
/// values; the chart's dependencies processed with those values (conditions,
/// tags, aliases, import-values), the values coalesced over the chart and
/// its enabled subcharts (with globals), and checked against every
/// `values.schema.json` of the chart and of its enabled subcharts (each
/// with its own part of the values), as Helm checks them. When
/// `overridable` is given (a plan's `overridable_values`), the tenant's
/// values may set only those paths.
///
/// # Errors
/// [`ValuesError`] for a tenant value the plan does not let it set, values
/// for a subchart that are not a map, or merged values that a chart's
/// `values.schema.json` refuses (the path is from the top of the values;
/// the reason names the subchart).
pub fn release_values(
    chart: &crate::Chart,
    plan_values: &Value,
    overridable: Option<&[String]>,
    (app_version_path, app_version): (&str, &str),
    tenant_values: &Value,
) -> Result<ReleaseValues, ValuesError> {
    if let Some(allowed) = overridable {
        check_overridable(tenant_values, allowed)?;
    }
    let mut plan_layer = plan_values.clone();
    set_path(
        &mut plan_layer,
        app_version_path,
        Value::String(app_version.to_owned()),
    );
    let user = Value::Object(merge_maps(&object(&plan_layer), &object(tenant_values)));
    let chart = crate::process_dependencies(chart, &user)?;
    let values = coalesce_values(&chart, &user)?;
    validate_chart_values(&chart, &values)?;
    Ok(ReleaseValues {
        values,
        config: merge_values(&Value::Object(Map::new()), &plan_layer, tenant_values),
        chart,
    })
}

/// Helm's `ValidateAgainstSchema`: `values` (coalesced, see
/// [`coalesce_values`]) against the `values.schema.json` of `chart`, then
/// each subchart's part (`values.<name>`, when set) against the
/// subchart's, recursively, as `helm install` checks them.
///
/// # Errors
/// The first violation: the top chart's first, then each subchart's in
/// order; the path is from the top of `values`, the reason names the
/// subchart. A subchart's part that is set but not a map is refused.
pub fn validate_chart_values(chart: &crate::Chart, values: &Value) -> Result<(), ValuesError> {
    validate_schemas(chart, values, "")
}

/// [`validate_chart_values`] for the chart at `at` from the top (`""`,
/// `db`, `db.cache`).
fn validate_schemas(chart: &crate::Chart, values: &Value, at: &str) -> Result<(), ValuesError> {
    let pointer: String = at
        .split('.')
        .filter(|s| !s.is_empty())
        .map(|s| format!("/{}", pointer_segment(s)))
        .collect();
    if let Some(validator) = chart.values_validator() {
        validate_with(validator, values).map_err(|e| ValuesError {
            path: format!("{pointer}{}", e.path),
            reason: if at.is_empty() {
                format!("{} (the chart's values.schema.json)", e.reason)
            } else {
                format!("{} (the values.schema.json of subchart {at})", e.reason)
            },
        })?;
    }
    for sub in chart.dependencies() {
        let name = &sub.metadata.name;
        let sub_at = if at.is_empty() {
            name.clone()
        } else {
            format!("{at}.{name}")
        };
        match values.get(name) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Object(_)) => validate_schemas(sub, v, &sub_at)?,
            Some(other) => {
                return Err(ValuesError {
                    path: format!("{pointer}/{}", pointer_segment(name)),
                    reason: format!(
                        "invalid type for values of subchart {sub_at}: expected object (map), got {}",
                        type_name(other)
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Sets `value` at the dotted `path` in `root`, creating maps on the way (and
/// replacing a non-map in between).
pub fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut at = root;
    let mut segments = path.split('.').peekable();
    while let Some(seg) = segments.next() {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let Value::Object(map) = at else { return };
        if segments.peek().is_none() {
            map.insert(seg.to_owned(), value);
            return;
        }
        at = map
            .entry(seg.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Checks that every value `overrides` sets (every leaf; an empty object or
/// list counts as a leaf) is at or under one of the `allowed` dotted paths
/// (`ingress.enabled`, or `config` for everything under `config`).
///
/// # Errors
/// The first path (in key order) that no allowed path covers, as a JSON
/// pointer (`/image/repository`).
pub fn check_overridable(overrides: &Value, allowed: &[String]) -> Result<(), ValuesError> {
    let allowed: Vec<Vec<&str>> = allowed.iter().map(|a| a.split('.').collect()).collect();
    fn walk(v: &Value, path: &mut Vec<String>, allowed: &[Vec<&str>]) -> Result<(), ValuesError> {
        let covered = allowed
            .iter()
            .any(|a| a.len() <= path.len() && a.iter().zip(path.iter()).all(|(x, y)| x == y));
        if covered {
            return Ok(());
        }
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    path.push(k.clone());
                    walk(x, path, allowed)?;
                    path.pop();
                }
                Ok(())
            }
            _ if path.is_empty() => Ok(()),
            _ => Err(ValuesError {
                path: path
                    .iter()
                    .map(|s| format!("/{}", pointer_segment(s)))
                    .collect(),
                reason: format!("the plan does not allow overriding {}", path.join(".")),
            }),
        }
    }
    match overrides {
        Value::Object(m) if m.is_empty() => Ok(()),
        Value::Object(_) => walk(overrides, &mut Vec::new(), &allowed),
        Value::Null => Ok(()),
        _ => Err(ValuesError {
            path: String::new(),
            reason: "values must be an object".into(),
        }),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn json_list(v: &Value) -> String {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => format!("'{s}'"),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// Validates `values` against the chart's JSON Schema.
///
/// # Errors
/// The first violation (in instance-path order), with Helm v4's wording
/// where it has one (`got number, want string`, `additional properties 'x'
/// not allowed`, `minimum: got 0, want 1`...); a schema that does not
/// compile is reported at the empty path.
pub fn validate_against_schema(schema: &Value, values: &Value) -> Result<(), ValuesError> {
    let validator = jsonschema::validator_for(schema).map_err(|e| ValuesError {
        path: String::new(),
        reason: format!("the chart's values.schema.json is not a valid JSON Schema: {e}"),
    })?;
    validate_with(&validator, values)
}

/// As [`validate_against_schema`], with the schema already compiled (a
/// chart compiles its own once, see [`crate::Chart::values_validator`]).
///
/// # Errors
/// As [`validate_against_schema`].
pub fn validate_with(validator: &jsonschema::Validator, values: &Value) -> Result<(), ValuesError> {
    use jsonschema::error::ValidationErrorKind as K;
    let mut errors: Vec<ValuesError> = validator
        .iter_errors(values)
        .map(|e| {
            let instance = e.instance().clone().into_owned();
            let reason = match e.kind() {
                K::Type { kind } => {
                    let want = match kind {
                        jsonschema::error::TypeKind::Single(t) => t.to_string(),
                        jsonschema::error::TypeKind::Multiple(ts) => ts
                            .iter()
                            .map(|t| t.to_string())
                            .collect::<Vec<_>>()
                            .join(" or "),
                    };
                    format!("got {}, want {want}", type_name(&instance))
                }
                K::AdditionalProperties { unexpected } => format!(
                    "additional properties {} not allowed",
                    unexpected
                        .iter()
                        .map(|u| format!("'{u}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                K::Required { property } => {
                    format!("missing property {}", json_list(property).replace('"', "'"))
                }
                K::Minimum { limit } => format!("minimum: got {instance}, want {limit}"),
                K::Maximum { limit } => format!("maximum: got {instance}, want {limit}"),
                K::ExclusiveMinimum { limit } => {
                    format!("exclusiveMinimum: got {instance}, want {limit}")
                }
                K::ExclusiveMaximum { limit } => {
                    format!("exclusiveMaximum: got {instance}, want {limit}")
                }
                K::MinLength { limit } => format!(
                    "minLength: got {}, want {limit}",
                    instance.as_str().map_or(0, |s| s.chars().count())
                ),
                K::MaxLength { limit } => format!(
                    "maxLength: got {}, want {limit}",
                    instance.as_str().map_or(0, |s| s.chars().count())
                ),
                K::MinItems { limit } => format!(
                    "minItems: got {}, want {limit}",
                    instance.as_array().map_or(0, Vec::len)
                ),
                K::MaxItems { limit } => format!(
                    "maxItems: got {}, want {limit}",
                    instance.as_array().map_or(0, Vec::len)
                ),
                K::Enum { options } => format!("value must be one of {}", json_list(options)),
                K::Pattern { pattern } => format!("{instance} does not match pattern '{pattern}'"),
                _ => e.to_string(),
            };
            ValuesError {
                path: e.instance_path().to_string(),
                reason,
            }
        })
        .collect();
    errors.sort_by(|a, b| a.path.cmp(&b.path));
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The project's sample chart.
    const SAMPLE_CHART_DIR: &str =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../k8s/charts/tenant-app");

    #[test]
    fn merge_follows_helm_coalescing() {
        let defaults = json!({"image": {"repository": "nginx", "tag": "", "digest": null}, "service": {"port": 80}, "list": [1, 2], "tolerations": [], "unset": null});
        let plan = json!({"image": {"tag": "1.0"}, "list": [3], "extra": {"a": 1}});
        let overrides =
            json!({"image": {"tag": null}, "service": null, "extra": null, "new": {"k": null}});
        let merged = merge_values(&defaults, &plan, &overrides);
        assert_eq!(
            merged,
            json!({"image": {"repository": "nginx"}, "list": [3], "tolerations": [], "extra": null, "new": {"k": null}})
        );
    }

    #[test]
    fn higher_layers_replace_scalars_lists_and_types() {
        let merged = merge_values(
            &json!({"a": {"b": 1}, "c": 1}),
            &json!({"a": "scalar", "c": {"t": 1}}),
            &json!({}),
        );
        assert_eq!(merged, json!({"a": "scalar", "c": {"t": 1}}));
    }

    #[test]
    fn overridable_paths() {
        let allowed = vec!["config".to_owned(), "ingress.enabled".to_owned()];
        assert!(
            check_overridable(
                &json!({"config": {"a": {"b": 1}}, "ingress": {"enabled": true}}),
                &allowed
            )
            .is_ok()
        );
        let e = check_overridable(
            &json!({"ingress": {"enabled": true, "host": "x"}}),
            &allowed,
        )
        .unwrap_err();
        assert_eq!(e.path, "/ingress/host");
        let e = check_overridable(&json!({"image": {"repository": "evil"}}), &allowed).unwrap_err();
        assert_eq!(e.path, "/image/repository");
        assert!(
            e.reason
                .contains("does not allow overriding image.repository"),
            "{e}"
        );
        let e = check_overridable(&json!({"ingress": {}}), &allowed).unwrap_err();
        assert_eq!(e.path, "/ingress");
        assert!(check_overridable(&json!({}), &[]).is_ok());
    }

    #[test]
    fn schema_errors_name_path_and_reason() {
        let schema = json!({"type": "object", "additionalProperties": false, "properties": {
            "image": {"type": "object", "properties": {"tag": {"type": "string"}}},
            "replicas": {"type": "integer", "minimum": 1}}});
        let e = validate_against_schema(&schema, &json!({"image": {"tag": 5}})).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.reason.as_str()),
            ("/image/tag", "got number, want string")
        );
        let e = validate_against_schema(&schema, &json!({"extra": 1})).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.reason.as_str()),
            ("", "additional properties 'extra' not allowed")
        );
        let e = validate_against_schema(&schema, &json!({"replicas": 0})).unwrap_err();
        assert_eq!(e.reason, "minimum: got 0, want 1");
        assert!(validate_against_schema(&schema, &json!({"replicas": 2.0})).is_ok());
    }

    #[test]
    fn set_path_creates_and_replaces() {
        let mut v = json!({"image": {"repository": "r"}, "x": 1});
        set_path(&mut v, "image.tag", json!("1.2.0"));
        set_path(&mut v, "x.y", json!(true));
        assert_eq!(
            v,
            json!({"image": {"repository": "r", "tag": "1.2.0"}, "x": {"y": true}})
        );
    }

    #[test]
    fn release_values_layer_the_plan_the_version_and_the_tenant() {
        let chart = crate::Chart::load(std::path::Path::new(SAMPLE_CHART_DIR)).unwrap();
        let plan = json!({"replicaCount": 2, "image": {"tag": "plan-set"}});
        let tenant = json!({"config": {"GREETING": "hi"}});
        let allowed = vec!["config".to_owned()];
        let v = release_values(
            &chart,
            &plan,
            Some(&allowed),
            ("image.tag", "1.4.2"),
            &tenant,
        )
        .unwrap();
        assert_eq!(v.values["replicaCount"], 2);
        assert_eq!(
            v.values["image"]["tag"], "1.4.2",
            "the app version wins over the plan"
        );
        assert_eq!(v.values["config"]["GREETING"], "hi");
        assert!(
            v.values["image"]["repository"].is_string(),
            "chart default kept"
        );
        assert_eq!(v.config["image"], json!({"tag": "1.4.2"}));
        let e = release_values(
            &chart,
            &plan,
            Some(&allowed),
            ("image.tag", "1"),
            &json!({"replicaCount": 9}),
        )
        .unwrap_err();
        assert_eq!(e.path, "/replicaCount");
        let e = release_values(
            &chart,
            &plan,
            None,
            ("image.tag", "1"),
            &json!({"replicaCount": "nine"}),
        )
        .unwrap_err();
        assert!(e.reason.contains("values.schema.json"), "{e}");
    }

    /// What the API server would refuse after the namespace exists (a
    /// ConfigMap key it does not accept, a count beyond int32) is refused
    /// with the values instead, before anything changes.
    #[test]
    fn the_sample_chart_refuses_what_the_api_server_would() {
        let chart = crate::Chart::load(std::path::Path::new(SAMPLE_CHART_DIR)).unwrap();
        let values =
            |tenant: Value| release_values(&chart, &json!({}), None, ("image.tag", "1"), &tenant);
        for key in ["GREETING", "app.conf", "log-level", "_x", ".hidden"] {
            assert!(
                values(json!({"config": {key: "v"}})).is_ok(),
                "config key {key:?}"
            );
        }
        for key in [
            "bad key",
            "a/b",
            "..data",
            ".",
            "\u{e9}t\u{e9}",
            "",
            &"k".repeat(254),
        ] {
            let e = values(json!({"config": {key: "v"}})).unwrap_err();
            assert_eq!(e.path, "/config", "config key {key:?}: {e}");
        }
        assert!(values(json!({"autoscaling": {"maxReplicas": 2_147_483_647_u64}})).is_ok());
        for path in [
            "replicaCount",
            "autoscaling.minReplicas",
            "autoscaling.maxReplicas",
        ] {
            let mut v = json!({});
            set_path(&mut v, path, json!(2_147_483_648_u64));
            let e = values(v).unwrap_err();
            assert!(
                e.reason.starts_with("maximum: got 2147483648"),
                "{path}: {e}"
            );
        }
    }
}
