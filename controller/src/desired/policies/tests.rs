use super::*;
use crate::desired::cluster::{AclLog, Protocol};
use crate::desired::selector::Selector;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pod(namespace: &str, name: &str, node: &str, ip: &str, app: &str) -> PolicyPod {
    PolicyPod {
        namespace: namespace.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        node: node.into(),
        ip: ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
        labels: labels(&[("app", app)]),
        named_ports: Vec::new(),
    }
}

/// Namespaces x (team=a) and y (team=b); web pods in x on two nodes, a client in y.
fn pods() -> PolicyPods {
    let mut pods = PolicyPods::default();
    pods.set_namespace("x", Some(labels(&[("team", "a")])));
    pods.set_namespace("y", Some(labels(&[("team", "b")])));
    let mut web1 = pod("x", "web1", "n1", "10.16.0.2", "web");
    web1.named_ports = vec![("http".into(), Protocol::Tcp, 80)];
    let mut web2 = pod("x", "web2", "n2", "10.16.0.3", "web");
    web2.named_ports = vec![("http".into(), Protocol::Tcp, 8080)];
    for p in [
        web1,
        web2,
        pod("x", "db", "n1", "10.16.0.4", "db"),
        pod("y", "client", "n2", "10.16.0.5", "client"),
    ] {
        let (namespace, name) = (p.namespace.clone(), p.name.clone());
        pods.set_pod(&namespace, &name, Some(p));
    }
    pods
}

fn policy(ingress: Option<Vec<PolicyRule>>, egress: Option<Vec<PolicyRule>>) -> Policy {
    Policy {
        namespace: "x".into(),
        name: "p".into(),
        subject: Selector {
            labels: labels(&[("app", "web")]),
            requirements: Vec::new(),
        },
        ingress,
        egress,
        log: AclLog::default(),
    }
}

fn acl(state: &DesiredState, owner: &str, id: &str) -> Option<Acl> {
    state.model::<Acl>(&RowKey::owned(owner, id))
}

fn group_members(state: &DesiredState, name: &str) -> BTreeSet<String> {
    state
        .row::<PortGroup>(&RowKey::name(name))
        .and_then(|row| row.refs.iter().find(|r| r.column == PortGroup::PORTS))
        .map(|r| r.keys.iter().map(|k| k.as_str().to_string()).collect())
        .unwrap_or_default()
}

fn set_addresses(state: &DesiredState, set: &str) -> BTreeSet<String> {
    let name = names::policy_address_set("x", "p", set);
    state
        .model::<AddressSet>(&RowKey::name(&name))
        .map(|s| s.addresses)
        .unwrap_or_default()
}

#[test]
fn a_policy_groups_the_pods_it_selects_and_allows_its_peers() {
    let rule = PolicyRule {
        peers: Some(vec![Peer::Pods {
            namespaces: Some(Selector {
                labels: labels(&[("team", "b")]),
                requirements: Vec::new(),
            }),
            pods: Selector::everything(),
        }]),
        ports: Some(vec![PolicyPort::Range {
            protocol: Protocol::Tcp,
            start: 80,
            end: 81,
        }]),
    };
    let mut state = DesiredState::default();
    render_policy(&mut state, &policy(Some(vec![rule]), None), &pods());
    let group = names::policy_port_group("x", "p");
    assert_eq!(
        group_members(&state, &group),
        BTreeSet::from(["web1.x".to_string(), "web2.x".to_string()])
    );
    assert_eq!(
        set_addresses(&state, "ingress.0"),
        BTreeSet::from(["10.16.0.5".to_string()]),
        "namespace y's pods only"
    );
    let Some(acl) = acl(&state, "NetworkPolicy/x/p", "ingress.0") else {
        panic!("no ACL for the rule");
    };
    let set = names::policy_address_set("x", "p", "ingress.0");
    assert_eq!(
        acl.match_,
        format!(
            "outport == @{group} && ip4 && ip4.src == ${set} && (tcp.dst >= 80 && tcp.dst <= 81)"
        )
    );
    assert_eq!(acl.direction, AclDirection::ToLport);
    assert_eq!(acl.action, AclAction::AllowRelated);
    assert_eq!(acl.priority, ALLOW_PRIORITY);
    assert!(acl.options.is_empty(), "apply-after-lb is for egress only");
    assert_eq!(acl.name.as_deref(), Some("x/p:ingress.0"));
}

#[test]
fn a_named_port_is_resolved_on_each_destination_pod() {
    let rule = PolicyRule {
        peers: None,
        ports: Some(vec![PolicyPort::Named {
            protocol: Protocol::Tcp,
            name: "http".into(),
        }]),
    };
    let mut state = DesiredState::default();
    render_policy(&mut state, &policy(Some(vec![rule]), None), &pods());
    assert_eq!(
        set_addresses(&state, "ingress.0.http.tcp.80"),
        BTreeSet::from(["10.16.0.2".to_string()])
    );
    assert_eq!(
        set_addresses(&state, "ingress.0.http.tcp.8080"),
        BTreeSet::from(["10.16.0.3".to_string()])
    );
    let Some(acl) = acl(&state, "NetworkPolicy/x/p", "ingress.0") else {
        panic!("no ACL for the rule");
    };
    let s80 = names::policy_address_set("x", "p", "ingress.0.http.tcp.80");
    let s8080 = names::policy_address_set("x", "p", "ingress.0.http.tcp.8080");
    assert!(
        acl.match_.ends_with(&format!(
            "((ip4.dst == ${s80} && tcp.dst == 80) || (ip4.dst == ${s8080} && tcp.dst == 8080))"
        )),
        "{}",
        acl.match_
    );
}

#[test]
fn egress_rules_see_backends_and_blocks_keep_their_exceptions() {
    let rule = PolicyRule {
        peers: Some(vec![Peer::Block {
            cidr: "10.16.0.0/24".parse().unwrap_or_default(),
            except: vec!["10.16.0.4/32".parse().unwrap_or_default()],
        }]),
        ports: None,
    };
    let mut state = DesiredState::default();
    render_policy(&mut state, &policy(None, Some(vec![rule])), &pods());
    let Some(acl) = acl(&state, "NetworkPolicy/x/p", "egress.0") else {
        panic!("no ACL for the rule");
    };
    assert_eq!(acl.direction, AclDirection::FromLport);
    assert_eq!(
        acl.options.get("apply-after-lb").map(String::as_str),
        Some("true")
    );
    assert!(
        acl.match_
            .ends_with("(ip4.dst == 10.16.0.0/24 && ip4.dst != {10.16.0.4/32})"),
        "{}",
        acl.match_
    );
    assert!(acl.match_.starts_with("inport == @"), "{}", acl.match_);
}

#[test]
fn a_rule_left_without_peers_or_ports_allows_nothing() {
    let rules = vec![
        PolicyRule {
            peers: Some(Vec::new()),
            ports: None,
        },
        PolicyRule {
            peers: None,
            ports: Some(Vec::new()),
        },
    ];
    let mut state = DesiredState::default();
    render_policy(&mut state, &policy(Some(rules), None), &pods());
    assert!(acl(&state, "NetworkPolicy/x/p", "ingress.0").is_none());
    assert!(acl(&state, "NetworkPolicy/x/p", "ingress.1").is_none());
}

#[test]
fn a_namespace_isolates_only_the_directions_its_policies_do() {
    let isolating = policy(Some(Vec::new()), None);
    let mut other = policy(Some(Vec::new()), None);
    other.name = "q".into();
    other.subject = Selector {
        labels: labels(&[("app", "db")]),
        requirements: Vec::new(),
    };
    other.log.deny = true;
    let mut state = DesiredState::default();
    render_namespace(&mut state, "x", &[&isolating, &other], &pods());
    let ingress = names::default_deny_port_group("x", "ingress");
    assert_eq!(
        group_members(&state, &ingress),
        BTreeSet::from(["web1.x".into(), "web2.x".into(), "db.x".into()])
    );
    assert!(
        state
            .row::<PortGroup>(&RowKey::name(names::default_deny_port_group("x", "egress")))
            .is_none(),
        "no policy isolates egress"
    );
    let Some(deny) = acl(&state, "Namespace/x", "deny-ingress") else {
        panic!("no deny ACL");
    };
    assert_eq!(deny.action, AclAction::Drop);
    assert_eq!(deny.priority, DENY_PRIORITY);
    assert_eq!(deny.match_, format!("outport == @{ingress} && ip"));
    assert!(deny.log, "one policy asking for deny logs is enough");
}

#[test]
fn a_node_group_holds_its_pods_and_lets_the_node_in() {
    let node = Node {
        name: "n1".into(),
        join_ip: "100.64.0.2".parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
        join_mac: rovn_api::MacAddr::derived_from(
            "100.64.0.2".parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
        ),
        chassis: None,
        internal_ip: None,
    };
    let mut state = DesiredState::default();
    render_node_group(&mut state, &node, &pods());
    let group = names::node_port_group("n1");
    assert_eq!(
        group_members(&state, &group),
        BTreeSet::from(["web1.x".into(), "db.x".into()])
    );
    let Some(from_node) = acl(&state, "Node/n1", "from-node") else {
        panic!("no from-node ACL");
    };
    assert_eq!(
        from_node.match_,
        format!("outport == @{group} && ip4.src == 100.64.0.2")
    );
    assert_eq!(from_node.priority, NODE_PRIORITY);
}

#[test]
fn changes_to_a_pod_reach_the_policies_whose_sets_hold_it() {
    let pods = pods();
    let rule = PolicyRule {
        peers: Some(vec![Peer::Pods {
            namespaces: Some(Selector {
                labels: labels(&[("team", "b")]),
                requirements: Vec::new(),
            }),
            pods: Selector::everything(),
        }]),
        ports: None,
    };
    let policy = policy(Some(vec![rule]), None);
    let client = pods.pod("y", "client").cloned();
    let db = pods.pod("x", "db").cloned();
    assert!(client.is_some_and(|c| pods.places(&policy, &c).is_some()));
    assert!(
        db.is_some_and(|d| pods.places(&policy, &d).is_none()),
        "db is neither a peer nor a named-port destination"
    );
}

#[test]
fn a_label_change_within_a_broad_peer_leaves_the_pods_places() {
    let mut pods = pods();
    // Peers: every pod of team b (broad), and web pods of x; a named port on the web pods.
    let rule = PolicyRule {
        peers: Some(vec![
            Peer::Pods {
                namespaces: Some(Selector {
                    labels: labels(&[("team", "b")]),
                    requirements: Vec::new(),
                }),
                pods: Selector::everything(),
            },
            Peer::Pods {
                namespaces: None,
                pods: Selector {
                    labels: labels(&[("app", "db")]),
                    requirements: Vec::new(),
                },
            },
        ]),
        ports: Some(vec![PolicyPort::Named {
            protocol: Protocol::Tcp,
            name: "http".into(),
        }]),
    };
    let policy = policy(Some(vec![rule]), None);
    let places = |pods: &PolicyPods, ns: &str, name: &str| {
        pods.pod(ns, name).and_then(|p| pods.places(&policy, p))
    };
    // The client of team b stays a peer whatever its app label.
    let before = places(&pods, "y", "client");
    let mut client = pods
        .pod("y", "client")
        .cloned()
        .unwrap_or_else(|| pod("y", "c", "n", "1.1.1.1", "x"));
    client.labels = labels(&[("app", "other")]);
    pods.set_pod("y", "client", Some(client));
    assert!(before.is_some());
    assert_eq!(places(&pods, "y", "client"), before);
    // A pod of x moving into the db peer changes its place.
    let before = places(&pods, "x", "web1");
    let mut web1 = pods
        .pod("x", "web1")
        .cloned()
        .unwrap_or_else(|| pod("x", "w", "n", "1.1.1.2", "x"));
    web1.labels = labels(&[("app", "db")]);
    pods.set_pod("x", "web1", Some(web1));
    assert_ne!(places(&pods, "x", "web1"), before);
    // A selected web pod is a destination of the named port: its number is its place.
    assert_eq!(
        places(&pods, "x", "web2"),
        Some(vec![RulePlace {
            in_peers: false,
            numbers: Some(vec![Some(8080)]),
        }])
    );
    assert_eq!(places(&pods, "y", "nobody"), None);
}
