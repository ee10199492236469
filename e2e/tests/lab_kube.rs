//! The whole lab working together, with nothing of rovn's own networking: OVN nodes, the test
//! API server, a kubelet per node and the scheduler, with Debian's reference CNI plugins
//! (`bridge` + `host-local`, chained with `portmap` and `tuning`) as every node's network.
//! Pods get addresses from their node's range, reach each other on one node without NAT, and
//! are torn down completely (sandbox gone, address released) before they leave the API. This
//! proves the kubelet is a faithful runtime before rovn's own CNI exists.

mod common;
#[path = "lab_kube/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use rovn_e2e::lab::kube::SYSTEM_CNI_BIN_DIR;
use rovn_e2e::lab::{LabNames, Place, bins, netns};
use serde_json::json;

use rovn_e2e::scenario::pods::{self, PodSpec};
use rovn_e2e::scenario::wait;
use support::cni::{self, PodRange};
use support::kubectl::kubectl;
use support::sandbox::{Teardown, run_in};

const NODES: u8 = 2;
const NAMESPACE: &str = "labkube";
/// Long enough for a busy 2-core machine; each wait normally ends within a second or two.
const POD_TIMEOUT: Duration = Duration::from_secs(20);
/// Short grace: `rovn-podtool serve` exits on SIGTERM at once.
const POD_GRACE_SECONDS: i64 = 5;

// The pods of the scenario: two servers pinned to node1, one pinned to node2, one the scheduler
// places, a hostNetwork server on node1 and a run-to-completion pod on node2.
const SAME_NODE_A: &str = "a1";
const SAME_NODE_B: &str = "a2";
const OTHER_NODE: &str = "b1";
const SCHEDULED: &str = "free";
const HOST_NETWORK: &str = "host";
const RUN_ONCE: &str = "once";

#[test]
fn reference_cni_pods_get_ips_reach_each_other_and_tear_down() {
    let (phases, lab) = common::run_kube_lab("lk", NODES, NAMESPACE, scenario);
    eprintln!(
        "lab_kube timings: lab up {:?}, pods Running+Ready {:?}, checks done {:?}, \
         all pods deleted {:?}, scenario total {:?}, lab down {:?}",
        lab.up, phases.ready, phases.checked, phases.deleted, lab.scenario, lab.down
    );
}

/// How long the scenario's phases took, measured from its start.
struct Phases {
    ready: Duration,
    checked: Duration,
    deleted: Duration,
}

/// Per-node facts the checks compare against.
struct NodeFacts {
    ip: Ipv4Addr,
    range: PodRange,
    ipam_dir: PathBuf,
}

/// The lab as the scenario sees it.
struct Cluster {
    names: LabNames,
    nodes: BTreeMap<String, NodeFacts>,
    pods: Api<Pod>,
    podtool: PathBuf,
}

/// Everything the issue asks, in order; the first failed check ends it with its reason.
async fn scenario(names: &LabNames) -> anyhow::Result<Phases> {
    let started = Instant::now();
    let cluster = Cluster::open(names).await?;
    cluster.install_networks()?;
    cluster.check_nodes_ready().await?;
    cluster.create_pods().await?;
    let running = cluster.wait_running().await?;
    let ready = started.elapsed();

    cluster.check_addresses(&running)?;
    cluster.check_sandboxes(&running).await?;
    cluster.check_same_node_traffic(&running).await?;
    cluster.check_host_network(&running).await?;
    cluster.check_run_once().await?;
    let checked = started.elapsed();

    cluster.delete_and_check_teardown(&running).await?;
    cluster.check_no_reservations_left()?;
    Ok(Phases {
        ready,
        checked,
        deleted: started.elapsed(),
    })
}

impl Cluster {
    /// Connects to the lab's API server and creates the test's namespace.
    async fn open(names: &LabNames) -> anyhow::Result<Self> {
        let kubeconfig = kube::config::Kubeconfig::read_from(names.kubeconfig())
            .with_context(|| format!("reading {}", names.kubeconfig().display()))?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .context("loading the lab kubeconfig")?;
        let client = Client::try_from(config).context("building the API client")?;
        let nodes = (1..=NODES)
            .map(|i| {
                let place = Place::Node(i);
                let facts = NodeFacts {
                    ip: place.underlay_ip(),
                    range: PodRange::of_node(i),
                    ipam_dir: names.place_dir(place).join("cni-ipam"),
                };
                (place.label(), facts)
            })
            .collect();
        let podtool = bins::default_bin_dir()?.join("rovn-podtool");
        anyhow::ensure!(
            podtool.is_file(),
            "{} is missing: build rovn-e2e's binaries first",
            podtool.display()
        );
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}
        }))?;
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {NAMESPACE}"))?;
        Ok(Cluster {
            names: names.clone(),
            nodes,
            pods: Api::namespaced(client, NAMESPACE),
            podtool,
        })
    }

    fn node(&self, name: &str) -> anyhow::Result<&NodeFacts> {
        self.nodes
            .get(name)
            .with_context(|| format!("{name} is not a node of this lab"))
    }

    /// Every node's conflist, with host-local's state under the lab's own state dir.
    fn install_networks(&self) -> anyhow::Result<()> {
        cni::check_plugins(Path::new(SYSTEM_CNI_BIN_DIR))?;
        for i in 1..=NODES {
            let node = self.node(&Place::Node(i).label())?;
            let conflist = cni::bridge_conflist(node.range, &node.ipam_dir);
            cni::install(&self.names.cni_conf_dir(i), &conflist)?;
        }
        Ok(())
    }

    /// `kubectl get nodes`: every node Ready with its underlay address as InternalIP.
    async fn check_nodes_ready(&self) -> anyhow::Result<()> {
        #[derive(serde::Deserialize)]
        struct NodeList {
            items: Vec<Node>,
        }
        let text = kubectl(&self.names.kubeconfig(), &["get", "nodes", "-o", "json"]).await?;
        let list: NodeList =
            serde_json::from_str(&text).context("parsing `kubectl get nodes -o json`")?;
        let mut seen = Vec::new();
        for node in &list.items {
            let name = node.metadata.name.clone().unwrap_or_default();
            let status = node.status.as_ref();
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let internal_ip = status
                .and_then(|s| s.addresses.as_ref())
                .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
                .map(|a| a.address.clone());
            let expected = self.node(&name)?.ip.to_string();
            anyhow::ensure!(ready, "node {name} is not Ready");
            anyhow::ensure!(
                internal_ip.as_deref() == Some(expected.as_str()),
                "node {name} has InternalIP {internal_ip:?}, expected {expected}"
            );
            seen.push(name);
        }
        seen.sort();
        let wanted: Vec<&String> = self.nodes.keys().collect();
        anyhow::ensure!(
            seen.iter().eq(wanted.iter().copied()),
            "nodes {seen:?}, expected {wanted:?}"
        );
        Ok(())
    }

    async fn create_pods(&self) -> anyhow::Result<()> {
        // The lab's kubelet ignores images and finds `rovn-podtool` and `true` on its PATH.
        let tool = "rovn-podtool";
        let specs = [
            PodSpec::server(NAMESPACE, SAME_NODE_A, tool).on("node1"),
            PodSpec::server(NAMESPACE, SAME_NODE_B, tool).on("node1"),
            PodSpec::server(NAMESPACE, OTHER_NODE, tool).on("node2"),
            PodSpec::server(NAMESPACE, SCHEDULED, tool),
            PodSpec::host_network_server(NAMESPACE, HOST_NETWORK, tool).on("node1"),
            PodSpec::run_once(NAMESPACE, RUN_ONCE, &["true"]).on("node2"),
        ];
        for spec in specs {
            let pod = spec.grace(POD_GRACE_SECONDS).to_pod()?;
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            self.pods
                .create(&PostParams::default(), &pod)
                .await
                .with_context(|| format!("creating pod {NAMESPACE}/{name}"))?;
        }
        Ok(())
    }

    /// Waits until every serving pod is Running and Ready with a pod IP and a host IP.
    async fn wait_running(&self) -> anyhow::Result<BTreeMap<String, Pod>> {
        let wanted = [
            SAME_NODE_A,
            SAME_NODE_B,
            OTHER_NODE,
            SCHEDULED,
            HOST_NETWORK,
        ];
        wait::until_anyhow(
            POD_TIMEOUT,
            "every serving pod Running and Ready",
            async || {
                let mut found = BTreeMap::new();
                for name in wanted {
                    let Some(pod) = self.pods.get_opt(name).await? else {
                        return Ok(None);
                    };
                    let up = pods::phase(&pod) == Some("Running")
                        && pods::is_ready(&pod)
                        && pods::pod_ip(&pod).is_some()
                        && pods::host_ip(&pod).is_some();
                    if !up {
                        return Ok(None);
                    }
                    found.insert(name.to_string(), pod);
                }
                Ok(Some(found))
            },
        )
        .await
    }

    /// Pinned pods on their node, the free one on some node; pod IPs from the node's range
    /// (host IP for hostNetwork), host IPs the node's.
    fn check_addresses(&self, running: &BTreeMap<String, Pod>) -> anyhow::Result<()> {
        let pinned = [
            (SAME_NODE_A, Some("node1")),
            (SAME_NODE_B, Some("node1")),
            (OTHER_NODE, Some("node2")),
            (HOST_NETWORK, Some("node1")),
            (SCHEDULED, None),
        ];
        for (name, expected_node) in pinned {
            let pod = get(running, name)?;
            let node_name = pods::node_name(pod).context("bound pod without nodeName")?;
            if let Some(expected) = expected_node {
                anyhow::ensure!(
                    node_name == expected,
                    "pod {name} runs on {node_name}, pinned to {expected}"
                );
            }
            let node = self.node(node_name)?;
            let pod_ip = pods::pod_ip(pod).context("no podIP")?;
            let host_ip = pods::host_ip(pod).context("no hostIP")?;
            anyhow::ensure!(
                host_ip == node.ip,
                "pod {name} on {node_name} reports hostIP {host_ip}, expected {}",
                node.ip
            );
            if name == HOST_NETWORK {
                anyhow::ensure!(
                    pod_ip == node.ip,
                    "hostNetwork pod reports podIP {pod_ip}, expected the node's {}",
                    node.ip
                );
            } else {
                anyhow::ensure!(
                    node.range.holds_host(pod_ip),
                    "pod {name} on {node_name} got {pod_ip}, outside {}",
                    node.range.cidr()
                );
            }
        }
        let a = pods::pod_ip(get(running, SAME_NODE_A)?);
        let b = pods::pod_ip(get(running, SAME_NODE_B)?);
        anyhow::ensure!(a != b, "two pods on node1 share the address {a:?}");
        Ok(())
    }

    /// What the kubelet reported is what the plugins did: each sandbox's `eth0` holds the pod
    /// IP, the default route leads to the bridge's gateway, and `tuning`, last in the chain, set
    /// its sysctl on the interface `bridge` made.
    async fn check_sandboxes(&self, running: &BTreeMap<String, Pod>) -> anyhow::Result<()> {
        for (name, pod) in running {
            if name == HOST_NETWORK {
                continue;
            }
            let sandbox = self.names.pod_netns(pods::uid(pod)?);
            let ip = pods::pod_ip(pod).context("no podIP")?;
            let node = self.node(pods::node_name(pod).context("no nodeName")?)?;
            let addresses =
                run_in(&sandbox, "ip", &["-o", "-4", "addr", "show", "dev", "eth0"]).await?;
            let cidr = format!("inet {ip}/{} ", node.range.prefix);
            anyhow::ensure!(
                addresses.contains(&cidr),
                "pod {name}'s eth0 in {sandbox} lacks {cidr:?}: {addresses}"
            );
            let routes = run_in(&sandbox, "ip", &["-4", "route", "show", "default"]).await?;
            let gateway = format!("default via {} dev eth0", node.range.gateway());
            anyhow::ensure!(
                routes.contains(&gateway),
                "pod {name}'s sandbox {sandbox} has no {gateway:?}: {routes}"
            );
            let arp_notify =
                run_in(&sandbox, "sysctl", &["-n", "net.ipv4.conf.eth0.arp_notify"]).await?;
            anyhow::ensure!(
                arp_notify.trim() == "1",
                "tuning did not set arp_notify on pod {name}'s eth0 (it is {:?})",
                arp_notify.trim()
            );
        }
        Ok(())
    }

    /// TCP and UDP from pod A's sandbox to pod B on the same node, and TCP back: each server
    /// sees the client's own pod IP, so nothing translated it.
    async fn check_same_node_traffic(&self, running: &BTreeMap<String, Pod>) -> anyhow::Result<()> {
        let a = get(running, SAME_NODE_A)?;
        let b = get(running, SAME_NODE_B)?;
        for (from, to, proto, port) in [
            (a, b, "tcp", pods::TCP_PORT),
            (a, b, "udp", pods::UDP_PORT),
            (b, a, "tcp", pods::TCP_PORT),
        ] {
            let target = pods::pod_ip(to).context("no podIP")?;
            let said = self.connect(from, proto, target, port).await?;
            self.expect_greeting(&said, to, pods::pod_ip(from).context("no podIP")?)?;
            anyhow::ensure!(
                said.lines().nth(1) == Some(MESSAGE),
                "{proto} echo from {target}:{port} lost the message: {said:?}"
            );
        }
        Ok(())
    }

    /// The hostNetwork pod has no sandbox, and serves on the node's own address: a pod of that
    /// node reaches it there, unNATed.
    async fn check_host_network(&self, running: &BTreeMap<String, Pod>) -> anyhow::Result<()> {
        let host = get(running, HOST_NETWORK)?;
        let sandbox = self.names.pod_netns(pods::uid(host)?);
        anyhow::ensure!(
            !netns::exists(&sandbox),
            "hostNetwork pod got a sandbox namespace {sandbox}"
        );
        let a = get(running, SAME_NODE_A)?;
        let node_ip = self.node("node1")?.ip;
        let said = self.connect(a, "tcp", node_ip, pods::HOST_TCP_PORT).await?;
        self.expect_greeting(&said, host, pods::pod_ip(a).context("no podIP")?)
    }

    /// A pod whose container exits 0 under `restartPolicy: Never` ends `Succeeded`, and its
    /// sandbox and address go with it.
    async fn check_run_once(&self) -> anyhow::Result<()> {
        let pod = wait::until_anyhow(POD_TIMEOUT, "pod once to be Succeeded", async || {
            let pod = self.pods.get_opt(RUN_ONCE).await?;
            Ok(pod.filter(|p| pods::phase(p) == Some("Succeeded")))
        })
        .await?;
        anyhow::ensure!(
            pods::exit_code(&pod) == Some(0),
            "pod once Succeeded with exit code {:?}",
            pods::exit_code(&pod)
        );
        let node = self.node(pods::node_name(&pod).context("pod once has no nodeName")?)?;
        let ip = pods::pod_ip(&pod).context("pod once never reported its podIP")?;
        anyhow::ensure!(
            node.range.holds_host(ip),
            "pod once got {ip}, outside {}",
            node.range.cidr()
        );
        let sandbox = self.names.pod_netns(pods::uid(&pod)?);
        let reservation = cni::reservation_file(&node.ipam_dir, ip);
        wait::until_anyhow(
            POD_TIMEOUT,
            "the finished pod's sandbox and address to be released",
            async || Ok((!netns::exists(&sandbox) && !reservation.exists()).then_some(())),
        )
        .await
    }

    /// Deletes every pod at once. A running pod is only marked (the kubelet must finish it);
    /// when it leaves the API, its sandbox and its host-local reservation must already be gone.
    async fn delete_and_check_teardown(
        &self,
        running: &BTreeMap<String, Pod>,
    ) -> anyhow::Result<()> {
        let mut left: BTreeMap<String, Teardown> = BTreeMap::new();
        for (name, pod) in running {
            let teardown = self.teardown_of(pod)?;
            if let Some(sandbox) = &teardown.sandbox {
                anyhow::ensure!(
                    netns::exists(sandbox),
                    "pod {name}'s sandbox {sandbox} is missing before deletion"
                );
            }
            if let Some(file) = &teardown.reservation {
                anyhow::ensure!(
                    file.exists(),
                    "pod {name}'s address has no host-local reservation {}",
                    file.display()
                );
            }
            let answer = self
                .pods
                .delete(name, &DeleteParams::default())
                .await
                .with_context(|| format!("deleting pod {name}"))?;
            let marked = answer
                .left()
                .is_some_and(|p| p.metadata.deletion_timestamp.is_some());
            anyhow::ensure!(
                marked,
                "running pod {name} was removed at once instead of waiting for its kubelet"
            );
            left.insert(name.clone(), teardown);
        }
        self.pods
            .delete(RUN_ONCE, &DeleteParams::default())
            .await
            .context("deleting pod once")?;

        let deadline = tokio::time::Instant::now() + POD_TIMEOUT;
        loop {
            let mut gone = Vec::new();
            for (name, teardown) in &left {
                let pod = self
                    .pods
                    .get_opt(name)
                    .await
                    .with_context(|| format!("reading pod {name}"))?;
                if pod.is_none() {
                    teardown.check_done(name)?;
                    gone.push(name.clone());
                }
            }
            for name in gone {
                left.remove(&name);
            }
            if left.is_empty() {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "deleted pods still in the API after {POD_TIMEOUT:?}: {:?}",
                left.keys().collect::<Vec<_>>()
            );
            tokio::time::sleep(wait::INTERVAL).await;
        }

        wait::until_anyhow(POD_TIMEOUT, "pod once to leave the API", async || {
            Ok(self.pods.get_opt(RUN_ONCE).await?.is_none().then_some(()))
        })
        .await?;
        self.check_host_server_stopped().await
    }

    /// What must be gone once `pod` leaves the API.
    fn teardown_of(&self, pod: &Pod) -> anyhow::Result<Teardown> {
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        if host_network {
            return Ok(Teardown::default());
        }
        let node = self.node(pods::node_name(pod).context("pod without nodeName")?)?;
        let ip = pods::pod_ip(pod).context("pod without podIP")?;
        Ok(Teardown {
            sandbox: Some(self.names.pod_netns(pods::uid(pod)?)),
            reservation: Some(cni::reservation_file(&node.ipam_dir, ip)),
        })
    }

    /// The hostNetwork pod's server ran in the node's namespace; deleted, it must have stopped.
    async fn check_host_server_stopped(&self) -> anyhow::Result<()> {
        let node1 = self.names.netns(Place::Node(1));
        let target = format!("{}:{}", self.node("node1")?.ip, pods::HOST_TCP_PORT);
        let out = tokio::process::Command::from(netns::exec_command(&node1, &self.podtool))
            .args(["connect", "tcp", &target, "--timeout", "2s"])
            .output()
            .await
            .with_context(|| format!("running rovn-podtool in {node1}"))?;
        anyhow::ensure!(
            !out.status.success(),
            "the deleted hostNetwork pod still answers on {target}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        Ok(())
    }

    /// After everything is deleted, host-local holds no address on any node.
    fn check_no_reservations_left(&self) -> anyhow::Result<()> {
        for (name, node) in &self.nodes {
            let dir = node.ipam_dir.join(cni::NET_NAME);
            let held: Vec<String> = std::fs::read_dir(&dir)
                .with_context(|| format!("listing {}", dir.display()))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| f.parse::<Ipv4Addr>().is_ok())
                .collect();
            anyhow::ensure!(held.is_empty(), "host-local on {name} still holds {held:?}");
        }
        Ok(())
    }

    /// Runs `rovn-podtool connect` in `from`'s sandbox until the server answers (it may still be
    /// starting although its pod is Ready: the lab has no readiness probes).
    async fn connect(
        &self,
        from: &Pod,
        proto: &str,
        ip: Ipv4Addr,
        port: u16,
    ) -> anyhow::Result<String> {
        let sandbox = self.names.pod_netns(pods::uid(from)?);
        let target = format!("{ip}:{port}");
        let what = format!("{proto} {target} to answer from {sandbox}");
        wait::until_anyhow(POD_TIMEOUT, &what, async || {
            let out = tokio::process::Command::from(netns::exec_command(&sandbox, &self.podtool))
                .args([
                    "connect",
                    proto,
                    &target,
                    "--message",
                    MESSAGE,
                    "--timeout",
                    "1s",
                ])
                .output()
                .await
                .with_context(|| format!("running rovn-podtool in {sandbox}"))?;
            if out.status.success() {
                return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
            }
            anyhow::bail!("{}", String::from_utf8_lossy(&out.stderr).trim())
        })
        .await
    }

    /// The answer came from `server` and saw `client_ip` as the client's address.
    fn expect_greeting(&self, said: &str, server: &Pod, client_ip: Ipv4Addr) -> anyhow::Result<()> {
        let expected_host = server.metadata.name.as_deref().unwrap_or_default();
        let first = said.lines().next().unwrap_or_default();
        let (host, client) = pods::parse_greeting(first)
            .with_context(|| format!("not a rovn-podtool greeting: {said:?}"))?;
        anyhow::ensure!(
            host == expected_host,
            "answer from {host}, expected {expected_host}: {said:?}"
        );
        anyhow::ensure!(
            client == client_ip,
            "server {host} saw client {client}, expected the pod IP {client_ip} (NAT?)"
        );
        Ok(())
    }
}

/// The message every connection sends and expects echoed.
const MESSAGE: &str = "labkube";

fn get<'a>(pods: &'a BTreeMap<String, Pod>, name: &str) -> anyhow::Result<&'a Pod> {
    pods.get(name)
        .with_context(|| format!("pod {name} was not among the running pods"))
}
