use std::net::Ipv4Addr;

use rovn_api::{MacAddr, Owner, names};
use rovn_ovsdb_schemas::nb::{Acl, AclAction, AclDirection, LogicalSwitchPort, PortGroup};

use super::*;
use crate::desired::state::RowKey;
use crate::desired::{
    ClusterState, JoinSubnet, Node, PodPort, desired_state, remove_pod, render_cluster, render_pod,
};

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap_or_default()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
}

fn subnet(name: &str, cidr: &str, gateway: &str, private: bool) -> Subnet {
    Subnet {
        name: name.into(),
        cidr: net(cidr),
        gateway: ip(gateway),
        private,
        allow_subnets: vec![net("192.168.7.0/24")],
    }
}

fn pod(name: &str, switch: &str, addr: &str) -> PodPort {
    PodPort {
        namespace: "default".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        node: "n1".into(),
        switch: switch.into(),
        ip: ip(addr),
        mac: MacAddr::derived_from(ip(addr)),
    }
}

/// `secret` (10.17/16) is private or not; one pod on it, one on `ovn-default`.
fn cluster(private: bool) -> ClusterState {
    ClusterState {
        join: JoinSubnet {
            cidr: net("100.64.0.0/16"),
            gateway: ip("100.64.0.1"),
        },
        service_cidr: net("10.96.0.0/12"),
        subnets: vec![
            subnet("ovn-default", "10.16.0.0/16", "10.16.0.1", false),
            subnet("secret", "10.17.0.0/16", "10.17.0.1", private),
        ],
        nodes: vec![Node {
            name: "n1".into(),
            join_ip: ip("100.64.0.2"),
            join_mac: MacAddr::derived_from(ip("100.64.0.2")),
            chassis: None,
        }],
        pods: vec![
            pod("open", "ovn-default", "10.16.0.5"),
            pod("hidden", "secret", "10.17.0.5"),
        ],
        services: Vec::new(),
        policies: Vec::new(),
        policy_pods: Default::default(),
    }
}

fn members(state: &DesiredState, group: &str) -> Vec<String> {
    state
        .row::<PortGroup>(&RowKey::name(group))
        .map(|row| {
            row.refs
                .iter()
                .filter(|r| r.column == PortGroup::PORTS)
                .flat_map(|r| r.keys.iter().map(ToString::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn private_acl(state: &DesiredState) -> Option<Acl> {
    let key = RowKey::owned(&Owner::subnet("secret").to_string(), names::PRIVATE_ACL_ID);
    state.model::<Acl>(&key)
}

#[test]
fn a_private_subnet_drops_what_comes_from_outside_its_sources_above_every_policy() {
    let state = desired_state(&cluster(true));
    assert!(state.problems.is_empty(), "{:?}", state.problems);
    let group = names::private_subnet_port_group("secret");
    assert_eq!(members(&state, &group), ["hidden.default"]);
    let acl = private_acl(&state).unwrap_or_default();
    assert_eq!(acl.action, AclAction::Drop);
    assert_eq!(acl.direction, AclDirection::ToLport);
    assert!(acl.priority > crate::desired::ALLOW_PRIORITY);
    assert_eq!(
        acl.match_,
        format!(
            "outport == @{group} && ip4 && ip4.src != {{10.17.0.0/16, 100.64.0.0/16, 192.168.7.0/24}}"
        )
    );
    assert_eq!(acl.external_ids[names::OWNER_KEY], "Subnet/secret");
    // An open Subnet has neither group nor ACL.
    let open = names::private_subnet_port_group("ovn-default");
    assert!(state.row::<PortGroup>(&RowKey::name(&open)).is_none());
}

#[test]
fn flipping_private_leaves_every_pod_port_as_it_was() {
    let open = desired_state(&cluster(false));
    let private = desired_state(&cluster(true));
    assert!(private_acl(&open).is_none());
    assert!(private_acl(&private).is_some());
    let ports = |state: &DesiredState| {
        state
            .rows::<LogicalSwitchPort>()
            .map(|(k, row)| (k.clone(), row.columns.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ports(&open), ports(&private));
}

#[test]
fn a_pod_rendered_alone_joins_and_leaves_its_private_group() {
    let (mut state, context) = render_cluster(&cluster(true));
    let group = names::private_subnet_port_group("secret");
    let hidden = Owner::pod("default", "hidden");
    assert_eq!(
        remove_pod(&mut state, &context, &hidden),
        Some(Owner::subnet("secret"))
    );
    assert!(members(&state, &group).is_empty());
    let again = pod("hidden", "secret", "10.17.0.5");
    assert_eq!(
        render_pod(&mut state, &context, &again),
        Some(Owner::subnet("secret"))
    );
    assert_eq!(members(&state, &group), ["hidden.default"]);
    // A pod of an open Subnet changes no other owner's rows.
    let open = Owner::pod("default", "open");
    assert_eq!(remove_pod(&mut state, &context, &open), None);
    assert_eq!(
        render_pod(
            &mut state,
            &context,
            &pod("open", "ovn-default", "10.16.0.5")
        ),
        None
    );
    assert_eq!(state, desired_state(&cluster(true)));
}
