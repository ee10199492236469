//! Monitor requests and the updates they bring back (RFC 7047 §4.1.5–4.1.7, and the
//! `monitor_cond`, `monitor_cond_since`, `monitor_cond_change`, `update2` and `update3`
//! extensions of ovsdb-server(7)).
//!
//! Pure: builds request parameters and decodes replies and notifications into typed
//! [`TableUpdates`], with the schema deciding how each column's JSON is read. Nothing here
//! touches a socket or the replica.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use crate::abbreviate::abbreviate;
use crate::operation::Condition;
use crate::schema::{DatabaseSchema, TableSchema};
use crate::value::{Datum, Row, Uuid, ValueError};

/// The transaction id that asks `monitor_cond_since` for everything: ovsdb-server answers
/// `found = false` and sends the whole initial state.
pub const ZERO_TXN_ID: &str = "00000000-0000-0000-0000-000000000000";

/// Why a monitor reply or notification could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MonitorError {
    /// The JSON does not have the shape the protocol prescribes.
    #[error("malformed {what}: {got}")]
    Malformed {
        /// Which protocol element was expected.
        what: String,
        /// The JSON found, abbreviated.
        got: String,
    },
    /// The server reported a table the schema does not know.
    #[error("update for table {0:?}, which is not in the schema")]
    UnknownTable(String),
    /// The server reported a column the schema does not know.
    #[error("update for column {table}.{column}, which is not in the schema")]
    UnknownColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// A column value does not decode under the column's type.
    #[error("row {uuid} of {table}, column {column}: {source}")]
    Value {
        /// The table.
        table: String,
        /// The row.
        uuid: Uuid,
        /// The column.
        column: String,
        /// What is wrong with the value.
        source: ValueError,
    },
}

fn malformed(what: &str, got: &Json) -> MonitorError {
    MonitorError::Malformed {
        what: what.to_string(),
        got: abbreviate(&got.to_string(), 120),
    }
}

/// Which kinds of change a table's monitor reports; all four by default, as the server does
/// when `select` is omitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorSelect {
    /// Send the rows present when the monitor starts.
    pub initial: bool,
    /// Send rows as they are inserted (or start matching the conditions).
    pub insert: bool,
    /// Send rows as they are deleted (or stop matching the conditions).
    pub delete: bool,
    /// Send modifications of matching rows.
    pub modify: bool,
}

impl Default for MonitorSelect {
    fn default() -> Self {
        MonitorSelect {
            initial: true,
            insert: true,
            delete: true,
            modify: true,
        }
    }
}

impl MonitorSelect {
    fn to_json(self) -> Json {
        json!({
            "initial": self.initial,
            "insert": self.insert,
            "delete": self.delete,
            "modify": self.modify,
        })
    }
}

/// One clause of a monitor's `where`: a column comparison, or the constants `true`/`false`
/// (ovsdb-server's extension; `false` monitors no row until the condition is changed).
#[derive(Debug, Clone, PartialEq)]
pub enum MonitorCondition {
    /// Matches every row (`true`) or none (`false`).
    Constant(bool),
    /// `[column, function, value]`.
    Clause(Condition),
}

impl MonitorCondition {
    /// The clause in wire form.
    pub fn to_json(&self) -> Json {
        match self {
            MonitorCondition::Constant(b) => Json::Bool(*b),
            MonitorCondition::Clause(c) => c.to_json(),
        }
    }
}

impl From<Condition> for MonitorCondition {
    fn from(c: Condition) -> Self {
        MonitorCondition::Clause(c)
    }
}

/// What to monitor in one table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableMonitor {
    /// The table name.
    pub table: String,
    /// The columns to receive; `None` for all of them.
    pub columns: Option<Vec<String>>,
    /// Rows must match one of these (a disjunction); `None` for all rows. Ignored by plain
    /// `monitor`, which has no conditions.
    pub conditions: Option<Vec<MonitorCondition>>,
    /// Which kinds of change to receive.
    pub select: MonitorSelect,
}

impl TableMonitor {
    /// Every column of every row of `table`.
    pub fn all(table: impl Into<String>) -> TableMonitor {
        TableMonitor {
            table: table.into(),
            columns: None,
            conditions: None,
            select: MonitorSelect::default(),
        }
    }

    /// Restricts the monitor to these columns.
    pub fn with_columns<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Restricts the monitor to rows matching one of `conditions`.
    pub fn with_conditions(mut self, conditions: Vec<MonitorCondition>) -> Self {
        self.conditions = Some(conditions);
        self
    }

    /// Chooses which kinds of change to receive.
    pub fn with_select(mut self, select: MonitorSelect) -> Self {
        self.select = select;
        self
    }

    /// The columns this monitor receives, resolved against the table schema.
    pub fn resolved_columns(&self, table: &TableSchema) -> Vec<String> {
        match &self.columns {
            Some(cols) => cols.clone(),
            None => table.columns.keys().cloned().collect(),
        }
    }

    fn request_json(&self, with_where: bool) -> Json {
        let mut req = Map::new();
        if let Some(cols) = &self.columns {
            req.insert("columns".into(), json!(cols));
        }
        if with_where && let Some(conds) = &self.conditions {
            req.insert(
                "where".into(),
                Json::Array(conds.iter().map(MonitorCondition::to_json).collect()),
            );
        }
        req.insert("select".into(), self.select.to_json());
        Json::Object(req)
    }
}

/// `<monitor-requests>` / `<monitor-cond-requests>`: table name to a one-element array of
/// requests.
fn requests_json(tables: &[TableMonitor], with_where: bool) -> Json {
    let mut obj = Map::new();
    for t in tables {
        obj.insert(t.table.clone(), json!([t.request_json(with_where)]));
    }
    Json::Object(obj)
}

/// Params of a `monitor` request (RFC 7047 §4.1.5); conditions are not part of it.
pub fn monitor_params(db: &str, monitor_id: &Json, tables: &[TableMonitor]) -> Json {
    json!([db, monitor_id, requests_json(tables, false)])
}

/// Params of a `monitor_cond` request.
pub fn monitor_cond_params(db: &str, monitor_id: &Json, tables: &[TableMonitor]) -> Json {
    json!([db, monitor_id, requests_json(tables, true)])
}

/// Params of a `monitor_cond_since` request; `last_txn_id` is the id of the newest
/// transaction the replica holds, or `None` to ask for everything.
pub fn monitor_cond_since_params(
    db: &str,
    monitor_id: &Json,
    tables: &[TableMonitor],
    last_txn_id: Option<&str>,
) -> Json {
    json!([
        db,
        monitor_id,
        requests_json(tables, true),
        last_txn_id.unwrap_or(ZERO_TXN_ID)
    ])
}

/// Params of a `monitor_cond_change` request: new conditions for some tables of the monitor
/// `monitor_id`, which is known as `new_monitor_id` once the change is committed. Tables not
/// listed keep their conditions.
pub fn monitor_cond_change_params(
    monitor_id: &Json,
    new_monitor_id: &Json,
    changes: &[(String, Vec<MonitorCondition>)],
) -> Json {
    let mut obj = Map::new();
    for (table, conds) in changes {
        obj.insert(
            table.clone(),
            json!([{ "where": conds.iter().map(MonitorCondition::to_json).collect::<Vec<_>>() }]),
        );
    }
    json!([monitor_id, new_monitor_id, Json::Object(obj)])
}

/// What happened to one row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowUpdate {
    /// `update` (plain monitor): `old` holds the changed columns' previous values (modify) or
    /// the whole row (delete); `new` the whole row (initial, insert, modify).
    Update {
        /// Previous values, absent for initial and insert.
        old: Option<Row>,
        /// New values, absent for delete.
        new: Option<Row>,
    },
    /// `update2` `initial`: a row present when the monitor started. Columns holding their
    /// default value are omitted by the server.
    Initial(Row),
    /// `update2` `insert`: a new row; default-valued columns omitted.
    Insert(Row),
    /// `update2` `delete`.
    Delete,
    /// `update2` `modify`: only changed columns; composite columns hold the difference
    /// between old and new, single-valued columns the new value.
    Modify(Row),
}

/// One row's update.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    /// The table.
    pub table: String,
    /// The row.
    pub uuid: Uuid,
    /// What happened to it.
    pub update: RowUpdate,
}

/// The decoded `<table-updates>` or `<table-updates2>` of one message, in the order the
/// server sent them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableUpdates {
    /// Row updates, grouped by table as on the wire.
    pub rows: Vec<RowChange>,
}

impl TableUpdates {
    /// The number of rows the message carried.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the message carried no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The reply to `monitor_cond_since`.
#[derive(Debug, Clone, PartialEq)]
pub struct CondSinceReply {
    /// Whether the server still had the requested transaction: if so `updates` are the
    /// changes since, otherwise the whole current state as `initial` rows.
    pub found: bool,
    /// The newest transaction included.
    pub last_txn_id: String,
    /// The changes or the state.
    pub updates: TableUpdates,
}

fn table_schema<'a>(
    schema: &'a DatabaseSchema,
    table: &str,
) -> Result<&'a TableSchema, MonitorError> {
    schema
        .table(table)
        .ok_or_else(|| MonitorError::UnknownTable(table.to_string()))
}

/// Decodes a `<row>` object; `diff` reads composite columns as differences, which may
/// exceed the column's size bounds.
fn decode_row(
    json: &Json,
    table: &TableSchema,
    uuid: Uuid,
    diff: bool,
) -> Result<Row, MonitorError> {
    let obj = json
        .as_object()
        .ok_or_else(|| malformed(&format!("<row> of {} {uuid}", table.name), json))?;
    let mut row = Row::new();
    for (column, value) in obj {
        let ty = table
            .column_type(column)
            .ok_or_else(|| MonitorError::UnknownColumn {
                table: table.name.clone(),
                column: column.clone(),
            })?;
        let decoded = if diff && ty.is_composite() {
            Datum::from_json_unbounded(value, &ty)
        } else {
            Datum::from_json(value, &ty)
        };
        let datum = decoded.map_err(|source| MonitorError::Value {
            table: table.name.clone(),
            uuid,
            column: column.clone(),
            source,
        })?;
        row.insert(column.clone(), datum);
    }
    Ok(row)
}

/// Walks `{table: {uuid: x}}`, calling `row` for each entry.
fn walk_updates(
    json: &Json,
    schema: &DatabaseSchema,
    what: &str,
    mut row: impl FnMut(&TableSchema, Uuid, &Json) -> Result<RowUpdate, MonitorError>,
) -> Result<TableUpdates, MonitorError> {
    let tables = json.as_object().ok_or_else(|| malformed(what, json))?;
    let mut out = TableUpdates::default();
    for (table_name, rows) in tables {
        let table = table_schema(schema, table_name)?;
        let rows = rows
            .as_object()
            .ok_or_else(|| malformed(&format!("{what} of table {table_name}"), rows))?;
        for (uuid_str, update) in rows {
            let uuid = Uuid::parse_str(uuid_str)
                .map_err(|_| malformed(&format!("row uuid in {table_name}"), &json!(uuid_str)))?;
            out.rows.push(RowChange {
                table: table_name.clone(),
                uuid,
                update: row(table, uuid, update)?,
            });
        }
    }
    Ok(out)
}

/// Decodes `<table-updates>`: the `monitor` reply and the `update` notification.
pub fn parse_table_updates(
    json: &Json,
    schema: &DatabaseSchema,
) -> Result<TableUpdates, MonitorError> {
    walk_updates(json, schema, "<table-updates>", |table, uuid, update| {
        let obj = update
            .as_object()
            .ok_or_else(|| malformed(&format!("<row-update> of {} {uuid}", table.name), update))?;
        let old = obj
            .get("old")
            .map(|r| decode_row(r, table, uuid, false))
            .transpose()?;
        let new = obj
            .get("new")
            .map(|r| decode_row(r, table, uuid, false))
            .transpose()?;
        if old.is_none() && new.is_none() {
            return Err(malformed(
                &format!(
                    "<row-update> of {} {uuid} (neither old nor new)",
                    table.name
                ),
                update,
            ));
        }
        Ok(RowUpdate::Update { old, new })
    })
}

/// Decodes `<table-updates2>`: the `monitor_cond` reply and the `update2` and `update3`
/// notifications.
pub fn parse_table_updates2(
    json: &Json,
    schema: &DatabaseSchema,
) -> Result<TableUpdates, MonitorError> {
    walk_updates(json, schema, "<table-updates2>", |table, uuid, update| {
        let bad = || malformed(&format!("<row-update2> of {} {uuid}", table.name), update);
        let obj = update
            .as_object()
            .filter(|o| o.len() == 1)
            .ok_or_else(bad)?;
        let Some((kind, row)) = obj.iter().next() else {
            return Err(bad());
        };
        Ok(match kind.as_str() {
            "initial" => RowUpdate::Initial(decode_row(row, table, uuid, false)?),
            "insert" => RowUpdate::Insert(decode_row(row, table, uuid, false)?),
            "modify" => RowUpdate::Modify(decode_row(row, table, uuid, true)?),
            "delete" => RowUpdate::Delete,
            _ => return Err(bad()),
        })
    })
}

/// Decodes the `monitor_cond_since` reply `[found, last-txn-id, <table-updates2>]`.
pub fn parse_cond_since_reply(
    json: &Json,
    schema: &DatabaseSchema,
) -> Result<CondSinceReply, MonitorError> {
    match json.as_array().map(Vec::as_slice) {
        Some([Json::Bool(found), Json::String(txn), updates]) => Ok(CondSinceReply {
            found: *found,
            last_txn_id: txn.clone(),
            updates: parse_table_updates2(updates, schema)?,
        }),
        _ => Err(malformed(
            "monitor_cond_since reply [found, last-txn-id, updates]",
            json,
        )),
    }
}

/// The tables and columns a monitor covers, which the replica needs to fill in the columns
/// the server omits because they hold their default value.
pub fn monitored_columns(
    tables: &[TableMonitor],
    schema: &DatabaseSchema,
) -> Result<BTreeMap<String, Vec<String>>, MonitorError> {
    let mut out = BTreeMap::new();
    for t in tables {
        let ts = table_schema(schema, &t.table)?;
        let cols = t.resolved_columns(ts);
        for c in &cols {
            if ts.column_type(c).is_none() {
                return Err(MonitorError::UnknownColumn {
                    table: t.table.clone(),
                    column: c.clone(),
                });
            }
        }
        out.insert(t.table.clone(), cols);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn nb() -> DatabaseSchema {
        let text = std::fs::read_to_string(rovn_testkit::schema::NB)
            .unwrap_or_else(|e| panic!("NB schema: {e}"));
        DatabaseSchema::from_str(&text).unwrap_or_else(|e| panic!("NB schema: {e}"))
    }

    fn tables() -> Vec<TableMonitor> {
        vec![
            TableMonitor::all("Logical_Switch").with_columns(["name", "ports"]),
            TableMonitor::all("ACL")
                .with_conditions(vec![MonitorCondition::Constant(false)])
                .with_select(MonitorSelect {
                    initial: false,
                    ..MonitorSelect::default()
                }),
        ]
    }

    #[test]
    fn request_builders_follow_the_protocol() {
        let id = json!("m");
        let sel = json!({"initial": true, "insert": true, "delete": true, "modify": true});
        let sel_no_initial =
            json!({"initial": false, "insert": true, "delete": true, "modify": true});
        assert_eq!(
            monitor_params("NB", &id, &tables()),
            json!(["NB", "m", {
                "Logical_Switch": [{"columns": ["name", "ports"], "select": sel}],
                "ACL": [{"select": sel_no_initial}]
            }])
        );
        assert_eq!(
            monitor_cond_params("NB", &id, &tables())[2]["ACL"],
            json!([{"where": [false], "select": sel_no_initial}])
        );
        let since = monitor_cond_since_params("NB", &id, &tables(), None);
        assert_eq!(since[3], json!(ZERO_TXN_ID));
        let since = monitor_cond_since_params("NB", &id, &tables(), Some("abc"));
        assert_eq!(since[3], json!("abc"));
        assert_eq!(
            monitor_cond_change_params(
                &id,
                &json!("m2"),
                &[("ACL".into(), vec![MonitorCondition::Constant(true)])]
            ),
            json!(["m", "m2", {"ACL": [{"where": [true]}]}])
        );
    }

    #[test]
    fn cond_since_reply_and_update2_parse() {
        let schema = nb();
        let reply = parse_cond_since_reply(
            &json!([true, "5f2d1c1e-0000-4000-8000-000000000001", {
                "Logical_Switch": {"43e5b516-2007-4d7b-bd94-f0f12b225638": {"modify": {"ports": ["set", []]}}}
            }]),
            &schema,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(reply.found);
        assert_eq!(reply.updates.len(), 1);
        assert!(
            matches!(&reply.updates.rows[0].update, RowUpdate::Modify(r) if r["ports"].is_empty())
        );
    }

    #[test]
    fn malformed_updates_are_errors_naming_the_place() {
        let schema = nb();
        let u = "43e5b516-2007-4d7b-bd94-f0f12b225638";
        let cases = [
            json!([]),
            json!({"Nope": {}}),
            json!({"Logical_Switch": {"not-a-uuid": {"delete": null}}}),
            json!({"Logical_Switch": {u: {"explode": {}}}}),
            json!({"Logical_Switch": {u: {"insert": {"name": 5}}}}),
            json!({"Logical_Switch": {u: {"insert": {"bogus": 5}}}}),
            json!({"Logical_Switch": {u: {"insert": {}, "delete": null}}}),
        ];
        for c in cases {
            assert!(parse_table_updates2(&c, &schema).is_err(), "{c}");
        }
        let e = parse_table_updates2(
            &json!({"Logical_Switch": {u: {"insert": {"name": 5}}}}),
            &schema,
        );
        assert!(
            matches!(&e, Err(MonitorError::Value { column, .. }) if column == "name"),
            "{e:?}"
        );
        assert!(parse_table_updates(&json!({"Logical_Switch": {u: {}}}), &schema).is_err());
        assert!(parse_cond_since_reply(&json!([true, {}]), &schema).is_err());
    }

    #[test]
    fn composite_differences_may_exceed_the_column_bounds() {
        let schema = nb();
        let u = "43e5b516-2007-4d7b-bd94-f0f12b225638";
        // Logical_Router_Port.networks needs at least one element as a value, but as a
        // difference "nothing changed in this set" is empty...
        let d = parse_table_updates2(
            &json!({"Logical_Router_Port": {u: {"modify": {"networks": ["set", []]}}}}),
            &schema,
        );
        assert!(d.is_ok(), "{d:?}");
        // ...while as an inserted value it is still checked.
        let v = parse_table_updates2(
            &json!({"Logical_Router_Port": {u: {"insert": {"networks": ["set", []]}}}}),
            &schema,
        );
        assert!(v.is_err(), "{v:?}");
    }
}
