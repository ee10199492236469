//! The wire protocol between `rovn-cni` and the node agent `rovn-node` on its unix socket
//! (default [`DEFAULT_SOCKET_PATH`]).
//!
//! # Framing
//! One request per connection. Each message is one compact JSON document followed by a
//! single `\n` (newline-delimited JSON; compact JSON never contains a raw newline). The
//! client writes one [`CniRequest`] line and then waits, keeping the connection open, for
//! exactly one [`CniResponse`] line; then both sides close. A client that closes its end
//! early has given up (timeout or killed runtime), which the agent may treat as a cancel.
//! A frame longer than [`MAX_FRAME_BYTES`] is refused by both sides. Blocking peers use
//! [`read_message`]/[`write_message`]; an async server (the agent, on tokio) reads a line
//! with its own `read_until(b'\n')` under the same limit and uses [`decode_frame`] and
//! [`encode_frame`], so both sides share one definition of the bytes.
//!
//! # Example
//! ```text
//! → {"command":"ADD","containerId":"abc","netns":"/run/netns/x","ifname":"eth0",
//!    "args":{"K8S_POD_NAME":"web","K8S_POD_NAMESPACE":"default"},"path":["/opt/cni/bin"],
//!    "cniVersion":"1.1.0","config":{"cniVersion":"1.1.0","name":"rovn","type":"rovn-cni"}}
//! ← {"ok":{"cniVersion":"1.1.0","interfaces":[...],"ips":[...]}}
//! ← {"error":{"code":11,"msg":"pod default/web has no allocated address yet"}}
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Where the agent listens unless the network config or `ROVN_CNI_SOCKET` says otherwise;
/// `/run` is a tmpfs, so a stale socket never survives a reboot.
pub const DEFAULT_SOCKET_PATH: &str = "/run/rovn/cni.sock";

/// Upper bound on one frame, so a confused peer cannot make the other side buffer without
/// limit; network configs with a large `prevResult` stay far below it.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Well-known CNI error codes (CNI 1.1 "Well-known Error Codes") plus rovn's own (100+),
/// named so that call sites say which failure class they report.
pub mod codes {
    /// The network config's `cniVersion` is not one this plugin speaks.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// A config field the plugin does not support.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// The container does not exist or is unknown to the plugin.
    pub const CONTAINER_UNKNOWN: u32 = 3;
    /// A required `CNI_*` environment variable is missing or malformed.
    pub const INVALID_ENVIRONMENT: u32 = 4;
    /// Reading stdin, the socket or a file failed.
    pub const IO_FAILURE: u32 = 5;
    /// The input could not be decoded (e.g. stdin is not JSON).
    pub const DECODE_FAILURE: u32 = 6;
    /// The network config decoded but is not valid for this plugin.
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    /// A transient condition (e.g. the agent is not up yet); the runtime should retry.
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin cannot service ADD requests.
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
    /// STATUS: not available, and existing containers may have limited connectivity.
    pub const PLUGIN_NOT_AVAILABLE_LIMITED_CONNECTIVITY: u32 = 51;
    /// rovn-specific: the agent answered with something that is not a valid response.
    pub const AGENT_PROTOCOL_VIOLATION: u32 = 100;
}

/// The CNI operation requested through `CNI_COMMAND`. `VERSION` is answered by `rovn-cni`
/// itself and never forwarded; it is here so the one enum covers the whole spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CniCommand {
    /// Attach the container to the network.
    Add,
    /// Detach; must succeed when the attachment is already gone.
    Del,
    /// Verify an earlier ADD still holds.
    Check,
    /// Report whether the plugin can service ADD requests (CNI 1.1).
    Status,
    /// Remove attachments not listed in `cni.dev/valid-attachments` (CNI 1.1).
    Gc,
    /// Report the supported spec versions.
    Version,
}

impl CniCommand {
    /// The spelling used in `CNI_COMMAND`, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
            CniCommand::Check => "CHECK",
            CniCommand::Status => "STATUS",
            CniCommand::Gc => "GC",
            CniCommand::Version => "VERSION",
        }
    }

    /// Parses `CNI_COMMAND` exactly as the spec spells it (upper case).
    pub fn from_env_value(value: &str) -> Option<CniCommand> {
        match value {
            "ADD" => Some(CniCommand::Add),
            "DEL" => Some(CniCommand::Del),
            "CHECK" => Some(CniCommand::Check),
            "STATUS" => Some(CniCommand::Status),
            "GC" => Some(CniCommand::Gc),
            "VERSION" => Some(CniCommand::Version),
            _ => None,
        }
    }
}

impl std::fmt::Display for CniCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One validated CNI invocation as the agent receives it: the agent never has to look at
/// the runtime's environment or re-validate the config's envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniRequest {
    /// What to do.
    pub command: CniCommand,
    /// `CNI_CONTAINERID`; absent for STATUS and GC, which concern no single container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// `CNI_NETNS`; absent for STATUS, GC, and DEL when the runtime no longer has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// `CNI_IFNAME`, the interface name to create inside the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    /// `CNI_ARGS` parsed into pairs, e.g. `K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_UID`:
    /// how the agent learns which pod this sandbox belongs to.
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// `CNI_PATH` split on `:`, for agents that delegate to other plugins.
    #[serde(default)]
    pub path: Vec<String>,
    /// The config's validated `cniVersion`; the agent's ADD result must carry the same one.
    pub cni_version: String,
    /// The network config exactly as read from stdin, including `prevResult`,
    /// `runtimeConfig` and, for GC, `cni.dev/valid-attachments`.
    pub config: serde_json::Value,
}

/// The `CNI_ARGS` keys through which kubelet-driven runtimes name the pod.
pub mod k8s_args {
    /// The pod's namespace.
    pub const POD_NAMESPACE: &str = "K8S_POD_NAMESPACE";
    /// The pod's name.
    pub const POD_NAME: &str = "K8S_POD_NAME";
    /// The pod's UID, which tells a re-created pod of the same name from the old one.
    pub const POD_UID: &str = "K8S_POD_UID";
    /// The sandbox (infra) container's ID.
    pub const POD_INFRA_CONTAINER_ID: &str = "K8S_POD_INFRA_CONTAINER_ID";
}

impl CniRequest {
    /// One `CNI_ARGS` value, e.g. `request.arg(k8s_args::POD_UID)`.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args.get(key).map(String::as_str)
    }

    /// `(namespace, name)` of the pod, which is how the agent finds its address and names
    /// its port (`<pod>.<namespace>`); `rovn-cni` guarantees both for ADD and CHECK.
    pub fn pod(&self) -> Option<(&str, &str)> {
        Some((
            self.arg(k8s_args::POD_NAMESPACE)?,
            self.arg(k8s_args::POD_NAME)?,
        ))
    }

    /// `namespace/name` of the pod, the form logs name pods in; empty when `CNI_ARGS` lacks
    /// them (a GC or STATUS request).
    pub fn pod_key(&self) -> String {
        self.pod()
            .map(|(namespace, name)| format!("{namespace}/{name}"))
            .unwrap_or_default()
    }
}

/// The agent's answer to one [`CniRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CniResponse {
    /// Success. For ADD, the CNI result object `rovn-cni` prints verbatim (so chained
    /// plugins get it as `prevResult`); for other commands it is ignored (use `null`).
    Ok(serde_json::Value),
    /// Failure, printed by `rovn-cni` as the CNI error object with the config's `cniVersion`.
    Error(CniError),
}

/// A CNI error as the spec defines it, minus `cniVersion`, which `rovn-cni` fills in from
/// the request so the agent cannot get it wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("CNI error {code}: {msg}")]
pub struct CniError {
    /// Well-known code (see [`codes`]) or a plugin-specific one (100+).
    pub code: u32,
    /// Short message for humans and runtime events.
    pub msg: String,
    /// Longer explanation, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl CniError {
    /// An error with no details.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: None,
        }
    }

    /// Adds the long explanation.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }
}

/// Why a frame could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The message could not be serialized (never expected for these types).
    #[error("cannot encode message: {0}")]
    Encode(#[source] serde_json::Error),
    /// The frame is not the expected JSON message.
    #[error("cannot decode message: {0}")]
    Decode(#[source] serde_json::Error),
    /// The peer sent more than [`MAX_FRAME_BYTES`] without a newline.
    #[error("frame exceeds {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The peer closed the connection before sending anything.
    #[error("connection closed before a message arrived")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a message ({received} bytes received)")]
    Truncated {
        /// How much of the frame arrived.
        received: usize,
    },
    /// The underlying read or write failed.
    #[error("{0}")]
    Io(#[source] std::io::Error),
}

/// Serializes one message as a complete frame (JSON + `\n`).
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, ProtocolError> {
    let mut frame = serde_json::to_vec(message).map_err(ProtocolError::Encode)?;
    frame.push(b'\n');
    Ok(frame)
}

/// Parses one frame's bytes (with or without its trailing newline) into a message.
pub fn decode_frame<T: DeserializeOwned>(frame: &[u8]) -> Result<T, ProtocolError> {
    let body = frame.strip_suffix(b"\n").unwrap_or(frame);
    serde_json::from_slice(body).map_err(ProtocolError::Decode)
}

/// Writes one message as a frame and flushes it.
pub fn write_message<W: Write, T: Serialize>(
    writer: &mut W,
    message: &T,
) -> Result<(), ProtocolError> {
    let frame = encode_frame(message)?;
    writer.write_all(&frame).map_err(ProtocolError::Io)?;
    writer.flush().map_err(ProtocolError::Io)
}

/// Reads the bytes of one frame, up to and including its newline, refusing frames larger
/// than [`MAX_FRAME_BYTES`].
pub fn read_frame<R: BufRead>(reader: &mut R) -> Result<Vec<u8>, ProtocolError> {
    let mut frame = Vec::new();
    let limit = MAX_FRAME_BYTES as u64 + 1;
    reader
        .by_ref()
        .take(limit)
        .read_until(b'\n', &mut frame)
        .map_err(ProtocolError::Io)?;
    if frame.last() == Some(&b'\n') {
        return Ok(frame);
    }
    if frame.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::TooLarge {
            limit: MAX_FRAME_BYTES,
        });
    }
    if frame.is_empty() {
        return Err(ProtocolError::Closed);
    }
    Err(ProtocolError::Truncated {
        received: frame.len(),
    })
}

/// Reads and decodes one message.
pub fn read_message<R: BufRead, T: DeserializeOwned>(reader: &mut R) -> Result<T, ProtocolError> {
    let frame = read_frame(reader)?;
    decode_frame(&frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample_request() -> CniRequest {
        CniRequest {
            command: CniCommand::Add,
            container_id: Some("abc".into()),
            netns: Some("/run/netns/x".into()),
            ifname: Some("eth0".into()),
            args: BTreeMap::from([("K8S_POD_NAME".to_string(), "web".to_string())]),
            path: vec!["/opt/cni/bin".into()],
            cni_version: "1.1.0".into(),
            config: json!({"cniVersion": "1.1.0", "name": "rovn", "type": "rovn-cni", "x": "a\nb"}),
        }
    }

    #[test]
    fn request_survives_a_frame_round_trip_as_one_line() {
        let request = sample_request();
        let frame = encode_frame(&request).unwrap();
        assert_eq!(frame.iter().filter(|b| **b == b'\n').count(), 1);
        let back: CniRequest = read_message(&mut frame.as_slice()).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn responses_use_lowercase_tags_and_omit_absent_details() {
        let ok = serde_json::to_value(CniResponse::Ok(json!({"cniVersion": "1.1.0"}))).unwrap();
        assert_eq!(ok, json!({"ok": {"cniVersion": "1.1.0"}}));
        let err = serde_json::to_value(CniResponse::Error(CniError::new(11, "later"))).unwrap();
        assert_eq!(err, json!({"error": {"code": 11, "msg": "later"}}));
    }

    #[test]
    fn command_spells_like_cni_command() {
        let all = [
            CniCommand::Add,
            CniCommand::Del,
            CniCommand::Check,
            CniCommand::Status,
            CniCommand::Gc,
            CniCommand::Version,
        ];
        for command in all {
            assert_eq!(CniCommand::from_env_value(command.as_str()), Some(command));
            assert_eq!(
                serde_json::to_value(command).unwrap(),
                json!(command.as_str())
            );
        }
        assert_eq!(CniCommand::from_env_value("add"), None);
    }

    #[test]
    fn read_frame_reports_closed_truncated_and_oversized_input() {
        assert!(matches!(
            read_frame(&mut &b""[..]),
            Err(ProtocolError::Closed)
        ));
        assert!(matches!(
            read_frame(&mut &b"{\"ok\""[..]),
            Err(ProtocolError::Truncated { received: 5 })
        ));
        let huge = vec![b'x'; MAX_FRAME_BYTES + 10];
        assert!(matches!(
            read_frame(&mut huge.as_slice()),
            Err(ProtocolError::TooLarge { .. })
        ));
    }

    #[test]
    fn second_frame_on_the_same_stream_is_left_unread() {
        let mut input = &b"{\"ok\":null}\n{\"ok\":1}\n"[..];
        let first: CniResponse = read_message(&mut input).unwrap();
        assert_eq!(first, CniResponse::Ok(serde_json::Value::Null));
        assert_eq!(input, b"{\"ok\":1}\n");
    }
}
