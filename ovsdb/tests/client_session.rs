//! The client's behaviour around sessions, against a real ovsdb-server: change events,
//! resync without an event storm, monitor conditions, transactions while disconnected, and
//! transactions whose session dies in flight.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use rovn_ovsdb::client::{Client, ClientConfig, Event, TransactError};
use rovn_ovsdb::error::Error;
use rovn_ovsdb::monitor::{MonitorCondition, TableMonitor};
use rovn_ovsdb::operation::{Condition, Operation};
use rovn_ovsdb::replica::Change;
use rovn_ovsdb::transport::Remote;
use rovn_ovsdb::{Datum, Row};
use support::{ServerExt, TestServer};
use tokio::sync::broadcast;

const NB: &str = "OVN_Northbound";
const WAIT: Duration = Duration::from_secs(10);

fn switch(name: &str) -> Row {
    Row::from([("name".to_string(), Datum::atom(name))])
}

fn client_for(server: &TestServer, tables: Vec<TableMonitor>) -> Result<Client> {
    let mut config = ClientConfig::new(NB, vec![server.remote()]);
    config.tables = tables;
    Ok(Client::start(config)?)
}

/// The next event, or an error after `WAIT`.
async fn next(events: &mut broadcast::Receiver<Event>) -> Result<Event> {
    Ok(tokio::time::timeout(WAIT, events.recv())
        .await
        .context("no event within the wait")??)
}

fn switch_names(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = client
        .read(|r| {
            r.table("Logical_Switch")
                .map(|t| {
                    t.iter()
                        .filter_map(|(_, row)| {
                            row.get("name")?.as_atom()?.as_str().map(String::from)
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_changes_and_a_resync_sends_only_the_difference() -> Result<()> {
    let mut server = TestServer::nb()?;
    let client = client_for(&server, vec![TableMonitor::all("Logical_Switch")])?;
    client.wait_synced(WAIT).await?;
    let mut events = client.subscribe();

    let res = client
        .transact(&[Operation::insert("Logical_Switch", switch("a"))])
        .await?;
    let uuid = res
        .first()
        .and_then(|r| r.uuid())
        .ok_or_else(|| anyhow!("no uuid"))?;
    match next(&mut events).await? {
        Event::Change(Change::Insert { uuid: u, new, .. }) => {
            ensure!(u == uuid && new["name"] == Datum::atom("a"), "{new:?}")
        }
        other => bail!("expected an insert, got {other:?}"),
    }
    client
        .transact(&[Operation::update(
            "Logical_Switch",
            vec![Condition::uuid(uuid)],
            Row::from([("external_ids".to_string(), Datum::map([("k", "v")]))]),
        )])
        .await?;
    match next(&mut events).await? {
        Event::Change(Change::Modify { old, new, .. }) => ensure!(
            old["external_ids"].is_empty() && new["external_ids"] == Datum::map([("k", "v")]),
            "{old:?} -> {new:?}"
        ),
        other => bail!("expected a modify, got {other:?}"),
    }

    // While the server is down, a switch is added to the database file directly. A
    // standalone server keeps no transaction history, so the client resyncs fully; the
    // replica diff turns that into exactly one insert.
    server.stop();
    server.tool_transact(
        &serde_json::json!([NB, {"op": "insert", "table": "Logical_Switch", "row": {"name": "offline"}}])
            .to_string(),
    )?;
    server.restart()?;
    let mut after = Vec::new();
    loop {
        match next(&mut events).await? {
            Event::Synced => break,
            e => after.push(e),
        }
    }
    ensure!(
        matches!(
            after.first(),
            Some(Event::Reconnected { resumed: false, .. })
        ),
        "{after:?}"
    );
    ensure!(
        after.len() == 2,
        "expected Reconnected and one insert, got {after:?}"
    );
    ensure!(
        matches!(&after[1], Event::Change(Change::Insert { new, .. }) if new["name"] == Datum::atom("offline")),
        "{after:?}"
    );
    ensure!(switch_names(&client) == ["a", "offline"]);

    client
        .transact(&[Operation::delete(
            "Logical_Switch",
            vec![Condition::uuid(uuid)],
        )])
        .await?;
    match next(&mut events).await? {
        Event::Change(Change::Delete { uuid: u, .. }) => ensure!(u == uuid),
        other => bail!("expected a delete, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_select_rows_and_can_change_live() -> Result<()> {
    let server = TestServer::nb()?;
    let only = |name: &str| {
        vec![MonitorCondition::Clause(Condition::eq(
            "name",
            Datum::atom(name),
        ))]
    };
    let client = client_for(
        &server,
        vec![TableMonitor::all("Logical_Switch").with_conditions(only("a"))],
    )?;
    client.wait_synced(WAIT).await?;
    client
        .transact(&[
            Operation::insert("Logical_Switch", switch("a")),
            Operation::insert("Logical_Switch", switch("b")),
        ])
        .await?;
    ensure!(
        switch_names(&client) == ["a"],
        "{:?}",
        switch_names(&client)
    );
    let mut events = client.subscribe();
    client.set_conditions("Logical_Switch", only("b")).await?;
    ensure!(
        switch_names(&client) == ["b"],
        "{:?}",
        switch_names(&client)
    );
    let mut kinds = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let Event::Change(c) = e {
            kinds.push(match c {
                Change::Insert { .. } => "insert",
                Change::Modify { .. } => "modify",
                Change::Delete { .. } => "delete",
            });
        }
    }
    kinds.sort();
    ensure!(kinds == ["delete", "insert"], "{kinds:?}");
    client
        .set_conditions("Logical_Switch", vec![MonitorCondition::Constant(true)])
        .await?;
    ensure!(
        switch_names(&client) == ["a", "b"],
        "{:?}",
        switch_names(&client)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_while_disconnected_wait_then_fail_not_connected() -> Result<()> {
    let mut server = TestServer::nb()?;
    let client = client_for(&server, vec![TableMonitor::all("Logical_Switch")])?;
    client.wait_synced(WAIT).await?;
    server.stop();
    let deadline = Instant::now() + WAIT;
    while client.is_connected() {
        ensure!(
            Instant::now() < deadline,
            "the client did not notice the server stop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wait = Duration::from_millis(700);
    let started = Instant::now();
    let err = client
        .transact_within(&[Operation::insert("Logical_Switch", switch("x"))], wait)
        .await;
    let elapsed = started.elapsed();
    match &err {
        Err(
            e @ TransactError::NotSent {
                source: Error::NotConnected { waited },
                ..
            },
        ) => {
            ensure!(*waited == wait && elapsed >= wait, "{waited:?} {elapsed:?}");
            ensure!(e.certainly_not_committed());
            ensure!(
                e.to_string().contains("700ms"),
                "message does not name the wait: {e}"
            );
        }
        other => bail!("expected NotConnected, got {other:?}"),
    }

    // A transaction issued while disconnected goes through once the server is back in time.
    let pending = {
        let ops = [Operation::insert("Logical_Switch", switch("late"))];
        let client = &client;
        async move { client.transact_within(&ops, WAIT).await }
    };
    let restart = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.restart()
    };
    let (res, restarted) = tokio::join!(pending, restart);
    restarted?;
    res?;
    ensure!(
        switch_names(&client) == ["late"],
        "{:?}",
        switch_names(&client)
    );

    // A client that never reached any server fails the same way.
    let mut config = ClientConfig::new(NB, vec![Remote::Unix(server.dir().join("nobody.sock"))]);
    config.tables = vec![TableMonitor::all("Logical_Switch")];
    let lonely = Client::start(config)?;
    let err = lonely
        .transact_within(&[Operation::insert("Logical_Switch", switch("y"))], wait)
        .await;
    ensure!(
        matches!(
            err,
            Err(TransactError::NotSent {
                source: Error::NotConnected { .. },
                ..
            })
        ),
        "{err:?}"
    );
    ensure!(
        lonely
            .wait_synced(Duration::from_millis(100))
            .await
            .is_err()
    );
    ensure!(
        lonely
            .last_error()
            .is_some_and(|e| e.contains("nobody.sock"))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_cut_off_in_flight_is_reported_ambiguous_and_not_replayed() -> Result<()> {
    let server = TestServer::nb()?;
    let client = client_for(&server, vec![TableMonitor::all("Logical_Switch")])?;
    client.wait_synced(WAIT).await?;
    let sent_before = client.stats().transactions_sent;
    server.pause()?;
    let ops = [Operation::insert("Logical_Switch", switch("maybe"))];
    let cut = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.reconnect();
    };
    let (res, ()) = tokio::join!(client.transact(&ops), cut);
    server.resume()?;
    match &res {
        Err(e @ TransactError::OutcomeUnknown { .. }) => {
            ensure!(!e.certainly_not_committed());
            ensure!(e.to_string().contains("may or may not"), "{e}");
        }
        other => bail!("expected OutcomeUnknown, got {other:?}"),
    }
    client.wait_synced(WAIT).await?;
    ensure!(client.stats().transactions_sent == sent_before + 1);
    // The server may well have committed it from its socket buffer, but only once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = switch_names(&client)
        .iter()
        .filter(|n| *n == "maybe")
        .count();
    ensure!(n <= 1, "the transaction was applied {n} times");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_over_ssl_after_passing_over_a_dead_remote() -> Result<()> {
    let pki = support::Pki::new()?;
    let server_tls = pki.issue("ovsdb-server")?;
    let client_tls = support::tls(pki.issue("rovn-client")?);
    let server = TestServer::start_with(support::NB_SCHEMA, support::Listener::Ssl(server_tls))?;
    let ssl = server
        .ssl_remote()
        .ok_or_else(|| anyhow!("the server has no ssl listener"))?;
    let dead = Remote::Unix(server.dir().join("dead.sock"));
    let mut config = ClientConfig::new(NB, vec![dead, ssl.clone()]);
    config.tls = Some(client_tls);
    config.tables = vec![TableMonitor::all("Logical_Switch")];
    let client = Client::start(config)?;
    client.wait_synced(WAIT).await?;
    ensure!(client.current_remote() == Some(ssl.to_string()));
    client
        .transact(&[Operation::insert("Logical_Switch", switch("tls"))])
        .await?;
    ensure!(switch_names(&client) == ["tls"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_only_accepts_a_standalone_server_and_names_a_missing_database() -> Result<()> {
    let server = TestServer::nb()?;
    let mut config = ClientConfig::new(NB, vec![server.remote()]);
    config.tables = vec![TableMonitor::all("Logical_Switch")];
    config.leader_only = true;
    let client = Client::start(config)?;
    client.wait_synced(WAIT).await?;
    ensure!(client.stats().servers_skipped == 0);

    let mut config = ClientConfig::new("OVN_Southbound", vec![server.remote()]);
    config.leader_only = true;
    let wrong = Client::start(config)?;
    ensure!(wrong.wait_synced(Duration::from_millis(500)).await.is_err());
    let why = wrong.last_error().unwrap_or_default();
    ensure!(why.contains("has no database OVN_Southbound"), "{why}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_schema_conversion_is_followed() -> Result<()> {
    let server = TestServer::nb()?;
    let client = client_for(&server, vec![TableMonitor::all("Logical_Switch")])?;
    client.wait_synced(WAIT).await?;
    client
        .transact(&[Operation::insert("Logical_Switch", switch("kept"))])
        .await?;
    let before = client.stats().syncs;
    let mut events = client.subscribe();

    // The NB schema plus one column, as an upgrade would bring.
    let text = std::fs::read_to_string(support::NB_SCHEMA)?;
    let mut schema: serde_json::Value = serde_json::from_str(&text)?;
    schema["version"] = serde_json::json!("99.0.0");
    schema["tables"]["Logical_Switch"]["columns"]["rovn_test"] =
        serde_json::json!({"type": {"key": "string", "min": 0, "max": 1}});
    let path = server.dir().join("upgraded.ovsschema");
    std::fs::write(&path, schema.to_string())?;
    let path_str = path
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 temp path"))?;
    server.ovsdb_client(&["convert", path_str])?;

    let deadline = Instant::now() + WAIT;
    loop {
        let has_column = client
            .read(|r| {
                r.schema()
                    .table("Logical_Switch")
                    .is_some_and(|t| t.columns.contains_key("rovn_test"))
            })
            .unwrap_or(false);
        if has_column && client.is_connected() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the client did not pick up the new schema; last error {:?}",
            client.last_error()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ensure!(client.stats().syncs > before);
    ensure!(
        switch_names(&client) == ["kept"],
        "{:?}",
        switch_names(&client)
    );
    let has_new_column = client
        .read(|r| {
            r.table("Logical_Switch")
                .is_some_and(|t| t.iter().all(|(_, row)| row.contains_key("rovn_test")))
        })
        .unwrap_or(false);
    ensure!(has_new_column, "rows lack the new column");
    // The rows did not change: the resync after the conversion reports nothing but itself.
    let mut seen = Vec::new();
    loop {
        let e = next(&mut events).await?;
        if e == Event::Synced {
            break;
        }
        seen.push(e);
    }
    ensure!(
        matches!(seen.as_slice(), [Event::Reconnected { .. }]),
        "expected only Reconnected before Synced, got {seen:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_from_the_start_sees_the_initial_rows_then_synced() -> Result<()> {
    let server = TestServer::nb()?;
    let names = ["one", "two", "three"];
    let (conn, _) = server.connect().await?;
    let ops: Vec<Operation> = names
        .iter()
        .map(|n| Operation::insert("Logical_Switch", switch(n)))
        .collect();
    conn.transact(NB, &ops).await?;
    let mut config = ClientConfig::new(NB, vec![server.remote()]);
    config.tables = vec![TableMonitor::all("Logical_Switch")];
    let (_client, mut events) = Client::start_subscribed(config)?;
    let mut inserted = Vec::new();
    loop {
        match next(&mut events).await? {
            Event::Change(Change::Insert { new, .. }) => {
                inserted.push(new["name"].to_string());
            }
            Event::Synced => break,
            other => bail!("unexpected {other:?}"),
        }
    }
    inserted.sort();
    ensure!(
        inserted == ["\"one\"", "\"three\"", "\"two\""],
        "{inserted:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_is_detected_by_the_probe_and_the_client_comes_back() -> Result<()> {
    let server = TestServer::nb()?;
    let mut config = ClientConfig::new(NB, vec![server.remote()]);
    config.tables = vec![TableMonitor::all("Logical_Switch")];
    config.probe_interval = Some(Duration::from_millis(300));
    config.connect_timeout = Duration::from_millis(500);
    let client = Client::start(config)?;
    client.wait_synced(WAIT).await?;
    server.pause()?;
    let frozen = Instant::now();
    while client.is_connected() {
        if frozen.elapsed() > Duration::from_secs(5) {
            server.resume()?;
            bail!("the frozen server was not detected within 5 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let detected = frozen.elapsed();
    server.resume()?;
    client.wait_synced(WAIT).await?;
    eprintln!("frozen server detected after {detected:?} (probe interval 300 ms)");
    ensure!(detected >= Duration::from_millis(300), "{detected:?}");
    client
        .transact(&[Operation::insert("Logical_Switch", switch("thawed"))])
        .await?;
    ensure!(switch_names(&client) == ["thawed"]);
    Ok(())
}
