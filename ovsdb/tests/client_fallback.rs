//! Monitor method fallback against a real ovsdb-server: a small proxy in front of it renames
//! the methods an older server would not know, so the real server answers "unknown method"
//! and the client must fall back (`monitor_cond_since` → `monitor_cond` → `monitor`) and
//! still keep a correct replica.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use rovn_ovsdb::client::{Client, ClientConfig, Event};
use rovn_ovsdb::monitor::TableMonitor;
use rovn_ovsdb::operation::{Condition, Mutation, Operation};
use rovn_ovsdb::transport::Remote;
use rovn_ovsdb::{Datum, Row, Uuid};
use serde_json::Value as Json;
use support::{ServerExt, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

const NB: &str = "OVN_Northbound";
const WAIT: Duration = Duration::from_secs(10);

/// A unix-socket proxy that renames the `hidden` methods in requests to the server.
struct MethodHidingProxy {
    path: PathBuf,
    renamed: Arc<AtomicU64>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for MethodHidingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MethodHidingProxy {
    fn start(server: PathBuf, hidden: &'static [&'static str]) -> Result<MethodHidingProxy> {
        let dir = tempfile::Builder::new()
            .prefix("rovn-proxy-")
            .tempdir()
            .context("proxy temp dir")?;
        let path = dir.path().join("proxy.sock");
        let listener = UnixListener::bind(&path).context("binding the proxy socket")?;
        let renamed = Arc::new(AtomicU64::new(0));
        let counter = renamed.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = server.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(upstream) = UnixStream::connect(&server).await else {
                        return;
                    };
                    let (mut client_rd, mut client_wr) = client.into_split();
                    let (mut server_rd, mut server_wr) = upstream.into_split();
                    let down = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut server_rd, &mut client_wr).await;
                    });
                    let _ =
                        forward_renaming(&mut client_rd, &mut server_wr, hidden, &counter).await;
                    down.abort();
                });
            }
        });
        Ok(MethodHidingProxy {
            path,
            renamed,
            task,
            _dir: dir,
        })
    }

    fn remote(&self) -> Remote {
        Remote::Unix(self.path.clone())
    }
}

/// Copies JSON messages from `rd` to `wr`, renaming hidden methods so the server does not
/// recognise them.
async fn forward_renaming(
    rd: &mut (impl AsyncReadExt + Unpin),
    wr: &mut (impl AsyncWriteExt + Unpin),
    hidden: &[&str],
    renamed: &AtomicU64,
) -> Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = rd.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut messages = Vec::new();
        let mut consumed = 0;
        {
            let mut stream = serde_json::Deserializer::from_slice(&buf).into_iter::<Json>();
            loop {
                match stream.next() {
                    Some(Ok(v)) => {
                        consumed = stream.byte_offset();
                        messages.push(v);
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(e)) => return Err(anyhow!("bad JSON from the client: {e}")),
                    None => break,
                }
            }
        }
        buf.drain(..consumed);
        for mut m in messages {
            if let Some(method) = m.get("method").and_then(Json::as_str)
                && hidden.contains(&method)
            {
                let hidden_name = format!("hidden_{method}");
                m["method"] = Json::String(hidden_name);
                renamed.fetch_add(1, Ordering::Relaxed);
            }
            wr.write_all(m.to_string().as_bytes()).await?;
        }
    }
}

async fn compare_with_server(client: &Client) -> Result<()> {
    let schema = client
        .read(|r| r.schema().clone())
        .ok_or_else(|| anyhow!("no schema"))?;
    let ts = schema
        .table("Logical_Switch")
        .ok_or_else(|| anyhow!("no Logical_Switch"))?;
    let cols: Vec<String> = ts.columns.keys().cloned().collect();
    let res = client
        .transact(&[Operation::select("Logical_Switch", vec![])
            .with_columns(cols.into_iter().chain(["_uuid".to_string()]))])
        .await?;
    let server: BTreeMap<Uuid, Row> = res
        .first()
        .ok_or_else(|| anyhow!("empty select"))?
        .rows_decoded(ts)?
        .into_iter()
        .map(|(u, r)| Ok((u.ok_or_else(|| anyhow!("no _uuid"))?, r)))
        .collect::<Result<_>>()?;
    let replica = client
        .read(|r| r.contents().remove("Logical_Switch").unwrap_or_default())
        .ok_or_else(|| anyhow!("no replica"))?;
    ensure!(server == replica, "replica {replica:?}\nserver {server:?}");
    Ok(())
}

/// Inserts, updates (map and set columns), mutates and deletes switches through the client.
async fn churn(client: &Client) -> Result<()> {
    let row = |n: &str| Row::from([("name".to_string(), Datum::atom(n))]);
    client
        .transact(&[
            Operation::insert("Logical_Switch", row("a")),
            Operation::insert("Logical_Switch", row("b")),
        ])
        .await?;
    client
        .transact(&[Operation::update(
            "Logical_Switch",
            vec![Condition::eq("name", Datum::atom("a"))],
            Row::from([(
                "external_ids".to_string(),
                Datum::map([("k1", "v1"), ("k2", "v2")]),
            )]),
        )])
        .await?;
    client
        .transact(&[Operation::mutate(
            "Logical_Switch",
            vec![Condition::eq("name", Datum::atom("a"))],
            vec![
                Mutation::delete("external_ids", Datum::set(["k1"])),
                Mutation::insert("external_ids", Datum::map([("k3", "v3")])),
            ],
        )])
        .await?;
    client
        .transact(&[Operation::delete(
            "Logical_Switch",
            vec![Condition::eq("name", Datum::atom("b"))],
        )])
        .await?;
    Ok(())
}

async fn run_with_hidden(hidden: &'static [&'static str]) -> Result<u64> {
    let mut server = TestServer::nb()?;
    let Remote::Unix(socket) = server.remote() else {
        return Err(anyhow!("the test server has no unix socket"));
    };
    let proxy = MethodHidingProxy::start(socket, hidden)?;
    let mut config = ClientConfig::new(NB, vec![proxy.remote()]);
    config.tables = vec![TableMonitor::all("Logical_Switch")];
    let client = Client::start(config)?;
    client.wait_synced(WAIT).await?;
    churn(&client).await?;
    compare_with_server(&client).await?;
    let mut events = client.subscribe();
    server.restart()?;
    loop {
        let e = tokio::time::timeout(WAIT, events.recv()).await??;
        if let Event::Reconnected { resumed, .. } = e {
            ensure!(
                !resumed,
                "resumed through a server without monitor_cond_since"
            );
            break;
        }
    }
    client.wait_synced(WAIT).await?;
    compare_with_server(&client).await?;
    ensure!(client.stats().resumes == 0);
    Ok(proxy.renamed.load(Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falls_back_to_monitor_cond_without_monitor_cond_since() -> Result<()> {
    let renamed = run_with_hidden(&["monitor_cond_since"]).await?;
    // Only the first session asks; the client remembers the server's answer.
    ensure!(renamed == 1, "monitor_cond_since was tried {renamed} times");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falls_back_to_plain_monitor_without_conditional_monitors() -> Result<()> {
    let renamed = run_with_hidden(&["monitor_cond_since", "monitor_cond"]).await?;
    // monitor_cond is also refused for the _Server status check on every session (2).
    ensure!(renamed >= 3, "only {renamed} requests were refused");
    Ok(())
}
