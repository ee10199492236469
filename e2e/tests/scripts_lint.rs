//! Every shell script of the repository (`git ls-files '*.sh'`, tracked or new) parses
//! (`bash -n`) and is clean under `shellcheck`, and so is the shell of every GitHub Actions
//! step, so what only runs elsewhere (the kind suite and its workflow on GitHub Actions, the
//! image's start scripts in pods) is checked here too.

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

/// The shell of every GitHub Actions step (`run:` blocks of `.github/workflows/*.yml`) is
/// shellcheck-clean, as the workflow runs it (`bash -e`), with `${{ … }}` expressions replaced
/// by a plain word: those steps run only on GitHub.
#[test]
fn every_workflow_step_is_shellcheck_clean() {
    let dir = repo_root().join(".github/workflows");
    let mut workflows: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    workflows.sort();
    assert!(!workflows.is_empty(), "no workflow in {}", dir.display());
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
    let mut steps = Vec::new();
    for workflow in &workflows {
        let text = std::fs::read_to_string(workflow)
            .unwrap_or_else(|e| panic!("reading {}: {e}", workflow.display()));
        let doc: serde_json::Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", workflow.display()));
        let jobs = doc["jobs"].as_object().cloned().unwrap_or_default();
        for (job, body) in jobs {
            for (i, step) in body["steps"].as_array().into_iter().flatten().enumerate() {
                let Some(run) = step["run"].as_str() else {
                    continue;
                };
                let name = format!(
                    "{}-{job}-{i}.sh",
                    workflow.file_stem().unwrap_or_default().to_string_lossy()
                );
                let path = scratch.path().join(&name);
                let script = format!(
                    "#!/usr/bin/env bash\nset -e\n{}\n",
                    without_expressions(run)
                );
                std::fs::write(&path, script)
                    .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
                steps.push(path);
            }
        }
    }
    assert!(!steps.is_empty(), "no run: step in {workflows:?}");
    let out = Command::new("shellcheck")
        .args(&steps)
        .output()
        .unwrap_or_else(|e| panic!("running shellcheck (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "shellcheck of the workflows' run: steps:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `text` with every `${{ … }}` replaced by a word shellcheck reads as plain text.
fn without_expressions(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        match rest[start..].find("}}") {
            Some(end) => {
                out.push_str("github-expression");
                rest = &rest[start + end + 2..];
            }
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}
