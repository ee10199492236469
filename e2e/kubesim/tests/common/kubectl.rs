//! The machine's kubectl (`/usr/bin/kubectl`, `make setup` installs it) against a test
//! server through a temporary kubeconfig and cache directory.

use std::path::{Path, PathBuf};
use std::process::Output;

/// kubectl pointed at one server, with its own temporary HOME, kubeconfig and cache.
pub struct Kubectl {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// A kubeconfig for the plain-HTTP server at `server_url`.
    pub fn new(server_url: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: {server_url}\ncontexts:\n- name: lab\n  context:\n    cluster: lab\n    user: lab\ncurrent-context: lab\nusers:\n- name: lab\n  user: {{}}\n"
        );
        std::fs::write(&kubeconfig, text).expect("kubeconfig written");
        Kubectl { dir, kubeconfig }
    }

    /// The kubectl command line with this configuration.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .kill_on_drop(true);
        cmd
    }

    /// Runs kubectl and returns whatever it printed.
    pub async fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().await.expect("kubectl runs")
    }

    /// Runs kubectl and insists on success; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\nstdout: {stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Writes a manifest file in the temporary directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("manifest written");
        path
    }
}

/// A temporary path as the `&str` kubectl takes.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}
