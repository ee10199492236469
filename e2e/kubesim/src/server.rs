//! The shared server state (cluster state behind one lock, continue-token snapshots)
//! and starting/stopping the HTTP listeners in-process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::State;
use crate::defaults::ServiceAllocator;
use crate::listen::{self, ListenError, ListenSpec};
use crate::store::{Store, StoredObject};

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (each optionally inside a network namespace).
    pub listen: Vec<ListenSpec>,
    /// Service ClusterIP range.
    pub service_cidr: Ipv4Net,
    /// Change events kept for resuming watches.
    pub watch_history: usize,
    /// How far a live watcher may fall behind before it gets 410 and must re-list.
    pub watcher_buffer: usize,
    /// Interval of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Where pods reach this server (published as the `kubernetes` Service's
    /// endpoints). `None`: the first bound non-loopback listener, if any.
    pub advertise: Option<SocketAddr>,
    /// Network namespace the pod proxy connects from (`None`: the server's own).
    pub proxy_netns: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Vec::new(),
            service_cidr: Ipv4Net::new(std::net::Ipv4Addr::new(10, 96, 0, 0), 12)
                .unwrap_or_default(),
            watch_history: 100_000,
            watcher_buffer: 65_536,
            bookmark_interval: Duration::from_secs(30),
            advertise: None,
            proxy_netns: None,
        }
    }
}

impl Config {
    /// The defaults, listening on a free port of 127.0.0.1 in the caller's namespace: what an
    /// in-process test server needs.
    pub fn loopback() -> Config {
        Config {
            listen: vec![ListenSpec {
                netns: None,
                addr: SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
            }],
            ..Config::default()
        }
    }
}

/// A consistent list snapshot a continue token refers to.
pub struct Snapshot {
    /// When it was taken (snapshots expire like etcd compaction would expire them).
    pub taken: Instant,
    /// The list's resourceVersion.
    pub rv: u64,
    /// Every matching object at that resourceVersion.
    pub items: Arc<Vec<Arc<StoredObject>>>,
}

/// How long a continue token stays valid.
pub const CONTINUE_TTL: Duration = Duration::from_secs(300);
const MAX_SNAPSHOTS: usize = 512;

/// The state every request handler shares.
pub struct Cluster {
    state: RwLock<State>,
    snapshots: Mutex<(u64, HashMap<u64, Snapshot>)>,
    /// Interval of watch bookmarks.
    pub bookmark_interval: Duration,
    /// Flips to true when the server stops, ending open watches.
    pub shutdown: watch::Receiver<bool>,
    /// Where the pod proxy connects from ([`Config::proxy_netns`]).
    pub proxy_netns: Option<String>,
}

impl Cluster {
    /// A fresh cluster for `config`, with its shutdown signal.
    pub fn new(config: &Config) -> (Arc<Self>, watch::Sender<bool>) {
        let store = Store::new(config.watch_history, config.watcher_buffer);
        let state = State::new(store, ServiceAllocator::new(config.service_cidr));
        let (tx, rx) = watch::channel(false);
        let cluster = Cluster {
            state: RwLock::new(state),
            snapshots: Mutex::new((0, HashMap::new())),
            bookmark_interval: config.bookmark_interval,
            shutdown: rx,
            proxy_netns: config.proxy_netns.clone(),
        };
        (Arc::new(cluster), tx)
    }

    /// Shared access to the state.
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Exclusive access to the state.
    pub fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps a list snapshot for later pages; returns its id.
    pub fn save_snapshot(&self, rv: u64, items: Arc<Vec<Arc<StoredObject>>>) -> u64 {
        let mut guard = self.snapshots.lock().unwrap_or_else(|p| p.into_inner());
        let (next, map) = &mut *guard;
        map.retain(|_, s| s.taken.elapsed() < CONTINUE_TTL);
        if map.len() >= MAX_SNAPSHOTS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.taken).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        *next += 1;
        map.insert(
            *next,
            Snapshot {
                taken: Instant::now(),
                rv,
                items,
            },
        );
        *next
    }

    /// A saved snapshot (its rv and items), if still valid.
    pub fn snapshot(&self, id: u64) -> Option<(u64, Arc<Vec<Arc<StoredObject>>>)> {
        let guard = self.snapshots.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .1
            .get(&id)
            .filter(|s| s.taken.elapsed() < CONTINUE_TTL)
            .map(|s| (s.rv, s.items.clone()))
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not be bound.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// No listener was configured.
    #[error("no --listen address given")]
    NoListener,
}

/// A running server; dropping it stops it.
pub struct RunningServer {
    addrs: Vec<SocketAddr>,
    cluster: Arc<Cluster>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// The real bound addresses, in `--listen` order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// `http://ADDR` of the first listener, for kubeconfigs and clients.
    pub fn url(&self) -> String {
        self.addrs
            .first()
            .map(|a| format!("http://{a}"))
            .unwrap_or_default()
    }

    /// The state behind the server (tests inspect it directly).
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Stops accepting connections and ends open watches.
    pub fn stop(&mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds every listener and starts serving on the current tokio runtime.
pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
    if config.listen.is_empty() {
        return Err(ServerError::NoListener);
    }
    let mut listeners = Vec::new();
    for spec in &config.listen {
        let spec = spec.clone();
        let std_listener = tokio::task::spawn_blocking(move || listen::bind(&spec))
            .await
            .map_err(|e| ListenError::Thread(e.to_string()))??;
        let listener =
            tokio::net::TcpListener::from_std(std_listener).map_err(|e| ListenError::Io {
                what: "registering the listener with tokio".into(),
                source: e,
            })?;
        listeners.push(listener);
    }
    let (cluster, stop) = Cluster::new(&config);
    let router = crate::api::router(cluster.clone());
    let mut addrs = Vec::new();
    // The controller subscribes before the first request can change anything.
    let mut tasks: Vec<JoinHandle<()>> = crate::endpointslices::spawn(cluster.clone())
        .into_iter()
        .collect();
    for listener in listeners {
        let addr = listener.local_addr().map_err(|e| ListenError::Io {
            what: "reading the bound address".into(),
            source: e,
        })?;
        addrs.push(addr);
        let app = router.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(%addr, error = %e, "listener stopped");
            }
        }));
    }
    let advertise = config.advertise.or_else(|| {
        addrs
            .iter()
            .copied()
            .find(|a| !a.ip().is_loopback() && !a.ip().is_unspecified())
    });
    if let Some(addr) = advertise
        && let Err(e) = cluster.write().publish_apiserver_endpoints(addr)
    {
        tracing::warn!(%addr, error = %e, "could not publish the kubernetes Service endpoints");
    }
    tracing::info!(?addrs, ?advertise, "rovn-kubesim serving");
    Ok(RunningServer {
        addrs,
        cluster,
        stop,
        tasks,
    })
}
