//! The last step of every write: turn the object a request produced into the
//! object that is stored, as a real server's registry and admission do.
//!
//! In order: server-set metadata (uid, creationTimestamp) is kept or set and
//! client attempts to set it are ignored; `status` sent to the main resource
//! is ignored; defaults are applied (a real server's defaulting that shows in
//! `kubectl get`/`describe` or that clients rely on); the object is decoded as
//! its `k8s-openapi` type and validated; `generation` bumps on spec changes;
//! simulated workload status is set; field ownership is recorded. A write that
//! changes nothing is reported as such, so it keeps its resourceVersion.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::apply::{Managers, tracked};
use super::controllers::{is_suspended, is_workload, ready_status, unready_status};
use super::faults::FaultInjector;
use super::resources::ResourceDef;
use super::status::ApiError;
use super::store::Entry;
use super::validation::{decode, prune_fields, validate_kind, validate_metadata};

/// Metadata only the server sets; clients' values are ignored (preconditions
/// on `resourceVersion`/`uid` are checked by the verbs before this).
const SERVER_METADATA: &[&str] = &[
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
];

/// How to treat fields the kind's type does not know (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and say so in a `Warning` header (the default of real servers).
    Warn,
    /// Refuse the request (400).
    Strict,
}

/// What the write needs from the server around it.
pub(crate) struct WriteCtx<'a> {
    pub faults: &'a FaultInjector,
    pub ready_delay: Duration,
    pub validation: FieldValidation,
    /// RFC 3339, seconds: creationTimestamp, managedFields times, conditions.
    pub now: String,
}

/// Who gets ownership of what this write changes.
pub(crate) enum Ownership {
    /// A create/replace/patch by this manager.
    Update(String),
    /// Server-side apply; ownership already computed by the merge.
    Apply(Managers),
}

/// An object ready to store.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub object: Value,
    pub managers: Managers,
    /// Simulated readiness after this write: `None` untouched, `Some(true)`
    /// (re)scheduled after `ready_delay`, `Some(false)` ready now.
    pub schedule_ready: Option<bool>,
}

#[derive(Debug)]
pub(crate) enum Finished {
    /// Nothing changed; here is the stored object.
    Unchanged(Value),
    Write(Prepared),
}

/// Now, as `creationTimestamp` is written (RFC 3339, whole seconds, UTC).
pub(crate) fn now_ts() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Removes server-owned metadata from an incoming body.
pub(crate) fn strip_server_metadata(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in SERVER_METADATA {
            meta.remove(*f);
        }
    }
}

/// Decodes `obj` as its kind and handles unknown fields per `validation`:
/// returns the warnings to send, or a 400 (decode error, or strict mode).
pub(crate) fn check_fields(
    res: &ResourceDef,
    obj: &mut Value,
    validation: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    let decoded = decode(res, obj)?;
    if decoded.unknown_fields.is_empty() {
        return Ok(Vec::new());
    }
    let msgs: Vec<String> = decoded
        .unknown_fields
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    if validation == FieldValidation::Strict {
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            msgs.join(", ")
        )));
    }
    prune_fields(obj, &decoded.unknown_fields);
    Ok(if validation == FieldValidation::Warn {
        msgs
    } else {
        Vec::new()
    })
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Sets `path` to `value` unless something is there, creating parent maps.
fn default_at(obj: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for p in parents {
        if !cur.is_object() {
            return;
        }
        cur = cur
            .as_object_mut()
            .expect("checked above")
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(m) = cur.as_object_mut() {
        m.entry(last.to_string()).or_insert(value);
    }
}

fn for_each_mut(v: Option<&mut Value>, mut f: impl FnMut(&mut Value)) {
    if let Some(items) = v.and_then(Value::as_array_mut) {
        items.iter_mut().for_each(&mut f);
    }
}

fn default_pod_spec(spec: &mut Value, restart_policy: Option<&str>) {
    if let Some(rp) = restart_policy {
        default_at(spec, &["restartPolicy"], json!(rp));
    }
    default_at(spec, &["dnsPolicy"], json!("ClusterFirst"));
    default_at(spec, &["schedulerName"], json!("default-scheduler"));
    default_at(spec, &["terminationGracePeriodSeconds"], json!(30));
    default_at(spec, &["securityContext"], json!({}));
    for list in ["containers", "initContainers"] {
        for_each_mut(spec.get_mut(list), |c| {
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
            let tag = image.rsplit('/').next().unwrap_or_default();
            let latest = !tag.contains(':') && !image.contains('@') || tag.ends_with(":latest");
            default_at(
                c,
                &["imagePullPolicy"],
                json!(if latest { "Always" } else { "IfNotPresent" }),
            );
            default_at(
                c,
                &["terminationMessagePath"],
                json!("/dev/termination-log"),
            );
            default_at(c, &["terminationMessagePolicy"], json!("File"));
            default_at(c, &["resources"], json!({}));
            for_each_mut(c.get_mut("ports"), |p| {
                default_at(p, &["protocol"], json!("TCP"))
            });
        });
    }
}

/// Defaults a real server applies, for the fields that show in output or
/// that clients rely on. Deterministic, so re-applying an object is a no-op.
fn apply_defaults(res: &ResourceDef, obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let namespace = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match (res.group, res.kind) {
        ("", "Namespace") => {
            obj["metadata"]
                .as_object_mut()
                .expect("metadata is an object")
                .entry("labels")
                .or_insert_with(|| json!({}))["kubernetes.io/metadata.name"] = json!(name);
            default_at(obj, &["spec", "finalizers"], json!(["kubernetes"]));
            default_at(obj, &["status", "phase"], json!("Active"));
        }
        ("", "Secret") => {
            default_at(obj, &["type"], json!("Opaque"));
            // stringData is write-only: it is merged into data (base64) and never stored.
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                for (k, v) in sd {
                    let bytes = v.as_str().unwrap_or_default().as_bytes().to_vec();
                    let encoded =
                        serde_json::to_value(k8s_openapi::ByteString(bytes)).unwrap_or(Value::Null);
                    default_at(obj, &["data"], json!({}));
                    obj["data"][k] = encoded;
                }
            }
        }
        ("", "Service") => {
            let ty = obj
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP")
                .to_string();
            default_at(obj, &["spec", "type"], json!(ty));
            default_at(obj, &["spec", "sessionAffinity"], json!("None"));
            if ty != "ExternalName" {
                // Deterministic per name, so re-applying never changes it.
                let h = fnv(&format!("{namespace}/{name}"));
                let ip = format!("10.96.{}.{}", (h >> 8) % 256, h % 254 + 1);
                default_at(obj, &["spec", "clusterIP"], json!(ip));
                let ip = obj["spec"]["clusterIP"].clone();
                default_at(obj, &["spec", "clusterIPs"], json!([ip]));
                default_at(obj, &["spec", "ipFamilies"], json!(["IPv4"]));
                default_at(obj, &["spec", "ipFamilyPolicy"], json!("SingleStack"));
                default_at(obj, &["spec", "internalTrafficPolicy"], json!("Cluster"));
            }
            let node_ports = ty == "NodePort" || ty == "LoadBalancer";
            if node_ports {
                default_at(obj, &["spec", "externalTrafficPolicy"], json!("Cluster"));
            }
            for_each_mut(obj.pointer_mut("/spec/ports"), |p| {
                default_at(p, &["protocol"], json!("TCP"));
                if let Some(port) = p.get("port").cloned() {
                    default_at(p, &["targetPort"], port.clone());
                    if node_ports {
                        let h = fnv(&format!("{namespace}/{name}/{port}"));
                        default_at(p, &["nodePort"], json!(30000 + h % 2768));
                    }
                }
            });
            default_at(obj, &["status", "loadBalancer"], json!({}));
        }
        ("", "Pod") => {
            if let Some(spec) = obj.get_mut("spec") {
                default_pod_spec(spec, Some("Always"));
            }
        }
        ("apps", kind) => {
            default_at(obj, &["spec", "replicas"], json!(1));
            match kind {
                "Deployment" => {
                    default_at(obj, &["spec", "revisionHistoryLimit"], json!(10));
                    default_at(obj, &["spec", "progressDeadlineSeconds"], json!(600));
                    default_at(obj, &["spec", "strategy", "type"], json!("RollingUpdate"));
                    if obj.pointer("/spec/strategy/type").and_then(Value::as_str)
                        == Some("RollingUpdate")
                    {
                        default_at(
                            obj,
                            &["spec", "strategy", "rollingUpdate"],
                            json!({"maxSurge": "25%", "maxUnavailable": "25%"}),
                        );
                    }
                }
                "StatefulSet" => {
                    default_at(obj, &["spec", "revisionHistoryLimit"], json!(10));
                    default_at(obj, &["spec", "podManagementPolicy"], json!("OrderedReady"));
                    default_at(
                        obj,
                        &["spec", "updateStrategy"],
                        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                    );
                    default_at(
                        obj,
                        &["spec", "persistentVolumeClaimRetentionPolicy"],
                        json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                    );
                }
                _ => {}
            }
            if let Some(spec) = obj.pointer_mut("/spec/template/spec") {
                default_pod_spec(spec, Some("Always"));
            }
        }
        ("batch", "Job") => {
            default_at(obj, &["spec", "parallelism"], json!(1));
            default_at(obj, &["spec", "completions"], json!(1));
            default_at(obj, &["spec", "backoffLimit"], json!(6));
            default_at(obj, &["spec", "completionMode"], json!("NonIndexed"));
            default_at(obj, &["spec", "suspend"], json!(false));
            default_at(
                obj,
                &["spec", "podReplacementPolicy"],
                json!("TerminatingOrFailed"),
            );
            let manual = obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true);
            if !manual && !uid.is_empty() {
                // The job controller's generated selector and pod labels.
                default_at(
                    obj,
                    &["spec", "selector"],
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
                );
                for (k, v) in [
                    ("batch.kubernetes.io/controller-uid", &uid),
                    ("batch.kubernetes.io/job-name", &name),
                    ("controller-uid", &uid),
                    ("job-name", &name),
                ] {
                    default_at(
                        obj,
                        &["spec", "template", "metadata", "labels", k],
                        json!(v),
                    );
                }
            }
            if let Some(spec) = obj.pointer_mut("/spec/template/spec") {
                default_pod_spec(spec, None);
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            let has_egress = obj
                .pointer("/spec/egress")
                .and_then(Value::as_array)
                .is_some_and(|e| !e.is_empty());
            let types = if has_egress {
                json!(["Ingress", "Egress"])
            } else {
                json!(["Ingress"])
            };
            default_at(obj, &["spec", "policyTypes"], types);
            for dir in ["ingress", "egress"] {
                for_each_mut(obj.pointer_mut(&format!("/spec/{dir}")), |rule| {
                    for_each_mut(rule.get_mut("ports"), |p| {
                        default_at(p, &["protocol"], json!("TCP"))
                    });
                });
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            default_at(obj, &["spec", "minReplicas"], json!(1));
        }
        _ => {}
    }
}

/// Whether anything outside `metadata` and `status` differs: what bumps `generation`.
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut m = v.as_object().cloned().unwrap_or_default();
        m.remove("metadata");
        m.remove("status");
        Value::Object(m)
    };
    strip(old) != strip(new)
}

/// The object without the fields every write changes, for no-op detection.
fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        meta.remove("managedFields");
    }
    v
}

/// Finishes a write of `new` over `old` (`None`: create). See the module docs.
///
/// # Errors
/// 400 when the object does not decode (or has unknown fields under
/// `fieldValidation=Strict`), 422 `Invalid` when validation fails.
pub(crate) fn finish(
    res: &ResourceDef,
    old: Option<&Entry>,
    mut new: Value,
    ownership: Ownership,
    ctx: &WriteCtx<'_>,
) -> Result<(Finished, Vec<String>), ApiError> {
    if !new.is_object() {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    }
    new["apiVersion"] = json!(res.api_version());
    new["kind"] = json!(res.kind);
    if !new.get("metadata").is_some_and(Value::is_object) {
        new["metadata"] = json!({});
    }
    {
        let meta = new["metadata"]
            .as_object_mut()
            .expect("metadata is an object");
        for f in SERVER_METADATA {
            meta.remove(*f);
        }
        match old {
            Some(o) => {
                for f in [
                    "uid",
                    "creationTimestamp",
                    "generation",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                ] {
                    if let Some(v) = o.object.pointer(&format!("/metadata/{f}")) {
                        meta.insert(f.to_string(), v.clone());
                    }
                }
            }
            None => {
                meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
                meta.insert("creationTimestamp".into(), json!(ctx.now));
            }
        }
    }
    if res.has_status {
        match old.and_then(|o| o.object.get("status")) {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().expect("checked above").remove("status");
            }
        }
    }
    apply_defaults(res, &mut new);
    let warnings = check_fields(res, &mut new, ctx.validation)?;

    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut causes = validate_metadata(res, &new);
    causes.extend(validate_kind(res, &new, old.map(|o| &o.object)));
    if !causes.is_empty() {
        return Err(ApiError::invalid(res, &name, &causes));
    }

    let old_generation = old
        .and_then(|o| o.object.pointer("/metadata/generation"))
        .and_then(Value::as_i64);
    let generation = match (old, old_generation) {
        (Some(o), Some(g)) if spec_changed(&o.object, &new) => g + 1,
        (Some(_), Some(g)) => g,
        _ => 1,
    };
    new["metadata"]["generation"] = json!(generation);

    let mut schedule_ready = None;
    if is_workload(res) && (old.is_none() || old_generation != Some(generation)) {
        let namespace = new
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let held = ctx.faults.is_kept_unready(namespace, res.kind, &name);
        let suspended = is_suspended(res, &new);
        let ready_now = ctx.ready_delay.is_zero() && !held && !suspended;
        new["status"] = if ready_now {
            ready_status(res, &new, &ctx.now)
        } else {
            unready_status(res, &new, &ctx.now)
        };
        schedule_ready = Some(!ready_now && !suspended);
    }

    let managers = match ownership {
        Ownership::Update(manager) => {
            let mut ms = old.map(|o| o.managers.clone()).unwrap_or_default();
            ms.record_update(
                &manager,
                &res.api_version(),
                old.map(|o| &o.object),
                &new,
                &ctx.now,
            );
            ms
        }
        Ownership::Apply(mut ms) => {
            ms.drop_missing(&tracked(&new));
            ms
        }
    };

    if let Some(o) = old
        && comparable(&o.object) == comparable(&new)
        && o.managers.same_ownership(&managers)
    {
        return Ok((Finished::Unchanged(o.object.clone()), warnings));
    }
    if !managers.0.is_empty() {
        new["metadata"]["managedFields"] = managers.render();
    }
    Ok((
        Finished::Write(Prepared {
            object: new,
            managers,
            schedule_ready,
        }),
        warnings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    fn ctx(faults: &FaultInjector) -> WriteCtx<'_> {
        WriteCtx {
            faults,
            ready_delay: Duration::ZERO,
            validation: FieldValidation::Warn,
            now: "2024-01-01T00:00:00Z".into(),
        }
    }

    fn prepared(f: Finished) -> Prepared {
        match f {
            Finished::Write(p) => p,
            Finished::Unchanged(_) => panic!("expected a write"),
        }
    }

    #[test]
    fn create_sets_server_metadata_and_namespace_defaults() {
        let faults = FaultInjector::default();
        let ns = find("", "v1", "namespaces").unwrap();
        let body = json!({"metadata": {"name": "tenant-acme", "uid": "mine"}, "status": {"phase": "Bogus"}});
        let (f, warnings) = finish(
            ns,
            None,
            body,
            Ownership::Update("test".into()),
            &ctx(&faults),
        )
        .unwrap();
        let obj = prepared(f).object;
        assert!(warnings.is_empty());
        assert_ne!(obj["metadata"]["uid"], "mine");
        assert_eq!(obj["metadata"]["generation"], 1);
        assert_eq!(obj["metadata"]["creationTimestamp"], "2024-01-01T00:00:00Z");
        assert_eq!(
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "tenant-acme"
        );
        assert_eq!(obj["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(obj["status"]["phase"], "Active");
        assert_eq!(obj["metadata"]["managedFields"][0]["manager"], "test");
    }

    #[test]
    fn identical_update_is_unchanged_and_spec_change_bumps_generation() {
        let faults = FaultInjector::default();
        let cm = find("", "v1", "configmaps").unwrap();
        let body = json!({"metadata": {"name": "c", "namespace": "n"}, "data": {"a": "1"}});
        let (f, _) = finish(
            cm,
            None,
            body.clone(),
            Ownership::Update("m".into()),
            &ctx(&faults),
        )
        .unwrap();
        let p = prepared(f);
        let entry = Entry {
            object: p.object,
            rv: 1,
            managers: p.managers,
        };
        let (f, _) = finish(
            cm,
            Some(&entry),
            body.clone(),
            Ownership::Update("m".into()),
            &ctx(&faults),
        )
        .unwrap();
        assert!(matches!(f, Finished::Unchanged(_)));
        let mut changed = body;
        changed["data"]["a"] = json!("2");
        let (f, _) = finish(
            cm,
            Some(&entry),
            changed,
            Ownership::Update("m".into()),
            &ctx(&faults),
        )
        .unwrap();
        assert_eq!(prepared(f).object["metadata"]["generation"], 2);
    }

    #[test]
    fn invalid_labels_are_refused_and_unknown_fields_warned() {
        let faults = FaultInjector::default();
        let cm = find("", "v1", "configmaps").unwrap();
        let bad = json!({"metadata": {"name": "c", "labels": {"a": "not valid!"}}});
        let err = finish(cm, None, bad, Ownership::Update("m".into()), &ctx(&faults)).unwrap_err();
        assert_eq!(err.code, 422);
        let extra = json!({"metadata": {"name": "c"}, "bogus": true});
        let (f, warnings) = finish(
            cm,
            None,
            extra,
            Ownership::Update("m".into()),
            &ctx(&faults),
        )
        .unwrap();
        assert_eq!(warnings, vec!["unknown field \"bogus\""]);
        assert!(prepared(f).object.get("bogus").is_none());
    }

    #[test]
    fn secrets_fold_string_data() {
        let faults = FaultInjector::default();
        let s = find("", "v1", "secrets").unwrap();
        let body = json!({"metadata": {"name": "s"}, "stringData": {"k": "hi"}});
        let (f, _) = finish(s, None, body, Ownership::Update("m".into()), &ctx(&faults)).unwrap();
        let obj = prepared(f).object;
        assert_eq!(obj["data"]["k"], "aGk=");
        assert_eq!(obj["type"], "Opaque");
        assert!(obj.get("stringData").is_none());
    }

    #[test]
    fn workloads_get_simulated_status() {
        let faults = FaultInjector::default();
        let d = find("apps", "v1", "deployments").unwrap();
        let body = json!({"metadata": {"name": "web", "namespace": "n"}, "spec": {
            "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}});
        let (f, _) = finish(
            d,
            None,
            body.clone(),
            Ownership::Update("m".into()),
            &ctx(&faults),
        )
        .unwrap();
        let p = prepared(f);
        assert_eq!(p.object["status"]["availableReplicas"], 2);
        assert_eq!(p.schedule_ready, Some(false));
        faults.keep_unready("n", "Deployment", "web");
        let (f, _) = finish(d, None, body, Ownership::Update("m".into()), &ctx(&faults)).unwrap();
        let p = prepared(f);
        assert!(p.object["status"].get("availableReplicas").is_none());
        assert_eq!(p.schedule_ready, Some(true));
        assert_eq!(
            p.object["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }

    #[test]
    fn services_get_cluster_ip_and_port_defaults() {
        let faults = FaultInjector::default();
        let s = find("", "v1", "services").unwrap();
        let body = json!({"metadata": {"name": "web", "namespace": "n"}, "spec": {"ports": [{"port": 80}]}});
        let (f, _) = finish(s, None, body, Ownership::Update("m".into()), &ctx(&faults)).unwrap();
        let obj = prepared(f).object;
        assert!(
            obj["spec"]["clusterIP"]
                .as_str()
                .unwrap()
                .starts_with("10.96.")
        );
        assert_eq!(obj["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(obj["spec"]["ports"][0]["targetPort"], 80);
    }
}
