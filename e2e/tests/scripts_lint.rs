//! Every shell script of the repository (`git ls-files '*.sh'`, tracked or new) parses
//! (`bash -n`) and is clean under `shellcheck`, so the scripts that only run elsewhere (the
//! kind suite on GitHub Actions, the image's start scripts in pods) are checked here too.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The repository's shell scripts, relative to its root.
fn scripts() -> Vec<String> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "*.sh",
        ])
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("running git ls-files: {e}"));
    assert!(
        out.status.success(),
        "git ls-files failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|f| repo_root().join(f).is_file())
        .map(str::to_string)
        .collect();
    files.sort();
    files.dedup();
    for needed in [
        "scripts/test.sh",
        "scripts/image.sh",
        "e2e/kind/run.sh",
        "deploy/images/start-ovn-central.sh",
        "deploy/images/start-ovs-ovn.sh",
    ] {
        assert!(
            files.iter().any(|f| f == needed),
            "{needed} is not among the scripts: {files:?}"
        );
    }
    files
}

#[test]
fn every_script_parses() {
    let mut failures = Vec::new();
    for script in scripts() {
        let out = Command::new("bash")
            .args(["-n", &script])
            .current_dir(repo_root())
            .output()
            .unwrap_or_else(|e| panic!("running bash -n: {e}"));
        if !out.status.success() {
            failures.push(format!(
                "{script}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "bash -n:\n{}", failures.join("\n"));
}

#[test]
fn every_script_is_shellcheck_clean() {
    let files = scripts();
    let out = Command::new("shellcheck")
        .args(&files)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("running shellcheck (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "shellcheck {}:\n{}{}",
        files.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
