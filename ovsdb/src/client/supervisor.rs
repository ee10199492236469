//! The supervisor task: one session after another, each brought to a synced replica and
//! then fed the server's updates until it ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value as Json, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::server_status::{DatabaseStatus, SERVER_MONITOR_ID, monitor_database_status};
use super::{Command, Counters, Event, Live, Shared};
use crate::connection::{ConnectOptions, Connection, Notification};
use crate::error::Error;
use crate::monitor::{self, MonitorError, TableMonitor, TableUpdates, ZERO_TXN_ID};
use crate::replica::{Change, Replica, ReplicaError};
use crate::schema::DatabaseSchema;
use crate::transport::Remote;

/// The monitor methods, newest first; a server that does not know one gets the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MonitorMethod {
    CondSince = 0,
    Cond = 1,
    Plain = 2,
}

impl MonitorMethod {
    pub(super) fn from_u8(v: u8) -> MonitorMethod {
        match v {
            0 => MonitorMethod::CondSince,
            1 => MonitorMethod::Cond,
            _ => MonitorMethod::Plain,
        }
    }

    fn name(self) -> &'static str {
        match self {
            MonitorMethod::CondSince => "monitor_cond_since",
            MonitorMethod::Cond => "monitor_cond",
            MonitorMethod::Plain => "monitor",
        }
    }

    fn older(self) -> Option<MonitorMethod> {
        match self {
            MonitorMethod::CondSince => Some(MonitorMethod::Cond),
            MonitorMethod::Cond => Some(MonitorMethod::Plain),
            MonitorMethod::Plain => None,
        }
    }
}

pub(super) fn monitor_id(db: &str) -> Json {
    json!(format!("rovn-{db}"))
}

/// How a session ended.
#[derive(Debug)]
enum SessionEnd {
    /// It reached sync, then ended: reconnect promptly.
    AfterSync(String),
    /// It failed or was refused before sync.
    BeforeSync(String),
}

pub(super) async fn supervise(shared: Arc<Shared>) {
    let remotes = shared.config.remotes.clone();
    let mut next = 0usize;
    let mut delay = shared.config.backoff.initial;
    // The delay grows once per round of failed remotes, so that after a leader dies the
    // others are all tried quickly while the cluster elects a new one.
    let mut failed_in_round = 0usize;
    let mut first = true;
    loop {
        let remote = &remotes[next % remotes.len()];
        next = next.wrapping_add(1);
        let end = run_session(&shared, remote, first).await;
        shared.live.send_replace(None);
        match end {
            SessionEnd::AfterSync(reason) => {
                first = false;
                delay = shared.config.backoff.initial;
                failed_in_round = 0;
                tracing::info!(db = %shared.config.database, %remote, %reason, "OVSDB session ended; reconnecting");
                shared.set_last_error(format!("{remote}: {reason}"));
            }
            SessionEnd::BeforeSync(reason) => {
                failed_in_round += 1;
                tracing::debug!(db = %shared.config.database, %remote, %reason, "OVSDB session not usable");
                shared.set_last_error(format!("{remote}: {reason}"));
            }
        }
        tokio::time::sleep(Backoff::jittered(delay)).await;
        if failed_in_round >= remotes.len() {
            delay = shared.config.backoff.next(delay);
            failed_in_round = 0;
        }
    }
}

/// The tables to monitor, every column listed (so the server never adds `_version`).
fn resolved_tables(shared: &Shared, schema: &DatabaseSchema) -> Vec<TableMonitor> {
    let configured = shared
        .tables
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let tables = if configured.is_empty() {
        schema.tables.keys().map(TableMonitor::all).collect()
    } else {
        configured
    };
    tables
        .into_iter()
        .map(|t| match schema.table(&t.table) {
            Some(ts) => {
                let cols = t.resolved_columns(ts);
                t.with_columns(cols)
            }
            None => t,
        })
        .collect()
}

fn is_unknown_method(e: &Error) -> bool {
    match e {
        Error::Rpc { error, .. } => {
            error.as_str() == Some("unknown method")
                || error.get("error").and_then(Json::as_str) == Some("unknown method")
        }
        _ => false,
    }
}

fn monitor_err(e: MonitorError) -> Error {
    Error::Protocol(e.to_string())
}

fn replica_err(e: ReplicaError) -> Error {
    Error::Protocol(format!("replica out of step with the server: {e}"))
}

/// Sends the monitor request with the best method the server knows, returning what to do
/// with the reply: `(changes, resumed)`.
async fn start_monitor(
    shared: &Shared,
    conn: &Connection,
    schema: &Arc<DatabaseSchema>,
    tables: &[TableMonitor],
) -> Result<(Vec<Change>, bool), Error> {
    let db = &shared.config.database;
    let id = monitor_id(db);
    let mut method = MonitorMethod::from_u8(shared.method.load(Ordering::Relaxed));
    loop {
        let last =
            shared.read_replica(|r| r.as_ref().and_then(|r| r.last_txn_id().map(String::from)));
        let params = match method {
            MonitorMethod::CondSince => {
                monitor::monitor_cond_since_params(db, &id, tables, last.as_deref())
            }
            MonitorMethod::Cond => monitor::monitor_cond_params(db, &id, tables),
            MonitorMethod::Plain => monitor::monitor_params(db, &id, tables),
        };
        let reply = match conn.call(method.name(), params).await {
            Ok(reply) => reply,
            Err(e) if is_unknown_method(&e) => {
                let Some(older) = method.older() else {
                    return Err(e);
                };
                tracing::info!(%db, remote = %conn.remote(), from = method.name(), to = older.name(), "server does not know the monitor method; falling back");
                method = older;
                shared.method.store(method as u8, Ordering::Relaxed);
                continue;
            }
            Err(e) => return Err(e),
        };
        let (updates, found, txn): (TableUpdates, bool, Option<String>) = match method {
            MonitorMethod::CondSince => {
                let r = monitor::parse_cond_since_reply(&reply, schema).map_err(monitor_err)?;
                let txn = (r.last_txn_id != ZERO_TXN_ID).then_some(r.last_txn_id);
                (r.updates, r.found, txn)
            }
            MonitorMethod::Cond => (
                monitor::parse_table_updates2(&reply, schema).map_err(monitor_err)?,
                false,
                None,
            ),
            MonitorMethod::Plain => (
                monitor::parse_table_updates(&reply, schema).map_err(monitor_err)?,
                false,
                None,
            ),
        };
        Counters::bump(&shared.counters.rows_received, updates.len() as u64);
        let changes = shared.write_replica(|r| -> Result<Vec<Change>, Error> {
            let Some(replica) = r.as_mut() else {
                return Err(Error::Protocol("replica missing".into()));
            };
            let applied = if found {
                replica.apply(updates)
            } else {
                replica.reset(updates)
            };
            match applied {
                Ok(changes) => {
                    replica.set_last_txn_id(txn);
                    Ok(changes)
                }
                Err(e) => {
                    // Resuming from this transaction failed once; the next session starts over.
                    replica.set_last_txn_id(None);
                    Err(replica_err(e))
                }
            }
        })?;
        return Ok((changes, found));
    }
}

/// Makes sure the replica exists for `schema`. A changed schema (the database was converted
/// online) gets a rebuilt replica with the same rows and no transaction id, so the full
/// state that follows is diffed against what consumers already saw.
fn ensure_replica(
    shared: &Shared,
    schema: &Arc<DatabaseSchema>,
    tables: &[TableMonitor],
) -> Result<(), Error> {
    let columns = monitor::monitored_columns(tables, schema).map_err(monitor_err)?;
    shared.write_replica(|r| -> Result<(), Error> {
        let fresh = match r.as_ref() {
            Some(old) if **old.schema() == **schema => return Ok(()),
            Some(old) => old.rebuilt(schema.clone(), &columns, &shared.config.indexes),
            None => Replica::new(schema.clone(), &columns, &shared.config.indexes),
        }
        .map_err(|e| Error::Protocol(format!("cannot replicate {}: {e}", schema.name)))?;
        *r = Some(fresh);
        Ok(())
    })
}

async fn run_session(shared: &Arc<Shared>, remote: &Remote, first: bool) -> SessionEnd {
    let db = shared.config.database.clone();
    let opts = ConnectOptions {
        tls: shared.config.tls.clone(),
        probe_interval: shared.config.probe_interval,
        connect_timeout: shared.config.connect_timeout,
    };
    let (conn, mut notifications) = match Connection::connect(remote, &opts).await {
        Ok(c) => c,
        Err(e) => return SessionEnd::BeforeSync(e.to_string()),
    };
    Counters::bump(&shared.counters.connects, 1);
    let synced = match sync_session(shared, &conn).await {
        Ok(synced) => synced,
        Err(reason) => {
            conn.close();
            return SessionEnd::BeforeSync(reason);
        }
    };
    let mut status = synced.status;
    if !first {
        shared.emit(Event::Reconnected {
            remote: conn.remote().to_string(),
            resumed: synced.resumed,
        });
    }
    for c in synced.changes {
        shared.emit(Event::Change(c));
    }
    shared.emit(Event::Synced);
    // Published after the events, so that whoever waited for the session subscribes after
    // them; transactions issued on `Synced` wait the moment it takes.
    let (commands_tx, mut commands) = mpsc::unbounded_channel();
    shared.live.send_replace(Some(Live {
        conn: conn.clone(),
        commands: commands_tx,
    }));
    let schema = match shared.read_replica(|r| r.as_ref().map(|r| r.schema().clone())) {
        Some(s) => s,
        None => return SessionEnd::AfterSync("replica missing".into()),
    };
    let id = monitor_id(&db);
    let end = loop {
        tokio::select! {
            biased;
            n = notifications.recv() => {
                let Some(n) = n else {
                    break conn.end_error().map(|e| e.to_string()).unwrap_or_else(|| "session closed".into());
                };
                match handle_notification(shared, &schema, &id, &mut status, n) {
                    Ok(()) => {}
                    Err(reason) => {
                        conn.close();
                        break reason;
                    }
                }
            }
            c = commands.recv() => {
                if let Some(Command::Barrier(tx)) = c {
                    let _ = tx.send(());
                }
            }
        }
    };
    SessionEnd::AfterSync(end)
}

/// Handshake up to a synced replica: change awareness, server status, schema, monitor.
async fn sync_session(shared: &Arc<Shared>, conn: &Connection) -> Result<Synced, String> {
    let db = &shared.config.database;
    let remote = conn.remote().to_string();
    // Without this, a server disconnects clients whenever a database is added, removed or
    // converted; with it, monitors are cancelled instead and the client reconnects itself.
    if let Err(e) = conn.call("set_db_change_aware", json!([true])).await
        && !matches!(e, Error::Rpc { .. })
    {
        return Err(e.to_string());
    }
    let status = match monitor_database_status(conn, db)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(None) => return Err(format!("{remote} has no database {db}")),
        Some(Some(s)) => {
            if let Some(why) = s.unusable(shared.config.leader_only) {
                Counters::bump(&shared.counters.servers_skipped, 1);
                return Err(format!("{remote} skipped for {db}: {why}"));
            }
            Some(s)
        }
        None if shared.config.leader_only => {
            return Err(format!(
                "{remote} has no _Server database, so leadership of {db} cannot be checked"
            ));
        }
        None => None,
    };
    let schema = Arc::new(conn.get_schema(db).await.map_err(|e| e.to_string())?);
    let tables = resolved_tables(shared, &schema);
    ensure_replica(shared, &schema, &tables).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (changes, resumed) = start_monitor(shared, conn, &schema, &tables)
        .await
        .map_err(|e| e.to_string())?;
    Counters::bump(&shared.counters.syncs, 1);
    if resumed {
        Counters::bump(&shared.counters.resumes, 1);
    }
    tracing::info!(%db, %remote, resumed, changes = changes.len(), elapsed = ?started.elapsed(), "OVSDB replica synced");
    Ok(Synced {
        status,
        changes,
        resumed,
    })
}

/// What a session's handshake brought.
struct Synced {
    /// The database's status on the server, when it has a `_Server` database.
    status: Option<DatabaseStatus>,
    /// The changes the monitor reply made to the replica.
    changes: Vec<Change>,
    /// Whether the server resumed from the last transaction.
    resumed: bool,
}

/// Applies one notification; an error string means the session must end.
fn handle_notification(
    shared: &Shared,
    schema: &Arc<DatabaseSchema>,
    id: &Json,
    status: &mut Option<DatabaseStatus>,
    n: Notification,
) -> Result<(), String> {
    let db = &shared.config.database;
    let (updates, txn) = match n {
        Notification::Update3 {
            monitor_id,
            last_txn_id,
            updates,
        } if monitor_id == *id => (
            monitor::parse_table_updates2(&updates, schema).map_err(|e| e.to_string())?,
            Some(last_txn_id),
        ),
        Notification::Update2 {
            monitor_id,
            updates,
        } if monitor_id == *id => (
            monitor::parse_table_updates2(&updates, schema).map_err(|e| e.to_string())?,
            None,
        ),
        Notification::Update {
            monitor_id,
            updates,
        } if monitor_id == *id => (
            monitor::parse_table_updates(&updates, schema).map_err(|e| e.to_string())?,
            None,
        ),
        Notification::Update2 {
            monitor_id,
            updates,
        } if monitor_id == json!(SERVER_MONITOR_ID) => {
            *status = DatabaseStatus::apply_updates(status.take(), &updates, db);
            return match status {
                None => Err(format!("database {db} was removed from the server")),
                Some(s) => match s.unusable(shared.config.leader_only) {
                    Some(why) => Err(why.to_string()),
                    None => Ok(()),
                },
            };
        }
        Notification::Other { method, params } if method == "monitor_canceled" => {
            return Err(format!(
                "the server cancelled monitor {params} (database converted or removed)"
            ));
        }
        other => {
            tracing::debug!(%db, ?other, "ignoring notification");
            return Ok(());
        }
    };
    Counters::bump(&shared.counters.rows_received, updates.len() as u64);
    let applied = shared.write_replica(|r| -> Result<Vec<Change>, String> {
        let Some(replica) = r.as_mut() else {
            return Err("replica missing".into());
        };
        match replica.apply(updates) {
            Ok(changes) => {
                if let Some(txn) = txn {
                    replica.set_last_txn_id((txn != ZERO_TXN_ID).then_some(txn));
                }
                Ok(changes)
            }
            Err(e) => {
                // The next session must send everything.
                replica.set_last_txn_id(None);
                Err(format!("replica out of step with the server: {e}"))
            }
        }
    })?;
    for c in applied {
        shared.emit(Event::Change(c));
    }
    Ok(())
}
