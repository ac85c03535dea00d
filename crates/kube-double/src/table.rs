//! Server-side printing: `meta.k8s.io/v1` `Table` responses, which `kubectl
//! get` asks for (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), with
//! the columns a real server prints for each kind, so output looks like a
//! real cluster's. Also the `Age` formatting (`HumanDuration` of apimachinery).

use serde_json::{Value, json};

use super::resources::ResourceDef;

/// What each row's `object` holds (`includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    Object,
}

impl IncludeObject {
    pub(crate) fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Formats a duration in seconds the way `kubectl get` shows ages (`45s`, `5m12s`, `3h`, `2d4h`, `400d`, `3y20d`).
pub(crate) fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 60 * 2 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age_of(ts: Option<&str>, now: jiff::Timestamp) -> String {
    match ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn s<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str)
}

fn i(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn len(obj: &Value, pointer: &str) -> i64 {
    match obj.pointer(pointer) {
        Some(Value::Object(m)) => m.len() as i64,
        Some(Value::Array(a)) => a.len() as i64,
        _ => 0,
    }
}

fn or_none(v: String) -> String {
    if v.is_empty() { "<none>".into() } else { v }
}

/// `a=b,c=d` of a label map, as real printers show selectors.
fn label_map(v: Option<&Value>) -> String {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel else { return String::new() };
    let mut parts = vec![label_map(sel.get("matchLabels"))];
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(
            match e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default()
            {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                _ => format!("!{key}"),
            },
        );
    }
    parts.retain(|p| !p.is_empty());
    parts.join(",")
}

fn containers(obj: &Value, field: &str) -> String {
    obj.pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get(field).and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn service_ports(obj: &Value) -> String {
    obj.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                    let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(np) => format!("{port}:{np}/{proto}"),
                        None => format!("{port}/{proto}"),
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn external_ip(obj: &Value) -> String {
    match s(obj, "/spec/type").unwrap_or("ClusterIP") {
        "ExternalName" => s(obj, "/spec/externalName").unwrap_or_default().to_string(),
        "LoadBalancer" => {
            let ips: Vec<&str> = obj
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|i| {
                            i.get("ip")
                                .or_else(|| i.get("hostname"))
                                .and_then(Value::as_str)
                        })
                        .collect()
                })
                .unwrap_or_default();
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        _ => obj
            .pointer("/spec/externalIPs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
    }
}

/// `Request`/`Limit` columns of a ResourceQuota: `used/hard` per resource.
fn quota_column(obj: &Value, limits: bool) -> String {
    let hard = obj
        .pointer("/status/hard")
        .or_else(|| obj.pointer("/spec/hard"));
    let Some(hard) = hard.and_then(Value::as_object) else {
        return String::new();
    };
    hard.iter()
        .filter(|(k, _)| k.starts_with("limits.") == limits)
        .map(|(k, v)| {
            let used = obj
                .pointer(&format!(
                    "/status/used/{}",
                    k.replace('~', "~0").replace('/', "~1")
                ))
                .and_then(Value::as_str)
                .unwrap_or("0");
            format!("{k}: {used}/{}", v.as_str().unwrap_or_default())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn job_status(obj: &Value) -> &'static str {
    let conds = obj.pointer("/status/conditions").and_then(Value::as_array);
    let has = |t: &str| {
        conds.is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(t)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
    };
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    }
}

fn job_duration(obj: &Value, now: jiff::Timestamp) -> String {
    let parse = |p: &str| s(obj, p).and_then(|t| t.parse::<jiff::Timestamp>().ok());
    match (parse("/status/startTime"), parse("/status/completionTime")) {
        (Some(start), Some(end)) => human_duration(end.as_second() - start.as_second()),
        (Some(start), None) => human_duration(now.as_second() - start.as_second()),
        _ => String::new(),
    }
}

fn subjects(obj: &Value, kind: &str) -> String {
    obj.get("subjects")
        .and_then(Value::as_array)
        .map(|ss| {
            ss.iter()
                .filter(|s| s.get("kind").and_then(Value::as_str) == Some(kind))
                .map(|s| {
                    let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
                    match s.get("namespace").and_then(Value::as_str) {
                        Some(ns) if kind == "ServiceAccount" => format!("{ns}/{name}"),
                        _ => name.to_string(),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// One column: `(name, type, priority)`; priority 1 shows only with `-o wide`.
type Column = (&'static str, &'static str, i32);

/// Renders one object's cells, in column order.
type Cells = fn(&Value, jiff::Timestamp) -> Vec<Value>;

/// Columns and cell extractor per kind; the first column is always the name.
fn printer(res: &ResourceDef) -> (Vec<Column>, Cells) {
    let name = ("Name", "string", 0);
    let age = ("Age", "string", 0);
    match (res.group, res.kind) {
        ("", "Namespace") => (vec![name, ("Status", "string", 0), age], |o, now| {
            vec![
                json!(s(o, "/metadata/name")),
                json!(s(o, "/status/phase").unwrap_or_default()),
                json!(age_of(s(o, "/metadata/creationTimestamp"), now)),
            ]
        }),
        ("", "ConfigMap") => (vec![name, ("Data", "integer", 0), age], |o, now| {
            vec![
                json!(s(o, "/metadata/name")),
                json!(len(o, "/data") + len(o, "/binaryData")),
                json!(age_of(s(o, "/metadata/creationTimestamp"), now)),
            ]
        }),
        ("", "Secret") => (
            vec![name, ("Type", "string", 0), ("Data", "integer", 0), age],
            |o, now| {
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(s(o, "/type").unwrap_or_default()),
                    json!(len(o, "/data")),
                    json!(age_of(s(o, "/metadata/creationTimestamp"), now)),
                ]
            },
        ),
        ("", "Service") => (
            vec![
                name,
                ("Type", "string", 0),
                ("Cluster-IP", "string", 0),
                ("External-IP", "string", 0),
                ("Port(s)", "string", 0),
                age,
                ("Selector", "string", 1),
            ],
            |o, now| {
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(s(o, "/spec/type").unwrap_or("ClusterIP")),
                    json!(or_none(
                        s(o, "/spec/clusterIP").unwrap_or_default().to_string()
                    )),
                    json!(or_none(external_ip(o))),
                    json!(or_none(service_ports(o))),
                    json!(age_of(s(o, "/metadata/creationTimestamp"), now)),
                    json!(or_none(label_map(o.pointer("/spec/selector")))),
                ]
            },
        ),
        ("", "ServiceAccount") => (vec![name, ("Secrets", "string", 0), age], |o, now| {
            vec![
                json!(s(o, "/metadata/name")),
                json!(len(o, "/secrets").to_string()),
                json!(age_of(s(o, "/metadata/creationTimestamp"), now)),
            ]
        }),
        ("", "ResourceQuota") => (
            vec![name, age, ("Request", "string", 0), ("Limit", "string", 0)],
            |o, now| {
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(age_of(s(o, "/metadata/creationTimestamp"), now)),
                    json!(quota_column(o, false)),
                    json!(quota_column(o, true)),
                ]
            },
        ),
        ("", "Pod") => (
            vec![
                name,
                ("Ready", "string", 0),
                ("Status", "string", 0),
                ("Restarts", "string", 0),
                age,
                ("IP", "string", 1),
                ("Node", "string", 1),
            ],
            |o, now| {
                let total = len(o, "/spec/containers");
                let ready = o
                    .pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .map(|cs| {
                        cs.iter()
                            .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                            .count()
                    })
                    .unwrap_or(0);
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(format!("{ready}/{total}")),
                    json!(s(o, "/status/phase").unwrap_or("Pending")),
                    json!("0"),
                    json!(age_of(s(o, "/metadata/creationTimestamp"), now)),
                    json!(or_none(
                        s(o, "/status/podIP").unwrap_or_default().to_string()
                    )),
                    json!(or_none(
                        s(o, "/spec/nodeName").unwrap_or_default().to_string()
                    )),
                ]
            },
        ),
        ("", "Event") => (
            vec![
                ("Last Seen", "string", 0),
                ("Type", "string", 0),
                ("Reason", "string", 0),
                ("Object", "string", 0),
                ("Message", "string", 0),
                ("Name", "string", 1),
            ],
            |o, now| {
                let seen = s(o, "/lastTimestamp")
                    .or_else(|| s(o, "/eventTime"))
                    .or_else(|| s(o, "/metadata/creationTimestamp"));
                vec![
                    json!(age_of(seen, now)),
                    json!(s(o, "/type").unwrap_or_default()),
                    json!(s(o, "/reason").unwrap_or_default()),
                    json!(format!(
                        "{}/{}",
                        s(o, "/involvedObject/kind")
                            .unwrap_or_default()
                            .to_lowercase(),
                        s(o, "/involvedObject/name").unwrap_or_default()
                    )),
                    json!(s(o, "/message").unwrap_or_default()),
                    json!(s(o, "/metadata/name")),
                ]
            },
        ),
        ("apps", "Deployment") => (
            vec![
                name,
                ("Ready", "string", 0),
                ("Up-to-date", "integer", 0),
                ("Available", "integer", 0),
                age,
                ("Containers", "string", 1),
                ("Images", "string", 1),
                ("Selector", "string", 1),
            ],
            |o, now| {
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(format!(
                        "{}/{}",
                        i(o, "/status/readyReplicas"),
                        i(o, "/spec/replicas")
                    )),
                    json!(i(o, "/status/updatedReplicas")),
                    json!(i(o, "/status/availableReplicas")),
                    json!(age_of(s(o, "/metadata/creationTimestamp"), now)),
                    json!(containers(o, "name")),
                    json!(containers(o, "image")),
                    json!(label_selector(o.pointer("/spec/selector"))),
                ]
            },
        ),
        ("apps", "StatefulSet") => (
            vec![
                name,
                ("Ready", "string", 0),
                age,
                ("Containers", "string", 1),
                ("Images", "string", 1),
            ],
            |o, now| {
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(format!(
                        "{}/{}",
                        i(o, "/status/readyReplicas"),
                        i(o, "/spec/replicas")
                    )),
                    json!(age_of(s(o, "/metadata/creationTimestamp"), now)),
                    json!(containers(o, "name")),
                    json!(containers(o, "image")),
                ]
            },
        ),
        ("apps", "ReplicaSet") => (
            vec![
                name,
                ("Desired", "integer", 0),
                ("Current", "integer", 0),
                ("Ready", "integer", 0),
                age,
            ],
            |o, now| {
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(i(o, "/spec/replicas")),
                    json!(i(o, "/status/replicas")),
                    json!(i(o, "/status/readyReplicas")),
                    json!(age_of(s(o, "/metadata/creationTimestamp"), now)),
                ]
            },
        ),
        ("batch", "Job") => (
            vec![
                name,
                ("Status", "string", 0),
                ("Completions", "string", 0),
                ("Duration", "string", 0),
                age,
            ],
            |o, now| {
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(job_status(o)),
                    json!(format!(
                        "{}/{}",
                        i(o, "/status/succeeded"),
                        i(o, "/spec/completions")
                    )),
                    json!(job_duration(o, now)),
                    json!(age_of(s(o, "/metadata/creationTimestamp"), now)),
                ]
            },
        ),
        ("networking.k8s.io", "NetworkPolicy") => {
            (vec![name, ("Pod-Selector", "string", 0), age], |o, now| {
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(or_none(label_selector(o.pointer("/spec/podSelector")))),
                    json!(age_of(s(o, "/metadata/creationTimestamp"), now)),
                ]
            })
        }
        ("networking.k8s.io", "Ingress") => (
            vec![
                name,
                ("Class", "string", 0),
                ("Hosts", "string", 0),
                ("Address", "string", 0),
                ("Ports", "string", 0),
                age,
            ],
            |o, now| {
                let hosts: Vec<&str> = o
                    .pointer("/spec/rules")
                    .and_then(Value::as_array)
                    .map(|rs| {
                        rs.iter()
                            .map(|r| r.get("host").and_then(Value::as_str).unwrap_or("*"))
                            .collect()
                    })
                    .unwrap_or_default();
                let tls = o
                    .pointer("/spec/tls")
                    .and_then(Value::as_array)
                    .is_some_and(|t| !t.is_empty());
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(or_none(
                        s(o, "/spec/ingressClassName")
                            .unwrap_or_default()
                            .to_string()
                    )),
                    json!(if hosts.is_empty() {
                        "*".to_string()
                    } else {
                        hosts.join(",")
                    }),
                    json!(""),
                    json!(if tls { "80, 443" } else { "80" }),
                    json!(age_of(s(o, "/metadata/creationTimestamp"), now)),
                ]
            },
        ),
        ("rbac.authorization.k8s.io", "Role") | ("rbac.authorization.k8s.io", "ClusterRole") => {
            (vec![name, ("Created At", "date", 0)], |o, _| {
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(s(o, "/metadata/creationTimestamp").unwrap_or_default()),
                ]
            })
        }
        ("rbac.authorization.k8s.io", "RoleBinding")
        | ("rbac.authorization.k8s.io", "ClusterRoleBinding") => (
            vec![
                name,
                ("Role", "string", 0),
                age,
                ("Users", "string", 1),
                ("Groups", "string", 1),
                ("ServiceAccounts", "string", 1),
            ],
            |o, now| {
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(format!(
                        "{}/{}",
                        s(o, "/roleRef/kind").unwrap_or_default(),
                        s(o, "/roleRef/name").unwrap_or_default()
                    )),
                    json!(age_of(s(o, "/metadata/creationTimestamp"), now)),
                    json!(subjects(o, "User")),
                    json!(subjects(o, "Group")),
                    json!(subjects(o, "ServiceAccount")),
                ]
            },
        ),
        ("autoscaling", "HorizontalPodAutoscaler") => (
            vec![
                name,
                ("Reference", "string", 0),
                ("Targets", "string", 0),
                ("MinPods", "string", 0),
                ("MaxPods", "integer", 0),
                ("Replicas", "integer", 0),
                age,
            ],
            |o, now| {
                let targets: Vec<String> = o
                    .pointer("/spec/metrics")
                    .and_then(Value::as_array)
                    .map(|ms| {
                        ms.iter()
                            .filter_map(|m| {
                                let r = m.get("resource")?;
                                let name =
                                    r.get("name").and_then(Value::as_str).unwrap_or_default();
                                let target = r
                                    .pointer("/target/averageUtilization")
                                    .and_then(Value::as_i64)?;
                                Some(format!("{name}: <unknown>/{target}%"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(format!(
                        "{}/{}",
                        s(o, "/spec/scaleTargetRef/kind").unwrap_or_default(),
                        s(o, "/spec/scaleTargetRef/name").unwrap_or_default()
                    )),
                    json!(if targets.is_empty() {
                        "<none>".to_string()
                    } else {
                        targets.join(", ")
                    }),
                    json!(i(o, "/spec/minReplicas").to_string()),
                    json!(i(o, "/spec/maxReplicas")),
                    json!(i(o, "/status/currentReplicas")),
                    json!(age_of(s(o, "/metadata/creationTimestamp"), now)),
                ]
            },
        ),
        ("policy", "PodDisruptionBudget") => (
            vec![
                name,
                ("Min Available", "string", 0),
                ("Max Unavailable", "string", 0),
                ("Allowed Disruptions", "integer", 0),
                age,
            ],
            |o, now| {
                let show = |p: &str| match o.pointer(p) {
                    Some(Value::String(v)) => v.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => "N/A".into(),
                };
                vec![
                    json!(s(o, "/metadata/name")),
                    json!(show("/spec/minAvailable")),
                    json!(show("/spec/maxUnavailable")),
                    json!(i(o, "/status/disruptionsAllowed")),
                    json!(age_of(s(o, "/metadata/creationTimestamp"), now)),
                ]
            },
        ),
        // LimitRange and anything without a printer of its own: name and creation time.
        _ => (vec![name, ("Created At", "date", 0)], |o, _| {
            vec![
                json!(s(o, "/metadata/name")),
                json!(s(o, "/metadata/creationTimestamp").unwrap_or_default()),
            ]
        }),
    }
}

/// `PartialObjectMetadata` of an object, as real servers embed in rows.
pub(crate) fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A `Table` of `objects` with the kind's columns.
pub(crate) fn table(
    res: &ResourceDef,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
) -> Value {
    let (columns, cells) = printer(res);
    let now = jiff::Timestamp::now();
    let column_definitions: Vec<Value> = columns
        .iter()
        .map(|(name, ty, priority)| {
            let format = if *name == "Name" { "name" } else { "" };
            json!({
                "name": name, "type": ty, "format": format, "description": "", "priority": priority,
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({ "cells": cells(o, now) });
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial_metadata(o),
                IncludeObject::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    let mut metadata = json!({ "resourceVersion": resource_version });
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{RESOURCES, find};

    #[test]
    fn ages_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(50 * 3600), "2d2h");
        assert_eq!(human_duration(100 * 86400), "100d");
        assert_eq!(human_duration(3 * 365 * 86400 + 86400), "3y1d");
        assert_eq!(human_duration(-5), "<invalid>");
    }

    #[test]
    fn every_kind_has_name_first_and_matching_cells() {
        for res in RESOURCES {
            let (cols, cells) = printer(res);
            let row = cells(&json!({"metadata": {"name": "x"}}), jiff::Timestamp::now());
            assert_eq!(cols.len(), row.len(), "{}", res.kind);
            if res.kind != "Event" {
                assert_eq!(cols[0].0, "Name");
                assert_eq!(row[0], "x");
            }
        }
    }

    #[test]
    fn namespace_and_quota_rows() {
        let ns = find("", "v1", "namespaces").unwrap();
        let t = table(
            ns,
            &[
                json!({"metadata": {"name": "a", "creationTimestamp": "2020-01-01T00:00:00Z"}, "status": {"phase": "Active"}}),
            ],
            "7",
            None,
            IncludeObject::Metadata,
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["rows"][0]["cells"][1], "Active");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        let q = find("", "v1", "resourcequotas").unwrap();
        let obj = json!({"metadata": {"name": "q"}, "status": {
            "hard": {"pods": "10", "limits.cpu": "4"}, "used": {"pods": "1", "limits.cpu": "0"}}});
        let (_, cells) = printer(q);
        let row = cells(&obj, jiff::Timestamp::now());
        assert_eq!(row[2], "pods: 1/10");
        assert_eq!(row[3], "limits.cpu: 0/4");
    }

    #[test]
    fn service_row() {
        let svc = find("", "v1", "services").unwrap();
        let (_, cells) = printer(svc);
        let row = cells(
            &json!({"metadata": {"name": "web"}, "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.5",
                "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "web"}}}),
            jiff::Timestamp::now(),
        );
        assert_eq!(row[2], "10.96.0.5");
        assert_eq!(row[3], "<none>");
        assert_eq!(row[4], "80/TCP");
        assert_eq!(row[6], "app=web");
    }
}
