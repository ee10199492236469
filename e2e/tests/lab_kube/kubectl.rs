//! `kubectl` against the lab's API server, as a user would run it.

use std::path::Path;

use anyhow::Context;

/// Runs `kubectl --kubeconfig K ARGS...` and returns its stdout, or an error with its stderr.
pub async fn kubectl(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running kubectl {}", args.join(" ")))?;
    anyhow::ensure!(
        out.status.success(),
        "kubectl {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
