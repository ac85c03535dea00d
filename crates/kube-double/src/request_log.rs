//! A record of the requests the embedded API received, in the terms RBAC
//! authorizes them: verb, API group, resource (and subresource), namespace
//! and name, or the path of a non-resource request (discovery, `/version`).
//!
//! It exists so that a test can run the worker against the embedded API and
//! check that the worker's ClusterRole (`k8s/worker/rbac.yaml`) allows every
//! request it made, and nothing more. Off until [`RequestLog::start`] is
//! called, so a long-running `dev` or `embedded-api` does not grow it.
//!
//! Verbs are derived as a real API server's request-info resolver does:
//! `GET` of an object is `get`, of a collection `list` (`watch` with
//! `?watch=true`), `POST` is `create`, `PUT` `update`, `PATCH` `patch`,
//! `DELETE` of an object `delete` and of a collection `deletecollection`.
//! A real server also authorizes `create` when an update or patch (a
//! server-side apply included, dry run or not) creates the object, so a `PUT`
//! or `PATCH` answered with `201 Created` is recorded twice: as itself and as
//! `create`.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode, header};

/// One authorization request, as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordedRequest {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`; for non-resource requests, the lower-cased method.
    pub verb: String,
    /// The resource's API group (`""` for core), or `None` for a non-resource
    /// request (whose path is in [`RecordedRequest::path`]).
    pub api_group: Option<String>,
    /// The plural resource, with `/subresource` when there is one
    /// (`deployments/status`), as RBAC rules name it; empty for non-resource requests.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// The URL path.
    pub path: String,
    /// The client's `User-Agent`, so a test can tell its own requests from the worker's.
    pub user_agent: Option<String>,
}

impl RecordedRequest {
    /// Whether this is a request for a resource (rather than `/api`, `/version`, ...).
    pub fn is_resource(&self) -> bool {
        self.api_group.is_some()
    }
}

/// Where a resource request went, from the router.
pub(super) struct ResourceTarget<'a> {
    pub group: &'a str,
    pub plural: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// A shared, cheaply cloned log; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct RequestLog(Arc<Mutex<Option<Vec<RecordedRequest>>>>);

impl RequestLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<RecordedRequest>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts recording (keeping what was already recorded).
    pub fn start(&self) {
        self.lock().get_or_insert_with(Vec::new);
    }

    /// Stops recording and forgets what was recorded.
    pub fn stop(&self) {
        *self.lock() = None;
    }

    /// Everything recorded so far, in arrival order.
    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        self.lock().clone().unwrap_or_default()
    }

    /// Records a resource request that was answered with `status`.
    pub(super) fn record_resource(
        &self,
        method: &Method,
        watch: bool,
        target: &ResourceTarget<'_>,
        headers: &HeaderMap,
        path: &str,
        status: StatusCode,
    ) {
        let mut log = self.lock();
        let Some(log) = log.as_mut() else { return };
        let collection = target.name.is_none();
        let verb = match *method {
            Method::GET if watch => "watch",
            Method::GET if collection => "list",
            Method::GET => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if collection => "deletecollection",
            Method::DELETE => "delete",
            _ => "unknown",
        };
        let resource = match target.subresource {
            Some(sub) => format!("{}/{sub}", target.plural),
            None => target.plural.to_owned(),
        };
        let entry = |verb: &str| RecordedRequest {
            verb: verb.to_owned(),
            api_group: Some(target.group.to_owned()),
            resource: resource.clone(),
            namespace: target.namespace.map(str::to_owned),
            name: target.name.map(str::to_owned),
            path: path.to_owned(),
            user_agent: user_agent(headers),
        };
        log.push(entry(verb));
        if matches!(verb, "update" | "patch") && status == StatusCode::CREATED {
            log.push(entry("create"));
        }
    }

    /// Records a non-resource request (discovery, `/version`, health).
    pub(super) fn record_non_resource(&self, method: &Method, headers: &HeaderMap, path: &str) {
        let mut log = self.lock();
        let Some(log) = log.as_mut() else { return };
        log.push(RecordedRequest {
            verb: method.as_str().to_ascii_lowercase(),
            api_group: None,
            resource: String::new(),
            namespace: None,
            name: None,
            path: path.to_owned(),
            user_agent: user_agent(headers),
        });
    }
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(name: Option<&'a str>) -> ResourceTarget<'a> {
        ResourceTarget {
            group: "apps",
            plural: "deployments",
            subresource: None,
            namespace: Some("ns"),
            name,
        }
    }

    #[test]
    fn verbs_are_derived_like_a_real_server_and_off_until_started() {
        let log = RequestLog::default();
        let h = HeaderMap::new();
        let ok = StatusCode::OK;
        log.record_resource(&Method::GET, false, &target(Some("a")), &h, "/", ok);
        assert!(log.snapshot().is_empty());
        log.start();
        log.record_resource(&Method::GET, false, &target(Some("a")), &h, "/", ok);
        log.record_resource(&Method::GET, false, &target(None), &h, "/", ok);
        log.record_resource(&Method::GET, true, &target(None), &h, "/", ok);
        log.record_resource(&Method::POST, false, &target(None), &h, "/", ok);
        log.record_resource(&Method::PATCH, false, &target(Some("a")), &h, "/", ok);
        let created = StatusCode::CREATED;
        log.record_resource(&Method::PATCH, false, &target(Some("a")), &h, "/", created);
        log.record_resource(&Method::DELETE, false, &target(Some("a")), &h, "/", ok);
        log.record_resource(&Method::DELETE, false, &target(None), &h, "/", ok);
        log.record_non_resource(&Method::GET, &h, "/apis");
        let verbs: Vec<String> = log.snapshot().into_iter().map(|r| r.verb).collect();
        assert_eq!(
            verbs,
            [
                "get",
                "list",
                "watch",
                "create",
                "patch",
                "patch",
                "create",
                "delete",
                "deletecollection",
                "get"
            ]
        );
        assert!(!log.snapshot().last().unwrap().is_resource());
        log.stop();
        assert!(log.snapshot().is_empty());
    }
}
