//! The node's own port `ovn0` on the join network: the OVS internal port bound to
//! `node-<node>`, its address, and routes to every accepted pod Subnet that does not overlap
//! the node's own networks and to the Service CIDR via the join gateway, kept in step with
//! Subnets and with the node's addresses and routes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::ObjectReference;
use rovn_api::annotations::Ipv4NodeJoin;
use tokio::sync::watch;

use super::kube::events::PodEvents;
use super::ovs::pod_port::{NODE_PORT, ensure_node_port_ops};
use super::ovs::settings::INTEGRATION_BRIDGE;
use super::ovs::{Ovs, OvsError};
use crate::netdev::{self, HostNetwork};

/// How long to wait for OVS to create the `ovn0` device after the port is added.
const DEVICE_WAIT: Duration = Duration::from_secs(20);
/// How often the node's addresses and routes are read again while no Subnet changes, so an
/// address or route added later stops a Subnet from being routed over it.
const HOST_RECHECK: Duration = Duration::from_secs(30);

/// A Subnet the agent does not route because its CIDR overlaps one of the node's networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSubnet {
    /// The Subnet's name.
    pub name: String,
    /// Its (accepted) CIDR.
    pub cidr: Ipv4Net,
    /// The first of the node's addresses or routes it overlaps.
    pub overlap: HostNetwork,
}

impl SkippedSubnet {
    /// The sentence logged and published as the Event's note.
    pub fn message(&self) -> String {
        format!(
            "Subnet/{} ({}) is not routed from this node through {NODE_PORT}: it overlaps the node's {}",
            self.name, self.cidr, self.overlap
        )
    }
}

/// What `ovn0` gets: the routes to install and the Subnets left out, with why.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoutePlan {
    /// Every route `ovn0` carries (see [`routes`]).
    pub routes: Vec<Ipv4Net>,
    /// Subnets whose CIDR overlaps the node's own networks, by name.
    pub skipped: Vec<SkippedSubnet>,
}

/// Splits the routed Subnets (name → CIDR) into those `ovn0` routes and those that overlap one
/// of `host`'s networks (pure): a Subnet routed over the node's own network would cut the node
/// off from it. The Service CIDR is the agent's own configuration, not an API object, and is
/// always routed.
pub fn plan(
    subnets: &BTreeMap<String, Ipv4Net>,
    service_cidr: Ipv4Net,
    join: &Ipv4NodeJoin,
    host: &[HostNetwork],
) -> RoutePlan {
    let mut clean = BTreeSet::new();
    let mut skipped = Vec::new();
    for (name, cidr) in subnets {
        match host.iter().find(|network| network.overlaps(*cidr)) {
            Some(overlap) => skipped.push(SkippedSubnet {
                name: name.clone(),
                cidr: *cidr,
                overlap: overlap.clone(),
            }),
            None => {
                clean.insert(cidr.trunc());
            }
        }
    }
    RoutePlan {
        routes: routes(&clean, service_cidr, join),
        skipped,
    }
}

/// The skipped Subnets of `current` that `previous` did not already report (pure): each
/// Subnet is reported once per CIDR and overlapping network, not on every re-check.
pub fn newly_skipped<'a>(
    previous: &[SkippedSubnet],
    current: &'a [SkippedSubnet],
) -> Vec<&'a SkippedSubnet> {
    current
        .iter()
        .filter(|skip| !previous.contains(skip))
        .collect()
}

/// Reports skipped Subnets as a log line and a Warning Event on the Node, each once per reason.
pub struct SkipReporter {
    events: PodEvents,
    node: ObjectReference,
    reported: Vec<SkippedSubnet>,
}

impl SkipReporter {
    /// A reporter publishing on `node` (the agent's own Node).
    pub fn new(events: PodEvents, node: ObjectReference) -> SkipReporter {
        SkipReporter {
            events,
            node,
            reported: Vec::new(),
        }
    }

    /// Logs and publishes the Subnets of `skipped` not reported yet; a Subnet that stops being
    /// skipped is forgotten, so it is reported again if it overlaps again.
    pub async fn report(&mut self, skipped: &[SkippedSubnet]) {
        for skip in newly_skipped(&self.reported, skipped) {
            let message = skip.message();
            tracing::warn!(
                subnet = format!("Subnet/{}", skip.name),
                cidr = %skip.cidr,
                overlap = %skip.overlap,
                "{message}"
            );
            self.events
                .warn_on(&self.node, "SubnetNotRouted", "RouteSubnet", &message)
                .await;
        }
        self.reported = skipped.to_vec();
    }
}

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

/// The [`plan`] for `subnets` against the node's networks as they are now.
pub async fn plan_now(
    join: &Ipv4NodeJoin,
    service_cidr: Ipv4Net,
    subnets: &BTreeMap<String, Ipv4Net>,
) -> anyhow::Result<RoutePlan> {
    let host = netdev::host_networks()
        .await
        .context("reading the node's addresses and routes")?;
    Ok(plan(subnets, service_cidr, join, &host))
}

/// Configures `ovn0` with the [`plan_now`] for `subnets` and returns the plan, so the caller can
/// report what was skipped.
pub async fn apply(
    join: &Ipv4NodeJoin,
    mtu: u32,
    service_cidr: Ipv4Net,
    subnets: &BTreeMap<String, Ipv4Net>,
) -> anyhow::Result<RoutePlan> {
    let plan = plan_now(join, service_cidr, subnets).await?;
    configure(join, mtu, &plan.routes).await?;
    Ok(plan)
}

/// Re-plans the routes whenever the Subnet set changes, and every [`HOST_RECHECK`] for changes
/// of the node's own networks, starting from the `configured` ones start-up put in place, and
/// configures `ovn0` when they differ; runs until the watch ends. Nothing is configured while
/// the watch holds no Subnet list.
pub async fn follow_subnets(
    join: Ipv4NodeJoin,
    mtu: u32,
    service_cidr: Ipv4Net,
    mut subnets: watch::Receiver<Option<BTreeMap<String, Ipv4Net>>>,
    configured: Vec<Ipv4Net>,
    mut reporter: SkipReporter,
) {
    let mut applied = configured;
    loop {
        let listed = subnets.borrow_and_update().clone();
        if let Some(listed) = listed {
            let updated = match plan_now(&join, service_cidr, &listed).await {
                Ok(plan) if plan.routes == applied => Ok(plan),
                Ok(plan) => configure(&join, mtu, &plan.routes).await.map(|()| plan),
                Err(e) => Err(e),
            };
            match updated {
                Ok(plan) => {
                    if plan.routes != applied {
                        tracing::info!(routes = ?plan.routes, "ovn0 routes updated");
                        applied = plan.routes;
                    }
                    reporter.report(&plan.skipped).await;
                }
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "updating ovn0 routes; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            }
        }
        tokio::select! {
            changed = subnets.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(HOST_RECHECK) => {}
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

    fn host(net: &str, device: &str) -> HostNetwork {
        HostNetwork {
            net: net.parse().unwrap(),
            source: netdev::HostNetworkSource::Address {
                device: device.to_string(),
            },
        }
    }

    fn test_join() -> Ipv4NodeJoin {
        Ipv4NodeJoin {
            ip: Ipv4Addr::new(100, 64, 0, 2),
            mac: rovn_api::MacAddr([0x0a, 0x58, 100, 64, 0, 2]),
            cidr: "100.64.0.0/16".parse().unwrap(),
            gateway: Ipv4Addr::new(100, 64, 0, 1),
        }
    }

    #[test]
    fn subnets_overlapping_the_node_networks_are_skipped_with_the_overlap() {
        let subnets: BTreeMap<String, Ipv4Net> = [
            ("clean", "10.16.0.0/16"),
            ("holds-eth0", "10.250.0.0/16"),
            ("everything", "0.0.0.0/1"),
        ]
        .iter()
        .map(|(n, c)| (n.to_string(), c.parse().unwrap()))
        .collect();
        let node = [host("10.250.1.10/24", "eth0")];
        let p = plan(
            &subnets,
            "10.96.0.0/12".parse().unwrap(),
            &test_join(),
            &node,
        );
        let text: Vec<String> = p.routes.iter().map(|n| n.to_string()).collect();
        assert_eq!(text, ["10.16.0.0/16", "10.96.0.0/12"]);
        let skipped: Vec<(&str, String)> = p
            .skipped
            .iter()
            .map(|s| (s.name.as_str(), s.overlap.to_string()))
            .collect();
        assert_eq!(
            skipped,
            [
                ("everything", "address 10.250.1.10/24 on eth0".to_string()),
                ("holds-eth0", "address 10.250.1.10/24 on eth0".to_string()),
            ]
        );
        assert!(
            p.skipped[1]
                .message()
                .starts_with("Subnet/holds-eth0 (10.250.0.0/16) is not routed"),
            "{}",
            p.skipped[1].message()
        );
    }

    #[test]
    fn each_skip_is_reported_once_per_reason() {
        let skip = |name: &str, overlap: &str| SkippedSubnet {
            name: name.to_string(),
            cidr: "192.168.0.0/16".parse().unwrap(),
            overlap: host(overlap, "eth0"),
        };
        let first = vec![skip("a", "192.168.1.10/24")];
        assert_eq!(newly_skipped(&[], &first).len(), 1);
        assert!(newly_skipped(&first, &first).is_empty());
        let moved = vec![skip("a", "192.168.2.10/24"), skip("b", "192.168.1.10/24")];
        let new: Vec<&str> = newly_skipped(&first, &moved)
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(new, ["a", "b"]);
    }
}
