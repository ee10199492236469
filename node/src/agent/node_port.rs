//! The node's own port `ovn0` on the join network: the OVS internal port bound to
//! `node-<node>`, its address, and routes to every pod Subnet and the Service CIDR via the
//! join gateway, kept in step with Subnets.

use std::collections::BTreeSet;
use std::time::Duration;

use ipnet::Ipv4Net;
use rovn_api::annotations::Ipv4NodeJoin;
use tokio::sync::watch;

use super::ovs::pod_port::{NODE_PORT, ensure_node_port_ops};
use super::ovs::settings::INTEGRATION_BRIDGE;
use super::ovs::{Ovs, OvsError};
use crate::netdev;

/// How long to wait for OVS to create the `ovn0` device after the port is added.
const DEVICE_WAIT: Duration = Duration::from_secs(20);

/// The routes `ovn0` carries (pure): every Subnet CIDR and the Service CIDR, never the join
/// CIDR itself (it is on-link).
pub fn routes(
    subnets: &BTreeSet<Ipv4Net>,
    service_cidr: Ipv4Net,
    join: &Ipv4NodeJoin,
) -> Vec<Ipv4Net> {
    let mut all: BTreeSet<Ipv4Net> = subnets.clone();
    all.insert(service_cidr.trunc());
    all.remove(&join.cidr.trunc());
    all.into_iter().collect()
}

/// Adds `ovn0` to `br-int` (or fixes its binding) in OVS.
pub async fn ensure_ovs_port(ovs: &Ovs, node: &str, join: &Ipv4NodeJoin) -> Result<(), OvsError> {
    let snapshot = ovs.snapshot()?;
    let bridge = snapshot
        .bridge(INTEGRATION_BRIDGE)
        .ok_or_else(|| OvsError::State(format!("{INTEGRATION_BRIDGE} does not exist")))?;
    let ops = ensure_node_port_ops(&snapshot, bridge, node, join.mac);
    ovs.transact(&ops, "adding the node port ovn0").await?;
    Ok(())
}

/// Configures the `ovn0` device with the join address, MTU and `routes`.
pub async fn configure(join: &Ipv4NodeJoin, mtu: u32, routes: &[Ipv4Net]) -> anyhow::Result<()> {
    use anyhow::Context;
    let address = Ipv4Net::new(join.ip, join.cidr.prefix_len())
        .with_context(|| format!("join address {}/{}", join.ip, join.cidr.prefix_len()))?;
    netdev::configure_node_port(
        NODE_PORT,
        join.mac,
        address,
        mtu,
        routes,
        join.gateway,
        DEVICE_WAIT,
    )
    .await
    .with_context(|| format!("configuring {NODE_PORT} with {address} and routes {routes:?}"))
}

/// Re-applies the routes whenever the Subnet set changes, starting from the `configured` ones
/// start-up put in place; runs until the watch ends. Nothing is configured while the watch
/// holds no Subnet list.
pub async fn follow_subnets(
    join: Ipv4NodeJoin,
    mtu: u32,
    service_cidr: Ipv4Net,
    mut subnets: watch::Receiver<Option<BTreeSet<Ipv4Net>>>,
    configured: Vec<Ipv4Net>,
) {
    let mut applied = Some(configured);
    loop {
        let wanted = subnets
            .borrow_and_update()
            .as_ref()
            .map(|listed| routes(listed, service_cidr, &join));
        if let Some(wanted) = wanted
            && applied.as_ref() != Some(&wanted)
        {
            match configure(&join, mtu, &wanted).await {
                Ok(()) => {
                    tracing::info!(routes = ?wanted, "ovn0 routes updated");
                    applied = Some(wanted);
                }
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "updating ovn0 routes; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            }
        }
        if subnets.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn routes_cover_subnets_and_services_but_not_the_join_network() {
        let join = Ipv4NodeJoin {
            ip: Ipv4Addr::new(100, 64, 0, 2),
            mac: rovn_api::MacAddr([0x0a, 0x58, 100, 64, 0, 2]),
            cidr: "100.64.0.0/16".parse().unwrap(),
            gateway: Ipv4Addr::new(100, 64, 0, 1),
        };
        let subnets: BTreeSet<Ipv4Net> = ["10.16.0.0/16", "100.64.0.0/16", "10.20.0.0/24"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let r = routes(&subnets, "10.96.0.0/12".parse().unwrap(), &join);
        let text: Vec<String> = r.iter().map(|n| n.to_string()).collect();
        assert_eq!(text, ["10.16.0.0/16", "10.20.0.0/24", "10.96.0.0/12"]);
    }
}
