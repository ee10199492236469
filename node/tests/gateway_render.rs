//! The `ip rovn` batch as the renderer writes it (pure; no nft needed): which map each kind of
//! target lands in, merged ranges, the one-table transaction, rule fingerprints that change
//! with the rule, and the incremental transaction that names only what changed.

mod gateway_support;
mod netdev_support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use gateway_support::state_with;
use ipnet::Ipv4Net;
use nftables::schema::NfListObject;
use rovn_node::gateway::render::{
    DNAT_ADDRS, DNAT_CHAINS, DNAT_PORTS, TABLE, batch, contents, delta, local_chain_name, ranges,
    to_json,
};
use rovn_node::gateway::{Frontend, GatewayState, Protocol, Target};

fn fe(port: u16) -> Frontend {
    Frontend {
        addr: Ipv4Addr::new(192, 0, 2, 1),
        protocol: Protocol::Tcp,
        port,
    }
}

fn elements_of(document: &serde_json::Value, name: &str) -> Vec<String> {
    document["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["add"]["element"]["name"] == name)
        .flat_map(|o| {
            o["add"]["element"]["elem"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn ranges_merge_and_only_nat_outgoing_subnets_are_masqueraded() {
    let (cluster, nat) = ranges(&state_with(BTreeMap::new()));
    let text = |v: Vec<Ipv4Net>| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        text(cluster),
        ["10.16.0.0/15", "10.96.0.0/12", "100.64.0.0/16"]
    );
    assert_eq!(text(nat), ["10.16.0.0/16"]);
}

#[test]
fn each_target_kind_lands_in_its_map_and_local_ones_balance_or_drop() {
    let ep = |last: u8| SocketAddrV4::new(Ipv4Addr::new(10, 16, 0, last), 8080);
    let forwards = BTreeMap::from([
        (
            fe(30080),
            Target::ClusterIp(SocketAddrV4::new(Ipv4Addr::new(10, 96, 0, 10), 80)),
        ),
        (
            fe(30081),
            Target::Local {
                owner: "Service/a/one".into(),
                endpoints: vec![ep(5)],
            },
        ),
        (
            fe(30082),
            Target::Local {
                owner: "Service/a/none".into(),
                endpoints: vec![],
            },
        ),
        (
            fe(30083),
            Target::Local {
                owner: "Service/a/two".into(),
                endpoints: vec![ep(5), ep(6)],
            },
        ),
        (fe(8000), Target::HostPort(ep(7))),
    ]);
    let document = to_json(&batch(&state_with(forwards)));
    let addrs = elements_of(&document, DNAT_ADDRS);
    let ports = elements_of(&document, DNAT_PORTS);
    assert_eq!(addrs.len(), 3, "{addrs:?}");
    assert_eq!(ports.len(), 3, "{ports:?}");
    assert!(
        addrs
            .iter()
            .any(|e| e.contains("30081") && e.contains("10.16.0.5"))
    );
    assert!(
        ports
            .iter()
            .any(|e| e.contains("8000") && e.ends_with("8080]"))
    );
    let verdicts = elements_of(&document, DNAT_CHAINS);
    let chain = local_chain_name("Service/a/two");
    assert_eq!(
        verdicts,
        [
            r#"[{"concat":["192.0.2.1","tcp",30082]},{"drop":null}]"#.to_string(),
            format!(
                r#"[{{"concat":["192.0.2.1","tcp",30083]}},{{"goto":{{"target":"{chain}"}}}}]"#
            ),
        ]
    );
    let objects = document["nftables"].as_array().cloned().unwrap_or_default();
    assert!(
        objects
            .iter()
            .any(|o| o["add"]["chain"]["name"] == chain.as_str())
    );
    assert_eq!(
        objects[1]["delete"]["table"]["name"], TABLE,
        "delete before re-create"
    );
    assert!(
        objects.iter().all(|o| {
            let command = o.as_object().and_then(|m| m.values().next());
            let body = command
                .and_then(|c| c.as_object())
                .and_then(|m| m.values().next());
            body.is_some_and(|b| b["table"] == TABLE || b["name"] == TABLE)
        }),
        "every object belongs to the rovn table"
    );
}

#[test]
fn a_changed_rule_changes_its_fingerprint_and_equal_states_render_equally() {
    let a = state_with(BTreeMap::new());
    let mut b = a.clone();
    b.join_ip = Ipv4Addr::new(100, 64, 0, 9);
    assert_eq!(to_json(&batch(&a)), to_json(&batch(&a.clone())));
    let comments = |s: &GatewayState| -> Vec<String> {
        contents(s)
            .into_iter()
            .filter_map(|o| match o {
                NfListObject::Rule(r) => r.comment.map(|c| c.into_owned()),
                _ => None,
            })
            .collect()
    };
    let (ca, cb) = (comments(&a), comments(&b));
    assert_eq!(ca.len(), cb.len());
    let differing = ca.iter().zip(&cb).filter(|(x, y)| x != y).count();
    assert_eq!(differing, 2, "the two rules that SNAT to the join IP");
}

/// Each command of a document as `verb kind name [elements]`, in order.
fn commands(document: &serde_json::Value) -> Vec<String> {
    document["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|command| {
            let (verb, object) = command.as_object()?.iter().next()?;
            let (kind, body) = object.as_object()?.iter().next()?;
            let name = body["name"].as_str().or(body["chain"].as_str())?;
            let elem = body
                .get("elem")
                .map(|e| format!(" {e}"))
                .unwrap_or_default();
            Some(format!("{verb} {kind} {name}{elem}"))
        })
        .collect()
}

fn local_pair(owner: &str, last: u8) -> Target {
    Target::Local {
        owner: owner.to_string(),
        endpoints: vec![
            "10.16.0.5:8080".parse().expect("literal"),
            SocketAddrV4::new(Ipv4Addr::new(10, 16, 0, last), 8080),
        ],
    }
}

fn delta_commands(old: &GatewayState, new: &GatewayState) -> Vec<String> {
    commands(&to_json(&delta(old, new)))
}

#[test]
fn the_delta_of_alike_states_is_empty() {
    let to = SocketAddrV4::new(Ipv4Addr::new(10, 96, 0, 10), 80);
    let old = state_with(BTreeMap::from([
        (fe(30080), Target::ClusterIp(to)),
        (fe(30081), local_pair("Service/a/b:80/tcp", 6)),
    ]));
    assert!(delta_commands(&old, &old).is_empty());
    // Different targets that render alike: nothing to send.
    let mut new = old.clone();
    new.forwards.insert(fe(30080), Target::HostPort(to));
    assert!(delta_commands(&old, &new).is_empty());
}

#[test]
fn an_endpoint_change_refills_only_its_chain_and_a_node_port_change_moves_only_its_elements() {
    let owner = "Service/a/b:80/tcp";
    let chain = local_chain_name(owner);
    let old = state_with(BTreeMap::from([
        (
            fe(30080),
            Target::ClusterIp("10.96.0.10:80".parse().expect("literal")),
        ),
        (fe(30081), local_pair(owner, 6)),
        (fe(30082), local_pair("Service/a/c:80/tcp", 7)),
    ]));
    let mut new = old.clone();
    new.forwards.insert(fe(30081), local_pair(owner, 9));
    assert_eq!(
        delta_commands(&old, &new),
        [format!("flush chain {chain}"), format!("add rule {chain}")]
    );

    let mut new = old.clone();
    let target = new.forwards.remove(&fe(30080)).expect("present");
    new.forwards.insert(fe(29000), target);
    let key = |port: u16| format!("{{\"concat\":[\"192.0.2.1\",\"tcp\",{port}]}}");
    assert_eq!(
        delta_commands(&old, &new),
        [
            format!("delete element {DNAT_ADDRS} [{}]", key(30080)),
            format!("delete element {DNAT_PORTS} [{}]", key(30080)),
            format!("add element {DNAT_ADDRS} [[{},\"10.96.0.10\"]]", key(29000)),
            format!("add element {DNAT_PORTS} [[{},80]]", key(29000)),
        ]
    );
}

#[test]
fn a_local_service_down_to_one_endpoint_moves_maps_and_its_chain_goes_last() {
    let owner = "Service/a/b:80/tcp";
    let chain = local_chain_name(owner);
    let old = state_with(BTreeMap::from([(fe(30081), local_pair(owner, 6))]));
    let mut new = old.clone();
    new.forwards.insert(
        fe(30081),
        Target::Local {
            owner: owner.into(),
            endpoints: vec!["10.16.0.5:8080".parse().expect("literal")],
        },
    );
    let got = delta_commands(&old, &new);
    let verbs: Vec<String> = got
        .iter()
        .map(|c| c.splitn(4, ' ').take(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        verbs,
        [
            format!("delete element {DNAT_CHAINS}"),
            format!("add element {DNAT_ADDRS}"),
            format!("add element {DNAT_PORTS}"),
            format!("delete chain {chain}"),
        ]
    );
    // And back: the chain exists before the element that jumps to it.
    let back = delta_commands(&new, &old);
    assert_eq!(back[0], format!("add chain {chain}"));
    assert_eq!(back[1], format!("add rule {chain}"));
    assert!(
        back[4].starts_with(&format!("add element {DNAT_CHAINS}")),
        "{back:?}"
    );
    assert!(
        back[4].contains(&format!("\"goto\":{{\"target\":\"{chain}\"}}")),
        "{back:?}"
    );
}

#[test]
fn interval_elements_are_deleted_as_they_were_added_and_fixed_rules_follow_the_node() {
    let old = state_with(BTreeMap::new());
    // 10.17.0.0/16 becomes natOutgoing and 10.18.0.0/16 appears: nothing but the prefixes
    // that differ, and a merged prefix replaces the ones it covers.
    let mut new = old.clone();
    new.pod_ranges[1].nat_outgoing = true;
    new.pod_ranges
        .push(gateway_support::range("10.18.0.0/16", false));
    let prefix =
        |addr: &str, len: u8| format!("{{\"prefix\":{{\"addr\":\"{addr}\",\"len\":{len}}}}}");
    assert_eq!(
        delta_commands(&old, &new),
        [
            format!("delete element nat_outgoing [{}]", prefix("10.16.0.0", 16)),
            format!("add element cluster_ranges [{}]", prefix("10.18.0.0", 16)),
            format!("add element nat_outgoing [{}]", prefix("10.16.0.0", 15)),
        ]
    );

    let mut new = old.clone();
    new.join_ip = Ipv4Addr::new(100, 64, 0, 9);
    let got = delta_commands(&old, &new);
    assert_eq!(got[0], "flush chain postrouting");
    assert_eq!(got[1..], ["add rule postrouting"; 3]);
}
