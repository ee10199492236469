//! What keeps the `rovn` table current: reflectors of Services, EndpointSlices and Subnets (the
//! node's pods come from the agent's own pod reflector), one change signal for all of them, and a
//! loop that recomputes the desired state soon after a change and sends the kernel only the
//! difference from what it last applied; changes that arrive while a sync runs are coalesced
//! into the next one, so a burst costs a few updates, not one per event.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use rovn_api::subnet::Subnet;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use super::convert::{self, HealthCheck, SERVICE_NAME_LABEL, Skipped};
use super::health::HealthServers;
use crate::agent::metrics::Metrics;
use crate::gateway::{self, GatewayState, Nft};

/// How long the loop waits after a change for the events that come with it (a Service and its
/// EndpointSlice, a pod's several updates) before it computes: short, as a change must be in
/// the table within the 50 ms the gateway's goal allows.
pub const SETTLE: Duration = Duration::from_millis(5);
/// How often the table is read back even without changes, to repair edits by others.
pub const RESYNC: Duration = Duration::from_secs(60);
/// How long to wait before retrying a failed sync.
const RETRY: Duration = Duration::from_secs(2);

/// What the node contributes to its gateway state, fixed for the agent's lifetime.
#[derive(Debug, Clone)]
pub struct NodeGateway {
    /// The Node's name (endpoints on it are local).
    pub node_name: String,
    /// The node's IP: NodePorts answer on it.
    pub node_ip: Ipv4Addr,
    /// The node's join address.
    pub join_ip: Ipv4Addr,
    /// The join network.
    pub join_cidr: Ipv4Net,
    /// The Service CIDR.
    pub service_cidr: Ipv4Net,
    /// The device towards OVN.
    pub ovn_device: String,
}

/// The objects the state is computed from.
pub struct Inputs<'a> {
    /// Every Service.
    pub services: &'a [Arc<Service>],
    /// Every EndpointSlice.
    pub slices: &'a [Arc<EndpointSlice>],
    /// Every Subnet.
    pub subnets: &'a [Arc<Subnet>],
    /// The pods bound to this node.
    pub pods: &'a [Arc<Pod>],
}

/// One computation's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The table's state.
    pub state: GatewayState,
    /// The health checks to serve.
    pub health: Vec<HealthCheck>,
    /// What was left out, and why.
    pub skipped: Vec<Skipped>,
}

/// The desired gateway (pure): Services (sorted by name) claim frontends before hostPorts
/// (pods sorted by name), so who wins a conflict does not depend on watch order.
pub fn desired(node: &NodeGateway, inputs: &Inputs<'_>) -> Desired {
    let mut skipped = Vec::new();
    let mut slices_of: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in inputs.slices {
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL));
        if let (Some(namespace), Some(service)) = (slice.metadata.namespace.as_deref(), service) {
            slices_of
                .entry((namespace, service.as_str()))
                .or_default()
                .push(slice);
        }
    }
    let key = |m: &kube::api::ObjectMeta| {
        (
            m.namespace.clone().unwrap_or_default(),
            m.name.clone().unwrap_or_default(),
        )
    };
    let mut services: Vec<&Service> = inputs.services.iter().map(|s| s.as_ref()).collect();
    services.sort_by_key(|s| key(&s.metadata));
    let mut pods: Vec<&Pod> = inputs.pods.iter().map(|p| p.as_ref()).collect();
    pods.sort_by_key(|p| key(&p.metadata));

    let mut forwards = Vec::new();
    let mut health = Vec::new();
    let none = Vec::new();
    for service in services {
        let namespace = service.metadata.namespace.as_deref().unwrap_or("");
        let name = service.metadata.name.as_deref().unwrap_or("");
        let slices = slices_of.get(&(namespace, name)).unwrap_or(&none);
        forwards.extend(convert::service_forwards(
            service,
            slices,
            &node.node_name,
            node.node_ip,
            &mut skipped,
        ));
        health.extend(convert::health_check(
            service,
            slices,
            &node.node_name,
            &mut skipped,
        ));
    }
    for pod in pods {
        forwards.extend(convert::host_port_forwards(pod, node.node_ip, &mut skipped));
    }
    let forwards = convert::merge(forwards, &mut skipped);
    let state = GatewayState {
        node_ip: node.node_ip,
        join_ip: node.join_ip,
        ovn_device: node.ovn_device.clone(),
        pod_ranges: convert::pod_ranges(inputs.subnets.iter().map(|s| s.as_ref())),
        join_cidr: node.join_cidr,
        service_cidr: node.service_cidr,
        forwards,
    };
    Desired {
        state,
        health,
        skipped,
    }
}

/// A cache of every `K`, kept by a watch that pokes `changed` on each event.
pub fn reflect<K>(client: kube::Client, changed: Arc<Notify>) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = Api::all(client);
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|object| object.meta_mut().managed_fields = None)
        .reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(e) => tracing::warn!(
                    kind = K::kind(&()).as_ref(),
                    error = %e,
                    "watching for the gateway; retrying"
                ),
            }
        }
    });
    reader
}

/// Logs a warning when the node does not forward IPv4: the table is right, but without
/// forwarding neither egress from pods nor NodePorts into OVN pass the node. The agent does not
/// switch it on itself; whoever sets up the node owns its sysctls.
fn warn_without_forwarding() {
    const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
    match std::fs::read_to_string(PATH) {
        Ok(value) if value.trim() == "1" => {}
        Ok(value) => tracing::warn!(
            ip_forward = value.trim(),
            "IPv4 forwarding is off on this node: pods' egress and NodePorts need net.ipv4.ip_forward=1"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot read {PATH}"),
    }
}

/// Runs the gateway until the agent stops: waits for the first list of every input (an empty
/// table built before then would drop every NodePort), then keeps the table, and the health
/// checks, equal to what the inputs say.
pub async fn run(
    client: kube::Client,
    node: NodeGateway,
    pods: Store<Pod>,
    changed: Arc<Notify>,
    nft: Nft,
    metrics: Arc<Metrics>,
) {
    let services: Store<Service> = reflect(client.clone(), changed.clone());
    let slices: Store<EndpointSlice> = reflect(client.clone(), changed.clone());
    let subnets: Store<Subnet> = reflect(client, changed.clone());
    for ready in [
        services.wait_until_ready().await,
        slices.wait_until_ready().await,
        subnets.wait_until_ready().await,
        pods.wait_until_ready().await,
    ] {
        if ready.is_err() {
            tracing::warn!("a gateway input's watch ended before its first list; gateway stopped");
            return;
        }
    }
    warn_without_forwarding();
    let mut health = HealthServers::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let mut applied: Option<GatewayState> = None;
    let mut reported: BTreeSet<Skipped> = BTreeSet::new();
    let mut resync = false;
    let mut pace = Pace::new();
    loop {
        let (services_now, slices_now, subnets_now, pods_now) = (
            services.state(),
            slices.state(),
            subnets.state(),
            pods.state(),
        );
        let wanted = desired(
            &node,
            &Inputs {
                services: &services_now,
                slices: &slices_now,
                subnets: &subnets_now,
                pods: &pods_now,
            },
        );
        let now: BTreeSet<Skipped> = wanted.skipped.iter().cloned().collect();
        for skip in now.difference(&reported) {
            tracing::warn!(
                object = skip.object,
                "gateway: {}: {}",
                skip.object,
                skip.reason
            );
        }
        reported = now;
        health.update(&wanted.health).await;
        if resync || applied.as_ref() != Some(&wanted.state) {
            // Read back at start, after a failure and on resync (a restart on a converged node
            // sends nothing, edits by others are repaired by a full rebuild); in between the
            // kernel holds what was last applied, so only the difference is sent.
            let started = Instant::now();
            let result = match applied.as_ref() {
                Some(last) if !resync => {
                    gateway::nft::apply_change(&nft, last, &wanted.state).await
                }
                _ => gateway::sync(&nft, &wanted.state).await,
            };
            let frontends = wanted.state.forwards.len();
            let took = started.elapsed();
            metrics.nft_sync(result.as_ref().ok().map(|o| o.applied), frontends, took);
            pace.finished(took);
            match result {
                Ok(outcome) => {
                    if outcome.applied {
                        tracing::info!(
                            frontends,
                            elements = outcome.elements,
                            took_ms = outcome.took.as_millis() as u64,
                            "nftables table rovn updated"
                        );
                    }
                    applied = Some(wanted.state);
                    resync = false;
                }
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "syncing the nftables table rovn; retrying"
                    );
                    // What the kernel holds is unknown now: read it back next time.
                    applied = None;
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        }
        tokio::select! {
            () = changed.notified() => tokio::time::sleep_until(pace.next().into()).await,
            () = tokio::time::sleep(RESYNC) => resync = true,
        }
    }
}

/// When the loop may sync again after a change: [`SETTLE`] after it, and no sooner after the
/// last sync ended than that one took. After a quiet spell a change goes out at once; in a
/// burst, syncs take at most about half the loop's time, and whatever arrives meanwhile (the
/// change signal keeps one wake-up) is coalesced into the next.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    ended: Instant,
    took: Duration,
}

impl Pace {
    /// No sync yet.
    pub fn new() -> Pace {
        Pace {
            ended: Instant::now(),
            took: Duration::ZERO,
        }
    }

    /// Records a sync that just ended after `took`.
    pub fn finished(&mut self, took: Duration) {
        self.ended = Instant::now();
        self.took = took;
    }

    /// When to compute after a change seen now.
    pub fn next(&self) -> Instant {
        (Instant::now() + SETTLE).max(self.ended + self.took)
    }
}

impl Default for Pace {
    fn default() -> Self {
        Pace::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::Target;
    use serde_json::json;

    fn node() -> NodeGateway {
        NodeGateway {
            node_name: "node1".into(),
            node_ip: Ipv4Addr::new(172, 30, 0, 11),
            join_ip: Ipv4Addr::new(100, 64, 0, 2),
            join_cidr: "100.64.0.0/16".parse().unwrap(),
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            ovn_device: "ovn0".into(),
        }
    }

    fn object<T: DeserializeOwned>(value: serde_json::Value) -> Arc<T> {
        Arc::new(serde_json::from_value(value).unwrap())
    }

    #[test]
    fn a_change_after_a_quiet_spell_goes_out_at_once_and_a_burst_waits_as_long_as_a_sync_took() {
        let pace = Pace::new();
        // Nothing synced yet: only the settle time.
        assert!(pace.next() <= Instant::now() + SETTLE);
        let mut pace = Pace::new();
        let took = Duration::from_secs(30);
        pace.finished(took);
        // Right after a long sync, the next waits about that long (not the settle time).
        assert!(pace.next() >= Instant::now() + took - Duration::from_secs(1));
        pace.finished(Duration::ZERO);
        assert!(pace.next() <= Instant::now() + SETTLE);
    }

    #[test]
    fn services_claim_frontends_before_host_ports_and_use_their_own_slices() {
        let services: Vec<Arc<Service>> = vec![
            object(
                json!({"metadata": {"namespace": "b", "name": "web"}, "spec": {
                "type": "NodePort", "externalTrafficPolicy": "Local", "clusterIP": "10.96.0.20",
                "ports": [{"port": 80, "nodePort": 30081}]}}),
            ),
            object(
                json!({"metadata": {"namespace": "a", "name": "web"}, "spec": {
                "type": "NodePort", "clusterIP": "10.96.0.10",
                "ports": [{"port": 80, "nodePort": 30080}]}}),
            ),
        ];
        let slices: Vec<Arc<EndpointSlice>> = vec![object(json!({
            "metadata": {"namespace": "a", "name": "web-1", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4", "ports": [{"port": 8080}],
            "endpoints": [{"addresses": ["10.16.0.5"], "nodeName": "node1"}]}))];
        let allocation = rovn_api::annotations::Ipv4PodAllocation {
            ip: "10.16.0.9".parse().unwrap(),
            mac: rovn_api::MacAddr([0x0a, 0x58, 10, 16, 0, 9]),
            cidr: "10.16.0.0/16".parse().unwrap(),
            gateway: "10.16.0.1".parse().unwrap(),
            switch: "ovn-default".into(),
        };
        let annotations = rovn_api::annotations::render_pod_allocation(&allocation.into());
        let pods: Vec<Arc<Pod>> = vec![object(json!({
            "metadata": {"namespace": "a", "name": "hp", "annotations": annotations},
            "spec": {"containers": [{"name": "c", "ports": [
                {"containerPort": 80, "hostPort": 30080}, {"containerPort": 81, "hostPort": 8000}]}]}}))];
        let wanted = desired(
            &node(),
            &Inputs {
                services: &services,
                slices: &slices,
                subnets: &[],
                pods: &pods,
            },
        );
        let targets: Vec<(u16, Target)> = wanted
            .state
            .forwards
            .iter()
            .map(|(f, t)| (f.port, t.clone()))
            .collect();
        assert_eq!(
            targets,
            [
                (8000, Target::HostPort("10.16.0.9:81".parse().unwrap())),
                (30080, Target::ClusterIp("10.96.0.10:80".parse().unwrap())),
                // b/web is Local and the slice of a/web is not its own: no endpoint here.
                (
                    30081,
                    Target::Local {
                        owner: "Service/b/web:80/tcp".into(),
                        endpoints: vec![]
                    }
                ),
            ]
        );
        assert_eq!(wanted.skipped.len(), 1, "{:?}", wanted.skipped);
        assert_eq!(wanted.skipped[0].object, "Pod/a/hp");
    }
}
