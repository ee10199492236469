//! Network namespaces and links of a lab, through the `ip` command.
//!
//! Every link is created directly inside a lab namespace (`ip -n NS link add ... peer ... netns`),
//! so no lab ever puts a name, address or route in the root namespace.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::cancel;
use super::cmd;
use super::error::LabError;
use super::names::NETNS_DIR;

/// Creates the named namespace and brings its loopback up.
pub fn add(ns: &str) -> Result<(), LabError> {
    cmd::run(&format!("create netns {ns}"), "ip", ["netns", "add", ns])?;
    batch(ns, &["link set lo up".to_string()])
}

/// Deletes a namespace; missing namespaces are not an error.
pub fn delete(ns: &str) -> Result<(), LabError> {
    if !Path::new(NETNS_DIR).join(ns).exists() {
        return Ok(());
    }
    match cmd::run_always(&format!("delete netns {ns}"), "ip", ["netns", "delete", ns]) {
        // Someone else (a concurrent teardown) deleted it first.
        Err(_) if !exists(ns) => Ok(()),
        result => result.map(|_| ()),
    }
}

/// The named namespaces whose names start with `prefix`.
pub fn list_with_prefix(prefix: &str) -> Result<Vec<String>, LabError> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io("read", NETNS_DIR, e)),
    };
    let mut found: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    found.sort();
    Ok(found)
}

/// Whether the named namespace exists.
pub fn exists(ns: &str) -> bool {
    Path::new(NETNS_DIR).join(ns).exists()
}

/// The processes whose network namespace is `ns`.
pub fn pids(ns: &str) -> Result<Vec<i32>, LabError> {
    let out = cmd::run_always(
        &format!("list processes in {ns}"),
        "ip",
        ["netns", "pids", ns],
    )?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Runs several `ip` commands (without the leading `ip`) inside `ns` with one `ip -batch`.
pub fn batch(ns: &str, lines: &[String]) -> Result<(), LabError> {
    let what = format!("configure links in {ns}");
    cancel::unless_cancelled(&what, || run_batch(ns, &what, lines))
}

fn run_batch(ns: &str, what: &str, lines: &[String]) -> Result<(), LabError> {
    let what = what.to_string();
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LabError::Spawn {
            what: what.clone(),
            program: "ip".into(),
            source,
        })?;
    let script = lines.join("\n") + "\n";
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| LabError::io("write ip batch for", ns, e))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| LabError::io("wait for ip batch in", ns, e))?;
    if !output.status.success() {
        return Err(LabError::Command {
            what,
            command: format!("ip -n {ns} -batch - <<< {:?}", lines.join("; ")),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Makes a veth pair with one end `name_a` in `ns_a` and the other `name_b` in `ns_b`.
pub fn add_veth(ns_a: &str, name_a: &str, ns_b: &str, name_b: &str) -> Result<(), LabError> {
    batch(
        ns_a,
        &[format!(
            "link add {name_a} type veth peer name {name_b} netns {ns_b}"
        )],
    )
}

/// A command that runs `program` inside `ns` (the program keeps the caller's pid via exec).
pub fn exec_command(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", ns]).arg(program);
    command
}

/// Turns off TX checksum offload on `dev` in `ns`: packets leaving a veth with partial
/// checksums are dropped after the OVS userspace datapath forwards them.
pub fn tx_checksum_off(ns: &str, dev: &str) -> Result<(), LabError> {
    let mut command = exec_command(ns, "ethtool");
    command.args(["-K", dev, "tx", "off"]);
    cmd::run_command(
        &format!("disable tx checksum offload on {dev} in {ns}"),
        &mut command,
    )
    .map(|_| ())
}

/// Turns on IPv4 forwarding inside the named namespace `ns` (a lab node routes between `ovn0`
/// and its underlay as a real node does: pods' egress, NodePorts). `ip_forward` is per network
/// namespace, and `ns` is always a lab namespace, so the root namespace is never touched.
pub fn enable_forwarding(ns: &str) -> Result<(), LabError> {
    let mut command = exec_command(ns, "sysctl");
    command.args(["-q", "-w", "net.ipv4.ip_forward=1"]);
    cmd::run_command(&format!("enable IPv4 forwarding in {ns}"), &mut command).map(|_| ())
}

/// Whether the link `dev` exists in `ns`.
pub fn link_exists(ns: &str, dev: &str) -> Result<bool, LabError> {
    let status = Command::new("ip")
        .args(["-n", ns, "link", "show", "dev", dev])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|source| LabError::Spawn {
            what: format!("look for {dev} in {ns}"),
            program: "ip".into(),
            source,
        })?;
    Ok(status.success())
}
