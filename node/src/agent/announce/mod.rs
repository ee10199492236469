//! Announcing LoadBalancer addresses: the controller gives each of rovn's LoadBalancer Services
//! an address of its pool and names one node in the Service's `rovn.io/lb-node` annotation;
//! that node's agent puts the address (a /32) on its underlay interface, so its kernel answers
//! ARP for it (the `rovn` table then DNATs the packets as for any LoadBalancer address), and
//! sends a gratuitous ARP when it takes an address over. An address the annotation moves away
//! is removed at the next sync, so only one node answers. (A dummy device would keep them
//! apart from the node's own addresses, but needs the `dummy` kernel module, which nodes
//! cannot be assumed to have; the pool marks rovn's addresses just as well.)

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use rovn_api::names;
use tokio::sync::Notify;

use super::gateway::feed::reflect;
use crate::netdev;

/// How long the loop waits after a change for more before it syncs.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// How often the device is synced even without changes (repairs edits by others).
const RESYNC: Duration = Duration::from_secs(30);
/// How often a new announcement's gratuitous ARP is sent (a lost frame is not fatal: the
/// neighbours ask again when their entry goes stale).
const GARP_REPEATS: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(500),
    Duration::from_secs(2),
];

/// The addresses this node announces (pure): those of LoadBalancer Services whose announcer
/// annotation names `node`, from their status, and only inside `pool`.
pub fn announced<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    node: &str,
    pool: Ipv4Net,
) -> BTreeSet<Ipv4Addr> {
    services
        .into_iter()
        .filter(|s| s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"))
        .filter(|s| {
            s.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(names::LB_NODE_ANNOTATION))
                .is_some_and(|n| n == node)
        })
        .flat_map(|s| {
            s.status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.clone())
                .unwrap_or_default()
        })
        .filter_map(|ingress| ingress.ip?.parse::<Ipv4Addr>().ok())
        .filter(|ip| pool.contains(ip))
        .collect()
}

/// Keeps the underlay interface holding what [`announced`] says, until the agent stops. Nothing is changed
/// before the first list of Services (an empty device would withdraw every address during a
/// restart). After a restart every address is announced again once.
pub async fn run(client: kube::Client, node: String, node_ip: Ipv4Addr, pool: Ipv4Net) {
    let changed = Arc::new(Notify::new());
    let services = reflect::<Service>(client, changed.clone());
    if services.wait_until_ready().await.is_err() {
        tracing::warn!("the Service watch ended before its first list; announcing nothing");
        return;
    }
    let mut first = true;
    loop {
        let wanted = announced(services.state().iter().map(AsRef::as_ref), &node, pool);
        match netdev::announce_addresses(node_ip, pool, &wanted).await {
            Ok(added) => {
                let fresh: Vec<Ipv4Addr> = if first {
                    wanted.iter().copied().collect()
                } else {
                    added
                };
                first = false;
                for ip in fresh {
                    tracing::info!(%ip, "announcing LoadBalancer address");
                    tokio::spawn(announce_takeover(node_ip, ip));
                }
            }
            Err(e) => tracing::warn!(error = %e, "announcing LoadBalancer addresses; retrying"),
        }
        let _ = tokio::time::timeout(RESYNC, changed.notified()).await;
        tokio::time::sleep(DEBOUNCE).await;
    }
}

/// Gratuitous ARPs for `ip`, repeated a few times.
async fn announce_takeover(node_ip: Ipv4Addr, ip: Ipv4Addr) {
    let mut waited = Duration::ZERO;
    for at in GARP_REPEATS {
        tokio::time::sleep(at.saturating_sub(waited)).await;
        waited = at;
        if let Err(e) = netdev::gratuitous_arp(node_ip, ip).await {
            tracing::warn!(%ip, error = %e, "gratuitous ARP");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(node: Option<&str>, kind: &str, ips: &[&str]) -> Service {
        let mut metadata = serde_json::json!({"name": "s", "namespace": "ns"});
        if let Some(node) = node {
            metadata["annotations"] = serde_json::json!({names::LB_NODE_ANNOTATION: node});
        }
        let ingress: Vec<_> = ips.iter().map(|ip| serde_json::json!({"ip": ip})).collect();
        serde_json::from_value(serde_json::json!({
            "metadata": metadata,
            "spec": {"type": kind},
            "status": {"loadBalancer": {"ingress": ingress}},
        }))
        .unwrap()
    }

    #[test]
    fn a_node_announces_only_pool_addresses_assigned_to_it() {
        let pool: Ipv4Net = "172.30.0.240/29".parse().unwrap();
        let services = [
            service(Some("n1"), "LoadBalancer", &["172.30.0.241"]),
            service(Some("n2"), "LoadBalancer", &["172.30.0.242"]),
            service(Some("n1"), "LoadBalancer", &["172.30.0.1", "bad"]),
            service(Some("n1"), "ClusterIP", &["172.30.0.243"]),
            service(None, "LoadBalancer", &["172.30.0.244"]),
        ];
        let mine = announced(services.iter(), "n1", pool);
        assert_eq!(mine, BTreeSet::from([Ipv4Addr::new(172, 30, 0, 241)]));
    }
}
