//! `rovn-bench pod-ready`: pod network-ready latency (CNI ADD, from exec to result) on a lab
//! running rovn without kubelets, beside the OVN floor measured in the same run under the same
//! conditions.
//!
//! The benchmark plays the container runtime itself: pods are created bound to the nodes,
//! and once the controller has allocated them it makes each sandbox namespace and calls the
//! node's `rovn-cni` with the node's conflist. Floor ports ([`super::floor`]) are created in
//! NB like pod ports, and timing starts only once every pod's and floor port's `Port_Binding`
//! is in SB, unclaimed. Then CNI ADDs and floor plugs alternate in one queue per node,
//! `per_node` of them in flight per node, so both are timed under the same load.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rovn_api::names::annotations;
use tokio::time::Instant;

use crate::lab::{
    DownOnDrop, Lab, LabName, LabNames, LabSpec, ProcessRef, bins,
    kube::SYSTEM_CNI_BIN_DIR,
    names::{MAX_NODES, NETNS_DIR},
};

use super::api_server;
use super::bounded::{all_ok, run_all};
use super::cni::{self, CniCall};
use super::error::BenchError;
use super::figures::Figures;
use super::floor::{self, FloorNode, FloorPort};
use super::load;
use super::objects;
use super::pod_watch::{PodFacts, wait_for_annotation};
use super::stats::Percentiles;

/// The namespace of the benchmark pods.
pub const NAMESPACE: &str = "default";
/// Bound on one CNI call; rovn-cni's own ADD timeout is 120 s.
const CNI_TIMEOUT: Duration = Duration::from_secs(130);

/// What to run.
#[derive(Debug, Clone)]
pub struct PodReadyBench {
    /// Lab nodes.
    pub nodes: u8,
    /// Pods, bound round robin to the nodes.
    pub pods: usize,
    /// CNI ADDs and floor plugs (together) in flight per node.
    pub per_node: usize,
    /// Floor ports; `None` for as many as pods.
    pub floor_ports: Option<usize>,
    /// Bound on bringing the lab up and on each wait.
    pub timeout: Duration,
    /// Where the project's binaries are; `None` for next to this executable.
    pub bin_dir: Option<PathBuf>,
}

impl PodReadyBench {
    fn validate(&self) -> Result<(), BenchError> {
        if self.nodes == 0 || self.nodes > MAX_NODES {
            return Err(BenchError::InvalidArgs(format!(
                "--nodes must be 1-{MAX_NODES}"
            )));
        }
        if self.pods == 0 || self.per_node == 0 || self.floor_ports == Some(0) {
            return Err(BenchError::InvalidArgs(
                "--pods, --per-node and --floor-ports must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// One lab node as the benchmark's runtime sees it.
#[derive(Debug, Clone)]
struct RuntimeNode {
    index: u8,
    name: String,
    netns: String,
    plugin: PathBuf,
    cni_path: String,
    config: String,
}

/// Runs the benchmark and returns its figures; the lab is torn down on return, on error and
/// when the returned future is dropped (Ctrl-C).
pub async fn run(bench: &PodReadyBench) -> Result<Figures, BenchError> {
    bench.validate()?;
    let name = lab_name(std::process::id())?;
    let names = LabNames::new(name.clone());
    let teardown = DownOnDrop::new(name.clone());
    let bin_dir = match &bench.bin_dir {
        Some(dir) => dir.clone(),
        None => bins::default_bin_dir()?,
    };
    let mut spec = LabSpec::with_rovn(name, bench.nodes);
    spec.kubelets = false;
    spec.bin_dir = Some(bin_dir.clone());
    spec.timeout = bench.timeout;
    spec.owner = ProcessRef::of(std::process::id() as i32);
    let lab = tokio::task::spawn_blocking(move || Lab::up(&spec))
        .await
        .map_err(|e| BenchError::protocol("bring the lab up", e.to_string()))??;
    let figures = measure(bench, &lab, &names, &bin_dir).await;
    drop(lab);
    let down = tokio::task::spawn_blocking(move || teardown.down())
        .await
        .map_err(|e| BenchError::protocol("tear the lab down", e.to_string()))?;
    let figures = figures?;
    down?;
    Ok(figures)
}

async fn measure(
    bench: &PodReadyBench,
    lab: &Lab,
    names: &LabNames,
    bin_dir: &std::path::Path,
) -> Result<Figures, BenchError> {
    let info = lab.info().clone();
    let kubeconfig = info
        .kubeconfig
        .clone()
        .ok_or_else(|| BenchError::protocol("the lab", "it runs no API server"))?;
    let client = api_server::client(&kubeconfig).await?;
    let mut nodes = Vec::new();
    for (i, node) in info.nodes.iter().enumerate() {
        let index =
            u8::try_from(i + 1).map_err(|_| BenchError::InvalidArgs("too many nodes".into()))?;
        nodes.push(
            runtime_node(
                names,
                index,
                &node.name,
                &node.netns,
                bin_dir,
                bench.timeout,
            )
            .await?,
        );
    }
    let node_names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();

    let pod_names: Vec<String> = (0..bench.pods).map(objects::pod_name).collect();
    let pods = pod_names
        .iter()
        .enumerate()
        .map(|(i, p)| {
            objects::bound_pod(
                p,
                NAMESPACE,
                objects::node_of_pod(i, &node_names).unwrap_or_default(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    load::create_all(&kube::Api::namespaced(client.clone(), NAMESPACE), pods, 16).await?;
    let (_, allocated) = wait_for_annotation(
        &client,
        NAMESPACE,
        annotations::ALLOCATED,
        "true",
        bench.pods,
        bench.timeout,
    )
    .await?;

    let adds = cni_calls("ADD", names, &nodes, &pod_names, &allocated)?;
    let floor = plan_floor(bench, names, &info.nb, &nodes, &allocated).await?;
    // Both kinds start from the same state: the logical port in NB, its Port_Binding in SB,
    // claimed by no chassis.
    let ports: BTreeSet<String> = pod_names
        .iter()
        .map(|pod| rovn_api::names::pod_port(NAMESPACE, pod))
        .chain(floor.iter().map(|(_, plug)| plug.port.lsp.clone()))
        .collect();
    floor::wait_for_unclaimed_bindings(&info.sb, &ports, bench.timeout).await?;

    let plugs = interleave(
        adds.iter()
            .map(|(group, call)| (*group, Plug::Add(call.clone())))
            .collect(),
        floor
            .into_iter()
            .map(|(group, plug)| (group, Plug::Floor(plug)))
            .collect(),
    );
    let timeout = bench.timeout;
    let timed = all_ok(run_all(plugs, bench.per_node, move |plug: Plug| plug.run(timeout)).await)?;
    let steps = add_step_means(names, &nodes)?;

    let dels = cni_calls("DEL", names, &nodes, &pod_names, &allocated)?;
    all_ok(run_all(dels, bench.per_node, del_pod).await)?;

    let times_of = |kind: Kind| -> Vec<Duration> {
        timed
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, took)| *took)
            .collect()
    };
    let (add_times, floor_times) = (times_of(Kind::Add), times_of(Kind::Floor));
    let cni = Percentiles::of(&add_times)
        .ok_or_else(|| BenchError::protocol("CNI ADD", "no call was timed"))?;
    let ovn = Percentiles::of(&floor_times)
        .ok_or_else(|| BenchError::protocol("the OVN floor", "no port was timed"))?;
    let mut f = Figures::new();
    f.put("nodes", bench.nodes);
    f.put("pods", bench.pods);
    f.put("per_node_concurrency", bench.per_node);
    f.put("floor_ports", floor_times.len());
    for (key, add, floor) in [
        ("p50", cni.p50_ms, ovn.p50_ms),
        ("p90", cni.p90_ms, ovn.p90_ms),
        ("p99", cni.p99_ms, ovn.p99_ms),
    ] {
        f.real(&format!("cni_add_{key}_ms"), add);
        f.real(&format!("floor_{key}_ms"), floor);
        f.real(&format!("ratio_{key}"), add / floor.max(1e-9));
    }
    for (step, mean_ms) in steps {
        f.real(&format!("add_{step}_mean_ms"), mean_ms);
    }
    Ok(f)
}

/// What is timed: a pod's CNI ADD, or a floor port's plug.
enum Plug {
    Add(CniCall),
    Floor(FloorPlug),
}

/// A floor port and the node it is plugged into.
struct FloorPlug {
    node: Arc<FloorNode>,
    port: FloorPort,
}

/// Which kind a timing is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Floor,
}

impl Plug {
    /// Makes the sandbox (untimed), then times the plug.
    async fn run(self, timeout: Duration) -> Result<(Kind, Duration), BenchError> {
        match self {
            Plug::Add(call) => add_pod(call).await.map(|took| (Kind::Add, took)),
            Plug::Floor(FloorPlug { node, port }) => {
                ip_netns("add", &port.sandbox).await?;
                let path = Path::new(NETNS_DIR).join(&port.sandbox);
                let sandbox =
                    std::fs::File::open(&path).map_err(|e| BenchError::io("open", &path, e))?;
                let took = node.plug(&port, &sandbox, timeout).await?;
                Ok((Kind::Floor, took))
            }
        }
    }
}

/// `a` and `b` alternating, one of each in turn, then what is left of the longer. Pure.
fn interleave<T>(a: Vec<T>, b: Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter(), b.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// The agents' mean time per ADD step (annotation, veth, ovs_port, ovn_installed) and in the
/// whole ADD handler, from their `/metrics` histograms summed over the nodes: where an ADD's
/// time beyond the floor goes (what the handler does not cover is rovn-cni and its socket).
fn add_step_means(
    names: &LabNames,
    nodes: &[RuntimeNode],
) -> Result<BTreeMap<String, f64>, BenchError> {
    let mut totals: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for node in nodes {
        let text = crate::lab::probe::http_get_in_netns(
            &node.netns,
            names.agent_listen(node.index),
            "/metrics",
        )
        .map_err(|e| {
            BenchError::protocol(format!("rovn-node metrics on {}", node.name), e.to_string())
        })?;
        let steps = parse_histograms(&text, "rovn_node_cni_add_step_duration_seconds", "step=\"");
        let handler = parse_histograms(
            &text,
            "rovn_node_cni_request_duration_seconds",
            "command=\"ADD\",result=\"",
        )
        .into_iter()
        .filter(|(result, _, _)| result == "ok")
        .map(|(_, sum, count)| ("handler".to_string(), sum, count));
        for (step, sum, count) in steps.into_iter().chain(handler) {
            let total = totals.entry(step).or_default();
            total.0 += sum;
            total.1 += count;
        }
    }
    Ok(totals
        .into_iter()
        .filter(|(_, (_, count))| *count > 0.0)
        .map(|(step, (sum, count))| (step, sum / count * 1000.0))
        .collect())
}

/// `(label value, sum seconds, count)` of every series of histogram `metric` whose labels start
/// with `label` (e.g. `step="`), in a Prometheus text exposition. Pure.
fn parse_histograms(text: &str, metric: &str, label: &str) -> Vec<(String, f64, f64)> {
    let series = |suffix: &str| -> BTreeMap<String, f64> {
        let prefix = format!("{metric}_{suffix}{{{label}");
        text.lines()
            .filter_map(|line| {
                let rest = line.strip_prefix(&prefix)?;
                let (value_of_label, value) = rest.split_once("\"} ")?;
                Some((value_of_label.to_string(), value.trim().parse().ok()?))
            })
            .collect()
    };
    let counts = series("count");
    series("sum")
        .into_iter()
        .filter_map(|(key, sum)| Some((key.clone(), sum, *counts.get(&key)?)))
        .collect()
}

/// A lab name unique to this process: `bp` and the pid in base 36.
fn lab_name(pid: u32) -> Result<LabName, BenchError> {
    let mut rest = pid;
    let mut digits = Vec::new();
    loop {
        digits.push(std::char::from_digit(rest % 36, 36).unwrap_or('0'));
        rest /= 36;
        if rest == 0 {
            break;
        }
    }
    let name: String = std::iter::once("bp".to_string())
        .chain(std::iter::once(digits.iter().rev().collect()))
        .collect();
    Ok(name.parse()?)
}

/// What a runtime on node `index` needs: its namespace, the plugin it would exec, CNI_PATH and
/// the plugin config from the conflist rovn-node wrote (waited for).
async fn runtime_node(
    names: &LabNames,
    index: u8,
    name: &str,
    netns: &str,
    bin_dir: &std::path::Path,
    timeout: Duration,
) -> Result<RuntimeNode, BenchError> {
    let conflist = names.cni_conflist(index);
    let deadline = Instant::now() + timeout;
    while !conflist.is_file() {
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout {
                what: format!("rovn-node on {name} to write {}", conflist.display()),
                detail: format!("see {}", names.agent_log(index).display()),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let config = cni::read_plugin_config(&conflist)?;
    let dirs = vec![
        names.cni_bin_dir(index),
        bin_dir.to_path_buf(),
        PathBuf::from(SYSTEM_CNI_BIN_DIR),
    ];
    let plugin = cni::find_plugin(&dirs, "rovn-cni").ok_or_else(|| {
        BenchError::protocol(
            format!("the CNI path of {name}"),
            format!("no rovn-cni in {}", cni::cni_path(&dirs)),
        )
    })?;
    Ok(RuntimeNode {
        index,
        name: name.to_string(),
        netns: netns.to_string(),
        plugin,
        cni_path: cni::cni_path(&dirs),
        config,
    })
}

/// One CNI call per pod, grouped by node (group = node position).
fn cni_calls(
    command: &'static str,
    names: &LabNames,
    nodes: &[RuntimeNode],
    pod_names: &[String],
    allocated: &BTreeMap<String, PodFacts>,
) -> Result<Vec<(usize, CniCall)>, BenchError> {
    pod_names
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let group = i % nodes.len().max(1);
            let node = nodes
                .get(group)
                .ok_or_else(|| BenchError::InvalidArgs("no nodes".into()))?;
            let facts = allocated.get(pod).ok_or_else(|| {
                BenchError::protocol(format!("pod {NAMESPACE}/{pod}"), "not allocated")
            })?;
            Ok((
                group,
                CniCall {
                    command,
                    node_netns: node.netns.clone(),
                    plugin: node.plugin.clone(),
                    cni_path: node.cni_path.clone(),
                    container_id: cni::container_id(&facts.uid),
                    sandbox: names.pod_netns(&facts.uid),
                    pod_namespace: NAMESPACE.to_string(),
                    pod_name: pod.clone(),
                    pod_uid: facts.uid.clone(),
                    config: node.config.clone(),
                },
            ))
        })
        .collect()
}

/// Makes the sandbox (untimed), then times ADD and checks its result has an address.
async fn add_pod(call: CniCall) -> Result<Duration, BenchError> {
    ip_netns("add", &call.sandbox).await?;
    let (stdout, took) = cni::invoke(&call, CNI_TIMEOUT).await?;
    cni::result_address(&stdout).map_err(|detail| BenchError::Cni {
        command: call.command,
        pod: call.pod(),
        detail,
    })?;
    Ok(took)
}

/// DEL, then removes the sandbox.
async fn del_pod(call: CniCall) -> Result<Duration, BenchError> {
    let (_, took) = cni::invoke(&call, CNI_TIMEOUT).await?;
    ip_netns("delete", &call.sandbox).await?;
    Ok(took)
}

async fn ip_netns(action: &str, ns: &str) -> Result<(), BenchError> {
    let output = tokio::process::Command::new("ip")
        .args(["netns", action, ns])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| BenchError::protocol(format!("ip netns {action} {ns}"), e.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(BenchError::protocol(
            format!("ip netns {action} {ns}"),
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ))
    }
}

/// The floor ports, as many as asked (default: one per pod), bound to the nodes round robin
/// like the pods, with their NB ports created (addresses from the top of the pods' subnet).
async fn plan_floor(
    bench: &PodReadyBench,
    names: &LabNames,
    nb_remote: &str,
    nodes: &[RuntimeNode],
    allocated: &BTreeMap<String, PodFacts>,
) -> Result<Vec<(usize, FloorPlug)>, BenchError> {
    let count = bench.floor_ports.unwrap_or(bench.pods);
    let sample = allocated
        .values()
        .next()
        .ok_or_else(|| BenchError::protocol("the OVN floor", "no allocated pod to copy"))?;
    let annotation =
        |key: &str| {
            sample.annotations.get(key).cloned().ok_or_else(|| {
                BenchError::protocol("an allocated pod", format!("no {key} annotation"))
            })
        };
    let switch = annotation(annotations::LOGICAL_SWITCH)?;
    let cidr = annotation(annotations::CIDR)?;
    let addresses = floor::top_addresses(&cidr, count)
        .map_err(|detail| BenchError::protocol("the floor addresses", detail))?;

    let mut floor_nodes = Vec::new();
    for node in nodes {
        let remote = names.node_db_remote(node.index);
        floor_nodes.push(Arc::new(
            FloorNode::connect(&remote, &node.netns, bench.timeout).await?,
        ));
    }
    let prefix = names.netns_prefix();
    let plugs = addresses
        .iter()
        .enumerate()
        .map(|(k, ip)| {
            let group = k % nodes.len().max(1);
            let (node, floor_node) = nodes
                .get(group)
                .zip(floor_nodes.get(group))
                .ok_or_else(|| BenchError::InvalidArgs("no nodes".into()))?;
            let plug = FloorPlug {
                node: floor_node.clone(),
                port: floor::plan_port(&node.name, *ip, k, &prefix),
            };
            Ok((group, plug))
        })
        .collect::<Result<Vec<_>, BenchError>>()?;
    let with_chassis: Vec<(FloorPort, String)> = plugs
        .iter()
        .map(|(_, plug)| (plug.port.clone(), plug.node.chassis.clone()))
        .collect();
    let nb = floor::nb_client(nb_remote, bench.timeout).await?;
    floor::create_lsps(&nb, &switch, &with_chassis).await?;
    Ok(plugs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_histograms_are_read_from_the_exposition() {
        let text = "# HELP x\n\
            rovn_node_cni_add_step_duration_seconds_sum{step=\"veth\"} 0.5\n\
            rovn_node_cni_add_step_duration_seconds_count{step=\"veth\"} 10\n\
            rovn_node_cni_add_step_duration_seconds_bucket{step=\"veth\",le=\"0.1\"} 10\n\
            rovn_node_cni_add_step_duration_seconds_sum{step=\"annotation\"} 0.1\n";
        assert_eq!(
            parse_histograms(text, "rovn_node_cni_add_step_duration_seconds", "step=\""),
            vec![("veth".to_string(), 0.5, 10.0)]
        );
    }

    #[test]
    fn adds_and_floor_plugs_alternate() {
        assert_eq!(interleave(vec![1, 3, 5, 7], vec![2, 4]), [1, 2, 3, 4, 5, 7]);
        assert_eq!(interleave(vec![1], vec![2, 4, 6]), [1, 2, 4, 6]);
        assert_eq!(interleave(Vec::<u8>::new(), vec![]), Vec::<u8>::new());
    }

    #[test]
    fn lab_names_are_short_and_valid() {
        assert_eq!(lab_name(0).unwrap().as_str(), "bp0");
        assert_eq!(lab_name(4_194_304).unwrap().as_str(), "bp2hwcg");
    }
}
