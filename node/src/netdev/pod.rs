//! A pod's veth pair: creating and converging it, removing it, and reading it back.

use std::os::fd::AsRawFd;
use std::path::Path;

use ipnet::Ipv4Net;
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth};
use nix::errno::Errno;
use rovn_api::MacAddr;
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::addresses::{ipv4_addresses, set_only_ipv4_address};
use super::conn::Netlink;
use super::error::netlink_failure;
use super::ethtool::{set_tx_checksum_offload, tx_checksum_offload};
use super::link::{LinkFacts, all_links, configure_link, delete_link, link_by_name};
use super::names::{HOST_VETH_PREFIX, validate_ifname};
use super::netns::{AGENT_NETNS, ensure_not_own_netns, netns_label, open_netns, run_in_netns};
use super::routes::{main_table_routes, replace_route};
use super::{AttachedVeth, HostVeth, NetdevError, PodInterfaceSpec, PodVeth, SandboxInterface};

/// Smallest MTU the kernel accepts for IPv4 (RFC 791's 68 octets).
const MIN_MTU: u32 = 68;
/// Largest MTU a veth accepts.
const MAX_MTU: u32 = 65535;

/// What to do given what already exists, so that a repeated or half-done attach converges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AttachPlan {
    /// The pair exists and is ours: only (re)configure it.
    Reuse,
    /// Create the pair, after deleting a leftover host veth whose peer is not the sandbox's `ifname`.
    Create { remove_leftover_host: bool },
    /// The sandbox holds an interface of that name that is not our veth's peer; refuse to touch it.
    Conflict(String),
}

/// Decides how to converge from the host end named `host_name` and the sandbox's `ifname` as
/// they are now. Pairing is checked both ways through `IFLA_LINK` (each end names the other's
/// ifindex), which holds only for the two ends of one veth.
pub(crate) fn plan_attach(host: Option<&LinkFacts>, pod_end: Option<&LinkFacts>) -> AttachPlan {
    match (host, pod_end) {
        (Some(host), Some(pod_end))
            if host.is_veth
                && pod_end.is_veth
                && host.peer_index == Some(pod_end.index)
                && pod_end.peer_index == Some(host.index) =>
        {
            AttachPlan::Reuse
        }
        (_, Some(pod_end)) if !pod_end.is_veth => {
            AttachPlan::Conflict("it is not a veth".to_string())
        }
        (_, Some(_)) => AttachPlan::Conflict("its peer is another device".to_string()),
        (Some(_), None) => AttachPlan::Create {
            remove_leftover_host: true,
        },
        (None, None) => AttachPlan::Create {
            remove_leftover_host: false,
        },
    }
}

/// Refuses requests the kernel would refuse anyway, or that cannot give a working pod.
pub(crate) fn validate_attach(host_name: &str, spec: &PodInterfaceSpec) -> Result<(), NetdevError> {
    validate_ifname(host_name)?;
    validate_ifname(&spec.ifname)?;
    let invalid = |reason: String| NetdevError::InvalidRequest {
        device: spec.ifname.clone(),
        reason,
    };
    if !(MIN_MTU..=MAX_MTU).contains(&spec.mtu) {
        return Err(invalid(format!(
            "MTU {} outside {MIN_MTU}..={MAX_MTU}",
            spec.mtu
        )));
    }
    validate_unicast_mac(spec.mac).map_err(|reason| invalid(reason.to_string()))?;
    if spec.gateway == spec.address.addr() {
        return Err(invalid(format!(
            "the gateway {} is the pod's own address",
            spec.gateway
        )));
    }
    Ok(())
}

/// A device MAC must be unicast and not all-zero, or the kernel refuses it (`EADDRNOTAVAIL`).
pub(crate) fn validate_unicast_mac(mac: MacAddr) -> Result<(), &'static str> {
    if mac.0 == [0; 6] {
        return Err("the MAC is all-zero");
    }
    if mac.0[0] & 1 == 1 {
        return Err("the MAC is a multicast/broadcast address");
    }
    Ok(())
}

pub(crate) async fn attach_pod(
    host_name: &str,
    spec: &PodInterfaceSpec,
) -> Result<AttachedVeth, NetdevError> {
    let host = create_pod_veth(host_name, spec).await?;
    let (sandbox_ifindex, sandbox_mac) = configure_sandbox_end(spec).await?;
    Ok(AttachedVeth {
        host_name: host.host_name,
        host_ifindex: host.host_ifindex,
        host_mac: host.host_mac,
        sandbox_ifindex,
        sandbox_mac,
    })
}

pub(crate) async fn create_pod_veth(
    host_name: &str,
    spec: &PodInterfaceSpec,
) -> Result<PodVeth, NetdevError> {
    validate_attach(host_name, spec)?;
    ensure_not_own_netns(&spec.sandbox)?;
    let netlink = Netlink::open(AGENT_NETNS)?;
    let leftover = link_by_name(&netlink, host_name, AGENT_NETNS).await?;
    // A new sandbox, the usual ADD, has neither end: the pair is created at once, without first
    // looking into the sandbox (a thread entering it, on the path every ADD waits on). The
    // kernel refuses with EEXIST when the sandbox already holds `ifname` (or the host name was
    // just taken), and only then is the sandbox read to reuse, replace or refuse.
    let created = leftover.is_none()
        && match create_veth(&netlink, host_name, spec).await {
            Ok(()) => true,
            Err(err) if err.errno() == Some(Errno::EEXIST) => false,
            Err(err) => return Err(err),
        };
    if !created {
        let leftover = link_by_name(&netlink, host_name, AGENT_NETNS).await?;
        converge_pair(&netlink, host_name, leftover.as_ref(), spec).await?;
    }
    let host = link_by_name(&netlink, host_name, AGENT_NETNS)
        .await?
        .ok_or_else(|| NetdevError::NoSuchDevice {
            name: host_name.to_string(),
            netns: AGENT_NETNS.to_string(),
        })?;
    configure_link(&netlink, &host, None, spec.mtu, AGENT_NETNS).await?;
    let host_mac = host.mac.ok_or_else(|| NetdevError::InvalidRequest {
        device: host_name.to_string(),
        reason: "the host veth has no Ethernet address".to_string(),
    })?;
    Ok(PodVeth {
        host_name: host_name.to_string(),
        host_ifindex: host.index,
        host_mac,
    })
}

/// Makes the pair exist when a first attempt found something in the way: reuses our pair,
/// replaces a leftover host end, or refuses an interface of the sandbox that is not ours.
async fn converge_pair(
    netlink: &Netlink,
    host_name: &str,
    leftover: Option<&LinkFacts>,
    spec: &PodInterfaceSpec,
) -> Result<(), NetdevError> {
    let pod_end = {
        let ifname = spec.ifname.clone();
        let label = netns_label(&spec.sandbox);
        run_in_netns(&spec.sandbox, move |netlink| async move {
            link_by_name(&netlink, &ifname, &label).await
        })
        .await?
    };
    match plan_attach(leftover, pod_end.as_ref()) {
        AttachPlan::Reuse => Ok(()),
        AttachPlan::Create {
            remove_leftover_host,
        } => {
            if let Some(leftover) = leftover.filter(|_| remove_leftover_host) {
                delete_link(netlink, leftover, AGENT_NETNS).await?;
            }
            create_veth(netlink, host_name, spec).await
        }
        AttachPlan::Conflict(reason) => Err(NetdevError::Conflict {
            name: spec.ifname.clone(),
            netns: spec.sandbox.clone(),
            reason,
        }),
    }
}

pub(crate) async fn configure_sandbox_end(
    spec: &PodInterfaceSpec,
) -> Result<(u32, MacAddr), NetdevError> {
    let wanted = spec.clone();
    let pod_end = run_in_netns(&spec.sandbox, move |netlink| async move {
        configure_pod_end(&netlink, &wanted).await
    })
    .await?;
    Ok((pod_end.index, pod_end.mac.unwrap_or(spec.mac)))
}

/// One `RTM_NEWLINK` creating `host_name` here, up, and its peer `spec.ifname` (MAC, MTU)
/// directly in the sandbox.
async fn create_veth(
    netlink: &Netlink,
    host_name: &str,
    spec: &PodInterfaceSpec,
) -> Result<(), NetdevError> {
    let sandbox = open_netns(&spec.sandbox)?;
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(spec.ifname.clone())
        .address(spec.mac.0.to_vec())
        .mtu(spec.mtu)
        .setns_by_fd(sandbox.as_raw_fd())
        .build();
    let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(host_name.to_string())
        .mtu(spec.mtu)
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    let result = netlink.handle().link().add(veth).execute().await;
    // The kernel resolves the namespace fd while handling the request: keep it open until then.
    drop(sandbox);
    result.map_err(netlink_failure(format!(
        "creating veth {host_name} with peer {} in netns {}",
        spec.ifname,
        spec.sandbox.display()
    )))
}

/// Runs inside the sandbox: MAC, MTU, TX checksum offload, address, up, default route.
async fn configure_pod_end(
    netlink: &Netlink,
    spec: &PodInterfaceSpec,
) -> Result<LinkFacts, NetdevError> {
    let label = netns_label(&spec.sandbox);
    let missing = || NetdevError::NoSuchDevice {
        name: spec.ifname.clone(),
        netns: label.clone(),
    };
    let link = link_by_name(netlink, &spec.ifname, &label)
        .await?
        .ok_or_else(missing)?;
    if tx_checksum_offload(&spec.ifname, &label)? != spec.tx_checksum_offload {
        set_tx_checksum_offload(&spec.ifname, spec.tx_checksum_offload, &label)?;
    }
    configure_link(netlink, &link, Some(spec.mac), spec.mtu, &label).await?;
    set_only_ipv4_address(netlink, link.index, spec.address, &spec.ifname, &label).await?;
    replace_route(
        netlink,
        Ipv4Net::default(),
        spec.gateway,
        link.index,
        &spec.ifname,
        &label,
    )
    .await?;
    link_by_name(netlink, &spec.ifname, &label)
        .await?
        .ok_or_else(missing)
}

pub(crate) async fn detach_pod(host_name: &str) -> Result<(), NetdevError> {
    validate_ifname(host_name)?;
    let netlink = Netlink::open(AGENT_NETNS)?;
    match link_by_name(&netlink, host_name, AGENT_NETNS).await? {
        Some(link) => delete_link(&netlink, &link, AGENT_NETNS).await,
        None => Ok(()),
    }
}

pub(crate) async fn remove_from_sandbox(sandbox: &Path, ifname: &str) -> Result<(), NetdevError> {
    validate_ifname(ifname)?;
    match ensure_not_own_netns(sandbox) {
        Err(err) if err.is_netns_gone() => return Ok(()),
        other => other?,
    }
    let name = ifname.to_string();
    let label = netns_label(sandbox);
    let removal = run_in_netns(sandbox, move |netlink| async move {
        match link_by_name(&netlink, &name, &label).await? {
            Some(link) => delete_link(&netlink, &link, &label).await,
            None => Ok(()),
        }
    })
    .await;
    match removal {
        Err(err) if err.is_netns_gone() => Ok(()),
        other => other,
    }
}

pub(crate) async fn inspect_sandbox(
    sandbox: &Path,
    ifname: &str,
) -> Result<SandboxInterface, NetdevError> {
    validate_ifname(ifname)?;
    let name = ifname.to_string();
    let label = netns_label(sandbox);
    run_in_netns(sandbox, move |netlink| async move {
        let link = link_by_name(&netlink, &name, &label)
            .await?
            .ok_or_else(|| NetdevError::NoSuchDevice {
                name: name.clone(),
                netns: label.clone(),
            })?;
        let addresses = ipv4_addresses(&netlink, Some(link.index), &label)
            .await?
            .into_iter()
            .map(|assigned| assigned.net)
            .collect();
        let default_gateway = main_table_routes(&netlink, &label)
            .await?
            .into_iter()
            .find(|route| route.oif == Some(link.index) && route.destination.prefix_len() == 0)
            .and_then(|route| route.gateway);
        Ok(SandboxInterface {
            ifindex: link.index,
            mac: link.mac,
            addresses,
            mtu: link.mtu,
            default_gateway,
            admin_up: link.admin_up,
            oper_state: link.oper_state,
            tx_checksum_offload: tx_checksum_offload(&name, &label).ok(),
        })
    })
    .await
}

pub(crate) async fn list_host_veths() -> Result<Vec<HostVeth>, NetdevError> {
    let netlink = Netlink::open(AGENT_NETNS)?;
    Ok(all_links(&netlink, AGENT_NETNS)
        .await?
        .into_iter()
        .filter(|link| link.is_veth && link.name.starts_with(HOST_VETH_PREFIX))
        .map(|link| HostVeth {
            name: link.name,
            ifindex: link.index,
        })
        .collect())
}

#[cfg(test)]
mod tests;
