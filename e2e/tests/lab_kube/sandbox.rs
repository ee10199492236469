//! A pod's footprint on its node (its sandbox namespace and its host-local reservation), what
//! must be gone once the pod has left the API, and running programs inside a sandbox.

use std::path::PathBuf;

use anyhow::Context;
use rovn_e2e::lab::netns;

/// What a pod leaves behind until its kubelet tears it down; hostNetwork pods leave nothing.
#[derive(Debug, Default)]
pub struct Teardown {
    /// The sandbox network namespace.
    pub sandbox: Option<String>,
    /// host-local's record of the pod's address.
    pub reservation: Option<PathBuf>,
}

impl Teardown {
    /// Fails if `pod`, already gone from the API, still has a sandbox or an address: the
    /// kubelet must finish its teardown before it deletes the pod for good.
    pub fn check_done(&self, pod: &str) -> anyhow::Result<()> {
        if let Some(sandbox) = &self.sandbox {
            anyhow::ensure!(
                !netns::exists(sandbox),
                "pod {pod} left the API while its sandbox {sandbox} still exists"
            );
        }
        if let Some(file) = &self.reservation {
            anyhow::ensure!(
                !file.exists(),
                "pod {pod} left the API while host-local still holds {}",
                file.display()
            );
        }
        Ok(())
    }
}

/// Runs `program args...` inside a sandbox and returns its stdout.
pub async fn run_in(sandbox: &str, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::from(netns::exec_command(sandbox, program))
        .args(args)
        .output()
        .await
        .with_context(|| format!("running {program} in {sandbox}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{program} {} in {sandbox} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
