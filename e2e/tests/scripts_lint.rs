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

/// `e2e/kind/run.sh --dry-run` walks every step without docker or kind, and the overlay it
/// renders for the cluster (kind's overlay with the node and API server addresses patched in)
/// is one kustomize accepts and that carries those addresses.
#[test]
fn kind_run_dry_run_renders_its_overlay() {
    let out = Command::new("bash")
        .args(["e2e/kind/run.sh", "--dry-run"])
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("running e2e/kind/run.sh --dry-run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("kind: ok"),
        "run.sh --dry-run failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "docker build -f deploy/images/Dockerfile -t rovn:dev .",
        "kind create cluster",
        "kind load docker-image rovn:dev",
        "apply --server-side -k",
        "rollout status statefulset/ovn-central",
        "cargo test -p rovn-e2e --test kind_scenarios -- --ignored",
        "ROVN_OUTSIDE_ADDRESS=172.18.0.1",
        "e2e.test",
        "kind delete cluster",
    ] {
        assert!(
            stdout.contains(step),
            "run.sh --dry-run lacks {step:?}:\n{stdout}"
        );
    }
    // The scenario target run.sh names exists (it is ignored here: it needs the cluster).
    assert!(
        repo_root().join("e2e/tests/kind_scenarios.rs").is_file(),
        "run.sh runs e2e/tests/kind_scenarios.rs, which does not exist"
    );
    for patched in [
        "ovn-central-ips: \"172.18.0.2,172.18.0.3,172.18.0.4\"",
        "nb-remote: \"tcp:172.18.0.2:6641,tcp:172.18.0.3:6641,tcp:172.18.0.4:6641\"",
        "kube-apiserver-host: \"172.18.0.2\"",
    ] {
        assert!(
            stdout.contains(patched),
            "the rendered overlay lacks {patched}:\n{stdout}"
        );
    }
}
