//! The `ip rovn` batch as the renderer writes it (pure; no nft needed): which map each kind of
//! target lands in, merged ranges, the one-table transaction, and rule fingerprints that change
//! with the rule.

mod gateway_support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use gateway_support::state_with;
use ipnet::Ipv4Net;
use nftables::schema::NfListObject;
use rovn_node::gateway::render::{
    DNAT_ADDRS, DNAT_CHAINS, DNAT_PORTS, TABLE, batch, contents, local_chain_name, ranges, to_json,
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
