use super::*;

fn pool() -> Pool {
    Pool::new("172.30.0.240/29".parse().unwrap())
}

fn svc(name: &str, age: i64) -> LbService {
    LbService {
        namespace: "ns".into(),
        name: name.into(),
        created: Some(Timestamp::from_second(1_000_000 + age).unwrap()),
        class: Class::Ours,
        requested: None,
        status_ips: Vec::new(),
        local: false,
        endpoint_nodes: BTreeSet::new(),
        announcer: None,
        recorded: false,
    }
}

fn nodes(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(172, 30, 0, last)
}

fn ip_of(decisions: &[Decision], name: &str) -> Option<Ipv4Addr> {
    decision(decisions, name).ip
}

fn decision<'a>(decisions: &'a [Decision], name: &str) -> &'a Decision {
    decisions.iter().find(|d| d.name == name).unwrap()
}

fn reasons(decisions: &[Decision], name: &str) -> Vec<&'static str> {
    decision(decisions, name)
        .problems
        .iter()
        .map(|(r, _)| *r)
        .collect()
}

#[test]
fn the_pool_is_the_ranges_hosts() {
    let pool = pool();
    assert_eq!(pool.addresses().count(), 6);
    assert!(!pool.contains(ip(240)), "network address");
    assert!(pool.contains(ip(241)));
    assert!(!pool.contains(ip(247)), "broadcast address");
    assert!(!pool.contains(ip(248)));
    let small = Pool::new("172.30.0.250/31".parse().unwrap());
    assert_eq!(small.addresses().count(), 2);
    assert!(small.contains(ip(250)) && small.contains(ip(251)));
    for host in pool.addresses() {
        assert!(pool.contains(host), "{host}");
    }
}

#[test]
fn oldest_services_get_the_lowest_free_addresses() {
    let decisions = decide(&pool(), &[svc("b", 2), svc("a", 1)], &nodes(&["n1"]));
    assert_eq!(ip_of(&decisions, "a"), Some(ip(241)));
    assert_eq!(ip_of(&decisions, "b"), Some(ip(242)));
    assert!(decisions.iter().all(|d| d.problems.is_empty()));
}

#[test]
fn a_restart_keeps_what_the_statuses_record() {
    let mut old = svc("old", 1);
    old.status_ips = vec!["172.30.0.244".into()];
    let mut new = svc("new", 2);
    new.status_ips = vec!["172.30.0.241".into()];
    let fresh = svc("fresh", 0);
    let decisions = decide(&pool(), &[fresh, new, old], &nodes(&["n1"]));
    assert_eq!(ip_of(&decisions, "old"), Some(ip(244)));
    assert_eq!(ip_of(&decisions, "new"), Some(ip(241)));
    // The oldest Service of all had none: it takes the lowest free one, moving nobody.
    assert_eq!(ip_of(&decisions, "fresh"), Some(ip(242)));
}

#[test]
fn of_two_services_claiming_one_address_the_older_keeps_it() {
    let mut a = svc("a", 1);
    a.status_ips = vec!["172.30.0.241".into()];
    let mut b = svc("b", 2);
    b.status_ips = vec!["172.30.0.241".into()];
    let decisions = decide(&pool(), &[b, a], &nodes(&["n1"]));
    assert_eq!(ip_of(&decisions, "a"), Some(ip(241)));
    assert_eq!(ip_of(&decisions, "b"), Some(ip(242)));
    assert_eq!(reasons(&decisions, "b"), [IP_CONFLICT]);
    assert!(reasons(&decisions, "a").is_empty());
}

#[test]
fn in_the_same_second_the_address_this_controller_wrote_wins() {
    let mut written = svc("zz", 1);
    written.status_ips = vec!["172.30.0.241".into()];
    written.recorded = true;
    let mut copied = svc("aa", 1);
    copied.status_ips = vec!["172.30.0.241".into()];
    let decisions = decide(&pool(), &[copied, written], &nodes(&["n1"]));
    assert_eq!(ip_of(&decisions, "zz"), Some(ip(241)));
    assert_eq!(reasons(&decisions, "aa"), [IP_CONFLICT]);
}

#[test]
fn a_status_outside_the_pool_is_replaced() {
    let mut a = svc("a", 1);
    a.status_ips = vec!["10.0.0.1".into(), "garbage".into()];
    let decisions = decide(&pool(), &[a.clone()], &nodes(&["n1"]));
    assert_eq!(ip_of(&decisions, "a"), Some(ip(241)));
    assert!(decision(&decisions, "a").status_differs(&a, &pool()));
}

#[test]
fn a_requested_address_is_given_when_in_the_pool_and_free() {
    let mut a = svc("a", 1);
    a.requested = Some("172.30.0.245".into());
    let decisions = decide(&pool(), &[a, svc("b", 2)], &nodes(&["n1"]));
    assert_eq!(ip_of(&decisions, "a"), Some(ip(245)));
    assert_eq!(ip_of(&decisions, "b"), Some(ip(241)));
}

#[test]
fn a_request_moves_an_address_the_status_records() {
    let mut a = svc("a", 1);
    a.status_ips = vec!["172.30.0.241".into()];
    a.requested = Some("172.30.0.243".into());
    let decisions = decide(&pool(), &[a], &nodes(&["n1"]));
    assert_eq!(ip_of(&decisions, "a"), Some(ip(243)));
}

#[test]
fn a_taken_out_of_pool_or_bad_request_gets_no_address_and_says_why() {
    let mut holder = svc("holder", 1);
    holder.status_ips = vec!["172.30.0.241".into()];
    let mut taken = svc("taken", 2);
    taken.requested = Some("172.30.0.241".into());
    let mut outside = svc("outside", 3);
    outside.requested = Some("10.1.2.3".into());
    let mut bad = svc("bad", 4);
    bad.requested = Some("not-an-ip".into());
    let decisions = decide(&pool(), &[holder, taken, outside, bad], &nodes(&["n1"]));
    assert_eq!(ip_of(&decisions, "holder"), Some(ip(241)));
    for name in ["taken", "outside", "bad"] {
        assert_eq!(ip_of(&decisions, name), None, "{name}");
        assert_eq!(reasons(&decisions, name), [IP_UNAVAILABLE], "{name}");
        assert_eq!(decision(&decisions, name).announcer, None);
    }
    let messages: Vec<&str> = decisions
        .iter()
        .flat_map(|d| d.problems.iter().map(|(_, m)| m.as_str()))
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("held by Service ns/holder"))
    );
    assert!(messages.iter().any(|m| m.contains("not in the pool")));
    assert!(messages.iter().any(|m| m.contains("\"not-an-ip\"")));
}

#[test]
fn an_exhausted_pool_says_so_and_gives_the_address_once_one_frees() {
    let services: Vec<LbService> = (0..7).map(|i| svc(&format!("s{i}"), i)).collect();
    let decisions = decide(&pool(), &services, &nodes(&["n1"]));
    assert_eq!(ip_of(&decisions, "s6"), None);
    assert_eq!(reasons(&decisions, "s6"), [POOL_EXHAUSTED]);
    // s2 is deleted; the others keep theirs (as recorded), s6 gets the freed address.
    let recorded: Vec<LbService> = services
        .iter()
        .zip(&decisions)
        .filter(|(s, _)| s.name != "s2")
        .map(|(s, d)| {
            let mut s = s.clone();
            s.status_ips = d.ip.iter().map(ToString::to_string).collect();
            s
        })
        .collect();
    let again = decide(&pool(), &recorded, &nodes(&["n1"]));
    assert_eq!(ip_of(&again, "s6"), ip_of(&decisions, "s2"));
    assert!(reasons(&again, "s6").is_empty());
}

#[test]
fn foreign_classes_are_left_alone_and_rovns_class_is_served() {
    let mut foreign = svc("foreign", 1);
    foreign.class = Class::Foreign;
    foreign.status_ips = vec!["172.30.0.241".into()];
    let decisions = decide(&pool(), &[foreign, svc("mine", 2)], &nodes(&["n1"]));
    assert!(decisions.iter().all(|d| d.name != "foreign"));
    // A foreign status does not hold a pool address for rovn: the pool is rovn's.
    assert_eq!(ip_of(&decisions, "mine"), Some(ip(241)));

    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": names::LB_CLASS},
    }))
    .unwrap();
    assert_eq!(lb_service(&service, []).class, Class::Ours);
    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/other"},
    }))
    .unwrap();
    assert_eq!(lb_service(&service, []).class, Class::Foreign);
}

#[test]
fn a_service_that_stops_being_a_load_balancer_is_cleared() {
    let mut gone = svc("gone", 1);
    gone.class = Class::NotLoadBalancer;
    gone.status_ips = vec!["172.30.0.241".into()];
    gone.announcer = Some("n1".into());
    let mut untouched = svc("untouched", 2);
    untouched.class = Class::NotLoadBalancer;
    untouched.status_ips = vec!["10.9.9.9".into()];
    let decisions = decide(&pool(), &[gone.clone(), untouched], &nodes(&["n1"]));
    let d = decision(&decisions, "gone");
    assert_eq!((d.ip, d.announcer.as_deref()), (None, None));
    assert!(d.status_differs(&gone, &pool()) && d.announcer_differs(&gone));
    assert!(decisions.iter().all(|d| d.name != "untouched"));
}

#[test]
fn announcers_are_ready_nodes_chosen_deterministically_and_move_only_when_theirs_go() {
    let all = nodes(&["n1", "n2", "n3"]);
    let services: Vec<LbService> = (0..6).map(|i| svc(&format!("s{i}"), i)).collect();
    let first = decide(&pool(), &services, &all);
    assert_eq!(first, decide(&pool(), &services, &all), "deterministic");
    let used: BTreeSet<&str> = first
        .iter()
        .filter_map(|d| d.announcer.as_deref())
        .collect();
    assert!(used.len() > 1, "addresses spread over nodes: {used:?}");
    let lost = first[0].announcer.clone().unwrap();
    let rest: BTreeSet<String> = all.iter().filter(|n| **n != lost).cloned().collect();
    let after = decide(&pool(), &services, &rest);
    for (before, now) in first.iter().zip(&after) {
        assert_eq!(before.ip, now.ip, "addresses do not move with nodes");
        if before.announcer.as_deref() == Some(lost.as_str()) {
            assert!(now.announcer.as_ref().is_some_and(|n| rest.contains(n)));
        } else {
            assert_eq!(before.announcer, now.announcer, "{}", before.name);
        }
    }
    assert!(
        decide(&pool(), &services, &BTreeSet::new())
            .iter()
            .all(|d| d.announcer.is_none() && d.ip.is_some())
    );
}

#[test]
fn local_services_are_announced_by_a_node_with_a_ready_endpoint() {
    let mut local = svc("local", 1);
    local.local = true;
    local.endpoint_nodes = nodes(&["n3", "gone"]);
    let decisions = decide(&pool(), &[local.clone()], &nodes(&["n1", "n2", "n3"]));
    assert_eq!(
        decision(&decisions, "local").announcer.as_deref(),
        Some("n3")
    );
    local.endpoint_nodes.clear();
    let decisions = decide(&pool(), &[local], &nodes(&["n1", "n2", "n3"]));
    assert_eq!(decision(&decisions, "local").announcer, None);
    assert!(decision(&decisions, "local").ip.is_some());
}

#[test]
fn only_ready_nodes_not_excluded_nor_deleted_announce() {
    let node = |ready: &str, labels: serde_json::Value, deleting: bool| -> Node {
        let mut metadata = serde_json::json!({"name": "n", "labels": labels});
        if deleting {
            metadata["deletionTimestamp"] = serde_json::json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(serde_json::json!({
            "metadata": metadata,
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        }))
        .unwrap()
    };
    assert!(node_may_announce(&node(
        "True",
        serde_json::json!({}),
        false
    )));
    assert!(!node_may_announce(&node(
        "False",
        serde_json::json!({}),
        false
    )));
    assert!(!node_may_announce(&node(
        "Unknown",
        serde_json::json!({}),
        false
    )));
    assert!(!node_may_announce(&node(
        "True",
        serde_json::json!({}),
        true
    )));
    assert!(!node_may_announce(&node(
        "True",
        serde_json::json!({names::EXCLUDE_FROM_LB_LABEL: ""}),
        false
    )));
}

#[test]
fn a_service_reads_into_its_allocation_view() {
    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "ns",
                     "annotations": {names::LB_NODE_ANNOTATION: "n2"}},
        "spec": {"type": "LoadBalancer", "loadBalancerIP": "172.30.0.242",
                 "externalTrafficPolicy": "Local"},
        "status": {"loadBalancer": {"ingress": [{"ip": "172.30.0.242"}, {"hostname": "x"}]}},
    }))
    .unwrap();
    let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-1", "namespace": "ns"},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.16.0.5"], "nodeName": "n1", "conditions": {"ready": true}},
            {"addresses": ["10.16.0.6"], "nodeName": "n2", "conditions": {"ready": false}},
            {"addresses": ["10.16.0.7"], "nodeName": "n3"},
        ],
    }))
    .unwrap();
    let view = lb_service(&service, [&slice]);
    assert_eq!(view.class, Class::Ours);
    assert_eq!(view.requested.as_deref(), Some("172.30.0.242"));
    assert_eq!(view.status_ips, ["172.30.0.242"]);
    assert!(view.local);
    assert_eq!(view.endpoint_nodes, nodes(&["n1", "n3"]));
    assert_eq!(view.announcer.as_deref(), Some("n2"));
    let plain: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"type": "ClusterIP"},
    }))
    .unwrap();
    assert_eq!(lb_service(&plain, []).class, Class::NotLoadBalancer);
}
