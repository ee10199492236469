//! `rovn-bench pod-ready`: pod network-ready latency (CNI ADD, from exec to result) on a lab
//! running rovn without kubelets, beside the OVN floor measured in the same run.
//!
//! The benchmark plays the container runtime itself: pods are created bound to the nodes,
//! and once the controller has allocated them it makes each sandbox namespace and calls the
//! node's `rovn-cni` with the node's conflist, `per_node` calls in flight per node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use rovn_api::names::annotations;
use tokio::time::Instant;

use crate::lab::{
    DownOnDrop, Lab, LabName, LabNames, LabSpec, ProcessRef, bins, kube::SYSTEM_CNI_BIN_DIR,
    names::MAX_NODES,
};

use super::api_server;
use super::bounded::{all_ok, run_all};
use super::cni::{self, CniCall};
use super::error::BenchError;
use super::figures::Figures;
use super::floor::{self, FloorPort, NodeSwitch};
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
    /// CNI calls (and floor ports) in flight per node.
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
        if self.pods == 0 || self.per_node == 0 {
            return Err(BenchError::InvalidArgs(
                "--pods and --per-node must be at least 1".into(),
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
    load::create_pods(&client, NAMESPACE, pods, 16).await?;
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
    let add_times = all_ok(run_all(adds.clone(), bench.per_node, add_pod).await)?;
    let steps = add_step_means(names, &nodes)?;

    let floor_times = measure_floor(bench, names, &info.nb, &info.sb, &nodes, &allocated).await;

    let dels = cni_calls("DEL", names, &nodes, &pod_names, &allocated)?;
    let del_outcomes = run_all(dels, bench.per_node, del_pod).await;
    let del_failures: Vec<BenchError> = del_outcomes.into_iter().filter_map(Result::err).collect();
    let floor_times = floor_times?;
    if let Some(first) = del_failures.into_iter().next() {
        return Err(first);
    }

    let cni = Percentiles::of(&add_times)
        .ok_or_else(|| BenchError::protocol("CNI ADD", "no call was timed"))?;
    let ovn = Percentiles::of(&floor_times)
        .ok_or_else(|| BenchError::protocol("the OVN floor", "no port was timed"))?;
    let mut f = Figures::new();
    f.put("nodes", bench.nodes);
    f.put("pods", bench.pods);
    f.put("per_node_concurrency", bench.per_node);
    f.real("cni_add_p50_ms", cni.p50_ms);
    f.real("cni_add_p90_ms", cni.p90_ms);
    f.real("cni_add_p99_ms", cni.p99_ms);
    f.put("floor_ports", floor_times.len());
    f.real("floor_p50_ms", ovn.p50_ms);
    f.real("floor_p90_ms", ovn.p90_ms);
    f.real("floor_p99_ms", ovn.p99_ms);
    f.real("ratio_p99", cni.p99_ms / ovn.p99_ms.max(1e-9));
    for (step, mean_ms) in steps {
        f.real(&format!("add_{step}_mean_ms"), mean_ms);
    }
    Ok(f)
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

/// The floor: NB ports on the pods' switch, bound to the nodes round robin, then OVS ports
/// plugged with the same concurrency as the CNI calls.
async fn measure_floor(
    bench: &PodReadyBench,
    names: &LabNames,
    nb_remote: &str,
    sb_remote: &str,
    nodes: &[RuntimeNode],
    allocated: &BTreeMap<String, PodFacts>,
) -> Result<Vec<Duration>, BenchError> {
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

    let mut switches = Vec::new();
    for node in nodes {
        let remote = names.node_db_remote(node.index);
        switches.push(std::sync::Arc::new(
            NodeSwitch::connect(&remote, bench.timeout).await?,
        ));
    }
    let plugs: Vec<(usize, FloorPort)> = addresses
        .iter()
        .enumerate()
        .map(|(k, ip)| {
            let group = k % nodes.len().max(1);
            let node = &nodes[group].name;
            let port = floor::plan_ports(node, &[*ip], k).remove(0);
            (group, port)
        })
        .collect();
    let with_chassis: Vec<(FloorPort, String)> = plugs
        .iter()
        .map(|(g, p)| (p.clone(), switches[*g].chassis.clone()))
        .collect();
    let nb = floor::nb_client(nb_remote, bench.timeout).await?;
    floor::create_lsps(&nb, &switch, &with_chassis).await?;
    let lsps: BTreeSet<String> = plugs.iter().map(|(_, p)| p.lsp.clone()).collect();
    floor::wait_for_bindings(sb_remote, &lsps, bench.timeout).await?;

    let timeout = bench.timeout;
    let items: Vec<(usize, (std::sync::Arc<NodeSwitch>, FloorPort))> = plugs
        .into_iter()
        .map(|(g, p)| (g, (switches[g].clone(), p)))
        .collect();
    all_ok(
        run_all(
            items,
            bench.per_node,
            move |(switch, port): (std::sync::Arc<NodeSwitch>, FloorPort)| async move {
                switch.plug(&port, timeout).await
            },
        )
        .await,
    )
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
    fn lab_names_are_short_and_valid() {
        assert_eq!(lab_name(0).unwrap().as_str(), "bp0");
        assert_eq!(lab_name(4_194_304).unwrap().as_str(), "bp2hwcg");
    }
}
