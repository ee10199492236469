//! A live client across an `ovsdb-server` restart on the same database file: it resumes
//! with `monitor_cond_since`, the server does not resend the unchanged rows, and the
//! replica ends up right, including changes made while the client was away.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use rovn_ovsdb::client::{Client, ClientConfig, Event};
use rovn_ovsdb::connection::Connection;
use rovn_ovsdb::monitor::TableMonitor;
use rovn_ovsdb::operation::{Condition, Mutation, Operation};
use rovn_ovsdb::{Datum, Row, Uuid};
use support::{Cluster, NB_DB, ServerExt, remotes};

const ROWS: usize = 1000;
const SYNC: Duration = Duration::from_secs(20);

fn address_set(name: &str) -> Row {
    Row::from([
        ("name".to_string(), Datum::atom(name)),
        (
            "addresses".to_string(),
            Datum::set([format!("10.0.{}.{}", name.len(), name.len())]),
        ),
    ])
}

/// Every Address_Set row the server has, by UUID, read with a plain session.
async fn server_rows(conn: &Connection) -> Result<BTreeMap<Uuid, Row>> {
    let schema = conn.get_schema(NB_DB).await?;
    let table = schema
        .table("Address_Set")
        .ok_or_else(|| anyhow!("no Address_Set"))?;
    let cols: Vec<String> = table.columns.keys().cloned().collect();
    let res = conn
        .transact(
            NB_DB,
            &[Operation::select("Address_Set", vec![])
                .with_columns(cols.iter().cloned().chain(["_uuid".to_string()]))],
        )
        .await?;
    let first = res.first().ok_or_else(|| anyhow!("empty select result"))?;
    first
        .rows_decoded(table)?
        .into_iter()
        .map(|(u, r)| Ok((u.ok_or_else(|| anyhow!("row without _uuid"))?, r)))
        .collect()
}

fn replica_rows(client: &Client) -> Result<BTreeMap<Uuid, Row>> {
    client
        .read(|r| r.contents().remove("Address_Set").unwrap_or_default())
        .ok_or_else(|| anyhow!("replica not built"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_without_resending_unchanged_rows() -> Result<()> {
    let mut cluster = Cluster::start(support::NB_SCHEMA, 1)?;
    let mut config = ClientConfig::new(NB_DB, remotes(&cluster));
    config.tables = vec![TableMonitor::all("Address_Set")];
    let client = Client::start(config)?;
    client.wait_synced(SYNC).await?;
    let mut events = client.subscribe();

    for chunk in (0..ROWS).collect::<Vec<_>>().chunks(250) {
        let ops: Vec<Operation> = chunk
            .iter()
            .map(|i| Operation::insert("Address_Set", address_set(&format!("as_{i}"))))
            .collect();
        client.transact(&ops).await?;
    }
    ensure!(client.read(|r| r.table("Address_Set").map(|t| t.len())) == Some(Some(ROWS)));
    let before = client.stats();
    ensure!(before.rows_received >= ROWS as u64, "{before:?}");

    // The server goes down; while the client cannot reach it, one row changes, one is
    // inserted and one deleted.
    cluster.restart(0, false)?;
    let admin = cluster.members[0].admin().await?;
    admin
        .transact(
            NB_DB,
            &[
                Operation::mutate(
                    "Address_Set",
                    vec![Condition::eq("name", Datum::atom("as_7"))],
                    vec![Mutation::insert("addresses", Datum::set(["192.0.2.7"]))],
                ),
                Operation::insert("Address_Set", address_set("while_away")),
                Operation::delete(
                    "Address_Set",
                    vec![Condition::eq("name", Datum::atom("as_9"))],
                ),
            ],
        )
        .await
        .context("changing the database while the client is away")?;
    admin.close();
    ensure!(!client.is_connected(), "the client should be disconnected");

    cluster.restart(0, true)?;
    client.wait_synced(SYNC).await?;
    let after = client.stats();
    let resent = after.rows_received - before.rows_received;
    eprintln!(
        "rows received: {} before the restart, {resent} after it (resumes {} -> {})",
        before.rows_received, before.resumes, after.resumes
    );
    ensure!(after.resumes == before.resumes + 1, "no resume: {after:?}");
    ensure!(
        resent == 3,
        "{resent} rows received after the restart; only the 3 changed rows should be"
    );

    // The events say it was a resume and carry exactly the three changes.
    let mut seen = Vec::new();
    loop {
        let e = tokio::time::timeout(SYNC, events.recv()).await??;
        if e == Event::Synced && seen.iter().any(|e| matches!(e, Event::Reconnected { .. })) {
            break;
        }
        seen.push(e);
    }
    let reconnected = seen
        .iter()
        .find(|e| matches!(e, Event::Reconnected { .. }))
        .cloned();
    ensure!(
        matches!(reconnected, Some(Event::Reconnected { resumed: true, .. })),
        "{reconnected:?}"
    );
    let changes: Vec<_> = seen
        .iter()
        .skip_while(|e| !matches!(e, Event::Reconnected { .. }))
        .filter(|e| matches!(e, Event::Change(_)))
        .collect();
    ensure!(changes.len() == 3, "{changes:?}");

    let admin = cluster.members[0].admin().await?;
    let server = server_rows(&admin).await?;
    let replica = replica_rows(&client)?;
    ensure!(server.len() == ROWS, "server has {} rows", server.len());
    ensure!(
        replica == server,
        "replica differs from the server after the resume"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_history_falls_back_to_a_diffed_full_resync() -> Result<()> {
    let mut cluster = Cluster::start(support::NB_SCHEMA, 1)?;
    let mut config = ClientConfig::new(NB_DB, remotes(&cluster));
    config.tables = vec![TableMonitor::all("Address_Set")];
    let client = Client::start(config)?;
    client.wait_synced(SYNC).await?;
    let ops: Vec<Operation> = (0..50)
        .map(|i| Operation::insert("Address_Set", address_set(&format!("keep_{i}"))))
        .collect();
    client.transact(&ops).await?;

    // Many transactions while the client is away push its transaction out of the server's
    // history (at most 100 are kept), so the server sends everything and the client diffs.
    cluster.restart(0, false)?;
    let admin = cluster.members[0].admin().await?;
    for i in 0..120 {
        admin
            .transact(
                NB_DB,
                &[Operation::insert(
                    "Address_Set",
                    address_set(&format!("late_{i}")),
                )],
            )
            .await?;
    }
    admin.close();
    let mut events = client.subscribe();
    cluster.restart(0, true)?;
    client.wait_synced(SYNC).await?;
    let mut inserts = 0;
    let mut others = 0;
    let mut resumed = None;
    loop {
        match tokio::time::timeout(SYNC, events.recv()).await?? {
            Event::Synced => break,
            Event::Reconnected { resumed: r, .. } => resumed = Some(r),
            Event::Change(rovn_ovsdb::replica::Change::Insert { .. }) => inserts += 1,
            Event::Change(_) => others += 1,
        }
    }
    eprintln!("resumed {resumed:?}, {inserts} inserts, {others} other changes");
    ensure!(resumed.is_some(), "no Reconnected event");
    ensure!(
        inserts == 120 && others == 0,
        "expected exactly the 120 new rows as inserts, got {inserts} inserts and {others} others"
    );
    let admin = cluster.members[0].admin().await?;
    ensure!(replica_rows(&client)? == server_rows(&admin).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_database_is_not_resent() -> Result<()> {
    const BIG: usize = 10_000;
    let mut cluster = Cluster::start(support::NB_SCHEMA, 1)?;
    let mut config = ClientConfig::new(NB_DB, remotes(&cluster));
    config.tables = vec![TableMonitor::all("Address_Set")];
    let client = Client::start(config.clone())?;
    client.wait_synced(SYNC).await?;
    for chunk in (0..BIG).collect::<Vec<_>>().chunks(1000) {
        let ops: Vec<Operation> = chunk
            .iter()
            .map(|i| Operation::insert("Address_Set", address_set(&format!("big_{i}"))))
            .collect();
        client.transact(&ops).await?;
    }
    let before = client.stats();
    let restarted = std::time::Instant::now();
    cluster.restart(0, true)?;
    // Wait for the session to drop and come back.
    let deadline = std::time::Instant::now() + SYNC;
    while client.stats().syncs == before.syncs {
        ensure!(
            std::time::Instant::now() < deadline,
            "no resync: {:?}",
            client.last_error()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let resume_time = restarted.elapsed();
    let after = client.stats();
    ensure!(after.resumes == before.resumes + 1, "{after:?}");
    ensure!(
        after.rows_received == before.rows_received,
        "{} rows resent for an unchanged database",
        after.rows_received - before.rows_received
    );

    let fresh_started = std::time::Instant::now();
    let fresh = Client::start(config)?;
    fresh.wait_synced(SYNC).await?;
    let full_time = fresh_started.elapsed();
    ensure!(fresh.stats().rows_received == BIG as u64);
    ensure!(replica_rows(&fresh)? == replica_rows(&client)?);
    eprintln!(
        "{BIG} rows: restart + resume {resume_time:?} with 0 rows resent; full initial sync of a new client {full_time:?}"
    );
    Ok(())
}
