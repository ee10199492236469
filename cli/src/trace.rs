//! `kubectl rovn trace`: the VERDICT line that names the Kubernetes objects behind what
//! `ovn-trace` reports. Pure: the plan ([`crate::flow`]), the parsed trace
//! ([`crate::verdict`]) and NB in, one sentence out.

use std::collections::BTreeMap;

use rovn_api::Owner;
use rovn_ovsdb_schemas::nb::Acl;

use crate::flow::{L4, Plan, Target};
use crate::snapshot::{NbSnapshot, describe_port, owner_of};
use crate::verdict::{DropCause, Outcome, Verdict};

/// The `ovn-trace` arguments after the database ones: every conntrack lookup of the first
/// packet sees a new connection (in the source's zone, at the load balancer and in the
/// destination's zone), then the switch and the flow.
pub fn trace_args(plan: &Plan) -> Vec<String> {
    vec![
        "--ct=new".into(),
        "--ct=new".into(),
        "--ct=new".into(),
        plan.switch.clone(),
        plan.flow.to_string(),
    ]
}

/// The sentence and whether the packet got where it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    /// `VERDICT: …`.
    pub line: String,
    /// Delivered (the exit status is non-zero otherwise).
    pub delivered: bool,
}

/// `Service demo/web`, `Pod demo/x`, `Node n1`; or a foreign row's words.
pub fn owner_words(external_ids: &BTreeMap<String, String>) -> String {
    match owner_of(external_ids).map(|o| (o, o.parse::<Owner>())) {
        Some((_, Ok(owner))) => match owner.namespace() {
            Some(ns) => format!("{} {ns}/{}", owner.kind(), owner.name()),
            None => format!("{} {}", owner.kind(), owner.name()),
        },
        Some((raw, Err(_))) => format!("owner {raw:?}"),
        None => "not rovn's: no rovn.io/owner".into(),
    }
}

/// The packet's destination `ip:port`, as a load balancer VIP.
fn vip_of(plan: &Plan) -> String {
    match plan.flow.l4 {
        L4::Tcp { dst, .. } | L4::Udp { dst, .. } => format!("{}:{dst}", plan.flow.ip_dst),
        L4::Icmp => plan.flow.ip_dst.to_string(),
    }
}

fn load_balancer_words(plan: &Plan, nb: &NbSnapshot) -> String {
    let vip = vip_of(plan);
    let proto = plan.proto.lb_protocol().unwrap_or_default();
    match nb.load_balancer_for(&vip, proto) {
        Some(lb) => format!(
            "load balancer {} ({}) VIP {vip}",
            lb.name,
            owner_words(&lb.external_ids)
        ),
        None => format!("a load balancer (none in NB has VIP {vip}/{proto})"),
    }
}

fn acl_words(acl: Option<&Acl>) -> String {
    match acl {
        Some(acl) => format!(
            "ACL {} ({}; {} priority {} match {:?})",
            acl.name.as_deref().unwrap_or("<unnamed>"),
            owner_words(&acl.external_ids),
            rovn_ovsdb::model::StringEnum::as_str(&acl.direction),
            acl.priority,
            acl.match_
        ),
        None => "an ACL (its NB row was not found from the logical flow's stage-hint)".into(),
    }
}

/// Explains `verdict` of the trace of `plan`. `acl` is the NB ACL behind a drop or reject at
/// an ACL stage, when it was found.
pub fn explain(plan: &Plan, verdict: &Verdict, nb: &NbSnapshot, acl: Option<&Acl>) -> Explained {
    let mut parts = Vec::new();
    if let Some(lb) = &verdict.load_balanced {
        parts.push(format!(
            "load-balanced by {} to backends {} (the trace follows one)",
            load_balancer_words(plan, nb),
            lb.backends.join(", ")
        ));
    }
    let delivered = matches!(verdict.outcome, Outcome::Delivered(_));
    let outcome = match &verdict.outcome {
        Outcome::Delivered(ports) => {
            let mut text = format!(
                "delivered to {}",
                ports
                    .iter()
                    .map(|p| describe_port(nb, p))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Target::Pod { key, port } = &plan.target
                && !ports.contains(port)
            {
                text.push_str(&format!(" — not to pod {key}'s port {port}"));
            }
            text
        }
        Outcome::Dropped { flow, cause } => {
            let at = format!("(stage {}, logical flow {})", flow.stage, flow.uuid_prefix);
            match cause {
                DropCause::IngressPortSecurity => {
                    let allowed = nb
                        .port(&plan.flow.inport)
                        .map(|p| format!("{:?}", p.port_security))
                        .unwrap_or_else(|| "[?]".into());
                    format!(
                        "dropped by port security of {}: eth.src {} / ip4.src {} is not in its port_security {allowed} {at}",
                        describe_port(nb, &plan.flow.inport),
                        plan.flow.eth_src,
                        plan.flow.ip_src
                    )
                }
                DropCause::EgressPortSecurity => {
                    format!("dropped by the destination port's port security {at}")
                }
                DropCause::Acl => format!("dropped by {} {at}", acl_words(acl)),
                DropCause::NoRoute => format!(
                    "dropped: the router has no route to {} {at}",
                    plan.flow.ip_dst
                ),
                DropCause::RouterAdmission => format!(
                    "dropped by the router: eth.dst {} is not its port's MAC {at}",
                    plan.flow.eth_dst
                ),
                DropCause::Other => format!("dropped, match {:?} {at}", flow.match_),
            }
        }
        Outcome::Rejected { flow } => {
            let at = format!("(stage {}, logical flow {})", flow.stage, flow.uuid_prefix);
            if flow.stage.contains("_lb") {
                format!(
                    "rejected by {}: it has no backends (no ready endpoint) {at}",
                    load_balancer_words(plan, nb)
                )
            } else if flow.stage.contains("_acl") {
                format!("rejected by {} {at}", acl_words(acl))
            } else {
                format!("rejected {at}")
            }
        }
        Outcome::Unresolved => format!(
            "not delivered: no logical port holds {}; the router sends an ARP request for it instead",
            plan.flow.ip_dst
        ),
        Outcome::Nothing => "not delivered: the trace ends without output".into(),
    };
    parts.push(outcome);
    Explained {
        line: format!("VERDICT: {}", parts.join("; ")),
        delivered,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use rovn_ovsdb::Uuid;
    use rovn_ovsdb_schemas::nb::{AclAction, AclDirection, LoadBalancer, LogicalSwitchPort};

    use super::*;
    use crate::flow::tests::{kube, nb};
    use crate::flow::{Overrides, Request, plan};
    use crate::verdict::parse;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn owned(owner: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("rovn.io/vendor".to_string(), "rovn".to_string()),
            ("rovn.io/owner".to_string(), owner.to_string()),
        ])
    }

    fn with_pod_ports(mut nb: NbSnapshot) -> NbSnapshot {
        for (name, owner, ps) in [
            (
                "server-node2.demo",
                "Pod/demo/server-node2",
                "0a:58:0a:10:00:08 10.16.0.8",
            ),
            (
                "client.demo",
                "Pod/demo/client",
                "0a:58:0a:10:00:07 10.16.0.7",
            ),
        ] {
            let port = LogicalSwitchPort {
                uuid: Uuid::new_v4(),
                name: name.into(),
                port_security: BTreeSet::from([ps.to_string()]),
                external_ids: owned(owner),
                ..Default::default()
            };
            nb.ports.insert(port.uuid, port);
        }
        nb
    }

    fn request(dst: &str, port: Option<u16>) -> Request {
        Request {
            source: ("demo".into(), "client".into()),
            destination: dst.parse().unwrap(),
            proto: None,
            port,
            overrides: Overrides::default(),
        }
    }

    #[test]
    fn delivery_names_the_pod() {
        let nb = with_pod_ports(nb());
        let p = plan(&kube(), &nb, &request("demo/server", Some(8080))).unwrap();
        let e = explain(
            &p,
            &parse(&fixture("trace_pod_pod.txt")).unwrap(),
            &nb,
            None,
        );
        assert!(e.delivered);
        // The fixture's server is server-node2, the plan's demo/server: both are said.
        assert_eq!(
            e.line,
            "VERDICT: delivered to port server-node2.demo (Pod demo/server-node2) — not to pod demo/server's port server.demo"
        );
    }

    #[test]
    fn a_service_names_its_load_balancer_and_backends() {
        let mut nb = with_pod_ports(nb());
        nb.load_balancers.push(LoadBalancer {
            name: "svc.demo.web.tcp".into(),
            vips: BTreeMap::from([(
                "10.96.0.6:80".to_string(),
                "10.16.0.6:8080,10.16.0.8:8080".to_string(),
            )]),
            external_ids: owned("Service/demo/web"),
            ..Default::default()
        });
        let p = plan(&kube(), &nb, &request("svc/demo/web", Some(80))).unwrap();
        let e = explain(&p, &parse(&fixture("trace_svc.txt")).unwrap(), &nb, None);
        assert!(e.delivered);
        assert!(
            e.line.starts_with(
                "VERDICT: load-balanced by load balancer svc.demo.web.tcp (Service demo/web) VIP 10.96.0.6:80 \
                 to backends 10.16.0.6:8080, 10.16.0.8:8080"
            ),
            "{}",
            e.line
        );
        assert!(
            e.line
                .contains("delivered to port server-node2.demo (Pod demo/server-node2)")
        );
    }

    #[test]
    fn drops_say_what_dropped() {
        let nb = with_pod_ports(nb());
        let mut r = request("demo/server", Some(8080));
        r.overrides.src_ip = Some("10.16.0.99".parse().unwrap());
        let p = plan(&kube(), &nb, &r).unwrap();
        let e = explain(
            &p,
            &parse(&fixture("trace_portsec_ip.txt")).unwrap(),
            &nb,
            None,
        );
        assert!(!e.delivered);
        assert!(
            e.line.starts_with(
                "VERDICT: dropped by port security of port client.demo (Pod demo/client)"
            ),
            "{}",
            e.line
        );
        assert!(e.line.contains("ip4.src 10.16.0.99"), "{}", e.line);
        assert!(e.line.contains("0a:58:0a:10:00:07 10.16.0.7"), "{}", e.line);

        let acl = Acl {
            name: Some("test-deny".into()),
            direction: AclDirection::ToLport,
            action: AclAction::Drop,
            priority: 1001,
            match_: "ip4.src == 10.16.0.7".into(),
            external_ids: BTreeMap::from([(
                "rovn.io/owner".to_string(),
                "NetworkPolicy/demo/deny".to_string(),
            )]),
            ..Default::default()
        };
        let p = plan(&kube(), &nb, &request("demo/server", Some(8080))).unwrap();
        let e = explain(
            &p,
            &parse(&fixture("trace_acl.txt")).unwrap(),
            &nb,
            Some(&acl),
        );
        assert!(!e.delivered);
        assert!(
            e.line.contains(
                "dropped by ACL test-deny (NetworkPolicy demo/deny; to-lport priority 1001"
            ),
            "{}",
            e.line
        );
        let e = explain(
            &p,
            &parse(&fixture("trace_noroute.txt")).unwrap(),
            &nb,
            None,
        );
        assert!(e.line.contains("no route"), "{}", e.line);
    }

    #[test]
    fn an_empty_service_is_rejected_by_its_load_balancer() {
        let mut nb = nb();
        nb.load_balancers.push(LoadBalancer {
            name: "svc.demo.web.tcp".into(),
            vips: BTreeMap::from([("10.96.0.6:80".to_string(), String::new())]),
            external_ids: owned("Service/demo/web"),
            ..Default::default()
        });
        let p = plan(&kube(), &nb, &request("svc/demo/web", Some(80))).unwrap();
        let e = explain(&p, &parse(&fixture("trace_reject.txt")).unwrap(), &nb, None);
        assert!(!e.delivered);
        assert!(
            e.line.starts_with(
                "VERDICT: rejected by load balancer svc.demo.web.tcp (Service demo/web)"
            ),
            "{}",
            e.line
        );
        assert!(trace_args(&p)[3] == "ovn-default");
    }
}
