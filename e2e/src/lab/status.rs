//! What labs exist on this machine and whether their daemons are alive, read from
//! `/run/rovn-lab/*` (pidfiles and `lab.json`), so it also describes half-made labs.

use std::path::Path;

use super::daemon;
use super::down::pidfiles;
use super::error::LabError;
use super::names::STATE_ROOT;
use super::spec::LabInfo;

/// One daemon of a lab as its pidfile tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonStatus {
    /// `place/daemon`, from the pidfile's location.
    pub label: String,
    /// The recorded pid, if the pidfile holds one.
    pub pid: Option<i32>,
    /// Whether that process is running.
    pub alive: bool,
}

/// One lab found on this machine.
#[derive(Debug, Clone)]
pub struct LabStatus {
    /// The lab's name (its directory name).
    pub name: String,
    /// What `up` recorded, if it got that far.
    pub info: Option<LabInfo>,
    /// Its daemons.
    pub daemons: Vec<DaemonStatus>,
}

/// All labs under the state root.
pub fn status() -> Result<Vec<LabStatus>, LabError> {
    let root = Path::new(STATE_ROOT);
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io("read", root, e)),
    };
    let mut labs: Vec<LabStatus> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| lab_status(&e.path()))
        .collect();
    labs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(labs)
}

fn lab_status(dir: &Path) -> LabStatus {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let info = std::fs::read_to_string(dir.join("lab.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let daemons = pidfiles(dir)
        .into_iter()
        .map(|p| {
            let label = p
                .strip_prefix(dir)
                .unwrap_or(&p)
                .with_extension("")
                .display()
                .to_string();
            let pid = daemon::read_pidfile(&p);
            DaemonStatus {
                label,
                pid,
                alive: pid.is_some_and(daemon::is_alive),
            }
        })
        .collect();
    LabStatus {
        name,
        info,
        daemons,
    }
}
