//! The unix-socket server `rovn-cni` talks to: one request per connection, many connections
//! at once (see `crate::cni::protocol` for the framing).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::cni;
use super::state::AgentState;
use crate::cni::protocol::{
    CniError, CniRequest, CniResponse, MAX_FRAME_BYTES, codes, decode_frame, encode_frame,
};

/// Binds `path` (removing a stale socket, creating the directory), mode 0600.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(socket = %path.display(), "removed a stale CNI socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("removing stale socket {}", path.display()));
        }
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("binding the CNI socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting mode 0600 on {}", path.display()))?;
    Ok(listener)
}

/// Accepts connections forever, serving each on its own task.
pub async fn serve(listener: UnixListener, state: Arc<AgentState>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_connection(stream, &state).await {
                        tracing::warn!(error = %e, "CNI connection failed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a CNI connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(stream: UnixStream, state: &AgentState) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read).take(MAX_FRAME_BYTES as u64 + 1);
    let mut frame = Vec::new();
    reader
        .read_until(b'\n', &mut frame)
        .await
        .context("reading a CNI request")?;
    let response = if frame.last() != Some(&b'\n') {
        if frame.is_empty() {
            return Ok(());
        }
        CniResponse::Error(CniError::new(
            codes::DECODE_FAILURE,
            format!("the request frame is truncated or larger than {MAX_FRAME_BYTES} bytes"),
        ))
    } else {
        match decode_frame::<CniRequest>(&frame) {
            Ok(request) => {
                // A client that hangs up has given up: stop working on its request.
                let mut probe = [0u8; 1];
                let mut read_half = reader.into_inner();
                tokio::select! {
                    response = cni::handle(state, &request) => response,
                    _ = read_half.read(&mut probe) => {
                        tracing::info!(command = %request.command, container = request.container_id.as_deref().unwrap_or(""), "the CNI client hung up; request abandoned");
                        return Ok(());
                    }
                }
            }
            Err(e) => CniResponse::Error(CniError::new(
                codes::DECODE_FAILURE,
                format!("cannot decode the CNI request: {e}"),
            )),
        }
    };
    let bytes = encode_frame(&response).context("encoding the CNI response")?;
    write
        .write_all(&bytes)
        .await
        .context("writing the CNI response")?;
    write
        .shutdown()
        .await
        .context("closing the CNI connection")?;
    Ok(())
}
