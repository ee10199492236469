//! Listener addresses (`[NETNS@]IP:PORT`) and sockets made inside a named network namespace
//! (listeners, and the connections of the pod proxy): a dedicated thread `setns`es into
//! `/run/netns/NETNS`, makes the socket and hands it back; the socket keeps its namespace after
//! the thread ends.

use std::net::{SocketAddr, TcpListener};
use std::str::FromStr;

/// One `--listen` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    /// Network namespace name under `/run/netns`, or the caller's namespace.
    pub netns: Option<String>,
    /// Address to bind (port 0 picks a free port).
    pub addr: SocketAddr,
}

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The `--listen` text is malformed.
    #[error("invalid listen address {0:?}: expected [NETNS@]IP:PORT")]
    Syntax(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the address or namespace.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The binding thread died.
    #[error("listener thread failed: {0}")]
    Thread(String),
}

impl FromStr for ListenSpec {
    type Err = ListenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (netns, addr) = match s.split_once('@') {
            Some((ns, addr)) => (Some(ns), addr),
            None => (None, s),
        };
        if netns.is_some_and(|ns| !is_netns_name(ns)) {
            return Err(ListenError::Syntax(s.to_string()));
        }
        let addr = addr
            .parse()
            .map_err(|_| ListenError::Syntax(s.to_string()))?;
        Ok(ListenSpec {
            netns: netns.map(str::to_string),
            addr,
        })
    }
}

impl std::fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.netns {
            Some(ns) => write!(f, "{ns}@{}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

fn bind_here(addr: SocketAddr, label: &str) -> Result<TcpListener, ListenError> {
    let io = |what: &str| {
        let what = format!("{what} {label}");
        move |source| ListenError::Io { what, source }
    };
    let listener = TcpListener::bind(addr).map_err(io("binding"))?;
    listener
        .set_nonblocking(true)
        .map_err(io("setting non-blocking mode on"))?;
    Ok(listener)
}

/// Whether `ns` can name a file under `/run/netns` (and nothing outside it).
pub fn is_netns_name(ns: &str) -> bool {
    !(ns.is_empty() || ns.contains('/') || ns == "." || ns == "..")
}

/// Binds a listener as `spec` says (blocking; call from a blocking context).
pub fn bind(spec: &ListenSpec) -> Result<TcpListener, ListenError> {
    let label = spec.to_string();
    let addr = spec.addr;
    in_netns(spec.netns.as_deref(), move || bind_here(addr, &label))?
}

/// Runs `f` inside the network namespace `/run/netns/NETNS` (or here when `None`), on a thread
/// of its own that ends with it: a socket made there stays in that namespace, and no thread
/// shared with other work ever changes namespace. Blocking.
pub fn in_netns<T: Send + 'static>(
    netns: Option<&str>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ListenError> {
    let Some(ns) = netns else {
        return Ok(f());
    };
    let path = format!("/run/netns/{ns}");
    let handle = std::thread::Builder::new()
        .name(format!("netns-{ns}"))
        .spawn(move || -> Result<T, ListenError> {
            let file = std::fs::File::open(&path).map_err(|source| ListenError::Io {
                what: format!("opening network namespace {path}"),
                source,
            })?;
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                ListenError::Io {
                    what: format!("entering network namespace {path}"),
                    source: std::io::Error::from(e),
                }
            })?;
            Ok(f())
        })
        .map_err(|e| ListenError::Thread(e.to_string()))?;
    handle
        .join()
        .map_err(|_| ListenError::Thread("network namespace thread panicked".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let plain: ListenSpec = "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plain.netns, None);
        let ns: ListenSpec = "rl-x-central@172.30.0.1:6443"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ns.netns.as_deref(), Some("rl-x-central"));
        assert_eq!(ns.to_string(), "rl-x-central@172.30.0.1:6443");
        assert!("../x@1.2.3.4:1".parse::<ListenSpec>().is_err());
        assert!("nope".parse::<ListenSpec>().is_err());
    }
}
