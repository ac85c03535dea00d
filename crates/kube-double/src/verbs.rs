//! The Kubernetes verbs (get, list, create, update, patch, apply, delete,
//! deletecollection, and the `status` subresource) over the store, free of HTTP.
//!
//! Writes follow a real server's guaranteed update: read the current object
//! under the lock, compute the new one outside it (merge, defaults, decoding,
//! validation), then commit under the lock only if nobody wrote in between,
//! otherwise recompute. The lock is thus held for map operations only.

use serde_json::{Value, json};
use tokio::time::Instant;

use super::admission::{
    FieldValidation, Finished, Ownership, Prepared, check_fields, finish, now_ts,
    strip_server_metadata,
};
use super::apply::server_side_apply;
use super::controllers::quota_violation;
use super::patch::{json_patch, merge_patch};
use super::resources::{self, ResourceDef};
use super::selectors::{FieldSelector, LabelSelector};
use super::server::App;
use super::status::{ApiError, Cause, delete_success};
use super::store::{Entry, Key, NamespaceState, Store, key};
use super::validation::validate_apply_config;

/// Namespaces a real cluster refuses to delete.
const UNDELETABLE_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// What `kube-root-ca.crt` holds here: there is no CA, the server is plain HTTP.
const NO_CA_PEM: &str = "-----BEGIN CERTIFICATE-----\n(embedded test API: plain HTTP, no CA)\n-----END CERTIFICATE-----\n";

/// Filters and paging of a list.
#[derive(Debug, Default)]
pub(crate) struct ListParams {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    /// Resume after this `(namespace, name)` (decoded `continue` token).
    pub continue_after: Option<(String, String)>,
}

/// One page of a list.
#[derive(Debug)]
pub(crate) struct Listed {
    pub items: Vec<Value>,
    pub resource_version: String,
    pub continue_after: Option<(String, String)>,
    pub remaining: usize,
}

/// Options common to writes.
#[derive(Debug, Clone)]
pub(crate) struct WriteParams {
    /// Field manager for ownership (`fieldManager`, or derived from the user agent).
    pub manager: String,
    /// `fieldManager` exactly as sent, which apply requires.
    pub explicit_manager: Option<String>,
    pub dry_run: bool,
    pub force: bool,
    pub validation: FieldValidation,
}

/// The result of a write.
#[derive(Debug)]
pub(crate) struct Written {
    pub object: Value,
    pub created: bool,
    /// `Warning` headers to send (unknown fields).
    pub warnings: Vec<String>,
}

/// Preconditions of a delete (`DeleteOptions.preconditions`) or update.
#[derive(Debug, Default)]
pub(crate) struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn check_preconditions(
    res: &ResourceDef,
    name: &str,
    cur: &Entry,
    pre: &Preconditions,
) -> Result<(), ApiError> {
    if let Some(uid) = &pre.uid {
        let actual = str_at(&cur.object, "/metadata/uid").unwrap_or_default();
        if uid != actual {
            return Err(ApiError::conflict(
                res,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            ));
        }
    }
    if let Some(rv) = &pre.resource_version
        && *rv != cur.rv.to_string()
    {
        return Err(ApiError::stale(res, name));
    }
    Ok(())
}

fn preconditions_of(body: &Value) -> Preconditions {
    Preconditions {
        uid: str_at(body, "/metadata/uid").map(str::to_string),
        resource_version: str_at(body, "/metadata/resourceVersion").map(str::to_string),
    }
}

/// The body's apiVersion/kind must be the URL's resource (400 otherwise, as
/// a real server's decoder says). `required`: apply bodies must name them.
fn check_type(res: &ResourceDef, body: &Value, required: bool) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON or YAML object",
        ));
    }
    let expected = res.api_version();
    match body.get("apiVersion").and_then(Value::as_str) {
        None | Some("") if required => {
            return Err(ApiError::bad_request(
                "invalid object: Object 'apiVersion' is missing",
            ));
        }
        Some(v) if !v.is_empty() && v != expected => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected})"
            )));
        }
        _ => {}
    }
    match body.get("kind").and_then(Value::as_str) {
        None | Some("") if required => Err(ApiError::bad_request(
            "invalid object: Object 'Kind' is missing",
        )),
        Some(k) if !k.is_empty() && k != res.kind => Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({}) for {}",
            res.kind,
            res.qualified_plural()
        ))),
        _ => Ok(()),
    }
}

fn ensure_metadata(body: &mut Value) {
    if !body.get("metadata").is_some_and(Value::is_object) {
        body["metadata"] = json!({});
    }
}

/// The body's namespace must be the URL's (400 otherwise); absent, it is set.
/// Cluster-scoped objects lose any namespace, as on a real server.
fn resolve_namespace(
    res: &ResourceDef,
    url_ns: Option<&str>,
    body: &mut Value,
) -> Result<Option<String>, ApiError> {
    ensure_metadata(body);
    let meta = body["metadata"].as_object_mut().expect("ensured above");
    if !res.namespaced {
        meta.remove("namespace");
        return Ok(None);
    }
    let url_ns = url_ns.unwrap_or("default");
    match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() && ns != url_ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta.insert("namespace".into(), json!(url_ns));
            Ok(Some(url_ns.to_string()))
        }
    }
}

/// The body's name must be the URL's (400 otherwise); absent, it is set.
fn resolve_name(body: &mut Value, url_name: &str) -> Result<(), ApiError> {
    ensure_metadata(body);
    match str_at(body, "/metadata/name") {
        Some(n) if n != url_name => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({url_name})"
        ))),
        _ => {
            body["metadata"]["name"] = json!(url_name);
            Ok(())
        }
    }
}

fn generate_name(prefix: &str) -> String {
    // Same alphabet and length as the apiserver's name generator.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let prefix: String = prefix.chars().take(58).collect();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// Namespace lifecycle admission for creating `name` in `namespace`.
fn namespace_admission(
    store: &Store,
    res: &ResourceDef,
    namespace: &str,
    name: &str,
) -> Result<(), ApiError> {
    match store.namespace_state(namespace) {
        NamespaceState::Active => Ok(()),
        NamespaceState::Missing => Err(ApiError::not_found(resources::namespaces(), namespace)),
        NamespaceState::Terminating => Err(ApiError::namespace_terminating(res, name, namespace)),
    }
}

/// Stores a prepared object under the lock: assigns the resourceVersion and
/// does the bookkeeping of the simulated controllers. Returns the stored object.
fn commit(
    store: &mut Store,
    app: &App,
    res: &'static ResourceDef,
    key: &Key,
    prepared: Prepared,
    created: bool,
) -> Value {
    let rv = store.next_rv();
    let mut object = prepared.object;
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    let finalized = !res.is("", "Namespace")
        && object.pointer("/metadata/deletionTimestamp").is_some()
        && object
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
    if finalized {
        // The last finalizer of an object being deleted is gone: it goes now.
        store.remove(key);
        store.quota_dirty.insert(key.1.clone());
        tracing::debug!(resource = res.plural, namespace = %key.1, name = %key.2, "embedded api: finalized");
        return object;
    }
    store.insert(
        key.clone(),
        Entry {
            object: object.clone(),
            rv,
            managers: prepared.managers,
        },
    );
    match prepared.schedule_ready {
        Some(true) => {
            store
                .pending_ready
                .insert(key.clone(), Instant::now() + app.config.ready_delay);
        }
        Some(false) => {
            store.pending_ready.remove(key);
        }
        None => {}
    }
    if res.namespaced && (created || res.is("", "ResourceQuota")) {
        store.quota_dirty.insert(key.1.clone());
    }
    if created && res.is("", "Namespace") {
        seed_namespace(store, app, &key.2);
    }
    tracing::debug!(resource = res.plural, namespace = %key.1, name = %key.2, rv, created, "embedded api: stored");
    object
}

/// Creates an object as the system would (bootstrap, namespace seeding),
/// under an already held lock.
fn create_internal(
    store: &mut Store,
    app: &App,
    res: &'static ResourceDef,
    obj: Value,
    manager: &str,
) {
    let ctx = app.write_ctx(FieldValidation::Strict);
    let name = str_at(&obj, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let ns = str_at(&obj, "/metadata/namespace").map(str::to_string);
    let k = key(res, ns.as_deref(), &name);
    if store.get(&k).is_some() {
        return;
    }
    match finish(res, None, obj, Ownership::Update(manager.to_string()), &ctx) {
        Ok((Finished::Write(p), _)) => {
            commit(store, app, res, &k, p, true);
        }
        Ok((Finished::Unchanged(_), _)) => {}
        Err(e) => tracing::warn!(error = %e, "embedded api: could not create a system object"),
    }
}

/// What the controllers of a real cluster add to every new namespace.
fn seed_namespace(store: &mut Store, app: &App, namespace: &str) {
    let sa = resources::find("", "v1", "serviceaccounts").expect("served");
    let cm = resources::find("", "v1", "configmaps").expect("served");
    create_internal(
        store,
        app,
        sa,
        json!({"metadata": {"name": "default", "namespace": namespace}}),
        "kube-controller-manager",
    );
    create_internal(
        store,
        app,
        cm,
        json!({
            "metadata": {
                "name": "kube-root-ca.crt",
                "namespace": namespace,
                "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."},
            },
            "data": {"ca.crt": NO_CA_PEM},
        }),
        "kube-controller-manager",
    );
}

/// Creates the namespaces every cluster starts with.
pub(crate) fn bootstrap(app: &App) {
    let mut store = app.store();
    for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        create_internal(
            &mut store,
            app,
            resources::namespaces(),
            json!({"metadata": {"name": ns}}),
            "kube-apiserver",
        );
    }
}

/// The optimistic write loop (see module docs). `plan` computes the outcome
/// from the current entry; it may run more than once.
fn write_loop(
    app: &App,
    res: &'static ResourceDef,
    key: &Key,
    params: &WriteParams,
    mut plan: impl FnMut(Option<&Entry>) -> Result<(Finished, Vec<String>), ApiError>,
) -> Result<Written, ApiError> {
    loop {
        let snapshot = app.store().get(key).cloned();
        let (finished, warnings) = plan(snapshot.as_ref())?;
        let mut store = app.store();
        if store.get(key).map(|e| e.rv) != snapshot.as_ref().map(|e| e.rv) {
            // Someone wrote in between: recompute against the new state.
            continue;
        }
        let created = snapshot.is_none();
        let prepared = match finished {
            Finished::Unchanged(object) => {
                return Ok(Written {
                    object,
                    created: false,
                    warnings,
                });
            }
            Finished::Write(p) => p,
        };
        if created && res.namespaced {
            namespace_admission(&store, res, &key.1, &key.2)?;
            if let Some(e) = quota_violation(&store, res, &key.1, &key.2) {
                return Err(e);
            }
        }
        if params.dry_run {
            let mut object = prepared.object;
            if let Some(s) = &snapshot {
                object["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            }
            return Ok(Written {
                object,
                created,
                warnings,
            });
        }
        let object = commit(&mut store, app, res, key, prepared, created);
        drop(store);
        app.wake.notify_one();
        return Ok(Written {
            object,
            created,
            warnings,
        });
    }
}

/// GET of one object; 404 `NotFound` when absent.
pub(crate) fn get(
    app: &App,
    res: &'static ResourceDef,
    namespace: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    app.store()
        .get(&key(res, namespace, name))
        .map(|e| e.object.clone())
        .ok_or_else(|| ApiError::not_found(res, name))
}

/// LIST in one namespace or (`None`) across all, sorted by namespace and name.
/// Lists of a namespace that does not exist are empty, as on a real server.
pub(crate) fn list(
    app: &App,
    res: &'static ResourceDef,
    namespace: Option<&str>,
    params: &ListParams,
) -> Listed {
    let store = app.store();
    let mut items = Vec::new();
    let mut remaining = 0;
    let mut last = None;
    for ((_, ns, name), e) in store.list(res, namespace) {
        if let Some((cns, cname)) = &params.continue_after
            && (ns, name) <= (cns, cname)
        {
            continue;
        }
        if !params.labels.matches_object(&e.object) || !params.fields.matches(&e.object) {
            continue;
        }
        if params.limit.is_some_and(|l| l > 0 && items.len() >= l) {
            remaining += 1;
            continue;
        }
        items.push(e.object.clone());
        last = Some((ns.clone(), name.clone()));
    }
    Listed {
        items,
        resource_version: store.current_rv().to_string(),
        continue_after: if remaining > 0 { last } else { None },
        remaining,
    }
}

/// POST: creates an object. 409 `AlreadyExists`, 404 when the namespace does
/// not exist, 403 `NamespaceTerminating`, 422 `Invalid`, 400 for bodies that
/// do not decode or whose type/namespace does not match the URL.
pub(crate) fn create(
    app: &App,
    res: &'static ResourceDef,
    url_ns: Option<&str>,
    mut body: Value,
    params: &WriteParams,
) -> Result<Written, ApiError> {
    check_type(res, &body, false)?;
    let ns = resolve_namespace(res, url_ns, &mut body)?;
    if str_at(&body, "/metadata/resourceVersion").is_some() {
        return Err(ApiError::internal(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    strip_server_metadata(&mut body);
    let name = match (
        str_at(&body, "/metadata/name"),
        str_at(&body, "/metadata/generateName"),
    ) {
        (Some(n), _) => n.to_string(),
        (None, Some(prefix)) => {
            let n = generate_name(prefix);
            body["metadata"]["name"] = json!(n);
            n
        }
        (None, None) => {
            return Err(ApiError::invalid(
                res,
                "",
                &[Cause::required(
                    "metadata.name",
                    "name or generateName is required",
                )],
            ));
        }
    };
    if let Some(ns) = &ns {
        namespace_admission(&app.store(), res, ns, &name)?;
    }
    let k = key(res, ns.as_deref(), &name);
    let ctx = app.write_ctx(params.validation);
    write_loop(app, res, &k, params, |current| {
        let out = finish(
            res,
            None,
            body.clone(),
            Ownership::Update(params.manager.clone()),
            &ctx,
        )?;
        if current.is_some() {
            return Err(ApiError::already_exists(res, &name));
        }
        Ok(out)
    })
}

/// PUT: replaces an object. 404 when absent; 409 `Conflict` when the body's
/// `resourceVersion` is set and stale.
pub(crate) fn replace(
    app: &App,
    res: &'static ResourceDef,
    url_ns: Option<&str>,
    name: &str,
    mut body: Value,
    params: &WriteParams,
) -> Result<Written, ApiError> {
    check_type(res, &body, false)?;
    resolve_namespace(res, url_ns, &mut body)?;
    resolve_name(&mut body, name)?;
    let pre = preconditions_of(&body);
    strip_server_metadata(&mut body);
    let k = key(res, url_ns.filter(|_| res.namespaced), name);
    let ctx = app.write_ctx(params.validation);
    write_loop(app, res, &k, params, |current| {
        let cur = current.ok_or_else(|| ApiError::not_found(res, name))?;
        check_preconditions(res, name, cur, &pre)?;
        finish(
            res,
            Some(cur),
            body.clone(),
            Ownership::Update(params.manager.clone()),
            &ctx,
        )
    })
}

/// Patch formats other than apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`, treated as a merge patch
    /// (directives such as `$patch` and `$setElementOrder` are dropped).
    Strategic,
    /// `application/json-patch+json`
    Json,
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// Computes the patched object; shared by the main resource and `/status`.
fn patched(kind: PatchKind, current: &Value, patch: &Value) -> Result<Value, ApiError> {
    match kind {
        PatchKind::Json => json_patch(current, patch).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {e}"),
            )
        }),
        PatchKind::Merge | PatchKind::Strategic => {
            let mut obj = current.clone();
            merge_patch(&mut obj, patch);
            Ok(obj)
        }
    }
}

fn parse_patch(kind: PatchKind, body: &[u8]) -> Result<Value, ApiError> {
    let mut patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    match kind {
        PatchKind::Json if !patch.is_array() => {
            Err(ApiError::bad_request("a JSON patch must be an array"))
        }
        PatchKind::Merge | PatchKind::Strategic if !patch.is_object() => {
            Err(ApiError::bad_request("a merge patch must be a JSON object"))
        }
        PatchKind::Strategic => {
            strip_directives(&mut patch);
            Ok(patch)
        }
        _ => Ok(patch),
    }
}

/// PATCH with a merge, strategic-merge or JSON patch. 404 when absent; 409
/// when the patch sets a stale `resourceVersion`.
pub(crate) fn patch(
    app: &App,
    res: &'static ResourceDef,
    url_ns: Option<&str>,
    name: &str,
    kind: PatchKind,
    body: &[u8],
    params: &WriteParams,
) -> Result<Written, ApiError> {
    let patch = parse_patch(kind, body)?;
    let k = key(res, url_ns.filter(|_| res.namespaced), name);
    let ctx = app.write_ctx(params.validation);
    write_loop(app, res, &k, params, |current| {
        let cur = current.ok_or_else(|| ApiError::not_found(res, name))?;
        let mut obj = patched(kind, &cur.object, &patch)?;
        // A patch that sets resourceVersion or uid makes them preconditions.
        let mut pre = preconditions_of(&obj);
        if pre.resource_version.as_deref() == str_at(&cur.object, "/metadata/resourceVersion") {
            pre.resource_version = None;
        }
        check_preconditions(res, name, cur, &pre)?;
        check_type(res, &obj, false)?;
        resolve_name(&mut obj, name)?;
        resolve_namespace(res, url_ns, &mut obj)?;
        strip_server_metadata(&mut obj);
        finish(
            res,
            Some(cur),
            obj,
            Ownership::Update(params.manager.clone()),
            &ctx,
        )
    })
}

/// Parses an apply body: YAML (which includes JSON).
fn parse_apply_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_yaml_ng::from_slice::<Value>(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

/// Server-side apply (PATCH `application/apply-patch+yaml`): creates the object
/// when absent, else merges per [`super::apply`]. 422 without `fieldManager`,
/// 409 on conflicts with other managers unless `force`.
pub(crate) fn apply(
    app: &App,
    res: &'static ResourceDef,
    url_ns: Option<&str>,
    name: &str,
    body: &[u8],
    params: &WriteParams,
) -> Result<Written, ApiError> {
    let Some(manager) = params.explicit_manager.clone().filter(|m| !m.is_empty()) else {
        return Err(ApiError::new(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    };
    let mut applied = parse_apply_body(body)?;
    check_type(res, &applied, true)?;
    let ns = resolve_namespace(res, url_ns, &mut applied)?;
    resolve_name(&mut applied, name)?;
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|m| m.as_array().is_none_or(|a| !a.is_empty()))
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let pre = preconditions_of(&applied);
    strip_server_metadata(&mut applied);
    if res.has_status
        && let Some(m) = applied.as_object_mut()
    {
        m.remove("status");
    }
    validate_apply_config(res, name, &applied)?;
    let decode_warnings = check_fields(res, &mut applied, params.validation)?;
    let k = key(res, ns.as_deref(), name);
    let ctx = app.write_ctx(params.validation);
    let api_version = res.api_version();
    write_loop(app, res, &k, params, |current| {
        match current {
            Some(cur) => check_preconditions(res, name, cur, &pre)?,
            None => {
                if let Some(ns) = &ns {
                    namespace_admission(&app.store(), res, ns, name)?;
                }
            }
        }
        let (merged, managers) = server_side_apply(
            current.map(|c| (&c.object, &c.managers)),
            &applied,
            &manager,
            &api_version,
            params.force,
            &ctx.now,
        )
        .map_err(|conflicts| ApiError::apply_conflicts(res, name, &conflicts))?;
        let (finished, mut warnings) =
            finish(res, current, merged, Ownership::Apply(managers), &ctx)?;
        warnings.extend(decode_warnings.iter().cloned());
        Ok((finished, warnings))
    })
}

/// How a `/status` write changes the status.
#[derive(Debug)]
pub(crate) enum StatusWrite {
    Replace(Value),
    Patch(PatchKind, Vec<u8>),
    Apply(Vec<u8>),
}

/// Writes to the `status` subresource: only `.status` changes; no ownership
/// tracking for status.
pub(crate) fn write_status(
    app: &App,
    res: &'static ResourceDef,
    url_ns: Option<&str>,
    name: &str,
    op: StatusWrite,
    params: &WriteParams,
) -> Result<Written, ApiError> {
    let input = match &op {
        StatusWrite::Replace(body) => body.clone(),
        StatusWrite::Patch(kind, body) => parse_patch(*kind, body)?,
        StatusWrite::Apply(body) => {
            if params.explicit_manager.as_deref().is_none_or(str::is_empty) {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
            parse_apply_body(body)?
        }
    };
    let k = key(res, url_ns.filter(|_| res.namespaced), name);
    write_loop(app, res, &k, params, |current| {
        let cur = current.ok_or_else(|| ApiError::not_found(res, name))?;
        let status = match &op {
            StatusWrite::Replace(_) => input.get("status").cloned(),
            StatusWrite::Patch(kind, _) => {
                patched(*kind, &cur.object, &input)?.get("status").cloned()
            }
            StatusWrite::Apply(_) => {
                let mut s = cur
                    .object
                    .get("status")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                if let Some(applied) = input.get("status") {
                    merge_patch(&mut s, applied);
                }
                Some(s)
            }
        };
        let mut obj = cur.object.clone();
        match status {
            Some(s) => obj["status"] = s,
            None => {
                if let Some(m) = obj.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        let warnings = check_fields(res, &mut obj, params.validation)?;
        if obj == cur.object {
            return Ok((Finished::Unchanged(obj), warnings));
        }
        Ok((
            Finished::Write(Prepared {
                object: obj,
                managers: cur.managers.clone(),
                schedule_ready: None,
            }),
            warnings,
        ))
    })
}

/// DELETE of one object. Namespaces become `Terminating` and are removed
/// (with their content) after the configured delay; objects with finalizers
/// get a `deletionTimestamp` and stay until their finalizers are removed.
/// Returns the object, or a `Status` of success for kinds a real server
/// answers that way. 404 when absent; 403 for `default`/`kube-system`/`kube-public`.
pub(crate) fn delete(
    app: &App,
    res: &'static ResourceDef,
    namespace: Option<&str>,
    name: &str,
    pre: &Preconditions,
    dry_run: bool,
) -> Result<Value, ApiError> {
    if res.is("", "Namespace") && UNDELETABLE_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(
            res,
            name,
            "this namespace may not be deleted",
        ));
    }
    let k = key(res, namespace.filter(|_| res.namespaced), name);
    let mut store = app.store();
    let entry = store
        .get(&k)
        .ok_or_else(|| ApiError::not_found(res, name))?;
    check_preconditions(res, name, entry, pre)?;
    let object = entry.object.clone();
    let being_deleted = object.pointer("/metadata/deletionTimestamp").is_some();
    let has_finalizers = object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    let deferred = res.is("", "Namespace") || has_finalizers;
    if dry_run {
        return Ok(if deferred || res.is("", "Pod") {
            object
        } else {
            delete_success(
                res,
                name,
                str_at(&object, "/metadata/uid").unwrap_or_default(),
            )
        });
    }
    if deferred {
        if being_deleted {
            return Ok(object);
        }
        let rv = store.next_rv();
        let entry = store.get_mut(&k).expect("checked above");
        entry.rv = rv;
        let obj = &mut entry.object;
        obj["metadata"]["deletionTimestamp"] = json!(now_ts());
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        if res.is("", "Namespace") {
            obj["status"]["phase"] = json!("Terminating");
        }
        let object = obj.clone();
        if res.is("", "Namespace") {
            store.terminating.insert(
                name.to_string(),
                Instant::now() + app.config.namespace_termination_delay,
            );
        }
        drop(store);
        app.wake.notify_one();
        tracing::debug!(
            resource = res.plural,
            name,
            "embedded api: deletion started"
        );
        return Ok(object);
    }
    store.remove(&k);
    store.next_rv();
    if res.namespaced {
        store.quota_dirty.insert(k.1.clone());
    }
    drop(store);
    app.wake.notify_one();
    tracing::debug!(resource = res.plural, namespace = %k.1, name, "embedded api: deleted");
    Ok(if res.is("", "Pod") {
        object
    } else {
        delete_success(
            res,
            name,
            str_at(&object, "/metadata/uid").unwrap_or_default(),
        )
    })
}

/// DELETE of a collection: deletes every object the selectors match and
/// returns them as a list. Namespaces do not support it (405).
pub(crate) fn delete_collection(
    app: &App,
    res: &'static ResourceDef,
    namespace: Option<&str>,
    params: &ListParams,
    dry_run: bool,
) -> Result<Value, ApiError> {
    if res.is("", "Namespace") {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let listed = list(app, res, namespace, params);
    let mut items = Vec::new();
    for obj in listed.items {
        let name = str_at(&obj, "/metadata/name")
            .unwrap_or_default()
            .to_string();
        let ns = str_at(&obj, "/metadata/namespace").map(str::to_string);
        match delete(
            app,
            res,
            ns.as_deref(),
            &name,
            &Preconditions::default(),
            dry_run,
        ) {
            Ok(_) => items.push(obj),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": res.api_version(),
        "metadata": {"resourceVersion": app.store().current_rv().to_string()},
        "items": items,
    }))
}
