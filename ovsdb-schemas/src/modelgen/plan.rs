//! What to generate for one schema, decided before any code is written.
//!
//! Separates the decisions (Rust names, field types, enums, docs) from the text emission so
//! that name clashes are found up front and reported as errors instead of as code that does
//! not compile.

use std::collections::{BTreeMap, BTreeSet};

use rovn_ovsdb::{AtomicType, BaseType, ColumnSchema, ColumnType, DatabaseSchema, RefType};

use super::GenError;
use super::naming;

/// A Rust enum for a string column restricted to an enumeration.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumPlan {
    /// The Rust type name, e.g. `AclAction`.
    pub name: String,
    /// Where it comes from, as a sentence start: ``The values of `ACL.action` ``.
    pub origin: String,
    /// `(variant, string)` pairs in the schema's (sorted) order; the first is the default.
    pub variants: Vec<(String, String)>,
}

/// One column as a struct field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPlan {
    /// The column name in the schema.
    pub column: String,
    /// The field name.
    pub field: String,
    /// The associated constant holding the column name.
    pub constant: String,
    /// The field's Rust type.
    pub rust_type: String,
    /// The doc comment, without the `///`.
    pub doc: String,
    /// Whether changes go element by element (`mutate`): unbounded sets and maps, whose
    /// elements other writers may add concurrently.
    pub elementwise: bool,
}

/// One table as a struct.
#[derive(Debug, Clone, PartialEq)]
pub struct TablePlan {
    /// The table name in the schema.
    pub table: String,
    /// The struct name.
    pub type_name: String,
    /// Whether the table is a root table (rows live without being referenced).
    pub is_root: bool,
    /// The table's bound on its number of rows, if any.
    pub max_rows: Option<u64>,
    /// Columns in name order.
    pub fields: Vec<FieldPlan>,
    /// The unique indexes, as constants of the struct's columns.
    pub indexes: Vec<Vec<String>>,
}

/// Everything generated for one database.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaPlan {
    /// The database name.
    pub database: String,
    /// The schema version.
    pub version: String,
    /// Tables in name order.
    pub tables: Vec<TablePlan>,
    /// Enums in the order their columns appear.
    pub enums: Vec<EnumPlan>,
}

/// Type names the generated module defines or imports besides tables and enums.
const RESERVED_TYPES: &[&str] = &[
    "AnyModel",
    "Changes",
    "Uuid",
    "Row",
    "Model",
    "ModelError",
    "EnumError",
    "StringEnum",
    "ToDatum",
    "DatabaseSchema",
    "BTreeMap",
    "BTreeSet",
    "LazyLock",
    "FromStr",
    "String",
    "Option",
    "Real",
];

/// The Rust type names handed out so far, with what claimed each, to report clashes.
struct TypeNames(BTreeMap<String, String>);

impl TypeNames {
    fn new() -> TypeNames {
        TypeNames(
            RESERVED_TYPES
                .iter()
                .map(|t| (t.to_string(), "the generated module".to_string()))
                .collect(),
        )
    }

    fn claim(&mut self, name: &str, origin: &str) -> Result<(), GenError> {
        match self.0.insert(name.to_string(), origin.to_string()) {
            Some(first) => Err(GenError::NameClash {
                name: name.to_string(),
                first,
                second: origin.to_string(),
            }),
            None => Ok(()),
        }
    }
}

/// Decides names, types and docs for every table and column of `schema`.
pub fn plan(schema: &DatabaseSchema) -> Result<SchemaPlan, GenError> {
    let mut names = TypeNames::new();
    let type_names: BTreeMap<&str, String> = schema
        .tables
        .keys()
        .map(|t| (t.as_str(), naming::type_name(t)))
        .collect();
    for (table, type_name) in &type_names {
        names.claim(type_name, &format!("table {table}"))?;
    }
    let mut tables = Vec::new();
    let mut enums = Vec::new();
    for (table_name, table) in &schema.tables {
        let type_name = &type_names[table_name.as_str()];
        let mut fields = Vec::new();
        let mut field_names = BTreeSet::from(["uuid".to_string()]);
        let mut constants = BTreeSet::new();
        for column in table.columns.values() {
            let origin = format!("{table_name}.{}", column.name);
            let mut enum_for = |base: &BaseType, role: EnumRole| {
                let Some(e) = enum_plan(type_name, &origin, &column.name, base, role)? else {
                    return Ok::<_, GenError>(None);
                };
                names.claim(&e.name, &e.origin)?;
                let name = e.name.clone();
                enums.push(e);
                Ok(Some(name))
            };
            let (key_enum, value_enum) = match &column.ty.value {
                Some(value) => (
                    enum_for(&column.ty.key, EnumRole::MapKeys)?,
                    enum_for(value, EnumRole::MapValues)?,
                ),
                None => (enum_for(&column.ty.key, EnumRole::Values)?, None),
            };
            let field = naming::field_name(&column.name);
            let constant = naming::const_name(&column.name);
            for (fresh, name) in [
                (
                    field_names.insert(field.clone()),
                    format!("{type_name}.{field}"),
                ),
                (
                    constants.insert(constant.clone()),
                    format!("{type_name}::{constant}"),
                ),
            ] {
                if !fresh {
                    return Err(GenError::NameClash {
                        name,
                        first: format!("another column of {table_name}"),
                        second: origin,
                    });
                }
            }
            fields.push(FieldPlan {
                column: column.name.clone(),
                field,
                constant,
                rust_type: rust_type(&column.ty, key_enum.as_deref(), value_enum.as_deref()),
                doc: column_doc(table_name, column, &type_names),
                elementwise: column.ty.max.is_none(),
            });
        }
        let mut indexes = Vec::new();
        for index in &table.indexes {
            let constants = index
                .iter()
                .map(|column| {
                    fields
                        .iter()
                        .find(|f| &f.column == column)
                        .map(|f| f.constant.clone())
                        .ok_or_else(|| GenError::UnknownIndexColumn {
                            table: table_name.clone(),
                            column: column.clone(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            indexes.push(constants);
        }
        tables.push(TablePlan {
            table: table_name.clone(),
            type_name: type_name.clone(),
            is_root: table.is_root,
            max_rows: table.max_rows,
            fields,
            indexes,
        });
    }
    Ok(SchemaPlan {
        database: schema.name.clone(),
        version: schema.version.clone(),
        tables,
        enums,
    })
}

/// Which part of a column an enumeration restricts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum EnumRole {
    /// The atoms of a scalar, optional or set column.
    Values,
    /// The keys of a map.
    MapKeys,
    /// The values of a map.
    MapValues,
}

/// The enum for `base` of column `origin` (`ACL.action`) of the table whose struct is
/// `table_type`, if it is a string enumeration.
fn enum_plan(
    table_type: &str,
    origin: &str,
    column: &str,
    base: &BaseType,
    role: EnumRole,
) -> Result<Option<EnumPlan>, GenError> {
    let Some(values) = string_enumeration(base) else {
        return Ok(None);
    };
    let (suffix, what) = match role {
        EnumRole::Values => ("", "The values of"),
        EnumRole::MapKeys => ("Key", "The keys of"),
        EnumRole::MapValues => ("Value", "The values of map"),
    };
    let name = format!("{table_type}{}{suffix}", naming::type_name(column));
    let mut variants: Vec<(String, String)> = Vec::new();
    for value in values {
        let variant = naming::variant_name(&value);
        if let Some((_, first)) = variants.iter().find(|(v, _)| *v == variant) {
            return Err(GenError::NameClash {
                name: format!("{name}::{variant}"),
                first: format!("value {first:?}"),
                second: format!("value {value:?}"),
            });
        }
        variants.push((variant, value));
    }
    Ok(Some(EnumPlan {
        origin: format!("{what} `{origin}`"),
        name,
        variants,
    }))
}

/// The values of a string enumeration; other enumerations (integers, ...) keep their plain
/// type, with the allowed values in the doc.
fn string_enumeration(base: &BaseType) -> Option<Vec<String>> {
    if base.atomic != AtomicType::String {
        return None;
    }
    let values = base.enumeration.as_ref()?;
    Some(
        values
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect(),
    )
}

fn atomic_rust(atomic: AtomicType) -> &'static str {
    match atomic {
        AtomicType::Integer => "i64",
        AtomicType::Real => "f64",
        AtomicType::Boolean => "bool",
        AtomicType::String => "String",
        AtomicType::Uuid => "Uuid",
    }
}

/// The field type: scalars plain, 0..1 as `Option`, sets as `BTreeSet`, maps as `BTreeMap`.
/// Reals that must be ordered (set elements, map keys) are [`rovn_ovsdb::model::Real`].
fn rust_type(ty: &ColumnType, key_enum: Option<&str>, value_enum: Option<&str>) -> String {
    let ordered = |atomic: AtomicType| match atomic {
        AtomicType::Real => "Real",
        other => atomic_rust(other),
    };
    if let Some(value) = &ty.value {
        let key = key_enum.unwrap_or(ordered(ty.key.atomic));
        let value = value_enum.unwrap_or(atomic_rust(value.atomic));
        return format!("BTreeMap<{key}, {value}>");
    }
    if ty.is_scalar() {
        key_enum.unwrap_or(atomic_rust(ty.key.atomic)).to_string()
    } else if ty.is_optional() {
        format!("Option<{}>", key_enum.unwrap_or(atomic_rust(ty.key.atomic)))
    } else {
        format!("BTreeSet<{}>", key_enum.unwrap_or(ordered(ty.key.atomic)))
    }
}

/// Describes a key or value type in words, linking referenced tables' structs.
fn base_doc(base: &BaseType, type_names: &BTreeMap<&str, String>) -> String {
    let mut doc = match (&base.ref_table, base.atomic) {
        (Some(table), AtomicType::Uuid) => {
            let strength = match base.ref_type {
                RefType::Strong => "strong",
                RefType::Weak => "weak",
            };
            match type_names.get(table.as_str()) {
                Some(ty) => format!("reference to a `{table}` row ([`{ty}`], {strength})"),
                None => format!("reference to a `{table}` row ({strength})"),
            }
        }
        (None, AtomicType::Uuid) => "UUID".to_string(),
        (_, atomic) => atomic.as_str().to_string(),
    };
    if let Some(values) = &base.enumeration {
        let names: Vec<String> = values
            .iter()
            .map(|a| format!("`{}`", a.to_json()))
            .collect();
        doc.push_str(&format!(", one of {}", names.join(", ")));
    }
    if base.min_integer.is_some() || base.max_integer.is_some() {
        doc.push_str(&format!(
            " in {}..={}",
            base.min_integer.map_or("".into(), |v| v.to_string()),
            base.max_integer.map_or("".into(), |v| v.to_string())
        ));
    }
    if base.min_real.is_some() || base.max_real.is_some() {
        doc.push_str(&format!(
            " in {}..={}",
            base.min_real.map_or("".into(), |v| format!("{v:?}")),
            base.max_real.map_or("".into(), |v| format!("{v:?}"))
        ));
    }
    if base.min_length.is_some() || base.max_length.is_some() {
        doc.push_str(&format!(
            " of {}..={} bytes",
            base.min_length.map_or("".into(), |v| v.to_string()),
            base.max_length.map_or("".into(), |v| v.to_string())
        ));
    }
    doc
}

fn column_doc(table: &str, column: &ColumnSchema, type_names: &BTreeMap<&str, String>) -> String {
    let ty = &column.ty;
    let key = base_doc(&ty.key, type_names);
    let shape = if let Some(value) = &ty.value {
        format!(
            "map ({}) from {key} to {}",
            bounds(ty),
            base_doc(value, type_names)
        )
    } else if ty.is_scalar() {
        key
    } else if ty.is_optional() {
        format!("optional {key}")
    } else {
        format!("set ({}) of {key}", bounds(ty))
    };
    let mut doc = format!("`{table}.{}`: {shape}.", column.name);
    if !column.mutable {
        doc.push_str(" Immutable: set on insert only.");
    }
    if column.ephemeral {
        doc.push_str(" Ephemeral: not persisted by the server.");
    }
    doc
}

fn bounds(ty: &ColumnType) -> String {
    match ty.max {
        Some(max) => format!("{} to {max} elements", ty.min),
        None => format!("{} or more elements", ty.min),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn schema(text: &str) -> DatabaseSchema {
        DatabaseSchema::from_str(text).unwrap_or_else(|e| panic!("test schema: {e}"))
    }

    #[test]
    fn column_shapes_map_to_rust_types() {
        let s = schema(
            r#"{"name":"D","version":"1.0.0","tables":{"T":{"columns":{
            "a":{"type":"string"},
            "b":{"type":{"key":"integer","min":0,"max":1}},
            "c":{"type":{"key":{"type":"uuid","refTable":"T"},"min":0,"max":"unlimited"}},
            "d":{"type":{"key":"string","value":"real","min":0,"max":"unlimited"}},
            "type":{"type":{"key":{"type":"string","enum":["set",["x-y","z"]]}}},
            "e":{"type":{"key":{"type":"string","enum":["set",["p","q"]]},"value":"boolean","min":0,"max":"unlimited"}}
            }}}}"#,
        );
        let plan = plan(&s).unwrap_or_else(|e| panic!("{e}"));
        let t = &plan.tables[0];
        let types: Vec<(&str, &str)> = t
            .fields
            .iter()
            .map(|f| (f.field.as_str(), f.rust_type.as_str()))
            .collect();
        assert_eq!(
            types,
            vec![
                ("a", "String"),
                ("b", "Option<i64>"),
                ("c", "BTreeSet<Uuid>"),
                ("d", "BTreeMap<String, f64>"),
                ("e", "BTreeMap<TEKey, bool>"),
                ("type_", "TType"),
            ]
        );
        assert_eq!(plan.enums[1].name, "TType");
        assert_eq!(
            plan.enums[1].variants,
            vec![
                ("XY".to_string(), "x-y".to_string()),
                ("Z".into(), "z".into())
            ]
        );
        assert!(
            t.fields[2].doc.contains("[`T`], strong"),
            "{}",
            t.fields[2].doc
        );
    }

    #[test]
    fn clashing_names_are_errors() {
        let s = schema(
            r#"{"name":"D","tables":{"A_B":{"columns":{"x":{"type":"string"}}},"a_b":{"columns":{"x":{"type":"string"}}}}}"#,
        );
        assert!(matches!(plan(&s), Err(GenError::NameClash { .. })));
        let s = schema(
            r#"{"name":"D","tables":{"T":{"columns":{"a-b":{"type":"string"},"a_b":{"type":"string"}}}}}"#,
        );
        assert!(matches!(plan(&s), Err(GenError::NameClash { .. })));
        let s = schema(
            r#"{"name":"D","tables":{"T":{"columns":{"k":{"type":{"key":{"type":"string","enum":["set",["a-b","a_b"]]}}}}}}}"#,
        );
        assert!(matches!(plan(&s), Err(GenError::NameClash { .. })));
    }
}
