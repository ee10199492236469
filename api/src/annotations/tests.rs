use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::MacAddr;
use crate::names::annotations::{
    ALLOCATED, CHASSIS, CIDR, GATEWAY, IP_ADDRESS, JOIN_IP, JOIN_MAC, LOGICAL_SWITCH, MAC_ADDRESS,
    ROUTED,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;

use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn allocated_pod() -> BTreeMap<String, String> {
    map(&[
        (IP_ADDRESS, "10.16.0.5"),
        (MAC_ADDRESS, "0a:58:0a:10:00:05"),
        (CIDR, "10.16.0.0/16"),
        (GATEWAY, "10.16.0.1"),
        (LOGICAL_SWITCH, "ovn-default"),
        (ALLOCATED, "true"),
    ])
}

fn with(mut m: BTreeMap<String, String>, key: &str, value: &str) -> BTreeMap<String, String> {
    m.insert(key.to_string(), value.to_string());
    m
}

#[test]
fn error_display_names_key_value_and_reason() {
    let err = parse_pod_request(&map(&[(IP_ADDRESS, "10.16.0.300")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"annotation rovn.io/ip_address="10.16.0.300": not an IP address"#
    );
}

#[test]
fn pod_request_reads_each_optional_key() {
    assert_eq!(parse_pod_request(&map(&[])), Ok(PodRequest::default()));
    let request = parse_pod_request(&map(&[
        (IP_ADDRESS, "10.16.0.9"),
        (MAC_ADDRESS, "0a:58:0a:10:00:99"),
        (LOGICAL_SWITCH, "blue"),
    ]))
    .unwrap();
    assert_eq!(request.ip, Some(IpAddr::V4(Ipv4Addr::new(10, 16, 0, 9))));
    assert_eq!(
        request.mac,
        Some(MacAddr([0x0a, 0x58, 0x0a, 0x10, 0, 0x99]))
    );
    assert_eq!(request.switch.as_deref(), Some("blue"));
}

#[test]
fn pod_request_rejects_malformed_values() {
    for (key, value, reason) in [
        (IP_ADDRESS, "10.16.0.0/16", "not an IP address"),
        (MAC_ADDRESS, "01:00:5e:00:00:01", "multicast"),
        (MAC_ADDRESS, "0a:58", "not six hex octets"),
        (LOGICAL_SWITCH, "", "empty"),
        (LOGICAL_SWITCH, "a b", "whitespace"),
    ] {
        let err = parse_pod_request(&map(&[(key, value)])).unwrap_err();
        assert_eq!((err.key.as_str(), err.value.as_str()), (key, value));
        assert!(err.reason.contains(reason), "{err}");
    }
}

#[test]
fn allocation_absent_unless_allocated_is_true() {
    assert_eq!(parse_pod_allocation(&map(&[])), Ok(None));
    let pod = allocated_pod();
    assert_eq!(
        parse_pod_allocation(&with(pod.clone(), ALLOCATED, "false")),
        Ok(None)
    );
    assert_eq!(
        parse_pod_allocation(&with(pod, ALLOCATED, "True")),
        Ok(None)
    );
    // A user's static request alone is not an allocation.
    assert_eq!(
        parse_pod_allocation(&map(&[(IP_ADDRESS, "10.16.0.5")])),
        Ok(None)
    );
}

#[test]
fn allocation_parses_what_the_contract_shows() {
    let allocation = parse_pod_allocation(&allocated_pod()).unwrap().unwrap();
    assert_eq!(
        allocation,
        PodAllocation {
            ip: Ipv4Addr::new(10, 16, 0, 5).into(),
            mac: MacAddr::derived_from(Ipv4Addr::new(10, 16, 0, 5)),
            cidr: "10.16.0.0/16".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 16, 0, 1).into(),
            switch: "ovn-default".into(),
        }
    );
    assert_eq!(render_pod_allocation(&allocation), allocated_pod());
}

#[test]
fn allocation_rejects_missing_malformed_and_inconsistent_values() {
    let cases: Vec<(BTreeMap<String, String>, &str, &str)> = vec![
        (
            {
                let mut m = allocated_pod();
                m.remove(MAC_ADDRESS);
                m
            },
            MAC_ADDRESS,
            "missing",
        ),
        (
            {
                let mut m = allocated_pod();
                m.remove(LOGICAL_SWITCH);
                m
            },
            LOGICAL_SWITCH,
            "missing",
        ),
        (
            with(allocated_pod(), IP_ADDRESS, "10.16.0.300"),
            IP_ADDRESS,
            "not an IP address",
        ),
        (
            with(allocated_pod(), CIDR, "10.16.0.0"),
            CIDR,
            "not an IP CIDR",
        ),
        (
            with(allocated_pod(), CIDR, "10.16.0.1/16"),
            CIDR,
            "host bits",
        ),
        (
            with(allocated_pod(), CIDR, "10.16.0.4/31"),
            CIDR,
            "no host addresses",
        ),
        (
            with(allocated_pod(), IP_ADDRESS, "10.17.0.5"),
            IP_ADDRESS,
            "outside 10.16.0.0/16",
        ),
        (
            with(allocated_pod(), IP_ADDRESS, "10.16.255.255"),
            IP_ADDRESS,
            "not a host address",
        ),
        (
            with(allocated_pod(), GATEWAY, "10.15.0.1"),
            GATEWAY,
            "outside",
        ),
        (
            with(allocated_pod(), GATEWAY, "10.16.0.0"),
            GATEWAY,
            "not a host address",
        ),
        (
            with(allocated_pod(), IP_ADDRESS, "10.16.0.1"),
            IP_ADDRESS,
            "is the gateway",
        ),
    ];
    for (annotations, key, reason) in cases {
        let err = parse_pod_allocation(&annotations).unwrap_err();
        assert_eq!(err.key, key, "{err}");
        assert!(err.reason.contains(reason), "{err}");
    }
}

#[test]
fn routed_only_when_true() {
    assert!(!is_routed(&map(&[])));
    assert!(!is_routed(&map(&[(ROUTED, "yes")])));
    assert!(is_routed(&map(&[(ROUTED, "true")])));
}

fn joined_node() -> BTreeMap<String, String> {
    map(&[
        (JOIN_IP, "100.64.0.2"),
        (JOIN_MAC, "0a:58:64:40:00:02"),
        (CIDR, "100.64.0.0/16"),
        (GATEWAY, "100.64.0.1"),
    ])
}

#[test]
fn node_join_parses_renders_and_checks() {
    assert_eq!(parse_node_join(&map(&[(CHASSIS, "abc")])), Ok(None));
    let join = parse_node_join(&joined_node()).unwrap().unwrap();
    assert_eq!(join.ip, IpAddr::V4(Ipv4Addr::new(100, 64, 0, 2)));
    assert_eq!(render_node_join(&join), joined_node());

    let mut half = joined_node();
    half.remove(JOIN_IP);
    let err = parse_node_join(&half).unwrap_err();
    assert_eq!(
        (err.key.as_str(), err.reason.as_str()),
        (JOIN_IP, "missing")
    );
    let err = parse_node_join(&with(joined_node(), JOIN_IP, "10.16.0.2")).unwrap_err();
    assert_eq!(err.key, JOIN_IP);
    let err = parse_node_join(&with(joined_node(), JOIN_MAC, "ff:ff:ff:ff:ff:ff")).unwrap_err();
    assert_eq!(err.key, JOIN_MAC);
}

#[test]
fn ipv6_parses_but_is_refused_in_ipv4() {
    let pod = map(&[
        (IP_ADDRESS, "fd00:10:16::5"),
        (MAC_ADDRESS, "0a:58:00:00:00:05"),
        (CIDR, "fd00:10:16::/64"),
        (GATEWAY, "fd00:10:16::1"),
        (LOGICAL_SWITCH, "ovn-default"),
        (ALLOCATED, "true"),
    ]);
    let allocation = parse_pod_allocation(&pod).unwrap().unwrap();
    assert_eq!(render_pod_allocation(&allocation), pod);
    let err = Ipv4PodAllocation::try_from(allocation).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"annotation rovn.io/ip_address="fd00:10:16::5": IPv6 is not configured in this cluster"#
    );

    let request = parse_pod_request(&map(&[(IP_ADDRESS, "fd00::9")])).unwrap();
    let err = Ipv4PodRequest::try_from(request).unwrap_err();
    assert_eq!(
        (err.key.as_str(), err.reason.as_str()),
        (IP_ADDRESS, IPV6_NOT_CONFIGURED)
    );
    assert_eq!(
        Ipv4PodRequest::try_from(PodRequest::<IpAddr>::default()),
        Ok(Ipv4PodRequest::default())
    );

    let join = map(&[
        (JOIN_IP, "fd00:64::2"),
        (JOIN_MAC, "0a:58:00:00:00:02"),
        (CIDR, "fd00:64::/64"),
        (GATEWAY, "fd00:64::1"),
    ]);
    let join = parse_node_join(&join).unwrap().unwrap();
    assert_eq!(Ipv4NodeJoin::try_from(join).unwrap_err().key, JOIN_IP);

    let err = parse_pod_allocation(&with(pod, CIDR, "fd00:10:16::/127")).unwrap_err();
    assert!(err.reason.contains("/126 or shorter"), "{err}");
}

#[test]
fn ipv4_forms_convert_both_ways() {
    let allocation = parse_pod_allocation(&allocated_pod()).unwrap().unwrap();
    let v4 = Ipv4PodAllocation::try_from(allocation.clone()).unwrap();
    assert_eq!(v4.ip, Ipv4Addr::new(10, 16, 0, 5));
    assert_eq!(PodAllocation::from(v4), allocation);
    let join = parse_node_join(&joined_node()).unwrap().unwrap();
    let v4 = Ipv4NodeJoin::try_from(join.clone()).unwrap();
    assert_eq!(v4.gateway, Ipv4Addr::new(100, 64, 0, 1));
    assert_eq!(NodeJoin::from(v4), join);
}

#[test]
fn chassis_is_trimmed_and_blank_means_absent() {
    assert_eq!(parse_chassis(&map(&[])), None);
    assert_eq!(parse_chassis(&map(&[(CHASSIS, "  ")])), None);
    assert_eq!(
        parse_chassis(&map(&[(CHASSIS, "c0ffee-1\n")])).as_deref(),
        Some("c0ffee-1")
    );
}

/// A CIDR /8../30 with a host address and a distinct gateway inside it.
fn arb_v4_addressing() -> impl Strategy<Value = (IpNet, IpAddr, IpAddr)> {
    (any::<u32>(), 8u8..=30, any::<u32>(), any::<u32>()).prop_filter_map(
        "ip and gateway must differ",
        |(base, prefix, a, b)| {
            let cidr = Ipv4Net::new(Ipv4Addr::from(base), prefix).ok()?.trunc();
            let hosts = (1u32 << (32 - prefix)) - 2;
            let host = |n: u32| Ipv4Addr::from(u32::from(cidr.network()) + 1 + n % hosts);
            let (ip, gateway) = (host(a), host(b));
            (ip != gateway).then_some((cidr.into(), ip.into(), gateway.into()))
        },
    )
}

/// A CIDR /64../126 with a host address and a distinct gateway inside it.
fn arb_v6_addressing() -> impl Strategy<Value = (IpNet, IpAddr, IpAddr)> {
    (any::<u128>(), 64u8..=126, any::<u128>(), any::<u128>()).prop_filter_map(
        "ip and gateway must differ",
        |(base, prefix, a, b)| {
            let cidr = Ipv6Net::new(Ipv6Addr::from(base), prefix).ok()?.trunc();
            let hosts = (1u128 << (128 - prefix)) - 2;
            let host = |n: u128| Ipv6Addr::from(u128::from(cidr.network()) + 1 + n % hosts);
            let (ip, gateway) = (host(a), host(b));
            (ip != gateway).then_some((cidr.into(), ip.into(), gateway.into()))
        },
    )
}

/// Either family.
fn arb_addressing() -> impl Strategy<Value = (IpNet, IpAddr, IpAddr)> {
    prop_oneof![arb_v4_addressing(), arb_v6_addressing()]
}

fn arb_mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_filter_map("unicast, non-zero", |mut b| {
        b[0] &= 0xfe;
        (b != [0; 6]).then_some(MacAddr(b))
    })
}

proptest! {
    #[test]
    fn pod_allocation_round_trips(
        (cidr, ip, gateway) in arb_addressing(),
        mac in arb_mac(),
        switch in "[a-z0-9][a-z0-9.-]{0,40}",
    ) {
        let allocation = PodAllocation { ip, mac, cidr, gateway, switch };
        let rendered = render_pod_allocation(&allocation);
        prop_assert_eq!(parse_pod_allocation(&rendered), Ok(Some(allocation)));
    }

    #[test]
    fn node_join_round_trips((cidr, ip, gateway) in arb_addressing(), mac in arb_mac()) {
        let join = NodeJoin { ip, mac, cidr, gateway };
        prop_assert_eq!(parse_node_join(&render_node_join(&join)), Ok(Some(join)));
    }

    #[test]
    fn arbitrary_values_never_panic(
        values in proptest::collection::vec(".{0,24}", 10),
        allocated in prop_oneof![Just("true".to_string()), ".{0,6}"],
    ) {
        let keys = [IP_ADDRESS, MAC_ADDRESS, CIDR, GATEWAY, LOGICAL_SWITCH, ROUTED, JOIN_IP,
            JOIN_MAC, CHASSIS];
        let mut annotations: BTreeMap<String, String> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        annotations.insert(ALLOCATED.to_string(), allocated);
        let _ = parse_pod_request(&annotations);
        let _ = parse_pod_allocation(&annotations);
        let _ = parse_node_join(&annotations);
        let _ = parse_chassis(&annotations);
        let _ = is_routed(&annotations);
    }
}
