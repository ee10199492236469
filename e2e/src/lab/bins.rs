//! Finding programs: the project's own binaries (API server, kubelet, scheduler, CNI) next to
//! the running executable or in `$ROVN_BIN_DIR`, and the system tools the lab is built with.

use std::path::{Path, PathBuf};

use super::error::LabError;

/// Environment variable that overrides where the project's binaries are looked up.
pub const BIN_DIR_ENV: &str = "ROVN_BIN_DIR";

/// The directory of the project's binaries: `$ROVN_BIN_DIR`, else the running executable's
/// directory (or its parent when that is Cargo's `deps/`, as for integration tests).
pub fn default_bin_dir() -> Result<PathBuf, LabError> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let exe =
        std::env::current_exe().map_err(|e| LabError::io("locate", "current executable", e))?;
    let dir = exe
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    if dir.file_name().is_some_and(|n| n == "deps")
        && let Some(parent) = dir.parent()
    {
        return Ok(parent.to_path_buf());
    }
    Ok(dir)
}

/// The path of `program` in `dir`, or an error saying how to get it there.
pub fn find(dir: &Path, program: &str) -> Result<PathBuf, LabError> {
    let path = dir.join(program);
    if path.is_file() {
        Ok(path)
    } else {
        Err(LabError::MissingBinary {
            program: program.to_string(),
            dir: dir.to_path_buf(),
        })
    }
}

/// The system programs every lab needs (from `openvswitch-switch`, `ovn-central`, `ovn-host`,
/// `iproute2`, `ethtool`).
pub const SYSTEM_TOOLS: &[&str] = &[
    "ip",
    "ethtool",
    "ovsdb-tool",
    "ovsdb-server",
    "ovs-vswitchd",
    "ovs-vsctl",
    "ovn-northd",
    "ovn-controller",
    "ovn-sbctl",
];

/// Fails with one message naming every missing system tool, so a machine without OVS/OVN is
/// told what to install instead of failing half-way through `up`.
pub fn check_system_tools() -> Result<(), LabError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    let missing = missing_programs(SYSTEM_TOOLS, &dirs);
    if missing.is_empty() {
        return Ok(());
    }
    Err(LabError::InvalidSpec(format!(
        "missing {} (install openvswitch-switch ovn-central ovn-host iproute2 ethtool, e.g. `make setup`)",
        missing.join(", ")
    )))
}

/// The programs of `wanted` found in none of `dirs`.
pub fn missing_programs(wanted: &[&str], dirs: &[PathBuf]) -> Vec<String> {
    wanted
        .iter()
        .filter(|p| !dirs.iter().any(|d| d.join(p).is_file()))
        .map(|p| p.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_are_the_ones_in_no_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ip"), "").unwrap();
        let dirs = vec![PathBuf::from("/nonexistent"), dir.path().to_path_buf()];
        assert_eq!(
            missing_programs(&["ip", "ovs-vsctl"], &dirs),
            vec!["ovs-vsctl"]
        );
    }

    #[test]
    fn binaries_are_found_only_where_they_are() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rovn-kubesim"), "").unwrap();
        assert!(find(dir.path(), "rovn-kubesim").is_ok());
        let err = find(dir.path(), "rovn-kubelet").unwrap_err();
        assert!(err.to_string().contains("rovn-kubelet not found"), "{err}");
    }
}
