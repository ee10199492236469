//! CNI DEL: remove the pod's OVS port and veth; everything already gone is success.

use serde_json::Value;

use super::required;
use crate::agent::errors::{self, Failure};
use crate::agent::ovs::pod_port::{remove_ports_ops, rovn_pod_ports};
use crate::agent::state::AgentState;
use crate::cni::protocol::{CniCommand, CniRequest};
use crate::netdev;

/// Removes every rovn port of `container_id` (by `container_id` external_id or by its veth
/// name) and its host veth.
pub async fn remove_container(state: &AgentState, container_id: &str) -> Result<(), Failure> {
    let host_name = netdev::host_veth_name(container_id);
    let snapshot = state.ovs.snapshot().map_err(|e| {
        Failure::new(
            errors::OVS_FAILURE,
            format!("reading OVS for container {container_id}: {e}"),
        )
    })?;
    let mut doomed: Vec<_> = rovn_pod_ports(&snapshot)
        .into_iter()
        .filter(|p| p.container_id == container_id)
        .map(|p| p.port_uuid)
        .collect();
    if let Some(entry) = snapshot.port_named(&host_name) {
        doomed.push(entry.port.uuid);
    }
    let ops = remove_ports_ops(&snapshot, &doomed);
    state
        .ovs
        .transact(&ops, "removing the pod's OVS port")
        .await
        .map_err(|e| {
            Failure::new(
                errors::OVS_FAILURE,
                format!("removing OVS port {host_name} of container {container_id}: {e}"),
            )
        })?;
    netdev::detach_pod(&host_name).await.map_err(|e| {
        Failure::new(
            errors::NETDEV_FAILURE,
            format!("removing veth {host_name} of container {container_id}: {e}"),
        )
    })
}

/// Serves DEL.
pub async fn del(state: &AgentState, request: &CniRequest) -> Result<Value, Failure> {
    let container_id = required(
        request.container_id.as_deref(),
        "a container id",
        CniCommand::Del,
    )?;
    remove_container(state, container_id).await?;
    if let (Some(netns), Some(ifname)) = (request.netns.as_deref(), request.ifname.as_deref())
        && !netns.is_empty()
        && !ifname.is_empty()
    {
        netdev::remove_from_sandbox(std::path::Path::new(netns), ifname)
            .await
            .map_err(|e| {
                Failure::new(
                    errors::NETDEV_FAILURE,
                    format!("removing {ifname} from {netns} (container {container_id}): {e}"),
                )
            })?;
    }
    Ok(Value::Null)
}
