//! What the connection does with each kind of message: monitor notifications from a real
//! ovsdb-server, and a peer that breaks the protocol (played by a unix socket in the test,
//! since a real server never sends garbage).

mod support;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use rovn_ovsdb::connection::{ConnectOptions, Connection, Notification};
use rovn_ovsdb::error::Error;
use rovn_ovsdb::transport::Remote;
use serde_json::{Value as Json, json};
use support::{ServerExt, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

async fn next_notification(
    updates: &mut tokio::sync::mpsc::UnboundedReceiver<Notification>,
) -> Result<Notification> {
    tokio::time::timeout(Duration::from_secs(5), updates.recv())
        .await
        .context("no notification within 5 s")?
        .context("notification channel closed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_cond_and_since_notifications_arrive_as_update2_and_update3() -> Result<()> {
    let server = TestServer::nb()?;
    let (conn, mut updates) = server.connect().await?;
    let requests = json!({"Logical_Switch": [{"columns": ["name"]}]});
    let initial = conn
        .call("monitor_cond", json!(["OVN_Northbound", "m2", requests]))
        .await?;
    assert_eq!(initial, json!({}), "fresh database, empty initial state");
    let since = conn
        .call(
            "monitor_cond_since",
            json!([
                "OVN_Northbound",
                ["m3"],
                requests,
                "00000000-0000-0000-0000-000000000000"
            ]),
        )
        .await?;
    assert!(since.is_array(), "{since}");

    server.ovsdb_client(&[
        "transact",
        r#"["OVN_Northbound",{"op":"insert","table":"Logical_Switch","row":{"name":"watched"}}]"#,
    ])?;
    let mut saw_update2 = false;
    let mut saw_update3 = false;
    while !(saw_update2 && saw_update3) {
        match next_notification(&mut updates).await? {
            Notification::Update2 {
                monitor_id,
                updates,
            } => {
                assert_eq!(monitor_id, json!("m2"));
                let row = updates["Logical_Switch"]
                    .as_object()
                    .and_then(|rows| rows.values().next())
                    .cloned()
                    .unwrap_or(Json::Null);
                assert_eq!(row["insert"]["name"], json!("watched"), "{updates}");
                saw_update2 = true;
            }
            Notification::Update3 {
                monitor_id,
                last_txn_id,
                updates,
            } => {
                assert_eq!(monitor_id, json!(["m3"]));
                assert!(
                    rovn_ovsdb::Uuid::parse_str(&last_txn_id).is_ok(),
                    "{last_txn_id}"
                );
                assert!(updates["Logical_Switch"].is_object(), "{updates}");
                saw_update3 = true;
            }
            other => bail!("unexpected notification {other:?}"),
        }
    }
    Ok(())
}

/// A one-connection fake peer: runs `script` on the accepted socket.
async fn fake_peer<F, Fut>(script: F) -> Result<(tempfile::TempDir, Remote)>
where
    F: FnOnce(tokio::net::UnixStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("peer.sock");
    let listener = UnixListener::bind(&path)?;
    tokio::spawn(async move {
        if let Ok((stream, _)) = listener.accept().await {
            script(stream).await;
        }
    });
    Ok((dir, Remote::Unix(path)))
}

/// Reads until one complete JSON object has arrived and returns it.
async fn read_request(stream: &mut tokio::net::UnixStream) -> Option<Json> {
    let mut framer = rovn_ovsdb::framing::Framer::default();
    let mut buf = [0u8; 4096];
    loop {
        if let Ok(Some(json)) = framer.next_message() {
            return Some(json);
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        framer.push(&buf[..n]).ok()?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_the_peer_ends_the_session_and_fails_pending_calls() -> Result<()> {
    let (_dir, remote) = fake_peer(|mut stream| async move {
        let _ = read_request(&mut stream).await;
        let _ = stream
            .write_all(b"{\"id\":99,\"result\":[],\"error\":null} not json")
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await?;
    let (conn, _updates) = Connection::connect(&remote, &ConnectOptions::default()).await?;
    match tokio::time::timeout(Duration::from_secs(5), conn.list_dbs()).await? {
        Err(Error::Framing { remote: r, source }) => {
            assert_eq!(r, remote.to_string());
            assert!(source.to_string().contains("0x6e"), "{source}");
        }
        other => bail!("expected a framing error, got {other:?}"),
    }
    assert!(conn.is_closed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_echo_is_answered_with_its_own_id_and_params() -> Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (_dir, remote) = fake_peer(|mut stream| async move {
        let _ = stream
            .write_all(br#"{"id":["odd",1],"method":"echo","params":["x",{"y":2}]}"#)
            .await;
        let reply = read_request(&mut stream).await;
        let _ = tx.send(reply);
        tokio::time::sleep(Duration::from_secs(2)).await;
    })
    .await?;
    let (conn, _updates) = Connection::connect(&remote, &ConnectOptions::default()).await?;
    let reply = tokio::time::timeout(Duration::from_secs(5), rx).await??;
    assert_eq!(
        reply,
        Some(json!({"id": ["odd", 1], "result": ["x", {"y": 2}], "error": null}))
    );
    assert_eq!(conn.stats().echo_replies, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eof_in_the_middle_of_a_message_is_a_protocol_error() -> Result<()> {
    let (_dir, remote) = fake_peer(|mut stream| async move {
        let _ = read_request(&mut stream).await;
        let _ = stream.write_all(br#"{"id":1,"result":["OVN_"#).await;
    })
    .await?;
    let (conn, _updates) = Connection::connect(&remote, &ConnectOptions::default()).await?;
    match tokio::time::timeout(Duration::from_secs(5), conn.list_dbs()).await? {
        Err(Error::Protocol(text)) => assert!(text.contains("middle of a message"), "{text}"),
        other => bail!("expected a protocol error, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_for_unknown_ids_are_ignored() -> Result<()> {
    let (_dir, remote) = fake_peer(|mut stream| async move {
        let Some(request) = read_request(&mut stream).await else {
            return;
        };
        let reply = json!({"id": request["id"], "result": ["DB"], "error": null});
        let stray = br#"{"id":123456,"result":[],"error":null}{"id":"x","result":1,"error":null}"#;
        let _ = stream.write_all(stray).await;
        let _ = stream.write_all(reply.to_string().as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    })
    .await?;
    let (conn, _updates) = Connection::connect(&remote, &ConnectOptions::default()).await?;
    let dbs = tokio::time::timeout(Duration::from_secs(5), conn.list_dbs()).await??;
    assert_eq!(dbs, vec!["DB".to_string()]);
    assert!(!conn.is_closed());
    Ok(())
}
