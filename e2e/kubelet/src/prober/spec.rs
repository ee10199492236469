//! A container's `readinessProbe` turned into something that can be run, or into the reason it
//! cannot. Pure.
//!
//! The real API server defaults a probe (zero or absent numbers become 1 s timeout, 10 s period,
//! success threshold 1, failure threshold 3; `httpGet` gets path `/` and scheme `HTTP`) and
//! rejects malformed ones (no handler, more than one, negative numbers, ports outside
//! 1..=65535). The lab's API server may do neither, so both happen here, and a probe that would
//! have been rejected becomes a [`SpecError`] the pod is told about instead of a panic.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `timeoutSeconds` when absent or zero, as the API server defaults it.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 1;
/// `periodSeconds` when absent or zero.
pub const DEFAULT_PERIOD_SECONDS: u32 = 10;
/// `successThreshold` when absent or zero.
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 1;
/// `failureThreshold` when absent or zero.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// The shortest period a prober honours (the API's minimum), so a hand-made spec with a zero
/// period cannot make it spin.
pub const MIN_PERIOD: Duration = Duration::from_secs(1);

/// A readiness probe that passed validation, with every default filled in, so the prober
/// never has to second-guess the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessProbe {
    /// What one probe does.
    pub handler: Handler,
    /// Time after the container started before the first probe (`initialDelaySeconds`).
    pub initial_delay: Duration,
    /// Time between probes (`periodSeconds`).
    pub period: Duration,
    /// How long one probe may take before it counts as failed (`timeoutSeconds`).
    pub timeout: Duration,
    /// Consecutive successes that make a not-ready container ready (`successThreshold`).
    pub success_threshold: u32,
    /// Consecutive failures that make a ready container not ready (`failureThreshold`).
    pub failure_threshold: u32,
}

/// The one action a probe performs, with its port already resolved against the container's
/// named ports (ports cannot change while the pod lives, so resolving once is enough).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    /// Run a command in the container's environment; exit status 0 is success.
    Exec {
        /// Program and arguments, as written (no shell).
        command: Vec<String>,
    },
    /// Open a TCP connection; connecting is success.
    TcpSocket {
        /// `host`, or `None` for the pod IP.
        host: Option<String>,
        /// The resolved port.
        port: u16,
    },
    /// `GET http://host:port/path`; 200..=399 is success.
    HttpGet {
        /// `host`, or `None` for the pod IP.
        host: Option<String>,
        /// The resolved port.
        port: u16,
        /// Path and query, starting with `/`.
        path: String,
        /// `httpHeaders`, in order (a name may repeat).
        headers: Vec<(String, String)>,
    },
}

/// Why a readiness probe cannot run. Each of these is rejected by the real API server (or, for
/// ports, by the real kubelet's port lookup); here the pod gets an event and the container
/// stays not ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// None of `exec`, `httpGet`, `tcpSocket`, `grpc` is set.
    #[error("missing probe handler: one of exec, httpGet, tcpSocket must be set")]
    NoHandler,
    /// More than one handler is set.
    #[error("may not specify more than 1 handler type (got {})", .0.join(", "))]
    MultipleHandlers(Vec<&'static str>),
    /// A handler this lab kubelet does not implement.
    #[error("{0} probes are not supported by the lab kubelet")]
    Unsupported(&'static str),
    /// `exec.command` is absent or empty.
    #[error("exec.command: must not be empty")]
    EmptyCommand,
    /// A numeric field is negative.
    #[error("{field}: must be greater than or equal to 0 (got {value})")]
    Negative {
        /// The field name.
        field: &'static str,
        /// Its value.
        value: i32,
    },
    /// A port number (given, or found by name) is outside 1..=65535.
    #[error("invalid port number: {0}")]
    InvalidPort(i64),
    /// A port name that none of the container's `ports[].name` has.
    #[error("port {0:?} not found in the container's ports")]
    PortNotFound(String),
    /// An `httpGet.scheme` other than HTTP (HTTPS is not implemented here).
    #[error("httpGet.scheme {0:?} is not supported by the lab kubelet (only HTTP)")]
    UnsupportedScheme(String),
    /// A header name that is not an HTTP token, or a value with control characters.
    #[error("httpGet.httpHeaders: invalid header {0:?}")]
    InvalidHeader(String),
}

/// The container's readiness probe: `None` when it has none (the container is ready once it
/// runs), else the runnable probe or why it cannot run.
pub fn readiness_probe(container: &Container) -> Option<Result<ReadinessProbe, SpecError>> {
    container
        .readiness_probe
        .as_ref()
        .map(|p| validate(p, container))
}

/// Validates and defaults one probe of `container` (whose ports resolve named ports).
pub fn validate(probe: &Probe, container: &Container) -> Result<ReadinessProbe, SpecError> {
    let mut set: Vec<&'static str> = Vec::new();
    if probe.exec.is_some() {
        set.push("exec");
    }
    if probe.http_get.is_some() {
        set.push("httpGet");
    }
    if probe.tcp_socket.is_some() {
        set.push("tcpSocket");
    }
    if probe.grpc.is_some() {
        set.push("grpc");
    }
    if set.len() > 1 {
        return Err(SpecError::MultipleHandlers(set));
    }
    let handler = if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        if command.first().is_none_or(|p| p.is_empty()) {
            return Err(SpecError::EmptyCommand);
        }
        Handler::Exec { command }
    } else if let Some(tcp) = &probe.tcp_socket {
        Handler::TcpSocket {
            host: non_empty(tcp.host.as_deref()),
            port: resolve_port(&tcp.port, container)?,
        }
    } else if let Some(http) = &probe.http_get {
        let scheme = http.scheme.as_deref().unwrap_or("").to_ascii_lowercase();
        if !(scheme.is_empty() || scheme == "http") {
            return Err(SpecError::UnsupportedScheme(
                http.scheme.clone().unwrap_or_default(),
            ));
        }
        let mut headers = Vec::new();
        for h in http.http_headers.iter().flatten() {
            if !is_token(&h.name) || h.value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(SpecError::InvalidHeader(h.name.clone()));
            }
            headers.push((h.name.clone(), h.value.clone()));
        }
        Handler::HttpGet {
            host: non_empty(http.host.as_deref()),
            port: resolve_port(&http.port, container)?,
            path: default_path(http.path.as_deref()),
            headers,
        }
    } else if probe.grpc.is_some() {
        return Err(SpecError::Unsupported("grpc"));
    } else {
        return Err(SpecError::NoHandler);
    };
    Ok(ReadinessProbe {
        handler,
        initial_delay: secs(count(
            "initialDelaySeconds",
            probe.initial_delay_seconds,
            0,
        )?),
        period: secs(count(
            "periodSeconds",
            probe.period_seconds,
            DEFAULT_PERIOD_SECONDS,
        )?),
        timeout: secs(count(
            "timeoutSeconds",
            probe.timeout_seconds,
            DEFAULT_TIMEOUT_SECONDS,
        )?),
        success_threshold: count(
            "successThreshold",
            probe.success_threshold,
            DEFAULT_SUCCESS_THRESHOLD,
        )?,
        failure_threshold: count(
            "failureThreshold",
            probe.failure_threshold,
            DEFAULT_FAILURE_THRESHOLD,
        )?,
    })
}

/// A port as the kubelet resolves it: a number, or the `containerPort` of the container's port
/// with that name (a string is never parsed as a number, as upstream since 1.25); the result
/// must be in 1..=65535.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, SpecError> {
    let number = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| i64::from(p.container_port))
            .ok_or_else(|| SpecError::PortNotFound(name.clone()))?,
    };
    u16::try_from(number)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(SpecError::InvalidPort(number))
}

/// Absent or zero takes the default (the API server's defaulting); negative is rejected.
fn count(field: &'static str, value: Option<i32>, default: u32) -> Result<u32, SpecError> {
    match value {
        None | Some(0) => Ok(default),
        Some(v) => u32::try_from(v).map_err(|_| SpecError::Negative { field, value: v }),
    }
}

fn secs(n: u32) -> Duration {
    Duration::from_secs(u64::from(n))
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

/// `/` when absent; a leading `/` added otherwise, as Go's URL formatting does for a path next
/// to a host.
fn default_path(path: Option<&str>) -> String {
    match path {
        None | Some("") => "/".into(),
        Some(p) if p.starts_with('/') => p.into(),
        Some(p) => format!("/{p}"),
    }
}

/// RFC 7230 token, what an HTTP header name must be.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerPort, ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, TCPSocketAction,
    };

    fn container(probe: Probe) -> Container {
        Container {
            name: "c".into(),
            ports: Some(vec![
                ContainerPort {
                    name: Some("http".into()),
                    container_port: 8080,
                    ..Default::default()
                },
                ContainerPort {
                    name: Some("zero".into()),
                    container_port: 0,
                    ..Default::default()
                },
            ]),
            readiness_probe: Some(probe),
            ..Default::default()
        }
    }

    fn check(probe: Probe) -> Result<ReadinessProbe, SpecError> {
        readiness_probe(&container(probe)).unwrap_or(Err(SpecError::NoHandler))
    }

    fn tcp(port: IntOrString) -> Probe {
        Probe {
            tcp_socket: Some(TCPSocketAction { host: None, port }),
            ..Default::default()
        }
    }

    fn exec(cmd: &[&str]) -> Probe {
        Probe {
            exec: Some(ExecAction {
                command: Some(cmd.iter().map(|s| s.to_string()).collect()),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn no_probe_is_none() {
        assert!(
            readiness_probe(&Container {
                name: "c".into(),
                ..Default::default()
            })
            .is_none()
        );
    }

    #[test]
    fn defaults_as_the_api_server_sets_them() -> Result<(), SpecError> {
        let p = check(exec(&["true"]))?;
        assert_eq!(p.initial_delay, Duration::ZERO);
        assert_eq!(p.period, Duration::from_secs(10));
        assert_eq!(p.timeout, Duration::from_secs(1));
        assert_eq!(p.success_threshold, 1);
        assert_eq!(p.failure_threshold, 3);
        // Zero means "unset" to the API server's defaulting, so it gets the default too.
        let zeros = Probe {
            initial_delay_seconds: Some(0),
            period_seconds: Some(0),
            timeout_seconds: Some(0),
            success_threshold: Some(0),
            failure_threshold: Some(0),
            ..exec(&["true"])
        };
        assert_eq!(check(zeros), check(exec(&["true"])));
        let set = Probe {
            initial_delay_seconds: Some(5),
            period_seconds: Some(2),
            timeout_seconds: Some(3),
            success_threshold: Some(2),
            failure_threshold: Some(7),
            ..exec(&["true"])
        };
        let p = check(set)?;
        assert_eq!(
            (
                p.initial_delay,
                p.period,
                p.timeout,
                p.success_threshold,
                p.failure_threshold
            ),
            (
                Duration::from_secs(5),
                Duration::from_secs(2),
                Duration::from_secs(3),
                2,
                7
            )
        );
        Ok(())
    }

    #[test]
    fn http_get_defaults_path_and_scheme() {
        let probe = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::String("http".into()),
                http_headers: Some(vec![HTTPHeader {
                    name: "X-Probe".into(),
                    value: "1".into(),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            check(probe).map(|p| p.handler),
            Ok(Handler::HttpGet {
                host: None,
                port: 8080,
                path: "/".into(),
                headers: vec![("X-Probe".into(), "1".into())],
            })
        );
        let with = |scheme: &str, path: &str, host: &str| Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(80),
                scheme: Some(scheme.into()),
                path: Some(path.into()),
                host: Some(host.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let ok = check(with("HTTP", "healthz?x=1", "")).map(|p| p.handler);
        assert_eq!(
            ok,
            Ok(Handler::HttpGet {
                host: None,
                port: 80,
                path: "/healthz?x=1".into(),
                headers: vec![],
            })
        );
        assert_eq!(
            check(with("HTTPS", "/", "")),
            Err(SpecError::UnsupportedScheme("HTTPS".into()))
        );
        assert!(matches!(
            check(with("http", "/", "example.test")).map(|p| p.handler),
            Ok(Handler::HttpGet { host: Some(h), .. }) if h == "example.test"
        ));
    }

    #[test]
    fn named_ports_resolve_from_the_container() {
        let c = container(exec(&["true"]));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(resolve_port(&IntOrString::Int(53), &c), Ok(53));
        assert_eq!(
            resolve_port(&IntOrString::String("metrics".into()), &c),
            Err(SpecError::PortNotFound("metrics".into()))
        );
        // A number written as a string is a name, as upstream: it is not found.
        assert_eq!(
            resolve_port(&IntOrString::String("8080".into()), &c),
            Err(SpecError::PortNotFound("8080".into()))
        );
        assert_eq!(
            resolve_port(&IntOrString::String("zero".into()), &c),
            Err(SpecError::InvalidPort(0))
        );
        let msg = check(tcp(IntOrString::String("metrics".into())))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("\"metrics\""), "{msg}");
    }

    #[test]
    fn malformed_probes_are_errors_not_panics() {
        assert_eq!(check(Probe::default()), Err(SpecError::NoHandler));
        let two = Probe {
            tcp_socket: Some(TCPSocketAction {
                host: None,
                port: IntOrString::Int(80),
            }),
            ..exec(&["true"])
        };
        assert_eq!(
            check(two),
            Err(SpecError::MultipleHandlers(vec!["exec", "tcpSocket"]))
        );
        assert_eq!(
            check(tcp(IntOrString::Int(0))),
            Err(SpecError::InvalidPort(0))
        );
        assert_eq!(
            check(tcp(IntOrString::Int(65536))),
            Err(SpecError::InvalidPort(65536))
        );
        assert_eq!(
            check(tcp(IntOrString::Int(-1))),
            Err(SpecError::InvalidPort(-1))
        );
        assert_eq!(check(exec(&[])), Err(SpecError::EmptyCommand));
        assert_eq!(check(exec(&[""])), Err(SpecError::EmptyCommand));
        let no_command = Probe {
            exec: Some(ExecAction { command: None }),
            ..Default::default()
        };
        assert_eq!(check(no_command), Err(SpecError::EmptyCommand));
        for (field, probe) in [
            (
                "initialDelaySeconds",
                Probe {
                    initial_delay_seconds: Some(-1),
                    ..exec(&["true"])
                },
            ),
            (
                "periodSeconds",
                Probe {
                    period_seconds: Some(-10),
                    ..exec(&["true"])
                },
            ),
            (
                "timeoutSeconds",
                Probe {
                    timeout_seconds: Some(i32::MIN),
                    ..exec(&["true"])
                },
            ),
            (
                "successThreshold",
                Probe {
                    success_threshold: Some(-2),
                    ..exec(&["true"])
                },
            ),
            (
                "failureThreshold",
                Probe {
                    failure_threshold: Some(-3),
                    ..exec(&["true"])
                },
            ),
        ] {
            assert!(
                matches!(check(probe), Err(SpecError::Negative { field: f, .. }) if f == field),
                "{field}"
            );
        }
        let grpc = Probe {
            grpc: Some(GRPCAction {
                port: 9000,
                service: None,
            }),
            ..Default::default()
        };
        assert_eq!(check(grpc), Err(SpecError::Unsupported("grpc")));
        let bad_header = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(80),
                http_headers: Some(vec![HTTPHeader {
                    name: "Bad Name".into(),
                    value: "v".into(),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            check(bad_header),
            Err(SpecError::InvalidHeader("Bad Name".into()))
        );
        let bad_value = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(80),
                http_headers: Some(vec![HTTPHeader {
                    name: "X".into(),
                    value: "a\r\nInjected: 1".into(),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(check(bad_value), Err(SpecError::InvalidHeader("X".into())));
    }

    #[test]
    fn huge_numbers_do_not_overflow() -> Result<(), SpecError> {
        let p = check(Probe {
            initial_delay_seconds: Some(i32::MAX),
            period_seconds: Some(i32::MAX),
            timeout_seconds: Some(i32::MAX),
            success_threshold: Some(i32::MAX),
            failure_threshold: Some(i32::MAX),
            ..exec(&["true"])
        })?;
        assert_eq!(p.period, Duration::from_secs(i32::MAX as u64));
        Ok(())
    }
}
