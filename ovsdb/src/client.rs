//! The long-lived client: one database kept in a [`Replica`] across reconnects, servers and
//! raft leader changes, with transactions sent on whatever session is current.
//!
//! A supervisor task owns the sessions. It connects to the remotes in turn, checks in the
//! `_Server` database that the database is connected (and, with `leader_only`, that this
//! server is the raft leader), reads the schema and monitors with `monitor_cond_since`
//! (falling back to `monitor_cond`, then `monitor`, on servers that do not know them). On a
//! reconnect it passes the id of the last transaction it applied, so an unchanged database is
//! not sent again; when the server no longer has that transaction the full state is applied
//! as a difference ([`Replica::reset`]). Consumers read the replica under a lock and
//! subscribe to its changes on a broadcast channel.

mod backoff;
mod server_status;
mod supervisor;

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use backoff::Backoff;
pub use server_status::DatabaseStatus;
use supervisor::{MonitorMethod, monitor_id, supervise};

use crate::connection::Connection;
use crate::error::Error;
use crate::monitor::{self, MonitorCondition, TableMonitor};
use crate::operation::{Operation, OperationResult};
use crate::replica::{Change, IndexSpec, Replica};
use crate::transport::{Remote, TlsConfig};

/// What the client replicates and how it connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The servers, tried in turn; for a raft cluster, all its members.
    pub remotes: Vec<Remote>,
    /// Certificates for `ssl:` remotes.
    pub tls: Option<TlsConfig>,
    /// The database (`OVN_Northbound`, `Open_vSwitch`, ...).
    pub database: String,
    /// The tables to monitor; empty for every table of the schema with all columns. Keep
    /// `select.initial` true: a replica needs the rows present when a session starts.
    pub tables: Vec<TableMonitor>,
    /// Secondary indexes to maintain in the replica.
    pub indexes: Vec<IndexSpec>,
    /// Use only a server that is the raft leader of a clustered database (writers want
    /// this: a follower forwards transactions and may serve stale reads).
    pub leader_only: bool,
    /// Delays between connection attempts.
    pub backoff: Backoff,
    /// The inactivity probe interval of each session; `None` disables it.
    pub probe_interval: Option<Duration>,
    /// Bound on opening one session.
    pub connect_timeout: Duration,
    /// How long [`Client::transact`] waits for a session before failing.
    pub transact_wait: Duration,
    /// Events buffered per subscriber before a slow one starts losing them
    /// ([`broadcast::error::RecvError::Lagged`]).
    pub event_capacity: usize,
}

impl ClientConfig {
    /// A configuration with default timings that monitors every table of `database`.
    pub fn new(database: impl Into<String>, remotes: Vec<Remote>) -> ClientConfig {
        ClientConfig {
            remotes,
            tls: None,
            database: database.into(),
            tables: Vec::new(),
            indexes: Vec::new(),
            leader_only: false,
            backoff: Backoff::default(),
            probe_interval: Some(Duration::from_secs(5)),
            connect_timeout: Duration::from_secs(5),
            transact_wait: Duration::from_secs(10),
            event_capacity: 8192,
        }
    }
}

/// What subscribers receive, in the order the replica changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// One row changed in the replica.
    Change(Change),
    /// A new session replaced a lost one; the changes that follow (up to [`Event::Synced`])
    /// are what happened while disconnected. `resumed` tells whether the server still had
    /// the last transaction (only the changes since were sent) or the whole state was
    /// resent and diffed against the replica.
    Reconnected {
        /// The server of the new session.
        remote: String,
        /// Whether `monitor_cond_since` found the last transaction id.
        resumed: bool,
    },
    /// The replica matches the server as of the new session's start.
    Synced,
}

/// Counters of the client's work, for metrics and for tests that prove what was (not) sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Sessions opened (transport connected).
    pub connects: u64,
    /// Sessions that reached sync.
    pub syncs: u64,
    /// Syncs where `monitor_cond_since` found the last transaction, so only changes came.
    pub resumes: u64,
    /// Rows received in monitor replies and update notifications of the database.
    pub rows_received: u64,
    /// Transactions sent.
    pub transactions_sent: u64,
    /// Servers passed over because the database was not connected or, with `leader_only`,
    /// the server was not the leader.
    pub servers_skipped: u64,
}

#[derive(Default)]
struct Counters {
    connects: AtomicU64,
    syncs: AtomicU64,
    resumes: AtomicU64,
    rows_received: AtomicU64,
    transactions_sent: AtomicU64,
    servers_skipped: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Why a transaction did not succeed, sorted by what the caller may do about it.
#[derive(Debug, thiserror::Error)]
pub enum TransactError {
    /// Never sent (e.g. [`Error::NotConnected`] after the wait): nothing was committed, and
    /// retrying is safe.
    #[error("transaction on {db} not sent: {source}")]
    NotSent {
        /// The database.
        db: String,
        /// Why.
        #[source]
        source: Error,
    },
    /// The server answered with an error: nothing was committed.
    #[error("transaction on {db} rejected: {source}")]
    Rejected {
        /// The database.
        db: String,
        /// The server's answer.
        #[source]
        source: Error,
    },
    /// Sent, but the session ended before the answer: the transaction may or may not have
    /// been committed. It is not replayed on another session; the caller must check the
    /// replica (after the next [`Event::Synced`]) before deciding to retry.
    #[error(
        "transaction on {db} sent to {remote}, but the session ended before the reply; it may or may not have been committed: {source}"
    )]
    OutcomeUnknown {
        /// The database.
        db: String,
        /// The server it was sent to.
        remote: String,
        /// How the session ended.
        #[source]
        source: Error,
    },
}

impl TransactError {
    /// The underlying error.
    pub fn error(&self) -> &Error {
        match self {
            TransactError::NotSent { source, .. }
            | TransactError::Rejected { source, .. }
            | TransactError::OutcomeUnknown { source, .. } => source,
        }
    }

    /// Whether the transaction certainly did not commit.
    pub fn certainly_not_committed(&self) -> bool {
        !matches!(self, TransactError::OutcomeUnknown { .. })
    }
}

/// A synced session transactions may use.
#[derive(Clone)]
struct Live {
    conn: Connection,
    commands: mpsc::UnboundedSender<Command>,
}

enum Command {
    /// Answered once every notification received before it has been applied.
    Barrier(oneshot::Sender<()>),
}

struct Shared {
    config: ClientConfig,
    tables: Mutex<Vec<TableMonitor>>,
    replica: RwLock<Option<Replica>>,
    live: watch::Sender<Option<Live>>,
    events: broadcast::Sender<Event>,
    counters: Counters,
    method: AtomicU8,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn emit(&self, event: Event) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    fn set_last_error(&self, e: String) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(e);
        }
    }

    fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|l| l.clone())
    }

    fn read_replica<R>(&self, f: impl FnOnce(&Option<Replica>) -> R) -> R {
        let guard = self.replica.read().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    fn write_replica<R>(&self, f: impl FnOnce(&mut Option<Replica>) -> R) -> R {
        let mut guard = self.replica.write().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

/// A replicated, reconnecting client of one database. Dropping it stops the supervisor
/// and closes the session.
pub struct Client {
    shared: Arc<Shared>,
    supervisor: JoinHandle<()>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("database", &self.shared.config.database)
            .field("connected", &self.shared.live.borrow().is_some())
            .finish()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.supervisor.abort();
        if let Some(live) = self.shared.live.borrow().as_ref() {
            live.conn.close();
        }
    }
}

impl Client {
    /// Starts the supervisor on the current tokio runtime and returns at once; use
    /// [`Client::wait_synced`] to wait for the first sync.
    pub fn start(config: ClientConfig) -> Result<Client, Error> {
        Client::start_subscribed(config).map(|(client, _)| client)
    }

    /// [`Client::start`], plus a subscription taken before the supervisor runs: it sees
    /// every row of the first sync as an insert, then [`Event::Synced`], and everything
    /// after, which is what a consumer building its own state from events needs.
    pub fn start_subscribed(
        config: ClientConfig,
    ) -> Result<(Client, broadcast::Receiver<Event>), Error> {
        if config.remotes.is_empty() {
            return Err(Error::BadRemote {
                remote: String::new(),
                reason: format!("no remote given for database {}", config.database),
            });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::Protocol(format!(
                "the client of {} must be started inside a tokio runtime",
                config.database
            ))
        })?;
        let (live, _) = watch::channel(None);
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let shared = Arc::new(Shared {
            tables: Mutex::new(config.tables.clone()),
            config,
            replica: RwLock::new(None),
            live,
            events,
            counters: Counters::default(),
            method: AtomicU8::new(MonitorMethod::CondSince as u8),
            last_error: Mutex::new(None),
        });
        let events = shared.events.subscribe();
        let supervisor = runtime.spawn(supervise(shared.clone()));
        Ok((Client { shared, supervisor }, events))
    }

    /// The database replicated.
    pub fn database(&self) -> &str {
        &self.shared.config.database
    }

    /// Runs `f` on the replica under a read lock; `None` before the first sync has read
    /// the schema. Keep `f` short, as updates wait for it, and do not call back into the
    /// client from it.
    pub fn read<R>(&self, f: impl FnOnce(&Replica) -> R) -> Option<R> {
        self.shared.read_replica(|r| r.as_ref().map(f))
    }

    /// Change events from now on: subscribe first, then read the replica, to miss nothing.
    /// A subscriber that falls more than [`ClientConfig::event_capacity`] events behind gets
    /// `Lagged` and should re-read the replica.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Whether a synced session is up.
    pub fn is_connected(&self) -> bool {
        self.shared
            .live
            .borrow()
            .as_ref()
            .is_some_and(|l| !l.conn.is_closed())
    }

    /// The remote of the current synced session.
    pub fn current_remote(&self) -> Option<String> {
        self.shared
            .live
            .borrow()
            .as_ref()
            .map(|l| l.conn.remote().to_string())
    }

    /// Waits until a session is up and the replica synced with it.
    pub async fn wait_synced(&self, timeout: Duration) -> Result<(), Error> {
        self.wait_live(timeout).await.map(drop)
    }

    async fn wait_live(&self, timeout: Duration) -> Result<Live, Error> {
        let mut rx = self.shared.live.subscribe();
        // A session that has just ended may still be published until the supervisor notices.
        let usable = |l: &Option<Live>| l.as_ref().is_some_and(|l| !l.conn.is_closed());
        let waited = tokio::time::timeout(timeout, rx.wait_for(usable)).await;
        match waited {
            Ok(Ok(live)) => live.clone().ok_or(Error::NotConnected { waited: timeout }),
            _ => {
                if let Some(e) = self.shared.last_error() {
                    tracing::debug!(db = %self.shared.config.database, last_error = %e, "no session");
                }
                Err(Error::NotConnected { waited: timeout })
            }
        }
    }

    /// The last reason a session failed or was refused, for diagnostics.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error()
    }

    /// Sends `ops` as one transaction, waiting up to [`ClientConfig::transact_wait`] for a
    /// session. See [`Client::transact_within`].
    pub async fn transact(&self, ops: &[Operation]) -> Result<Vec<OperationResult>, TransactError> {
        self.transact_within(ops, self.shared.config.transact_wait)
            .await
    }

    /// Sends `ops` as one transaction on the current session, waiting up to `wait` for one.
    /// When it succeeds, the replica already reflects it (ovsdb-server sends the updates
    /// before the reply, and the reply is returned only once they are applied). A
    /// transaction whose session dies in flight is reported as
    /// [`TransactError::OutcomeUnknown`], never resent.
    pub async fn transact_within(
        &self,
        ops: &[Operation],
        wait: Duration,
    ) -> Result<Vec<OperationResult>, TransactError> {
        let db = self.shared.config.database.clone();
        let deadline = Instant::now() + wait;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let live = self
                .wait_live(remaining)
                .await
                .map_err(|_| TransactError::NotSent {
                    db: db.clone(),
                    source: Error::NotConnected { waited: wait },
                })?;
            // Requests are counted once queued for the socket: if the count did not move, no
            // request at all left on this session, ours included, and trying the next one is
            // safe. If it moved, ours may have gone out.
            let queued_before = live.conn.stats().requests_sent;
            let outcome = live.conn.transact(&db, ops).await;
            let maybe_sent = live.conn.stats().requests_sent != queued_before;
            if maybe_sent {
                Counters::bump(&self.shared.counters.transactions_sent, 1);
            }
            return match outcome {
                Ok(results) => {
                    barrier(&live).await;
                    Ok(results)
                }
                Err(source) if source.is_session_lost() && !maybe_sent => continue,
                Err(source) if source.is_session_lost() => Err(TransactError::OutcomeUnknown {
                    db,
                    remote: live.conn.remote().to_string(),
                    source,
                }),
                Err(source) => {
                    barrier(&live).await;
                    Err(TransactError::Rejected { db, source })
                }
            };
        }
    }

    /// Changes the conditions of one monitored table, on the current session
    /// (`monitor_cond_change`) and for every later one. Rows that stop matching are deleted
    /// from the replica and rows that start matching inserted, with their events.
    pub async fn set_conditions(
        &self,
        table: &str,
        conditions: Vec<MonitorCondition>,
    ) -> Result<(), Error> {
        {
            let mut tables = self.shared.tables.lock().unwrap_or_else(|p| p.into_inner());
            let Some(t) = tables.iter_mut().find(|t| t.table == table) else {
                return Err(Error::Protocol(format!(
                    "cannot change the conditions of {table}: it is not monitored (monitor it in ClientConfig::tables)"
                )));
            };
            t.conditions = Some(conditions.clone());
        }
        let live = self.shared.live.borrow().clone();
        let Some(live) = live else {
            return Ok(());
        };
        match MonitorMethod::from_u8(self.shared.method.load(Ordering::Relaxed)) {
            MonitorMethod::Plain => Err(Error::Protocol(format!(
                "{} does not support monitor_cond_change; conditions apply from the next session",
                live.conn.remote()
            ))),
            _ => {
                let id = monitor_id(&self.shared.config.database);
                let params = monitor::monitor_cond_change_params(
                    &id,
                    &id,
                    &[(table.to_string(), conditions)],
                );
                live.conn.call("monitor_cond_change", params).await?;
                barrier(&live).await;
                Ok(())
            }
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ClientStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClientStats {
            connects: get(&c.connects),
            syncs: get(&c.syncs),
            resumes: get(&c.resumes),
            rows_received: get(&c.rows_received),
            transactions_sent: get(&c.transactions_sent),
            servers_skipped: get(&c.servers_skipped),
        }
    }

    /// Closes the current session, as a network failure would; the supervisor reconnects.
    /// For tests and for operators forcing a move to another server.
    pub fn reconnect(&self) {
        if let Some(live) = self.shared.live.borrow().as_ref() {
            live.conn.close();
        }
    }
}

/// Waits until the supervisor has applied every notification received before now on the
/// session, unless the session ends first (its replacement resyncs anyway).
async fn barrier(live: &Live) {
    let (tx, rx) = oneshot::channel();
    if live.commands.send(Command::Barrier(tx)).is_err() {
        return;
    }
    tokio::select! {
        _ = rx => {}
        _ = live.conn.closed() => {}
    }
}
