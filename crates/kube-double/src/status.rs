//! Errors as Kubernetes `metav1.Status` objects.
//!
//! Every failure the embedded API returns is a `Status` JSON body with the
//! `code`, `reason` and `details` a real API server would use, so that
//! `kube::Error::Api` parses it and callers can branch on `reason` and `code`
//! exactly as they would against a cluster.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::resources::ResourceDef;

/// A failed request, rendered as a `metav1.Status`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub(crate) struct ApiError {
    pub code: u16,
    /// `metav1.StatusReason`, e.g. `NotFound`, `Invalid`.
    pub reason: &'static str,
    pub message: String,
    /// `metav1.StatusDetails` as JSON (name, group, kind, causes, ...).
    pub details: Option<Value>,
    /// Sent as `Retry-After` and `details.retryAfterSeconds`.
    pub retry_after: Option<u64>,
}

/// One field-level problem of an `Invalid` error (`metav1.StatusCause`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: &'static str,
    /// Dotted path, e.g. `metadata.labels`.
    pub field: String,
    /// Human text already in Kubernetes' style (`Invalid value: "x": ...`).
    pub message: String,
}

impl Cause {
    pub(crate) fn invalid(field: impl Into<String>, value: &str, detail: impl AsRef<str>) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {}: {}", json!(value), detail.as_ref()),
        }
    }

    /// For non-string values; `value` is rendered as JSON like Go's `%v` would roughly.
    pub(crate) fn invalid_value(
        field: impl Into<String>,
        value: &Value,
        detail: impl AsRef<str>,
    ) -> Self {
        let shown = match value {
            Value::String(s) => json!(s).to_string(),
            other => other.to_string(),
        };
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {shown}: {}", detail.as_ref()),
        }
    }

    pub(crate) fn required(field: impl Into<String>, detail: impl AsRef<str>) -> Self {
        let detail = detail.as_ref();
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message: if detail.is_empty() {
                "Required value".to_string()
            } else {
                format!("Required value: {detail}")
            },
        }
    }

    pub(crate) fn forbidden(field: impl Into<String>, detail: impl AsRef<str>) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {}", detail.as_ref()),
        }
    }

    pub(crate) fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| json!(s).to_string()).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                json!(value),
                list.join(", ")
            ),
        }
    }

    pub(crate) fn too_long(field: impl Into<String>, max: usize) -> Self {
        Cause {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: must have at most {max} bytes"),
        }
    }

    /// `field: message`, the form real servers join into the Status message.
    pub(crate) fn render(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

fn details(res: &ResourceDef, name: &str) -> Value {
    // Real servers put the resource (plural) in `details.kind` for these errors.
    let mut d = json!({ "name": name, "kind": res.plural });
    if !res.group.is_empty() {
        d["group"] = json!(res.group);
    }
    d
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404 `<plural> "<name>" not found`.
    pub(crate) fn not_found(res: &ResourceDef, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", res.qualified_plural()),
        )
        .with_details(details(res, name))
    }

    /// 404 for a path that names no served resource.
    pub(crate) fn unknown_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// 409 `<plural> "<name>" already exists`.
    pub(crate) fn already_exists(res: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", res.qualified_plural()),
        )
        .with_details(details(res, name))
    }

    /// 409 for an update whose `resourceVersion` (or `uid`) precondition is stale.
    pub(crate) fn conflict(res: &ResourceDef, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                res.qualified_plural()
            ),
        )
        .with_details(details(res, name))
    }

    /// The standard stale-`resourceVersion` conflict.
    pub(crate) fn stale(res: &ResourceDef, name: &str) -> Self {
        Self::conflict(
            res,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 for server-side apply field-manager conflicts.
    pub(crate) fn apply_conflicts(
        res: &ResourceDef,
        name: &str,
        conflicts: &[(String, String)],
    ) -> Self {
        let api_version = res.api_version();
        let n = conflicts.len();
        let mut msg = format!(
            "Apply failed with {n} conflict{}:",
            if n == 1 { "" } else { "s" }
        );
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, field)| {
                msg.push_str(&format!(
                    " conflict with \"{manager}\" using {api_version}: {field};"
                ));
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{manager}\" using {api_version}"),
                    "field": field,
                })
            })
            .collect();
        let msg = msg.trim_end_matches(';').to_string();
        let mut d = details(res, name);
        d["causes"] = Value::Array(causes);
        Self::new(409, "Conflict", msg).with_details(d)
    }

    /// 422 `<Kind> "<name>" is invalid: ...` with one cause per problem.
    pub(crate) fn invalid(res: &ResourceDef, name: &str, causes: &[Cause]) -> Self {
        let joined = if causes.len() == 1 {
            causes[0].render()
        } else {
            format!(
                "[{}]",
                causes
                    .iter()
                    .map(Cause::render)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut d = json!({
            "name": name,
            "kind": res.kind,
            "causes": causes.iter().map(|c| json!({
                "reason": c.reason, "message": c.message, "field": c.field,
            })).collect::<Vec<_>>(),
        });
        if !res.group.is_empty() {
            d["group"] = json!(res.group);
        }
        Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {joined}", res.kind),
        )
        .with_details(d)
    }

    /// 400 BadRequest.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 403 `<plural> "<name>" is forbidden: <why>`.
    pub(crate) fn forbidden(res: &ResourceDef, name: &str, why: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!("{} \"{name}\" is forbidden: {why}", res.qualified_plural()),
        )
        .with_details(details(res, name))
    }

    /// 403 for creating inside a namespace that is being deleted, with the
    /// `NamespaceTerminating` cause that client code checks for.
    pub(crate) fn namespace_terminating(res: &ResourceDef, name: &str, namespace: &str) -> Self {
        let mut e = Self::forbidden(
            res,
            name,
            &format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
        );
        if let Some(d) = e.details.as_mut() {
            d["causes"] = json!([{
                "reason": "NamespaceTerminating",
                "message": format!("namespace {namespace} is being terminated"),
                "field": "metadata.namespace",
            }]);
        }
        e
    }

    pub(crate) fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// A `Status` for an arbitrary code, used by fault injection. The reason is
    /// the one a real server pairs with that code.
    pub(crate) fn from_code(code: u16, message: Option<String>) -> Self {
        let reason = reason_for_code(code);
        let message = message.unwrap_or_else(|| match code {
            429 => "Too many requests, please try again later.".to_string(),
            504 => "Timeout: request did not complete within requested timeout - context deadline exceeded".to_string(),
            500 => "Internal error occurred: injected fault".to_string(),
            _ => format!("injected fault: {reason}"),
        });
        let mut e = Self::new(code, reason, message);
        if code == 429 {
            e.retry_after = Some(1);
        }
        e
    }

    /// The `metav1.Status` body.
    pub(crate) fn to_status(&self) -> Value {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = self.details.clone();
        if let Some(secs) = self.retry_after {
            let d = details.get_or_insert_with(|| json!({}));
            d["retryAfterSeconds"] = json!(secs);
        }
        if let Some(d) = details {
            body["details"] = d;
        }
        body
    }
}

/// The `StatusReason` a real server uses for an HTTP code.
pub(crate) fn reason_for_code(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, axum::Json(self.to_status())).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The `Status` a real server returns for a successful delete of a kind that
/// does not return the deleted object.
pub(crate) fn delete_success(res: &ResourceDef, name: &str, uid: &str) -> Value {
    let mut d = details(res, name);
    d["uid"] = json!(uid);
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": d,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    #[test]
    fn not_found_is_a_kube_status() {
        let res = find("apps", "v1", "deployments").unwrap();
        let body = ApiError::not_found(res, "web").to_status();
        let s: kube::core::Status = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(s.code, 404);
        assert_eq!(s.reason, "NotFound");
        assert_eq!(s.message, "deployments.apps \"web\" not found");
        assert_eq!(body["details"]["group"], "apps");
    }

    #[test]
    fn invalid_joins_causes() {
        let res = find("", "v1", "configmaps").unwrap();
        let e = ApiError::invalid(
            res,
            "x",
            &[
                Cause::required("metadata.name", ""),
                Cause::invalid("metadata.labels", "a b", "bad"),
            ],
        );
        assert_eq!(
            e.message,
            "ConfigMap \"x\" is invalid: [metadata.name: Required value, metadata.labels: Invalid value: \"a b\": bad]"
        );
        assert_eq!(e.code, 422);
    }

    #[test]
    fn throttling_carries_retry_after() {
        let e = ApiError::from_code(429, None);
        assert_eq!(e.reason, "TooManyRequests");
        assert_eq!(e.to_status()["details"]["retryAfterSeconds"], 1);
    }
}
