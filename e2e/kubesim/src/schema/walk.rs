//! The schema walk: follows the object, resolving each schema's `$ref`s and `allOf`s into
//! one merged view, and records every mismatch with its path.

use serde_json::{Map, Value};

use super::{FieldError, Problem};

/// Whose rules apply where the two kinds of schema differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// A built-in kind (Go types): `null` decodes to the zero value anywhere, and an
    /// object schema without properties (RawExtension, FieldsV1) holds anything.
    Builtin,
    /// A CRD's structural schema: `null` needs `nullable`, and an object schema without
    /// properties holds nothing unless `x-kubernetes-preserve-unknown-fields`.
    Custom,
}

/// Recursion limit for `$ref` chains (the documents nest a few levels; a cycle of
/// references without an object in between would otherwise never end).
const MAX_REF_DEPTH: usize = 32;

/// A schema with its `$ref`s and `allOf`s merged.
#[derive(Default)]
struct View<'a> {
    type_: Option<&'a str>,
    properties: Vec<&'a Map<String, Value>>,
    required: Vec<&'a str>,
    additional: Option<&'a Value>,
    items: Option<&'a Value>,
    alternatives: Vec<&'a str>,
    enum_: Option<&'a Vec<Value>>,
    int_or_string: bool,
    preserve_unknown: bool,
    embedded: bool,
    nullable: bool,
}

impl<'a> View<'a> {
    fn property(&self, name: &str) -> Option<&'a Value> {
        self.properties.iter().find_map(|p| p.get(name))
    }
}

struct Walker<'a> {
    components: Option<&'a Map<String, Value>>,
    flavor: Flavor,
    errors: Vec<FieldError>,
}

/// Validates `value` against `schema`, resolving references in `components`; the
/// errors come sorted by path.
pub(super) fn validate(
    schema: &Value,
    components: Option<&Map<String, Value>>,
    flavor: Flavor,
    value: &Value,
) -> Vec<FieldError> {
    let mut w = Walker {
        components,
        flavor,
        errors: Vec::new(),
    };
    w.check(schema, value, &mut String::new());
    w.errors.sort_by(|a, b| a.path.cmp(&b.path));
    w.errors
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, v: &Value) -> bool {
    match expected {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        _ => true,
    }
}

impl<'a> Walker<'a> {
    /// Folds `schema` (and what its `$ref` and `allOf` name) into `view`, in one pass
    /// over each schema's keys: this runs for every value of every object written.
    fn merge(&self, schema: &'a Value, view: &mut View<'a>, depth: usize) {
        let Some(map) = schema.as_object() else {
            return;
        };
        if depth > MAX_REF_DEPTH {
            return;
        }
        let mut own_type = None;
        let mut own_additional = None;
        let mut own_items = None;
        let mut own_enum = None;
        for (key, value) in map {
            match key.as_str() {
                "$ref" => {
                    if let Some(target) = value
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                        .and_then(|name| self.components?.get(name))
                    {
                        self.merge(target, view, depth + 1);
                    }
                }
                "allOf" => {
                    for part in value.as_array().into_iter().flatten() {
                        self.merge(part, view, depth + 1);
                    }
                }
                "oneOf" | "anyOf" => {
                    for alt in value.as_array().into_iter().flatten() {
                        if let Some(t) = alt.get("type").and_then(Value::as_str) {
                            view.alternatives.push(t);
                        }
                    }
                }
                "type" => own_type = value.as_str(),
                "properties" => {
                    if let Some(p) = value.as_object() {
                        view.properties.push(p);
                    }
                }
                "required" => view.required.extend(
                    value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str),
                ),
                "additionalProperties" => own_additional = Some(value),
                "items" => own_items = Some(value),
                "enum" => own_enum = value.as_array(),
                "format" => view.int_or_string |= value.as_str() == Some("int-or-string"),
                "x-kubernetes-int-or-string" => view.int_or_string |= value == &Value::Bool(true),
                "x-kubernetes-preserve-unknown-fields" => {
                    view.preserve_unknown |= value == &Value::Bool(true)
                }
                "x-kubernetes-embedded-resource" => view.embedded |= value == &Value::Bool(true),
                "nullable" => view.nullable |= value == &Value::Bool(true),
                _ => {}
            }
        }
        view.type_ = view.type_.or(own_type);
        view.additional = view.additional.or(own_additional);
        view.items = view.items.or(own_items);
        view.enum_ = view.enum_.or(own_enum);
    }

    fn push(&mut self, path: &str, problem: Problem) {
        self.errors.push(FieldError {
            path: path.to_string(),
            problem,
        });
    }

    fn check(&mut self, schema: &'a Value, value: &Value, path: &mut String) {
        let mut view = View::default();
        self.merge(schema, &mut view, 0);
        if value.is_null() {
            if self.flavor == Flavor::Custom && !view.nullable && view.type_.is_some() {
                let expected = view.type_.unwrap_or_default().to_string();
                self.push(
                    path,
                    Problem::WrongType {
                        expected,
                        found: "null",
                    },
                );
            }
            return;
        }
        let wrong = |expected: String| Problem::WrongType {
            expected,
            found: json_type(value),
        };
        if view.int_or_string {
            if !(value.is_string() || value.is_i64() || value.is_u64()) {
                self.push(path, wrong("int-or-string".into()));
            }
            return;
        }
        if view.type_.is_none()
            && !view.alternatives.is_empty()
            && !view.alternatives.iter().any(|t| type_matches(t, value))
        {
            self.push(path, wrong(view.alternatives.join(" or ")));
            return;
        }
        if let Some(t) = view.type_
            && !type_matches(t, value)
        {
            self.push(path, wrong(t.to_string()));
            return;
        }
        if let Some(allowed) = view.enum_
            && !allowed.contains(value)
        {
            let problem = Problem::NotInEnum {
                found: value.to_string(),
                allowed: allowed.iter().map(Value::to_string).collect(),
            };
            self.push(path, problem);
        }
        match value {
            Value::Object(map) => self.check_object(&view, map, path),
            Value::Array(list) => {
                if let Some(items) = view.items {
                    for (i, item) in list.iter().enumerate() {
                        let len = path.len();
                        path.push_str(&format!("[{i}]"));
                        self.check(items, item, path);
                        path.truncate(len);
                    }
                }
            }
            _ => {}
        }
    }

    fn check_object(&mut self, view: &View<'a>, map: &Map<String, Value>, path: &mut String) {
        let field = |path: &mut String, key: &str| {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
        };
        for r in &view.required {
            if !map.contains_key(*r) {
                let len = path.len();
                field(path, r);
                self.push(path, Problem::Required);
                path.truncate(len);
            }
        }
        let opaque = view.properties.is_empty()
            && view.additional.is_none()
            && self.flavor == Flavor::Builtin;
        for (key, item) in map {
            let len = path.len();
            if let Some(s) = view.property(key) {
                field(path, key);
                self.check(s, item, path);
            } else if let Some(extra) = view.additional {
                match extra {
                    Value::Bool(true) => {}
                    Value::Bool(false) => {
                        field(path, key);
                        self.push(path, Problem::UnknownField);
                    }
                    s => {
                        path.push('[');
                        path.push_str(key);
                        path.push(']');
                        self.check(s, item, path);
                    }
                }
            } else if !(opaque
                || view.preserve_unknown
                || (view.embedded && matches!(key.as_str(), "apiVersion" | "kind" | "metadata")))
            {
                field(path, key);
                self.push(path, Problem::UnknownField);
            }
            path.truncate(len);
        }
    }
}
