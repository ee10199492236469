//! Pod sandboxes as named network namespaces under `/run/netns`, made the way `ip netns add`
//! makes them (so `ip netns exec` and every other tool see them): a file bind-mounted over a
//! fresh namespace from a dedicated thread that `unshare`s, with `lo` up.

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

/// Where named network namespaces live, shared by iproute2, CNI runtimes and this kubelet.
pub const NETNS_DIR: &str = "/run/netns";

/// A sandbox operation failed; names the namespace concerned.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The name cannot be a file name under `/run/netns`.
    #[error("invalid network namespace name {0:?}")]
    InvalidName(String),
    /// A namespace of that name already exists.
    #[error("network namespace {0} already exists")]
    Exists(String),
    /// A system call failed.
    #[error("network namespace {name}: {what}: {source}")]
    Sys {
        /// The namespace.
        name: String,
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

fn sys(name: &str, what: &'static str) -> impl FnOnce(nix::Error) -> SandboxError + use<> {
    let name = name.to_owned();
    move |e| SandboxError::Sys {
        name,
        what,
        source: std::io::Error::from(e),
    }
}

fn io(name: &str, what: &'static str) -> impl FnOnce(std::io::Error) -> SandboxError + use<> {
    let name = name.to_owned();
    move |source| SandboxError::Sys { name, what, source }
}

/// The sandbox id of a pod, used as `CNI_CONTAINERID`: stable across retries so that a DEL after
/// a kubelet restart addresses the same attachment. (The lab's pods have one sandbox each.)
pub fn sandbox_id(uid: &str) -> String {
    uid.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The lab's sandbox namespace name: `<prefix>p<first 12 hex of the UID without dashes>`.
pub fn sandbox_netns_name(netns_prefix: &str, uid: &str) -> String {
    let id = sandbox_id(uid);
    let short: String = id.chars().take(12).collect();
    format!("{netns_prefix}p{short}")
}

/// Prefix shared by every sandbox of one lab, to find them at startup.
pub fn sandbox_name_prefix(netns_prefix: &str) -> String {
    format!("{netns_prefix}p")
}

/// The path plugins get as `CNI_NETNS`.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

fn validate(name: &str) -> Result<(), SandboxError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(SandboxError::InvalidName(name.to_owned()))
    }
}

/// Makes `/run/netns` a shared mount point, as iproute2 does, so namespaces mounted under it
/// propagate to peer mount namespaces.
fn ensure_netns_dir(name: &str) -> Result<(), SandboxError> {
    std::fs::create_dir_all(NETNS_DIR).map_err(io(name, "creating /run/netns"))?;
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match mount(None::<&str>, NETNS_DIR, None::<&str>, shared, None::<&str>) {
        Ok(()) => Ok(()),
        Err(nix::Error::EINVAL) => {
            mount(
                Some(NETNS_DIR),
                NETNS_DIR,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys(name, "bind-mounting /run/netns on itself"))?;
            mount(None::<&str>, NETNS_DIR, None::<&str>, shared, None::<&str>)
                .map_err(sys(name, "making /run/netns shared"))
        }
        Err(e) => Err(sys(name, "making /run/netns shared")(e)),
    }
}

/// Creates the named namespace with `lo` up and returns its path.
pub fn create_netns(name: &str) -> Result<PathBuf, SandboxError> {
    validate(name)?;
    ensure_netns_dir(name)?;
    let path = netns_path(name);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(SandboxError::Exists(name.to_owned()));
        }
        Err(e) => return Err(io(name, "creating the mount point file")(e)),
    }
    let owned_name = name.to_owned();
    let target = path.clone();
    let made = std::thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || -> Result<(), SandboxError> {
            let name = owned_name.as_str();
            unshare(CloneFlags::CLONE_NEWNET).map_err(sys(name, "unshare(CLONE_NEWNET)"))?;
            set_loopback_up().map_err(io(name, "setting lo up"))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys(name, "bind-mounting the namespace"))
        })
        .map_err(io(name, "spawning the namespace thread"))?
        .join()
        .unwrap_or_else(|_| {
            Err(SandboxError::Sys {
                name: name.to_owned(),
                what: "namespace thread",
                source: std::io::Error::other("panicked"),
            })
        });
    if let Err(e) = made {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// `ip link set lo up` in the calling thread's namespace, by ioctl.
fn set_loopback_up() -> std::io::Result<()> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    let fd = sock.as_raw_fd();
    // SAFETY: fd is a live socket, ifr a valid ifreq naming "lo"; the kernel fills the flags.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above, now setting the flags.
    if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Unmounts and removes a named namespace; absent namespaces are fine (teardown is idempotent).
pub fn delete_netns(name: &str) -> Result<(), SandboxError> {
    validate(name)?;
    let path = netns_path(name);
    match umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(sys(name, "unmounting")(e)),
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(name, "removing the mount point file")(e)),
    }
}

/// Whether a named namespace exists (is a mounted namespace, not a leftover empty file).
pub fn netns_exists(name: &str) -> bool {
    std::fs::File::open(netns_path(name))
        .ok()
        .and_then(|f| nix::sys::statfs::fstatfs(f.as_fd()).ok())
        .is_some_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Names under `/run/netns` starting with `prefix`, sorted.
pub fn list_netns(prefix: &str) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = match std::fs::read_dir(NETNS_DIR) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(prefix))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    names.sort();
    Ok(names)
}

/// PIDs of every process whose network namespace is the given one (as `ip netns pids`), so
/// teardown can kill what a crashed kubelet left behind.
pub fn pids_in_netns(path: &Path) -> Vec<i32> {
    let Ok(target) = std::fs::metadata(path) else {
        return Vec::new();
    };
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc_dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
        })
        .collect()
}

/// Runs `f` on a dedicated thread that has entered the namespace at `path`, so the caller's
/// threads never change namespace.
pub fn run_in_netns<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SandboxError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(io(&name, "opening"))?;
    let thread_name = name.clone();
    std::thread::Builder::new()
        .name("netns-exec".into())
        .spawn(move || -> Result<T, SandboxError> {
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(sys(&thread_name, "setns(CLONE_NEWNET)"))?;
            Ok(f())
        })
        .map_err(io(&name, "spawning the namespace thread"))?
        .join()
        .unwrap_or_else(|_| {
            Err(SandboxError::Sys {
                name: name.clone(),
                what: "namespace thread",
                source: std::io::Error::other("panicked"),
            })
        })
}

/// Whether the mount holding `/run/netns` in this `mountinfo` only receives propagation (a
/// slave, as after `ip netns exec`), so namespaces named here would be invisible to everyone
/// else. Pure.
pub fn netns_mount_is_private(mountinfo: &str) -> bool {
    let mut best: Option<(&str, bool)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mount_point) = fields.get(4).copied() else {
            continue;
        };
        let covers = NETNS_DIR == mount_point
            || mount_point == "/"
            || NETNS_DIR.starts_with(&format!("{mount_point}/"));
        if !covers {
            continue;
        }
        let optional = fields
            .iter()
            .skip(6)
            .take_while(|f| **f != "-")
            .copied()
            .collect::<Vec<_>>();
        let shared = optional.iter().any(|f| f.starts_with("shared:"));
        let slave = optional.iter().any(|f| f.starts_with("master:"));
        let private = slave && !shared;
        if best.is_none_or(|(m, _)| mount_point.len() >= m.len()) {
            best = Some((mount_point, private));
        }
    }
    best.is_some_and(|(_, private)| private)
}

/// What [`join_shared_mount_namespace`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum MountNamespaceChoice {
    /// `/run/netns` already propagates; nothing done.
    AlreadyShared,
    /// The process moved to its parent's mount namespace.
    JoinedParent(i32),
    /// Private and no way out; sandboxes will only be visible to this process and its children.
    StillPrivate(String),
}

/// `ip netns exec` gives the kubelet a private mount namespace whose mounts never reach the
/// rest of the system, so sandbox names would exist only for the kubelet. When that is the case,
/// move to the parent's mount namespace (the one that launched `ip netns exec`), keeping the
/// network namespace. Must run before any other thread exists (setns of a mount namespace
/// refuses multi-threaded callers).
pub fn join_shared_mount_namespace() -> MountNamespaceChoice {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return MountNamespaceChoice::StillPrivate("cannot read /proc/self/mountinfo".into());
    };
    if !netns_mount_is_private(&info) {
        return MountNamespaceChoice::AlreadyShared;
    }
    let parent = nix::unistd::getppid().as_raw();
    let own = std::fs::metadata("/proc/self/ns/mnt").map(|m| m.ino());
    let theirs_path = format!("/proc/{parent}/ns/mnt");
    let theirs = std::fs::metadata(&theirs_path).map(|m| m.ino());
    match (own, theirs) {
        (Ok(a), Ok(b)) if a != b => {}
        _ => {
            return MountNamespaceChoice::StillPrivate(format!(
                "parent {parent} shares this mount namespace or cannot be inspected"
            ));
        }
    }
    let file = match std::fs::File::open(&theirs_path) {
        Ok(f) => f,
        Err(e) => return MountNamespaceChoice::StillPrivate(format!("{theirs_path}: {e}")),
    };
    // Joining a mount namespace resets the working directory to its root; keep relative
    // paths given on the command line meaning what they meant.
    let cwd = std::env::current_dir().ok();
    match setns(file.as_fd(), CloneFlags::CLONE_NEWNS) {
        Ok(()) => {
            if let Some(cwd) = cwd {
                let _ = std::env::set_current_dir(cwd);
            }
            MountNamespaceChoice::JoinedParent(parent)
        }
        Err(e) => MountNamespaceChoice::StillPrivate(format!("setns {theirs_path}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_lab_convention() {
        let uid = "3F2504E0-4F89-11D3-9A0C-0305E82C3301";
        assert_eq!(sandbox_id(uid), "3f2504e04f8911d39a0c0305e82c3301");
        assert_eq!(sandbox_netns_name("rl-lab1-", uid), "rl-lab1-p3f2504e04f89");
        assert!(sandbox_netns_name("rl-lab1-", uid).starts_with(&sandbox_name_prefix("rl-lab1-")));
        assert_eq!(netns_path("x"), PathBuf::from("/run/netns/x"));
    }

    #[test]
    fn rejects_path_like_names() {
        for bad in ["", "..", "a/b", "a b", "x\0"] {
            assert!(matches!(validate(bad), Err(SandboxError::InvalidName(_))));
        }
        assert!(validate("rl-x-p0123456789ab").is_ok());
    }

    #[test]
    fn detects_private_netns_mount() {
        let shared = "21 1 254:0 / / rw shared:1 - ext4 /dev/vda rw\n\
                      42 21 254:0 /run/netns /run/netns rw shared:5 - ext4 /dev/vda rw\n";
        assert!(!netns_mount_is_private(shared));
        let slave = "300 299 254:0 / / rw master:1 - ext4 /dev/vda rw\n\
                     301 300 254:0 /run/netns /run/netns rw master:5 - ext4 /dev/vda rw\n";
        assert!(netns_mount_is_private(slave));
        let both = "301 300 254:0 /run/netns /run/netns rw shared:9 master:5 - ext4 x rw\n";
        assert!(!netns_mount_is_private(both));
        let only_root = "300 299 254:0 / / rw master:1 - ext4 /dev/vda rw\n";
        assert!(netns_mount_is_private(only_root));
        assert!(!netns_mount_is_private(""));
    }
}
