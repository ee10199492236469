//! CNI CHECK: the sandbox interface and the OVS port still are what ADD made them.

use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;
use rovn_api::MacAddr;
use rovn_api::Owner;
use rovn_api::annotations::Ipv4PodAllocation;
use serde_json::Value;

use super::required;
use crate::agent::errors::{self, Failure};
use crate::agent::kube::pods::{self, Observation};
use crate::agent::ovs::pod_port::{is_installed, keys};
use crate::agent::state::AgentState;
use crate::cni::protocol::{CniCommand, CniRequest, k8s_args};
use crate::netdev;

/// What CHECK found in the sandbox, reduced to what it compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The interface's MAC.
    pub mac: Option<MacAddr>,
    /// Its IPv4 addresses.
    pub addresses: Vec<Ipv4Net>,
    /// Its MTU.
    pub mtu: Option<u32>,
    /// The sandbox's default gateway.
    pub gateway: Option<Ipv4Addr>,
}

/// Every way the sandbox differs from the allocation and MTU (pure); empty when it matches.
pub fn differences(allocation: &Ipv4PodAllocation, mtu: u32, observed: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    if observed.mac != Some(allocation.mac) {
        out.push(format!(
            "MAC is {} instead of {}",
            observed
                .mac
                .map(|m| m.to_string())
                .unwrap_or_else(|| "unset".into()),
            allocation.mac
        ));
    }
    let want = Ipv4Net::new(allocation.ip, allocation.cidr.prefix_len()).ok();
    if want.is_none_or(|w| !observed.addresses.contains(&w)) {
        out.push(format!(
            "addresses {:?} lack {}/{}",
            observed
                .addresses
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
            allocation.ip,
            allocation.cidr.prefix_len()
        ));
    }
    if observed.mtu != Some(mtu) {
        out.push(format!("MTU is {:?} instead of {mtu}", observed.mtu));
    }
    if observed.gateway != Some(allocation.gateway) {
        out.push(format!(
            "default gateway is {:?} instead of {}",
            observed.gateway, allocation.gateway
        ));
    }
    out
}

/// Serves CHECK.
pub async fn check(state: &AgentState, request: &CniRequest) -> Result<Value, Failure> {
    let command = CniCommand::Check;
    let container_id = required(request.container_id.as_deref(), "a container id", command)?;
    let sandbox = required(request.netns.as_deref(), "a network namespace", command)?;
    let ifname = required(request.ifname.as_deref(), "an interface name", command)?;
    let (namespace, name) = request.pod().ok_or_else(|| {
        Failure::new(
            errors::MISSING_FIELD,
            "CHECK request without the pod's namespace and name",
        )
    })?;
    let pod = pods::get(state.kube.clone(), namespace, name)
        .await
        .map_err(|e| Failure::new(errors::KUBE_API_FAILURE, format!("{e:#}")))?
        .ok_or_else(|| {
            Failure::new(
                errors::POD_MISMATCH,
                format!("{} does not exist", Owner::pod(namespace, name)),
            )
        })?;
    let allocation = match pods::observe(&pod, request.arg(k8s_args::POD_UID)) {
        Ok(Observation::Ready(a)) => a,
        Ok(Observation::Pending) => {
            return Err(Failure::new(
                errors::CHECK_MISMATCH,
                format!(
                    "{} has no rovn.io/allocated annotation",
                    Owner::pod(namespace, name)
                ),
            ));
        }
        Err(e) => return Err(Failure::new(errors::POD_MISMATCH, e.to_string())),
    };
    let found = netdev::inspect_sandbox(Path::new(sandbox), ifname)
        .await
        .map_err(|e| {
            Failure::new(
                errors::CHECK_MISMATCH,
                format!(
                    "{}: inspecting {ifname} in {sandbox}: {e}",
                    Owner::pod(namespace, name)
                ),
            )
        })?;
    let observed = Observed {
        mac: found.mac,
        addresses: found.addresses.clone(),
        mtu: found.mtu,
        gateway: found.default_gateway,
    };
    let mut problems = differences(&allocation, state.mtu, &observed);
    let host_name = netdev::host_veth_name(container_id);
    let snapshot = state
        .ovs
        .snapshot()
        .map_err(|e| Failure::new(errors::OVS_FAILURE, e.to_string()))?;
    match snapshot.interface_named(&host_name) {
        None => problems.push(format!("OVS port {host_name} does not exist")),
        Some(iface) => {
            let want = rovn_api::names::pod_port(namespace, name);
            if iface.external_ids.get(keys::IFACE_ID) != Some(&want) {
                problems.push(format!("OVS port {host_name} is not bound to {want}"));
            }
            if !is_installed(iface) {
                problems.push(format!("OVS port {host_name} is not ovn-installed"));
            }
        }
    }
    if problems.is_empty() {
        Ok(Value::Null)
    } else {
        Err(Failure::new(
            errors::CHECK_MISMATCH,
            format!("{}: {}", Owner::pod(namespace, name), problems.join("; ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocation() -> Ipv4PodAllocation {
        Ipv4PodAllocation {
            ip: Ipv4Addr::new(10, 16, 0, 5),
            mac: MacAddr([0x0a, 0x58, 10, 16, 0, 5]),
            cidr: "10.16.0.0/16".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 16, 0, 1),
            switch: "ovn-default".into(),
        }
    }

    #[test]
    fn matching_sandbox_has_no_difference_and_each_field_is_reported() {
        let good = Observed {
            mac: Some(allocation().mac),
            addresses: vec!["10.16.0.5/16".parse().unwrap()],
            mtu: Some(1400),
            gateway: Some(Ipv4Addr::new(10, 16, 0, 1)),
        };
        assert!(differences(&allocation(), 1400, &good).is_empty());
        let bad = Observed {
            mac: None,
            addresses: vec![],
            mtu: Some(1500),
            gateway: None,
        };
        let d = differences(&allocation(), 1400, &bad);
        assert_eq!(d.len(), 4, "{d:?}");
        assert!(d[2].contains("1500"), "{d:?}");
    }
}
