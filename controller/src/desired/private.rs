//! Private Subnets (`spec.private`, Kube-OVN's word): the Subnet's pods accept traffic only from
//! the Subnet itself, from nodes (the join CIDR: kubelet probes and everything a node forwards
//! in, masqueraded to its join IP) and from `spec.allowSubnets`.
//!
//! The Subnet owns a Port_Group of its pods (`names::private_subnet_port_group`) holding one
//! `drop` ACL for traffic *to* them from any other source, at [`PRIVATE_PRIORITY`], above the
//! whole NetworkPolicy band: a NetworkPolicy allowing another Subnet's pods cannot override it.
//! What the Subnet accepts is not allowed here but left to fall through, so NetworkPolicies
//! still restrict traffic from inside the Subnet. Replies to connections the Subnet's pods open
//! pass: OVN lets established replies through above every ACL (every pod switch is stateful,
//! since each node's port group holds `allow-related` ACLs).
//!
//! Pods join the group from their own rendering ([`super::render_pod`] refers to it), so a pod
//! coming or going changes the group's `ports` element by element and a Subnet's `private`
//! flipping adds or removes the group and its ACL without touching any pod's port.

use ipnet::Ipv4Net;
use rovn_api::{Owner, names};
use rovn_ovsdb_schemas::nb::AclAction;

use super::cluster::{Direction, Subnet};
use super::policies::{AclSpec, add_acl, add_port_group};
use super::state::DesiredState;

/// The priority of a private Subnet's drop: above NetworkPolicy (2000–2999), below the band
/// kept for AdminNetworkPolicy (above 30000).
pub const PRIVATE_PRIORITY: i64 = 3000;

const _: () = assert!(super::policies::ALLOW_PRIORITY < PRIVATE_PRIORITY);

/// Adds `subnet`'s isolation (it must be private): its pods' port group, empty until the pods'
/// own rendering adds them, and the ACL dropping what comes from neither the Subnet, `join`
/// nor its `allowSubnets`. Returns the group's name.
pub fn render_private_subnet(state: &mut DesiredState, subnet: &Subnet, join: Ipv4Net) -> String {
    let owner = Owner::subnet(&subnet.name);
    let group = names::private_subnet_port_group(&subnet.name);
    add_port_group(state, &owner, &group, std::iter::empty());
    let mut sources = vec![subnet.cidr.trunc(), join.trunc()];
    sources.extend(subnet.allow_subnets.iter().copied());
    let sources = Ipv4Net::aggregate(&sources);
    let list: Vec<String> = sources.iter().map(ToString::to_string).collect();
    add_acl(
        state,
        &owner,
        AclSpec {
            id: names::PRIVATE_ACL_ID.to_string(),
            name: format!("subnet/{}:private", subnet.name),
            direction: Direction::Ingress,
            priority: PRIVATE_PRIORITY,
            action: AclAction::Drop,
            match_: format!(
                "outport == @{group} && ip4 && ip4.src != {{{}}}",
                list.join(", ")
            ),
            log: false,
            group: &group,
        },
    );
    group
}

#[cfg(test)]
mod tests;
