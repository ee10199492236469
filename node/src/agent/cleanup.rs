//! Start-up cleanup after a restart: ports and veths of pods that no longer exist are
//! removed; ports of existing pods are left exactly as they are.

use std::collections::BTreeSet;

use super::cni::gc;
use super::errors::Failure;
use super::kube::pods;
use super::ovs::pod_port::{FoundPodPort, rovn_pod_ports};
use super::state::AgentState;
use crate::netdev;

/// The ports whose pod is gone (pure): a port is kept when its `pod_uid` is a live pod on
/// this node; a port without a recorded UID is kept (it cannot be judged).
pub fn orphaned<'a>(
    ports: &'a [FoundPodPort],
    live_uids: &BTreeSet<String>,
) -> Vec<&'a FoundPodPort> {
    ports
        .iter()
        .filter(|p| !p.pod_uid.is_empty() && !live_uids.contains(&p.pod_uid))
        .collect()
}

/// Removes orphaned ports and host veths that no surviving port uses. Returns how many ports
/// and veths went.
pub async fn remove_orphans(state: &AgentState) -> anyhow::Result<(usize, usize)> {
    let live = pods::uids_on_node(state.kube.clone(), &state.config.node_name).await?;
    let snapshot = state.ovs.snapshot()?;
    let ports = rovn_pod_ports(&snapshot);
    let doomed = orphaned(&ports, &live);
    let doomed_uuids: Vec<_> = doomed.iter().map(|p| p.port_uuid).collect();
    let kept: BTreeSet<&str> = ports
        .iter()
        .filter(|p| !doomed_uuids.contains(&p.port_uuid))
        .map(|p| p.name.as_str())
        .collect();
    let veths: Vec<String> = netdev::list_host_veths()
        .await?
        .into_iter()
        .map(|v| v.name)
        .filter(|name| !kept.contains(name.as_str()))
        .collect();
    for p in &doomed {
        tracing::info!(
            port = p.name,
            pod = format!("{}/{}", p.pod.0, p.pod.1),
            uid = p.pod_uid,
            "removing the port of a pod that no longer exists"
        );
    }
    gc::remove(state, &doomed_uuids, &veths)
        .await
        .map_err(|f: Failure| anyhow::anyhow!("{}", f.error.msg))?;
    Ok((doomed_uuids.len(), veths.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rovn_ovsdb::Uuid;

    #[test]
    fn only_ports_of_vanished_pods_are_orphans() {
        let port = |uid: &str, n: u128| FoundPodPort {
            name: format!("rovn{n}"),
            port_uuid: Uuid::from_u128(n),
            container_id: format!("c{n}"),
            pod_uid: uid.into(),
            pod: Default::default(),
        };
        let ports = vec![port("alive", 1), port("dead", 2), port("", 3)];
        let live = BTreeSet::from(["alive".to_string()]);
        let o = orphaned(&ports, &live);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].pod_uid, "dead");
    }
}
