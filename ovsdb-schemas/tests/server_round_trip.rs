//! Every table of every schema round-trips through the typed models and a real ovsdb-server.
//!
//! For each table: a row with a non-default value in every column (sets and maps with two
//! elements, references to rows inserted in the same transaction) is decoded into the
//! generated model, encoded again with `to_row`, inserted with `ovsdb-client transact`, read
//! back with a `select`, decoded with `Datum::from_json` + `from_row`, and compared with the
//! model. The server is the judge of the encoding: it rejects wrong types, sizes, enum values
//! and dangling references.

mod samples;

#[path = "generated/all_types.rs"]
#[allow(dead_code)]
mod all_types;

use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail, ensure};
use rovn_ovsdb::model::DatabaseModel;
use rovn_ovsdb::{DatabaseSchema, Datum, Row, Uuid};
use rovn_ovsdb_schemas::{nb, sb, vswitch};
use serde_json::{Value as Json, json};

use rovn_testkit::{OvsdbServer as TestServer, schema};
use samples::{Planner, insert_op};

/// Runs one transaction and returns its results, failing on any operation's error.
fn transact(server: &TestServer, db: &str, ops: Vec<Json>) -> Result<Vec<Json>> {
    let mut request = vec![json!(db)];
    request.extend(ops);
    let request = Json::Array(request).to_string();
    let out = server.ovsdb_client(&["--timeout=30", "transact", &request])?;
    let results: Vec<Json> = serde_json::from_str(&out)
        .with_context(|| format!("ovsdb-client transact printed non-JSON: {out}"))?;
    for (i, result) in results.iter().enumerate() {
        if let Some(error) = result.get("error") {
            let op = request_op(&request, i + 1);
            bail!(
                "operation {i} ({op}) failed: {error} {}",
                result.get("details").unwrap_or(&Json::Null)
            );
        }
    }
    Ok(results)
}

fn request_op(request: &str, index: usize) -> String {
    serde_json::from_str::<Json>(request)
        .ok()
        .and_then(|r| r.get(index).cloned())
        .map(|op| format!("{} {}", op["op"], op["table"]))
        .unwrap_or_else(|| "commit".to_string())
}

/// Reads row `uuid` of `table` back and decodes every column with the schema.
fn select_row(
    server: &TestServer,
    schema: &DatabaseSchema,
    table: &str,
    uuid: Uuid,
) -> Result<Row> {
    let ts = schema
        .table(table)
        .ok_or_else(|| anyhow!("no table {table}"))?;
    let results = transact(
        server,
        &schema.name,
        vec![json!({
            "op": "select",
            "table": table,
            "where": [["_uuid", "==", ["uuid", uuid.to_string()]]],
        })],
    )?;
    let rows = results
        .first()
        .and_then(|r| r.get("rows"))
        .and_then(Json::as_array)
        .ok_or_else(|| anyhow!("select {table} returned no rows array"))?;
    ensure!(
        rows.len() == 1,
        "select {table} {uuid} found {} rows: the row did not survive the commit",
        rows.len()
    );
    let object = rows[0]
        .as_object()
        .ok_or_else(|| anyhow!("select {table} row is not an object"))?;
    let mut row = Row::new();
    for (column, value) in object {
        if column == "_uuid" || column == "_version" {
            continue;
        }
        let ty = ts
            .column_type(column)
            .ok_or_else(|| anyhow!("the server sent unknown column {table}.{column}"))?;
        let datum = Datum::from_json(value, &ty).with_context(|| format!("{table}.{column}"))?;
        row.insert(column.clone(), datum);
    }
    Ok(row)
}

/// Deletes every row of every table, so the next table starts from an empty database.
fn wipe(server: &TestServer, schema: &DatabaseSchema) -> Result<()> {
    let ops = schema
        .tables
        .keys()
        .map(|t| json!({"op": "delete", "table": t, "where": []}))
        .collect();
    transact(server, &schema.name, ops).map(drop)
}

/// The columns where `got` differs from `expected`, for failure messages.
fn differences(got: &Row, expected: &Row) -> String {
    let columns: std::collections::BTreeSet<&String> = got.keys().chain(expected.keys()).collect();
    let lines: Vec<String> = columns
        .into_iter()
        .filter(|c| got.get(*c) != expected.get(*c))
        .map(|c| {
            let show = |d: Option<&Datum>| d.map_or("(absent)".to_string(), ToString::to_string);
            format!(
                "{c}: got {} expected {}",
                show(got.get(c)),
                show(expected.get(c))
            )
        })
        .collect();
    lines.join("; ")
}

/// Columns whose type admits only one value, so no sample can differ from the default.
fn single_valued(schema: &DatabaseSchema, table: &str, column: &str) -> bool {
    schema
        .table(table)
        .and_then(|t| t.columns.get(column))
        .is_some_and(|c| {
            c.ty.is_scalar() && c.ty.key.enumeration.as_ref().is_some_and(|e| e.len() == 1)
        })
}

/// Round-trips one table; returns the number of columns checked.
fn round_trip_table<M: DatabaseModel>(
    server: &TestServer,
    schema: &DatabaseSchema,
    table: &str,
    seed: u64,
) -> Result<usize> {
    let mut planner = Planner::new(schema, seed);
    let (uuid, sample) = planner.sample_row(table)?;

    let model = M::from_row(table, uuid, &sample).context("decoding the sample row")?;
    ensure!(
        model.table() == table && model.uuid() == uuid,
        "wrong identity: {model:?}"
    );
    let encoded = model.to_row();
    ensure!(
        encoded == sample,
        "to_row(from_row(sample)) differs from the sample: {}",
        differences(&encoded, &sample)
    );
    let default = M::from_row(table, Uuid::nil(), &Row::new())?.to_row();
    ensure!(
        default.len() == encoded.len(),
        "a missing column is not decoded as its default"
    );
    for (column, datum) in &encoded {
        if !single_valued(schema, table, column) {
            ensure!(
                default.get(column) != Some(datum),
                "{table}.{column}: the sample {datum} is the default value"
            );
        }
    }

    let mut ops = planner.supporting_inserts();
    ops.push(insert_op(table, uuid, &encoded));
    transact(server, &schema.name, ops).context("inserting the model")?;

    let back = select_row(server, schema, table, uuid)?;
    let decoded = M::from_row(table, uuid, &back).context("decoding the selected row")?;
    ensure!(
        decoded == model,
        "the row read back differs: {}",
        differences(&decoded.to_row(), &encoded)
    );
    wipe(server, schema)?;
    Ok(encoded.len())
}

/// Round-trips every table of `M`'s database; fails listing every table that did not.
fn round_trip_database<M: DatabaseModel>(path: &str) -> Result<()> {
    let server = TestServer::start(path)?;
    let schema = M::schema();
    let from_file = DatabaseSchema::from_str(&std::fs::read_to_string(path)?)?;
    ensure!(
        schema == from_file,
        "the embedded schema differs from {path}"
    );
    ensure!(
        M::TABLES
            .iter()
            .copied()
            .eq(schema.tables.keys().map(String::as_str)),
        "TABLES does not list the schema's tables"
    );
    let mut failures = Vec::new();
    let mut columns = 0;
    for (i, table) in M::TABLES.iter().enumerate() {
        match round_trip_table::<M>(&server, &schema, table, (i as u64 + 1) << 32) {
            Ok(n) => columns += n,
            Err(e) => {
                failures.push(format!("{table}: {e:#}"));
                wipe(&server, &schema)?;
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} of {} {} tables failed:\n{}\nserver log:\n{}",
            failures.len(),
            M::TABLES.len(),
            M::DATABASE,
            failures.join("\n"),
            server.log_tail(20)
        );
    }
    eprintln!(
        "{}: {} tables, {columns} columns round-tripped",
        M::DATABASE,
        M::TABLES.len()
    );
    Ok(())
}

#[test]
fn every_northbound_table_round_trips_through_ovsdb_server() -> Result<()> {
    round_trip_database::<nb::AnyModel>(schema::VENDORED_NB)
}

#[test]
fn every_southbound_table_round_trips_through_ovsdb_server() -> Result<()> {
    round_trip_database::<sb::AnyModel>(schema::VENDORED_SB)
}

#[test]
fn every_open_vswitch_table_round_trips_through_ovsdb_server() -> Result<()> {
    round_trip_database::<vswitch::AnyModel>(schema::VENDORED_VSWITCH)
}

#[test]
fn every_ovsdb_type_round_trips_through_ovsdb_server() -> Result<()> {
    round_trip_database::<all_types::AnyModel>(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/all_types.ovsschema"
    ))
}
