//! `kubectl rovn trace`: the VERDICT line that names the Kubernetes objects behind what
//! `ovn-trace` reports. Pure: the plan ([`crate::flow`]), the parsed trace
//! ([`crate::verdict`]) and NB in, one sentence out.

use std::collections::BTreeMap;

use rovn_api::{Owner, OwnerKind};
use rovn_ovsdb_schemas::nb::Acl;

use crate::flow::{L4, Plan, Target};
use crate::policy::{self, Direction};
use crate::snapshot::{NbSnapshot, describe_port, owner_of};
use crate::verdict::{DropCause, FlowHit, Outcome, Verdict};

/// The NB ACLs behind the ACL-stage flows of a trace, by the logical flow's UUID prefix (as
/// `ovn-trace` prints it); found through each flow's `stage-hint`.
pub type FlowAcls = BTreeMap<String, Acl>;

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

/// The pod an ACL hit at `flow` guards, as an operator names it: the outport's pod for
/// ingress (to-lport) ACLs, the inport's for egress ones; the port when no pod owns it.
fn guarded_pod(nb: &NbSnapshot, flow: &FlowHit, acl: &Acl) -> Option<String> {
    let pipeline = flow.pipeline.as_ref()?;
    let port = match policy::direction(acl) {
        Direction::Ingress => pipeline.outport.as_deref()?,
        Direction::Egress => pipeline.inport.as_str(),
    };
    let owner = nb
        .port(port)
        .and_then(|p| owner_of(&p.external_ids))
        .and_then(|o| o.parse::<Owner>().ok());
    Some(match owner {
        Some(o) if o.kind() == OwnerKind::Pod => {
            format!("pod {}/{}", o.namespace().unwrap_or_default(), o.name())
        }
        _ => format!("port {port}"),
    })
}

/// Why the ACL flow `flow` dropped or rejected (`verb`) the packet.
fn acl_verdict(nb: &NbSnapshot, flow: &FlowHit, acls: &FlowAcls, verb: &str) -> String {
    match acls.get(&flow.uuid_prefix) {
        Some(acl) => policy::drop_words(acl, verb, guarded_pod(nb, flow, acl).as_deref()),
        None => format!(
            "{verb} by an ACL (its NB row was not found from the logical flow's stage-hint)"
        ),
    }
}

/// The ACLs that let the packet through, once each, in the order it met them.
fn allowed_by(verdict: &Verdict, acls: &FlowAcls) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for hit in &verdict.acl_hits {
        if let Some(w) = acls.get(&hit.uuid_prefix).and_then(policy::allow_words)
            && !words.contains(&w)
        {
            words.push(w);
        }
    }
    words
}

/// Explains `verdict` of the trace of `plan`. `acls` are the NB ACLs behind the flows the
/// packet hit at ACL stages, as far as they were found.
pub fn explain(plan: &Plan, verdict: &Verdict, nb: &NbSnapshot, acls: &FlowAcls) -> Explained {
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
                DropCause::Acl => format!("{} {at}", acl_verdict(nb, flow, acls, "dropped")),
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
            } else if crate::verdict::is_acl_stage(&flow.stage) {
                format!("{} {at}", acl_verdict(nb, flow, acls, "rejected"))
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
    if delivered {
        parts.extend(allowed_by(verdict, acls));
    }
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
    use crate::policy::tests::rovn_acl;
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
            &FlowAcls::new(),
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
        let e = explain(
            &p,
            &parse(&fixture("trace_svc.txt")).unwrap(),
            &nb,
            &FlowAcls::new(),
        );
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
            &FlowAcls::new(),
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

        // The fixture's drop is at ls_out_acl, flow cd1741fe, on the way to server-node1.demo.
        let mut nb = nb;
        let server = LogicalSwitchPort {
            uuid: Uuid::new_v4(),
            name: "server-node1.demo".into(),
            external_ids: owned("Pod/demo/server-node1"),
            ..Default::default()
        };
        nb.ports.insert(server.uuid, server);
        let p = plan(&kube(), &nb, &request("demo/server", Some(8080))).unwrap();
        let trace = parse(&fixture("trace_acl.txt")).unwrap();
        let with = |acl: Acl| FlowAcls::from([("cd1741fe".to_string(), acl)]);
        let deny = rovn_acl("Namespace/demo", "deny-ingress", "ingress", AclAction::Drop);
        let e = explain(&p, &trace, &nb, &with(deny));
        assert!(!e.delivered);
        assert!(
            e.line.starts_with(
                "VERDICT: dropped: pod demo/server-node1 is isolated for ingress by NetworkPolicies in namespace demo and none allows this (ACL Namespace/demo/deny-ingress) (stage ls_out_acl, logical flow cd1741fe)"
            ),
            "{}",
            e.line
        );
        // An egress deny guards the source: the inport (no pod owns it in this NB, so the port).
        let deny = rovn_acl("Namespace/demo", "deny-egress", "egress", AclAction::Drop);
        let e = explain(&p, &trace, &nb, &with(deny));
        assert!(
            e.line.contains("dropped: port client-node1.demo is isolated for egress by NetworkPolicies in namespace demo"),
            "{}",
            e.line
        );
        let foreign = Acl {
            name: Some("test-deny".into()),
            direction: AclDirection::ToLport,
            action: AclAction::Drop,
            priority: 1001,
            match_: "ip4.src == 10.16.0.7".into(),
            ..Default::default()
        };
        let e = explain(&p, &trace, &nb, &with(foreign));
        assert!(
            e.line.contains(
                "dropped by ACL test-deny (not rovn's: no rovn.io/owner; to-lport priority 1001"
            ),
            "{}",
            e.line
        );
        let e = explain(&p, &trace, &nb, &FlowAcls::new());
        assert!(e.line.contains("its NB row was not found"), "{}", e.line);
        let e = explain(
            &p,
            &parse(&fixture("trace_noroute.txt")).unwrap(),
            &nb,
            &FlowAcls::new(),
        );
        assert!(e.line.contains("no route"), "{}", e.line);
    }

    #[test]
    fn a_delivery_names_the_policies_that_allowed_it() {
        let nb = with_pod_ports(nb());
        let p = plan(&kube(), &nb, &request("demo/server", Some(8080))).unwrap();
        let trace = parse(&fixture("trace_pod_pod.txt")).unwrap();
        let hits: Vec<String> = trace
            .acl_hits
            .iter()
            .map(|h| h.uuid_prefix.clone())
            .collect();
        assert!(hits.len() >= 2, "{hits:?}");
        let acls = FlowAcls::from([
            (
                hits[0].clone(),
                rovn_acl(
                    "NetworkPolicy/demo/out",
                    "egress.1",
                    "egress",
                    AclAction::AllowRelated,
                ),
            ),
            (
                hits[1].clone(),
                rovn_acl(
                    "NetworkPolicy/demo/web",
                    "ingress.0",
                    "ingress",
                    AclAction::AllowRelated,
                ),
            ),
        ]);
        let e = explain(&p, &trace, &nb, &acls);
        assert!(e.delivered);
        assert!(
            e.line.ends_with(
                "; allowed by NetworkPolicy demo/out rule egress.1; allowed by NetworkPolicy demo/web rule ingress.0"
            ),
            "{}",
            e.line
        );
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
        let e = explain(
            &p,
            &parse(&fixture("trace_reject.txt")).unwrap(),
            &nb,
            &FlowAcls::new(),
        );
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
