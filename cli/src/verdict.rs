//! What an `ovn-trace` (detailed output) says happened to the packet: delivered to which
//! logical ports, load-balanced to which backends, dropped or rejected at which stage and by
//! which logical flow. Pure: the text in, the facts out; naming the pods, Services and ACLs
//! behind them is `trace`'s job.

/// The pipeline a flow ran in, from `ovn-trace`'s header
/// `egress(dp="ovn-default", inport="a.demo", outport="b.demo")`: an ACL's verdict is about
/// the pod on the outport (to-lport, ingress policies) or the inport (from-lport, egress).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pipeline {
    /// `ingress` or `egress`.
    pub kind: String,
    /// The logical datapath (switch or router).
    pub datapath: String,
    /// The logical inport.
    pub inport: String,
    /// The logical outport (egress pipelines only).
    pub outport: Option<String>,
}

/// One logical flow the packet hit, as `ovn-trace` prints it:
/// ` 4. ls_out_acl (northd.c:6543): <match>, priority 2001, uuid cd1741fe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowHit {
    /// The pipeline stage (`ls_in_acl`, `lr_in_ip_routing`, …).
    pub stage: String,
    /// The flow's match.
    pub match_: String,
    /// The flow's priority.
    pub priority: u32,
    /// The first 8 hex digits of the SB `Logical_Flow` UUID.
    pub uuid_prefix: String,
    /// The pipeline it ran in (`None` from [`parse_flow_line`] alone).
    pub pipeline: Option<Pipeline>,
}

/// Why a dropped packet was dropped, from the stage that dropped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropCause {
    /// The inport's `port_security` does not allow the packet's source MAC/IP.
    IngressPortSecurity,
    /// The outport's `port_security` does not allow the packet's destination.
    EgressPortSecurity,
    /// An ACL (NetworkPolicy, or someone else's).
    Acl,
    /// The router has no route to the destination.
    NoRoute,
    /// The router does not accept the packet (not addressed to its MAC).
    RouterAdmission,
    /// Another stage.
    Other,
}

/// Whether `stage` applies ACLs (`ls_in_acl`, `ls_in_acl_after_lb`, `ls_out_acl`): its flows
/// made from NB ACLs carry the ACL in their `stage-hint`. The `acl_hint` stages only mark
/// conntrack state for them.
pub fn is_acl_stage(stage: &str) -> bool {
    stage.contains("_acl") && !stage.contains("acl_hint")
}

/// The cause of a drop at `stage`.
pub fn drop_cause(stage: &str) -> DropCause {
    match stage {
        s if s.starts_with("ls_in_") && s.contains("port_sec") => DropCause::IngressPortSecurity,
        s if s.starts_with("ls_out_") && s.contains("port_sec") => DropCause::EgressPortSecurity,
        s if is_acl_stage(s) => DropCause::Acl,
        "lr_in_ip_routing" | "lr_in_ip_routing_ecmp" => DropCause::NoRoute,
        "lr_in_admission" => DropCause::RouterAdmission,
        _ => DropCause::Other,
    }
}

/// What became of the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Output to these logical ports (VIFs and other non-patch ports), in order.
    Delivered(Vec<String>),
    /// Dropped by this flow.
    Dropped {
        /// The flow whose action was `drop;`.
        flow: FlowHit,
        /// Why, judged by its stage.
        cause: DropCause,
    },
    /// Answered with a reject (TCP RST / ICMP unreachable) by this flow.
    Rejected {
        /// The flow whose action was `reject`.
        flow: FlowHit,
    },
    /// The router knows no MAC for the next hop and sends an ARP request instead: no logical
    /// port holds the destination address.
    Unresolved,
    /// The trace ends without output, drop or reject.
    Nothing,
}

/// A load balancer choice seen on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbHit {
    /// The flow that chose (its match names the VIP).
    pub flow: FlowHit,
    /// The backends it chose among (`ip:port`).
    pub backends: Vec<String>,
}

/// The verdict of one trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What became of the packet.
    pub outcome: Outcome,
    /// The load balancer that rewrote the destination, if one did.
    pub load_balanced: Option<LbHit>,
    /// Every flow hit at an ACL stage, in order: those made from NB ACLs say which ACLs
    /// allowed (or dropped) the packet.
    pub acl_hits: Vec<FlowHit>,
}

/// The text is not an `ovn-trace` detailed output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not ovn-trace output (no ingress pipeline found): {first_line:?}")]
pub struct VerdictError {
    /// Its first line, to show what it was instead.
    pub first_line: String,
}

/// Parses a flow line: `N. stage (source): match, priority P, uuid U`.
pub fn parse_flow_line(line: &str) -> Option<FlowHit> {
    let line = line.trim();
    let (number, rest) = line.split_once(". ")?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (stage, rest) = rest.split_once(" (")?;
    let (_source, rest) = rest.split_once("): ")?;
    let (rest, uuid) = rest.rsplit_once(", uuid ")?;
    let (match_, priority) = rest.rsplit_once(", priority ")?;
    Some(FlowHit {
        stage: stage.to_string(),
        match_: match_.to_string(),
        priority: priority.trim().parse().ok()?,
        uuid_prefix: uuid.trim().to_string(),
        pipeline: None,
    })
}

/// `ingress(dp="D", inport="I")` or `egress(dp="D", inport="I", outport="O")`, possibly
/// indented (nested pipelines).
pub fn parse_pipeline_header(line: &str) -> Option<Pipeline> {
    let line = line.trim();
    let (kind, rest) = line.split_once('(')?;
    if kind != "ingress" && kind != "egress" {
        return None;
    }
    let body = rest.strip_suffix(')')?;
    let mut pipeline = Pipeline {
        kind: kind.to_string(),
        ..Default::default()
    };
    for field in body.split(", ") {
        let (key, value) = field.split_once('=')?;
        let value = value.trim_matches('"').to_string();
        match key {
            "dp" => pipeline.datapath = value,
            "inport" => pipeline.inport = value,
            "outport" => pipeline.outport = Some(value),
            _ => {}
        }
    }
    Some(pipeline)
}

/// `log(name="…", verdict=drop, …);`: an ACL that logs and drops.
fn is_logged_drop(action: &str) -> bool {
    action.starts_with("log(") && action.contains("verdict=drop")
}

/// `/* output to "PORT", type "TYPE" */` → (port, type).
fn parse_output(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix("/* output to \"")?;
    let (port, rest) = rest.split_once('"')?;
    let rest = rest.trim_start().strip_prefix(", type \"")?;
    let (ty, _) = rest.split_once('"')?;
    Some((port.to_string(), ty.to_string()))
}

/// `ct_lb_mark(backends=A,B);` or `ct_lb(backends=…; hash_fields=…)` → the backends.
fn parse_backends(line: &str) -> Option<Vec<String>> {
    let line = line.trim();
    let rest = line
        .strip_prefix("ct_lb_mark(backends=")
        .or_else(|| line.strip_prefix("ct_lb(backends="))?;
    let end = rest.find([')', ';']).unwrap_or(rest.len());
    Some(
        rest[..end]
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// Reads the verdict out of `ovn-trace`'s detailed output.
pub fn parse(text: &str) -> Result<Verdict, VerdictError> {
    if !text.lines().any(|l| l.trim_start().starts_with("ingress(")) {
        return Err(VerdictError {
            first_line: text.lines().next().unwrap_or_default().to_string(),
        });
    }
    let mut current: Option<FlowHit> = None;
    let mut pipeline: Option<Pipeline> = None;
    let mut acl_hits = Vec::new();
    let mut delivered = Vec::new();
    let mut dropped = None;
    let mut rejected = None;
    let mut unresolved = false;
    let mut load_balanced = None;
    for line in text.lines() {
        if let Some(header) = parse_pipeline_header(line) {
            pipeline = Some(header);
            current = None;
            continue;
        }
        if let Some(mut hit) = parse_flow_line(line) {
            hit.pipeline = pipeline.clone();
            if is_acl_stage(&hit.stage) {
                acl_hits.push(hit.clone());
            }
            current = Some(hit);
            continue;
        }
        let action = line.trim();
        let Some(flow) = &current else { continue };
        // A logged drop ACL's actions are `log(…, verdict=drop, …); /* drop */`: ovn-trace prints
        // the log and nothing for the drop.
        if action == "drop;" || is_logged_drop(action) {
            dropped.get_or_insert_with(|| flow.clone());
        } else if action.starts_with("reject {") || action == "reject;" {
            rejected.get_or_insert_with(|| flow.clone());
        } else if action.starts_with("arp {") && flow.stage.starts_with("lr_") {
            unresolved = true;
        } else if let Some(backends) = parse_backends(action) {
            load_balanced.get_or_insert_with(|| LbHit {
                flow: flow.clone(),
                backends,
            });
        } else if let Some((port, ty)) = parse_output(action)
            && ty != "patch"
        {
            delivered.push(port);
        }
    }
    let outcome = if let Some(flow) = rejected {
        Outcome::Rejected { flow }
    } else if unresolved {
        Outcome::Unresolved
    } else if !delivered.is_empty() {
        Outcome::Delivered(delivered)
    } else if let Some(flow) = dropped {
        let cause = drop_cause(&flow.stage);
        Outcome::Dropped { flow, cause }
    } else {
        Outcome::Nothing
    };
    Ok(Verdict {
        outcome,
        load_balanced,
        acl_hits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn flow_lines_are_read() {
        let hit = parse_flow_line(
            " 4. ls_out_acl (northd.c:6543): reg0[9] == 1 && (ip4.src == 10.16.0.7), priority 2001, uuid cd1741fe",
        )
        .unwrap();
        assert_eq!(hit.stage, "ls_out_acl");
        assert_eq!(hit.match_, "reg0[9] == 1 && (ip4.src == 10.16.0.7)");
        assert_eq!(hit.priority, 2001);
        assert_eq!(hit.uuid_prefix, "cd1741fe");
        assert_eq!(parse_flow_line("    next;"), None);
        assert_eq!(parse_flow_line("ct_lb_mark"), None);
    }

    #[test]
    fn pipeline_headers_are_read() {
        let p = parse_pipeline_header(
            "    egress(dp=\"ovn-default\", inport=\"a.demo\", outport=\"b.demo\")",
        )
        .unwrap();
        assert_eq!(p.datapath, "ovn-default");
        assert_eq!(p.inport, "a.demo");
        assert_eq!(p.outport.as_deref(), Some("b.demo"));
        let p = parse_pipeline_header("ingress(dp=\"ovn-cluster\", inport=\"x\")").unwrap();
        assert_eq!((p.kind.as_str(), p.outport), ("ingress", None));
        assert_eq!(parse_pipeline_header("ct_lb_mark"), None);
        assert_eq!(parse_pipeline_header("egress(nonsense)"), None);
    }

    #[test]
    fn acl_stage_flows_are_collected() {
        let v = parse(&fixture("trace_acl.txt")).unwrap();
        let stages: Vec<(&str, u32)> = v
            .acl_hits
            .iter()
            .map(|h| (h.stage.as_str(), h.priority))
            .collect();
        assert_eq!(stages, vec![("ls_in_acl", 1), ("ls_out_acl", 2001)]);
    }

    #[test]
    fn pod_to_pod_is_delivered_to_the_server_port() {
        let v = parse(&fixture("trace_pod_pod.txt")).unwrap();
        assert_eq!(
            v.outcome,
            Outcome::Delivered(vec!["server-node2.demo".into()])
        );
        assert_eq!(v.load_balanced, None);
        // Across the router to a node's join port: the patch ports are not destinations.
        let v = parse(&fixture("trace_node.txt")).unwrap();
        assert_eq!(v.outcome, Outcome::Delivered(vec!["node-node2".into()]));
    }

    #[test]
    fn a_service_is_load_balanced_then_delivered() {
        let v = parse(&fixture("trace_svc.txt")).unwrap();
        let lb = v.load_balanced.unwrap();
        assert_eq!(lb.backends, vec!["10.16.0.6:8080", "10.16.0.8:8080"]);
        assert_eq!(lb.flow.stage, "ls_in_lb");
        assert!(
            lb.flow
                .match_
                .contains("ip4.dst == 10.96.0.6 && tcp.dst == 80")
        );
        assert_eq!(
            v.outcome,
            Outcome::Delivered(vec!["server-node2.demo".into()])
        );
    }

    #[test]
    fn drops_name_their_cause() {
        for name in ["trace_portsec_ip.txt", "trace_portsec_mac.txt"] {
            match parse(&fixture(name)).unwrap().outcome {
                Outcome::Dropped { flow, cause } => {
                    assert_eq!(cause, DropCause::IngressPortSecurity, "{name}");
                    assert_eq!(flow.stage, "ls_in_apply_port_sec");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        match parse(&fixture("trace_noroute.txt")).unwrap().outcome {
            Outcome::Dropped { cause, .. } => assert_eq!(cause, DropCause::NoRoute),
            other => panic!("{other:?}"),
        }
        match parse(&fixture("trace_acl.txt")).unwrap().outcome {
            Outcome::Dropped { flow, cause } => {
                assert_eq!(cause, DropCause::Acl);
                assert_eq!(flow.uuid_prefix, "cd1741fe");
                assert_eq!(flow.priority, 2001);
                // Dropped on the way out to the server: its port is the outport.
                let pipeline = flow.pipeline.unwrap();
                assert_eq!(pipeline.kind, "egress");
                assert_eq!(pipeline.outport.as_deref(), Some("server-node1.demo"));
                assert_eq!(pipeline.inport, "client-node1.demo");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_logged_acl_drop_is_a_drop() {
        // Captured with a real NetworkPolicy and rovn.io/acl-log=allow,deny: the namespace's
        // drop logs, and ovn-trace prints no `drop;` after the log.
        let v = parse(&fixture("trace_acl_log.txt")).unwrap();
        match v.outcome {
            Outcome::Dropped { flow, cause } => {
                assert_eq!(cause, DropCause::Acl);
                assert_eq!(flow.uuid_prefix, "d0ce5906");
                assert_eq!(flow.priority, 3000);
                assert!(
                    flow.match_.contains("@deny.ingress.demo."),
                    "{}",
                    flow.match_
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(is_logged_drop(
            "log(name=\"demo:deny-ingress\", verdict=drop, severity=warning, meter=\"rovn-acl-log\");"
        ));
        assert!(!is_logged_drop(
            "log(name=\"demo/web:ingress.0\", verdict=allow, severity=info);"
        ));
    }

    #[test]
    fn an_empty_service_rejects_and_an_unknown_address_is_unresolved() {
        match parse(&fixture("trace_reject.txt")).unwrap().outcome {
            Outcome::Rejected { flow } => {
                assert_eq!(flow.stage, "ls_in_lb");
                assert!(flow.match_.contains("ip4.dst == 10.96.0.5"));
            }
            other => panic!("{other:?}"),
        }
        // The ARP request's flood reaches every port, but the packet reaches none.
        assert_eq!(
            parse(&fixture("trace_unknown.txt")).unwrap().outcome,
            Outcome::Unresolved
        );
    }

    #[test]
    fn other_text_is_refused() {
        let err = parse("ovn-trace: unknown datapath foo\n").unwrap_err();
        assert!(err.to_string().contains("unknown datapath"), "{err}");
    }
}
