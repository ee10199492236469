//! Running the helper commands the lab is built with (`ip`, `ovs-vsctl`, `ovsdb-tool`, ...),
//! turning a non-zero exit into an error that names what it was for and what the tool said.
//! Construction commands stop once the lab is cancelled; teardown commands always run.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use super::cancel;
use super::error::LabError;

/// Runs `program args...` to completion and returns its stdout; `what` says what it was for.
/// Refused once construction is cancelled.
pub fn run<I, S>(what: &str, program: &str, args: I) -> Result<String, LabError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command.args(args);
    run_command(what, &mut command)
}

/// Runs a prepared command to completion and returns its stdout; refused once construction is
/// cancelled (and a cancel waits for it to finish).
pub fn run_command(what: &str, command: &mut Command) -> Result<String, LabError> {
    cancel::unless_cancelled(what, || run_command_always(what, command))
}

/// Like [`run`], but also after a cancel: for teardown and read-only queries.
pub fn run_always<I, S>(what: &str, program: &str, args: I) -> Result<String, LabError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command.args(args);
    run_command_always(what, &mut command)
}

/// Like [`run_command`], but also after a cancel.
pub fn run_command_always(what: &str, command: &mut Command) -> Result<String, LabError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            what: what.to_string(),
            program: command.get_program().to_string_lossy().into_owned(),
            source,
        })?;
    if !output.status.success() {
        return Err(LabError::Command {
            what: what.to_string(),
            command: describe(command),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A readable one-line rendering of a command for error messages.
pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
