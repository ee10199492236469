//! One exec session on an upgraded WebSocket: the command runs as the container's process runs
//! (its environment, its network namespace, its program lookup), the client's stdin is piped
//! in, stdout and stderr stream out as they come, and the final Status says how it ended. The
//! command's process group is killed when the client goes away first.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::channel::{self, ExecRequest, Incoming, Outcome};
use super::registry::ExecTarget;
use crate::containers::{self, GroupKiller};

/// How long a finished session waits for the client to answer its close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Largest output piece per message.
const CHUNK: usize = 32 * 1024;

/// Where an exec runs, besides the container's own settings.
#[derive(Debug, Clone)]
pub struct Session {
    /// `namespace/pod/container`, for logs.
    pub label: String,
    /// The negotiated subprotocol.
    pub protocol: &'static str,
    /// What to run and which streams.
    pub request: ExecRequest,
    /// The container's environment and namespace.
    pub target: ExecTarget,
    /// Searched first for bare program names (the kubelet's directory).
    pub own_dir: Option<std::path::PathBuf>,
    /// The `PATH` program names are searched in, as for container launches.
    pub path_env: String,
}

/// Copies `reader` to the client as messages on `channel`, until EOF.
async fn pump(reader: Option<impl AsyncRead + Unpin>, channel: u8, out: mpsc::Sender<Message>) {
    let Some(mut reader) = reader else { return };
    let mut buf = vec![0u8; CHUNK];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let frame = channel::frame(channel, &buf[..n]);
                if out.send(Message::binary(frame)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Feeds the command's stdin; dropping the sender closes it.
async fn feed(mut stdin: Option<tokio::process::ChildStdin>, mut input: mpsc::Receiver<Vec<u8>>) {
    while let Some(data) = input.recv().await {
        let Some(pipe) = stdin.as_mut() else { continue };
        if pipe.write_all(&data).await.is_err() {
            // The command closed its stdin: later input has nowhere to go.
            stdin = None;
        }
    }
}

fn spawn(session: &Session) -> Result<tokio::process::Child, String> {
    let request = &session.request;
    let program_name = request.command.first().cloned().unwrap_or_default();
    let program = containers::resolve_program(
        &program_name,
        session.own_dir.as_deref(),
        OsStr::new(&session.path_env),
    )
    .ok_or_else(|| format!("exec: {program_name:?}: executable file not found in $PATH"))?;
    let args = request.command.get(1..).unwrap_or_default();
    let mut cmd = containers::pod_command(
        &program,
        args,
        &session.target.env,
        session.target.netns.as_deref().map(Path::new),
    )
    .map_err(|e| format!("entering the container's network namespace: {e}"))?;
    let piped = |wanted: bool| {
        if wanted {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    cmd.stdin(piped(request.stdin))
        .stdout(piped(request.stdout))
        .stderr(piped(request.stderr || request.tty));
    cmd.spawn()
        .map_err(|e| format!("exec: starting {program_name:?}: {e}"))
}

fn outcome(status: std::io::Result<std::process::ExitStatus>) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(st) => match (st.code(), st.signal()) {
            (Some(0), _) => Outcome::Success,
            (Some(code), _) => Outcome::ExitCode(code),
            (None, Some(signal)) => Outcome::ExitCode(128 + signal),
            (None, None) => Outcome::Failed("the command ended without an exit status".into()),
        },
        Err(e) => Outcome::Failed(format!("waiting for the command: {e}")),
    }
}

/// Runs the session to its end. Returns when the command's outcome was sent and the
/// connection closed, or as soon as the client goes away (the command is then killed).
pub async fn run<S>(ws: WebSocketStream<S>, session: Session)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut incoming) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(16);
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
        // A normal closure (1000), which clients take as the end; a close without a code
        // (1005) is an error to kubectl.
        let normal = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(normal))).await;
        let _ = sink.close().await;
    });
    let mut child = match spawn(&session) {
        Ok(child) => child,
        Err(message) => {
            tracing::info!(exec = %session.label, "exec failed: {message}");
            let _ = out_tx
                .send(Message::binary(channel::status_frame(&Outcome::Failed(
                    message,
                ))))
                .await;
            drop(out_tx);
            let _ = writer.await;
            return;
        }
    };
    tracing::info!(exec = %session.label, command = ?session.request.command, pid = ?child.id(), "exec started");
    let mut killer = GroupKiller(child.id());
    let stderr_channel = if session.request.tty {
        channel::STDOUT
    } else {
        channel::STDERR
    };
    let mut pumps = vec![
        tokio::spawn(pump(child.stdout.take(), channel::STDOUT, out_tx.clone())),
        tokio::spawn(pump(child.stderr.take(), stderr_channel, out_tx.clone())),
    ];
    let (stdin_tx, stdin_rx) = mpsc::channel::<Vec<u8>>(16);
    tokio::spawn(feed(child.stdin.take(), stdin_rx));
    let mut stdin_tx = Some(stdin_tx);
    let stream_close = session.protocol == channel::V5;

    // The command runs; the client's messages are read meanwhile.
    let mut exited = None;
    while exited.is_none() {
        tokio::select! {
            status = child.wait() => exited = Some(outcome(status)),
            message = incoming.next() => match message {
                Some(Ok(Message::Binary(data))) => match channel::decode(&data, stream_close) {
                    Incoming::Stdin(bytes) => {
                        if let Some(tx) = &stdin_tx && !bytes.is_empty() {
                            let _ = tx.send(bytes.to_vec()).await;
                        }
                    }
                    Incoming::Close(channel::STDIN) => stdin_tx = None,
                    Incoming::Close(_) | Incoming::Ignored => {}
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    tracing::info!(exec = %session.label, "client went away; killing the command");
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    let outcome = exited.unwrap_or(Outcome::Success);
    drop(stdin_tx);
    // All output before the status: wait for the pipes to end (the client may still leave).
    let drained = async {
        for pump in pumps.drain(..) {
            let _ = pump.await;
        }
    };
    tokio::pin!(drained);
    loop {
        tokio::select! {
            _ = &mut drained => break,
            message = incoming.next() => {
                if matches!(message, Some(Ok(Message::Close(_))) | Some(Err(_)) | None) {
                    return;
                }
            }
        }
    }
    // The command is done; what it left in the background lives on, as with a real exec.
    killer.0 = None;
    tracing::info!(exec = %session.label, ?outcome, "exec finished");
    let _ = out_tx
        .send(Message::binary(channel::status_frame(&outcome)))
        .await;
    drop(out_tx);
    let _ = writer.await;
    // Let the client answer the close, so its side ends cleanly.
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = incoming.next().await {}
    })
    .await;
}
