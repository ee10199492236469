//! CNI GC: remove rovn's ports and veths whose container the runtime no longer lists in
//! `cni.dev/valid-attachments`.

use std::collections::BTreeSet;

use rovn_ovsdb::Uuid;
use serde_json::Value;

use crate::agent::errors::{self, Failure};
use crate::agent::ovs::pod_port::{FoundPodPort, remove_ports_ops, rovn_pod_ports};
use crate::agent::state::AgentState;
use crate::cni::protocol::CniRequest;
use crate::netdev;

/// The container IDs in the config's `cni.dev/valid-attachments`. A GC without the list is
/// refused: read as "nothing is valid", it would unplug every pod on the node.
pub fn valid_containers(config: &Value) -> Result<BTreeSet<String>, String> {
    let Some(list) = config.get("cni.dev/valid-attachments") else {
        return Err(
            "GC without cni.dev/valid-attachments: refusing to remove every attachment".into(),
        );
    };
    let list = list
        .as_array()
        .ok_or("cni.dev/valid-attachments is not an array")?;
    list.iter()
        .map(|a| {
            a.get("containerID")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("attachment {a} has no containerID"))
        })
        .collect()
}

/// What GC removes (pure): ports whose container is neither valid nor being added, and host
/// veths that belong to no such container.
pub fn stale(
    ports: &[FoundPodPort],
    veths: &[String],
    keep: &BTreeSet<String>,
) -> (Vec<Uuid>, Vec<String>) {
    let keep_veths: BTreeSet<String> = keep.iter().map(|c| netdev::host_veth_name(c)).collect();
    let doomed_ports = ports
        .iter()
        .filter(|p| !keep.contains(&p.container_id) && !keep_veths.contains(&p.name))
        .map(|p| p.port_uuid)
        .collect();
    let doomed_veths = veths
        .iter()
        .filter(|v| !keep_veths.contains(*v))
        .cloned()
        .collect();
    (doomed_ports, doomed_veths)
}

/// Removes the given ports and veths.
pub async fn remove(state: &AgentState, ports: &[Uuid], veths: &[String]) -> Result<(), Failure> {
    let snapshot = state
        .ovs
        .snapshot()
        .map_err(|e| Failure::new(errors::OVS_FAILURE, e.to_string()))?;
    state
        .ovs
        .transact(
            &remove_ports_ops(&snapshot, ports),
            "removing stale pod ports",
        )
        .await
        .map_err(|e| Failure::new(errors::OVS_FAILURE, e.to_string()))?;
    for veth in veths {
        tracing::info!(veth, "removing a stale pod veth");
        netdev::detach_pod(veth).await.map_err(|e| {
            Failure::new(errors::NETDEV_FAILURE, format!("removing veth {veth}: {e}"))
        })?;
    }
    Ok(())
}

/// Serves GC.
pub async fn gc(state: &AgentState, request: &CniRequest) -> Result<Value, Failure> {
    let mut keep = valid_containers(&request.config)
        .map_err(|e| Failure::new(crate::cni::protocol::codes::INVALID_NETWORK_CONFIG, e))?;
    keep.extend(state.in_flight());
    let snapshot = state
        .ovs
        .snapshot()
        .map_err(|e| Failure::new(errors::OVS_FAILURE, e.to_string()))?;
    let ports = rovn_pod_ports(&snapshot);
    let veths: Vec<String> = netdev::list_host_veths()
        .await
        .map_err(|e| Failure::new(errors::NETDEV_FAILURE, format!("listing host veths: {e}")))?
        .into_iter()
        .map(|v| v.name)
        .collect();
    let (doomed_ports, doomed_veths) = stale(&ports, &veths, &keep);
    remove(state, &doomed_ports, &doomed_veths).await?;
    Ok(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn valid_attachments_are_read_and_malformed_ones_refused() {
        let config = json!({"cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}]});
        assert_eq!(
            valid_containers(&config).unwrap(),
            BTreeSet::from(["a".to_string()])
        );
        assert!(valid_containers(&json!({"cni.dev/valid-attachments": 3})).is_err());
        assert!(valid_containers(&json!({"name": "rovn"})).is_err());
        assert!(valid_containers(&json!({"cni.dev/valid-attachments": [{}]})).is_err());
    }

    #[test]
    fn only_unlisted_containers_are_stale() {
        let port = |c: &str, u: u128| FoundPodPort {
            name: netdev::host_veth_name(c),
            port_uuid: Uuid::from_u128(u),
            container_id: c.into(),
            pod_uid: String::new(),
            pod: Default::default(),
        };
        let ports = vec![port("keep", 1), port("gone", 2)];
        let veths = vec![
            netdev::host_veth_name("keep"),
            netdev::host_veth_name("gone"),
        ];
        let keep = BTreeSet::from(["keep".to_string()]);
        let (p, v) = stale(&ports, &veths, &keep);
        assert_eq!(p, vec![Uuid::from_u128(2)]);
        assert_eq!(v, vec![netdev::host_veth_name("gone")]);
    }
}
