//! rovn itself in a lab: `rovn-controller` in the central namespace and one `rovn-node` per
//! node, started as `deploy/`'s manifests run them (`manifests.rs`: their command and
//! environment, with the lab's paths and addresses substituted), waited for through their own
//! health endpoints, and restartable one at a time (for the restart scenarios).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Container;
use rovn_api::names;

use super::bins;
use super::daemon::{self, Daemon, DaemonSpec};
use super::error::LabError;
use super::manifests::{self, Launch, Rendered, Substitutions};
use super::names::{CONTROLLER_POD, LB_CIDR, LabNames, Place};
use super::node::Encap;
use super::poll;
use super::probe::http_get_in_netns;
use super::tls;

/// `/readyz`'s answer once the controller leads and has reconciled NB.
pub const READY_LEADING: &str = "leading";

/// How often readiness endpoints are asked.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long a daemon gets to exit on SIGTERM before SIGKILL when it is restarted.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// The pidfile name (per place) of the controller and of the agents.
pub const CONTROLLER_DAEMON: &str = "rovn-controller";
/// The pidfile name (per node) of the node agent.
pub const AGENT_DAEMON: &str = "rovn-node";

/// What the lab runs of rovn: the binaries, found before anything starts so a missing one
/// fails `up` at once, and the containers of `deploy/`'s rendered manifests they run as.
#[derive(Debug, Clone, PartialEq)]
pub struct RovnInstall {
    /// `rovn-controller`.
    pub controller: PathBuf,
    /// `rovn-node`; it copies `rovn-cni` from its own directory into the node's CNI bin dir.
    pub node: PathBuf,
    /// The Deployment `rovn-controller`'s container.
    pub controller_container: Container,
    /// The DaemonSet `rovn-node`'s container.
    pub node_container: Container,
    /// The ConfigMap `rovn-config` the containers read.
    pub config: BTreeMap<String, String>,
}

impl RovnInstall {
    /// Finds `rovn-controller`, `rovn-node` and `rovn-cni` in `dir` and reads the manifests
    /// `kubectl kustomize` renders from `deploy/base`.
    pub fn find(dir: &Path) -> Result<RovnInstall, LabError> {
        bins::find(dir, "rovn-cni")?;
        let rendered = manifests::render(&manifests::base_dir())?;
        RovnInstall::from_rendered(
            bins::find(dir, "rovn-controller")?,
            bins::find(dir, "rovn-node")?,
            &rendered,
        )
    }

    /// The install with binaries `controller` and `node` and the containers of `rendered`.
    pub fn from_rendered(
        controller: PathBuf,
        node: PathBuf,
        rendered: &Rendered,
    ) -> Result<RovnInstall, LabError> {
        Ok(RovnInstall {
            controller,
            node,
            controller_container: rendered.container(
                "Deployment",
                CONTROLLER_DAEMON,
                CONTROLLER_DAEMON,
            )?,
            node_container: rendered.container("DaemonSet", AGENT_DAEMON, AGENT_DAEMON)?,
            config: rendered.config_map(names::CONFIG_MAP)?,
        })
    }
}

/// The ConfigMap key of the LoadBalancer pool.
const LB_CIDR_KEY: &str = "lb-cidr";

/// The controller's lab values: its NB remote, pool, listening address and Pod name.
fn controller_substitutions(names: &LabNames) -> Substitutions {
    Substitutions {
        config: owned([
            (names::CONFIG_NB_KEY, tls::controller_nb_remote(names)),
            (LB_CIDR_KEY, LB_CIDR.to_string()),
        ]),
        env: owned(
            log_level()
                .into_iter()
                .chain([("ROVN_LISTEN", names.controller_listen().to_string())]),
        ),
        fields: owned([("metadata.name", CONTROLLER_POD.to_string())]),
    }
}

/// A node agent's lab values: its node, SB remote, switch, CNI socket, listening address and
/// pool, and the lab's tunnel and (no kernel module here) userspace datapath.
fn agent_substitutions(names: &LabNames, node: u8, encap: Encap) -> Substitutions {
    Substitutions {
        config: owned([
            (names::CONFIG_SB_KEY, tls::sb_remote(names)),
            (LB_CIDR_KEY, LB_CIDR.to_string()),
        ]),
        env: owned(log_level().into_iter().chain([
            ("ROVN_OVS_DB", names.node_db_remote(node)),
            ("ROVN_ENCAP_TYPE", encap.to_string()),
            ("ROVN_DATAPATH_TYPE", "netdev".to_string()),
            (
                "ROVN_CNI_SOCKET",
                names.cni_socket(node).display().to_string(),
            ),
            ("ROVN_LISTEN", names.agent_listen(node).to_string()),
        ])),
        fields: owned([("spec.nodeName", Place::Node(node).label())]),
    }
}

/// `RUST_LOG` of the lab's own environment, when set, wins over the manifests' level.
fn log_level() -> Option<(&'static str, String)> {
    std::env::var("RUST_LOG")
        .ok()
        .map(|level| ("RUST_LOG", level))
}

fn owned(pairs: impl IntoIterator<Item = (&'static str, String)>) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The controller's command line: the manifests', plus the TLS files when the lab uses TLS.
/// (The kubeconfig a pod gets from its service account is the place's `KUBECONFIG`.)
pub fn controller_launch(names: &LabNames, install: &RovnInstall) -> Result<Launch, LabError> {
    let mut launch = manifests::launch(
        &install.controller_container,
        &install.config,
        &controller_substitutions(names),
    )?;
    if let Some(files) = tls::files(names, tls::CONTROLLER) {
        launch.args.extend(strings(tls::args(&files)));
    }
    Ok(launch)
}

/// A node agent's command line: the manifests', plus the lab's paths a pod gets from its host
/// mounts (the CNI directories), and the TLS files when the lab uses TLS.
pub fn agent_launch(
    names: &LabNames,
    install: &RovnInstall,
    node: u8,
    encap: Encap,
) -> Result<Launch, LabError> {
    let mut launch = manifests::launch(
        &install.node_container,
        &install.config,
        &agent_substitutions(names, node, encap),
    )?;
    launch.args.extend(strings([
        OsString::from("--cni-conf-dir"),
        names.cni_conf_dir(node).into(),
        "--cni-bin-dir".into(),
        names.cni_bin_dir(node).into(),
    ]));
    if let Some(files) = tls::files(names, &Place::Node(node).label()) {
        launch.args.extend(strings(tls::args(&files)));
    }
    Ok(launch)
}

fn strings(args: impl IntoIterator<Item = OsString>) -> Vec<String> {
    args.into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// The place's tool environment, then the launch's own.
fn env_of(names: &LabNames, place: Place, launch: &Launch) -> Vec<(String, OsString)> {
    names
        .env_for(place)
        .into_iter()
        .chain(launch.env.iter().cloned())
        .map(|(k, v)| (k, v.into()))
        .collect()
}

/// The controller's daemon spec.
pub fn controller_spec(names: &LabNames, install: &RovnInstall) -> Result<DaemonSpec, LabError> {
    let launch = controller_launch(names, install)?;
    Ok(DaemonSpec {
        label: format!("central/{CONTROLLER_DAEMON}"),
        netns: Some(names.netns(Place::Central)),
        program: install.controller.clone(),
        args: launch.args.iter().map(OsString::from).collect(),
        env: env_of(names, Place::Central, &launch),
        pidfile: names.pidfile(Place::Central, CONTROLLER_DAEMON),
        log_file: names.controller_log(),
        writes_own_pidfile: false,
    })
}

/// A node agent's daemon spec.
pub fn agent_spec(
    names: &LabNames,
    install: &RovnInstall,
    node: u8,
    encap: Encap,
) -> Result<DaemonSpec, LabError> {
    let place = Place::Node(node);
    let launch = agent_launch(names, install, node, encap)?;
    Ok(DaemonSpec {
        label: format!("{}/{AGENT_DAEMON}", place.label()),
        netns: Some(names.netns(place)),
        program: install.node.clone(),
        args: launch.args.iter().map(OsString::from).collect(),
        env: env_of(names, place, &launch),
        pidfile: names.pidfile(place, AGENT_DAEMON),
        log_file: names.agent_log(node),
        writes_own_pidfile: false,
    })
}

/// Starts the controller (needs the API server's lab kubeconfig and the NB socket).
pub fn start_controller(names: &LabNames, install: &RovnInstall) -> Result<Daemon, LabError> {
    daemon::start(&controller_spec(names, install)?)
}

/// Starts the agent of `node` (needs the node's switch, the SB and the API server).
pub fn start_agent(
    names: &LabNames,
    install: &RovnInstall,
    node: u8,
    encap: Encap,
) -> Result<Daemon, LabError> {
    for dir in [names.cni_bin_dir(node), names.cni_conf_dir(node)] {
        std::fs::create_dir_all(&dir).map_err(|e| LabError::io("create", &dir, e))?;
    }
    daemon::start(&agent_spec(names, install, node, encap)?)
}

/// Waits until the controller's `/readyz` answers 200 (it leads, its caches are synced and the
/// first NB reconcile is done), failing early with its log if it exits.
pub fn wait_controller_ready(
    names: &LabNames,
    controller: &Daemon,
    deadline: Instant,
) -> Result<(), LabError> {
    let ns = names.netns(Place::Central);
    let addr = names.controller_listen();
    let mut last = String::from("no answer yet");
    let ready = poll::until(deadline, READY_POLL_INTERVAL, || {
        controller.ensure_alive()?;
        match http_get_in_netns(&ns, addr, "/readyz") {
            // A standby answers 200 too; the lab waits for the leader's first reconcile.
            Ok(body) if body.trim() == READY_LEADING => Ok(Some(())),
            Ok(body) => {
                last = format!("answered {:?}", body.trim());
                Ok(None)
            }
            Err(e) => {
                last = e.to_string();
                Ok(None)
            }
        }
    })?;
    ready.ok_or_else(|| LabError::Timeout {
        what: format!(
            "{} to be ready at http://{addr}/readyz ({last})",
            controller.label
        ),
        logs: vec![controller.log_excerpt()],
    })
}

/// Whether the agent of `node` is ready: its conflist is written and `/healthz` answers 200.
pub fn agent_ready(names: &LabNames, node: u8) -> Result<bool, LabError> {
    if !names.cni_conflist(node).is_file() {
        return Ok(false);
    }
    let ns = names.netns(Place::Node(node));
    Ok(http_get_in_netns(&ns, names.agent_listen(node), "/healthz").is_ok())
}

/// Waits until every agent of `agents` (node index, daemon) is ready, failing early with the
/// log of one that exits and naming those still not ready at the deadline.
pub fn wait_agents_ready(
    names: &LabNames,
    agents: &[(u8, Daemon)],
    deadline: Instant,
) -> Result<(), LabError> {
    let mut waiting: Vec<&(u8, Daemon)> = agents.iter().collect();
    let done = poll::until(deadline, READY_POLL_INTERVAL, || {
        let mut still = Vec::new();
        for agent in &waiting {
            agent.1.ensure_alive()?;
            if !agent_ready(names, agent.0)? {
                still.push(*agent);
            }
        }
        waiting = still;
        Ok::<_, LabError>(waiting.is_empty().then_some(()))
    })?;
    done.ok_or_else(|| LabError::Timeout {
        what: format!(
            "rovn-node on {:?} to be ready (conflist written, /healthz answering)",
            waiting
                .iter()
                .map(|(i, _)| Place::Node(*i).label())
                .collect::<Vec<_>>()
        ),
        logs: waiting.iter().map(|(_, d)| d.log_excerpt()).collect(),
    })
}

/// Stops the daemon of `spec` (SIGTERM, then SIGKILL after the grace); fails unless it ran.
pub fn stop(spec: &DaemonSpec) -> Result<(), LabError> {
    ensure_running(spec)?;
    daemon::stop_pidfile(&spec.pidfile, STOP_GRACE)?;
    Ok(())
}

/// Fails unless the daemon of `spec` runs: a restart test must not pass because the daemon had
/// already died.
pub fn ensure_running(spec: &DaemonSpec) -> Result<(), LabError> {
    match daemon::read_pidfile(&spec.pidfile) {
        Some(pid) if daemon::is_alive(pid) => Ok(()),
        _ => Err(LabError::DaemonDied {
            daemon: spec.label.clone(),
            log: spec.log_file.clone(),
            log_tail: daemon::log_tail(&spec.log_file, daemon::LOG_TAIL_LINES),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> LabNames {
        LabNames::new("dev".parse().unwrap())
    }

    /// The lab's install from the real `deploy/base`.
    fn install() -> RovnInstall {
        let rendered = manifests::render(&manifests::base_dir()).unwrap();
        RovnInstall::from_rendered(
            "/b/rovn-controller".into(),
            "/b/rovn-node".into(),
            &rendered,
        )
        .unwrap()
    }

    fn env<'a>(launch: &'a Launch, name: &str) -> Option<&'a str> {
        launch
            .env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_controller_runs_as_the_manifests_say_with_lab_addresses() {
        let install = install();
        let launch = controller_launch(&names(), &install).unwrap();
        assert_eq!(launch.program, "rovn-controller");
        assert_eq!(
            env(&launch, "ROVN_NB_REMOTE"),
            Some("unix:/run/rovn-lab/dev/central/nb.sock")
        );
        assert_eq!(env(&launch, "ROVN_LISTEN"), Some("172.30.0.1:10660"));
        assert_eq!(env(&launch, "ROVN_LB_CIDR"), Some(LB_CIDR));
        assert_eq!(env(&launch, "POD_NAME"), Some(CONTROLLER_POD));
        // Everything else is the manifests' own.
        assert_eq!(
            env(&launch, "ROVN_DEFAULT_CIDR"),
            install.config.get("default-cidr").map(String::as_str)
        );
        assert_eq!(env(&launch, "ROVN_LEADER_ELECT"), Some("true"));
    }

    #[test]
    fn an_agent_runs_as_the_manifests_say_with_lab_paths() {
        let launch = agent_launch(&names(), &install(), 2, Encap::Vxlan).unwrap();
        assert_eq!(launch.program, "rovn-node");
        assert_eq!(env(&launch, "NODE_NAME"), Some("node2"));
        assert_eq!(
            env(&launch, "ROVN_OVS_DB"),
            Some("unix:/run/rovn-lab/dev/node2/db.sock")
        );
        assert_eq!(env(&launch, "ROVN_OVN_REMOTE"), Some("tcp:172.30.0.1:6642"));
        assert_eq!(env(&launch, "ROVN_ENCAP_TYPE"), Some("vxlan"));
        assert_eq!(env(&launch, "ROVN_DATAPATH_TYPE"), Some("netdev"));
        assert_eq!(env(&launch, "ROVN_LISTEN"), Some("172.30.0.12:10665"));
        assert_eq!(
            launch.args.join(" "),
            "--cni-conf-dir /run/rovn-lab/dev/node2/cni/net.d \
             --cni-bin-dir /run/rovn-lab/dev/node2/cni/bin"
        );
    }

    #[test]
    fn a_manifest_without_a_variable_the_lab_substitutes_fails_the_lab() {
        let mut install = install();
        if let Some(env) = install.node_container.env.as_mut() {
            env.retain(|v| v.name != "ROVN_CNI_SOCKET");
        }
        let e = agent_launch(&names(), &install, 1, Encap::Geneve).unwrap_err();
        assert!(e.to_string().contains("ROVN_CNI_SOCKET"), "{e}");
    }

    #[test]
    fn specs_use_the_contract_log_files() {
        let install = install();
        let c = controller_spec(&names(), &install).unwrap();
        assert_eq!(c.netns.as_deref(), Some("rl-dev-central"));
        assert_eq!(
            c.log_file,
            Path::new("/run/rovn-lab/dev/logs/rovn-controller.log")
        );
        let a = agent_spec(&names(), &install, 1, Encap::Geneve).unwrap();
        assert_eq!(a.netns.as_deref(), Some("rl-dev-node1"));
        assert_eq!(
            a.pidfile,
            Path::new("/run/rovn-lab/dev/node1/rovn-node.pid")
        );
    }
}
