//! `kubectl rovn topology`: the router, its switches with their CIDRs, the pods on each switch
//! by node, and the Services' load balancers with their VIPs and backends, as text or
//! Graphviz dot. Pure over NB.

use std::collections::BTreeMap;
use std::fmt::Write;

use rovn_api::names::{NODE_KEY, SUBNET_CONFIG};
use rovn_ovsdb_schemas::nb::{LogicalSwitch, LogicalSwitchPort};

use crate::snapshot::NbSnapshot;
use crate::trace::owner_words;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Indented text.
    Text,
    /// Graphviz dot.
    Dot,
}

/// A switch's non-router ports by node (`-` for ports without a node).
fn ports_by_node<'a>(
    nb: &'a NbSnapshot,
    switch: &LogicalSwitch,
) -> BTreeMap<String, Vec<&'a LogicalSwitchPort>> {
    let mut by_node: BTreeMap<String, Vec<&LogicalSwitchPort>> = BTreeMap::new();
    for port in switch.ports.iter().filter_map(|u| nb.ports.get(u)) {
        if port.type_ == "router" {
            continue;
        }
        let node = port
            .external_ids
            .get(NODE_KEY)
            .cloned()
            .unwrap_or_else(|| "-".into());
        by_node.entry(node).or_default().push(port);
    }
    for ports in by_node.values_mut() {
        ports.sort_by(|a, b| a.name.cmp(&b.name));
    }
    by_node
}

fn cidr(switch: &LogicalSwitch) -> &str {
    switch
        .other_config
        .get(SUBNET_CONFIG)
        .map(String::as_str)
        .unwrap_or("no subnet")
}

fn sorted_switches(nb: &NbSnapshot) -> Vec<&LogicalSwitch> {
    let mut switches: Vec<&LogicalSwitch> = nb.switches.iter().collect();
    switches.sort_by(|a, b| a.name.cmp(&b.name));
    switches
}

/// The topology as indented text.
pub fn render_text(nb: &NbSnapshot) -> String {
    let mut out = String::new();
    let mut routers: Vec<_> = nb.routers.iter().collect();
    routers.sort_by(|a, b| a.name.cmp(&b.name));
    for router in routers {
        let _ = writeln!(
            out,
            "router {} ({})",
            router.name,
            owner_words(&router.external_ids)
        );
        for lrp in nb
            .router_ports
            .iter()
            .filter(|p| router.ports.contains(&p.uuid))
        {
            let networks: Vec<&str> = lrp.networks.iter().map(String::as_str).collect();
            let _ = writeln!(
                out,
                "  port {} {} {}",
                lrp.name,
                lrp.mac,
                networks.join(" ")
            );
        }
    }
    for switch in sorted_switches(nb) {
        let via = nb
            .router_port_of(switch)
            .map(|p| format!("via {}", p.name))
            .unwrap_or_else(|| "not on a router".into());
        let _ = writeln!(
            out,
            "switch {} {} ({}; {via})",
            switch.name,
            cidr(switch),
            owner_words(&switch.external_ids)
        );
        for (node, ports) in ports_by_node(nb, switch) {
            let _ = writeln!(out, "  node {node}");
            for port in ports {
                let addresses: Vec<&str> = port.addresses.iter().map(String::as_str).collect();
                let _ = writeln!(
                    out,
                    "    {} [{}] {}",
                    port.name,
                    owner_words(&port.external_ids),
                    addresses.join(" ")
                );
            }
        }
    }
    let mut lbs: Vec<_> = nb.load_balancers.iter().collect();
    lbs.sort_by(|a, b| a.name.cmp(&b.name));
    if !lbs.is_empty() {
        let _ = writeln!(out, "load balancers");
    }
    for lb in lbs {
        let _ = writeln!(out, "  {} ({})", lb.name, owner_words(&lb.external_ids));
        for (vip, backends) in &lb.vips {
            let backends = if backends.is_empty() {
                "no backends (rejects)".to_string()
            } else {
                backends.replace(',', ", ")
            };
            let _ = writeln!(out, "    {vip} -> {backends}");
        }
    }
    out
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The topology as a Graphviz digraph.
pub fn render_dot(nb: &NbSnapshot) -> String {
    let mut out = String::from("digraph rovn {\n  rankdir=LR;\n  node [fontsize=10];\n");
    for router in &nb.routers {
        let _ = writeln!(
            out,
            "  {} [shape=box3d];",
            quote(&format!("router {}", router.name))
        );
    }
    for switch in sorted_switches(nb) {
        let id = format!("switch {}", switch.name);
        let _ = writeln!(
            out,
            "  {} [shape=ellipse, label={}];",
            quote(&id),
            quote(&format!("{}\\n{}", switch.name, cidr(switch)))
        );
        if let Some(lrp) = nb.router_port_of(switch)
            && let Some(router) = nb.routers.iter().find(|r| r.ports.contains(&lrp.uuid))
        {
            let _ = writeln!(
                out,
                "  {} -> {} [label={}];",
                quote(&format!("router {}", router.name)),
                quote(&id),
                quote(&lrp.networks.iter().cloned().collect::<Vec<_>>().join(" "))
            );
        }
        for (node, ports) in ports_by_node(nb, switch) {
            for port in ports {
                let label = format!(
                    "{}\\n{}\\nnode {node}",
                    owner_words(&port.external_ids),
                    port.addresses.iter().cloned().collect::<Vec<_>>().join(" ")
                );
                let _ = writeln!(
                    out,
                    "  {} [shape=box, label={}];\n  {} -> {};",
                    quote(&port.name),
                    quote(&label),
                    quote(&id),
                    quote(&port.name)
                );
            }
        }
    }
    for lb in &nb.load_balancers {
        let mut label = format!("{}\\n{}", lb.name, owner_words(&lb.external_ids));
        for (vip, backends) in &lb.vips {
            label.push_str(&format!("\\n{vip} -> {backends}"));
        }
        let _ = writeln!(
            out,
            "  {} [shape=note, label={}];",
            quote(&lb.name),
            quote(&label)
        );
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use rovn_ovsdb::Uuid;
    use rovn_ovsdb_schemas::nb::{LoadBalancer, LogicalRouter};

    use super::*;

    #[test]
    fn switches_pods_by_node_and_load_balancers() {
        let mut nb = crate::flow::tests::nb();
        nb.switches[0]
            .other_config
            .insert("subnet".into(), "10.16.0.0/16".into());
        nb.routers.push(LogicalRouter {
            uuid: Uuid::new_v4(),
            name: "ovn-cluster".into(),
            ports: nb.router_ports.iter().map(|p| p.uuid).collect(),
            ..Default::default()
        });
        let pod = LogicalSwitchPort {
            uuid: Uuid::new_v4(),
            name: "a.demo".into(),
            addresses: BTreeSet::from(["0a:58:0a:10:00:07 10.16.0.7".to_string()]),
            external_ids: BTreeMap::from([
                ("rovn.io/owner".to_string(), "Pod/demo/a".to_string()),
                ("node".to_string(), "node1".to_string()),
            ]),
            ..Default::default()
        };
        nb.switches[0].ports.insert(pod.uuid);
        nb.ports.insert(pod.uuid, pod);
        nb.load_balancers.push(LoadBalancer {
            name: "svc.demo.web.tcp".into(),
            vips: BTreeMap::from([("10.96.0.6:80".to_string(), "10.16.0.7:8080".to_string())]),
            external_ids: BTreeMap::from([(
                "rovn.io/owner".to_string(),
                "Service/demo/web".to_string(),
            )]),
            ..Default::default()
        });
        let text = render_text(&nb);
        assert!(text.contains("switch ovn-default 10.16.0.0/16"), "{text}");
        assert!(text.contains("via ovn-cluster-ovn-default"), "{text}");
        assert!(
            text.contains("  node node1\n    a.demo [Pod demo/a] 0a:58:0a:10:00:07 10.16.0.7"),
            "{text}"
        );
        assert!(
            text.contains(
                "svc.demo.web.tcp (Service demo/web)\n    10.96.0.6:80 -> 10.16.0.7:8080"
            ),
            "{text}"
        );
        let dot = render_dot(&nb);
        assert!(dot.starts_with("digraph rovn {"), "{dot}");
        assert!(
            dot.contains("\"router ovn-cluster\" -> \"switch ovn-default\""),
            "{dot}"
        );
        assert!(dot.trim_end().ends_with('}'));
    }
}
