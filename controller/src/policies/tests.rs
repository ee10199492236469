use super::*;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, ObjectMeta};

fn network_policy(spec: NetworkPolicySpec) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            namespace: Some("x".into()),
            name: Some("p".into()),
            ..Default::default()
        },
        spec: Some(spec),
    }
}

fn port(protocol: Option<&str>, port: Option<IntOrString>, end: Option<i32>) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: protocol.map(str::to_string),
        port,
        end_port: end,
    }
}

#[test]
fn policy_types_are_implied_as_the_api_defines() {
    let ingress_only = policy_view(&network_policy(NetworkPolicySpec::default()));
    let Some(policy) = ingress_only.policy else {
        panic!("not rendered");
    };
    assert_eq!(
        policy.ingress,
        Some(Vec::new()),
        "Ingress is always implied"
    );
    assert_eq!(policy.egress, None);
    let with_egress = policy_view(&network_policy(NetworkPolicySpec {
        egress: Some(vec![NetworkPolicyEgressRule::default()]),
        ..Default::default()
    }));
    let Some(policy) = with_egress.policy else {
        panic!("not rendered");
    };
    assert!(policy.egress.is_some(), "egress rules imply Egress");
    assert_eq!(
        policy.egress.and_then(|r| r.first().cloned()),
        Some(PolicyRule {
            peers: None,
            ports: None
        }),
        "an empty rule allows everything"
    );
}

#[test]
fn unenforceable_parts_are_left_out_and_named() {
    let view = policy_view(&network_policy(NetworkPolicySpec {
        ingress: Some(vec![NetworkPolicyIngressRule {
            from: Some(vec![
                NetworkPolicyPeer {
                    ip_block: Some(IPBlock {
                        cidr: "fd00::/64".into(),
                        except: None,
                    }),
                    ..Default::default()
                },
                NetworkPolicyPeer {
                    ip_block: Some(IPBlock {
                        cidr: "10.0.0.0/8".into(),
                        except: Some(vec!["192.168.0.0/16".into()]),
                    }),
                    ..Default::default()
                },
            ]),
            ports: Some(vec![
                port(Some("ICMP"), None, None),
                port(None, Some(IntOrString::Int(90)), Some(80)),
                port(None, Some(IntOrString::String("http".into())), Some(90)),
                port(Some("UDP"), Some(IntOrString::Int(53)), None),
            ]),
        }]),
        ..Default::default()
    }));
    let Some(policy) = view.policy else {
        panic!("not rendered");
    };
    let rule = policy.ingress.and_then(|r| r.first().cloned());
    assert_eq!(
        rule,
        Some(PolicyRule {
            peers: Some(Vec::new()),
            ports: Some(vec![PolicyPort::Range {
                protocol: Protocol::Udp,
                start: 53,
                end: 53
            }]),
        }),
        "left-out peers allow less, never more"
    );
    assert_eq!(view.ignored.len(), 5, "{:?}", view.ignored);
    for (needle, field) in [
        ("IPv6", "from[0]"),
        ("not inside", "from[1]"),
        ("unknown", "ports[0]"),
        ("below", "ports[1]"),
        ("endPort needs", "ports[2]"),
    ] {
        assert!(
            view.ignored
                .iter()
                .any(|i| i.contains(needle) && i.contains(field)),
            "{needle} {field}: {:?}",
            view.ignored
        );
    }
}

#[test]
fn a_policy_with_an_unreadable_pod_selector_is_not_rendered() {
    let view = policy_view(&network_policy(NetworkPolicySpec {
        pod_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: "Matches".into(),
                values: None,
            }]),
            match_labels: None,
        }),
        ..Default::default()
    }));
    assert_eq!(view.policy, None);
    assert!(
        view.unreadable.is_some_and(|r| r.contains("Matches")),
        "the reason names the operator"
    );
}

#[test]
fn a_peer_with_both_selectors_needs_both() {
    let view = policy_view(&network_policy(NetworkPolicySpec {
        ingress: Some(vec![NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector::default()),
                pod_selector: Some(LabelSelector {
                    match_labels: Some([("app".to_string(), "a".to_string())].into()),
                    match_expressions: None,
                }),
                ip_block: None,
            }]),
            ports: None,
        }]),
        ..Default::default()
    }));
    let peers = view
        .policy
        .and_then(|p| p.ingress)
        .and_then(|r| r.first().cloned())
        .and_then(|r| r.peers);
    assert_eq!(
        peers,
        Some(vec![Peer::Pods {
            namespaces: Some(Selector::everything()),
            pods: Selector {
                labels: [("app".to_string(), "a".to_string())].into(),
                requirements: Vec::new(),
            },
        }])
    );
}

#[test]
fn the_log_annotation_turns_on_what_it_names() {
    let mut object = network_policy(NetworkPolicySpec::default());
    object.metadata.annotations =
        Some([(ACL_LOG_ANNOTATION.to_string(), "deny, loud".to_string())].into());
    let view = policy_view(&object);
    assert_eq!(
        view.policy.map(|p| p.log),
        Some(AclLog {
            allow: false,
            deny: true
        })
    );
    assert!(view.ignored.iter().any(|i| i.contains("loud")));
}
