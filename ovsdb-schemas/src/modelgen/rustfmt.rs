//! Lays out generated code with the toolchain's rustfmt, as `cargo fmt` would.

use std::io::Write;
use std::process::{Command, Stdio};

use super::GenError;

/// The edition the package is formatted with; must match its `Cargo.toml`.
const EDITION: &str = "2024";

/// Formats `code` (the module for database `what`) through `rustfmt` on stdin.
pub fn format(code: &str, what: &str) -> Result<String, GenError> {
    let error = |reason: String| GenError::Rustfmt {
        what: what.to_string(),
        reason,
    };
    let rustfmt = std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".to_string());
    let mut child = Command::new(&rustfmt)
        .args(["--edition", EDITION, "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| error(format!("cannot run {rustfmt}: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| error("no stdin pipe".to_string()))?;
    let input = code.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|e| error(format!("waiting for {rustfmt}: {e}")))?;
    match writer.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(error(format!("writing to {rustfmt}: {e}"))),
        Err(_) => return Err(error("the writer thread panicked".to_string())),
    }
    if !output.status.success() {
        return Err(error(format!(
            "{rustfmt} exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    String::from_utf8(output.stdout).map_err(|e| error(format!("output is not UTF-8: {e}")))
}
