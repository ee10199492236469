//! CNI ADD: wait for the allocation, plug the veth, add the OVS port, wait for
//! ovn-controller, answer with the result.

use std::time::Instant;

use ipnet::Ipv4Net;
use rovn_api::Owner;
use serde_json::Value;

use super::required;
use super::result::{Attachment, add_result};
use crate::agent::errors::{self, AddStep, Failure};
use crate::agent::kube::pods::{self, PodWaitError};
use crate::agent::ovs::installed::wait_installed;
use crate::agent::ovs::pod_port::{
    FoundPodPort, PodPort, ensure_pod_port_ops, remove_ports_ops, rovn_pod_ports,
};
use crate::agent::ovs::settings::INTEGRATION_BRIDGE;
use crate::agent::state::AgentState;
use crate::cni::protocol::{CniCommand, CniRequest, k8s_args};
use crate::netdev::{self, PodInterfaceSpec};

fn pod_failure(e: PodWaitError) -> Failure {
    let msg = e.to_string();
    match e {
        PodWaitError::Timeout { .. } => {
            Failure::new(errors::TRY_AGAIN_LATER, msg).with_event("AllocationTimeout")
        }
        PodWaitError::Invalid { .. } => {
            Failure::new(errors::INVALID_ANNOTATIONS, msg).with_event("InvalidAnnotations")
        }
        PodWaitError::NotFound { .. } | PodWaitError::UidMismatch { .. } => {
            Failure::new(errors::POD_MISMATCH, msg)
        }
        PodWaitError::Watch { .. } => Failure::new(errors::KUBE_API_FAILURE, msg),
    }
}

/// Ports of other sandboxes of the same pod (pure): the runtime only replaces a pod's
/// sandbox when the old one is gone, so their ports are stale and would compete for the
/// pod's logical switch port.
pub fn superseded_ports(existing: &[FoundPodPort], port: &PodPort) -> Vec<FoundPodPort> {
    existing
        .iter()
        .filter(|p| {
            p.pod == (port.namespace.clone(), port.pod_name.clone())
                && p.container_id != port.container_id
                && p.name != port.name
        })
        .cloned()
        .collect()
}

/// Serves ADD.
pub async fn add(state: &AgentState, request: &CniRequest) -> Result<Value, Failure> {
    let started = Instant::now();
    let command = CniCommand::Add;
    let container_id = required(request.container_id.as_deref(), "a container id", command)?;
    let sandbox = required(request.netns.as_deref(), "a network namespace", command)?;
    let ifname = required(request.ifname.as_deref(), "an interface name", command)?;
    let (namespace, name) = request.pod().ok_or_else(|| {
        Failure::new(
            errors::MISSING_FIELD,
            "ADD request without K8S_POD_NAMESPACE and K8S_POD_NAME in CNI_ARGS",
        )
    })?;
    let uid = request.arg(k8s_args::POD_UID);
    let _in_flight = state.begin_add(container_id);

    let step = Instant::now();
    let (pod, allocation) = match pods::cached_allocation(&state.pods, namespace, name, uid) {
        Some(found) => found,
        None => pods::wait_allocation(
            state.kube.clone(),
            namespace,
            name,
            uid,
            state.config.allocation_timeout,
        )
        .await
        .map_err(pod_failure)?,
    };
    state.metrics.add_step(AddStep::Annotation, step.elapsed());

    let step = Instant::now();
    let host_name = netdev::host_veth_name(container_id);
    let address = Ipv4Net::new(allocation.ip, allocation.cidr.prefix_len()).map_err(|e| {
        Failure::new(
            errors::INVALID_ANNOTATIONS,
            format!("{}: {e}", Owner::pod(namespace, name)),
        )
    })?;
    let spec = PodInterfaceSpec {
        sandbox: sandbox.into(),
        ifname: ifname.to_string(),
        mac: allocation.mac,
        address,
        gateway: allocation.gateway,
        mtu: state.mtu,
        tx_checksum_offload: state.config.datapath_type.allows_tx_checksum_offload(),
    };
    let veth = netdev::create_pod_veth(&host_name, &spec)
        .await
        .map_err(|e| {
            Failure::new(
                errors::NETDEV_FAILURE,
                format!(
                    "{}: creating the veth {host_name}: {e}",
                    Owner::pod(namespace, name)
                ),
            )
        })?;
    state.metrics.add_step(AddStep::Veth, step.elapsed());

    // The sandbox end is configured while OVS and ovn-controller plug the host end: neither
    // needs the other, and waiting for ovn-installed is most of an ADD.
    let sandbox_end = async {
        let step = Instant::now();
        let configured = netdev::configure_sandbox_end(&spec).await.map_err(|e| {
            Failure::new(
                errors::NETDEV_FAILURE,
                format!(
                    "{}: configuring {ifname} in the sandbox: {e}",
                    Owner::pod(namespace, name)
                ),
            )
        });
        state.metrics.add_step(AddStep::Sandbox, step.elapsed());
        configured
    };
    let port = PodPort {
        name: host_name.clone(),
        pod_name: name.to_string(),
        namespace: namespace.to_string(),
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
        container_id: container_id.to_string(),
        mac: allocation.mac,
        ip: allocation.ip,
    };
    let plugged = plug_host_end(state, &port);
    let (configured, plugged) = tokio::join!(sandbox_end, plugged);
    configured?;
    let installed_took = plugged?;
    tracing::info!(
        pod = format!("{namespace}/{name}"),
        container = container_id,
        port = host_name,
        ip = %allocation.ip,
        total_ms = started.elapsed().as_millis() as u64,
        ovn_installed_ms = installed_took.as_millis() as u64,
        "pod plugged"
    );

    let attachment = Attachment {
        host_ifname: veth.host_name,
        host_mac: veth.host_mac,
        sandbox_ifname: ifname.to_string(),
        sandbox_mac: allocation.mac,
        sandbox: sandbox.to_string(),
        address,
        gateway: allocation.gateway,
        mtu: state.mtu,
    };
    Ok(add_result(&request.cni_version, &attachment))
}

/// The host end into `br-int` as `port`'s iface-id (replacing a port of an earlier sandbox of
/// the same pod), then the wait for ovn-controller's `ovn-installed`. Returns how long that
/// wait took.
async fn plug_host_end(state: &AgentState, port: &PodPort) -> Result<std::time::Duration, Failure> {
    let (namespace, name, host_name) = (&port.namespace, &port.pod_name, &port.name);
    let step = Instant::now();
    let events = state.ovs.client().subscribe();
    let ovs_failure = |e: String, transient: bool| {
        let code = if transient {
            errors::TRY_AGAIN_LATER
        } else {
            errors::OVS_FAILURE
        };
        Failure::new(
            code,
            format!(
                "{}: adding OVS port {host_name} to {INTEGRATION_BRIDGE}: {e}",
                Owner::pod(namespace, name)
            ),
        )
    };
    let snapshot = state
        .ovs
        .snapshot()
        .map_err(|e| ovs_failure(e.to_string(), e.is_transient()))?;
    let bridge = snapshot
        .bridge(INTEGRATION_BRIDGE)
        .ok_or_else(|| ovs_failure(format!("{INTEGRATION_BRIDGE} does not exist"), false))?;
    // A port of an earlier sandbox of the same pod would claim the same logical port.
    let superseded = superseded_ports(&rovn_pod_ports(&snapshot), port);
    let mut ops = remove_ports_ops(
        &snapshot,
        &superseded.iter().map(|p| p.port_uuid).collect::<Vec<_>>(),
    );
    ops.extend(ensure_pod_port_ops(&snapshot, bridge, port));
    state
        .ovs
        .transact(&ops, "adding the pod's OVS port")
        .await
        .map_err(|e| ovs_failure(e.to_string(), e.is_transient()))?;
    for old in &superseded {
        tracing::info!(
            pod = format!("{namespace}/{name}"),
            port = old.name,
            old_container = old.container_id,
            "removed the port of an earlier sandbox of the pod"
        );
        if let Err(e) = netdev::detach_pod(&old.name).await {
            tracing::warn!(veth = old.name, error = %e, "removing the veth of an earlier sandbox");
        }
    }
    state.metrics.add_step(AddStep::OvsPort, step.elapsed());

    let step = Instant::now();
    wait_installed(
        &state.ovs,
        events,
        host_name,
        state.config.ovn_installed_timeout,
    )
    .await
    .map_err(|e| {
        Failure::new(
            errors::TRY_AGAIN_LATER,
            format!("{}: {e}", Owner::pod(namespace, name)),
        )
        .with_event("OvnInstalledTimeout")
    })?;
    let installed_took = step.elapsed();
    state
        .metrics
        .add_step(AddStep::OvnInstalled, installed_took);
    Ok(installed_took)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rovn_ovsdb::Uuid;

    #[test]
    fn only_other_sandboxes_of_the_same_pod_are_superseded() {
        let found = |container: &str, pod: &str, n: u128| FoundPodPort {
            name: netdev::host_veth_name(container),
            port_uuid: Uuid::from_u128(n),
            container_id: container.into(),
            pod_uid: String::new(),
            pod: ("default".into(), pod.into()),
        };
        let port = PodPort {
            name: netdev::host_veth_name("new"),
            pod_name: "web".into(),
            namespace: "default".into(),
            pod_uid: String::new(),
            container_id: "new".into(),
            mac: rovn_api::MacAddr([2, 0, 0, 0, 0, 1]),
            ip: std::net::Ipv4Addr::new(10, 16, 0, 2),
        };
        let existing = vec![
            found("old", "web", 1),
            found("new", "web", 2),
            found("x", "db", 3),
        ];
        let gone = superseded_ports(&existing, &port);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].container_id, "old");
    }
}
