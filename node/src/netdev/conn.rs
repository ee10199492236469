//! A netlink route socket bound to the network namespace of the thread that opens it.

use rtnetlink::Handle;
use tokio::task::JoinHandle;

use super::NetdevError;

/// A connection to the kernel's rtnetlink in the namespace the opening thread was in at that
/// moment (netlink sockets keep the namespace they were created in). Its background task is
/// stopped when it is dropped, so a short-lived connection leaves nothing behind.
pub(crate) struct Netlink {
    handle: Handle,
    task: JoinHandle<()>,
}

impl Netlink {
    /// Opens the socket in the current thread's namespace; `netns` only labels errors.
    pub(crate) fn open(netns: &str) -> Result<Netlink, NetdevError> {
        let (connection, handle, _unsolicited) =
            rtnetlink::new_connection().map_err(|source| NetdevError::Io {
                step: format!("opening a netlink socket in {netns}"),
                source,
            })?;
        let task = tokio::spawn(connection);
        Ok(Netlink { handle, task })
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
