//! Session-level behaviour against a real ovsdb-server: RPCs on the three schemas, transports,
//! echo in both directions, the inactivity probe, and what pending calls see when the
//! session ends.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rovn_ovsdb::connection::{ConnectOptions, Connection};
use rovn_ovsdb::error::Error;
use serde_json::json;
use support::{Listener, NB_SCHEMA, SB_SCHEMA, ServerExt, TestServer, VSWITCH_SCHEMA};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_dbs_and_get_schema_for_nb_sb_and_open_vswitch() -> Result<()> {
    for schema in [NB_SCHEMA, SB_SCHEMA, VSWITCH_SCHEMA] {
        let server = TestServer::start(schema)?;
        let (conn, _updates) = server.connect().await?;
        let dbs = conn.list_dbs().await?;
        assert!(
            dbs.iter().any(|d| d == server.db_name()),
            "{schema}: list_dbs gave {dbs:?}"
        );
        let from_server = conn.get_schema(server.db_name()).await?;
        let from_file: rovn_ovsdb::DatabaseSchema = std::fs::read_to_string(schema)?.parse()?;
        assert_eq!(from_server.name, from_file.name);
        assert_eq!(from_server.version, from_file.version);
        assert_eq!(
            from_server.tables.keys().collect::<Vec<_>>(),
            from_file.tables.keys().collect::<Vec<_>>(),
            "{schema}"
        );
        let stats = conn.stats();
        assert_eq!(stats.requests_sent, 2);
        assert!(stats.bytes_in > 1000, "{stats:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_database_is_an_rpc_error_naming_the_method() -> Result<()> {
    let server = TestServer::nb()?;
    let (conn, _updates) = server.connect().await?;
    match conn.get_schema("No_Such_DB").await {
        Err(Error::Rpc { method, error }) => {
            assert_eq!(method, "get_schema");
            assert_eq!(error["error"], json!("unknown database"), "{error}");
        }
        other => bail!("expected an RPC error, got {other:?}"),
    }
    assert!(!conn.is_closed(), "an RPC error must not end the session");
    conn.list_dbs().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_remote_works_and_server_echo_is_answered() -> Result<()> {
    let server = TestServer::start_with(NB_SCHEMA, Listener::Tcp)?;
    let remote = server.tcp_remote().context("no tcp remote")?;
    // Our own probe is off, so only the server's 5 s inactivity probe is at work: it sends
    // `echo` and would drop us 5 s later without an answer.
    let opts = ConnectOptions {
        probe_interval: None,
        ..ConnectOptions::default()
    };
    let (conn, _updates) = Connection::connect(&remote, &opts).await?;
    assert_eq!(conn.remote(), remote.to_string());
    conn.list_dbs().await?;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let stats = conn.stats();
    assert!(
        stats.echo_replies >= 1,
        "server echo not seen or not answered: {stats:?}"
    );
    assert!(
        !conn.is_closed(),
        "server dropped us: {:?}",
        conn.end_error()
    );
    assert!(
        conn.list_dbs()
            .await?
            .contains(&"OVN_Northbound".to_string())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_probe_keeps_a_healthy_session_open() -> Result<()> {
    let server = TestServer::nb()?;
    let opts = ConnectOptions {
        probe_interval: Some(Duration::from_millis(700)),
        ..ConnectOptions::default()
    };
    let (conn, _updates) = Connection::connect(&server.remote(), &opts).await?;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let stats = conn.stats();
    assert!(stats.probes_sent >= 2, "{stats:?}");
    assert!(!conn.is_closed(), "{:?}", conn.end_error());
    conn.list_dbs().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_ends_the_session_with_probe_timeout() -> Result<()> {
    let server = TestServer::nb()?;
    let interval = Duration::from_millis(300);
    let opts = ConnectOptions {
        probe_interval: Some(interval),
        ..ConnectOptions::default()
    };
    let (conn, _updates) = Connection::connect(&server.remote(), &opts).await?;
    conn.list_dbs().await?;
    server.pause()?;
    let started = Instant::now();
    let pending = tokio::spawn({
        let conn = conn.clone();
        async move { conn.list_dbs().await }
    });
    let ended = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
    let elapsed = started.elapsed();
    server.resume()?;
    assert!(ended.is_ok(), "session still open 5 s after SIGSTOP");
    assert!(
        elapsed >= interval,
        "gave up after {elapsed:?}, before even one probe interval"
    );
    assert!(matches!(conn.end_error(), Some(Error::ProbeTimeout)));
    match pending.await? {
        Err(Error::ProbeTimeout) => {}
        other => bail!("pending call got {other:?}, expected ProbeTimeout"),
    }
    assert!(matches!(conn.list_dbs().await, Err(Error::ProbeTimeout)));
    assert_eq!(conn.stats().probes_sent, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_fails_pending_calls_and_data_survives() -> Result<()> {
    let mut server = TestServer::nb()?;
    let (conn, _updates) = server.connect().await?;
    server.ovsdb_client(&[
        "transact",
        r#"["OVN_Northbound",{"op":"insert","table":"Logical_Switch","row":{"name":"survivor"}}]"#,
    ])?;
    server.pause()?;
    let pending = tokio::spawn({
        let conn = conn.clone();
        async move { conn.list_dbs().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.restart()?;
    match tokio::time::timeout(Duration::from_secs(5), pending).await {
        Ok(Ok(Err(e))) => {
            assert!(e.is_session_lost(), "{e}");
            assert!(
                e.to_string().contains("db.sock"),
                "error does not name the remote: {e}"
            );
        }
        other => bail!("pending call did not fail on server restart: {other:?}"),
    }
    assert!(conn.is_closed());
    let (conn, _updates) = server.connect().await?;
    let out = server.ovsdb_client(&["dump", "OVN_Northbound", "Logical_Switch", "name"])?;
    assert!(out.contains("survivor"), "{out}");
    conn.list_dbs().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_fails_pending_and_later_calls() -> Result<()> {
    let server = TestServer::nb()?;
    let (conn, _updates) = server.connect().await?;
    server.pause()?;
    let pending = tokio::spawn({
        let conn = conn.clone();
        async move { conn.list_dbs().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.close();
    let result = tokio::time::timeout(Duration::from_secs(2), pending).await;
    server.resume()?;
    assert!(matches!(result, Ok(Ok(Err(Error::Closed)))), "{result:?}");
    tokio::time::timeout(Duration::from_secs(1), conn.closed()).await?;
    assert!(matches!(conn.list_dbs().await, Err(Error::Closed)));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_nothing_names_the_remote() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let remote = rovn_ovsdb::transport::Remote::Unix(dir.path().join("absent.sock"));
    match Connection::connect(&remote, &ConnectOptions::default()).await {
        Err(e @ Error::Io { .. }) => {
            assert!(e.to_string().contains("absent.sock"), "{e}");
        }
        other => bail!("expected an I/O error, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_calls_are_forgotten() -> Result<()> {
    let server = TestServer::nb()?;
    let (conn, _updates) = server.connect().await?;
    server.pause()?;
    let gave_up = tokio::time::timeout(Duration::from_millis(200), conn.list_dbs()).await;
    let pending_after = conn.stats().pending;
    server.resume()?;
    assert!(gave_up.is_err(), "a paused server answered: {gave_up:?}");
    assert_eq!(pending_after, 0, "the abandoned call is still pending");
    // The late reply to the abandoned call is ignored and the session stays usable.
    conn.list_dbs().await?;
    assert_eq!(conn.stats().pending, 0);
    Ok(())
}
