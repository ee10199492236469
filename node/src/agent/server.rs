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

/// Binds the CNI socket at `path`, mode 0600, with no moment at which anyone but the agent's
/// user can reach it: a socket is bound with the process umask's mode and only then chmod-ed,
/// so it is bound in a private (0700) staging directory beside `path`, chmod-ed there, and
/// renamed into place (which also replaces a stale socket atomically).
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    stage(path)?.publish()
}

/// A listener bound in its private staging directory, not yet at its final path.
pub struct StagedSocket {
    /// The 0700 directory the socket was bound in.
    pub dir: std::path::PathBuf,
    /// Where the socket is now (inside `dir`).
    pub staged: std::path::PathBuf,
    /// Where [`StagedSocket::publish`] moves it.
    pub path: std::path::PathBuf,
    listener: UnixListener,
}

/// The private directory a socket for `path` is bound in before it is renamed into place:
/// beside `path`, so the rename stays on one filesystem.
fn staging_dir(path: &Path) -> anyhow::Result<std::path::PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("the CNI socket path {} has no file name", path.display()))?;
    let mut dir_name = std::ffi::OsString::from(".");
    dir_name.push(name);
    dir_name.push(".staging");
    Ok(path.with_file_name(dir_name))
}

/// The first half of [`bind`]: creates `path`'s directory, a fresh 0700 staging directory
/// beside it, and binds the socket there with mode 0600. Nothing is at `path` yet.
pub fn stage(path: &Path) -> anyhow::Result<StagedSocket> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let dir = staging_dir(path)?;
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("removing stale {}", dir.display()));
        }
    }
    // The mode is masked by the umask, which can only take bits away from 0700.
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating the private directory {}", dir.display()))?;
    let staged = dir.join("cni.sock");
    let listener = UnixListener::bind(&staged)
        .with_context(|| format!("binding the CNI socket {}", staged.display()))?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting mode 0600 on {}", staged.display()))?;
    Ok(StagedSocket {
        dir,
        staged,
        path: path.to_path_buf(),
        listener,
    })
}

impl StagedSocket {
    /// Renames the socket to its final path (replacing a stale one) and removes the staging
    /// directory.
    pub fn publish(self) -> anyhow::Result<UnixListener> {
        std::fs::rename(&self.staged, &self.path).with_context(|| {
            format!(
                "moving the CNI socket from {} to {}",
                self.staged.display(),
                self.path.display()
            )
        })?;
        std::fs::remove_dir(&self.dir)
            .with_context(|| format!("removing {}", self.dir.display()))?;
        Ok(self.listener)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Under the most permissive umask the socket is only ever reachable through a 0700
    /// directory until it is 0600, then appears at its path 0600, replacing a stale one.
    #[tokio::test]
    async fn the_socket_is_private_from_bind_on() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("run/cni.sock");
        std::fs::create_dir_all(tmp.path().join("run")).unwrap();
        std::fs::write(&path, b"stale").unwrap();
        let previous = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let staged = stage(&path);
        nix::sys::stat::umask(previous);
        let staged = staged.unwrap();

        assert_eq!(mode(&staged.dir), 0o700, "the staging directory is private");
        assert_eq!(
            std::fs::metadata(&staged.dir).unwrap().uid(),
            nix::unistd::geteuid().as_raw()
        );
        assert_eq!(mode(&staged.staged), 0o600);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"stale",
            "nothing at the path yet"
        );

        let dir = staged.dir.clone();
        let listener = staged.publish().unwrap();
        assert_eq!(mode(&path), 0o600);
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_socket()
        );
        assert!(!dir.exists(), "the staging directory is removed");
        let client = tokio::net::UnixStream::connect(&path).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        drop((client, server));
    }
}
