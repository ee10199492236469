use super::*;
use crate::netdev::link::OperState;

fn facts(index: u32, is_veth: bool, peer_index: Option<u32>) -> LinkFacts {
    LinkFacts {
        index,
        name: format!("if{index}"),
        mac: None,
        mtu: Some(1500),
        is_veth,
        peer_index,
        peer_netns_id: Some(0),
        admin_up: true,
        oper_state: OperState::Up,
    }
}

#[test]
fn paired_ends_are_reused() {
    let host = facts(10, true, Some(2));
    let pod_end = facts(2, true, Some(10));
    assert_eq!(plan_attach(Some(&host), Some(&pod_end)), AttachPlan::Reuse);
}

#[test]
fn leftover_host_end_is_replaced() {
    let host = facts(10, true, Some(2));
    assert_eq!(
        plan_attach(Some(&host), None),
        AttachPlan::Create {
            remove_leftover_host: true
        }
    );
    assert_eq!(
        plan_attach(None, None),
        AttachPlan::Create {
            remove_leftover_host: false
        }
    );
}

#[test]
fn foreign_sandbox_interface_is_a_conflict() {
    let host = facts(10, true, Some(3));
    let someone_elses = facts(2, true, Some(99));
    let not_a_veth = facts(2, false, None);
    assert!(matches!(
        plan_attach(Some(&host), Some(&someone_elses)),
        AttachPlan::Conflict(_)
    ));
    assert!(matches!(
        plan_attach(None, Some(&someone_elses)),
        AttachPlan::Conflict(_)
    ));
    assert!(matches!(
        plan_attach(None, Some(&not_a_veth)),
        AttachPlan::Conflict(_)
    ));
}

#[test]
fn bad_requests_are_refused_before_any_syscall() {
    let good = PodInterfaceSpec {
        sandbox: "/run/netns/x".into(),
        ifname: "eth0".to_string(),
        mac: MacAddr([0x0a, 0x58, 10, 16, 0, 5]),
        address: "10.16.0.5/16".parse().unwrap(),
        gateway: "10.16.0.1".parse().unwrap(),
        mtu: 1400,
        tx_checksum_offload: false,
    };
    assert!(validate_attach("rovn0123456789a", &good).is_ok());
    assert!(validate_attach("rovn0123456789ab", &good).is_err());
    let cases = [
        PodInterfaceSpec {
            mtu: 67,
            ..good.clone()
        },
        PodInterfaceSpec {
            mtu: 70000,
            ..good.clone()
        },
        PodInterfaceSpec {
            mac: MacAddr([0; 6]),
            ..good.clone()
        },
        PodInterfaceSpec {
            mac: MacAddr([1, 0, 0, 0, 0, 1]),
            ..good.clone()
        },
        PodInterfaceSpec {
            gateway: "10.16.0.5".parse().unwrap(),
            ..good.clone()
        },
        PodInterfaceSpec {
            ifname: String::new(),
            ..good.clone()
        },
    ];
    for spec in cases {
        assert!(
            validate_attach("rovn0123456789a", &spec).is_err(),
            "{spec:?} accepted"
        );
    }
}
