//! One pipelined OVSDB session: a reader task, a writer task, and any number of callers.
//!
//! Callers never wait for each other: a call registers its id in the pending map, queues its
//! serialized request for the writer and awaits its own reply. The writer drains everything
//! queued into one buffer per write, so a burst of a thousand transactions costs a handful of
//! syscalls, and the server sees them back to back (ovsdb-server then batches its replies the
//! same way). The reader splits the stream ([`Framer`]), routes replies to their callers,
//! answers the server's `echo`, forwards monitor updates in arrival order, and runs the
//! inactivity probe. When the session ends for any reason, every pending and later call fails
//! with that reason; reconnecting is the business of the layer above.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::error::Error;
use crate::framing::{Framer, FramingError};
use crate::jsonrpc::Message;
use crate::operation::{Operation, OperationResult, TransactParams, decode_results};
use crate::schema::DatabaseSchema;
use crate::transport::{self, ReadHalf, Remote, TlsConfig, WriteHalf};

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Certificates for `ssl:` remotes.
    pub tls: Option<TlsConfig>,
    /// Send `echo` after this long without receiving anything, and give up after twice it;
    /// `None` disables the probe (the server's own probe still needs our answers).
    pub probe_interval: Option<Duration>,
    /// Bound on connecting, TLS handshake included.
    pub connect_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            tls: None,
            probe_interval: Some(Duration::from_secs(5)),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// What the server pushes without being asked, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// `update` (answers to `monitor`).
    Update {
        /// The monitor's id as given by the client.
        monitor_id: Json,
        /// `<table-updates>`.
        updates: Json,
    },
    /// `update2` (answers to `monitor_cond`).
    Update2 {
        /// The monitor's id.
        monitor_id: Json,
        /// `<table-updates2>`.
        updates: Json,
    },
    /// `update3` (answers to `monitor_cond_since`).
    Update3 {
        /// The monitor's id.
        monitor_id: Json,
        /// The id of the transaction this update brings the client to.
        last_txn_id: String,
        /// `<table-updates2>`.
        updates: Json,
    },
    /// Anything else: `locked`, `stolen`, ...
    Other {
        /// The method.
        method: String,
        /// Its params.
        params: Json,
    },
}

impl Notification {
    fn from_message(method: String, params: Json) -> Notification {
        let args = params.as_array().map(Vec::as_slice).unwrap_or_default();
        match (method.as_str(), args) {
            ("update", [id, updates]) => Notification::Update {
                monitor_id: id.clone(),
                updates: updates.clone(),
            },
            ("update2", [id, updates]) => Notification::Update2 {
                monitor_id: id.clone(),
                updates: updates.clone(),
            },
            ("update3", [id, Json::String(txn), updates]) => Notification::Update3 {
                monitor_id: id.clone(),
                last_txn_id: txn.clone(),
                updates: updates.clone(),
            },
            _ => Notification::Other { method, params },
        }
    }
}

/// Counters of what crossed the session, for tests and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Bytes read from the socket.
    pub bytes_in: u64,
    /// Bytes written to the socket.
    pub bytes_out: u64,
    /// JSON-RPC messages received.
    pub messages_in: u64,
    /// JSON-RPC messages written (requests, echo replies, probes).
    pub messages_out: u64,
    /// Requests made through [`Connection::call`] (probes not included).
    pub requests_sent: u64,
    /// Socket writes; fewer than `messages_out` when frames were coalesced.
    pub writes: u64,
    /// Most frames ever carried by one write.
    pub max_frames_per_write: u64,
    /// Calls awaiting a reply now (abandoned calls are not counted).
    pub pending: u64,
    /// Most calls ever awaiting a reply at once.
    pub max_pending: u64,
    /// Server `echo` requests answered.
    pub echo_replies: u64,
    /// Inactivity probes sent.
    pub probes_sent: u64,
}

#[derive(Default)]
struct Counters {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    requests_sent: AtomicU64,
    writes: AtomicU64,
    max_frames_per_write: AtomicU64,
    max_pending: AtomicU64,
    echo_replies: AtomicU64,
    probes_sent: AtomicU64,
}

/// Why a session ended; turned into the [`Error`] every pending call receives.
#[derive(Debug, Clone)]
enum EndReason {
    Closed,
    ProbeTimeout,
    Io(std::io::ErrorKind, String),
    Framing(FramingError),
    Protocol(String),
}

impl EndReason {
    fn to_error(&self, remote: &str) -> Error {
        match self {
            EndReason::Closed => Error::Closed,
            EndReason::ProbeTimeout => Error::ProbeTimeout,
            EndReason::Io(kind, text) => {
                Error::io(remote, std::io::Error::new(*kind, text.clone()))
            }
            EndReason::Framing(source) => Error::Framing {
                remote: remote.to_string(),
                source: source.clone(),
            },
            EndReason::Protocol(text) => Error::Protocol(format!("{remote}: {text}")),
        }
    }
}

struct PendingCall {
    method: String,
    reply: oneshot::Sender<Result<Json, Error>>,
}

/// State shared by the handles and the two tasks.
struct Session {
    remote: String,
    /// `None` once the session has ended: nothing can be registered any more.
    pending: Mutex<Option<HashMap<u64, PendingCall>>>,
    end_reason: Mutex<Option<EndReason>>,
    closed: watch::Sender<bool>,
    next_id: AtomicU64,
    outbox: mpsc::UnboundedSender<Vec<u8>>,
    counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Session {
    fn end(&self, reason: EndReason) {
        let calls = {
            let mut pending = lock(&self.pending);
            let Some(calls) = pending.take() else {
                return;
            };
            *lock(&self.end_reason) = Some(reason.clone());
            calls
        };
        match &reason {
            EndReason::Closed => tracing::debug!(remote = %self.remote, "OVSDB session closed"),
            other => tracing::warn!(remote = %self.remote, reason = ?other, "OVSDB session ended"),
        }
        // Closed before the calls learn why, so that a caller woken by its error already sees
        // `is_closed()`.
        self.closed.send_replace(true);
        for (_, call) in calls {
            let _ = call.reply.send(Err(reason.to_error(&self.remote)));
        }
    }

    fn end_error(&self) -> Error {
        lock(&self.end_reason)
            .as_ref()
            .map(|r| r.to_error(&self.remote))
            .unwrap_or(Error::Closed)
    }

    fn send_frame(&self, frame: Vec<u8>) -> bool {
        self.outbox.send(frame).is_ok()
    }

    fn stats(&self) -> ConnectionStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ConnectionStats {
            bytes_in: get(&c.bytes_in),
            bytes_out: get(&c.bytes_out),
            messages_in: get(&c.messages_in),
            messages_out: get(&c.messages_out),
            requests_sent: get(&c.requests_sent),
            writes: get(&c.writes),
            max_frames_per_write: get(&c.max_frames_per_write),
            pending: lock(&self.pending).as_ref().map_or(0, |p| p.len() as u64),
            max_pending: get(&c.max_pending),
            echo_replies: get(&c.echo_replies),
            probes_sent: get(&c.probes_sent),
        }
    }
}

/// Removes a call's pending entry when its caller stops waiting (e.g. a timeout dropped the
/// future), so abandoned calls to a server that never answers do not accumulate.
struct ForgetOnCancel<'a> {
    session: &'a Session,
    id: u64,
}

impl Drop for ForgetOnCancel<'_> {
    fn drop(&mut self) {
        if let Some(calls) = lock(&self.session.pending).as_mut() {
            calls.remove(&self.id);
        }
    }
}

/// Ends the session when the last user handle goes away, so that dropped connections do not
/// leave tasks and sockets behind.
struct Handle {
    session: Arc<Session>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.session.end(EndReason::Closed);
    }
}

/// A pipelined OVSDB session. Clones share the one socket.
#[derive(Clone)]
pub struct Connection {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote", &self.handle.session.remote)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Frames up to this size are gathered into one write.
const MAX_COALESCED_WRITE: usize = 4 * 1024 * 1024;
const READ_CHUNK: usize = 256 * 1024;
const PROBE_ID: &str = "rovn-inactivity-probe";

impl Connection {
    /// Connects to `remote` and starts the session; notifications arrive on the receiver.
    pub async fn connect(
        remote: &Remote,
        opts: &ConnectOptions,
    ) -> Result<(Connection, mpsc::UnboundedReceiver<Notification>), Error> {
        let (reader, writer) =
            transport::open(remote, opts.tls.as_ref(), opts.connect_timeout).await?;
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        let (notify_tx, notify_rx) = mpsc::unbounded_channel();
        let (closed, _) = watch::channel(false);
        let session = Arc::new(Session {
            remote: remote.to_string(),
            pending: Mutex::new(Some(HashMap::new())),
            end_reason: Mutex::new(None),
            closed,
            next_id: AtomicU64::new(1),
            outbox,
            counters: Counters::default(),
        });
        tokio::spawn(write_loop(session.clone(), outbox_rx, writer));
        tokio::spawn(read_loop(
            session.clone(),
            reader,
            notify_tx,
            opts.probe_interval,
        ));
        Ok((
            Connection {
                handle: Arc::new(Handle { session }),
            },
            notify_rx,
        ))
    }

    fn session(&self) -> &Session {
        &self.handle.session
    }

    /// The remote this session talks to, as `unix:PATH`, `tcp:HOST:PORT`, ...
    pub fn remote(&self) -> &str {
        &self.session().remote
    }

    /// Sends a request and waits for its reply, without holding up any other caller.
    /// A JSON-RPC error reply is [`Error::Rpc`].
    pub async fn call(&self, method: &str, params: Json) -> Result<Json, Error> {
        self.call_with(method, &params).await
    }

    /// Like [`Connection::call`], for params that serialize themselves (large transactions are
    /// written straight to the request's bytes, with no intermediate JSON tree).
    pub async fn call_with<P: serde::Serialize + Sync + ?Sized>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<Json, Error> {
        let session = self.session();
        let id = session.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = request_frame(id, method, params).map_err(|e| {
            Error::Protocol(format!("cannot serialize the params of {method}: {e}"))
        })?;
        let (reply_tx, reply_rx) = oneshot::channel();
        {
            let mut pending = lock(&session.pending);
            let Some(calls) = pending.as_mut() else {
                drop(pending);
                return Err(session.end_error());
            };
            calls.insert(
                id,
                PendingCall {
                    method: method.to_string(),
                    reply: reply_tx,
                },
            );
            session
                .counters
                .max_pending
                .fetch_max(calls.len() as u64, Ordering::Relaxed);
        }
        if !session.send_frame(frame) {
            if let Some(calls) = lock(&session.pending).as_mut() {
                calls.remove(&id);
            }
            return Err(session.end_error());
        }
        session
            .counters
            .requests_sent
            .fetch_add(1, Ordering::Relaxed);
        let guard = ForgetOnCancel { session, id };
        let outcome = match reply_rx.await {
            Ok(result) => result,
            Err(_) => Err(session.end_error()),
        };
        std::mem::forget(guard);
        outcome
    }

    /// The databases the server holds.
    pub async fn list_dbs(&self) -> Result<Vec<String>, Error> {
        let result = self.call("list_dbs", json!([])).await?;
        result
            .as_array()
            .and_then(|dbs| dbs.iter().map(|d| d.as_str().map(String::from)).collect())
            .ok_or_else(|| Error::Protocol(format!("list_dbs returned {result}")))
    }

    /// The schema of `db`, as the server has it.
    pub async fn get_schema(&self, db: &str) -> Result<DatabaseSchema, Error> {
        let result = self.call("get_schema", json!([db])).await?;
        Ok(DatabaseSchema::from_json(&result)?)
    }

    /// Executes `ops` atomically on `db`. An operation's failure (or the commit's) is
    /// [`Error::Transaction`] naming the operation.
    pub async fn transact(
        &self,
        db: &str,
        ops: &[Operation],
    ) -> Result<Vec<OperationResult>, Error> {
        let result = self
            .call_with("transact", &TransactParams { db, ops })
            .await?;
        decode_results(ops, &result)
    }

    /// Resolves when the session has ended (EOF, I/O error, probe timeout, [`Connection::close`]).
    pub async fn closed(&self) {
        let mut rx = self.session().closed.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        *self.session().closed.borrow()
    }

    /// Why the session ended, as the error pending calls received; `None` while it is open.
    pub fn end_error(&self) -> Option<Error> {
        self.is_closed().then(|| self.session().end_error())
    }

    /// Ends the session now; pending calls fail with [`Error::Closed`].
    pub fn close(&self) {
        self.session().end(EndReason::Closed);
    }

    /// A snapshot of the session's counters.
    pub fn stats(&self) -> ConnectionStats {
        self.session().stats()
    }
}

/// A request's wire form, `{"id":N,"method":M,"params":P}`.
fn request_frame<P: serde::Serialize + ?Sized>(
    id: u64,
    method: &str,
    params: &P,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"id\":");
    out.extend_from_slice(id.to_string().as_bytes());
    out.extend_from_slice(b",\"method\":");
    serde_json::to_writer(&mut out, method)?;
    out.extend_from_slice(b",\"params\":");
    serde_json::to_writer(&mut out, params)?;
    out.push(b'}');
    Ok(out)
}

async fn write_loop(
    session: Arc<Session>,
    mut outbox: mpsc::UnboundedReceiver<Vec<u8>>,
    mut writer: WriteHalf,
) {
    let mut closed = session.closed.subscribe();
    loop {
        let first = tokio::select! {
            biased;
            frame = outbox.recv() => frame,
            _ = closed.wait_for(|c| *c) => None,
        };
        let Some(first) = first else {
            break;
        };
        // The first frame becomes the write buffer, so a lone large request (a big
        // transaction) is written from where it was serialized, without a copy.
        let mut buf = first;
        let mut frames = 1u64;
        while buf.len() < MAX_COALESCED_WRITE {
            match outbox.try_recv() {
                Ok(frame) => {
                    buf.extend_from_slice(&frame);
                    frames += 1;
                }
                Err(_) => break,
            }
        }
        let written = tokio::select! {
            r = async {
                writer.write_all(&buf).await?;
                writer.flush().await
            } => r,
            _ = closed.wait_for(|c| *c) => break,
        };
        if let Err(e) = written {
            session.end(EndReason::Io(e.kind(), format!("write failed: {e}")));
            break;
        }
        let c = &session.counters;
        c.bytes_out.fetch_add(buf.len() as u64, Ordering::Relaxed);
        c.messages_out.fetch_add(frames, Ordering::Relaxed);
        c.writes.fetch_add(1, Ordering::Relaxed);
        c.max_frames_per_write.fetch_max(frames, Ordering::Relaxed);
    }
    let _ = writer.shutdown().await;
}

/// Tracks the inactivity probe: when to act next, and whether an `echo` is outstanding.
struct Probe {
    interval: Duration,
    last_received: Instant,
    echo_sent_at: Option<Instant>,
}

enum ProbeAction {
    Wait(Instant),
    SendEcho,
    GiveUp,
}

impl Probe {
    fn received(&mut self, now: Instant) {
        self.last_received = now;
        self.echo_sent_at = None;
    }

    fn on_timer(&mut self, now: Instant) -> ProbeAction {
        match self.echo_sent_at {
            None if now >= self.last_received + self.interval => {
                self.echo_sent_at = Some(now);
                ProbeAction::SendEcho
            }
            None => ProbeAction::Wait(self.last_received + self.interval),
            Some(sent) if now >= sent + self.interval => ProbeAction::GiveUp,
            Some(sent) => ProbeAction::Wait(sent + self.interval),
        }
    }

    fn next_deadline(&self) -> Instant {
        match self.echo_sent_at {
            None => self.last_received + self.interval,
            Some(sent) => sent + self.interval,
        }
    }
}

async fn read_loop(
    session: Arc<Session>,
    mut reader: ReadHalf,
    notify: mpsc::UnboundedSender<Notification>,
    probe_interval: Option<Duration>,
) {
    let mut closed = session.closed.subscribe();
    let mut framer = Framer::default();
    let mut buf = vec![0u8; READ_CHUNK];
    let start = Instant::now();
    let mut probe = probe_interval.map(|interval| Probe {
        interval,
        last_received: start,
        echo_sent_at: None,
    });
    let far_future = start + Duration::from_secs(86400 * 365);
    let timer = tokio::time::sleep_until(probe.as_ref().map_or(far_future, Probe::next_deadline));
    tokio::pin!(timer);
    let reason = loop {
        tokio::select! {
            _ = closed.wait_for(|c| *c) => return,
            read = reader.read(&mut buf) => {
                let n = match read {
                    Ok(0) if framer.is_idle() => break EndReason::Io(
                        std::io::ErrorKind::UnexpectedEof,
                        "the server closed the connection".into(),
                    ),
                    Ok(0) => break EndReason::Protocol("the server closed the connection in the middle of a message".into()),
                    Ok(n) => n,
                    Err(e) => break EndReason::Io(e.kind(), format!("read failed: {e}")),
                };
                session.counters.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                if let Some(p) = probe.as_mut() {
                    p.received(Instant::now());
                }
                if let Err(e) = framer.push(&buf[..n]) {
                    break EndReason::Framing(e);
                }
                if let Err(reason) = dispatch_all(&session, &mut framer, &notify) {
                    break reason;
                }
            }
            _ = &mut timer, if probe.is_some() => {
                let Some(p) = probe.as_mut() else { continue };
                match p.on_timer(Instant::now()) {
                    ProbeAction::Wait(at) => timer.as_mut().reset(at),
                    ProbeAction::SendEcho => {
                        tracing::debug!(remote = %session.remote, "nothing received for {:?}; sending echo", p.interval);
                        let frame = Message::Request { id: json!(PROBE_ID), method: "echo".into(), params: json!([]) }.to_bytes();
                        session.counters.probes_sent.fetch_add(1, Ordering::Relaxed);
                        if !session.send_frame(frame) {
                            break EndReason::Closed;
                        }
                        timer.as_mut().reset(p.next_deadline());
                    }
                    ProbeAction::GiveUp => break EndReason::ProbeTimeout,
                }
            }
        }
    };
    session.end(reason);
}

/// Handles every complete message buffered in `framer`.
fn dispatch_all(
    session: &Session,
    framer: &mut Framer,
    notify: &mpsc::UnboundedSender<Notification>,
) -> Result<(), EndReason> {
    loop {
        let json = match framer.next_message() {
            Ok(Some(json)) => json,
            Ok(None) => return Ok(()),
            Err(e) => return Err(EndReason::Framing(e)),
        };
        session.counters.messages_in.fetch_add(1, Ordering::Relaxed);
        let message = Message::from_json(json).map_err(|e| EndReason::Protocol(e.to_string()))?;
        match message {
            Message::Response { id, result, error } => deliver_response(session, id, result, error),
            Message::Request { id, method, params } => {
                let reply = if method == "echo" {
                    session
                        .counters
                        .echo_replies
                        .fetch_add(1, Ordering::Relaxed);
                    Message::Response {
                        id,
                        result: params,
                        error: Json::Null,
                    }
                } else {
                    tracing::warn!(remote = %session.remote, %method, "server sent an unsupported request");
                    Message::Response {
                        id,
                        result: Json::Null,
                        error: json!({"error": "unknown method", "details": method}),
                    }
                };
                if !session.send_frame(reply.to_bytes()) {
                    return Err(EndReason::Closed);
                }
            }
            Message::Notification { method, params } => {
                let _ = notify.send(Notification::from_message(method, params));
            }
        }
    }
}

fn deliver_response(session: &Session, id: Json, result: Json, error: Json) {
    let Some(call) = id
        .as_u64()
        .and_then(|id| lock(&session.pending).as_mut()?.remove(&id))
    else {
        if id != json!(PROBE_ID) {
            tracing::debug!(remote = %session.remote, %id, "reply to no pending request");
        }
        return;
    };
    let outcome = if error.is_null() {
        Ok(result)
    } else {
        Err(Error::Rpc {
            method: call.method,
            error,
        })
    };
    let _ = call.reply.send(outcome);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sends_one_echo_then_gives_up() {
        let start = Instant::now();
        let interval = Duration::from_secs(5);
        let mut probe = Probe {
            interval,
            last_received: start,
            echo_sent_at: None,
        };
        assert!(
            matches!(probe.on_timer(start + Duration::from_secs(1)), ProbeAction::Wait(at) if at == start + interval)
        );
        assert!(matches!(
            probe.on_timer(start + interval),
            ProbeAction::SendEcho
        ));
        assert_eq!(probe.next_deadline(), start + interval * 2);
        assert!(matches!(
            probe.on_timer(start + interval + Duration::from_secs(1)),
            ProbeAction::Wait(_)
        ));
        assert!(matches!(
            probe.on_timer(start + interval * 2),
            ProbeAction::GiveUp
        ));
    }

    #[test]
    fn anything_received_resets_the_probe() {
        let start = Instant::now();
        let interval = Duration::from_secs(5);
        let mut probe = Probe {
            interval,
            last_received: start,
            echo_sent_at: None,
        };
        assert!(matches!(
            probe.on_timer(start + interval),
            ProbeAction::SendEcho
        ));
        probe.received(start + interval + Duration::from_secs(1));
        assert!(
            matches!(probe.on_timer(start + interval * 2), ProbeAction::Wait(at) if at == start + interval * 2 + Duration::from_secs(1))
        );
    }

    #[test]
    fn requests_are_framed_as_json_rpc() {
        let frame =
            request_frame(7, "transact", &json!(["DB", {"op": "abort"}])).unwrap_or_default();
        let parsed = Message::parse(&frame);
        assert_eq!(
            parsed,
            Ok(Message::Request {
                id: json!(7),
                method: "transact".into(),
                params: json!(["DB", {"op": "abort"}]),
            })
        );
    }

    #[test]
    fn notifications_are_classified_by_method_and_arity() {
        let n = Notification::from_message("update3".into(), json!(["m", "txn", {"T": {}}]));
        assert!(matches!(n, Notification::Update3 { ref last_txn_id, .. } if last_txn_id == "txn"));
        let n = Notification::from_message("update2".into(), json!(["m", {}]));
        assert!(matches!(n, Notification::Update2 { .. }));
        let n = Notification::from_message("update".into(), json!([null, {}]));
        assert!(matches!(n, Notification::Update { .. }));
        let n = Notification::from_message("update2".into(), json!(["only one"]));
        assert!(matches!(n, Notification::Other { .. }));
        let n = Notification::from_message("locked".into(), json!(["lock"]));
        assert!(matches!(n, Notification::Other { ref method, .. } if method == "locked"));
    }
}
