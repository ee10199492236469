//! The agent's start-up sequence and lifetime: chassis settings, `br-int`, the chassis
//! annotation, restart cleanup, the CNI server, `ovn0` and its routes, the conflist, ready.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;
use kube::{Api, Resource};

use super::config::AgentConfig;
use super::kube::{self as agent_kube, events::PodEvents, node, subnets};
use super::metrics::{self, Metrics};
use super::node_port::SkipReporter;
use super::ovs::Ovs;
use super::ovs::pod_port::NODE_PORT;
use super::ovs::settings::{self, ChassisSettings};
use super::state::AgentState;
use super::{announce, cleanup, conflist, gateway, node_port, server};
use crate::gateway::Nft;
use crate::netdev;

/// How long start-up waits for the first OVS sync.
const OVS_SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// How long start-up keeps trying to read its Node.
const NODE_READ_PATIENCE: Duration = Duration::from_secs(60);

/// The pod MTU: the flag, else the underlay interface's MTU minus the tunnel overhead.
async fn pod_mtu(config: &AgentConfig, encap_ip: std::net::Ipv4Addr) -> anyhow::Result<u32> {
    if let Some(mtu) = config.mtu {
        return Ok(mtu);
    }
    let underlay = netdev::mtu_of_address(encap_ip).await.with_context(|| {
        format!("finding the MTU of the interface holding {encap_ip} (pass --mtu to skip)")
    })?;
    underlay
        .checked_sub(config.encap_type.overhead())
        .filter(|m| *m >= 576)
        .with_context(|| {
            format!("the underlay MTU {underlay} leaves no room for the tunnel overhead")
        })
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(config: AgentConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    let metrics = Arc::new(Metrics::new());
    metrics::serve(config.listen, metrics.clone()).await?;

    let kube = agent_kube::client(config.kubeconfig.as_deref()).await?;
    let nodes: Api<Node> = Api::all(kube.clone());
    let this_node = first_read_of_node(&nodes, &config.node_name).await?;
    let encap_ip = match config.encap_ip {
        Some(ip) => ip,
        None => rovn_api::node::internal_ipv4(&this_node).with_context(|| {
            format!(
                "Node {} has no IPv4 InternalIP; pass --encap-ip",
                config.node_name
            )
        })?,
    };

    let ovs = Ovs::connect(&config.ovs_db, OVS_SYNC_TIMEOUT).await?;
    let chassis = ChassisSettings {
        default_system_id: config.node_name.clone(),
        ovn_remote: config.ovn_remote.clone(),
        encap_type: config.encap_type,
        encap_ip,
        datapath_type: config.datapath_type,
        tls: config.ovn_tls.clone(),
    };
    let (system_id, writes) = settings::apply(&ovs, &chassis).await?;
    tracing::info!(
        system_id,
        operations = writes,
        "chassis settings and br-int in place"
    );
    node::annotate_chassis(&nodes, &this_node, &system_id).await?;

    let mtu = pod_mtu(&config, encap_ip).await?;
    let events = PodEvents::new(kube.clone(), &config.node_name);
    let state = Arc::new(AgentState::new(
        config.clone(),
        kube.clone(),
        ovs,
        metrics.clone(),
        events,
        mtu,
    ));

    match cleanup::remove_orphans(&state).await {
        Ok((ports, veths)) => tracing::info!(ports, veths, "restart cleanup done"),
        Err(e) => tracing::warn!(
            error = format!("{e:#}"),
            "restart cleanup failed; continuing"
        ),
    }
    let listener = server::bind(&config.cni_socket)?;
    tokio::spawn(server::serve(listener, state.clone()));
    tracing::info!(socket = %config.cni_socket.display(), mtu, "CNI server listening");

    let join = node::wait_join(&nodes, &config.node_name).await?;
    node_port::ensure_ovs_port(&state.ovs, &config.node_name, &join).await?;
    let mut subnet_cidrs = subnets::watch_cidrs(kube.clone());
    let listed = tokio::time::timeout(
        NODE_READ_PATIENCE,
        subnet_cidrs.wait_for(Option::is_some),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(|listed| listed.clone().unwrap_or_default())
    .with_context(|| {
        format!("no Subnet list from the API within {NODE_READ_PATIENCE:?}; ovn0's routes left as they are")
    })?;
    let first = node_port::apply(&join, mtu, config.service_cidr, &listed).await?;
    let mut reporter = SkipReporter::new(state.events.clone(), this_node.object_ref(&()));
    reporter.report(&first.skipped).await;
    if config.gateway {
        let node_ip = rovn_api::node::internal_ipv4(&this_node).unwrap_or(encap_ip);
        let gateway_node = gateway::NodeGateway {
            node_name: config.node_name.clone(),
            node_ip,
            join_ip: join.ip,
            join_cidr: join.cidr,
            service_cidr: config.service_cidr,
            ovn_device: NODE_PORT.to_string(),
        };
        tokio::spawn(gateway::run(
            kube.clone(),
            gateway_node,
            state.pods.clone(),
            state.pods_changed.clone(),
            Nft::default(),
            metrics.clone(),
        ));
    }
    if let Some(pool) = config.lb_cidr {
        let node_ip = rovn_api::node::internal_ipv4(&this_node).unwrap_or(encap_ip);
        tokio::spawn(announce::run(
            kube.clone(),
            config.node_name.clone(),
            node_ip,
            pool,
        ));
    }
    tokio::spawn(node_port::follow_subnets(
        join.clone(),
        mtu,
        config.service_cidr,
        subnet_cidrs,
        first.routes,
        reporter,
    ));

    conflist::install_cni_binary(&config.cni_bin_dir)?;
    conflist::install_conflist(
        &config.cni_conf_dir,
        &config.cni_conf_name,
        &config.cni_socket,
    )?;
    state.set_ready();
    tracing::info!(
        ready_ms = started.elapsed().as_millis() as u64,
        node = config.node_name,
        join_ip = %join.ip,
        "ready"
    );

    shutdown_signal().await?;
    tracing::info!("stopping");
    Ok(())
}

/// Reads the Node, retrying for a while: the agent may start before the API server answers
/// or before the Node registers.
async fn first_read_of_node(nodes: &Api<Node>, name: &str) -> anyhow::Result<Node> {
    let deadline = Instant::now() + NODE_READ_PATIENCE;
    loop {
        match node::get(nodes, name).await {
            Ok(n) => return Ok(n),
            Err(e) if Instant::now() < deadline => {
                tracing::warn!(error = format!("{e:#}"), "reading the Node; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
