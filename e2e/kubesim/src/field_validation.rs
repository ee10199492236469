//! What the API server does with an object that does not match its schema
//! ([`crate::schema`]), as kube-apiserver does: a value of the wrong type fails decoding
//! (400 `BadRequest` for built-ins, 422 `Invalid` for custom resources); unknown fields
//! follow the request's `fieldValidation` (`Strict`: 400 `strict decoding error`, `Warn`,
//! the default: a `Warning` header each, `Ignore`: nothing); a missing required field or
//! a value outside an `enum` is 422 `Invalid`. Pure: the caller supplies the CRD.

use serde_json::Value;

use crate::resources::ResourceDef;
use crate::schema::{self, FieldError, Problem, SchemaError};
use crate::status::{ApiError, Cause};

/// The `fieldValidation` query parameter of create, update and patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Unknown fields are accepted silently.
    Ignore,
    /// Unknown fields are accepted with one `Warning` header each (upstream's default).
    #[default]
    Warn,
    /// Unknown fields fail the request (what kubectl sends by default).
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter; absent means [`FieldValidation::Warn`].
    pub fn from_query(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("" | "Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", got {other:?}"
            ))),
        }
    }
}

/// How one write request is carried out, and the warnings it collects for the client.
#[derive(Debug, Clone, Default)]
pub struct Write {
    /// `dryRun=All`: everything but storing.
    pub dry_run: bool,
    /// What unknown fields do.
    pub field_validation: FieldValidation,
    /// `Warning` header texts for the response.
    pub warnings: Vec<String>,
}

impl Write {
    /// The server's own writes (bootstrap, controllers): unknown fields ignored.
    pub fn internal(dry_run: bool) -> Self {
        Write {
            dry_run,
            field_validation: FieldValidation::Ignore,
            warnings: Vec::new(),
        }
    }
}

/// Checks `obj` of kind `def` against its schema (`crd` for custom resources), records
/// warnings in `write`, and fails as the real server would. Kinds without a schema (a CRD
/// without `openAPIV3Schema`) pass unchecked.
pub fn check(
    def: &ResourceDef,
    crd: Option<&Value>,
    obj: &Value,
    write: &mut Write,
) -> Result<(), ApiError> {
    let found = if def.custom {
        match crd {
            Some(crd) => schema::validate_custom(crd, &def.version, obj),
            None => return Ok(()),
        }
    } else {
        schema::validate_builtin(&def.group, &def.version, &def.kind, obj)
    };
    let errors = match found {
        Ok(errors) => errors,
        Err(SchemaError::UnknownKind { .. } | SchemaError::NoCrdSchema { .. }) => return Ok(()),
        Err(e) => return Err(ApiError::internal(e.to_string())),
    };
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let undecodable = format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}",
        kind = def.kind,
        version = def.version
    );
    let (types, rest): (Vec<&FieldError>, Vec<&FieldError>) = errors
        .iter()
        .partition(|e| matches!(e.problem, Problem::WrongType { .. }));
    if let Some(first) = types.first()
        && let Problem::WrongType { expected, found } = &first.problem
    {
        if !def.custom {
            return Err(ApiError::bad_request(format!(
                "{undecodable}: json: cannot unmarshal {found} into Go struct field .{} of type {expected}",
                first.path
            )));
        }
        let causes = types
            .iter()
            .filter_map(|e| match &e.problem {
                Problem::WrongType { expected, found } => Some(Cause {
                    field: e.path.clone(),
                    message: format!(
                        "Invalid value: \"{found}\": {} in body must be of type {expected}: \"{found}\"",
                        e.path
                    ),
                }),
                _ => None,
            })
            .collect();
        return Err(ApiError::invalid(&def.kind, &def.group, name, causes));
    }
    let (unknown, rest): (Vec<&FieldError>, Vec<&FieldError>) =
        rest.into_iter().partition(|e| e.is_unknown_field());
    let unknown: Vec<String> = unknown
        .iter()
        .map(|e| format!("unknown field \"{}\"", e.path))
        .collect();
    if !unknown.is_empty() {
        match write.field_validation {
            FieldValidation::Strict => {
                return Err(ApiError::bad_request(format!(
                    "{undecodable}: strict decoding error: {}",
                    unknown.join(", ")
                )));
            }
            FieldValidation::Warn => write.warnings.extend(unknown),
            FieldValidation::Ignore => {}
        }
    }
    let causes: Vec<Cause> = rest
        .iter()
        .map(|e| Cause {
            field: e.path.clone(),
            message: match &e.problem {
                Problem::NotInEnum { found, allowed } => format!(
                    "Unsupported value: {found}: supported values: {}",
                    allowed.join(", ")
                ),
                _ => "Required value".to_string(),
            },
        })
        .collect();
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&def.kind, &def.group, name, causes))
    }
}
