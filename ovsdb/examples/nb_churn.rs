//! Pod-churn benchmark against a fresh OVN Northbound database.
//!
//! Creates logical switch `node1` and N pod-like ports (LSP with `addresses` and
//! `port_security` `"<mac> <ip>"`, `external_ids:pod=ns/podI`, added to the switch's `ports`),
//! either one transaction per pod, all issued at once on the one pipelined connection
//! (`per-pod`), or as few transactions as `--batch-ops` allows (`batch`). Compare with
//! `raw_churn.py`, which writes the same rows as raw pipelined JSON; `churn_compare.sh` runs both.
//!
//! ```text
//! cargo run --release -p rovn-ovsdb --example nb_churn -- --remote unix:PATH --pods 10000 --mode per-pod
//! ```

use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use rovn_ovsdb::connection::{ConnectOptions, Connection};
use rovn_ovsdb::operation::{Condition, Mutation, Operation, OperationResult};
use rovn_ovsdb::transport::Remote;
use rovn_ovsdb::{Atom, Datum, Row};

const NB: &str = "OVN_Northbound";
const SWITCH: &str = "node1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// One transaction per pod, all in flight together.
    PerPod,
    /// As few transactions as the operation bound allows.
    Batch,
}

/// Writes N pod ports into a fresh NB database and reports the rate.
#[derive(Debug, Parser)]
struct Args {
    /// The NB database, e.g. unix:/run/ovn/ovnnb_db.sock.
    #[arg(long)]
    remote: Remote,
    /// How many pods.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// per-pod or batch.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Bound on operations per transaction in batch mode (the switch mutation counts as one).
    #[arg(long, default_value_t = 10_000)]
    batch_ops: usize,
}

/// The port of pod `i`: its name, `"<mac> <ip>"` and owner.
fn pod_port(i: usize) -> Row {
    let n = i + 2;
    let (hi, lo) = ((n >> 8) & 0xff, n & 0xff);
    let address = format!("0a:58:0a:10:{hi:02x}:{lo:02x} 10.16.{hi}.{lo}");
    Row::from([
        ("name".to_string(), Datum::atom(format!("pod{i}.ns"))),
        ("addresses".to_string(), Datum::atom(address.clone())),
        ("port_security".to_string(), Datum::atom(address)),
        (
            "external_ids".to_string(),
            Datum::map([("pod", format!("ns/pod{i}"))]),
        ),
    ])
}

fn add_to_switch(names: impl IntoIterator<Item = String>) -> Operation {
    Operation::mutate(
        "Logical_Switch",
        vec![Condition::eq("name", Datum::atom(SWITCH))],
        vec![Mutation::insert(
            "ports",
            Datum::set(names.into_iter().map(Atom::NamedUuid)),
        )],
    )
}

async fn per_pod(conn: &Connection, pods: usize) -> Result<usize> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..pods {
        let conn = conn.clone();
        tasks.spawn(async move {
            let ops = [
                Operation::insert("Logical_Switch_Port", pod_port(i)).with_uuid_name("lsp"),
                add_to_switch(["lsp".to_string()]),
            ];
            conn.transact(NB, &ops)
                .await
                .with_context(|| format!("pod {i}"))
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("pod task panicked")??;
    }
    Ok(pods)
}

/// The batch-mode transactions: as many pods per transaction as `batch_ops` allows, each
/// transaction inserting its ports and adding them all to the switch in one mutation.
fn batch_transactions(pods: usize, batch_ops: usize) -> Vec<Vec<Operation>> {
    let per_txn = batch_ops.saturating_sub(1).max(1);
    let mut transactions = Vec::new();
    let mut start = 0;
    while start < pods {
        let end = (start + per_txn).min(pods);
        let mut ops: Vec<Operation> = (start..end)
            .map(|i| {
                Operation::insert("Logical_Switch_Port", pod_port(i))
                    .with_uuid_name(format!("p{i}"))
            })
            .collect();
        ops.push(add_to_switch((start..end).map(|i| format!("p{i}"))));
        transactions.push(ops);
        start = end;
    }
    transactions
}

async fn batch(conn: &Connection, transactions: &[Vec<Operation>]) -> Result<usize> {
    let results =
        futures::future::join_all(transactions.iter().map(|ops| conn.transact(NB, ops))).await;
    for (n, result) in results.into_iter().enumerate() {
        result.with_context(|| format!("batch transaction {n}"))?;
    }
    Ok(transactions.len())
}

async fn switch_port_count(conn: &Connection) -> Result<usize> {
    let results = conn
        .transact(
            NB,
            &[Operation::select(
                "Logical_Switch",
                vec![Condition::eq("name", Datum::atom(SWITCH))],
            )
            .with_columns(["ports"])],
        )
        .await?;
    match results.first() {
        Some(OperationResult::Rows(rows)) if rows.len() == 1 => {
            let ports = &rows[0]["ports"];
            Ok(match ports.as_array().map(Vec::as_slice) {
                Some([tag, serde_json::Value::Array(items)]) if tag == "set" => items.len(),
                Some([tag, _]) if tag == "uuid" => 1,
                _ => bail!("unexpected ports value {ports}"),
            })
        }
        other => bail!("switch {SWITCH} not found: {other:?}"),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let opts = ConnectOptions {
        probe_interval: None,
        ..ConnectOptions::default()
    };
    let (conn, _updates) = Connection::connect(&args.remote, &opts)
        .await
        .with_context(|| format!("connecting to {}", args.remote))?;
    conn.transact(
        NB,
        &[Operation::insert(
            "Logical_Switch",
            Row::from([("name".to_string(), Datum::atom(SWITCH))]),
        )],
    )
    .await
    .context("creating switch node1 (is the database fresh?)")?;

    let started = Instant::now();
    // Like the raw client, the request data is freed after the clock stops.
    let batches;
    let transactions = match args.mode {
        Mode::PerPod => per_pod(&conn, args.pods).await?,
        Mode::Batch => {
            batches = batch_transactions(args.pods, args.batch_ops);
            batch(&conn, &batches).await?
        }
    };
    let seconds = started.elapsed().as_secs_f64();

    let ports = switch_port_count(&conn).await?;
    if ports != args.pods {
        bail!("switch {SWITCH} has {ports} ports, expected {}", args.pods);
    }
    let stats = conn.stats();
    let mode = match args.mode {
        Mode::PerPod => "per-pod",
        Mode::Batch => "batch",
    };
    println!("client=rovn");
    println!("mode={mode}");
    println!("pods={}", args.pods);
    println!("seconds={seconds:.3}");
    println!("transactions={transactions}");
    println!(
        "writes={} max_frames_per_write={} max_pending={}",
        stats.writes, stats.max_frames_per_write, stats.max_pending
    );
    println!("pods_per_sec={:.0}", args.pods as f64 / seconds);
    Ok(())
}
