//! Validation a real API server does before it stores an object.
//!
//! Three layers, in the order a real server applies them:
//! 1. **decoding**: the object must deserialize into its `k8s-openapi` type
//!    (a failure is 400 BadRequest, as a real server's decoder error is); fields the
//!    type does not know are reported so the caller can warn, refuse
//!    (`fieldValidation=Strict`) or drop them, like a real server;
//! 2. **metadata**: names per kind (DNS-1123 subdomain, label, DNS-1035 label
//!    or path segment), label keys and values, annotation keys and size;
//! 3. **per kind**: the checks of the real validators that matter for objects
//!    the worker creates (required fields, selector matches template labels,
//!    immutable fields, port numbers and protocols, RBAC rules, ...).
//!
//! Layers 2 and 3 report [`Cause`]s, which become one 422 `Invalid` Status.

use std::collections::BTreeSet;

use k8s_openapi::api;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::resources::ResourceDef;
use super::selectors::{LabelSelector, labels_of};
use super::status::{ApiError, Cause};

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const QUANTITY_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// Max size of all annotations of one object, as enforced by real servers.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;
/// Max size of a ConfigMap's or Secret's data, as enforced by real servers.
const MAX_DATA_BYTES: usize = 1024 * 1024;

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `None` if `s` is a DNS-1123 label (≤ 63, `[a-z0-9]([-a-z0-9]*[a-z0-9])?`).
pub(crate) fn dns1123_label_error(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let ok = !s.is_empty()
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.starts_with(is_lower_alnum)
        && s.ends_with(is_lower_alnum);
    (!ok).then(|| DNS1123_LABEL_MSG.to_string())
}

/// `None` if `s` is a DNS-1123 subdomain (≤ 253, dot-separated labels).
pub(crate) fn dns1123_subdomain_error(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let ok = !s.is_empty()
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.chars().all(|c| is_lower_alnum(c) || c == '-')
                && l.starts_with(is_lower_alnum)
                && l.ends_with(is_lower_alnum)
        });
    (!ok).then(|| DNS1123_SUBDOMAIN_MSG.to_string())
}

/// `None` if `s` is a DNS-1035 label (Service names: must start with a letter).
pub(crate) fn dns1035_label_error(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let ok = !s.is_empty()
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.ends_with(is_lower_alnum);
    (!ok).then(|| DNS1035_LABEL_MSG.to_string())
}

/// `None` if `s` may be a path segment (RBAC names such as `system:admin`).
pub(crate) fn path_segment_error(s: &str) -> Option<String> {
    if s == "." || s == ".." {
        return Some(format!("may not be '{s}'"));
    }
    for bad in ["/", "%"] {
        if s.contains(bad) {
            return Some(format!("may not contain '{bad}'"));
        }
    }
    None
}

fn qualified_name_part_ok(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.chars()
            .all(|c| alnum(c) || c == '-' || c == '_' || c == '.')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// `None` if `key` is a valid label/annotation key (`[prefix/]name`).
pub(crate) fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split('/').collect::<Vec<_>>()[..] {
        [name] => (None, name),
        [prefix, name] => (Some(prefix), name),
        _ => {
            return Some(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string(),
            );
        }
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Some("prefix part must be non-empty".into());
        }
        if let Some(e) = dns1123_subdomain_error(prefix) {
            return Some(format!("prefix part {e}"));
        }
    }
    if name.is_empty() {
        return Some("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    (!qualified_name_part_ok(name)).then(|| QUALIFIED_NAME_MSG.to_string())
}

/// `None` if `value` is a valid label value (≤ 63, may be empty).
pub(crate) fn label_value_error(value: &str) -> Option<String> {
    if value.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    (!value.is_empty() && !qualified_name_part_ok(value)).then(|| LABEL_VALUE_MSG.to_string())
}

/// Whether `s` parses as a Kubernetes resource quantity (`100m`, `1Gi`, `1e3`).
pub(crate) fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(num_end);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return false;
    }
    const SUFFIXES: &[&str] = &[
        "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    if SUFFIXES.contains(&suffix) {
        return true;
    }
    // Decimal exponent: e3, E-2.
    let Some(exp) = suffix.strip_prefix(['e', 'E']) else {
        return false;
    };
    let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit())
}

/// The name rule a real server applies to `metadata.name` of this resource.
pub(crate) fn name_error(res: &ResourceDef, name: &str) -> Option<String> {
    match (res.group, res.kind) {
        ("", "Namespace") => dns1123_label_error(name),
        ("", "Service") => dns1035_label_error(name),
        ("rbac.authorization.k8s.io", _) => path_segment_error(name),
        ("batch", "Job") if name.len() > 63 => {
            // The name becomes the value of the `job-name` label.
            Some("must be no more than 63 characters".into())
        }
        _ => dns1123_subdomain_error(name),
    }
}

/// The outcome of decoding into the `k8s-openapi` type.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    /// Paths of fields the type does not know (`spec.foo`, `spec.ports[0].bar`).
    pub unknown_fields: Vec<String>,
}

fn roundtrip<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
    let typed: T = serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// Deserializes `obj` into its `k8s-openapi` type and back, returning the
/// typed form (as JSON) or serde's error with the field path.
pub(crate) fn typed_roundtrip(res: &ResourceDef, obj: &Value) -> Result<Value, String> {
    use api::{apps, autoscaling, batch, core, networking, policy, rbac};
    match (res.group, res.kind) {
        ("", "Namespace") => roundtrip::<core::v1::Namespace>(obj),
        ("", "ConfigMap") => roundtrip::<core::v1::ConfigMap>(obj),
        ("", "Secret") => roundtrip::<core::v1::Secret>(obj),
        ("", "Service") => roundtrip::<core::v1::Service>(obj),
        ("", "ServiceAccount") => roundtrip::<core::v1::ServiceAccount>(obj),
        ("", "ResourceQuota") => roundtrip::<core::v1::ResourceQuota>(obj),
        ("", "LimitRange") => roundtrip::<core::v1::LimitRange>(obj),
        ("", "Pod") => roundtrip::<core::v1::Pod>(obj),
        ("", "Event") => roundtrip::<core::v1::Event>(obj),
        ("apps", "Deployment") => roundtrip::<apps::v1::Deployment>(obj),
        ("apps", "StatefulSet") => roundtrip::<apps::v1::StatefulSet>(obj),
        ("apps", "ReplicaSet") => roundtrip::<apps::v1::ReplicaSet>(obj),
        ("batch", "Job") => roundtrip::<batch::v1::Job>(obj),
        ("networking.k8s.io", "NetworkPolicy") => roundtrip::<networking::v1::NetworkPolicy>(obj),
        ("networking.k8s.io", "Ingress") => roundtrip::<networking::v1::Ingress>(obj),
        ("rbac.authorization.k8s.io", "Role") => roundtrip::<rbac::v1::Role>(obj),
        ("rbac.authorization.k8s.io", "RoleBinding") => roundtrip::<rbac::v1::RoleBinding>(obj),
        ("rbac.authorization.k8s.io", "ClusterRole") => roundtrip::<rbac::v1::ClusterRole>(obj),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            roundtrip::<rbac::v1::ClusterRoleBinding>(obj)
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            roundtrip::<autoscaling::v2::HorizontalPodAutoscaler>(obj)
        }
        ("policy", "PodDisruptionBudget") => roundtrip::<policy::v1::PodDisruptionBudget>(obj),
        _ => Ok(obj.clone()),
    }
}

/// Paths present (non-null) in `original` but dropped by the typed roundtrip.
fn unknown_paths(original: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (original, typed) {
        (Value::Object(o), Value::Object(t)) => {
            for (k, v) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match t.get(k) {
                    None if !v.is_null() => out.push(p),
                    None => {}
                    Some(tv) => unknown_paths(v, tv, &p, out),
                }
            }
        }
        (Value::Array(o), Value::Array(t)) => {
            for (i, (v, tv)) in o.iter().zip(t).enumerate() {
                unknown_paths(v, tv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Removes the fields at `paths` (as produced by [`decode`]) from `obj`.
pub(crate) fn prune_fields(obj: &mut Value, paths: &[String]) {
    for p in paths {
        remove_dotted(obj, p);
    }
}

fn remove_dotted(obj: &mut Value, path: &str) {
    // Split `a.b[0].c` into steps; a step is a key or an index.
    let mut steps: Vec<Result<String, usize>> = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            steps.push(Ok(rest[..i].to_string()));
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                if let Ok(n) = rest[1..end].parse() {
                    steps.push(Err(n));
                }
                rest = &rest[end + 1..];
            }
        } else {
            steps.push(Ok(rest.to_string()));
        }
    }
    let Some((last, parents)) = steps.split_last() else {
        return;
    };
    let mut cur = obj;
    for s in parents {
        let next = match s {
            Ok(k) => cur.get_mut(k.as_str()),
            Err(i) => cur.get_mut(*i),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let (Ok(k), Some(m)) = (last, cur.as_object_mut()) {
        m.remove(k.as_str());
    }
}

/// Quantities at the places the worker's objects carry them; Go decodes them
/// strictly, so a bad one is a decode error on a real server.
fn quantity_errors(res: &ResourceDef, obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut check_map = |path: String, m: Option<&Value>| {
        if let Some(m) = m.and_then(Value::as_object) {
            for (k, v) in m {
                let s = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                if !is_quantity(&s) {
                    out.push(format!("{path}.{k}: {QUANTITY_MSG}"));
                }
            }
        }
    };
    match (res.group, res.kind) {
        ("", "ResourceQuota") => check_map("spec.hard".into(), obj.pointer("/spec/hard")),
        ("", "LimitRange") => {
            for (i, l) in array(obj.pointer("/spec/limits")).iter().enumerate() {
                for f in [
                    "max",
                    "min",
                    "default",
                    "defaultRequest",
                    "maxLimitRequestRatio",
                ] {
                    check_map(format!("spec.limits[{i}].{f}"), l.get(f));
                }
            }
        }
        _ => {
            if let Some((prefix, spec)) = pod_spec(res, obj) {
                for list in ["containers", "initContainers"] {
                    for (i, c) in array(spec.get(list)).iter().enumerate() {
                        for f in ["limits", "requests"] {
                            check_map(
                                format!("{prefix}.{list}[{i}].resources.{f}"),
                                c.pointer(&format!("/resources/{f}")),
                            );
                        }
                    }
                }
            }
        }
    }
    out
}

/// Layer 1: decodes `obj` as its kind. A failure is a 400 BadRequest whose
/// message names the kind and includes serde's error (with field path).
pub(crate) fn decode(res: &ResourceDef, obj: &Value) -> Result<Decoded, ApiError> {
    let fail = |why: String| {
        ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: {why}",
            kind = res.kind,
            v = res.version
        ))
    };
    let typed = typed_roundtrip(res, obj).map_err(fail)?;
    if let Some(e) = quantity_errors(res, obj).into_iter().next() {
        return Err(fail(e));
    }
    let mut unknown_fields = Vec::new();
    unknown_paths(obj, &typed, "", &mut unknown_fields);
    Ok(Decoded { unknown_fields })
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The pod spec inside a workload (with its dotted path), if the kind has one.
fn pod_spec<'a>(res: &ResourceDef, obj: &'a Value) -> Option<(&'static str, &'a Value)> {
    match (res.group, res.kind) {
        ("", "Pod") => obj.get("spec").map(|s| ("spec", s)),
        ("apps", _) | ("batch", "Job") => obj
            .pointer("/spec/template/spec")
            .map(|s| ("spec.template.spec", s)),
        _ => None,
    }
}

/// Layer 2: names, labels and annotations.
pub(crate) fn validate_metadata(res: &ResourceDef, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = str_at(obj, "/metadata/name").unwrap_or_default();
    if name.is_empty() {
        causes.push(Cause::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if let Some(e) = name_error(res, name) {
        causes.push(Cause::invalid("metadata.name", name, e));
    }
    causes.extend(validate_labels(
        "metadata.labels",
        obj.pointer("/metadata/labels"),
    ));
    if let Some(ann) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let mut total = 0;
        for (k, v) in ann {
            total += k.len() + v.as_str().map_or(0, str::len);
            if let Some(e) = label_key_error(k) {
                causes.push(Cause::invalid("metadata.annotations", k, e));
            }
        }
        if total > MAX_ANNOTATIONS_BYTES {
            causes.push(Cause::too_long(
                "metadata.annotations",
                MAX_ANNOTATIONS_BYTES,
            ));
        }
    }
    for (i, o) in array(obj.pointer("/metadata/ownerReferences"))
        .iter()
        .enumerate()
    {
        for f in ["apiVersion", "kind", "name", "uid"] {
            if o.get(f).and_then(Value::as_str).is_none_or(str::is_empty) {
                causes.push(Cause::required(
                    format!("metadata.ownerReferences[{i}].{f}"),
                    "",
                ));
            }
        }
    }
    causes
}

/// Label keys and values of a label map at `field`.
pub(crate) fn validate_labels(field: &str, labels: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(m) = labels.and_then(Value::as_object) {
        for (k, v) in m {
            if let Some(e) = label_key_error(k) {
                causes.push(Cause::invalid(field, k, e));
            }
            let value = v.as_str().unwrap_or_default();
            if let Some(e) = label_value_error(value) {
                causes.push(Cause::invalid(field, value, e));
            }
        }
    }
    causes
}

fn validate_label_selector(field: &str, sel: Option<&Value>, causes: &mut Vec<Cause>) {
    let Some(sel) = sel else { return };
    causes.extend(validate_labels(
        &format!("{field}.matchLabels"),
        sel.get("matchLabels"),
    ));
    for (i, e) in array(sel.get("matchExpressions")).iter().enumerate() {
        let f = format!("{field}.matchExpressions[{i}]");
        let op = e
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let n_values = array(e.get("values")).len();
        match op {
            "In" | "NotIn" if n_values == 0 => causes.push(Cause::required(
                format!("{f}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if n_values > 0 => causes.push(Cause::forbidden(
                format!("{f}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => causes.push(Cause::invalid(
                format!("{f}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
    }
}

fn validate_protocol(field: String, p: Option<&Value>, causes: &mut Vec<Cause>) {
    if let Some(p) = p.and_then(Value::as_str)
        && !["TCP", "UDP", "SCTP"].contains(&p)
    {
        causes.push(Cause::not_supported(field, p, &["SCTP", "TCP", "UDP"]));
    }
}

fn validate_port_number(field: String, v: Option<&Value>, required: bool, causes: &mut Vec<Cause>) {
    match v.and_then(Value::as_i64) {
        Some(n) if (1..=65535).contains(&n) => {}
        Some(n) => causes.push(Cause::invalid_value(
            field,
            &Value::from(n),
            "must be between 1 and 65535, inclusive",
        )),
        None if required => causes.push(Cause::required(field, "")),
        None => {}
    }
}

fn validate_pod_spec(prefix: &str, spec: &Value, causes: &mut Vec<Cause>) {
    let containers = array(spec.get("containers"));
    if containers.is_empty() {
        causes.push(Cause::required(format!("{prefix}.containers"), ""));
    }
    for list in ["containers", "initContainers"] {
        let mut names = BTreeSet::new();
        for (i, c) in array(spec.get(list)).iter().enumerate() {
            let f = format!("{prefix}.{list}[{i}]");
            match c.get("name").and_then(Value::as_str) {
                None | Some("") => causes.push(Cause::required(format!("{f}.name"), "")),
                Some(n) => {
                    if let Some(e) = dns1123_label_error(n) {
                        causes.push(Cause::invalid(format!("{f}.name"), n, e));
                    }
                    if !names.insert(n.to_string()) {
                        causes.push(Cause {
                            reason: "FieldValueDuplicate",
                            field: format!("{f}.name"),
                            message: format!("Duplicate value: \"{n}\""),
                        });
                    }
                }
            }
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(Cause::required(format!("{f}.image"), ""));
            }
            for (j, p) in array(c.get("ports")).iter().enumerate() {
                let pf = format!("{f}.ports[{j}]");
                validate_port_number(
                    format!("{pf}.containerPort"),
                    p.get("containerPort"),
                    true,
                    causes,
                );
                validate_protocol(format!("{pf}.protocol"), p.get("protocol"), causes);
            }
        }
    }
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str)
        && !["Always", "OnFailure", "Never"].contains(&rp)
    {
        causes.push(Cause::not_supported(
            format!("{prefix}.restartPolicy"),
            rp,
            &["Always", "OnFailure", "Never"],
        ));
    }
}

/// Selector required, valid and matching the template's labels (apps kinds).
fn validate_workload_selector(obj: &Value, causes: &mut Vec<Cause>) {
    let sel = obj.pointer("/spec/selector");
    let empty = sel.is_none_or(|s| {
        s.get("matchLabels")
            .and_then(Value::as_object)
            .is_none_or(|m| m.is_empty())
            && array(s.get("matchExpressions")).is_empty()
    });
    if empty {
        causes.push(Cause::required("spec.selector", ""));
        return;
    }
    validate_label_selector("spec.selector", sel, causes);
    let template_labels = obj.pointer("/spec/template/metadata/labels");
    causes.extend(validate_labels(
        "spec.template.metadata.labels",
        template_labels,
    ));
    if let Some(sel) = sel
        && let Ok(selector) = LabelSelector::from_label_selector(sel)
    {
        let labels = labels_of(&serde_json::json!({ "metadata": { "labels": template_labels } }));
        if !selector.matches(&labels) {
            causes.push(Cause::invalid_value(
                "spec.template.metadata.labels",
                &template_labels.cloned().unwrap_or(Value::Null),
                "`selector` does not match template `labels`",
            ));
        }
    }
}

fn immutable(field: &str, old: Option<&Value>, new: Option<&Value>, causes: &mut Vec<Cause>) {
    if old != new {
        causes.push(Cause::invalid_value(
            field,
            new.unwrap_or(&Value::Null),
            "field is immutable",
        ));
    }
}

fn validate_data_keys(field: &str, m: Option<&Value>, total: &mut usize, causes: &mut Vec<Cause>) {
    if let Some(m) = m.and_then(Value::as_object) {
        for (k, v) in m {
            *total += k.len() + v.as_str().map_or(0, str::len);
            let ok = !k.is_empty()
                && k.len() <= 253
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
                && k != "."
                && k != ".."
                && !k.starts_with("..");
            if !ok {
                causes.push(Cause::invalid(field, k, CONFIG_KEY_MSG));
            }
        }
    }
}

fn validate_rbac_rules(obj: &Value, cluster: bool, causes: &mut Vec<Cause>) {
    for (i, r) in array(obj.get("rules")).iter().enumerate() {
        let f = format!("rules[{i}]");
        if array(r.get("verbs")).is_empty() {
            causes.push(Cause::required(
                format!("{f}.verbs"),
                "verbs must contain at least one value",
            ));
        }
        let non_resource = !array(r.get("nonResourceURLs")).is_empty();
        if non_resource {
            if !cluster {
                causes.push(Cause::invalid_value(
                    format!("{f}.nonResourceURLs"),
                    r.get("nonResourceURLs").unwrap_or(&Value::Null),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            continue;
        }
        if array(r.get("apiGroups")).is_empty() {
            causes.push(Cause::required(
                format!("{f}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if array(r.get("resources")).is_empty() {
            causes.push(Cause::required(
                format!("{f}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

fn validate_binding(obj: &Value, old: Option<&Value>, cluster: bool, causes: &mut Vec<Cause>) {
    let role_ref = obj.get("roleRef");
    let kind = role_ref
        .and_then(|r| r.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let allowed: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    if !allowed.contains(&kind) {
        causes.push(Cause::not_supported("roleRef.kind", kind, allowed));
    }
    if role_ref
        .and_then(|r| r.get("name"))
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        causes.push(Cause::required("roleRef.name", ""));
    }
    let group = role_ref
        .and_then(|r| r.get("apiGroup"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if group != "rbac.authorization.k8s.io" {
        causes.push(Cause::not_supported(
            "roleRef.apiGroup",
            group,
            &["rbac.authorization.k8s.io"],
        ));
    }
    if let Some(old) = old
        && old.get("roleRef") != obj.get("roleRef")
    {
        causes.push(Cause::invalid_value(
            "roleRef",
            obj.get("roleRef").unwrap_or(&Value::Null),
            "cannot change roleRef",
        ));
    }
    for (i, s) in array(obj.get("subjects")).iter().enumerate() {
        let f = format!("subjects[{i}]");
        let kind = s.get("kind").and_then(Value::as_str).unwrap_or_default();
        if !["ServiceAccount", "User", "Group"].contains(&kind) {
            causes.push(Cause::not_supported(
                format!("{f}.kind"),
                kind,
                &["ServiceAccount", "User", "Group"],
            ));
        }
        if s.get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.push(Cause::required(format!("{f}.name"), ""));
        }
        if kind == "ServiceAccount"
            && cluster
            && s.get("namespace")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            causes.push(Cause::required(format!("{f}.namespace"), ""));
        }
    }
}

fn validate_service(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let types = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
    if !types.contains(&ty) {
        causes.push(Cause::not_supported("spec.type", ty, &types));
    }
    let ports = array(spec.get("ports"));
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    if ports.is_empty() && ty != "ExternalName" && !headless {
        causes.push(Cause::required("spec.ports", ""));
    }
    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let f = format!("spec.ports[{i}]");
        validate_port_number(format!("{f}.port"), p.get("port"), true, causes);
        validate_protocol(format!("{f}.protocol"), p.get("protocol"), causes);
        match p
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            None if ports.len() > 1 => causes.push(Cause::required(format!("{f}.name"), "")),
            None => {}
            Some(n) => {
                if let Some(e) = dns1123_label_error(n) {
                    causes.push(Cause::invalid(format!("{f}.name"), n, e));
                }
                if !names.insert(n.to_string()) {
                    causes.push(Cause {
                        reason: "FieldValueDuplicate",
                        field: format!("{f}.name"),
                        message: format!("Duplicate value: \"{n}\""),
                    });
                }
            }
        }
        if let Some(tp) = p.get("targetPort").and_then(Value::as_i64) {
            validate_port_number(
                format!("{f}.targetPort"),
                Some(&Value::from(tp)),
                false,
                causes,
            );
        }
    }
    if ty == "ExternalName"
        && spec
            .get("externalName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        causes.push(Cause::required("spec.externalName", ""));
    }
    causes.extend(validate_labels("spec.selector", spec.get("selector")));
    if let Some(old_ip) = old
        .and_then(|o| o.pointer("/spec/clusterIP"))
        .and_then(Value::as_str)
        && let Some(new_ip) = spec.get("clusterIP").and_then(Value::as_str)
        && !old_ip.is_empty()
        && old_ip != new_ip
        && ty != "ExternalName"
    {
        causes.push(Cause::invalid(
            "spec.clusterIPs[0]",
            new_ip,
            "may not change once set",
        ));
    }
}

/// Layer 3: the per-kind checks. `old` is the stored object on updates, for
/// immutability rules.
pub(crate) fn validate_kind(res: &ResourceDef, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    match (res.group, res.kind) {
        ("", "Service") => validate_service(obj, old, &mut causes),
        ("", "ConfigMap") | ("", "Secret") => {
            let mut total = 0;
            let maps: &[&str] = if res.kind == "Secret" {
                &["data", "stringData"]
            } else {
                &["data", "binaryData"]
            };
            for m in maps {
                validate_data_keys(m, obj.get(*m), &mut total, &mut causes);
            }
            if total > MAX_DATA_BYTES {
                causes.push(Cause::too_long(maps[0], MAX_DATA_BYTES));
            }
            if res.kind == "Secret"
                && let Some(old) = old
            {
                immutable("type", old.get("type"), obj.get("type"), &mut causes);
            }
            if old
                .and_then(|o| o.get("immutable"))
                .and_then(Value::as_bool)
                == Some(true)
            {
                for m in maps {
                    if old.and_then(|o| o.get(*m)) != obj.get(*m) {
                        causes.push(Cause::forbidden(
                            *m,
                            "field is immutable when `immutable` is set",
                        ));
                    }
                }
            }
        }
        ("apps", kind) => {
            validate_workload_selector(obj, &mut causes);
            if let Some(old) = old {
                immutable(
                    "spec.selector",
                    old.pointer("/spec/selector"),
                    obj.pointer("/spec/selector"),
                    &mut causes,
                );
            }
            if let Some(r) = obj.pointer("/spec/replicas").and_then(Value::as_i64)
                && r < 0
            {
                causes.push(Cause::invalid_value(
                    "spec.replicas",
                    &Value::from(r),
                    "must be greater than or equal to 0",
                ));
            }
            if let Some(rp) = str_at(obj, "/spec/template/spec/restartPolicy")
                && rp != "Always"
            {
                causes.push(Cause::not_supported(
                    "spec.template.spec.restartPolicy",
                    rp,
                    &["Always"],
                ));
            }
            if kind == "StatefulSet"
                && let Some(old) = old
            {
                for f in ["serviceName", "podManagementPolicy", "volumeClaimTemplates"] {
                    immutable(
                        &format!("spec.{f}"),
                        old.pointer(&format!("/spec/{f}")),
                        obj.pointer(&format!("/spec/{f}")),
                        &mut causes,
                    );
                }
            }
        }
        ("batch", "Job") => {
            match str_at(obj, "/spec/template/spec/restartPolicy") {
                Some("OnFailure") | Some("Never") => {}
                other => causes.push(Cause::not_supported(
                    "spec.template.spec.restartPolicy",
                    other.unwrap_or_default(),
                    &["OnFailure", "Never"],
                )),
            }
            if let Some(old) = old {
                immutable(
                    "spec.selector",
                    old.pointer("/spec/selector"),
                    obj.pointer("/spec/selector"),
                    &mut causes,
                );
                immutable(
                    "spec.template",
                    old.pointer("/spec/template"),
                    obj.pointer("/spec/template"),
                    &mut causes,
                );
                immutable(
                    "spec.completionMode",
                    old.pointer("/spec/completionMode"),
                    obj.pointer("/spec/completionMode"),
                    &mut causes,
                );
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            if obj.pointer("/spec/podSelector").is_none() {
                causes.push(Cause::required("spec.podSelector", ""));
            }
            validate_label_selector(
                "spec.podSelector",
                obj.pointer("/spec/podSelector"),
                &mut causes,
            );
            for (i, t) in array(obj.pointer("/spec/policyTypes")).iter().enumerate() {
                let t = t.as_str().unwrap_or_default();
                if t != "Ingress" && t != "Egress" {
                    causes.push(Cause::not_supported(
                        format!("spec.policyTypes[{i}]"),
                        t,
                        &["Ingress", "Egress"],
                    ));
                }
            }
            for dir in ["ingress", "egress"] {
                for (i, rule) in array(obj.pointer(&format!("/spec/{dir}")))
                    .iter()
                    .enumerate()
                {
                    for (j, p) in array(rule.get("ports")).iter().enumerate() {
                        validate_protocol(
                            format!("spec.{dir}[{i}].ports[{j}].protocol"),
                            p.get("protocol"),
                            &mut causes,
                        );
                    }
                }
            }
        }
        ("rbac.authorization.k8s.io", "Role") => validate_rbac_rules(obj, false, &mut causes),
        ("rbac.authorization.k8s.io", "ClusterRole") => validate_rbac_rules(obj, true, &mut causes),
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            validate_binding(obj, old, false, &mut causes)
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            validate_binding(obj, old, true, &mut causes)
        }
        ("", "LimitRange") => {
            for (i, l) in array(obj.pointer("/spec/limits")).iter().enumerate() {
                let t = l.get("type").and_then(Value::as_str).unwrap_or_default();
                let types = ["Pod", "Container", "PersistentVolumeClaim"];
                if !types.contains(&t) {
                    causes.push(Cause::not_supported(
                        format!("spec.limits[{i}].type"),
                        t,
                        &types,
                    ));
                }
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            for f in ["kind", "name"] {
                if obj
                    .pointer(&format!("/spec/scaleTargetRef/{f}"))
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push(Cause::required(format!("spec.scaleTargetRef.{f}"), ""));
                }
            }
            let max = obj
                .pointer("/spec/maxReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if max < 1 {
                causes.push(Cause::invalid_value(
                    "spec.maxReplicas",
                    &Value::from(max),
                    "must be greater than or equal to 1",
                ));
            }
            if let Some(min) = obj.pointer("/spec/minReplicas").and_then(Value::as_i64)
                && (min < 1 || min > max)
            {
                causes.push(Cause::invalid_value(
                    "spec.minReplicas",
                    &Value::from(min),
                    "must be greater than or equal to 1 and less than or equal to maxReplicas",
                ));
            }
        }
        ("policy", "PodDisruptionBudget") => {
            if obj.pointer("/spec/minAvailable").is_some()
                && obj.pointer("/spec/maxUnavailable").is_some()
            {
                causes.push(Cause::invalid_value(
                    "spec",
                    obj.get("spec").unwrap_or(&Value::Null),
                    "minAvailable and maxUnavailable cannot be both set",
                ));
            }
            validate_label_selector("spec.selector", obj.pointer("/spec/selector"), &mut causes);
        }
        _ => {}
    }
    if let Some((prefix, spec)) = pod_spec(res, obj) {
        validate_pod_spec(prefix, spec, &mut causes);
    }
    causes
}

/// Checks a real server makes while converting a server-side-apply body into
/// a typed patch: entries of associative lists must carry all their key fields,
/// and `protocol` has no default there. Real servers answer
/// `failed to create typed patch object ...`; we use 422 Invalid.
pub(crate) fn validate_apply_config(
    res: &ResourceDef,
    name: &str,
    applied: &Value,
) -> Result<(), ApiError> {
    let gvk = format!("{}/{}, Kind={}", res.group, res.version, res.kind);
    let mut problems = Vec::new();
    if res.is("", "Service") {
        for (i, p) in array(applied.pointer("/spec/ports")).iter().enumerate() {
            if p.get("protocol").is_none() {
                problems.push(Cause {
                    reason: "FieldValueRequired",
                    field: format!("spec.ports[{i}].protocol"),
                    message: format!(
                        "failed to create typed patch object ({gvk}): .spec.ports: element {i}: associative list with keys has an element that omits key field \"protocol\" (and doesn't have default value)"
                    ),
                });
            }
        }
    }
    if let Some((prefix, spec)) = pod_spec(res, applied) {
        for list in ["containers", "initContainers"] {
            for c in array(spec.get(list)) {
                let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
                for (j, p) in array(c.get("ports")).iter().enumerate() {
                    if p.get("protocol").is_none() {
                        problems.push(Cause {
                            reason: "FieldValueRequired",
                            field: format!("{prefix}.{list}[name=\"{cname}\"].ports[{j}].protocol"),
                            message: format!(
                                "failed to create typed patch object ({gvk}): .{prefix}.{list}[name=\"{cname}\"].ports: element {j}: associative list with keys has an element that omits key field \"protocol\" (and doesn't have default value)"
                            ),
                        });
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        // The message of a real server is the typed-patch error alone.
        let mut e = ApiError::invalid(res, name, &problems);
        e.message = problems
            .iter()
            .map(|c| c.message.clone())
            .collect::<Vec<_>>()
            .join("; ");
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(dns1123_label_error("tenant-acme").is_none());
        assert!(dns1123_label_error("Tenant").is_some());
        assert!(dns1123_label_error("-a").is_some());
        assert!(dns1123_label_error(&"a".repeat(64)).is_some());
        assert!(dns1123_subdomain_error("a.b-c.d").is_none());
        assert!(dns1123_subdomain_error("a..b").is_some());
        assert!(dns1035_label_error("1abc").is_some());
        assert!(dns1035_label_error("abc-1").is_none());
        assert!(path_segment_error("system:admin").is_none());
        assert!(path_segment_error("a/b").is_some());
    }

    #[test]
    fn label_rules() {
        assert!(label_key_error("app").is_none());
        assert!(label_key_error("app.kubernetes.io/name").is_none());
        assert!(label_key_error("a/b/c").is_some());
        assert!(label_key_error("/x").is_some());
        assert!(label_key_error("Bad_Prefix/x").is_some());
        assert!(label_key_error(&"k".repeat(64)).is_some());
        assert!(label_value_error("").is_none());
        assert!(label_value_error("My_value.1").is_none());
        assert!(label_value_error("bad value").is_some());
        assert!(label_value_error("-x").is_some());
        assert!(label_value_error(&"v".repeat(64)).is_some());
    }

    #[test]
    fn quantities() {
        for ok in ["1", "100m", "1.5Gi", "2e3", "0.5", "+1k", "10E-2", "1Ei"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "abc", "1.2.3", "1Gb", "m", "1e"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn decode_reports_type_errors_with_path() {
        let svc = find("", "v1", "services").unwrap();
        let err = decode(
            svc,
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                    "spec": {"ports": [{"port": "eighty"}]}}),
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains("spec.ports[0].port"),
            "{}",
            err.message
        );
    }

    #[test]
    fn decode_finds_unknown_fields() {
        let cm = find("", "v1", "configmaps").unwrap();
        let d = decode(
            cm,
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "bogus": 1},
                    "data": {"k": "v"}, "spec": {}}),
        )
        .unwrap();
        assert_eq!(d.unknown_fields, vec!["metadata.bogus", "spec"]);
        let mut obj = json!({"metadata": {"name": "c", "bogus": 1}, "spec": {"x": [{"y": 1}]}});
        prune_fields(&mut obj, &["metadata.bogus".into(), "spec.x[0].y".into()]);
        assert_eq!(obj, json!({"metadata": {"name": "c"}, "spec": {"x": [{}]}}));
    }

    #[test]
    fn decode_checks_quantities() {
        let q = find("", "v1", "resourcequotas").unwrap();
        let err = decode(
            q,
            &json!({"metadata": {"name": "q"}, "spec": {"hard": {"cpu": "lots"}}}),
        )
        .unwrap_err();
        assert!(err.message.contains("spec.hard.cpu"));
    }

    #[test]
    fn metadata_checks() {
        let cm = find("", "v1", "configmaps").unwrap();
        let causes = validate_metadata(
            cm,
            &json!({"metadata": {"name": "c", "labels": {"a": "bad value"}}}),
        );
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "metadata.labels");
        assert!(
            validate_metadata(cm, &json!({"metadata": {}}))[0]
                .message
                .starts_with("Required")
        );
        let ns = find("", "v1", "namespaces").unwrap();
        assert!(!validate_metadata(ns, &json!({"metadata": {"name": "a.b"}})).is_empty());
        let role = find("rbac.authorization.k8s.io", "v1", "clusterroles").unwrap();
        assert!(validate_metadata(role, &json!({"metadata": {"name": "system:x"}})).is_empty());
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let d = find("apps", "v1", "deployments").unwrap();
        let mut obj = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        assert!(validate_kind(d, &obj, None).is_empty());
        obj["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
        let causes = validate_kind(d, &obj, None);
        assert!(causes[0].message.contains("does not match"), "{causes:?}");
        obj["spec"]["selector"] = json!({});
        assert_eq!(validate_kind(d, &obj, None)[0].field, "spec.selector");
    }

    #[test]
    fn service_checks() {
        let s = find("", "v1", "services").unwrap();
        let ok = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "protocol": "TCP"}]}});
        assert!(validate_kind(s, &ok, None).is_empty());
        let two_unnamed = json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}});
        assert!(!validate_kind(s, &two_unnamed, None).is_empty());
        let bad_port = json!({"spec": {"ports": [{"port": 70000}]}});
        assert!(
            validate_kind(s, &bad_port, None)[0]
                .message
                .contains("between 1 and 65535")
        );
        let e =
            validate_apply_config(s, "s", &json!({"spec": {"ports": [{"port": 80}]}})).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(e.message.contains("omits key field \"protocol\""));
        assert!(validate_apply_config(s, "s", &ok).is_ok());
    }

    #[test]
    fn container_ports_need_protocol_on_apply() {
        let d = find("apps", "v1", "deployments").unwrap();
        let applied = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}});
        let e = validate_apply_config(d, "web", &applied).unwrap_err();
        assert!(
            e.message.contains("containers[name=\"web\"].ports"),
            "{}",
            e.message
        );
    }

    #[test]
    fn rbac_checks() {
        let rb = find("rbac.authorization.k8s.io", "v1", "rolebindings").unwrap();
        let obj = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
                         "subjects": [{"kind": "ServiceAccount", "name": "sa"}]});
        assert!(validate_kind(rb, &obj, None).is_empty());
        let mut changed = obj.clone();
        changed["roleRef"]["name"] = json!("other");
        assert!(
            validate_kind(rb, &changed, Some(&obj))[0]
                .message
                .contains("cannot change roleRef")
        );
        let role = find("rbac.authorization.k8s.io", "v1", "roles").unwrap();
        assert!(
            !validate_kind(
                role,
                &json!({"rules": [{"apiGroups": [""], "resources": ["pods"]}]}),
                None
            )
            .is_empty()
        );
    }
}
