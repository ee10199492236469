//! Running OVN's own programs (`ovn-nbctl`, `ovn-sbctl`, `ovn-trace`, `ovsdb-tool`): the
//! plugin adds the database arguments and reads their output, it never re-implements them.

use std::process::{ExitStatus, Stdio};

/// A program could not be run.
#[derive(Debug, thiserror::Error)]
#[error("running {program}: {source}{hint}")]
pub struct ToolError {
    /// The program.
    pub program: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
    /// What to install when it is missing.
    pub hint: &'static str,
}

/// What a finished program printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// Whether it exited 0.
    pub success: bool,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

fn hint(program: &str, e: &std::io::Error) -> &'static str {
    if e.kind() != std::io::ErrorKind::NotFound {
        return "";
    }
    match program {
        "ovsdb-tool" => " (install openvswitch-common)",
        _ => " (install OVN's client tools, e.g. the ovn-common package, and put them in PATH)",
    }
}

/// Runs `program args…` and captures its output.
pub async fn capture(program: &str, args: &[String]) -> Result<Captured, ToolError> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| ToolError {
            program: program.to_string(),
            hint: hint(program, &source),
            source,
        })?;
    Ok(Captured {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs `program args…` with the plugin's stdin, stdout and stderr, and returns how it exited.
pub async fn passthrough(program: &str, args: &[String]) -> Result<ExitStatus, ToolError> {
    tokio::process::Command::new(program)
        .args(args)
        .status()
        .await
        .map_err(|source| ToolError {
            program: program.to_string(),
            hint: hint(program, &source),
            source,
        })
}
