//! Long-running processes of a lab: started detached (own process group, stdin closed, output
//! appended to a log file), optionally inside a namespace, remembered by pidfile, stopped by pid.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::cancel;
use super::error::LabError;
use super::netns;
use super::poll;

/// How many log lines an error shows.
pub const LOG_TAIL_LINES: usize = 15;

/// Everything needed to start one daemon.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    /// Human label for messages, e.g. `node1/ovs-vswitchd`.
    pub label: String,
    /// The namespace to run in; `None` is the root namespace.
    pub netns: Option<String>,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(String, OsString)>,
    /// Where the pid is recorded.
    pub pidfile: PathBuf,
    /// Where stdout and stderr are appended.
    pub log_file: PathBuf,
    /// OVS daemons write (and lock) their own pidfile, which `ovs-appctl -t` needs; the lab must
    /// not replace it with an unlocked copy.
    pub writes_own_pidfile: bool,
}

/// A started daemon.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// Human label, as in the spec.
    pub label: String,
    /// Its process id.
    pub pid: i32,
    /// Its log file, for error messages.
    pub log_file: PathBuf,
}

impl Daemon {
    /// An error naming this daemon with its log tail if it has exited.
    pub fn ensure_alive(&self) -> Result<(), LabError> {
        if is_alive(self.pid) {
            return Ok(());
        }
        Err(LabError::DaemonDied {
            daemon: self.label.clone(),
            log: self.log_file.clone(),
            log_tail: log_tail(&self.log_file, LOG_TAIL_LINES),
        })
    }

    /// The daemon's log file and its last lines, for timeout errors.
    pub fn log_excerpt(&self) -> (PathBuf, String) {
        (
            self.log_file.clone(),
            log_tail(&self.log_file, LOG_TAIL_LINES),
        )
    }
}

/// Starts a daemon in the background and records its pid.
pub fn start(spec: &DaemonSpec) -> Result<Daemon, LabError> {
    cancel::unless_cancelled(&format!("start {}", spec.label), || start_now(spec))
}

fn start_now(spec: &DaemonSpec) -> Result<Daemon, LabError> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log_file)
        .map_err(|e| LabError::io("open log file", &spec.log_file, e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| LabError::io("duplicate log file", &spec.log_file, e))?;
    let mut command = match &spec.netns {
        Some(ns) => netns::exec_command(ns, &spec.program),
        None => Command::new(&spec.program),
    };
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0);
    let mut child = command.spawn().map_err(|source| LabError::Spawn {
        what: format!("start {}", spec.label),
        program: spec.program.display().to_string(),
        source,
    })?;
    let pid = i32::try_from(child.id()).map_err(|_| LabError::Protocol {
        what: format!("start {}", spec.label),
        detail: format!("pid {} out of range", child.id()),
    })?;
    wait_for_exec(pid);
    // Reap the daemon when it exits, so a lab run inside a long-lived process (tests) leaves no
    // zombies; only this thread ever waits for it, so no other wait in the process is disturbed.
    let reaper = std::thread::Builder::new()
        .name(format!("reap-{pid}"))
        .spawn(move || {
            let _ = child.wait();
        });
    if let Err(e) = reaper {
        tracing::warn!(daemon = %spec.label, error = %e, "cannot start reaper thread; the daemon will linger as a zombie after exit");
    }
    if !spec.writes_own_pidfile {
        write_pidfile(&spec.pidfile, pid)?;
    }
    Ok(Daemon {
        label: spec.label.clone(),
        pid,
        log_file: spec.log_file.clone(),
    })
}

/// Waits (briefly) until the kernel shows the new program's command line: `spawn` returns
/// while exec is still finishing, and until then a teardown could not recognise the daemon
/// as the lab's.
fn wait_for_exec(pid: i32) {
    let deadline = Instant::now() + Duration::from_millis(200);
    let _ = poll::until(deadline, Duration::from_micros(200), || {
        let shown = std::fs::read(format!("/proc/{pid}/cmdline")).map(|c| !c.is_empty());
        // An unreadable entry means the process is already gone; nothing to wait for.
        Ok::<_, ()>(shown.unwrap_or(true).then_some(()))
    });
}

fn write_pidfile(path: &Path, pid: i32) -> Result<(), LabError> {
    let tmp = path.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{pid}\n")).map_err(|e| LabError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| LabError::io("rename to", path, e))
}

/// The pid recorded in a pidfile, if the file exists and holds one.
pub fn read_pidfile(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` is a running (not zombie) process. Never reaps: reaping someone else's child
/// would break that caller's own wait.
pub fn is_alive(pid: i32) -> bool {
    process_stat(pid).is_some_and(|(state, _)| !matches!(state, 'Z' | 'X'))
}

/// A running process pinned by its start time, so that a pid recycled while the lab waits is
/// never mistaken for (and signalled as) the process it replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessRef {
    /// The process id.
    pub pid: i32,
    start_time: u64,
}

impl ProcessRef {
    /// The running process `pid`, if there is one.
    pub fn of(pid: i32) -> Option<ProcessRef> {
        match process_stat(pid)? {
            ('Z' | 'X', _) => None,
            (_, start_time) => Some(ProcessRef { pid, start_time }),
        }
    }

    /// Whether this very process is still running.
    pub fn is_alive(&self) -> bool {
        ProcessRef::of(self.pid).is_some_and(|now| now == *self)
    }
}

fn process_stat(pid: i32) -> Option<(char, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// State and start time from the text of `/proc/PID/stat`.
pub fn parse_stat(stat: &str) -> Option<(char, u64)> {
    // The command name in parentheses may itself contain spaces and parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 of stat(5) is starttime; `fields` starts at field 3.
    let start_time = fields.get(19)?.parse().ok()?;
    Some((state, start_time))
}

/// The kernel's name of the program `pid` runs (`/proc/PID/comm`, at most 15 characters).
pub fn program_name(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// Whether the command line of `pid` contains `needle`: guards against signalling an unrelated
/// process that reused the pid of a stale pidfile.
pub fn cmdline_mentions(pid: i32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .replace('\0', " ")
                .contains(needle)
        })
        .unwrap_or(false)
}

/// Stops the daemon recorded in `pidfile` (SIGTERM, then SIGKILL after `grace`); returns
/// whether one was running. For scenarios that stop or restart a single daemon of a lab.
pub fn stop_pidfile(pidfile: &Path, grace: Duration) -> Result<bool, LabError> {
    let Some(pid) = read_pidfile(pidfile).filter(|p| is_alive(*p)) else {
        return Ok(false);
    };
    let survivors = stop(&[pid], grace);
    if survivors.is_empty() {
        Ok(true)
    } else {
        Err(LabError::Protocol {
            what: format!("stop the daemon of {}", pidfile.display()),
            detail: format!("pid {pid} survived SIGKILL"),
        })
    }
}

/// Stops processes: SIGTERM, then SIGKILL for those still alive after `grace`.
/// Returns the pids that survived even SIGKILL.
pub fn stop(pids: &[i32], grace: Duration) -> Vec<i32> {
    let procs: Vec<ProcessRef> = pids.iter().filter_map(|p| ProcessRef::of(*p)).collect();
    signal_all(&procs, Signal::SIGTERM);
    if wait_gone(&procs, Instant::now() + grace) {
        return Vec::new();
    }
    let stubborn: Vec<i32> = procs
        .iter()
        .filter(|p| p.is_alive())
        .map(|p| p.pid)
        .collect();
    tracing::debug!(?stubborn, "still alive after SIGTERM; sending SIGKILL");
    signal_all(&procs, Signal::SIGKILL);
    wait_gone(&procs, Instant::now() + Duration::from_secs(3));
    procs
        .iter()
        .filter(|p| p.is_alive())
        .map(|p| p.pid)
        .collect()
}

fn signal_all(procs: &[ProcessRef], signal: Signal) {
    for p in procs {
        if p.is_alive() {
            let _ = kill(Pid::from_raw(p.pid), signal);
        }
    }
}

fn wait_gone(procs: &[ProcessRef], deadline: Instant) -> bool {
    let all_gone = poll::until(deadline, Duration::from_millis(10), || {
        Ok::<_, ()>(procs.iter().all(|p| !p.is_alive()).then_some(()))
    });
    matches!(all_gone, Ok(Some(())))
}

/// The last `lines` lines of a log file, or a note saying why there are none.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(raw) => {
            let text = String::from_utf8_lossy(&raw);
            let all: Vec<&str> = text.lines().collect();
            let tail = all[all.len().saturating_sub(lines)..].join("\n");
            if tail.is_empty() {
                "(log is empty)".to_string()
            } else {
                tail
            }
        }
        Err(e) => format!("(cannot read log: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "a\nb\nc\nd\n").unwrap();
        assert_eq!(log_tail(&path, 2), "c\nd");
        assert_eq!(log_tail(&path, 10), "a\nb\nc\nd");
        assert!(log_tail(&dir.path().join("missing"), 2).starts_with("(cannot read log"));
    }

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(stat), Some(('S', 987654)));
        assert_eq!(parse_stat("42 (zombie) Z 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_daemon_that_dies_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let spec = DaemonSpec {
            label: "test/crasher".into(),
            netns: None,
            program: "sh".into(),
            args: vec!["-c".into(), "echo cannot open socket >&2; exit 3".into()],
            env: vec![],
            pidfile: dir.path().join("crasher.pid"),
            log_file: dir.path().join("crasher.log"),
            writes_own_pidfile: false,
        };
        let daemon = start(&spec).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let died = poll::until(deadline, Duration::from_millis(10), || {
            Ok::<_, ()>(daemon.ensure_alive().err())
        })
        .unwrap()
        .expect("the crasher never died");
        let text = died.to_string();
        assert!(text.contains("test/crasher exited unexpectedly"), "{text}");
        assert!(text.contains("cannot open socket"), "{text}");
    }

    #[test]
    fn a_started_daemon_is_alive_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let spec = DaemonSpec {
            label: "test/sleep".into(),
            netns: None,
            program: "sleep".into(),
            args: vec!["30".into()],
            env: vec![],
            pidfile: dir.path().join("sleep.pid"),
            log_file: dir.path().join("sleep.log"),
            writes_own_pidfile: false,
        };
        let daemon = start(&spec).unwrap();
        assert_eq!(read_pidfile(&spec.pidfile), Some(daemon.pid));
        assert!(is_alive(daemon.pid));
        assert!(cmdline_mentions(daemon.pid, "sleep 30"));
        assert!(stop_pidfile(&spec.pidfile, Duration::from_secs(2)).unwrap());
        assert!(!is_alive(daemon.pid));
        assert!(!stop_pidfile(&spec.pidfile, Duration::from_secs(2)).unwrap());
        assert!(!stop_pidfile(&dir.path().join("none.pid"), Duration::ZERO).unwrap());
        assert!(daemon.ensure_alive().is_err());
    }
}
