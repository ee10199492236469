//! Database schemas (RFC 7047 §3.2), as read from `.ovsschema` files or `get_schema`.
//!
//! The schema is what makes the wire format decodable (see [`crate::value`]) and what the
//! typed models in `rovn-ovsdb-schemas` are generated from.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json};

use crate::value::{Atom, ValueError};

/// Why a schema document is not a valid OVSDB schema.
#[derive(Debug, thiserror::Error)]
#[error("schema {at}: {reason}")]
pub struct SchemaError {
    /// Where in the schema: `table`, `table.column`, ...
    pub at: String,
    /// What is wrong there.
    pub reason: String,
}

fn schema_error(at: impl Into<String>, reason: impl Into<String>) -> SchemaError {
    SchemaError {
        at: at.into(),
        reason: reason.into(),
    }
}

/// One database's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseSchema {
    /// The database name (`OVN_Northbound`, ...), used in every request.
    pub name: String,
    /// The schema version, `x.y.z`.
    pub version: String,
    /// The checksum the schema file declares, if any.
    pub cksum: Option<String>,
    /// Tables by name.
    pub tables: BTreeMap<String, TableSchema>,
}

/// One table's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    /// The table name.
    pub name: String,
    /// Declared columns by name; `_uuid` and `_version` are implicit and not listed.
    pub columns: BTreeMap<String, ColumnSchema>,
    /// Bound on the number of rows, if any.
    pub max_rows: Option<u64>,
    /// Root tables keep rows that nothing references; others are garbage-collected.
    pub is_root: bool,
    /// Sets of columns whose values are unique across rows.
    pub indexes: Vec<Vec<String>>,
}

/// One column's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSchema {
    /// The column name.
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
    /// Ephemeral columns are not persisted by the server.
    pub ephemeral: bool,
    /// Immutable columns may be set only on insert.
    pub mutable: bool,
}

/// The five atomic types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AtomicType {
    /// 64-bit integer.
    Integer,
    /// Double.
    Real,
    /// Boolean.
    Boolean,
    /// UTF-8 string.
    String,
    /// Row identity or reference.
    Uuid,
}

impl AtomicType {
    /// The name used in schemas.
    pub fn as_str(self) -> &'static str {
        match self {
            AtomicType::Integer => "integer",
            AtomicType::Real => "real",
            AtomicType::Boolean => "boolean",
            AtomicType::String => "string",
            AtomicType::Uuid => "uuid",
        }
    }

    fn parse(s: &str) -> Option<AtomicType> {
        Some(match s {
            "integer" => AtomicType::Integer,
            "real" => AtomicType::Real,
            "boolean" => AtomicType::Boolean,
            "string" => AtomicType::String,
            "uuid" => AtomicType::Uuid,
            _ => return None,
        })
    }
}

/// Whether a reference keeps its target alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefType {
    /// The referenced row must exist; it is kept while referenced.
    #[default]
    Strong,
    /// The reference is dropped when its target is deleted.
    Weak,
}

/// The type of a column's keys or values, with its constraints.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseType {
    /// The atomic type.
    pub atomic: AtomicType,
    /// The allowed values, when the type is an enumeration.
    pub enumeration: Option<BTreeSet<Atom>>,
    /// Integer range.
    pub min_integer: Option<i64>,
    /// Integer range.
    pub max_integer: Option<i64>,
    /// Real range.
    pub min_real: Option<f64>,
    /// Real range.
    pub max_real: Option<f64>,
    /// String length range, in bytes.
    pub min_length: Option<u64>,
    /// String length range, in bytes.
    pub max_length: Option<u64>,
    /// The table a uuid refers to.
    pub ref_table: Option<String>,
    /// Strong or weak, for references.
    pub ref_type: RefType,
}

impl BaseType {
    /// An unconstrained base type.
    pub fn plain(atomic: AtomicType) -> BaseType {
        BaseType {
            atomic,
            enumeration: None,
            min_integer: None,
            max_integer: None,
            min_real: None,
            max_real: None,
            min_length: None,
            max_length: None,
            ref_table: None,
            ref_type: RefType::Strong,
        }
    }

    /// Parses `"integer"` or `{"type": "integer", "minInteger": ...}`.
    pub fn from_json(json: &Json) -> Result<BaseType, SchemaError> {
        let obj = match json {
            Json::String(s) => {
                return AtomicType::parse(s)
                    .map(BaseType::plain)
                    .ok_or_else(|| schema_error("type", format!("unknown atomic type {s:?}")));
            }
            Json::Object(obj) => obj,
            _ => return Err(schema_error("type", format!("not a base type: {json}"))),
        };
        let atomic = obj
            .get("type")
            .and_then(Json::as_str)
            .and_then(AtomicType::parse)
            .ok_or_else(|| {
                schema_error(
                    "type",
                    format!("base type without a valid \"type\": {json}"),
                )
            })?;
        let mut base = BaseType::plain(atomic);
        if let Some(e) = obj.get("enum") {
            let plain = crate::schema::ColumnType {
                key: BaseType::plain(atomic),
                value: None,
                min: 0,
                max: None,
            };
            let datum = crate::value::Datum::from_json_unbounded(e, &plain)
                .map_err(|err| schema_error("enum", err.to_string()))?;
            base.enumeration = datum.as_set().cloned();
        }
        base.min_integer = obj.get("minInteger").and_then(Json::as_i64);
        base.max_integer = obj.get("maxInteger").and_then(Json::as_i64);
        base.min_real = obj.get("minReal").and_then(Json::as_f64);
        base.max_real = obj.get("maxReal").and_then(Json::as_f64);
        base.min_length = obj.get("minLength").and_then(Json::as_u64);
        base.max_length = obj.get("maxLength").and_then(Json::as_u64);
        base.ref_table = obj.get("refTable").and_then(Json::as_str).map(String::from);
        base.ref_type = match obj.get("refType").and_then(Json::as_str) {
            Some("weak") => RefType::Weak,
            Some("strong") | None => RefType::Strong,
            Some(other) => {
                return Err(schema_error(
                    "refType",
                    format!("unknown refType {other:?}"),
                ));
            }
        };
        Ok(base)
    }

    /// Checks an atom of this type against the constraints.
    pub fn check(&self, atom: &Atom) -> Result<(), ValueError> {
        let violation = |constraint: String| ValueError::Constraint {
            atom: atom.to_json().to_string(),
            constraint,
        };
        if let Some(allowed) = &self.enumeration
            && !allowed.contains(atom)
        {
            let names: Vec<String> = allowed.iter().map(ToString::to_string).collect();
            return Err(violation(format!("one of {}", names.join(", "))));
        }
        match atom {
            Atom::Integer(i) => {
                if self.min_integer.is_some_and(|m| *i < m)
                    || self.max_integer.is_some_and(|m| *i > m)
                {
                    return Err(violation(format!(
                        "integer in [{}, {}]",
                        self.min_integer.unwrap_or(i64::MIN),
                        self.max_integer.unwrap_or(i64::MAX)
                    )));
                }
            }
            Atom::Real(r) => {
                if self.min_real.is_some_and(|m| *r < m) || self.max_real.is_some_and(|m| *r > m) {
                    return Err(violation("real within the column's range".to_string()));
                }
            }
            Atom::String(s) => {
                let n = s.len() as u64;
                if self.min_length.is_some_and(|m| n < m) || self.max_length.is_some_and(|m| n > m)
                {
                    return Err(violation(format!(
                        "length in [{}, {}]",
                        self.min_length.unwrap_or(0),
                        self.max_length
                            .map(|m| m.to_string())
                            .unwrap_or_else(|| "unlimited".into())
                    )));
                }
            }
            Atom::Boolean(_) | Atom::Uuid(_) | Atom::NamedUuid(_) => {}
        }
        Ok(())
    }
}

/// A column type: key type, optional value type (maps), and size bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnType {
    /// The type of the atoms (sets) or keys (maps).
    pub key: BaseType,
    /// The type of the values, for maps.
    pub value: Option<BaseType>,
    /// Minimum number of elements (0 or 1).
    pub min: u64,
    /// Maximum number of elements; `None` is unlimited.
    pub max: Option<u64>,
}

impl ColumnType {
    /// Parses a column type: an atomic type name, or `{"key": ..., "value": ..., "min": ..., "max": ...}`.
    pub fn from_json(json: &Json) -> Result<ColumnType, SchemaError> {
        if let Json::String(_) = json {
            return Ok(ColumnType {
                key: BaseType::from_json(json)?,
                value: None,
                min: 1,
                max: Some(1),
            });
        }
        let obj = json
            .as_object()
            .ok_or_else(|| schema_error("type", format!("not a column type: {json}")))?;
        let key = BaseType::from_json(
            obj.get("key")
                .ok_or_else(|| schema_error("type", "column type without \"key\""))?,
        )?;
        let value = obj.get("value").map(BaseType::from_json).transpose()?;
        let min = match obj.get("min") {
            None => 1,
            Some(m) => m
                .as_u64()
                .filter(|m| *m <= 1)
                .ok_or_else(|| schema_error("min", format!("min must be 0 or 1, got {m}")))?,
        };
        let max = match obj.get("max") {
            None => Some(1),
            Some(Json::String(s)) if s == "unlimited" => None,
            Some(m) => Some(
                m.as_u64()
                    .filter(|m| *m >= 1)
                    .ok_or_else(|| schema_error("max", format!("bad max {m}")))?,
            ),
        };
        Ok(ColumnType {
            key,
            value,
            min,
            max,
        })
    }

    /// Whether values are maps.
    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    /// Exactly one atom: a plain scalar column.
    pub fn is_scalar(&self) -> bool {
        !self.is_map() && self.min == 1 && self.max == Some(1)
    }

    /// Zero or one atom.
    pub fn is_optional(&self) -> bool {
        !self.is_map() && self.min == 0 && self.max == Some(1)
    }

    /// More than one element allowed: a set or map in the full sense, whose `update2`
    /// modifications are differences rather than new values.
    pub fn is_composite(&self) -> bool {
        self.max.is_none_or(|m| m > 1)
    }

    /// Checks a datum's size against `min`/`max`.
    pub fn check_size(&self, n: usize) -> Result<(), ValueError> {
        let n64 = n as u64;
        if n64 < self.min || self.max.is_some_and(|m| n64 > m) {
            return Err(ValueError::Size {
                n,
                min: self.min,
                max: self
                    .max
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "unlimited".into()),
            });
        }
        Ok(())
    }

    /// The type of the implicit `_uuid` and `_version` columns.
    pub fn uuid() -> ColumnType {
        ColumnType {
            key: BaseType::plain(AtomicType::Uuid),
            value: None,
            min: 1,
            max: Some(1),
        }
    }
}

impl DatabaseSchema {
    /// Parses a schema document (the `.ovsschema` file, or the `get_schema` result).
    pub fn from_json(json: &Json) -> Result<DatabaseSchema, SchemaError> {
        let obj = json
            .as_object()
            .ok_or_else(|| schema_error("schema", "not a JSON object"))?;
        let name = required_str(obj, "name", "schema")?;
        let version = obj
            .get("version")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        let cksum = obj.get("cksum").and_then(Json::as_str).map(String::from);
        let tables_json = obj
            .get("tables")
            .and_then(Json::as_object)
            .ok_or_else(|| schema_error(&name, "no \"tables\" object"))?;
        let mut tables = BTreeMap::new();
        for (table_name, table_json) in tables_json {
            tables.insert(
                table_name.clone(),
                TableSchema::from_json(table_name, table_json)?,
            );
        }
        Ok(DatabaseSchema {
            name,
            version,
            cksum,
            tables,
        })
    }

    /// A table by name.
    pub fn table(&self, name: &str) -> Option<&TableSchema> {
        self.tables.get(name)
    }
}

impl std::str::FromStr for DatabaseSchema {
    type Err = SchemaError;

    /// Parses a schema from the text of a `.ovsschema` file.
    fn from_str(text: &str) -> Result<DatabaseSchema, SchemaError> {
        let json: Json = serde_json::from_str(text)
            .map_err(|e| schema_error("schema", format!("not JSON: {e}")))?;
        Self::from_json(&json)
    }
}

impl TableSchema {
    fn from_json(name: &str, json: &Json) -> Result<TableSchema, SchemaError> {
        let obj = json
            .as_object()
            .ok_or_else(|| schema_error(name, "table is not an object"))?;
        let columns_json = obj
            .get("columns")
            .and_then(Json::as_object)
            .ok_or_else(|| schema_error(name, "no \"columns\" object"))?;
        let mut columns = BTreeMap::new();
        for (col_name, col_json) in columns_json {
            let at = format!("{name}.{col_name}");
            let col = col_json
                .as_object()
                .ok_or_else(|| schema_error(&at, "column is not an object"))?;
            let ty = ColumnType::from_json(
                col.get("type")
                    .ok_or_else(|| schema_error(&at, "column without \"type\""))?,
            )
            .map_err(|e| schema_error(format!("{at}.{}", e.at), e.reason))?;
            columns.insert(
                col_name.clone(),
                ColumnSchema {
                    name: col_name.clone(),
                    ty,
                    ephemeral: col
                        .get("ephemeral")
                        .and_then(Json::as_bool)
                        .unwrap_or(false),
                    mutable: col.get("mutable").and_then(Json::as_bool).unwrap_or(true),
                },
            );
        }
        let indexes = match obj.get("indexes") {
            None => Vec::new(),
            Some(Json::Array(list)) => list
                .iter()
                .map(|index| {
                    index
                        .as_array()
                        .and_then(|cols| {
                            cols.iter().map(|c| c.as_str().map(String::from)).collect()
                        })
                        .ok_or_else(|| schema_error(name, format!("bad index {index}")))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(schema_error(name, format!("bad indexes {other}"))),
        };
        Ok(TableSchema {
            name: name.to_string(),
            columns,
            max_rows: obj.get("maxRows").and_then(Json::as_u64),
            is_root: obj.get("isRoot").and_then(Json::as_bool).unwrap_or(false),
            indexes,
        })
    }

    /// A column's type, including the implicit `_uuid` and `_version`.
    pub fn column_type(&self, column: &str) -> Option<ColumnType> {
        match column {
            "_uuid" | "_version" => Some(ColumnType::uuid()),
            _ => self.columns.get(column).map(|c| c.ty.clone()),
        }
    }
}

fn required_str(obj: &Map<String, Json>, key: &str, at: &str) -> Result<String, SchemaError> {
    obj.get(key)
        .and_then(Json::as_str)
        .map(String::from)
        .ok_or_else(|| schema_error(at, format!("no string \"{key}\"")))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn parses_the_installed_schemas() {
        for (_, path, _) in rovn_testkit::schema::ALL {
            let Ok(text) = std::fs::read_to_string(path) else {
                panic!("{path} missing: run scripts/setup.sh");
            };
            let schema = DatabaseSchema::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(!schema.tables.is_empty(), "{path}");
        }
    }

    #[test]
    fn nb_columns_have_the_expected_shapes() {
        let text = std::fs::read_to_string(rovn_testkit::schema::NB).unwrap_or_default();
        let Ok(nb) = DatabaseSchema::from_str(&text) else {
            panic!("NB schema does not parse");
        };
        let lsp = &nb.tables["Logical_Switch_Port"];
        assert!(lsp.columns["name"].ty.is_scalar());
        assert!(lsp.columns["external_ids"].ty.is_map());
        assert!(lsp.columns["tag"].ty.is_optional());
        assert!(lsp.columns["addresses"].ty.is_composite());
        assert_eq!(lsp.indexes, vec![vec!["name".to_string()]]);
        let acl = &nb.tables["ACL"];
        assert!(
            acl.columns["action"]
                .ty
                .key
                .enumeration
                .as_ref()
                .is_some_and(|e| e.contains(&Atom::from("drop")))
        );
        let ls = &nb.tables["Logical_Switch"];
        assert_eq!(
            ls.columns["ports"].ty.key.ref_table.as_deref(),
            Some("Logical_Switch_Port")
        );
    }

    #[test]
    fn rejects_malformed_schemas() {
        assert!(DatabaseSchema::from_str("{").is_err());
        assert!(
            DatabaseSchema::from_str(
                r#"{"name":"x","tables":{"T":{"columns":{"c":{"type":"float"}}}}}"#
            )
            .is_err()
        );
        assert!(DatabaseSchema::from_str(r#"{"name":"x","tables":{"T":{"columns":{"c":{"type":{"key":"integer","min":2}}}}}}"#).is_err());
    }
}
