//! The controller process: watchers, IPAM state, annotation writes, the NB reconcile loop, leader election, metrics.
//!
//! [`run`] is the whole process minus argument parsing and logging set-up, so tests can run a
//! controller in-process against an in-process API server and a real NB.

mod allocator;
mod config;
mod controller;
mod decide;
mod election;
mod http;
mod kubeio;
mod ledger;
mod metrics;
mod nodes;
mod pods;
mod policies;
mod reports;
mod rounds;
mod services;
mod subnets;
mod watch;
mod world;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use rovn_ovsdb::{ClientConfig, Remote};
use tokio::sync::{mpsc, watch as signal};

pub use allocator::{Allocator, PoolChanges};
pub use config::{ElectionConfig, KubeSource, RunConfig};
pub use decide::{Held, PodAction, decide_pod};
pub use election::{ElectionError, Elector};
pub use kubeio::Events;
pub use ledger::{Recorded, recorded_pods};
pub use metrics::Metrics;

use crate::reconcile::{self, ApplyOptions};
use crate::subnets::Reserved;
use controller::{Controller, Parts};
use rovn_api::subnet::{self, Subnet};
use watch::{Kind, slim_metadata, slim_pod, spawn_reflector};
use world::{Caches, Settings};

/// How often a replica that does not lead retries the Lease.
const ELECTION_RETRY: Duration = Duration::from_secs(1);

/// Runs the controller until `shutdown` resolves (returns Ok, the Lease released) or
/// leadership is lost or the controller cannot go on (returns Err; the process should exit
/// non-zero so a fresh start rebuilds everything from the API).
pub async fn run(
    config: RunConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (stop_tx, stop_rx) = signal::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let standby = Arc::new(AtomicBool::new(false));
    let (plans_tx, plans) = mpsc::unbounded_channel();
    if let Some(addr) = config.listen {
        let health = http::Health {
            metrics: metrics.clone(),
            ready: ready.clone(),
            standby: standby.clone(),
            plans: plans_tx,
        };
        let bound = http::serve(addr, health, stopped())
            .await
            .with_context(|| format!("listening on {addr}"))?;
        tracing::info!(%bound, "serving /metrics /healthz /readyz");
    }

    let kube = kube_client(&config.kube).await?;
    ensure_crd(&kube).await;
    let nb = start_nb(&config)?;

    let mut elector = config
        .election
        .clone()
        .map(|e| Elector::new(kube.clone(), e));
    if let Some(elector) = elector.as_mut() {
        standby.store(true, std::sync::atomic::Ordering::Release);
        let acquired = tokio::select! {
            _ = elector.acquire(ELECTION_RETRY) => true,
            _ = stopped() => false,
        };
        standby.store(false, std::sync::atomic::Ordering::Release);
        if !acquired {
            return Ok(());
        }
    }
    metrics.leader.set(1);

    // The Lease is renewed from the moment it is taken: waiting for the caches and NB can take
    // longer than its duration, and a replica that let it lapse there would go on to allocate
    // beside the next leader.
    let outward = Outward {
        metrics: &metrics,
        ready: &ready,
        started,
        plans,
    };
    let work = lead(&config, kube, nb, outward, stopped);
    let result = match elector.as_mut() {
        Some(elector) => tokio::select! {
            r = work => r,
            lost = elector.keep() => Err(anyhow!(lost)),
        },
        None => work.await,
    };
    ready.store(false, std::sync::atomic::Ordering::Release);
    metrics.leader.set(0);
    if result.is_ok()
        && let Some(elector) = elector.as_mut()
    {
        elector.release().await;
    }
    result
}

/// What the leader shows outside: metrics, readiness, its start time and the dry-run requests
/// of the HTTP endpoints, which exist before it leads.
struct Outward<'a> {
    metrics: &'a Metrics,
    ready: &'a Arc<AtomicBool>,
    started: Instant,
    plans: mpsc::UnboundedReceiver<http::PlanRequest>,
}

/// What the leader does: fill the caches, wait for the NB replica, then run the controller
/// until `stopped` resolves or it cannot go on.
async fn lead<F: Future<Output = ()>>(
    config: &RunConfig,
    kube: kube::Client,
    nb: rovn_ovsdb::Client,
    outward: Outward<'_>,
    stopped: impl Fn() -> F,
) -> anyhow::Result<()> {
    let Outward {
        metrics,
        ready,
        started,
        plans,
    } = outward;
    // The caches fill while the NB replica syncs: the two initial loads overlap.
    let (notes_tx, notes_rx) = mpsc::unbounded_channel();
    let caches = Caches {
        pods: spawn_reflector(
            Api::<Pod>::all(kube.clone()),
            Kind::Pod,
            notes_tx.clone(),
            slim_pod,
        ),
        nodes: spawn_reflector(
            Api::<Node>::all(kube.clone()),
            Kind::Node,
            notes_tx.clone(),
            |_| {},
        ),
        subnets: spawn_reflector(
            Api::<Subnet>::all(kube.clone()),
            Kind::Subnet,
            notes_tx.clone(),
            |_| {},
        ),
        services: spawn_reflector(
            Api::<Service>::all(kube.clone()),
            Kind::Service,
            notes_tx.clone(),
            slim_metadata,
        ),
        slices: spawn_reflector(
            Api::<EndpointSlice>::all(kube.clone()),
            Kind::EndpointSlice,
            notes_tx.clone(),
            slim_metadata,
        ),
        policies: spawn_reflector(
            Api::<NetworkPolicy>::all(kube.clone()),
            Kind::NetworkPolicy,
            notes_tx.clone(),
            slim_metadata,
        ),
        namespaces: spawn_reflector(
            Api::<Namespace>::all(kube.clone()),
            Kind::Namespace,
            notes_tx,
            slim_metadata,
        ),
    };

    loop {
        tokio::select! {
            r = nb.wait_synced(Duration::from_secs(5)) => match r {
                Ok(()) => break,
                Err(e) => tracing::warn!(error = %e, "waiting for NB"),
            },
            _ = stopped() => return Ok(()),
        }
    }

    let identity = config.election.as_ref().map(|e| e.identity.clone());
    let controller = Controller::new(Parts {
        settings: Settings {
            join_cidr: config.join_cidr.trunc(),
            reserved: Reserved {
                join: config.join_cidr.trunc(),
                service: config.service_cidr.trunc(),
            },
            default_cidr: config.default_cidr,
            default_gateway: config.default_gateway,
            default_exclude_ips: config.default_exclude_ips.clone(),
            default_nat_outgoing: config.default_nat_outgoing,
            apply: ApplyOptions {
                max_ops_per_transaction: config.max_ops_per_transaction.max(1),
                ..ApplyOptions::default()
            },
            max_concurrent_patches: config.max_concurrent_patches,
            resync_interval: config.resync_interval,
        },
        kube: kube.clone(),
        nb,
        caches,
        notes: notes_rx,
        events: kubeio::Events::new(kube.clone(), identity),
        metrics: metrics.clone(),
        ready: ready.clone(),
        started,
        plans,
    })?;

    controller.run(stopped()).await
}

async fn kube_client(source: &KubeSource) -> anyhow::Result<kube::Client> {
    match source {
        KubeSource::Client(client) => Ok(client.clone()),
        KubeSource::Infer => kube::Client::try_default()
            .await
            .context("building a Kubernetes client from the environment"),
        KubeSource::Kubeconfig(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            let config =
                kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await
                    .with_context(|| format!("kubeconfig {}", path.display()))?;
            kube::Client::try_from(config)
                .with_context(|| format!("Kubernetes client for {}", path.display()))
        }
    }
}

/// Installs the Subnet CRD when the cluster lacks it, so a bare API server (the lab's, a
/// benchmark's) works without a separate step. Without permission it only logs.
async fn ensure_crd(client: &kube::Client) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let definition = subnet::crd();
    let name = definition.metadata.name.clone().unwrap_or_default();
    match api.get_opt(&name).await {
        Ok(Some(_)) => {}
        Ok(None) => match api.create(&PostParams::default(), &definition).await {
            Ok(_) => tracing::info!(crd = %name, "installed the Subnet CRD"),
            Err(e) => tracing::warn!(crd = %name, error = %e, "installing the Subnet CRD"),
        },
        Err(e) => tracing::warn!(crd = %name, error = %e, "checking for the Subnet CRD"),
    }
}

fn start_nb(config: &RunConfig) -> anyhow::Result<rovn_ovsdb::Client> {
    let remotes = config
        .nb_remotes
        .iter()
        .map(|r| {
            r.trim()
                .parse::<Remote>()
                .with_context(|| format!("NB remote {r:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if remotes.is_empty() {
        anyhow::bail!("no NB remote given");
    }
    if config.nb_tls.is_none()
        && let Some(ssl) = remotes.iter().find(|r| matches!(r, Remote::Ssl { .. }))
    {
        anyhow::bail!("NB remote {ssl} is ssl: give --private-key, --certificate and --ca-cert");
    }
    let mut nb = ClientConfig::new("OVN_Northbound", remotes);
    nb.tls = config.nb_tls.clone();
    nb.tables = reconcile::monitored_tables();
    nb.indexes = reconcile::indexes();
    nb.leader_only = true;
    rovn_ovsdb::Client::start(nb).context("starting the NB client")
}
