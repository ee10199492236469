//! The runtime's per-invocation environment (`CNI_*` variables), captured once and
//! validated per command with the spec's rules and code 4 for every violation.

use std::collections::BTreeMap;
use std::ffi::OsString;

use super::args::parse_cni_args;
use super::protocol::{CniCommand, CniError, codes, k8s_args};

/// Longest Linux interface name (IFNAMSIZ − 1).
const MAX_IFNAME_LEN: usize = 15;

/// The process environment as `rovn-cni` sees it, captured once so validation is pure.
#[derive(Debug, Clone, Default)]
pub struct CniEnv {
    vars: BTreeMap<String, OsString>,
}

impl CniEnv {
    /// Captures the real environment. Variables whose *names* are not UTF-8 cannot be any
    /// of the ones CNI defines and are dropped.
    pub fn from_process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(name, value)| name.into_string().ok().map(|name| (name, value)))
            .collect();
        CniEnv { vars }
    }

    /// An environment made of the given pairs, for tests and embedding.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<OsString>,
    {
        CniEnv {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The variable as UTF-8; a present but non-UTF-8 value is an invalid environment.
    fn get(&self, name: &str) -> Result<Option<&str>, CniError> {
        match self.vars.get(name) {
            None => Ok(None),
            Some(value) => value.to_str().map(Some).ok_or_else(|| {
                CniError::new(
                    codes::INVALID_ENVIRONMENT,
                    format!("{name} is not valid UTF-8"),
                )
            }),
        }
    }

    /// The variable, treating an empty value as absent (runtimes set unused ones to "").
    pub(super) fn get_non_empty(&self, name: &str) -> Result<Option<&str>, CniError> {
        Ok(self.get(name)?.filter(|value| !value.is_empty()))
    }

    fn require(&self, name: &str, command: CniCommand) -> Result<&str, CniError> {
        self.get_non_empty(name)?.ok_or_else(|| {
            CniError::new(
                codes::INVALID_ENVIRONMENT,
                format!("{name} is required for {command}"),
            )
        })
    }
}

/// The per-invocation `CNI_*` variables, validated for the command at hand.
pub(super) struct InvocationEnv {
    pub(super) container_id: Option<String>,
    pub(super) netns: Option<String>,
    pub(super) ifname: Option<String>,
    pub(super) args: BTreeMap<String, String>,
    pub(super) path: Vec<String>,
}

impl InvocationEnv {
    pub(super) fn from_env(env: &CniEnv, command: CniCommand) -> Result<Self, CniError> {
        let path = env
            .get("CNI_PATH")?
            .map(|raw| {
                raw.split(':')
                    .filter(|dir| !dir.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let args = match env.get("CNI_ARGS")? {
            Some(raw) => parse_cni_args(raw)
                .map_err(|e| CniError::new(codes::INVALID_ENVIRONMENT, e.to_string()))?,
            None => BTreeMap::new(),
        };
        if matches!(
            command,
            CniCommand::Status | CniCommand::Gc | CniCommand::Version
        ) {
            return Ok(InvocationEnv {
                container_id: None,
                netns: None,
                ifname: None,
                args,
                path,
            });
        }

        let container_id = env.require("CNI_CONTAINERID", command)?;
        if !is_valid_container_id(container_id) {
            return Err(CniError::new(
                codes::INVALID_ENVIRONMENT,
                format!(
                    "CNI_CONTAINERID {container_id:?} must start with a letter or digit and hold only letters, digits, '_', '.', '-'"
                ),
            ));
        }
        let ifname = env.require("CNI_IFNAME", command)?;
        if !is_valid_ifname(ifname) {
            return Err(CniError::new(
                codes::INVALID_ENVIRONMENT,
                format!(
                    "CNI_IFNAME {ifname:?} is not a valid Linux interface name (1-15 bytes, no '/', ':' or whitespace, not '.' or '..')"
                ),
            ));
        }
        if matches!(command, CniCommand::Add | CniCommand::Check) {
            for key in [k8s_args::POD_NAMESPACE, k8s_args::POD_NAME] {
                if args.get(key).is_none_or(String::is_empty) {
                    return Err(CniError::new(
                        codes::INVALID_ENVIRONMENT,
                        format!("CNI_ARGS has no {key}; rovn attaches only Kubernetes pods"),
                    ));
                }
            }
        }
        let netns = match command {
            CniCommand::Del => env.get_non_empty("CNI_NETNS")?,
            _ => Some(env.require("CNI_NETNS", command)?),
        };
        if let Some(netns) = netns
            && !netns.starts_with('/')
        {
            return Err(CniError::new(
                codes::INVALID_ENVIRONMENT,
                format!("CNI_NETNS {netns:?} must be an absolute path"),
            ));
        }
        Ok(InvocationEnv {
            container_id: Some(container_id.to_string()),
            netns: netns.map(str::to_string),
            ifname: Some(ifname.to_string()),
            args,
            path,
        })
    }
}

/// The spec's rule for network names and container IDs alike.
pub(super) fn is_spec_identifier(value: &str) -> bool {
    let mut chars = value.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn is_valid_container_id(id: &str) -> bool {
    is_spec_identifier(id)
}

fn is_valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}
