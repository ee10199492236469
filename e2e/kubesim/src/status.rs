//! API errors and the `meta.k8s.io/v1 Status` objects they become. kube-rs maps a
//! Status body into `kube::error::ErrorResponse` and kubectl prints its message, so
//! reason, code and details follow the real server's wording.

use serde_json::{Value, json};

/// One failed API request: what the client is told (as a `Status` object).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code, repeated in the Status body's `code`.
    pub code: u16,
    /// The machine-readable `reason` (`NotFound`, `Conflict`, ...).
    pub reason: &'static str,
    /// The human-readable message kubectl prints.
    pub message: String,
    /// `details` of the Status: the object concerned and any field causes.
    pub details: Option<Value>,
}

/// A field-level problem reported inside an `Invalid` Status.
#[derive(Debug, Clone)]
pub struct Cause {
    /// JSON path of the offending field, e.g. `metadata.name`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

fn details(resource: &str, group: &str, name: &str) -> Value {
    let mut d = json!({ "name": name, "kind": resource });
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// The object (or its namespace) does not exist.
    pub fn not_found(resource: &str, group: &str, name: &str) -> Self {
        ApiError {
            details: Some(details(resource, group, name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", qualified(resource, group)),
            )
        }
    }

    /// A create hit an existing name.
    pub fn already_exists(resource: &str, group: &str, name: &str) -> Self {
        ApiError {
            details: Some(details(resource, group, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", qualified(resource, group)),
            )
        }
    }

    /// Optimistic concurrency failed (stale resourceVersion, precondition, rebinding).
    pub fn conflict(resource: &str, group: &str, name: &str, why: &str) -> Self {
        ApiError {
            details: Some(details(resource, group, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": {why}",
                    qualified(resource, group)
                ),
            )
        }
    }

    /// The standard stale-resourceVersion conflict.
    pub fn stale(resource: &str, group: &str, name: &str) -> Self {
        Self::conflict(
            resource,
            group,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// The object failed validation (HTTP 422).
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let text: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let causes_json: Vec<Value> = causes
            .iter()
            .map(|c| json!({ "reason": "FieldValueInvalid", "message": c.message, "field": c.field }))
            .collect();
        let mut d = json!({ "name": name, "kind": kind, "causes": causes_json });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        ApiError {
            details: Some(d),
            ..Self::new(
                422,
                "Invalid",
                format!("{kind} \"{name}\" is invalid: {}", text.join(", ")),
            )
        }
    }

    /// The request itself is malformed (bad JSON, bad selector, mismatched namespace).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// The verb is not served on this path.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// The requested history (watch resourceVersion or continue token) is gone; clients re-list.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// The request is refused as the real server refuses it (e.g. terminating namespace).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// A body in a content type this endpoint does not take.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    /// Not acceptable: the client accepts no type this server produces.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    /// What the request needs is not reachable now (a pod to proxy to).
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// A request the server cannot serve for an internal reason (never expected).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The path names nothing this server serves.
    pub fn path_not_found(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// The `Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// A success `Status` (binding, some deletes), as the real server returns it.
pub fn success_status(code: u16, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}
