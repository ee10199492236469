//! Transaction operations (RFC 7047 §5.2) and their results.
//!
//! A `transact` is a list of operations executed atomically. The server answers with one
//! result per operation; if one fails, its slot holds `{"error", "details"}` and later slots
//! are `null`. If every operation succeeds but the commit does not (a referential-integrity or
//! index violation found when the transaction is checked as a whole), the server appends one
//! extra result carrying that error. [`decode_results`] turns either case into
//! [`Error::Transaction`] naming the operation.

use serde_json::{Map, Value as Json, json};

use crate::abbreviate::abbreviate;
use crate::error::Error;
use crate::schema::TableSchema;
use crate::value::{Datum, Row, Uuid};

/// Comparison functions of a condition (RFC 7047 §5.1 `<function>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>=`
    Ge,
    /// `>`
    Gt,
    /// `includes`: the column contains all of the value's elements.
    Includes,
    /// `excludes`: the column contains none of the value's elements.
    Excludes,
}

impl Function {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Function::Lt => "<",
            Function::Le => "<=",
            Function::Eq => "==",
            Function::Ne => "!=",
            Function::Ge => ">=",
            Function::Gt => ">",
            Function::Includes => "includes",
            Function::Excludes => "excludes",
        }
    }
}

/// A row filter: `[column, function, value]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The column compared, `_uuid` included.
    pub column: String,
    /// How it is compared.
    pub function: Function,
    /// What it is compared with.
    pub value: Datum,
}

impl Condition {
    /// Any condition.
    pub fn new(column: impl Into<String>, function: Function, value: Datum) -> Condition {
        Condition {
            column: column.into(),
            function,
            value,
        }
    }

    /// `column == value`.
    pub fn eq(column: impl Into<String>, value: Datum) -> Condition {
        Condition::new(column, Function::Eq, value)
    }

    /// `column != value`.
    pub fn ne(column: impl Into<String>, value: Datum) -> Condition {
        Condition::new(column, Function::Ne, value)
    }

    /// `column includes value`.
    pub fn includes(column: impl Into<String>, value: Datum) -> Condition {
        Condition::new(column, Function::Includes, value)
    }

    /// `column excludes value`.
    pub fn excludes(column: impl Into<String>, value: Datum) -> Condition {
        Condition::new(column, Function::Excludes, value)
    }

    /// `_uuid == uuid`: the condition that names one row.
    pub fn uuid(uuid: Uuid) -> Condition {
        Condition::eq("_uuid", Datum::atom(uuid))
    }

    /// The wire form.
    pub fn to_json(&self) -> Json {
        json!([self.column, self.function.as_str(), self.value.to_json()])
    }
}

/// Mutators (RFC 7047 §5.1 `<mutator>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutator {
    /// `+=`
    Add,
    /// `-=`
    Sub,
    /// `*=`
    Mul,
    /// `/=`
    Div,
    /// `%=`
    Mod,
    /// `insert`: add elements to a set or pairs to a map.
    Insert,
    /// `delete`: remove elements from a set, or keys or pairs from a map.
    Delete,
}

impl Mutator {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mutator::Add => "+=",
            Mutator::Sub => "-=",
            Mutator::Mul => "*=",
            Mutator::Div => "/=",
            Mutator::Mod => "%=",
            Mutator::Insert => "insert",
            Mutator::Delete => "delete",
        }
    }
}

/// An in-place change to a column: `[column, mutator, value]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    /// The column changed.
    pub column: String,
    /// How.
    pub mutator: Mutator,
    /// The argument.
    pub value: Datum,
}

impl Mutation {
    /// Any mutation.
    pub fn new(column: impl Into<String>, mutator: Mutator, value: Datum) -> Mutation {
        Mutation {
            column: column.into(),
            mutator,
            value,
        }
    }

    /// Adds the elements (set) or pairs (map) of `value` to the column.
    pub fn insert(column: impl Into<String>, value: Datum) -> Mutation {
        Mutation::new(column, Mutator::Insert, value)
    }

    /// Removes the elements, keys (set of keys) or pairs of `value` from the column.
    pub fn delete(column: impl Into<String>, value: Datum) -> Mutation {
        Mutation::new(column, Mutator::Delete, value)
    }

    /// The wire form.
    pub fn to_json(&self) -> Json {
        json!([self.column, self.mutator.as_str(), self.value.to_json()])
    }
}

/// What a `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitUntil {
    /// The selected rows equal the given rows.
    Equal,
    /// The selected rows differ from the given rows.
    NotEqual,
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// Inserts a row; `uuid_name` lets later operations refer to it as a named-uuid.
    Insert {
        /// The table.
        table: String,
        /// The columns set; others take their defaults.
        row: Row,
        /// The name other operations use to refer to the new row.
        uuid_name: Option<String>,
    },
    /// Reads rows.
    Select {
        /// The table.
        table: String,
        /// Which rows.
        conditions: Vec<Condition>,
        /// Which columns; all (with `_uuid` and `_version`) when `None`.
        columns: Option<Vec<String>>,
    },
    /// Sets columns of the matching rows.
    Update {
        /// The table.
        table: String,
        /// Which rows.
        conditions: Vec<Condition>,
        /// The new values.
        row: Row,
    },
    /// Changes columns of the matching rows in place.
    Mutate {
        /// The table.
        table: String,
        /// Which rows.
        conditions: Vec<Condition>,
        /// The changes.
        mutations: Vec<Mutation>,
    },
    /// Deletes the matching rows.
    Delete {
        /// The table.
        table: String,
        /// Which rows.
        conditions: Vec<Condition>,
    },
    /// Blocks (up to `timeout_ms`) until the selected rows do or do not equal `rows`.
    Wait {
        /// The table.
        table: String,
        /// Server-side bound in milliseconds; `None` waits forever, `Some(0)` checks once.
        timeout_ms: Option<u64>,
        /// Which rows.
        conditions: Vec<Condition>,
        /// Which columns are compared.
        columns: Vec<String>,
        /// Equal or not equal.
        until: WaitUntil,
        /// The rows compared with.
        rows: Vec<Row>,
    },
    /// Asks for the transaction to be durable (on disk) before it is answered.
    Commit {
        /// Whether to wait for the disk.
        durable: bool,
    },
    /// Aborts the transaction; the server reports the error "aborted".
    Abort,
    /// A note in the server's log.
    Comment(String),
    /// Fails the transaction unless this client holds the named lock.
    Assert {
        /// The lock's name.
        lock: String,
    },
}

impl Operation {
    /// `insert` of `row` into `table`.
    pub fn insert(table: impl Into<String>, row: Row) -> Operation {
        Operation::Insert {
            table: table.into(),
            row,
            uuid_name: None,
        }
    }

    /// Names the row inserted by an `insert`, for named-uuid references; no effect on others.
    pub fn with_uuid_name(mut self, name: impl Into<String>) -> Operation {
        if let Operation::Insert { uuid_name, .. } = &mut self {
            *uuid_name = Some(name.into());
        }
        self
    }

    /// `select` of all columns.
    pub fn select(table: impl Into<String>, conditions: Vec<Condition>) -> Operation {
        Operation::Select {
            table: table.into(),
            conditions,
            columns: None,
        }
    }

    /// Restricts a `select` (or a `wait`) to these columns; no effect on others.
    pub fn with_columns<S: Into<String>>(mut self, cols: impl IntoIterator<Item = S>) -> Operation {
        let cols: Vec<String> = cols.into_iter().map(Into::into).collect();
        match &mut self {
            Operation::Select { columns, .. } => *columns = Some(cols),
            Operation::Wait { columns, .. } => *columns = cols,
            _ => {}
        }
        self
    }

    /// `update` of the matching rows.
    pub fn update(table: impl Into<String>, conditions: Vec<Condition>, row: Row) -> Operation {
        Operation::Update {
            table: table.into(),
            conditions,
            row,
        }
    }

    /// `mutate` of the matching rows.
    pub fn mutate(
        table: impl Into<String>,
        conditions: Vec<Condition>,
        mutations: Vec<Mutation>,
    ) -> Operation {
        Operation::Mutate {
            table: table.into(),
            conditions,
            mutations,
        }
    }

    /// `delete` of the matching rows.
    pub fn delete(table: impl Into<String>, conditions: Vec<Condition>) -> Operation {
        Operation::Delete {
            table: table.into(),
            conditions,
        }
    }

    /// `wait` until the selected `columns` of the matching rows are (`Equal`) or are not
    /// (`NotEqual`) exactly `rows`.
    pub fn wait(
        table: impl Into<String>,
        conditions: Vec<Condition>,
        columns: Vec<String>,
        until: WaitUntil,
        rows: Vec<Row>,
        timeout_ms: Option<u64>,
    ) -> Operation {
        Operation::Wait {
            table: table.into(),
            timeout_ms,
            conditions,
            columns,
            until,
            rows,
        }
    }

    /// The operation's name and table, as errors report it: "insert Logical_Switch_Port".
    pub fn describe(&self) -> String {
        match self {
            Operation::Insert {
                table, uuid_name, ..
            } => match uuid_name {
                Some(n) => format!("insert {table} (uuid-name {n})"),
                None => format!("insert {table}"),
            },
            Operation::Select { table, .. } => format!("select {table}"),
            Operation::Update { table, .. } => format!("update {table}"),
            Operation::Mutate { table, .. } => format!("mutate {table}"),
            Operation::Delete { table, .. } => format!("delete {table}"),
            Operation::Wait { table, .. } => format!("wait {table}"),
            Operation::Commit { .. } => "commit".into(),
            Operation::Abort => "abort".into(),
            Operation::Comment(_) => "comment".into(),
            Operation::Assert { lock } => format!("assert lock {lock}"),
        }
    }

    /// The wire form.
    pub fn to_json(&self) -> Json {
        match self {
            Operation::Insert {
                table,
                row,
                uuid_name,
            } => {
                let mut obj = op_object("insert", table);
                obj.insert("row".into(), row_json(row));
                if let Some(name) = uuid_name {
                    obj.insert("uuid-name".into(), json!(name));
                }
                Json::Object(obj)
            }
            Operation::Select {
                table,
                conditions,
                columns,
            } => {
                let mut obj = op_object("select", table);
                obj.insert("where".into(), conditions_json(conditions));
                if let Some(columns) = columns {
                    obj.insert("columns".into(), json!(columns));
                }
                Json::Object(obj)
            }
            Operation::Update {
                table,
                conditions,
                row,
            } => {
                let mut obj = op_object("update", table);
                obj.insert("where".into(), conditions_json(conditions));
                obj.insert("row".into(), row_json(row));
                Json::Object(obj)
            }
            Operation::Mutate {
                table,
                conditions,
                mutations,
            } => {
                let mut obj = op_object("mutate", table);
                obj.insert("where".into(), conditions_json(conditions));
                obj.insert(
                    "mutations".into(),
                    Json::Array(mutations.iter().map(Mutation::to_json).collect()),
                );
                Json::Object(obj)
            }
            Operation::Delete { table, conditions } => {
                let mut obj = op_object("delete", table);
                obj.insert("where".into(), conditions_json(conditions));
                Json::Object(obj)
            }
            Operation::Wait {
                table,
                timeout_ms,
                conditions,
                columns,
                until,
                rows,
            } => {
                let mut obj = op_object("wait", table);
                if let Some(t) = timeout_ms {
                    obj.insert("timeout".into(), json!(t));
                }
                obj.insert("where".into(), conditions_json(conditions));
                obj.insert("columns".into(), json!(columns));
                obj.insert(
                    "until".into(),
                    json!(match until {
                        WaitUntil::Equal => "==",
                        WaitUntil::NotEqual => "!=",
                    }),
                );
                obj.insert(
                    "rows".into(),
                    Json::Array(rows.iter().map(row_json).collect()),
                );
                Json::Object(obj)
            }
            Operation::Commit { durable } => json!({"op": "commit", "durable": durable}),
            Operation::Abort => json!({"op": "abort"}),
            Operation::Comment(text) => json!({"op": "comment", "comment": text}),
            Operation::Assert { lock } => json!({"op": "assert", "lock": lock}),
        }
    }
}

fn op_object(op: &str, table: &str) -> Map<String, Json> {
    let mut obj = Map::new();
    obj.insert("op".into(), json!(op));
    obj.insert("table".into(), json!(table));
    obj
}

fn conditions_json(conditions: &[Condition]) -> Json {
    Json::Array(conditions.iter().map(Condition::to_json).collect())
}

/// A row in the wire form of `insert`/`update`/`wait`.
pub fn row_json(row: &Row) -> Json {
    Json::Object(
        row.iter()
            .map(|(column, datum)| (column.clone(), datum.to_json()))
            .collect(),
    )
}

/// Writes operations straight to JSON text, without first building a `serde_json::Value` tree:
/// a transaction of ten thousand inserts would otherwise allocate (and free) a map and several
/// strings per row before the first byte reaches the socket. The output is the same as
/// [`Operation::to_json`].
mod wire {
    use serde::Serialize;
    use serde::ser::{SerializeMap, SerializeSeq, Serializer};

    use super::{Condition, Mutation, Operation, WaitUntil};
    use crate::value::{Atom, Datum, Row};

    struct AtomWire<'a>(&'a Atom);

    impl Serialize for AtomWire<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                Atom::Integer(i) => s.serialize_i64(*i),
                Atom::Real(r) => s.serialize_f64(*r),
                Atom::Boolean(b) => s.serialize_bool(*b),
                Atom::String(text) => s.serialize_str(text),
                Atom::Uuid(u) => {
                    let mut buf = uuid::Uuid::encode_buffer();
                    ("uuid", &*u.hyphenated().encode_lower(&mut buf)).serialize(s)
                }
                Atom::NamedUuid(name) => ("named-uuid", name.as_str()).serialize(s),
            }
        }
    }

    /// Serializes a datum in RFC 7047 notation, as `Datum::to_json` writes it.
    pub(super) struct DatumWire<'a>(pub(super) &'a Datum);

    struct Elements<'a>(&'a Datum);

    impl Serialize for Elements<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.0.len()))?;
            match self.0 {
                Datum::Set(atoms) => {
                    for a in atoms {
                        seq.serialize_element(&AtomWire(a))?;
                    }
                }
                Datum::Map(pairs) => {
                    for (k, v) in pairs {
                        seq.serialize_element(&(AtomWire(k), AtomWire(v)))?;
                    }
                }
            }
            seq.end()
        }
    }

    impl Serialize for DatumWire<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                Datum::Set(atoms) if atoms.len() == 1 => match atoms.iter().next() {
                    Some(a) => AtomWire(a).serialize(s),
                    None => s.serialize_unit(),
                },
                Datum::Set(_) => ("set", Elements(self.0)).serialize(s),
                Datum::Map(_) => ("map", Elements(self.0)).serialize(s),
            }
        }
    }

    struct RowWire<'a>(&'a Row);

    impl Serialize for RowWire<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for (column, datum) in self.0 {
                map.serialize_entry(column, &DatumWire(datum))?;
            }
            map.end()
        }
    }

    struct RowsWire<'a>(&'a [Row]);

    impl Serialize for RowsWire<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.iter().map(RowWire))
        }
    }

    struct Where<'a>(&'a [Condition]);

    impl Serialize for Where<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(
                self.0
                    .iter()
                    .map(|c| (c.column.as_str(), c.function.as_str(), DatumWire(&c.value))),
            )
        }
    }

    struct Mutations<'a>(&'a [Mutation]);

    impl Serialize for Mutations<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(
                self.0
                    .iter()
                    .map(|m| (m.column.as_str(), m.mutator.as_str(), DatumWire(&m.value))),
            )
        }
    }

    impl Serialize for Operation {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(None)?;
            match self {
                Operation::Insert {
                    table,
                    row,
                    uuid_name,
                } => {
                    map.serialize_entry("op", "insert")?;
                    map.serialize_entry("table", table)?;
                    map.serialize_entry("row", &RowWire(row))?;
                    if let Some(name) = uuid_name {
                        map.serialize_entry("uuid-name", name)?;
                    }
                }
                Operation::Select {
                    table,
                    conditions,
                    columns,
                } => {
                    map.serialize_entry("op", "select")?;
                    map.serialize_entry("table", table)?;
                    map.serialize_entry("where", &Where(conditions))?;
                    if let Some(columns) = columns {
                        map.serialize_entry("columns", columns)?;
                    }
                }
                Operation::Update {
                    table,
                    conditions,
                    row,
                } => {
                    map.serialize_entry("op", "update")?;
                    map.serialize_entry("table", table)?;
                    map.serialize_entry("where", &Where(conditions))?;
                    map.serialize_entry("row", &RowWire(row))?;
                }
                Operation::Mutate {
                    table,
                    conditions,
                    mutations,
                } => {
                    map.serialize_entry("op", "mutate")?;
                    map.serialize_entry("table", table)?;
                    map.serialize_entry("where", &Where(conditions))?;
                    map.serialize_entry("mutations", &Mutations(mutations))?;
                }
                Operation::Delete { table, conditions } => {
                    map.serialize_entry("op", "delete")?;
                    map.serialize_entry("table", table)?;
                    map.serialize_entry("where", &Where(conditions))?;
                }
                Operation::Wait {
                    table,
                    timeout_ms,
                    conditions,
                    columns,
                    until,
                    rows,
                } => {
                    map.serialize_entry("op", "wait")?;
                    map.serialize_entry("table", table)?;
                    if let Some(t) = timeout_ms {
                        map.serialize_entry("timeout", t)?;
                    }
                    map.serialize_entry("where", &Where(conditions))?;
                    map.serialize_entry("columns", columns)?;
                    let until = match until {
                        WaitUntil::Equal => "==",
                        WaitUntil::NotEqual => "!=",
                    };
                    map.serialize_entry("until", until)?;
                    map.serialize_entry("rows", &RowsWire(rows))?;
                }
                Operation::Commit { durable } => {
                    map.serialize_entry("op", "commit")?;
                    map.serialize_entry("durable", durable)?;
                }
                Operation::Abort => map.serialize_entry("op", "abort")?,
                Operation::Comment(text) => {
                    map.serialize_entry("op", "comment")?;
                    map.serialize_entry("comment", text)?;
                }
                Operation::Assert { lock } => {
                    map.serialize_entry("op", "assert")?;
                    map.serialize_entry("lock", lock)?;
                }
            }
            map.end()
        }
    }
}

/// The params of a `transact` request, `[db, op...]`, serialized without an intermediate tree.
pub struct TransactParams<'a> {
    /// The database.
    pub db: &'a str,
    /// The operations.
    pub ops: &'a [Operation],
}

impl serde::Serialize for TransactParams<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.ops.len() + 1))?;
        seq.serialize_element(self.db)?;
        for op in self.ops {
            seq.serialize_element(op)?;
        }
        seq.end()
    }
}

/// The result of one successful operation.
#[derive(Debug, Clone, PartialEq)]
pub enum OperationResult {
    /// `insert`: the new row's UUID.
    Inserted(Uuid),
    /// `select`: the rows, undecoded (decode with [`OperationResult::rows_decoded`]).
    Rows(Vec<Map<String, Json>>),
    /// `update`, `mutate`, `delete`: how many rows matched.
    Count(u64),
    /// Everything else.
    Empty,
}

impl OperationResult {
    /// The UUID of an `insert`.
    pub fn uuid(&self) -> Option<Uuid> {
        match self {
            OperationResult::Inserted(u) => Some(*u),
            _ => None,
        }
    }

    /// The count of an `update`, `mutate` or `delete`.
    pub fn count(&self) -> Option<u64> {
        match self {
            OperationResult::Count(n) => Some(*n),
            _ => None,
        }
    }

    /// The rows of a `select`, decoded against the table's schema: each with its `_uuid` (if
    /// selected) and the other columns (`_version` included, when selected).
    pub fn rows_decoded(&self, table: &TableSchema) -> Result<Vec<(Option<Uuid>, Row)>, Error> {
        let OperationResult::Rows(rows) = self else {
            return Err(Error::Protocol(format!(
                "expected the rows of a select on {}, got {self:?}",
                table.name
            )));
        };
        rows.iter()
            .map(|obj| decode_row(table, obj))
            .collect::<Result<Vec<_>, _>>()
    }
}

fn decode_row(table: &TableSchema, obj: &Map<String, Json>) -> Result<(Option<Uuid>, Row), Error> {
    let mut uuid = None;
    let mut row = Row::new();
    for (column, json) in obj {
        let context = || format!("{}.{column}", table.name);
        let ty = table.column_type(column).ok_or_else(|| {
            Error::Protocol(format!("select returned unknown column {}", context()))
        })?;
        let datum = Datum::from_json(json, &ty).map_err(|source| Error::Value {
            context: context(),
            source,
        })?;
        if column == "_uuid" {
            uuid = datum.as_atom().and_then(|a| a.as_uuid());
        } else {
            row.insert(column.clone(), datum);
        }
    }
    Ok((uuid, row))
}

/// Decodes a `transact` result for `ops`: one result per operation, or the first error as
/// [`Error::Transaction`] (index `ops.len()` and op "commit" for an error of the commit itself).
pub fn decode_results(ops: &[Operation], result: &Json) -> Result<Vec<OperationResult>, Error> {
    let Json::Array(items) = result else {
        return Err(Error::Protocol(format!(
            "transact result is not an array: {}",
            abbreviate(&result.to_string(), 200)
        )));
    };
    for (index, item) in items.iter().enumerate() {
        if let Some(error) = item.get("error") {
            let op = match ops.get(index) {
                Some(op) => op.describe(),
                None => "commit".to_string(),
            };
            return Err(Error::Transaction {
                index,
                error: error
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| error.to_string()),
                details: item.get("details").and_then(|d| match d {
                    Json::String(s) => Some(s.clone()),
                    Json::Null => None,
                    other => Some(other.to_string()),
                }),
                op,
            });
        }
    }
    if items.len() < ops.len() {
        return Err(Error::Protocol(format!(
            "transact returned {} results for {} operations",
            items.len(),
            ops.len()
        )));
    }
    ops.iter()
        .zip(items)
        .enumerate()
        .map(|(index, (op, item))| {
            decode_one(op, item).map_err(|reason| {
                Error::Protocol(format!(
                    "result {index} ({}) is malformed: {reason}: {}",
                    op.describe(),
                    abbreviate(&item.to_string(), 200)
                ))
            })
        })
        .collect()
}

fn decode_one(op: &Operation, item: &Json) -> Result<OperationResult, &'static str> {
    match op {
        Operation::Insert { .. } => {
            let uuid = item
                .get("uuid")
                .and_then(|u| u.as_array())
                .and_then(|pair| match pair.as_slice() {
                    [Json::String(tag), Json::String(s)] if tag == "uuid" => {
                        Uuid::parse_str(s).ok()
                    }
                    _ => None,
                })
                .ok_or("no valid \"uuid\"")?;
            Ok(OperationResult::Inserted(uuid))
        }
        Operation::Select { .. } => {
            let rows = item
                .get("rows")
                .and_then(Json::as_array)
                .ok_or("no \"rows\" array")?;
            rows.iter()
                .map(|r| r.as_object().cloned().ok_or("a row is not an object"))
                .collect::<Result<Vec<_>, _>>()
                .map(OperationResult::Rows)
        }
        Operation::Update { .. } | Operation::Mutate { .. } | Operation::Delete { .. } => item
            .get("count")
            .and_then(Json::as_u64)
            .map(OperationResult::Count)
            .ok_or("no \"count\""),
        _ => Ok(OperationResult::Empty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_serialize_as_rfc7047() {
        let row = Row::from([("name".to_string(), Datum::atom("sw0"))]);
        let insert = Operation::insert("Logical_Switch", row.clone()).with_uuid_name("ls");
        assert_eq!(
            insert.to_json(),
            json!({"op": "insert", "table": "Logical_Switch", "row": {"name": "sw0"}, "uuid-name": "ls"})
        );
        let mutate = Operation::mutate(
            "Logical_Switch",
            vec![Condition::eq("name", Datum::atom("sw0"))],
            vec![Mutation::insert("ports", Datum::named_uuid("lsp"))],
        );
        assert_eq!(
            mutate.to_json(),
            json!({"op": "mutate", "table": "Logical_Switch", "where": [["name", "==", "sw0"]],
                   "mutations": [["ports", "insert", ["named-uuid", "lsp"]]]})
        );
        let wait = Operation::wait(
            "Logical_Switch",
            vec![],
            vec!["name".into()],
            WaitUntil::NotEqual,
            vec![row],
            Some(0),
        );
        assert_eq!(wait.to_json()["until"], json!("!="));
        assert_eq!(wait.to_json()["rows"], json!([{"name": "sw0"}]));
        assert_eq!(
            Operation::select("T", vec![]).with_columns(["a"]).to_json(),
            json!({"op": "select", "table": "T", "where": [], "columns": ["a"]})
        );
    }

    #[test]
    fn direct_serialization_matches_to_json() {
        let row = Row::from([
            ("name".to_string(), Datum::atom("sw0")),
            ("ports".to_string(), Datum::set([Uuid::nil(), Uuid::max()])),
            ("other".to_string(), Datum::map([("k", 1i64)])),
            ("none".to_string(), Datum::default()),
            ("real".to_string(), Datum::atom(1.5)),
            ("flag".to_string(), Datum::atom(true)),
        ]);
        let conds = vec![
            Condition::eq("name", Datum::atom("sw0")),
            Condition::includes("ports", Datum::named_uuid("x")),
        ];
        let ops = vec![
            Operation::insert("T", row.clone()).with_uuid_name("n"),
            Operation::select("T", conds.clone()).with_columns(["a", "b"]),
            Operation::update("T", conds.clone(), row.clone()),
            Operation::mutate(
                "T",
                conds.clone(),
                vec![Mutation::delete("ports", Datum::set([Uuid::nil()]))],
            ),
            Operation::delete("T", conds.clone()),
            Operation::wait(
                "T",
                conds,
                vec!["name".into()],
                WaitUntil::Equal,
                vec![row],
                Some(5),
            ),
            Operation::Commit { durable: true },
            Operation::Abort,
            Operation::Comment("\"quoted\"".into()),
            Operation::Assert { lock: "l".into() },
        ];
        for op in &ops {
            let direct: Json = serde_json::to_value(op).unwrap_or_default();
            assert_eq!(direct, op.to_json(), "{}", op.describe());
        }
        let params = serde_json::to_value(TransactParams {
            db: "DB",
            ops: &ops,
        })
        .unwrap_or_default();
        assert_eq!(params[0], json!("DB"));
        assert_eq!(params.as_array().map(Vec::len), Some(ops.len() + 1));
    }

    #[test]
    fn errors_name_the_operation_and_the_commit() {
        let ops = vec![
            Operation::insert("Logical_Switch", Row::new()),
            Operation::Comment("x".into()),
        ];
        let op_error = json!([{"uuid": ["uuid", "2c2f4e4a-7d3f-4c0e-9a55-5c1bd0c5b2a1"]}, {"error": "e", "details": "d"}]);
        match decode_results(&ops, &op_error) {
            Err(Error::Transaction {
                index: 1,
                error,
                details: Some(d),
                op,
            }) => assert_eq!(
                (error.as_str(), d.as_str(), op.as_str()),
                ("e", "d", "comment")
            ),
            other => panic!("{other:?}"),
        }
        let commit_error = json!([{"uuid": ["uuid", "2c2f4e4a-7d3f-4c0e-9a55-5c1bd0c5b2a1"]}, {}, {"error": "referential integrity violation"}]);
        assert!(matches!(
            decode_results(&ops, &commit_error),
            Err(Error::Transaction { index: 2, ref op, .. }) if op == "commit"
        ));
        assert!(decode_results(&ops, &json!([{}])).is_err());
        assert!(decode_results(&ops, &json!({})).is_err());
    }
}
