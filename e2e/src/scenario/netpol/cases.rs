//! The cases, after upstream's NetworkPolicy e2e suite: each sets up policies (and labels,
//! pods, a Service) and checks the truth table after every change. Policies are JSON as in a
//! manifest; the expectations come from the model, never from the case.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::matrix::{Destination, Matrix, columns};
use super::objects::{self, policy};
use super::suite::{CaseReport, Suite};
use super::world::{self, NS_LABEL, POD_LABEL, WEB, serve_port_name};
use crate::podtool::probe::{Verdict, parse_result_line};
use crate::scenario::api::{self, POD_TIMEOUT};
use crate::scenario::cluster::{Cluster, PodRef, argv, two_nodes};
use crate::scenario::error::{Result, ScenarioError};
use crate::scenario::pods;
use crate::scenario::services::{create_service_with, delete_service};

fn in_namespace(ns: &str) -> Value {
    json!({"matchLabels": {NS_LABEL: ns}})
}

fn named(pod: &str) -> Value {
    json!({"matchLabels": {POD_LABEL: pod}})
}

fn pod(ns: &str, name: &str) -> PodRef {
    PodRef::new(ns, name)
}

/// Creates the policies and checks the world's table under `step`.
async fn apply_and_check<C: Cluster>(
    s: &Suite<'_, C>,
    r: &mut CaseReport,
    step: &str,
    policies: &[k8s_openapi::api::networking::v1::NetworkPolicy],
) -> Result<()> {
    s.apply(policies).await?;
    s.check(r, step, &s.world_matrix().await?).await
}

/// Runs every case on the cluster (after creating the world) and returns their reports.
pub async fn run_all(cluster: &impl Cluster) -> Result<Vec<CaseReport>> {
    let s = Suite::new(cluster).await?;
    let mut reports = Vec::new();
    reports.extend(s.run("no policy", async |r| no_policy(&s, r).await).await);
    reports.extend(
        s.run("deny all ingress", async |r| deny_all_ingress(&s, r).await)
            .await,
    );
    reports.extend(
        s.run("deny all egress", async |r| deny_all_egress(&s, r).await)
            .await,
    );
    reports.extend(
        s.run("allow from a namespace", async |r| {
            allow_from_namespace(&s, r).await
        })
        .await,
    );
    reports.extend(
        s.run("pod and namespace selector in one peer", async |r| {
            pod_and_namespace_selector(&s, r).await
        })
        .await,
    );
    reports.extend(
        s.run("several peers", async |r| several_peers(&s, r).await)
            .await,
    );
    reports.extend(
        s.run("ipBlock with except", async |r| {
            ip_block_except(&s, r).await
        })
        .await,
    );
    reports.extend(
        s.run("egress to a namespace", async |r| {
            egress_to_namespace(&s, r).await
        })
        .await,
    );
    reports.extend(s.run("named port", async |r| named_port(&s, r).await).await);
    reports.extend(
        s.run("one port name, two numbers", async |r| {
            one_name_two_numbers(&s, r).await
        })
        .await,
    );
    reports.extend(s.run("endPort", async |r| end_port(&s, r).await).await);
    reports.extend(
        s.run("two policies add up", async |r| {
            policies_add_up(&s, r).await
        })
        .await,
    );
    reports.extend(
        s.run("policy update", async |r| policy_update(&s, r).await)
            .await,
    );
    reports.extend(
        s.run("label change", async |r| label_change(&s, r).await)
            .await,
    );
    reports.extend(
        s.run("pod created after the policy", async |r| {
            pod_created_after_policy(&s, r).await
        })
        .await,
    );
    reports.extend(
        s.run("Service backends", async |r| service_backends(&s, r).await)
            .await,
    );
    Ok(reports)
}

/// No policy: everything reaches everything. Proves the probes and the model before any
/// policy is involved.
pub async fn no_policy<C: Cluster>(s: &Suite<'_, C>, r: &mut CaseReport) -> Result<()> {
    s.check(r, "open world", &s.world_matrix().await?).await
}

/// A policy with an empty podSelector and Ingress but no rules isolates every pod of x for
/// ingress; x's pods still reach out.
pub async fn deny_all_ingress<C: Cluster>(s: &Suite<'_, C>, r: &mut CaseReport) -> Result<()> {
    apply_and_check(
        s,
        r,
        "x denies all ingress",
        &[policy(
            "x",
            "deny-all-ingress",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        )?],
    )
    .await
}

/// policyTypes Egress with no rules: x's pods reach nothing but themselves; ingress stays open.
pub async fn deny_all_egress<C: Cluster>(s: &Suite<'_, C>, r: &mut CaseReport) -> Result<()> {
    apply_and_check(
        s,
        r,
        "x denies all egress",
        &[policy(
            "x",
            "deny-all-egress",
            json!({"podSelector": {}, "policyTypes": ["Egress"]}),
        )?],
    )
    .await
}

/// A namespaceSelector alone: every pod of y reaches x's pods, nobody else does.
pub async fn allow_from_namespace<C: Cluster>(s: &Suite<'_, C>, r: &mut CaseReport) -> Result<()> {
    apply_and_check(s, r, "x allows from y", &[policy(
        "x",
        "from-y",
        json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": in_namespace("y")}]}]}),
    )?]).await
}

/// podSelector and namespaceSelector in one peer AND: only pods b of y and z reach x/a.
pub async fn pod_and_namespace_selector<C: Cluster>(
    s: &Suite<'_, C>,
    r: &mut CaseReport,
) -> Result<()> {
    apply_and_check(
        s,
        r,
        "x/a allows b of y and z",
        &[policy(
            "x",
            "b-of-y-and-z",
            json!({
                "podSelector": named("a"),
                "ingress": [{"from": [{
                    "namespaceSelector": {"matchExpressions": [
                        {"key": NS_LABEL, "operator": "In", "values": ["y", "z"]}]},
                    "podSelector": named("b"),
                }]}],
            }),
        )?],
    )
    .await
}

/// Peers OR: x/b (podSelector alone, the policy's namespace) or any pod of a namespace that
/// is neither x nor y (NotIn).
pub async fn several_peers<C: Cluster>(s: &Suite<'_, C>, r: &mut CaseReport) -> Result<()> {
    apply_and_check(
        s,
        r,
        "x/a allows x/b and z",
        &[policy(
            "x",
            "b-or-not-x-y",
            json!({
                "podSelector": named("a"),
                "ingress": [{"from": [
                    {"podSelector": named("b")},
                    {"namespaceSelector": {"matchExpressions": [
                        {"key": NS_LABEL, "operator": "NotIn", "values": ["x", "y"]}]}},
                ]}],
            }),
        )?],
    )
    .await
}

/// ipBlock from the real pod IPs: x/a allows the /24 around its own address except y/b's /32.
pub async fn ip_block_except<C: Cluster>(s: &Suite<'_, C>, r: &mut CaseReport) -> Result<()> {
    let ip_of = async |p: &PodRef| -> Result<std::net::Ipv4Addr> {
        pods::pod_ip(&api::must_get_pod(s.cluster, p).await?)
            .ok_or_else(|| ScenarioError::Check(format!("pod {p} has no IP")))
    };
    let own = ip_of(&pod("x", "a")).await?;
    let excepted = ip_of(&pod("y", "b")).await?;
    let block = ipnet::Ipv4Net::new(own, 24)
        .map_err(|e| ScenarioError::Check(format!("a /24 around {own}: {e}")))?
        .trunc();
    apply_and_check(s, r, &format!("x/a allows {block} except {excepted}/32"), &[policy(
        "x",
        "block-but-y-b",
        json!({
            "podSelector": named("a"),
            "ingress": [{"from": [{"ipBlock": {"cidr": block.to_string(), "except": [format!("{excepted}/32")]}}]}],
        }),
    )?]).await
}

/// Egress to a namespace: x/a reaches y's pods only.
pub async fn egress_to_namespace<C: Cluster>(s: &Suite<'_, C>, r: &mut CaseReport) -> Result<()> {
    apply_and_check(
        s,
        r,
        "x/a reaches only y",
        &[policy(
            "x",
            "a-to-y",
            json!({
                "podSelector": named("a"),
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": in_namespace("y")}]}],
            }),
        )?],
    )
    .await
}

/// A named port: x's pods accept only their `serve-81-tcp`.
pub async fn named_port<C: Cluster>(s: &Suite<'_, C>, r: &mut CaseReport) -> Result<()> {
    let port = serve_port_name(81, "TCP");
    let only = policy(
        "x",
        "only-serve-81-tcp",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": port}]}]}),
    )?;
    apply_and_check(s, r, "x accepts serve-81-tcp", &[only]).await
}

/// `web` is 80 on x/a, 81 on x/b and absent on x/c: allowing `web` into x opens x/a:80 and
/// x/b:81 only; allowing y/a egress to `web` resolves the name on each destination the same way.
pub async fn one_name_two_numbers<C: Cluster>(s: &Suite<'_, C>, r: &mut CaseReport) -> Result<()> {
    let ingress = policy(
        "x",
        "only-web",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": WEB}]}]}),
    )?;
    apply_and_check(s, r, "ingress to web", &[ingress]).await?;
    objects::delete_policies(&s.client, &["x"]).await?;
    let egress = policy(
        "y",
        "a-to-web",
        json!({"podSelector": named("a"), "policyTypes": ["Egress"], "egress": [{"ports": [{"port": WEB}]}]}),
    )?;
    apply_and_check(s, r, "egress from y/a to web", &[egress]).await
}

/// endPort: TCP 80–81 and UDP 81–82 into x; UDP 80 stays closed.
pub async fn end_port<C: Cluster>(s: &Suite<'_, C>, r: &mut CaseReport) -> Result<()> {
    apply_and_check(
        s,
        r,
        "x accepts TCP 80-81 and UDP 81-82",
        &[policy(
            "x",
            "ranges",
            json!({"podSelector": {}, "ingress": [{"ports": [
                {"port": 80, "endPort": 81, "protocol": "TCP"},
                {"port": 81, "endPort": 82, "protocol": "UDP"},
            ]}]}),
        )?],
    )
    .await
}

/// Two policies selecting x/a add up: from y, and from every pod c anywhere.
pub async fn policies_add_up<C: Cluster>(s: &Suite<'_, C>, r: &mut CaseReport) -> Result<()> {
    apply_and_check(s, r, "x/a allows y and every c", &[
        policy(
            "x",
            "a-from-y",
            json!({"podSelector": named("a"), "ingress": [{"from": [{"namespaceSelector": in_namespace("y")}]}]}),
        )?,
        policy(
            "x",
            "a-from-any-c",
            json!({"podSelector": named("a"), "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": named("c")}]}]}),
        )?,
    ]).await
}

/// A policy edited in place: x/a allows y, then z instead; the table follows.
pub async fn policy_update<C: Cluster>(s: &Suite<'_, C>, r: &mut CaseReport) -> Result<()> {
    let from = |ns: &str| {
        policy(
            "x",
            "a-from",
            json!({"podSelector": named("a"), "ingress": [{"from": [{"namespaceSelector": in_namespace(ns)}]}]}),
        )
    };
    s.apply(&[from("y")?]).await?;
    let matrix = s.world_matrix().await?;
    s.check(r, "x/a allows y", &matrix).await?;
    objects::replace_policy_spec(&s.client, &from("z")?).await?;
    s.check(r, "updated: x/a allows z", &matrix).await
}

/// Pod labels moving y/b into a peer selector (`role In [client]`) and out of it again
/// (`quarantine DoesNotExist`).
pub async fn label_change<C: Cluster>(s: &Suite<'_, C>, r: &mut CaseReport) -> Result<()> {
    s.apply(&[policy(
        "x",
        "a-from-clients",
        json!({
            "podSelector": named("a"),
            "ingress": [{"from": [{
                "namespaceSelector": {},
                "podSelector": {"matchExpressions": [
                    {"key": "role", "operator": "In", "values": ["client"]},
                    {"key": "quarantine", "operator": "DoesNotExist"},
                ]},
            }]}],
        }),
    )?])
    .await?;
    let yb = pod("y", "b");
    let matrix = s.world_matrix().await?;
    let result: Result<()> = async {
        s.check(r, "no client yet", &matrix).await?;
        objects::set_pod_label(&s.client, &yb, "role", Some("client")).await?;
        s.check(r, "y/b labelled role=client", &matrix).await?;
        objects::set_pod_label(&s.client, &yb, "quarantine", Some("true")).await?;
        s.check(r, "y/b labelled quarantine=true", &matrix).await
    }
    .await;
    objects::set_pod_label(&s.client, &yb, "role", None).await?;
    objects::set_pod_label(&s.client, &yb, "quarantine", None).await?;
    result
}

/// How often the isolated-from-birth probe starts a round, and how long each probe waits.
const BIRTH_PROBE_EVERY: &str = "50ms";
const BIRTH_PROBE_TIMEOUT: &str = "500ms";
/// How long the new pod keeps being probed once it runs.
const AFTER_RUNNING: Duration = Duration::from_secs(2);

/// A pod created where a policy already selects it is isolated from its first packet: x/d,
/// guarded like x/c (only y/a may enter), is probed by z/b (other node) and z/c (same node)
/// continuously from the moment its address is allocated until 2 s after it runs, and every
/// probe must be dropped; then the table, x/d included, must match.
pub async fn pod_created_after_policy<C: Cluster>(
    s: &Suite<'_, C>,
    r: &mut CaseReport,
) -> Result<()> {
    let guard = policy(
        "x",
        "guard-c-and-d",
        json!({
            "podSelector": {"matchExpressions": [{"key": POD_LABEL, "operator": "In", "values": ["c", "d"]}]},
            "ingress": [{"from": [{"namespaceSelector": in_namespace("y"), "podSelector": named("a")}]}],
        }),
    )?;
    apply_and_check(s, r, "x/c guarded before x/d exists", &[guard]).await?;
    let late = pod("x", "d");
    let result = watch_birth(s, r, &late).await;
    let deleted = api::delete_pod(&s.client, &late).await;
    result.and(deleted)
}

async fn watch_birth<C: Cluster>(
    s: &Suite<'_, C>,
    r: &mut CaseReport,
    late: &PodRef,
) -> Result<()> {
    let (n1, _) = two_nodes(s.cluster)?;
    let tool = s.cluster.podtool();
    let denied = [pod("z", "b"), pod("z", "c")];
    api::create_pod(
        &s.client,
        &world::server(&late.namespace, &late.name, &tool, &n1),
    )
    .await?;
    let ip = rovn_testkit::wait::Wait::new(POD_TIMEOUT)
        .every(Duration::from_millis(10))
        .until_async(&format!("pod {late} to get its address"), async || {
            let p = api::get_pod(&s.client, late).await?;
            Ok::<_, ScenarioError>(p.and_then(|p| {
                pods::annotation(&p, rovn_api::names::annotations::IP_ADDRESS)
                    .and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
            }))
        })
        .await
        .map_err(|t| ScenarioError::Timeout {
            what: t.what,
            timeout: t.timeout,
            last: t.last,
        })?;
    let probing = Instant::now();
    let mut command = argv([
        tool.as_str(),
        "probe",
        "--timeout",
        BIRTH_PROBE_TIMEOUT,
        "--every",
        BIRTH_PROBE_EVERY,
    ]);
    let birth = Matrix {
        sources: denied.to_vec(),
        destinations: vec![Destination::pod(late, ip)],
        columns: columns(),
    };
    command.extend(birth.targets().iter().map(|(_, _, t)| t.to_string()));
    let mut probers = Vec::new();
    for source in &denied {
        probers.push((source, s.cluster.spawn_in_pod(source, &command).await?));
    }
    api::wait_running(&s.client, late).await?;
    let running_after = probing.elapsed();
    tokio::time::sleep(AFTER_RUNNING).await;
    let model = objects::model(&s.client).await?;
    for (source, mut child) in probers {
        drop(child.stdin.take());
        let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
            .await
            .map_err(|_| ScenarioError::Check(format!("the prober in {source} did not stop")))?
            .map_err(|e| ScenarioError::Exec {
                what: format!("reading the prober in {source}"),
                detail: e.to_string(),
            })?;
        for column in columns() {
            crate::ensure!(
                !model
                    .allows(source, late, column.port, column.protocol)
                    .map_err(|e| ScenarioError::Check(e.to_string()))?,
                "the case is wrong: the model allows {source} → {late} {column}"
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let (passed, failures) = judge_birth_probes(&stdout, source, late, running_after);
        r.record(
            &format!("{source} probing {late} ({ip}) from its first address"),
            passed,
            &failures,
        );
    }
    let mut all = s.world.clone();
    all.push(late.clone());
    s.check(r, "x/d running", &s.matrix(&all).await?).await
}

/// Every probe line must be a drop, and probing must have gone on after the pod ran (a
/// prober that stopped early proves nothing). Returns the drops and what went wrong.
fn judge_birth_probes(
    stdout: &str,
    source: &PodRef,
    late: &PodRef,
    running_after: Duration,
) -> (usize, Vec<String>) {
    let mut passed = 0;
    let mut after_running = 0;
    let mut wrong = Vec::new();
    let mut failures = Vec::new();
    for line in stdout.lines() {
        let Some(result) = parse_result_line(line) else {
            failures.push(format!(
                "{source} → {late}: unreadable prober line {line:?}"
            ));
            continue;
        };
        if result.at >= running_after {
            after_running += 1;
        }
        if result.verdict == Verdict::Dropped {
            passed += 1;
        } else {
            wrong.push((result.at, line));
        }
    }
    wrong.sort();
    failures.extend(wrong.into_iter().map(|(_, line)| {
        format!(
            "{source} → {late}: {line} (pod Running at={}ms)",
            running_after.as_millis()
        )
    }));
    if after_running == 0 {
        failures.push(format!(
            "{source} → {late}: no probe started after the pod was Running ({} lines)",
            stdout.lines().count()
        ));
    }
    (passed, failures)
}

/// The Service's port names and numbers: the pods' own ports, so a table cell means the
/// same port whether reached directly or through the ClusterIP.
fn service_ports() -> Value {
    let ports: Vec<Value> = columns()
        .iter()
        .map(|c| {
            let proto = c.protocol.to_string();
            json!({"name": format!("{}-{}", proto.to_lowercase(), c.port), "protocol": proto, "port": c.port, "targetPort": c.port})
        })
        .collect();
    json!(ports)
}

/// A ClusterIP Service over z/a and z/b (label `svc=web`); its backends accept only y on 80,
/// and y/a may only send to the backends: y's pods must reach the ClusterIP on 80 (egress is
/// judged after load balancing, on the backend), everybody else must not. The backends
/// themselves are not clients (hairpin is another story).
pub async fn service_backends<C: Cluster>(s: &Suite<'_, C>, r: &mut CaseReport) -> Result<()> {
    let backends = [pod("z", "a"), pod("z", "b")];
    for b in &backends {
        objects::set_pod_label(&s.client, b, "svc", Some("web")).await?;
    }
    let result: Result<()> = async {
        let vip = create_service_with(
            &s.client,
            "z",
            "web",
            json!({"selector": {"svc": "web"}, "ports": service_ports()}),
        )
        .await?;
        let matrix = Matrix {
            sources: s
                .world
                .iter()
                .filter(|p| !backends.contains(p))
                .cloned()
                .collect(),
            destinations: vec![Destination {
                name: "svc:z/web".into(),
                ip: vip,
                backends: backends.to_vec(),
            }],
            columns: columns(),
        };
        s.check(r, "Service without policy", &matrix).await?;
        s.apply(&[
            policy(
                "z",
                "web-from-y",
                json!({
                    "podSelector": {"matchLabels": {"svc": "web"}},
                    "ingress": [{
                        "from": [{"namespaceSelector": in_namespace("y")}],
                        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "UDP"}],
                    }],
                }),
            )?,
            policy(
                "y",
                "a-to-web-only",
                json!({
                    "podSelector": named("a"),
                    "policyTypes": ["Egress"],
                    "egress": [{"to": [{"namespaceSelector": in_namespace("z"), "podSelector": {"matchLabels": {"svc": "web"}}}]}],
                }),
            )?,
        ])
        .await?;
        s.check(r, "backends accept y on 80, y/a sends only to them", &matrix)
            .await
    }
    .await;
    delete_service(&s.client, "z", "web").await?;
    for b in &backends {
        objects::set_pod_label(&s.client, b, "svc", None).await?;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(lines: &[&str]) -> (usize, Vec<String>) {
        judge_birth_probes(
            &lines.join("\n"),
            &pod("z", "b"),
            &pod("x", "d"),
            Duration::from_millis(100),
        )
    }

    /// Every probe of a pod born isolated must be a drop, and some must start after it runs.
    #[test]
    fn birth_probes_must_all_drop_and_outlast_the_start() {
        let dropped = [
            "tcp:10.16.0.9:80 dropped at=0ms took=500ms",
            "udp:10.16.0.9:80 dropped at=150ms took=500ms",
        ];
        assert_eq!(judge(&dropped), (2, vec![]));
        let (passed, failures) = judge(&[
            dropped[0],
            "udp:10.16.0.9:81 reached at=90ms took=3ms",
            "tcp:10.16.0.9:81 refused at=50ms took=1ms",
            dropped[1],
        ]);
        assert_eq!(passed, 2);
        assert_eq!(failures.len(), 2);
        assert!(failures[0].contains("refused at=50ms"), "{failures:?}");
        assert!(failures[1].contains("reached at=90ms"), "{failures:?}");
        let (_, failures) = judge(&[dropped[0]]);
        assert!(
            failures[0].contains("no probe started after"),
            "{failures:?}"
        );
        let (_, failures) = judge(&[]);
        assert_eq!(failures.len(), 1);
    }
}
