//! Reaching a node's OVS: its `Open_vSwitch` database (tunnel ports, the pod's OpenFlow port)
//! and `ovs-vswitchd` (`ofproto/trace`), for `diagnose` and `trace --ovs`.
//!
//! Where the node's OVS run directory (`db.sock`, `ovs-vswitchd.pid` and its control socket) is
//! reachable from where the plugin runs (the lab: every node's directory is on the one
//! machine), `--ovs-rundir`, `$ROVN_OVS_RUNDIR` or the ConfigMap key `ovs-rundir` give it as a
//! template with `{node}` for the node's name, found in that order like the NB/SB remotes.
//! On a real cluster OVS runs in each node's OVS pod, found by label and `spec.nodeName`, and
//! `trace --ovs` runs `ovs-vsctl`/`ovs-appctl` there through `pods/exec` ([`Reach::Pod`]; tried
//! through the lab's exec, not yet on a real cluster). `diagnose` reads tunnel
//! ports through run directories only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rovn_ovsdb::TableMonitor;
use rovn_ovsdb::model::Model;
use rovn_ovsdb_schemas::vswitch::{self, Bridge, Interface, OpenVSwitch, Port};

use crate::kube_io::{self, KubeIoError};
use crate::ovn_io::{Db, OvnIoError, typed};
use crate::remotes::{Resolved, Source, pick_setting};
use crate::tools::{self, Captured, ToolError};
use crate::tunnels::{NodeTunnels, TunnelPort, is_tunnel_type};

/// The flag naming the node OVS run directory template.
pub const RUNDIR_FLAG: &str = "--ovs-rundir";
/// The environment variable naming it.
pub const RUNDIR_ENV: &str = "ROVN_OVS_RUNDIR";
/// Its key in the ConfigMap `kube-system/rovn-config` (the lab sets it; clusters do not).
pub const RUNDIR_KEY: &str = "ovs-rundir";
/// What the template's node name placeholder looks like.
pub const NODE_PLACEHOLDER: &str = "{node}";
/// The integration bridge OVN programs.
pub const INTEGRATION_BRIDGE: &str = "br-int";

/// Reaching a node's OVS failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeOvsError {
    /// No run directory is configured and no OVS pod runs on the node.
    #[error(
        "cannot reach the OVS of node {node}: no {RUNDIR_FLAG}, ${RUNDIR_ENV} or ConfigMap key {RUNDIR_KEY} names its run directory, and no running pod in {namespace} labelled {selector} is on the node (--ovs-pod-namespace/--ovs-pod-selector say where OVS runs); or run on the node: {hint}"
    )]
    NoPod {
        /// The node.
        node: String,
        /// Where OVS pods were looked for.
        namespace: String,
        /// Their label selector.
        selector: String,
        /// The command to run on the node instead.
        hint: String,
    },
    /// The run directory has no running ovs-vswitchd.
    #[error("node {node}: no ovs-vswitchd pidfile at {path}: {source}")]
    NoVswitchd {
        /// The node.
        node: String,
        /// The pidfile looked for.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// Its database could not be read.
    #[error("node {node}'s Open_vSwitch database: {source}")]
    Database {
        /// The node.
        node: String,
        /// The error.
        #[source]
        source: OvnIoError,
    },
    /// A command in the node's OVS pod failed.
    #[error("{what} in pod {pod} on node {node} failed: {stderr}")]
    Failed {
        /// The node.
        node: String,
        /// The pod, `namespace/name`.
        pod: String,
        /// The command.
        what: String,
        /// What it said.
        stderr: String,
    },
    /// A tool could not run.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// The exec could not be made.
    #[error(transparent)]
    Kube(#[from] KubeIoError),
}

/// A node's OVS pod, to exec OVS's tools in.
#[derive(Clone)]
pub struct OvsPod {
    /// The API client.
    pub client: kube::Client,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// Its container holding OVS's tools, when it has several.
    pub container: Option<String>,
}

impl OvsPod {
    /// Runs `argv` in the pod; an error unless it exits 0.
    async fn run(&self, node: &str, argv: Vec<String>) -> Result<Captured, NodeOvsError> {
        let out = kube_io::exec(
            &self.client,
            &self.namespace,
            &self.name,
            self.container.as_deref(),
            &argv,
        )
        .await?;
        if !out.success {
            return Err(NodeOvsError::Failed {
                node: node.to_string(),
                pod: format!("{}/{}", self.namespace, self.name),
                what: argv.join(" "),
                stderr: out.stderr.trim().to_string(),
            });
        }
        Ok(out)
    }
}

/// How the plugin reaches one node's OVS.
#[derive(Clone)]
pub enum Reach {
    /// Its run directory, from where the plugin runs (the lab).
    RunDir(PathBuf),
    /// An exec into the node's OVS pod (a cluster).
    Pod(OvsPod),
}

impl Reach {
    /// The OpenFlow port of the interface plugged for logical port `iface_id` on `br-int`.
    pub async fn ofport_of(
        &self,
        node: &str,
        iface_id: &str,
        timeout: Duration,
    ) -> Result<Option<i64>, NodeOvsError> {
        match self {
            Reach::RunDir(dir) => Ok(read(node, dir, timeout).await?.ofport_of(iface_id)),
            Reach::Pod(pod) => {
                let out = pod.run(node, ofport_query(iface_id)).await?;
                Ok(parse_ofport(&out.stdout))
            }
        }
    }

    /// `ofproto/trace` of `flow` on `br-int`.
    pub async fn ofproto_trace(&self, node: &str, flow: &str) -> Result<Captured, NodeOvsError> {
        match self {
            Reach::RunDir(dir) => ofproto_trace(node, dir, flow).await,
            Reach::Pod(pod) => {
                let mut argv = vec!["ovs-appctl".to_string()];
                argv.extend(ofproto_trace_args(flow));
                pod.run(node, argv).await
            }
        }
    }
}

/// `ovs-vsctl` asking for the OpenFlow port of the interface of `iface_id`. Pure.
pub fn ofport_query(iface_id: &str) -> Vec<String> {
    [
        "ovs-vsctl",
        "--timeout=10",
        "--bare",
        "--columns=ofport",
        "find",
        "Interface",
    ]
    .into_iter()
    .map(str::to_string)
    .chain([format!("external_ids:iface-id={iface_id}")])
    .collect()
}

/// The first usable OpenFlow port in [`ofport_query`]'s output (`-1` is a failed interface).
/// Pure.
pub fn parse_ofport(bare: &str) -> Option<i64> {
    bare.split_whitespace()
        .filter_map(|w| w.parse::<i64>().ok())
        .find(|p| *p > 0)
}

/// The run directory template from flag, environment and ConfigMap value. Pure.
pub fn pick(flag: Option<&str>, env: Option<&str>, configmap: Option<&str>) -> Option<Resolved> {
    pick_setting([
        (flag, Source::Flag(RUNDIR_FLAG)),
        (env, Source::Env(RUNDIR_ENV)),
        (configmap, Source::ConfigMap(RUNDIR_KEY)),
    ])
}

/// The run directory of `node` under `template`. Pure.
pub fn rundir(template: &str, node: &str) -> PathBuf {
    PathBuf::from(template.replace(NODE_PLACEHOLDER, node))
}

/// What the plugin reads of a node's `Open_vSwitch` database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OvsSnapshot {
    /// `external_ids:system-id`: the node's chassis name.
    pub system_id: Option<String>,
    /// Every interface of `br-int`.
    pub br_int: Vec<Interface>,
}

impl OvsSnapshot {
    /// The tunnel ports of `br-int`, for [`crate::tunnels`]. Pure.
    pub fn tunnels(&self, node: &str) -> NodeTunnels {
        NodeTunnels {
            node: node.to_string(),
            chassis: self.system_id.clone(),
            ports: self
                .br_int
                .iter()
                .filter(|i| is_tunnel_type(&i.type_))
                .map(|i| TunnelPort {
                    name: i.name.clone(),
                    type_: i.type_.clone(),
                    remote_ip: i.options.get("remote_ip").cloned(),
                    error: i.error.clone(),
                })
                .collect(),
        }
    }

    /// The OpenFlow port of the interface plugged for logical port `iface_id`. Pure.
    pub fn ofport_of(&self, iface_id: &str) -> Option<i64> {
        self.br_int
            .iter()
            .find(|i| i.external_ids.get("iface-id").map(String::as_str) == Some(iface_id))
            .and_then(|i| i.ofport)
            .filter(|p| *p > 0)
    }
}

/// Reads `br-int`'s interfaces and the system-id from the database in `dir`.
pub async fn read(node: &str, dir: &Path, timeout: Duration) -> Result<OvsSnapshot, NodeOvsError> {
    let db_err = |source| NodeOvsError::Database {
        node: node.to_string(),
        source,
    };
    let remote = format!("unix:{}", dir.join("db.sock").display());
    let tables = vec![
        TableMonitor::all(OpenVSwitch::TABLE).with_columns([OpenVSwitch::EXTERNAL_IDS]),
        TableMonitor::all(Bridge::TABLE).with_columns([Bridge::NAME, Bridge::PORTS]),
        TableMonitor::all(Port::TABLE).with_columns([Port::NAME, Port::INTERFACES]),
        TableMonitor::all(Interface::TABLE).with_columns([
            Interface::NAME,
            Interface::TYPE,
            Interface::OPTIONS,
            Interface::ERROR,
            Interface::EXTERNAL_IDS,
            Interface::OFPORT,
        ]),
    ];
    let db = Db::connect(vswitch::DATABASE, &remote, None, tables, timeout)
        .await
        .map_err(db_err)?;
    let contents = db.contents();
    let database = vswitch::DATABASE;
    let system_id = typed::<OpenVSwitch>(&contents, database)
        .map_err(db_err)?
        .into_iter()
        .find_map(|o| o.external_ids.get("system-id").cloned());
    let ports = typed::<Port>(&contents, database).map_err(db_err)?;
    let interfaces = typed::<Interface>(&contents, database).map_err(db_err)?;
    let br_int = typed::<Bridge>(&contents, database)
        .map_err(db_err)?
        .into_iter()
        .filter(|b| b.name == INTEGRATION_BRIDGE)
        .flat_map(|b| b.ports)
        .filter_map(|u| ports.iter().find(|p| p.uuid == u))
        .flat_map(|p| p.interfaces.iter().copied())
        .filter_map(|u| interfaces.iter().find(|i| i.uuid == u).cloned())
        .collect();
    Ok(OvsSnapshot { system_id, br_int })
}

/// The `ovs-appctl ofproto/trace` arguments after the target: `br-int`, the flow, and one
/// `--ct-next trk,new` per conntrack recirculation (as `ovn-trace --ct=new`). Pure.
pub fn ofproto_trace_args(flow: &str) -> Vec<String> {
    let mut args = vec![
        "ofproto/trace".to_string(),
        INTEGRATION_BRIDGE.to_string(),
        flow.to_string(),
    ];
    for _ in 0..3 {
        args.push("--ct-next".into());
        args.push("trk,new".into());
    }
    args
}

/// Runs `ovs-appctl ofproto/trace` against the ovs-vswitchd of `dir` (its control socket,
/// found through its pidfile, so no environment is needed).
pub async fn ofproto_trace(node: &str, dir: &Path, flow: &str) -> Result<Captured, NodeOvsError> {
    let pidfile = dir.join("ovs-vswitchd.pid");
    let pid = std::fs::read_to_string(&pidfile).map_err(|source| NodeOvsError::NoVswitchd {
        node: node.to_string(),
        path: pidfile.clone(),
        source,
    })?;
    let ctl = dir.join(format!("ovs-vswitchd.{}.ctl", pid.trim()));
    let mut args = vec![format!("--target={}", ctl.display())];
    args.extend(ofproto_trace_args(flow));
    Ok(tools::capture("ovs-appctl", &args).await?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_template_names_each_node_and_flag_wins() {
        assert_eq!(
            rundir("/run/rovn-lab/x/{node}", "node2"),
            PathBuf::from("/run/rovn-lab/x/node2")
        );
        let r = pick(None, Some("/e/{node}"), Some("/c/{node}")).unwrap();
        assert_eq!(r.source, Source::Env(RUNDIR_ENV));
        assert_eq!(pick(None, None, None), None);
        assert_eq!(
            pick(Some("/f"), None, None).unwrap().source,
            Source::Flag(RUNDIR_FLAG)
        );
    }

    #[test]
    fn tunnels_and_pod_ports_are_read_from_br_int() {
        let iface =
            |name: &str, type_: &str, options: &[(&str, &str)], ids: &[(&str, &str)]| Interface {
                name: name.into(),
                type_: type_.into(),
                options: options
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
                external_ids: ids
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ofport: Some(5),
                ..Default::default()
            };
        let snap = OvsSnapshot {
            system_id: Some("node1".into()),
            br_int: vec![
                iface(
                    "ovn-node2-0",
                    "geneve",
                    &[("remote_ip", "172.30.0.12")],
                    &[],
                ),
                iface("abc123", "", &[], &[("iface-id", "client.kr")]),
                iface("br-int", "internal", &[], &[]),
            ],
        };
        let t = snap.tunnels("node1");
        assert_eq!(t.chassis.as_deref(), Some("node1"));
        assert_eq!(t.ports.len(), 1);
        assert_eq!(t.ports[0].remote_ip.as_deref(), Some("172.30.0.12"));
        assert_eq!(snap.ofport_of("client.kr"), Some(5));
        assert_eq!(snap.ofport_of("nobody.kr"), None);
        assert_eq!(parse_ofport("5\n"), Some(5));
        assert_eq!(parse_ofport("-1\n7\n"), Some(7));
        assert_eq!(parse_ofport("[]\n"), None);
        assert_eq!(
            ofport_query("client.kr").last().map(String::as_str),
            Some("external_ids:iface-id=client.kr")
        );
        let args = ofproto_trace_args("in_port=5,tcp");
        assert_eq!(&args[..3], ["ofproto/trace", "br-int", "in_port=5,tcp"]);
        assert_eq!(args.iter().filter(|a| *a == "trk,new").count(), 3);
    }
}
