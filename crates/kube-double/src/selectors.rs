//! Label and field selectors: parsing the query-string forms a real API server
//! accepts and matching objects against them.
//!
//! Label selectors support `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`,
//! `a notin (x,y)`, `a>1` and `a<1`, comma-separated (all must hold). Field
//! selectors support `=`, `==` and `!=` on the fields a real server allows
//! for the resource (always `metadata.name` and `metadata.namespace`); other
//! fields are refused, as a real server does, rather than silently ignored.

use std::collections::BTreeMap;

use serde_json::Value;

use super::resources::ResourceDef;
use super::validation::{label_key_error, label_value_error};

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct LabelSelector(pub Vec<Requirement>);

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn check_key(key: &str) -> Result<String, String> {
    let key = key.trim();
    if let Some(e) = label_key_error(key) {
        return Err(format!(
            "unable to parse requirement: invalid label key \"{key}\": {e}"
        ));
    }
    Ok(key.to_string())
}

fn check_value(value: &str) -> Result<String, String> {
    let value = value.trim();
    if let Some(e) = label_value_error(value) {
        return Err(format!(
            "unable to parse requirement: invalid label value: \"{value}\": at key: {e}"
        ));
    }
    Ok(value.to_string())
}

/// Parses `a in (x, y)` / `a notin (x,y)`; `None` if `req` is not of that form.
fn parse_set(req: &str) -> Option<Result<Requirement, String>> {
    let open = req.find('(')?;
    let close = req.rfind(')');
    let head = req[..open].trim();
    let (key, op) = head.rsplit_once(char::is_whitespace)?;
    let Some(close) = close.filter(|c| *c > open && req[c + 1..].trim().is_empty()) else {
        return Some(Err(format!(
            "unable to parse requirement: found '(' without matching ')' in \"{req}\""
        )));
    };
    let values: Result<Vec<String>, String> =
        req[open + 1..close].split(',').map(check_value).collect();
    Some((|| {
        let key = check_key(key)?;
        let values = values?;
        match op.trim() {
            "in" => Ok(Requirement::In(key, values)),
            "notin" => Ok(Requirement::NotIn(key, values)),
            other => Err(format!(
                "unable to parse requirement: unknown operator \"{other}\""
            )),
        }
    })())
}

impl LabelSelector {
    /// Parses the query-string form. Errors read like a real server's
    /// (`unable to parse requirement: ...`) and become 400 BadRequest.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for raw in split_top_level(s) {
            let req = raw.trim();
            if req.is_empty() {
                return Err(format!(
                    "unable to parse requirement: empty requirement in \"{s}\""
                ));
            }
            if let Some(set) = parse_set(req) {
                reqs.push(set?);
            } else if let Some(key) = req.strip_prefix('!') {
                reqs.push(Requirement::DoesNotExist(check_key(key)?));
            } else if let Some((k, v)) = req.split_once("!=") {
                reqs.push(Requirement::NotEquals(check_key(k)?, check_value(v)?));
            } else if let Some((k, v)) = req.split_once("==") {
                reqs.push(Requirement::Equals(check_key(k)?, check_value(v)?));
            } else if let Some((k, v)) = req.split_once('=') {
                reqs.push(Requirement::Equals(check_key(k)?, check_value(v)?));
            } else if let Some((k, v)) = req.split_once('>') {
                let n = v.trim().parse().map_err(|_| {
                    format!("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: \"{req}\"")
                })?;
                reqs.push(Requirement::GreaterThan(check_key(k)?, n));
            } else if let Some((k, v)) = req.split_once('<') {
                let n = v.trim().parse().map_err(|_| {
                    format!("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: \"{req}\"")
                })?;
                reqs.push(Requirement::LessThan(check_key(k)?, n));
            } else {
                reqs.push(Requirement::Exists(check_key(req)?));
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Builds a selector from a `metav1.LabelSelector` JSON value
    /// (`matchLabels` and `matchExpressions`).
    pub(crate) fn from_label_selector(sel: &Value) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(Requirement::Equals(
                    k.clone(),
                    v.as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|vs| {
                        vs.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let op = e
                    .get("operator")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                reqs.push(match op {
                    "In" => Requirement::In(key, values),
                    "NotIn" => Requirement::NotIn(key, values),
                    "Exists" => Requirement::Exists(key),
                    "DoesNotExist" => Requirement::DoesNotExist(key),
                    other => {
                        return Err(format!(
                            "\"{other}\" is not a valid label selector operator"
                        ));
                    }
                });
            }
        }
        Ok(LabelSelector(reqs))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `labels` satisfies every requirement.
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::GreaterThan(k, n) => labels
                .get(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l > *n),
            Requirement::LessThan(k, n) => labels
                .get(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l < *n),
        })
    }

    /// Matches an object's `metadata.labels`.
    pub(crate) fn matches_object(&self, obj: &Value) -> bool {
        self.is_empty() || self.matches(&labels_of(obj))
    }
}

/// `metadata.labels` as a map (empty when absent).
pub(crate) fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A parsed field selector.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct FieldSelector(pub Vec<(String, bool, String)>);

/// Fields a real server lets you select on, beyond `metadata.name`/`metadata.namespace`.
fn extra_fields(res: &ResourceDef) -> &'static [&'static str] {
    match (res.group, res.kind) {
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "Secret") => &["type"],
        ("", "Namespace") => &["status.phase"],
        ("apps", "ReplicaSet") => &["status.replicas"],
        ("batch", "Job") => &["status.successful"],
        _ => &[],
    }
}

impl FieldSelector {
    /// Parses `a=b,c!=d` and refuses fields the resource does not support
    /// (400 BadRequest with the real server's wording).
    pub(crate) fn parse(s: &str, res: &ResourceDef) -> Result<Self, String> {
        let mut out = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector(out));
        }
        for raw in s.split(',') {
            let req = raw.trim();
            let (field, eq, value) = if let Some((k, v)) = req.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = req.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = req.split_once('=') {
                (k, true, v)
            } else {
                return Err(format!("invalid selector: '{s}'; can't understand '{req}'"));
            };
            let field = field.trim();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !extra_fields(res).contains(&field)
            {
                return Err(format!("field label not supported: {field}"));
            }
            out.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    /// Whether the object satisfies every requirement. Missing fields compare as "".
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, value)| {
            let actual = field_value(obj, field);
            (actual == *value) == *eq
        })
    }
}

/// A dotted field's value as the string a field selector compares against.
fn field_value(obj: &Value, field: &str) -> String {
    if field == "source" {
        // Events select on `source` meaning `source.component`.
        return field_value(obj, "source.component");
    }
    let mut cur = obj;
    for part in field.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_forms() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(LabelSelector::parse("app=web").unwrap().matches(&l));
        assert!(LabelSelector::parse("app==web").unwrap().matches(&l));
        assert!(!LabelSelector::parse("app!=web").unwrap().matches(&l));
        assert!(LabelSelector::parse("app!=db").unwrap().matches(&l));
        assert!(LabelSelector::parse("missing!=x").unwrap().matches(&l));
        assert!(
            LabelSelector::parse("app=web,tier=front")
                .unwrap()
                .matches(&l)
        );
        assert!(
            !LabelSelector::parse("app=web,tier=back")
                .unwrap()
                .matches(&l)
        );
        assert!(LabelSelector::parse("").unwrap().matches(&l));
    }

    #[test]
    fn existence_and_sets() {
        let l = labels(&[("app", "web"), ("example.com/team", "a")]);
        assert!(LabelSelector::parse("app").unwrap().matches(&l));
        assert!(LabelSelector::parse("!tier").unwrap().matches(&l));
        assert!(!LabelSelector::parse("!app").unwrap().matches(&l));
        assert!(
            LabelSelector::parse("app in (web, db)")
                .unwrap()
                .matches(&l)
        );
        assert!(!LabelSelector::parse("app in (db)").unwrap().matches(&l));
        assert!(
            LabelSelector::parse("app notin (db,cache)")
                .unwrap()
                .matches(&l)
        );
        assert!(LabelSelector::parse("tier notin (db)").unwrap().matches(&l));
        assert!(
            LabelSelector::parse("example.com/team in (a,b),app")
                .unwrap()
                .matches(&l)
        );
        assert_eq!(
            LabelSelector::parse("a in (x,y),b").unwrap().0,
            vec![
                Requirement::In("a".into(), vec!["x".into(), "y".into()]),
                Requirement::Exists("b".into())
            ]
        );
    }

    #[test]
    fn numeric_comparisons() {
        let l = labels(&[("gen", "5")]);
        assert!(LabelSelector::parse("gen>4").unwrap().matches(&l));
        assert!(!LabelSelector::parse("gen<5").unwrap().matches(&l));
        assert!(LabelSelector::parse("gen>x").is_err());
    }

    #[test]
    fn refuses_malformed_selectors() {
        assert!(LabelSelector::parse("app=web!").is_err());
        assert!(LabelSelector::parse("app=,").is_err());
        assert!(LabelSelector::parse("a in (x").is_err());
        assert!(LabelSelector::parse("bad key=x").is_err());
    }

    #[test]
    fn from_metav1_selector() {
        let sel = LabelSelector::from_label_selector(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]
        }))
        .unwrap();
        assert!(sel.matches(&labels(&[("app", "web")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "db")])));
    }

    #[test]
    fn field_selectors() {
        let cm = find("", "v1", "configmaps").unwrap();
        let obj = json!({"metadata": {"name": "a", "namespace": "ns1"}});
        assert!(
            FieldSelector::parse("metadata.name=a", cm)
                .unwrap()
                .matches(&obj)
        );
        assert!(
            FieldSelector::parse("metadata.name=a,metadata.namespace!=ns2", cm)
                .unwrap()
                .matches(&obj)
        );
        assert!(
            !FieldSelector::parse("metadata.namespace==ns2", cm)
                .unwrap()
                .matches(&obj)
        );
        assert_eq!(
            FieldSelector::parse("spec.foo=1", cm).unwrap_err(),
            "field label not supported: spec.foo"
        );
        let ev = find("", "v1", "events").unwrap();
        let e = json!({"involvedObject": {"name": "x", "namespace": ""}});
        assert!(
            FieldSelector::parse("involvedObject.name=x,involvedObject.namespace=", ev)
                .unwrap()
                .matches(&e)
        );
    }
}
