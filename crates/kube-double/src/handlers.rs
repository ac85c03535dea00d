//! HTTP: routing of Kubernetes API paths, query parameters, content
//! negotiation (full objects, `PartialObjectMetadata`, `Table`), fault
//! injection before serving, and the `/_embedded/*` control endpoints.
//!
//! Paths are routed by hand rather than with axum's router: the Kubernetes URL
//! space (`/api/v1/namespaces/{ns}` vs `/api/v1/namespaces/{ns}/{plural}`,
//! subresources) is easier to get right as a match over segments.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Bytes, to_bytes};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::admission::FieldValidation;
use super::discovery;
use super::faults::{FaultAction, FaultSpec};
use super::request_log::ResourceTarget;
use super::resources::{self, ResourceDef};
use super::selectors::{FieldSelector, LabelSelector};
use super::server::App;
use super::status::ApiError;
use super::table::{IncludeObject, partial_metadata, table};
use super::verbs::{
    self, ListParams, Listed, PatchKind, Preconditions, StatusWrite, WriteParams, Written,
};

/// Largest request body accepted; real servers allow 3 MiB.
const MAX_BODY: usize = 3 * 1024 * 1024;

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .fallback(dispatch)
        .with_state(app)
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// A resource request, parsed from the path.
#[derive(Debug)]
struct Target {
    res: &'static ResourceDef,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

#[derive(Debug)]
enum Route {
    Version,
    Health,
    Api,
    Apis,
    ApiGroup(String),
    ResourceList(String, String),
    Embedded(Vec<String>),
    Resource(Target),
    NotFound,
}

fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "livez" | "readyz", ..] => Route::Health,
        ["_embedded", rest @ ..] => Route::Embedded(rest.iter().map(|s| s.to_string()).collect()),
        ["api"] => Route::Api,
        ["api", "v1"] => Route::ResourceList(String::new(), "v1".into()),
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest),
        ["apis"] => Route::Apis,
        ["apis", g] => Route::ApiGroup(g.to_string()),
        ["apis", g, v] => Route::ResourceList(g.to_string(), v.to_string()),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let find = |plural: &str| resources::find(group, version, plural);
    let target = |res, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Route::Resource(Target {
            res,
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        })
    };
    match rest {
        // /namespaces/{ns}/{plural}[/{name}[/{sub}]] for namespaced resources.
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|r| r.namespaced) => {
            let res = find(plural).expect("checked in guard");
            match tail {
                [] => target(res, Some(ns), None, None),
                [name] => target(res, Some(ns), Some(name), None),
                [name, sub] => target(res, Some(ns), Some(name), Some(sub)),
                _ => Route::NotFound,
            }
        }
        [plural, tail @ ..] => match find(plural) {
            Some(res) => match tail {
                [] => target(res, None, None, None),
                [name] if !res.namespaced => target(res, None, Some(name), None),
                [name, sub] if !res.namespaced => target(res, None, Some(name), Some(sub)),
                _ => Route::NotFound,
            },
            None => Route::NotFound,
        },
        [] => Route::NotFound,
    }
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let headers = req.headers().clone();
    let response = match to_bytes(req.into_body(), MAX_BODY).await {
        Ok(body) => handle(&app, &method, &uri, &headers, body).await,
        Err(_) => ApiError::new(
            413,
            "RequestEntityTooLarge",
            "the request body is too large",
        )
        .into_response(),
    };
    tracing::debug!(method = %method, uri = %uri, status = response.status().as_u16(), "embedded api: request");
    record(&app, &method, &uri, &headers, response.status());
    response
}

/// Adds the request to the request log (a no-op unless recording is on).
fn record(app: &App, method: &Method, uri: &Uri, headers: &HeaderMap, status: StatusCode) {
    let path = uri.path();
    match route(path) {
        Route::Embedded(_) => {}
        Route::Resource(t) => {
            let query: HashMap<String, String> =
                Query::try_from_uri(uri).map(|q| q.0).unwrap_or_default();
            let target = ResourceTarget {
                group: t.res.group,
                plural: t.res.plural,
                subresource: t.subresource.as_deref(),
                namespace: t.namespace.as_deref(),
                name: t.name.as_deref(),
            };
            let watch = bool_param(&query, "watch");
            app.requests
                .record_resource(method, watch, &target, headers, path, status);
        }
        _ => app.requests.record_non_resource(method, headers, path),
    }
}

async fn handle(
    app: &Arc<App>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let query: HashMap<String, String> = Query::try_from_uri(uri).map(|q| q.0).unwrap_or_default();
    let route = route(uri.path());
    let discovery_doc = match &route {
        Route::Version => Some(Some(discovery::version())),
        Route::Api => Some(Some(discovery::api_versions(&app.server_address))),
        Route::Apis => Some(Some(discovery::api_group_list())),
        Route::ApiGroup(g) => Some(discovery::api_group(g)),
        Route::ResourceList(g, v) => Some(discovery::resource_list(g, v)),
        _ => None,
    };
    if let Some(doc) = discovery_doc {
        if method != Method::GET {
            return ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )
            .into_response();
        }
        return match doc {
            Some(doc) => json_response(StatusCode::OK, &doc),
            None => ApiError::unknown_path().into_response(),
        };
    }
    match route {
        Route::Health => (StatusCode::OK, "ok").into_response(),
        Route::Embedded(rest) => embedded(app, method, &rest, &body),
        Route::Resource(target) => {
            let (latency, fault) = app.faults.on_request(
                method.as_str(),
                target.res.plural,
                target.namespace.as_deref(),
                target.name.as_deref(),
            );
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            match fault {
                Some(FaultAction::Fail(e)) => return e.into_response(),
                Some(FaultAction::StallThenFail(stall, e)) => {
                    tokio::time::sleep(stall).await;
                    return e.into_response();
                }
                None => {}
            }
            serve_resource(app, method, headers, &query, &body, &target)
                .unwrap_or_else(IntoResponse::into_response)
        }
        _ => ApiError::unknown_path().into_response(),
    }
}

/// `/_embedded/faults` and `/_embedded/requests`: control of a running server.
fn embedded(app: &App, method: &Method, rest: &[String], body: &[u8]) -> Response {
    let faults = &app.faults;
    match (
        method,
        rest.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
    ) {
        (&Method::GET, ["faults"]) => json_response(StatusCode::OK, &json!(faults.snapshot())),
        (&Method::POST, ["faults"]) => match serde_json::from_slice::<FaultSpec>(body) {
            Ok(spec) => {
                faults.apply_spec(spec);
                json_response(StatusCode::OK, &json!(faults.snapshot()))
            }
            Err(e) => ApiError::bad_request(format!("invalid fault spec: {e}")).into_response(),
        },
        (&Method::DELETE, ["faults"]) => {
            faults.clear();
            json_response(StatusCode::OK, &json!(faults.snapshot()))
        }
        (&Method::GET, ["requests"]) => {
            let counts: Vec<Value> = faults
                .request_counts()
                .into_iter()
                .map(|((method, resource), count)| json!({"method": method, "resource": resource, "count": count}))
                .collect();
            json_response(StatusCode::OK, &json!(counts))
        }
        (&Method::DELETE, ["requests"]) => {
            faults.reset_request_counts();
            json_response(StatusCode::OK, &json!([]))
        }
        _ => ApiError::unknown_path().into_response(),
    }
}

/// How the client wants objects represented (from `Accept`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Repr {
    Full,
    Metadata,
    Table(IncludeObject),
}

fn representation(headers: &HeaderMap, query: &HashMap<String, String>) -> Repr {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.contains("as=Table") {
        Repr::Table(IncludeObject::parse(
            query.get("includeObject").map(String::as_str),
        ))
    } else if accept.contains("as=PartialObjectMetadata") {
        Repr::Metadata
    } else {
        Repr::Full
    }
}

fn bool_param(query: &HashMap<String, String>, name: &str) -> bool {
    matches!(query.get(name).map(String::as_str), Some("true" | "1"))
}

fn write_params(
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<WriteParams, ApiError> {
    let dry_run = match query.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other}"
            )));
        }
    };
    // DeleteOptions in a body can ask for a dry run too.
    let dry_run = dry_run
        || serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|b| b.get("dryRun").cloned())
            .is_some_and(|d| d == json!(["All"]));
    let validation = match query.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Ignore") => FieldValidation::Ignore,
        Some("Strict") => FieldValidation::Strict,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}. Valid values are Ignore, Warn, Strict"
            )));
        }
    };
    let explicit_manager = query.get("fieldManager").cloned();
    // Like a real server: without fieldManager, the user agent's product name.
    let manager = explicit_manager
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .and_then(|ua| ua.split('/').next())
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown")
                .to_string()
        });
    Ok(WriteParams {
        manager,
        explicit_manager,
        dry_run,
        force: bool_param(query, "force"),
        validation,
    })
}

fn list_params(res: &ResourceDef, query: &HashMap<String, String>) -> Result<ListParams, ApiError> {
    let labels = LabelSelector::parse(
        query
            .get("labelSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )
    .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(
        query
            .get("fieldSelector")
            .map(String::as_str)
            .unwrap_or_default(),
        res,
    )
    .map_err(ApiError::bad_request)?;
    let limit = match query.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?,
        ),
        None => None,
    };
    let continue_after = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => Some(
            decode_continue(token)
                .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?,
        ),
        None => None,
    };
    Ok(ListParams {
        labels,
        fields,
        limit,
        continue_after,
    })
}

/// Continue tokens are opaque to clients: hex of `namespace/name`.
fn encode_continue(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Option<(String, String)> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    let s = String::from_utf8(bytes?).ok()?;
    let (ns, name) = s.split_once('/')?;
    Some((ns.to_string(), name.to_string()))
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type})"
            ),
        ));
    }
    let parsed = if content_type.contains("yaml") {
        serde_yaml_ng::from_slice::<Value>(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })
}

fn preconditions_from_body(body: &[u8]) -> Result<Preconditions, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Preconditions::default());
    }
    let opts: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
    let get = |f: &str| {
        opts.pointer(&format!("/preconditions/{f}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok(Preconditions {
        uid: get("uid"),
        resource_version: get("resourceVersion"),
    })
}

fn render_object(obj: &Value, res: &ResourceDef, repr: Repr) -> Value {
    match repr {
        Repr::Full => obj.clone(),
        Repr::Metadata => partial_metadata(obj),
        Repr::Table(include) => table(
            res,
            std::slice::from_ref(obj),
            obj.pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            None,
            include,
        ),
    }
}

fn render_list(res: &ResourceDef, listed: Listed, repr: Repr) -> Value {
    let token = listed
        .continue_after
        .as_ref()
        .map(|(ns, n)| encode_continue(ns, n));
    match repr {
        Repr::Table(include) => table(
            res,
            &listed.items,
            &listed.resource_version,
            token.as_deref(),
            include,
        ),
        _ => {
            let mut metadata = json!({ "resourceVersion": listed.resource_version });
            if let Some(t) = &token {
                metadata["continue"] = json!(t);
                metadata["remainingItemCount"] = json!(listed.remaining);
            }
            let (kind, api_version, items): (String, String, Vec<Value>) = if repr == Repr::Metadata
            {
                (
                    "PartialObjectMetadataList".into(),
                    "meta.k8s.io/v1".into(),
                    listed.items.iter().map(partial_metadata).collect(),
                )
            } else {
                // Real servers leave apiVersion/kind out of list items.
                let items = listed
                    .items
                    .into_iter()
                    .map(|mut o| {
                        if let Some(m) = o.as_object_mut() {
                            m.remove("apiVersion");
                            m.remove("kind");
                        }
                        o
                    })
                    .collect();
                (format!("{}List", res.kind), res.api_version(), items)
            };
            json!({ "kind": kind, "apiVersion": api_version, "metadata": metadata, "items": items })
        }
    }
}

fn written_response(
    w: Written,
    res: &ResourceDef,
    repr: Repr,
    create_code: StatusCode,
) -> Response {
    let code = if w.created {
        create_code
    } else {
        StatusCode::OK
    };
    let mut resp = json_response(code, &render_object(&w.object, res, repr));
    for warning in &w.warnings {
        let text = format!("299 - {}", json!(warning));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

fn patch_kind(headers: &HeaderMap) -> Result<Option<PatchKind>, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = ct.split(';').next().unwrap_or_default().trim();
    match media {
        "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(None),
        "application/merge-patch+json" => Ok(Some(PatchKind::Merge)),
        "application/strategic-merge-patch+json" => Ok(Some(PatchKind::Strategic)),
        "application/json-patch+json" => Ok(Some(PatchKind::Json)),
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
            ),
        )),
    }
}

fn serve_resource(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: &[u8],
    t: &Target,
) -> Result<Response, ApiError> {
    let res = t.res;
    let ns = t.namespace.as_deref();
    let repr = representation(headers, query);
    if bool_param(query, "watch") {
        return Err(ApiError::method_not_allowed(
            "watch is not supported by the embedded Kubernetes API (a test double); use list and get",
        ));
    }
    let not_allowed = || {
        ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )
    };
    match (t.name.as_deref(), t.subresource.as_deref()) {
        (None, _) => match *method {
            Method::GET => {
                let listed = verbs::list(app, res, ns, &list_params(res, query)?);
                Ok(json_response(
                    StatusCode::OK,
                    &render_list(res, listed, repr),
                ))
            }
            Method::POST => {
                if res.namespaced && ns.is_none() {
                    return Err(not_allowed());
                }
                let params = write_params(headers, query, &[])?;
                let w = verbs::create(app, res, ns, parse_body(headers, body)?, &params)?;
                Ok(written_response(w, res, repr, StatusCode::CREATED))
            }
            Method::DELETE => {
                let params = write_params(headers, query, body)?;
                let list = verbs::delete_collection(
                    app,
                    res,
                    ns,
                    &list_params(res, query)?,
                    params.dry_run,
                )?;
                Ok(json_response(StatusCode::OK, &list))
            }
            _ => Err(not_allowed()),
        },
        (Some(name), None) => match *method {
            Method::GET => Ok(json_response(
                StatusCode::OK,
                &render_object(&verbs::get(app, res, ns, name)?, res, repr),
            )),
            Method::PUT => {
                let params = write_params(headers, query, &[])?;
                let w = verbs::replace(app, res, ns, name, parse_body(headers, body)?, &params)?;
                Ok(written_response(w, res, repr, StatusCode::CREATED))
            }
            Method::PATCH => {
                let params = write_params(headers, query, &[])?;
                let w = match patch_kind(headers)? {
                    None => verbs::apply(app, res, ns, name, body, &params)?,
                    Some(_) if params.force => {
                        return Err(ApiError::bad_request(
                            "Forbidden: may not be specified for non-apply patch",
                        ));
                    }
                    Some(kind) => verbs::patch(app, res, ns, name, kind, body, &params)?,
                };
                Ok(written_response(w, res, repr, StatusCode::CREATED))
            }
            Method::DELETE => {
                let params = write_params(headers, query, body)?;
                let pre = preconditions_from_body(body)?;
                let out = verbs::delete(app, res, ns, name, &pre, params.dry_run)?;
                Ok(json_response(StatusCode::OK, &out))
            }
            _ => Err(not_allowed()),
        },
        (Some(name), Some("status")) if res.has_status => match *method {
            Method::GET => Ok(json_response(
                StatusCode::OK,
                &render_object(&verbs::get(app, res, ns, name)?, res, repr),
            )),
            Method::PUT | Method::PATCH => {
                let params = write_params(headers, query, &[])?;
                let op = if *method == Method::PUT {
                    StatusWrite::Replace(parse_body(headers, body)?)
                } else {
                    match patch_kind(headers)? {
                        None => StatusWrite::Apply(body.to_vec()),
                        Some(kind) => StatusWrite::Patch(kind, body.to_vec()),
                    }
                };
                let w = verbs::write_status(app, res, ns, name, op, &params)?;
                Ok(written_response(w, res, repr, StatusCode::OK))
            }
            _ => Err(not_allowed()),
        },
        _ => Err(ApiError::unknown_path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        match route(path) {
            Route::Resource(t) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn routes() {
        assert!(matches!(route("/version"), Route::Version));
        assert!(matches!(route("/api"), Route::Api));
        assert!(matches!(route("/api/v1"), Route::ResourceList(g, v) if g.is_empty() && v == "v1"));
        assert!(matches!(route("/apis/apps"), Route::ApiGroup(g) if g == "apps"));
        let t = target("/api/v1/namespaces");
        assert_eq!((t.res.plural, t.name), ("namespaces", None));
        let t = target("/api/v1/namespaces/tenant-acme");
        assert_eq!(
            (t.res.plural, t.name.as_deref()),
            ("namespaces", Some("tenant-acme"))
        );
        let t = target("/api/v1/namespaces/tenant-acme/status");
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = target("/api/v1/namespaces/a/configmaps");
        assert_eq!(
            (t.res.plural, t.namespace.as_deref(), t.name),
            ("configmaps", Some("a"), None)
        );
        let t = target("/apis/apps/v1/namespaces/a/deployments/web/status");
        assert_eq!(
            (t.name.as_deref(), t.subresource.as_deref()),
            (Some("web"), Some("status"))
        );
        let t = target("/apis/apps/v1/deployments");
        assert_eq!((t.res.plural, t.namespace), ("deployments", None));
        assert!(matches!(route("/api/v1/configmaps/x"), Route::NotFound));
        assert!(matches!(route("/api/v1/widgets"), Route::NotFound));
        assert!(matches!(
            route("/apis/apps/v1/namespaces/a/nope"),
            Route::NotFound
        ));
    }

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue("ns", "a-b");
        assert_eq!(decode_continue(&t), Some(("ns".into(), "a-b".into())));
        assert_eq!(decode_continue("zz"), None);
    }

    #[test]
    fn accept_header_selects_representation() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            ),
        );
        assert_eq!(
            representation(&h, &HashMap::new()),
            Repr::Table(IncludeObject::Metadata)
        );
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            ),
        );
        assert_eq!(representation(&h, &HashMap::new()), Repr::Metadata);
    }
}
