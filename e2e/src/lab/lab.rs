//! A whole lab: bringing it up (central, outside and nodes concurrently, then chassis, tunnel
//! and kube readiness), describing it, and running commands in it.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::bins;
use super::cancel;
use super::central::{self, Central};
use super::daemon::{self, Daemon};
use super::down;
use super::error::LabError;
use super::kube;
use super::names::{LabName, LabNames, MAX_NODES, Place};
use super::netns;
use super::node::{self, Encap, Node};
use super::outside;
use super::readiness::{wait_for_chassis, wait_for_tunnels};
use super::rovn::{self, RovnInstall};
use super::spec::{LabInfo, LabSpec};

/// A running lab.
#[derive(Debug)]
pub struct Lab {
    names: LabNames,
    info: LabInfo,
    daemons: Vec<Daemon>,
    rovn_bins: Option<RovnInstall>,
}

impl Lab {
    /// Builds the lab described by `spec`, tearing down leftovers of the same name first.
    /// On failure the lab is torn down (unless `keep_on_failure`) and the error carries the
    /// relevant daemon's log tail.
    pub fn up(spec: &LabSpec) -> Result<Lab, LabError> {
        if spec.nodes == 0 || spec.nodes > MAX_NODES {
            return Err(LabError::InvalidSpec(format!(
                "{} nodes: a lab has 1 to {MAX_NODES}",
                spec.nodes
            )));
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(LabError::InvalidSpec(
                "a lab makes network namespaces and must run as root".into(),
            ));
        }
        bins::check_system_tools()?;
        let names = LabNames::new(spec.name.clone());
        if down::has_leftovers(&names)? {
            tracing::info!(lab = %spec.name, "tearing down what is left of an earlier lab of this name");
            down::down(&spec.name)?;
        }
        match build(&names, spec) {
            Ok(lab) => Ok(lab),
            Err(e) => {
                if !spec.keep_on_failure
                    && !cancel::is_cancelled()
                    && let Err(cleanup) = down::down(&spec.name)
                {
                    tracing::error!(lab = %spec.name, error = %cleanup, "cleaning up after a failed up also failed");
                }
                Err(e)
            }
        }
    }

    /// A lab that is already up (made by another process, e.g. `rovn-lab up`), from what its
    /// `up` recorded; its restart helpers use the binaries in `bin_dir` (default: next to the
    /// running executable).
    pub fn attach(name: &LabName, bin_dir: Option<PathBuf>) -> Result<Lab, LabError> {
        let names = LabNames::new(name.clone());
        let path = names.state_file();
        let text = std::fs::read_to_string(&path).map_err(|e| LabError::io("read", &path, e))?;
        let info: LabInfo = serde_json::from_str(&text).map_err(|e| LabError::Protocol {
            what: format!("lab {name}'s record {}", path.display()),
            detail: e.to_string(),
        })?;
        let rovn_bins = if info.rovn {
            let dir = match bin_dir {
                Some(dir) => dir,
                None => bins::default_bin_dir()?,
            };
            Some(RovnInstall::find(&dir)?)
        } else {
            None
        };
        Ok(Lab {
            names,
            info,
            daemons: Vec::new(),
            rovn_bins,
        })
    }

    /// The lab's names and paths.
    pub fn names(&self) -> &LabNames {
        &self.names
    }

    /// What the lab offers.
    pub fn info(&self) -> &LabInfo {
        &self.info
    }

    /// The daemons `up` started.
    pub fn daemons(&self) -> &[Daemon] {
        &self.daemons
    }

    /// A command running `program` inside a place of this lab with its tool environment.
    pub fn command(&self, place: Place, program: impl AsRef<OsStr>) -> Command {
        exec_command(&self.names, place, program)
    }

    /// Tears the lab down.
    pub fn down(self) -> Result<(), LabError> {
        down::down(self.names.name())
    }

    fn rovn_install(&self) -> Result<&RovnInstall, LabError> {
        self.rovn_bins.as_ref().ok_or_else(|| {
            LabError::InvalidSpec(format!("lab {} does not run rovn", self.names.name()))
        })
    }

    /// Stops the running rovn-controller (SIGTERM); fails if it was not running, so a restart
    /// test cannot pass because the controller had already died.
    pub fn stop_controller(&self) -> Result<(), LabError> {
        rovn::stop(&rovn::controller_spec(&self.names, self.rovn_install()?)?)
    }

    /// Starts rovn-controller with the lab's command line and waits until it is ready.
    pub fn start_controller(&self, timeout: Duration) -> Result<Daemon, LabError> {
        let spec = rovn::controller_spec(&self.names, self.rovn_install()?)?;
        let daemon = daemon::start(&spec)?;
        rovn::wait_controller_ready(&self.names, &daemon, Instant::now() + timeout)?;
        Ok(daemon)
    }

    /// Stops the running rovn-node of node `index`; fails if it was not running.
    pub fn stop_agent(&self, index: u8) -> Result<(), LabError> {
        self.check_node(index)?;
        rovn::stop(&rovn::agent_spec(
            &self.names,
            self.rovn_install()?,
            index,
            self.info.encap,
        )?)
    }

    /// Starts rovn-node on node `index` and waits until it is ready.
    pub fn start_agent(&self, index: u8, timeout: Duration) -> Result<Daemon, LabError> {
        self.check_node(index)?;
        let spec = rovn::agent_spec(&self.names, self.rovn_install()?, index, self.info.encap)?;
        let agents = [(index, daemon::start(&spec)?)];
        rovn::wait_agents_ready(&self.names, &agents, Instant::now() + timeout)?;
        let [(_, daemon)] = agents;
        Ok(daemon)
    }

    /// Stops node `index`'s ovn-controller (SIGTERM, so its SB Chassis row stays, as when it
    /// dies); fails if it was not running.
    pub fn stop_ovn_controller(&self, index: u8) -> Result<(), LabError> {
        self.check_node(index)?;
        rovn::stop(&node::controller_spec(&self.names, index))
    }

    /// Starts node `index`'s ovn-controller again and waits until it is connected to SB.
    pub fn start_ovn_controller(&self, index: u8, timeout: Duration) -> Result<Daemon, LabError> {
        self.check_node(index)?;
        let daemon = node::start_controller(&self.names, index)?;
        node::wait_controller_connected(&self.names, index, &daemon, Instant::now() + timeout)?;
        Ok(daemon)
    }

    /// Stops the Northbound ovsdb-server; its database file stays for [`Lab::start_nb`].
    pub fn stop_nb(&self) -> Result<(), LabError> {
        central::stop_nb(&self.names)
    }

    /// Starts the Northbound ovsdb-server on the database it had and waits until it serves.
    pub fn start_nb(&self, timeout: Duration) -> Result<Daemon, LabError> {
        central::start_nb(&self.names, Instant::now() + timeout)
    }

    fn check_node(&self, index: u8) -> Result<(), LabError> {
        let label = Place::Node(index).label();
        if self.info.nodes.iter().any(|n| n.name == label) {
            Ok(())
        } else {
            Err(LabError::InvalidPlace { place: label })
        }
    }
}

/// A command running `program` inside `place` of lab `names`, with `OVS_RUNDIR`, `OVN_RUNDIR`,
/// `OVN_NB_DB`, `OVN_SB_DB` and `KUBECONFIG` set so OVS/OVN tools need no flags.
pub fn exec_command(names: &LabNames, place: Place, program: impl AsRef<OsStr>) -> Command {
    let mut command = netns::exec_command(&names.netns(place), program);
    command.envs(names.env_for(place));
    command
}

fn build(names: &LabNames, spec: &LabSpec) -> Result<Lab, LabError> {
    let started = Instant::now();
    let deadline = started + spec.timeout;
    let phase = |what: &str| {
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::debug!(lab = %names.name(), elapsed_ms, "{what}");
    };
    let indexes: Vec<u8> = (1..=spec.nodes).collect();
    make_dirs(names, &indexes)?;
    if spec.tls {
        super::tls::create(names, &indexes)?;
        phase("PKI made");
    }
    let mut info = LabInfo::planned(names, spec.encap, &indexes);
    info.owner = spec.owner;
    info.tls = spec.tls;
    write_info(names, &info)?;
    let kube_bins = find_kube_bins(spec)?;
    let rovn_bins = find_rovn_bins(spec)?;
    info.rovn = rovn_bins.is_some();
    info.kubelets = kube_bins.is_some() && spec.kubelets;

    central::create_underlay(names)?;
    phase("underlay bridge ready");
    let api_server = match &kube_bins {
        Some(bins) => Some(kube::start_api_server(names, bins)?),
        None => None,
    };
    let (central, nodes, controllers) = start_places(names, spec.encap, &indexes, deadline)?;
    phase("central serving, switches and ovn-controllers running");
    let mut daemons: Vec<Daemon> = central.daemons().into_iter().cloned().collect();
    daemons.extend(
        nodes
            .iter()
            .flat_map(|n| [n.ovsdb.clone(), n.vswitchd.clone()]),
    );
    daemons.extend(controllers.iter().cloned());
    // Kubelets need only the underlay, so they register while the chassis do.
    let options = kube::AgentOptions {
        kubelets: spec.kubelets,
        rovn: rovn_bins.is_some(),
    };
    let kube = match (kube_bins, api_server) {
        (Some(bins), Some(api)) => Some(kube::start_agents(
            names, &bins, api, &indexes, options, deadline,
        )?),
        _ => None,
    };
    if let Some(kube) = &kube {
        daemons.extend(kube.daemons.iter().cloned());
        if rovn_bins.is_some() {
            kube::create_rovn_config(kube.api, names)?;
            kube::create_controller_pod(kube.api)?;
        }
    }
    // The controller needs the API server (kubeconfig-lab) and the NB, both there now.
    let controller = match &rovn_bins {
        Some(bins) => Some(rovn::start_controller(names, bins)?),
        None => None,
    };
    if let Some(controller) = &controller {
        daemons.push(controller.clone());
    }
    wait_for_chassis(names, &indexes, &daemons, &controllers, deadline)?;
    phase("every chassis registered");
    wait_for_tunnels(names, spec.encap, &indexes, &controllers, deadline)?;
    phase("tunnel mesh complete");

    if let Some(kube) = kube {
        kube.wait_ready(&indexes, deadline)?;
        info.kubeconfig = Some(kube.kubeconfig);
        info.api = Some(kube.api.to_string());
        write_info(names, &info)?;
        phase("every node Ready");
    }
    // Agents read their Node object at start, so they start once every node is registered.
    if let (Some(bins), Some(controller)) = (&rovn_bins, &controller) {
        let agents = indexes
            .iter()
            .map(|&i| rovn::start_agent(names, bins, i, spec.encap).map(|d| (i, d)))
            .collect::<Result<Vec<_>, _>>()?;
        daemons.extend(agents.iter().map(|(_, d)| d.clone()));
        rovn::wait_agents_ready(names, &agents, deadline)?;
        phase("every rovn-node ready");
        rovn::wait_controller_ready(names, controller, deadline)?;
        phase("rovn-controller ready");
    }
    Ok(Lab {
        names: names.clone(),
        info,
        daemons,
        rovn_bins,
    })
}

/// The rovn binaries if the spec asks for rovn.
fn find_rovn_bins(spec: &LabSpec) -> Result<Option<RovnInstall>, LabError> {
    if !spec.rovn {
        return Ok(None);
    }
    RovnInstall::find(&bin_dir(spec)?).map(Some)
}

fn bin_dir(spec: &LabSpec) -> Result<PathBuf, LabError> {
    match &spec.bin_dir {
        Some(dir) => Ok(dir.clone()),
        None => bins::default_bin_dir(),
    }
}

/// The kube binaries if the spec asks for kube; looked up before anything starts so a missing
/// binary fails `up` at once.
fn find_kube_bins(spec: &LabSpec) -> Result<Option<kube::KubeBins>, LabError> {
    if !spec.runs_kube() {
        return Ok(None);
    }
    kube::KubeBins::find(&bin_dir(spec)?).map(Some)
}

fn make_dirs(names: &LabNames, indexes: &[u8]) -> Result<(), LabError> {
    let places = [Place::Central, Place::Outside]
        .into_iter()
        .chain(indexes.iter().map(|i| Place::Node(*i)));
    let dirs = places.map(|p| names.place_dir(p)).chain([names.logs_dir()]);
    for dir in dirs {
        std::fs::create_dir_all(&dir).map_err(|e| LabError::io("create", &dir, e))?;
    }
    Ok(())
}

fn write_info(names: &LabNames, info: &LabInfo) -> Result<(), LabError> {
    let path = names.state_file();
    let text = serde_json::to_string_pretty(info).map_err(|e| LabError::Protocol {
        what: format!("encode {}", path.display()),
        detail: e.to_string(),
    })?;
    std::fs::write(&path, text).map_err(|e| LabError::io("write", &path, e))
}

/// Central, outside and every node, all at once (each on its own thread); each node starts
/// its ovn-controller as soon as its own switch and the central databases are up.
fn start_places(
    names: &LabNames,
    encap: Encap,
    indexes: &[u8],
    deadline: Instant,
) -> Result<(Central, Vec<Node>, Vec<Daemon>), LabError> {
    let central_ready = CentralReady::default();
    std::thread::scope(|scope| {
        let central = scope.spawn(|| {
            let result = central::start(names, deadline);
            central_ready.set(result.is_ok());
            result
        });
        let outside = scope.spawn(|| outside::create(names));
        let nodes: Vec<_> = indexes
            .iter()
            .map(|&i| {
                let central_ready = &central_ready;
                scope.spawn(move || {
                    node::create_underlay(names, i)?;
                    let node = node::start_switch(names, i, encap, deadline)?;
                    match central_ready.wait(deadline) {
                        Some(true) => {}
                        // Central's own error is the one reported.
                        Some(false) => {
                            return Err(LabError::Cancelled {
                                what: format!("starting ovn-controller on node{i}"),
                            });
                        }
                        None => {
                            return Err(LabError::Timeout {
                                what: "the central OVN databases".into(),
                                logs: vec![],
                            });
                        }
                    }
                    let controller = node::start_controller(names, i)?;
                    Ok((node, controller))
                })
            })
            .collect();
        let central = join(central)?;
        join(outside)?;
        let (nodes, controllers) = nodes
            .into_iter()
            .map(join)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .unzip();
        Ok((central, nodes, controllers))
    })
}

/// Whether central came up, for node threads waiting to start their ovn-controller.
#[derive(Default)]
struct CentralReady {
    state: Mutex<Option<bool>>,
    changed: Condvar,
}

impl CentralReady {
    fn set(&self, ok: bool) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = Some(ok);
        self.changed.notify_all();
    }

    /// `Some(ok)` once central finished starting, `None` if the deadline passed first.
    fn wait(&self, deadline: Instant) -> Option<bool> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(ok) = *state {
                return Some(ok);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, Result<T, LabError>>) -> Result<T, LabError> {
    handle.join().unwrap_or_else(|_| {
        Err(LabError::Protocol {
            what: "lab setup thread".into(),
            detail: "panicked".into(),
        })
    })
}
