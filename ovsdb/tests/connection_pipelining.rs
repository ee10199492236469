//! Many concurrent callers on one connection: nothing waits for a reply before the next request
//! is written, and the writer gathers queued requests into few writes.

mod support;

use anyhow::{Context, Result, bail};
use rovn_ovsdb::Datum;
use rovn_ovsdb::operation::{Operation, OperationResult};
use support::{ServerExt, TestServer};

const NB: &str = "OVN_Northbound";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_transactions_are_pipelined() -> Result<()> {
    let server = TestServer::nb()?;
    let (conn, _updates) = server.connect().await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let conn = conn.clone();
        tasks.spawn(async move {
            let row = [
                ("name".to_string(), Datum::atom(format!("as_{i}"))),
                (
                    "addresses".to_string(),
                    Datum::set([format!("10.0.{}.{}", i / 250, i % 250)]),
                ),
            ]
            .into_iter()
            .collect();
            conn.transact(NB, &[Operation::insert("Address_Set", row)])
                .await
        });
    }
    let mut ok = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined? {
            Ok(results) if results.len() == 1 && results[0].uuid().is_some() => ok += 1,
            other => bail!("transaction failed: {other:?}"),
        }
    }
    assert_eq!(ok, 1000);
    let stats = conn.stats();
    assert_eq!(stats.requests_sent, 1000);
    assert!(
        stats.max_pending > 1,
        "requests were never in flight together: {stats:?}"
    );
    assert!(
        stats.max_frames_per_write > 1 && stats.writes < stats.messages_out,
        "the writer never coalesced frames: {stats:?}"
    );

    let results = conn
        .transact(
            NB,
            &[Operation::select("Address_Set", vec![]).with_columns(["name"])],
        )
        .await?;
    match results.first().context("no select result")? {
        OperationResult::Rows(rows) => assert_eq!(rows.len(), 1000),
        other => bail!("select gave {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_megabyte_requests_and_replies_arrive_intact() -> Result<()> {
    let server = TestServer::nb()?;
    let (conn, _updates) = server.connect().await?;
    let ops: Vec<Operation> = (0..500)
        .map(|i| {
            let addresses =
                Datum::set((0..200).map(|j| format!("10.{}.{}.{}", i / 250, i % 250, j)));
            let row = [
                ("name".to_string(), Datum::atom(format!("big_{i}"))),
                ("addresses".to_string(), addresses),
            ]
            .into_iter()
            .collect();
            Operation::insert("Address_Set", row)
        })
        .collect();
    let inserted = conn.transact(NB, &ops).await?;
    assert_eq!(inserted.len(), 500);
    let sent = conn.stats().bytes_out;
    assert!(sent > 1_000_000, "request was only {sent} bytes");

    let results = conn
        .transact(NB, &[Operation::select("Address_Set", vec![])])
        .await?;
    let schema = conn.get_schema(NB).await?;
    let rows = results
        .first()
        .context("no select result")?
        .rows_decoded(schema.table("Address_Set").context("no Address_Set")?)?;
    assert_eq!(rows.len(), 500);
    assert!(rows.iter().all(|(_, row)| row["addresses"].len() == 200));
    let received = conn.stats().bytes_in;
    assert!(received > 1_500_000, "reply was only {received} bytes");
    Ok(())
}
