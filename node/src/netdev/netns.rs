//! Running netlink work inside another network namespace (a pod sandbox).
//!
//! `setns` changes the namespace of the calling OS thread only. Doing it on a tokio worker would
//! leave that worker — and every task later scheduled on it — in the sandbox, so each job gets a
//! dedicated thread with its own single-threaded runtime and its own netlink socket, and the
//! thread ends with the job.

use std::fs::File;
use std::future::Future;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};

use super::NetdevError;
use super::conn::Netlink;

/// Runs `job` with a netlink connection opened inside the network namespace at `netns`
/// (`/run/netns/x`, `/proc/<pid>/ns/net`). The caller's thread never changes namespace.
pub(crate) async fn run_in_netns<T, F, Fut>(netns: &Path, job: F) -> Result<T, NetdevError>
where
    T: Send + 'static,
    F: FnOnce(Netlink) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NetdevError>>,
{
    let path = netns.to_path_buf();
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
    let thread_path = path.clone();
    std::thread::Builder::new()
        .name("rovn-netns".to_string())
        .spawn(move || {
            let result = enter_and_run(&thread_path, job);
            // The caller may have stopped waiting (its task was cancelled); nothing to do then.
            let _ = answer_tx.send(result);
        })
        .map_err(|source| NetdevError::Io {
            step: format!("starting a thread for network namespace {}", path.display()),
            source,
        })?;
    answer_rx
        .await
        .map_err(|_| NetdevError::WorkerDied { netns: path })?
}

fn enter_and_run<T, F, Fut>(netns: &Path, job: F) -> Result<T, NetdevError>
where
    F: FnOnce(Netlink) -> Fut,
    Fut: Future<Output = Result<T, NetdevError>>,
{
    let file = open_netns(netns)?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|errno| match errno {
        Errno::EINVAL => NetdevError::NotANetns {
            netns: netns.to_path_buf(),
        },
        errno => NetdevError::Kernel {
            step: format!("entering network namespace {}", netns.display()),
            errno,
        },
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| NetdevError::Io {
            step: format!(
                "starting a runtime for network namespace {}",
                netns.display()
            ),
            source,
        })?;
    let label = format!("netns {}", netns.display());
    runtime.block_on(async move {
        let netlink = Netlink::open(&label)?;
        job(netlink).await
    })
}

/// Opens a namespace file, telling "gone" apart from other failures (DEL must succeed when gone).
pub(crate) fn open_netns(netns: &Path) -> Result<File, NetdevError> {
    File::open(netns).map_err(|source| match source.kind() {
        ErrorKind::NotFound => NetdevError::NetnsMissing {
            netns: netns.to_path_buf(),
        },
        _ => NetdevError::Io {
            step: format!("opening network namespace {}", netns.display()),
            source,
        },
    })
}

/// Refuses a "sandbox" that is the calling thread's own network namespace: configuring or
/// deleting a pod interface there would act on the node's own devices (a bogus `CNI_NETNS` of
/// `/proc/1/ns/net` must not take the node's `eth0` away).
pub(crate) fn ensure_not_own_netns(netns: &Path) -> Result<(), NetdevError> {
    let sandbox = std::fs::metadata(netns).map_err(|source| match source.kind() {
        ErrorKind::NotFound => NetdevError::NetnsMissing {
            netns: netns.to_path_buf(),
        },
        _ => NetdevError::Io {
            step: format!("reading network namespace {}", netns.display()),
            source,
        },
    })?;
    let own = std::fs::metadata(OWN_NETNS).map_err(|source| NetdevError::Io {
        step: format!("reading {OWN_NETNS}"),
        source,
    })?;
    if (sandbox.dev(), sandbox.ino()) == (own.dev(), own.ino()) {
        return Err(NetdevError::InvalidRequest {
            device: netns.display().to_string(),
            reason: "it is the agent's own network namespace, not a pod sandbox".to_string(),
        });
    }
    Ok(())
}

/// The network namespace of the calling thread (not of the process's main thread).
const OWN_NETNS: &str = "/proc/thread-self/ns/net";

/// The label errors use for a sandbox.
pub(crate) fn netns_label(netns: &Path) -> String {
    format!("netns {}", netns.display())
}

/// The label errors use for the namespace the agent runs in.
pub(crate) const AGENT_NETNS: &str = "the agent's netns";
