//! The Kubernetes channel protocol over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`),
//! as kubectl and kube-rs speak it to `pods/exec`: every binary message starts with a channel
//! byte (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize); in v5 the message `[255, N]` closes
//! channel N (the client's stdin EOF). The error channel carries one `metav1.Status` JSON at
//! the end, from which clients take the command's exit code. Pure.

use serde_json::{Value, json};

/// The subprotocols served, in the server's preference order.
pub const PROTOCOLS: [&str; 2] = [V5, V4];
/// Channels plus the close message.
pub const V5: &str = "v5.channel.k8s.io";
/// Channels with a JSON Status on the error channel.
pub const V4: &str = "v4.channel.k8s.io";

/// Standard input (client → server).
pub const STDIN: u8 = 0;
/// Standard output.
pub const STDOUT: u8 = 1;
/// Standard error.
pub const STDERR: u8 = 2;
/// The final Status.
pub const ERROR: u8 = 3;
/// Terminal size changes (client → server; ignored: no terminal is allocated).
pub const RESIZE: u8 = 4;
/// v5: `[CLOSE, channel]` ends that channel.
pub const CLOSE: u8 = 255;

/// The subprotocol to answer for a `Sec-WebSocket-Protocol` request header (a comma-separated
/// list; several headers joined with commas): the client's first one served here, as the real
/// server picks. `None`: nothing in common.
pub fn negotiate(offered: &str) -> Option<&'static str> {
    offered
        .split(',')
        .map(str::trim)
        .find_map(|p| PROTOCOLS.iter().copied().find(|s| *s == p))
}

/// A message from the client, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// Bytes for the command's stdin.
    Stdin(&'a [u8]),
    /// The client closed a channel (stdin: EOF).
    Close(u8),
    /// A terminal size, or data on a channel a client does not write; ignored.
    Ignored,
}

/// Reads one binary message from the client. `stream_close`: the protocol has `[255, N]`.
/// An empty message, or a close message of the wrong length, is ignored as the real server
/// does.
pub fn decode(message: &[u8], stream_close: bool) -> Incoming<'_> {
    match message {
        [CLOSE, channel] if stream_close => Incoming::Close(*channel),
        [STDIN, data @ ..] => Incoming::Stdin(data),
        _ => Incoming::Ignored,
    }
}

/// One message on `channel` carrying `data`.
pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(channel);
    out.extend_from_slice(data);
    out
}

/// How a command ended, as the error channel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit status 0.
    Success,
    /// Exited non-zero (or killed by a signal: 128 + signal, as a shell reports it).
    ExitCode(i32),
    /// Could not be run at all; the message says why.
    Failed(String),
}

/// The `metav1.Status` the error channel carries for `outcome`, worded as the real kubelet
/// words it (kubectl exits with the code in `details.causes`).
pub fn status(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Success => json!({"metadata": {}, "status": "Success"}),
        Outcome::ExitCode(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Failed(message) => json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
            "code": 500,
        }),
    }
}

/// The error channel's message for `outcome`.
pub fn status_frame(outcome: &Outcome) -> Vec<u8> {
    frame(ERROR, status(outcome).to_string().as_bytes())
}

/// What `/exec` was asked to run (its query string).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecRequest {
    /// Program and arguments (`command=` repeated).
    pub command: Vec<String>,
    /// Whether the client sends stdin.
    pub stdin: bool,
    /// Whether the client wants stdout.
    pub stdout: bool,
    /// Whether the client wants stderr.
    pub stderr: bool,
    /// Whether the client asked for a terminal (none is allocated: stderr goes to stdout).
    pub tty: bool,
}

/// `1`/`true` as the real server's query decoding accepts them.
pub fn truthy(value: &str) -> bool {
    matches!(value, "1" | "true" | "True" | "TRUE" | "t" | "T")
}

impl ExecRequest {
    /// Reads the query string. Errors as the real server words them: no command, or no
    /// stream at all.
    pub fn parse(query: &str) -> Result<ExecRequest, String> {
        let mut request = ExecRequest::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "command" => request.command.push(value.into_owned()),
                "input" | "stdin" => request.stdin = truthy(&value),
                "output" | "stdout" => request.stdout = truthy(&value),
                "error" | "stderr" => request.stderr = truthy(&value),
                "tty" => request.tty = truthy(&value),
                _ => {}
            }
        }
        if request.command.is_empty() {
            return Err("you must specify at least 1 command".into());
        }
        if !(request.stdin || request.stdout || request.stderr) {
            return Err("you must specify at least one of stdin, stdout, stderr".into());
        }
        if request.tty && request.stderr {
            // kubectl never asks for both; the real server refuses the combination.
            return Err("stdout and stderr are combined with tty: do not request stderr".into());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_the_clients_first_served_protocol() {
        assert_eq!(negotiate("v5.channel.k8s.io, v4.channel.k8s.io"), Some(V5));
        assert_eq!(negotiate("v4.channel.k8s.io,v5.channel.k8s.io"), Some(V4));
        assert_eq!(
            negotiate("base64.channel.k8s.io, v4.channel.k8s.io"),
            Some(V4)
        );
        assert_eq!(negotiate("channel.k8s.io"), None);
        assert_eq!(negotiate(""), None);
    }

    #[test]
    fn decodes_stdin_close_and_the_rest() {
        assert_eq!(decode(&[0, b'h', b'i'], true), Incoming::Stdin(b"hi"));
        assert_eq!(decode(&[0], true), Incoming::Stdin(b""));
        assert_eq!(decode(&[255, 0], true), Incoming::Close(0));
        // v4 has no close message: [255, 0] is nothing it knows.
        assert_eq!(decode(&[255, 0], false), Incoming::Ignored);
        assert_eq!(decode(&[255, 0, 1], true), Incoming::Ignored);
        assert_eq!(decode(&[4, b'{', b'}'], true), Incoming::Ignored);
        assert_eq!(decode(&[], true), Incoming::Ignored);
    }

    #[test]
    fn frames_start_with_their_channel() {
        assert_eq!(frame(STDOUT, b"ok\n"), b"\x01ok\n");
        assert_eq!(frame(STDERR, b""), vec![2]);
        let status = status_frame(&Outcome::Success);
        assert_eq!(status[0], ERROR);
        let parsed: Value = serde_json::from_slice(&status[1..]).unwrap_or_default();
        assert_eq!(parsed, json!({"metadata": {}, "status": "Success"}));
    }

    #[test]
    fn exit_codes_are_where_clients_read_them() {
        let s = status(&Outcome::ExitCode(3));
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        let failed = status(&Outcome::Failed("no such program".into()));
        assert_eq!(failed["message"], "no such program");
        assert_ne!(failed["reason"], "NonZeroExitCode");
    }

    #[test]
    fn exec_queries_name_a_command_and_streams() {
        let r = ExecRequest::parse(
            "command=sh&command=-c&command=echo%20%24A&stdin=1&stdout=true&stderr=1&tty=0",
        );
        assert_eq!(
            r,
            Ok(ExecRequest {
                command: vec!["sh".into(), "-c".into(), "echo $A".into()],
                stdin: true,
                stdout: true,
                stderr: true,
                tty: false,
            })
        );
        assert!(ExecRequest::parse("stdout=1").is_err());
        assert!(ExecRequest::parse("command=true").is_err());
        assert!(ExecRequest::parse("command=true&stdout=1&stderr=1&tty=1").is_err());
        assert!(ExecRequest::parse("command=true&output=1").is_ok_and(|r| r.stdout));
    }
}
