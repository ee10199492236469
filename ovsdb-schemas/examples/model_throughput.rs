//! How fast typed rows convert, to size controller resyncs: encodes and decodes many
//! Logical_Switch_Port rows through `to_row`/`to_json` and `from_json`/`from_row`.
//!
//! `cargo run --release -p rovn-ovsdb-schemas --example model_throughput [-- ROWS]`

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use rovn_ovsdb::model::Model;
use rovn_ovsdb::{Datum, Row, Uuid};
use rovn_ovsdb_schemas::nb::{self, LogicalSwitchPort};

fn port(i: u32) -> LogicalSwitchPort {
    let [_, b, c, d] = i.to_be_bytes();
    let address = format!("0a:58:0a:{b:02x}:{c:02x}:{d:02x} 10.{b}.{c}.{d}");
    LogicalSwitchPort {
        uuid: Uuid::from_u128(u128::from(i) + 1),
        name: format!("pod-{i}.default"),
        addresses: BTreeSet::from([address.clone()]),
        port_security: BTreeSet::from([address]),
        external_ids: BTreeMap::from([
            ("rovn.io/vendor".to_string(), "rovn".to_string()),
            ("rovn.io/owner".to_string(), format!("Pod/default/pod-{i}")),
            ("rovn.io/node".to_string(), format!("node-{}", i % 100)),
        ]),
        options: BTreeMap::from([("requested-chassis".to_string(), format!("node-{}", i % 100))]),
        ..Default::default()
    }
}

fn rate(n: usize, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64();
    format!(
        "{:.0} rows/s ({:.2} µs/row)",
        n as f64 / secs,
        secs * 1e6 / n as f64
    )
}

fn main() -> Result<()> {
    let n: usize = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .with_context(|| format!("ROWS {arg:?} is not a number"))?,
        None => 100_000,
    };
    let schema = nb::schema();
    let table = schema
        .table(LogicalSwitchPort::TABLE)
        .ok_or_else(|| anyhow!("no Logical_Switch_Port table"))?;
    let ports: Vec<LogicalSwitchPort> = (0..n as u32).map(port).collect();

    let started = Instant::now();
    let wire: Vec<serde_json::Value> = ports
        .iter()
        .map(|p| {
            let row = p.to_row();
            serde_json::Value::Object(row.iter().map(|(c, d)| (c.clone(), d.to_json())).collect())
        })
        .collect();
    println!("encode (to_row + to_json):   {}", rate(n, started));

    let started = Instant::now();
    let mut decoded = Vec::with_capacity(n);
    for (p, json) in ports.iter().zip(&wire) {
        let object = json.as_object().ok_or_else(|| anyhow!("not an object"))?;
        let mut row = Row::new();
        for (column, value) in object {
            let ty = table
                .column_type(column)
                .ok_or_else(|| anyhow!("unknown column {column}"))?;
            row.insert(column.clone(), Datum::from_json(value, &ty)?);
        }
        decoded.push(LogicalSwitchPort::from_row(p.uuid, &row)?);
    }
    println!("decode (from_json + from_row): {}", rate(n, started));
    anyhow::ensure!(decoded == ports, "decoded rows differ");

    let started = Instant::now();
    let changed = ports.iter().filter(|p| !p.diff(p).is_empty()).count();
    println!(
        "diff of unchanged rows:        {} ({changed} changed)",
        rate(n, started)
    );
    Ok(())
}
