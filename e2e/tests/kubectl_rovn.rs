//! `kubectl rovn` on one 2-node lab running rovn: trace (pod → pod delivered, with `--ovs` also
//! through OpenFlow on the source node, and as on a cluster by exec into the node's OVS pod
//! through the API server; pod → Service balanced to its backends, a spoofed source
//! dropped by port security, a drop by a namespace's default-deny ACL and a delivery allowed by
//! a NetworkPolicy's ACL, both written by hand as the controller's NetworkPolicy rows are), rows
//! of a pod and a Subnet, and diagnose (clean on the healthy lab; a stopped ovn-controller and a
//! tunnel port deleted on its node; then a pod port deleted by hand while the controller is
//! stopped, and a foreign port holding a pod's address; the controller's own dry run, read from
//! the leader through the API server's pod proxy: a name a foreign port took from a pod). The
//! plugin finds NB and SB (and the
//! nodes' OVS) through the ConfigMap `kube-system/rovn-config` the lab creates, with the lab's
//! kubeconfig alone, as on a cluster. Last, a real NetworkPolicy: its allow and its namespace's
//! (logged) drop named in the verdicts.

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, EnvVar, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use rovn_e2e::lab::{LabSpec, bins};
use rovn_e2e::scenario::cluster::{Cluster, Component, PodRef, argv, two_nodes};
use rovn_e2e::scenario::harness::{run_on_lab, step};
use rovn_e2e::scenario::pods::{PodSpec, TCP_PORT, pod_ip};
use rovn_e2e::scenario::{ScenarioError, api, wait};
use rovn_e2e::{ensure, scenario::Result};

const NS: &str = "kr";
/// How long NB may take to show what the API server was told.
const CONVERGE: Duration = Duration::from_secs(30);

/// One run of the plugin.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn first_line(&self) -> &str {
        self.stdout.lines().next().unwrap_or_default()
    }

    fn describe(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `kubectl-rovn ARGS` with only the lab's kubeconfig: no ROVN_NB/ROVN_SB, so NB and SB come
/// from the lab's ConfigMap.
async fn rovn(bin: &PathBuf, kubeconfig: &PathBuf, args: &[&str]) -> Result<Run> {
    let out = tokio::process::Command::new(bin)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("ROVN_NB")
        .env_remove("ROVN_SB")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| ScenarioError::Exec {
            what: format!("kubectl-rovn {args:?}"),
            detail: e.to_string(),
        })?;
    Ok(Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// A selector-less Service `web` (80 → 8080) and its EndpointSlice naming `backend`: the lab's
/// API server runs no EndpointSlice controller, so the slice is made by hand, as for any
/// Service without a selector.
async fn create_web_service(cluster: &impl Cluster, backend: Ipv4Addr) -> Result<()> {
    let client = cluster.client();
    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": TCP_PORT, "protocol": "TCP"}]},
    }))
    .map_err(|e| ScenarioError::Check(format!("service object: {e}")))?;
    Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &service)
        .await
        .map_err(|e| ScenarioError::kube("creating service kr/web", e))?;
    let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "web-1",
            "namespace": NS,
            "labels": {"kubernetes.io/service-name": "web"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": TCP_PORT, "protocol": "TCP"}],
        "endpoints": [{"addresses": [backend.to_string()], "conditions": {"ready": true}}],
    }))
    .map_err(|e| ScenarioError::Check(format!("endpointslice object: {e}")))?;
    Api::<EndpointSlice>::namespaced(client, NS)
        .create(&PostParams::default(), &slice)
        .await
        .map_err(|e| ScenarioError::kube("creating endpointslice kr/web-1", e))?;
    let want = format!("{backend}:{TCP_PORT}");
    wait::until(
        CONVERGE,
        "svc.kr.web.tcp with its backend in NB",
        async || {
            let vips = cluster
                .nbctl(&[
                    "--bare",
                    "--columns=vips",
                    "find",
                    "Load_Balancer",
                    "name=svc.kr.web.tcp",
                ])
                .await?;
            Ok(vips.contains(&want).then_some(()))
        },
    )
    .await
}

/// NetworkPolicy `kr/web`: pods `role=server` take TCP on the test port from pods
/// `role=client` only, with its ACLs' logging on (`rovn.io/acl-log`).
async fn create_web_policy(client: &kube::Client) -> Result<()> {
    let policy: NetworkPolicy = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "web",
            "namespace": NS,
            "annotations": {"rovn.io/acl-log": "allow,deny"},
        },
        "spec": {
            "podSelector": {"matchLabels": {"role": "server"}},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                "ports": [{"protocol": "TCP", "port": TCP_PORT}],
            }],
        },
    }))
    .map_err(|e| ScenarioError::Check(format!("networkpolicy object: {e}")))?;
    Api::<NetworkPolicy>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &policy)
        .await
        .map_err(|e| ScenarioError::kube("creating networkpolicy kr/web", e))?;
    Ok(())
}

/// Sets (or, with `None`, removes) the lab ConfigMap's `ovs-rundir`.
async fn set_ovs_rundir(client: &kube::Client, template: Option<&str>) -> Result<()> {
    Api::<ConfigMap>::namespaced(client.clone(), "kube-system")
        .patch(
            "rovn-config",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"ovs-rundir": template}})),
        )
        .await
        .map_err(|e| ScenarioError::kube("patching ConfigMap kube-system/rovn-config", e))?;
    Ok(())
}

/// `trace --ovs` as on a cluster (no run directories): without an OVS pod on the source's node
/// it names what is missing and the command to run there; with one it execs OVS's tools in that
/// pod through the API server and the node's kubelet, and traces through OpenFlow.
async fn ovs_pod_traces(
    cluster: &impl Cluster,
    run: &impl AsyncFn(&[&str]) -> Result<Run>,
    tool: &str,
    node: &str,
    rundir: &str,
) -> Result<()> {
    let port = TCP_PORT.to_string();
    let args = [
        "trace",
        "kr/client",
        "kr/server",
        "tcp",
        &port,
        "--ovs",
        "--ovs-pod-namespace",
        NS,
    ];
    let r = run(&args).await?;
    ensure!(
        r.code == Some(2)
            && r.first_line() == "VERDICT: delivered to port server.kr (Pod kr/server)"
            && r.stderr.contains(&format!(
                "cannot reach the OVS of node {node}: no --ovs-rundir, $ROVN_OVS_RUNDIR or ConfigMap key ovs-rundir names its run directory, and no running pod in {NS} labelled app.kubernetes.io/name=ovs-ovn is on the node"
            ))
            && r.stderr.contains("or run on the node: ovs-appctl ofproto/trace br-int \"in_port=$(ovs-vsctl --bare --columns=ofport find Interface external_ids:iface-id=client.kr),tcp,"),
        "{}",
        r.describe()
    );
    // The node's OVS pod: its container's OVS_RUNDIR is the node's run directory, as an
    // ovs-ovn image's is the node's /var/run/openvswitch, so OVS's tools exec'd in it (with the
    // container's environment) reach the node's OVS.
    let mut pod = PodSpec::server(NS, "ovs-ovn", tool)
        .on(node)
        .label("app.kubernetes.io/name", "ovs-ovn")
        .to_pod()?;
    if let Some(container) = pod.spec.as_mut().and_then(|s| s.containers.first_mut()) {
        container.env = Some(vec![EnvVar {
            name: "OVS_RUNDIR".into(),
            value: Some(rundir.to_string()),
            ..EnvVar::default()
        }]);
    }
    Api::<Pod>::namespaced(cluster.client(), NS)
        .create(&PostParams::default(), &pod)
        .await
        .map_err(|e| ScenarioError::kube("creating pod kr/ovs-ovn", e))?;
    api::wait_running(&cluster.client(), &PodRef::new(NS, "ovs-ovn")).await?;
    let r = run(&args).await?;
    ensure!(
        r.code == Some(0)
            && r.first_line() == "VERDICT: delivered to port server.kr (Pod kr/server)"
            && r.stdout.contains(&format!(
                "# OpenFlow on node {node}: ovs-appctl ofproto/trace br-int 'in_port="
            ))
            && r.stdout.contains("Datapath actions:"),
        "{}",
        r.describe()
    );
    Ok(())
}

/// The port group of the hand-written policy ACLs.
const TEST_PG: &str = "pg_kr_test";

/// Writes ACLs on a port group holding `kr/server`'s port as the controller writes
/// NetworkPolicy rows (a namespace's default deny, then a policy's allow above it) and traces
/// `kr/client` → `kr/server` after each. The caller deletes the port group (and so the ACLs).
async fn policy_traces(
    cluster: &impl Cluster,
    run: &impl AsyncFn(&[&str]) -> Result<Run>,
) -> Result<()> {
    cluster.nbctl(&["pg-add", TEST_PG, "server.kr"]).await?;
    let acl = |owner: &str, id: &str, priority: &str, action: &str| {
        vec![
            "--id=@acl".to_string(),
            "create".into(),
            "ACL".into(),
            "direction=to-lport".into(),
            format!("priority={priority}"),
            format!("match=\"outport == @{TEST_PG} && ip4\""),
            format!("action={action}"),
            format!("name=\"{owner}/{id}\""),
            format!(
                "external_ids={{\"rovn.io/vendor\"=rovn,\"rovn.io/owner\"=\"{owner}\",\"rovn.io/id\"=\"{id}\",\"rovn.io/direction\"=ingress}}"
            ),
            "--".into(),
            "add".into(),
            "Port_Group".into(),
            TEST_PG.into(),
            "acls".into(),
            "@acl".into(),
        ]
    };
    let port = TCP_PORT.to_string();
    let add = async |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cluster.nbctl(&args).await.map(drop)
    };
    // --wait=sb so the trace reads the flows made of it.
    add(acl("Namespace/kr", "deny-ingress", "2000", "drop")).await?;
    cluster.nbctl(&["--wait=sb", "sync"]).await?;
    let r = run(&["trace", "kr/client", "kr/server", "tcp", &port]).await?;
    ensure!(
        r.code == Some(1)
            && r.first_line().starts_with(
                "VERDICT: dropped: pod kr/server is isolated for ingress by NetworkPolicies in namespace kr and none allows this (ACL Namespace/kr/deny-ingress)"
            ),
        "{}",
        r.describe()
    );
    add(acl(
        "NetworkPolicy/kr/web",
        "ingress.0",
        "2001",
        "allow-related",
    ))
    .await?;
    cluster.nbctl(&["--wait=sb", "sync"]).await?;
    let r = run(&["trace", "kr/client", "kr/server", "tcp", &port]).await?;
    ensure!(
        r.code == Some(0)
            && r.first_line()
                == "VERDICT: delivered to port server.kr (Pod kr/server); allowed by NetworkPolicy kr/web rule ingress.0",
        "{}",
        r.describe()
    );
    Ok(())
}

#[test]
fn kubectl_rovn_on_a_lab() {
    let name = common::unique_name("kr");
    let spec = LabSpec::with_rovn(name.clone(), 2);
    let result = run_on_lab(&spec, &[NS], async |cluster| {
        let bin = bins::default_bin_dir()?.join("kubectl-rovn");
        ensure!(
            bin.is_file(),
            "{} is missing: build the workspace's binaries first (cargo build --workspace --bins)",
            bin.display()
        );
        let kubeconfig = cluster.lab().names().kubeconfig();
        let run = async |args: &[&str]| rovn(&bin, &kubeconfig, args).await;
        // After a fix, diagnose comes clean once rovn and OVN have caught up.
        let diagnose_clean = async |what: &str| {
            wait::until(CONVERGE, what, async || {
                let r = run(&["diagnose"]).await?;
                if r.code == Some(0) {
                    Ok(Some(()))
                } else {
                    Err(ScenarioError::Check(r.describe()))
                }
            })
            .await
        };
        let client = cluster.client();
        let (n1, n2) = two_nodes(cluster)?;
        let tool = cluster.podtool();
        api::ensure_namespace(&client, NS).await?;
        let running = api::create_and_wait(
            &client,
            &[
                PodSpec::server(NS, "client", &tool)
                    .on(&n1)
                    .label("role", "client"),
                PodSpec::server(NS, "server", &tool)
                    .on(&n2)
                    .label("role", "server"),
            ],
        )
        .await?;
        let no_ip = || ScenarioError::Check("a pod has no podIP".into());
        let client_ip = pod_ip(&running[0]).ok_or_else(no_ip)?;
        let server_ip = pod_ip(&running[1]).ok_or_else(no_ip)?;
        create_web_service(cluster, server_ip).await?;

        step("trace pod to pod", async || {
            let port = TCP_PORT.to_string();
            let r = run(&["trace", "kr/client", "kr/server", "tcp", &port]).await?;
            ensure!(
                r.code == Some(0)
                    && r.first_line() == "VERDICT: delivered to port server.kr (Pod kr/server)",
                "{}",
                r.describe()
            );
            ensure!(
                r.stdout.contains("ingress(dp=\"ovn-default\""),
                "no trace: {}",
                r.describe()
            );
            Ok(())
        })
        .await?;

        step("trace pod to pod through OpenFlow", async || {
            let port = TCP_PORT.to_string();
            let r = run(&["trace", "kr/client", "kr/server", "tcp", &port, "--ovs"]).await?;
            ensure!(
                r.code == Some(0)
                    && r.first_line() == "VERDICT: delivered to port server.kr (Pod kr/server)"
                    && r.stdout.contains(&format!(
                        "# OpenFlow on node {n1}: ovs-appctl ofproto/trace br-int 'in_port="
                    ))
                    && r.stdout.contains("Datapath actions:"),
                "{}",
                r.describe()
            );
            Ok(())
        })
        .await?;

        step(
            "trace --ovs on a cluster: exec into the node's OVS pod",
            async || {
                // Without the lab's run directories the plugin looks for the node's OVS pod.
                set_ovs_rundir(&client, None).await?;
                let template = cluster.lab().names().node_rundir_template();
                let rundir = template.replace("{node}", &n1);
                let result = ovs_pod_traces(cluster, &run, &tool, &n1, &rundir).await;
                set_ovs_rundir(&client, Some(&template)).await?;
                result
            },
        )
        .await?;

        step("trace pod to Service", async || {
            let r = run(&["trace", "kr/client", "svc/kr/web"]).await?;
            let backend = format!("to backends {server_ip}:{TCP_PORT}");
            ensure!(
                r.code == Some(0)
                    && r.first_line().starts_with(
                        "VERDICT: load-balanced by load balancer svc.kr.web.tcp (Service kr/web) VIP "
                    )
                    && r.first_line().contains(&backend)
                    && r.first_line().ends_with("delivered to port server.kr (Pod kr/server)"),
                "{}",
                r.describe()
            );
            Ok(())
        })
        .await?;

        step("trace a spoofed source", async || {
            let r = run(&[
                "trace",
                "kr/client",
                "kr/server",
                "--src-ip",
                "10.16.250.250",
            ])
            .await?;
            ensure!(
                r.code == Some(1)
                    && r.first_line().starts_with(
                        "VERDICT: dropped by port security of port client.kr (Pod kr/client)"
                    )
                    && r.first_line().contains(&format!("{client_ip}")),
                "{}",
                r.describe()
            );
            Ok(())
        })
        .await?;

        step("trace a NetworkPolicy drop and allow", async || {
            // The controller would garbage-collect rovn-owned ACLs no policy explains.
            cluster.stop(&Component::Controller).await?;
            let result = policy_traces(cluster, &run).await;
            let cleanup = cluster
                .nbctl(&["--if-exists", "destroy", "Port_Group", TEST_PG])
                .await;
            cluster.start(&Component::Controller).await?;
            result?;
            cleanup.map(drop)
        })
        .await?;

        step("rows of a pod and a Subnet", async || {
            let db = cluster.lab().names().nb_db_file();
            let db = db.display().to_string();
            let r = run(&["rows", "pod/kr/server", "--nb-db-file", &db]).await?;
            ensure!(
                r.code == Some(0)
                    && r.stdout.starts_with(
                        "NB rows owned by Pod/kr/server:\nLogical_Switch_Port server.kr ("
                    )
                    && r.stdout.contains(&server_ip.to_string())
                    && r.stdout.contains("\"rovn-controller: ")
                    && r.stdout.contains("insert row \"server.kr\""),
                "{}",
                r.describe()
            );
            let r = run(&["rows", "Subnet/ovn-default"]).await?;
            for row in [
                "Logical_Router_Port ovn-cluster-ovn-default (",
                "Logical_Switch ovn-default (",
                "Logical_Switch_Port ovn-default-ovn-cluster (",
            ] {
                ensure!(r.stdout.contains(row), "no {row}: {}", r.describe());
            }
            ensure!(!r.stdout.contains("server.kr"), "{}", r.describe());
            Ok(())
        })
        .await?;

        step("topology and passthrough", async || {
            let r = run(&["topology"]).await?;
            ensure!(
                r.code == Some(0)
                    && r.stdout
                        .contains("switch ovn-default 10.16.0.0/16 (Subnet ovn-default")
                    && r.stdout.contains("server.kr [Pod kr/server]")
                    && r.stdout.contains("svc.kr.web.tcp (Service kr/web)"),
                "{}",
                r.describe()
            );
            let r = run(&["sbctl", "--columns=hostname", "list", "Chassis"]).await?;
            ensure!(
                r.code == Some(0) && r.stdout.contains(n2.as_str()),
                "{}",
                r.describe()
            );
            Ok(())
        })
        .await?;

        step("diagnose a healthy lab", async || {
            let r = run(&["diagnose"]).await?;
            ensure!(
                r.code == Some(0)
                    && r.stdout.starts_with("no findings")
                    && r.stdout
                        .contains("2 SB chassis, 2 nodes' tunnel ports checked")
                    // The leader's plan was read through the API server's pod proxy.
                    && !r.stdout.contains("dry run not checked"),
                "{}",
                r.describe()
            );
            Ok(())
        })
        .await?;

        step("diagnose a stopped ovn-controller and a lost tunnel", async || {
            cluster.stop(&Component::OvnController(n2.clone())).await?;
            // With ovn-controller down, nothing puts the tunnel back.
            let tunnel = cluster
                .exec_on_node(
                    &n2,
                    &argv(["ovs-vsctl", "--bare", "--columns=name", "find", "Interface", "type=geneve"]),
                )
                .await?
                .ok("list tunnel ports")?;
            let tunnel = tunnel.split_whitespace().next().unwrap_or_default().to_string();
            ensure!(!tunnel.is_empty(), "{n2} has no geneve port");
            cluster
                .exec_on_node(&n2, &argv(["ovs-vsctl", "del-port", "br-int", &tunnel]))
                .await?
                .ok("delete the tunnel port")?;
            let r = run(&["diagnose", "--sync-wait", "3"]).await?;
            let stopped = format!(
                "[processing] Node/{n2}: ovn-controller on node {n2} (chassis {n2}) is not processing"
            );
            let fix = format!(
                "fix: ovn-controller on node {n2} is not processing; check the ovs-ovn pod / `systemctl status ovn-controller`"
            );
            let lost = format!("[tunnel] Node/{n2}: br-int on {n2} has no tunnel port to chassis {n1}");
            ensure!(
                r.code == Some(1)
                    && r.stdout.contains(&stopped)
                    && r.stdout.contains(&fix)
                    && r.stdout.contains(&lost)
                    && !r.stdout.contains(&format!("Node/{n1}:")),
                "{}",
                r.describe()
            );
            // --no-sync writes nothing and so cannot tell.
            let r = run(&["diagnose", "--no-sync"]).await?;
            ensure!(!r.stdout.contains("[processing]"), "{}", r.describe());
            cluster.start(&Component::OvnController(n2.clone())).await?;
            diagnose_clean("diagnose clean with ovn-controller back").await
        })
        .await?;

        step("diagnose a deleted port and a foreign one", async || {
            cluster.stop(&Component::Controller).await?;
            let r = run(&["nbctl", "lsp-del", "server.kr"]).await?;
            ensure!(r.code == Some(0), "{}", r.describe());
            // Written as a foreign tool would, with the generic `set`: lsp-set-addresses
            // refuses an address another port of the switch already has.
            let addresses = format!("addresses=\"0a:00:00:00:00:01 {client_ip}\"");
            let r = run(&[
                "nbctl",
                "lsp-add",
                "ovn-default",
                "intruder",
                "--",
                "set",
                "Logical_Switch_Port",
                "intruder",
                &addresses,
            ])
            .await?;
            ensure!(r.code == Some(0), "{}", r.describe());
            let r = run(&["diagnose"]).await?;
            ensure!(
                r.code == Some(1)
                    // A stopped controller gives its Lease up.
                    && r.stdout.contains("note: the controller's own dry run not checked: Lease kube-system/rovn-controller has no holder")
                    && r.stdout.contains("[missing] Pod/kr/server: the pod is allocated")
                    && r.stdout.contains(&format!(
                        "[foreign] Logical_Switch_Port intruder: a port rovn did not write (no rovn.io/vendor=rovn) holds IP {client_ip}, also held by Pod/kr/client"
                    ))
                    && r.stdout.contains("fix: remove the foreign port (kubectl rovn nbctl lsp-del intruder)"),
                "{}",
                r.describe()
            );
            // The fixes the findings name: remove the foreign port, run the controller.
            let r = run(&["nbctl", "lsp-del", "intruder"]).await?;
            ensure!(r.code == Some(0), "{}", r.describe());
            cluster.start(&Component::Controller).await?;
            diagnose_clean("diagnose clean after the fixes").await
        })
        .await?;

        step("diagnose a name taken from the controller", async || {
            // A port rovn did not write, named as the next pod's port will be.
            let r = run(&["nbctl", "lsp-add", "ovn-default", "late.kr"]).await?;
            ensure!(r.code == Some(0), "{}", r.describe());
            let late =
                api::create_pod(&client, &PodSpec::server(NS, "late", &tool).on(&n1)).await?;
            let conflict = "[conflict] Pod/kr/late: Logical_Switch_Port late.kr (";
            wait::until(
                CONVERGE,
                "the controller's conflict in diagnose",
                async || {
                    let r = run(&["diagnose", "--no-sync"]).await?;
                    if r.code == Some(1)
                        && r.stdout.contains(conflict)
                        && r.stdout.contains("not overwriting it for Pod/kr/late")
                        && r.stdout
                            .contains("fix: rename or remove the row rovn did not write")
                    {
                        Ok(Some(()))
                    } else {
                        Err(ScenarioError::Check(r.describe()))
                    }
                },
            )
            .await?;
            // Removing the foreign port frees the name: the controller takes it at once (not
            // at its next full resync) and the pod starts.
            let r = run(&["nbctl", "lsp-del", "late.kr"]).await?;
            ensure!(r.code == Some(0), "{}", r.describe());
            api::wait_running(&client, &late).await?;
            diagnose_clean("diagnose clean once the name is free").await?;
            api::delete_pod(&client, &late).await
        })
        .await?;

        // Last: the policy stays until the namespace goes.
        step("trace a real NetworkPolicy", async || {
            create_web_policy(&client).await?;
            let port = TCP_PORT.to_string();
            let allowed = "VERDICT: delivered to port server.kr (Pod kr/server); allowed by NetworkPolicy kr/web rule ingress.0";
            wait::until(CONVERGE, "the policy's allow in the trace", async || {
                let r = run(&["trace", "kr/client", "kr/server", "tcp", &port]).await?;
                if r.code == Some(0) && r.first_line() == allowed {
                    Ok(Some(()))
                } else {
                    Err(ScenarioError::Check(r.describe()))
                }
            })
            .await?;
            // Another port: no rule allows it, and the namespace's drop logs (rovn.io/acl-log).
            let r = run(&["trace", "kr/client", "kr/server", "tcp", "9"]).await?;
            ensure!(
                r.code == Some(1)
                    && r.first_line().starts_with(
                        "VERDICT: dropped: pod kr/server is isolated for ingress by NetworkPolicies in namespace kr and none allows this (ACL kr:deny-ingress)"
                    )
                    && r.stdout.contains("verdict=drop"),
                "{}",
                r.describe()
            );
            Ok(())
        })
        .await?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("lab {name}: {e}");
    }
    common::assert_gone(&name);
}
