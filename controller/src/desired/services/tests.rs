use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use rovn_api::MacAddr;
use rovn_api::Owner;
use rovn_ovsdb_schemas::nb::{
    ChassisTemplateVar, LoadBalancer, LoadBalancerGroup, LoadBalancerSelectionFields,
};

use super::*;
use crate::desired::cluster::{Endpoint, Node};
use crate::desired::{ClusterState, JoinSubnet, desired_state};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
}

fn endpoint(addr: &str, ready: bool, serving: bool, terminating: bool) -> Endpoint {
    Endpoint {
        ip: ip(addr),
        ready,
        serving,
        terminating,
        node: Some("n1".into()),
        ports: vec![
            ("http".into(), Protocol::Tcp, 8080),
            ("dns".into(), Protocol::Udp, 5353),
        ],
    }
}

fn web(endpoints: Vec<Endpoint>) -> Service {
    Service {
        namespace: "shop".into(),
        name: "web".into(),
        cluster_ips: vec![ip("10.96.0.10")],
        ports: vec![
            ServicePort {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 80,
            },
            ServicePort {
                name: "dns".into(),
                protocol: Protocol::Udp,
                port: 53,
            },
        ],
        affinity_timeout: None,
        local_only: false,
        endpoints,
    }
}

fn state_with(services: Vec<Service>) -> DesiredState {
    state_on(Vec::new(), services)
}

fn state_on(nodes: Vec<Node>, services: Vec<Service>) -> DesiredState {
    desired_state(&ClusterState {
        join: JoinSubnet {
            cidr: "100.64.0.0/16".parse().unwrap_or_default(),
            gateway: ip("100.64.0.1"),
        },
        service_cidr: "10.96.0.0/12".parse().unwrap_or_default(),
        subnets: Vec::new(),
        nodes,
        pods: Vec::new(),
        services,
        policies: Vec::new(),
        policy_pods: Default::default(),
    })
}

fn lb(state: &DesiredState, name: &str) -> Option<LoadBalancer> {
    state.model::<LoadBalancer>(&RowKey::name(name))
}

fn group_members(state: &DesiredState) -> BTreeSet<String> {
    state
        .row::<LoadBalancerGroup>(&RowKey::name(CLUSTER_LB_GROUP))
        .into_iter()
        .flat_map(|row| row.refs.iter())
        .filter(|r| r.column == LoadBalancerGroup::LOAD_BALANCER)
        .flat_map(|r| r.keys.iter().map(|k| k.as_str().to_string()))
        .collect()
}

#[test]
fn one_balancer_per_protocol_owned_by_the_service_and_in_the_group() {
    let state = state_with(vec![web(vec![
        endpoint("10.16.0.5", true, true, false),
        endpoint("10.16.0.6", true, true, false),
    ])]);
    let tcp = lb(&state, "svc.shop.web.tcp");
    let udp = lb(&state, "svc.shop.web.udp");
    assert_eq!(
        tcp.as_ref().map(|l| l.vips.clone()),
        Some(BTreeMap::from([(
            "10.96.0.10:80".to_string(),
            "10.16.0.5:8080,10.16.0.6:8080".to_string()
        )]))
    );
    assert_eq!(
        udp.map(|l| l.vips),
        Some(BTreeMap::from([(
            "10.96.0.10:53".to_string(),
            "10.16.0.5:5353,10.16.0.6:5353".to_string()
        )]))
    );
    assert_eq!(
        tcp.map(|l| l.options.get("reject").cloned()),
        Some(Some("true".into()))
    );
    let owner = state
        .row::<LoadBalancer>(&RowKey::name("svc.shop.web.tcp"))
        .map(|r| r.owner.clone());
    assert_eq!(owner, Some(Owner::service("shop", "web")));
    assert_eq!(
        group_members(&state),
        BTreeSet::from([
            "svc.shop.web.tcp".to_string(),
            "svc.shop.web.udp".to_string()
        ])
    );
}

#[test]
fn ready_endpoints_win_and_terminating_serving_ones_are_the_fallback() {
    let mixed = state_with(vec![web(vec![
        endpoint("10.16.0.5", true, true, false),
        endpoint("10.16.0.6", false, true, true),
        endpoint("10.16.0.7", false, false, false),
    ])]);
    assert_eq!(
        lb(&mixed, "svc.shop.web.tcp").and_then(|l| l.vips.get("10.96.0.10:80").cloned()),
        Some("10.16.0.5:8080".into())
    );
    let draining = state_with(vec![web(vec![
        endpoint("10.16.0.6", false, true, true),
        endpoint("10.16.0.8", false, false, true),
        endpoint("10.16.0.7", false, false, false),
    ])]);
    assert_eq!(
        lb(&draining, "svc.shop.web.tcp").and_then(|l| l.vips.get("10.96.0.10:80").cloned()),
        Some("10.16.0.6:8080".into())
    );
}

#[test]
fn no_endpoint_means_no_backend_and_reject() {
    let state = state_with(vec![web(Vec::new())]);
    let tcp = lb(&state, "svc.shop.web.tcp");
    assert_eq!(
        tcp.as_ref()
            .and_then(|l| l.vips.get("10.96.0.10:80").cloned()),
        Some(String::new())
    );
    assert_eq!(
        tcp.and_then(|l| l.options.get("reject").cloned()),
        Some("true".into())
    );
}

#[test]
fn an_address_in_two_slices_is_one_backend_ready_if_either_copy_is() {
    let state = state_with(vec![web(vec![
        endpoint("10.16.0.5", false, false, false),
        endpoint("10.16.0.5", true, true, false),
    ])]);
    assert_eq!(
        lb(&state, "svc.shop.web.tcp").and_then(|l| l.vips.get("10.96.0.10:80").cloned()),
        Some("10.16.0.5:8080".into())
    );
}

#[test]
fn endpoint_ports_match_by_name_and_protocol() {
    let mut service = web(vec![Endpoint {
        ip: ip("10.16.0.5"),
        ready: true,
        serving: true,
        terminating: false,
        node: None,
        ports: vec![("http".into(), Protocol::Udp, 9999)],
    }]);
    service.ports.truncate(1);
    let state = state_with(vec![service]);
    assert_eq!(
        lb(&state, "svc.shop.web.tcp").and_then(|l| l.vips.get("10.96.0.10:80").cloned()),
        Some(String::new())
    );
    assert!(lb(&state, "svc.shop.web.udp").is_none());
}

#[test]
fn client_ip_affinity_sets_the_timeout_within_ovn_limits() {
    let mut service = web(vec![endpoint("10.16.0.5", true, true, false)]);
    service.affinity_timeout = Some(86_400);
    let state = state_with(vec![service]);
    let tcp = lb(&state, "svc.shop.web.tcp");
    assert_eq!(
        tcp.as_ref()
            .and_then(|l| l.options.get("affinity_timeout").cloned()),
        Some("65535".into())
    );
    assert_eq!(
        tcp.map(|l| l.selection_fields),
        Some(BTreeSet::from([LoadBalancerSelectionFields::IpSrc]))
    );
}

#[test]
fn removing_a_service_takes_its_balancers_out_of_the_group() {
    let mut other = web(vec![endpoint("10.16.0.5", true, true, false)]);
    other.name = "api".into();
    let mut state = state_with(vec![web(Vec::new()), other]);
    remove_service(&mut state, &Owner::service("shop", "web"));
    assert!(lb(&state, "svc.shop.web.tcp").is_none());
    assert_eq!(
        group_members(&state),
        BTreeSet::from([
            "svc.shop.api.tcp".to_string(),
            "svc.shop.api.udp".to_string()
        ])
    );
    let again = web(Vec::new());
    render_service(&mut state, &again);
    assert_eq!(group_members(&state).len(), 4);
    assert_eq!(
        state,
        state_with(vec![web(Vec::new()), {
            let mut other = web(vec![endpoint("10.16.0.5", true, true, false)]);
            other.name = "api".into();
            other
        }]),
        "removing and rendering again gives what one render gives"
    );
}

fn node(name: &str, index: u8, chassis: Option<&str>) -> Node {
    let join_ip = Ipv4Addr::new(100, 64, 0, index);
    Node {
        name: name.into(),
        join_ip,
        join_mac: MacAddr::derived_from(join_ip),
        chassis: chassis.map(Into::into),
        internal_ip: None,
    }
}

#[test]
fn a_node_local_service_is_a_template_whose_backends_each_chassis_gives() {
    let on = |ip: &str, node: &str| Endpoint {
        node: Some(node.into()),
        ..endpoint(ip, true, true, false)
    };
    let mut service = web(vec![
        on("10.16.0.5", "n1"),
        on("10.16.0.6", "n2"),
        on("10.16.0.7", "n1"),
    ]);
    service.local_only = true;
    let nodes = vec![
        node("n1", 2, Some("ch-1")),
        node("n2", 3, Some("ch-2")),
        node("n3", 4, None),
    ];
    let state = state_on(nodes, vec![service]);
    assert!(state.problems.is_empty(), "{:?}", state.problems);
    let tcp = lb(&state, "svc.shop.web.tcp").unwrap_or_default();
    let variable = names::local_backends_variable("shop", "web", "tcp", "10.96.0.10:80");
    assert_eq!(tcp.vips.get("10.96.0.10:80"), Some(&format!("^{variable}")));
    assert_eq!(
        tcp.options.get("template").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        tcp.options.get("address-family").map(String::as_str),
        Some("ipv4")
    );
    let values = |chassis: &str| {
        state
            .model::<ChassisTemplateVar>(&RowKey::name(chassis))
            .map(|row| row.variables.get(&variable).cloned())
    };
    assert_eq!(
        values("ch-1"),
        Some(Some("10.16.0.5:8080,10.16.0.7:8080".into()))
    );
    assert_eq!(values("ch-2"), Some(Some("10.16.0.6:8080".into())));
    let owner = state
        .row::<ChassisTemplateVar>(&RowKey::name("ch-1"))
        .map(|r| r.owner.clone());
    assert_eq!(owner, Some(Owner::node("n1")));
    assert_eq!(
        state.rows::<ChassisTemplateVar>().count(),
        2,
        "a node without a chassis has no row"
    );
}

#[test]
fn a_node_without_local_endpoints_gets_an_empty_value_and_cluster_wide_services_none() {
    let mut local = web(vec![Endpoint {
        node: Some("n1".into()),
        ..endpoint("10.16.0.5", true, true, false)
    }]);
    local.local_only = true;
    let mut cluster_wide = web(vec![endpoint("10.16.0.9", true, true, false)]);
    cluster_wide.name = "api".into();
    let state = state_on(
        vec![node("n1", 2, Some("ch-1")), node("n2", 3, Some("ch-2"))],
        vec![local, cluster_wide],
    );
    let row = state
        .model::<ChassisTemplateVar>(&RowKey::name("ch-2"))
        .unwrap_or_default();
    let tcp = names::local_backends_variable("shop", "web", "tcp", "10.96.0.10:80");
    assert_eq!(row.variables.get(&tcp).map(String::as_str), Some(""));
    assert_eq!(
        row.variables.len(),
        2,
        "tcp and udp of the local Service only: {row:?}"
    );
}
