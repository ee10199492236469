//! Turning the runtime's environment and stdin into a validated [`CniRequest`] (pure: no
//! I/O, so every input class is unit- and property-tested). Each failure carries the exact
//! CNI error code the spec assigns to it.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::client::AgentEndpoint;
pub use super::env::CniEnv;
use super::env::{InvocationEnv, is_spec_identifier};
use super::protocol::{CniCommand, CniError, CniRequest, DEFAULT_SOCKET_PATH, codes};
use super::version::{self, CURRENT_VERSION};

/// Env var that overrides the agent socket; it wins over the config's `"socket"` key so a
/// test or a debugging operator can redirect one invocation without editing the config.
pub const SOCKET_ENV: &str = "ROVN_CNI_SOCKET";

/// ADD waits for the agent, which waits for the pod's address and for ovn-controller to
/// report `ovn-installed`; that can take a while on a busy node.
pub const DEFAULT_ADD_TIMEOUT: Duration = Duration::from_secs(120);

/// Every other command only touches local state and should finish quickly.
pub const DEFAULT_OTHER_TIMEOUT: Duration = Duration::from_secs(30);

/// Ceiling on `"timeoutSeconds"`, so a typo cannot park a runtime thread for days.
pub const MAX_TIMEOUT_SECONDS: u64 = 3600;

/// A refused invocation: the error plus the `cniVersion` to print it with (the config's
/// own when it was readable and supported, else [`CURRENT_VERSION`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct RequestError {
    /// Version for the printed error object.
    pub cni_version: String,
    /// What went wrong.
    pub error: CniError,
}

impl RequestError {
    fn new(cni_version: &str, error: CniError) -> Self {
        RequestError {
            cni_version: cni_version.to_string(),
            error,
        }
    }
}

/// A request ready to send, with where and how long to send it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRequest {
    /// What the agent receives.
    pub request: CniRequest,
    /// Socket path and deadline.
    pub endpoint: AgentEndpoint,
    /// The config's `"logFile"`, where diagnostics are appended besides stderr.
    pub log_file: Option<PathBuf>,
}

/// Reads `CNI_COMMAND`. Done before stdin is touched, because VERSION must answer even
/// when the runtime gives no stdin at all.
pub fn parse_command(env: &CniEnv) -> Result<CniCommand, RequestError> {
    let fail = |error| RequestError::new(CURRENT_VERSION, error);
    let raw = env
        .get_non_empty("CNI_COMMAND")
        .map_err(fail)?
        .ok_or_else(|| {
            fail(CniError::new(
                codes::INVALID_ENVIRONMENT,
                "CNI_COMMAND is not set",
            ))
        })?;
    CniCommand::from_env_value(raw).ok_or_else(|| {
        fail(
            CniError::new(
                codes::INVALID_ENVIRONMENT,
                format!("unknown CNI_COMMAND {raw:?}"),
            )
            .with_details("expected one of ADD, DEL, CHECK, STATUS, GC, VERSION"),
        )
    })
}

/// Validates env + stdin for a forwarded command (anything but VERSION) and builds the
/// request. Never panics, whatever the bytes.
pub fn build_request(
    command: CniCommand,
    env: &CniEnv,
    stdin: &[u8],
) -> Result<PreparedRequest, RequestError> {
    let config = decode_config(stdin).map_err(|error| RequestError::new(CURRENT_VERSION, error))?;
    let cni_version = config_version(&config, command)
        .map_err(|error| RequestError::new(CURRENT_VERSION, error))?;
    let fail = |error| RequestError::new(&cni_version, error);

    validate_envelope(&config, command).map_err(fail)?;
    let settings = PluginSettings::from_config(&config, command).map_err(fail)?;
    let identity = InvocationEnv::from_env(env, command).map_err(fail)?;
    let socket_path = match env.get_non_empty(SOCKET_ENV).map_err(fail)? {
        Some(path) => absolute_path(path, SOCKET_ENV, codes::INVALID_ENVIRONMENT).map_err(fail)?,
        None => settings.socket_path,
    };

    let request = CniRequest {
        command,
        container_id: identity.container_id,
        netns: identity.netns,
        ifname: identity.ifname,
        args: identity.args,
        path: identity.path,
        cni_version: cni_version.clone(),
        config: Value::Object(config),
    };
    Ok(PreparedRequest {
        request,
        endpoint: AgentEndpoint {
            socket_path,
            timeout: settings.timeout,
        },
        log_file: settings.log_file,
    })
}

fn decode_config(stdin: &[u8]) -> Result<Map<String, Value>, CniError> {
    if stdin.iter().all(u8::is_ascii_whitespace) {
        return Err(CniError::new(
            codes::DECODE_FAILURE,
            "no network configuration on stdin",
        ));
    }
    match serde_json::from_slice::<Value>(stdin) {
        Ok(Value::Object(config)) => Ok(config),
        Ok(other) => Err(CniError::new(
            codes::DECODE_FAILURE,
            format!(
                "network configuration must be a JSON object, got {}",
                json_kind(&other)
            ),
        )),
        Err(e) => Err(CniError::new(
            codes::DECODE_FAILURE,
            "network configuration is not valid JSON",
        )
        .with_details(e.to_string())),
    }
}

fn config_version(config: &Map<String, Value>, command: CniCommand) -> Result<String, CniError> {
    let version = match config.get("cniVersion") {
        Some(Value::String(version)) => version,
        Some(other) => {
            return Err(invalid_config(format!(
                "cniVersion must be a string, got {}",
                json_kind(other)
            )));
        }
        None => return Err(invalid_config("network configuration has no cniVersion")),
    };
    if !version::is_supported(version) {
        return Err(CniError::new(
            codes::INCOMPATIBLE_VERSION,
            format!("unsupported cniVersion {version:?}"),
        )
        .with_details(format!(
            "supported: {}",
            version::SUPPORTED_VERSIONS.join(", ")
        )));
    }
    let minimum = match command {
        CniCommand::Check => Some(((0, 4, 0), "0.4.0")),
        CniCommand::Status | CniCommand::Gc => Some(((1, 1, 0), "1.1.0")),
        _ => None,
    };
    if let Some((minimum, spelled)) = minimum
        && !version::at_least(version, minimum)
    {
        return Err(CniError::new(
            codes::INCOMPATIBLE_VERSION,
            format!("{command} needs cniVersion {spelled} or newer, config has {version}"),
        ));
    }
    Ok(version.clone())
}

fn validate_envelope(config: &Map<String, Value>, command: CniCommand) -> Result<(), CniError> {
    let name = required_string(config, "name")?;
    if !is_valid_network_name(name) {
        return Err(invalid_config(format!(
            "network name {name:?} must start with a letter or digit and hold only letters, digits, '_', '.', '-'"
        )));
    }
    required_string(config, "type")?;
    for key in ["prevResult", "runtimeConfig", "args"] {
        if let Some(value) = config.get(key)
            && !value.is_object()
        {
            return Err(invalid_config(format!(
                "{key} must be an object, got {}",
                json_kind(value)
            )));
        }
    }
    if command == CniCommand::Check && !config.contains_key("prevResult") {
        return Err(invalid_config(
            "CHECK needs prevResult, the result of the earlier ADD",
        ));
    }
    if command == CniCommand::Gc {
        validate_valid_attachments(config)?;
    }
    Ok(())
}

fn validate_valid_attachments(config: &Map<String, Value>) -> Result<(), CniError> {
    const KEY: &str = "cni.dev/valid-attachments";
    let Some(value) = config.get(KEY) else {
        return Ok(());
    };
    let Value::Array(attachments) = value else {
        return Err(invalid_config(format!(
            "{KEY} must be an array, got {}",
            json_kind(value)
        )));
    };
    for (index, attachment) in attachments.iter().enumerate() {
        let well_formed = attachment.as_object().is_some_and(|fields| {
            fields.get("containerID").is_some_and(Value::is_string)
                && fields.get("ifname").is_some_and(Value::is_string)
        });
        if !well_formed {
            return Err(invalid_config(format!(
                "{KEY}[{index}] must be an object with string containerID and ifname"
            )));
        }
    }
    Ok(())
}

/// rovn's own keys in the network config.
struct PluginSettings {
    socket_path: PathBuf,
    timeout: Duration,
    log_file: Option<PathBuf>,
}

impl PluginSettings {
    fn from_config(config: &Map<String, Value>, command: CniCommand) -> Result<Self, CniError> {
        let socket_path = match optional_string(config, "socket")? {
            Some(path) => absolute_path(path, "socket", codes::INVALID_NETWORK_CONFIG)?,
            None => PathBuf::from(DEFAULT_SOCKET_PATH),
        };
        let log_file = optional_string(config, "logFile")?
            .map(|path| absolute_path(path, "logFile", codes::INVALID_NETWORK_CONFIG))
            .transpose()?;
        let timeout = match config.get("timeoutSeconds") {
            None => match command {
                CniCommand::Add => DEFAULT_ADD_TIMEOUT,
                _ => DEFAULT_OTHER_TIMEOUT,
            },
            Some(value) => match value.as_u64() {
                Some(seconds @ 1..=MAX_TIMEOUT_SECONDS) => Duration::from_secs(seconds),
                _ => {
                    return Err(invalid_config(format!(
                        "timeoutSeconds must be an integer from 1 to {MAX_TIMEOUT_SECONDS}, got {value}"
                    )));
                }
            },
        };
        Ok(PluginSettings {
            socket_path,
            timeout,
            log_file,
        })
    }
}

fn is_valid_network_name(name: &str) -> bool {
    is_spec_identifier(name)
}

fn absolute_path(value: &str, what: &str, code: u32) -> Result<PathBuf, CniError> {
    if value.starts_with('/') && !value.contains('\0') {
        Ok(PathBuf::from(value))
    } else {
        Err(CniError::new(
            code,
            format!("{what} {value:?} must be an absolute path"),
        ))
    }
}

fn required_string<'a>(config: &'a Map<String, Value>, key: &str) -> Result<&'a str, CniError> {
    match optional_string(config, key)? {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(invalid_config(format!(
            "network configuration has no {key}"
        ))),
    }
}

fn optional_string<'a>(
    config: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, CniError> {
    match config.get(key) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(other) => Err(invalid_config(format!(
            "{key} must be a string, got {}",
            json_kind(other)
        ))),
    }
}

fn invalid_config(msg: impl Into<String>) -> CniError {
    CniError::new(codes::INVALID_NETWORK_CONFIG, msg)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
