//! `pods/NAME[:PORT]/proxy/PATH`: the API server relays an HTTP GET to a pod, as the real one
//! does for `kubectl get --raw` and for tools (`kubectl rovn diagnose`) that need a pod's
//! endpoint without a route to it. The connection is made from the network namespace given as
//! `--proxy-netns` (the lab's central namespace, where the lab's addresses are reachable), or
//! from the server's own.
//!
//! Only GET and HEAD are relayed; the answer's status, content type and body pass through
//! unchanged, and a pod that cannot be reached is a 503 as on the real server.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::status::ApiError;

/// How long connecting and answering may take together; above `/debug/plan`'s own 10 s.
const DEADLINE: Duration = Duration::from_secs(15);
/// Largest answer relayed.
const MAX_ANSWER: u64 = 16 * 1024 * 1024;

/// What a proxy path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyTarget {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The port after `NAME:`, a number or a container port's name; absent: the first
    /// declared container port, else 80.
    pub port: Option<String>,
    /// The path on the pod, with its leading `/`.
    pub path: String,
}

impl ProxyTarget {
    /// Reads `/api/v1/namespaces/NS/pods/NAME[:PORT]/proxy[/PATH]` (already split on `/`).
    pub fn parse(namespace: &str, pod_and_port: &str, rest: &[&str]) -> Option<ProxyTarget> {
        let (pod, port) = match pod_and_port.split_once(':') {
            Some((pod, port)) => (pod, Some(port.to_string())),
            None => (pod_and_port, None),
        };
        if pod.is_empty() || namespace.is_empty() || port.as_deref() == Some("") {
            return None;
        }
        Some(ProxyTarget {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            port,
            path: format!("/{}", rest.join("/")),
        })
    }

    /// The address to connect to for `pod` (the stored object): its `status.podIP` and the
    /// port asked for. Errors as the real server words them.
    pub fn address(&self, pod: &Value) -> Result<SocketAddr, ApiError> {
        let ip: IpAddr = pod
            .pointer("/status/podIP")
            .and_then(Value::as_str)
            .and_then(|ip| ip.parse().ok())
            .ok_or_else(|| {
                ApiError::service_unavailable(format!(
                    "pod {}/{} has no IP address to proxy to",
                    self.namespace, self.pod
                ))
            })?;
        let port = match self.port.as_deref() {
            Some(port) => match port.parse::<u16>() {
                Ok(number) if number > 0 => number,
                _ => named_port(pod, port).ok_or_else(|| {
                    ApiError::service_unavailable(format!(
                        "pod {}/{} has no container port named {port:?}",
                        self.namespace, self.pod
                    ))
                })?,
            },
            None => first_port(pod).unwrap_or(80),
        };
        Ok(SocketAddr::new(ip, port))
    }
}

fn container_ports(pod: &Value) -> impl Iterator<Item = &Value> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
}

fn port_number(port: &Value) -> Option<u16> {
    port.get("containerPort")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
}

fn named_port(pod: &Value, name: &str) -> Option<u16> {
    container_ports(pod)
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
        .and_then(port_number)
}

fn first_port(pod: &Value) -> Option<u16> {
    container_ports(pod).find_map(port_number)
}

/// A relayed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The pod's HTTP status.
    pub status: u16,
    /// Its `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Its body.
    pub body: Vec<u8>,
}

/// Sends `method path_and_query` to `addr` from `netns` (blocking: call from a blocking
/// context). HTTP/1.0, so the pod closes the connection after its answer.
pub fn relay(
    netns: Option<&str>,
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
) -> Result<Answer, ApiError> {
    let unreachable = |e: std::io::Error| {
        ApiError::service_unavailable(format!("error trying to reach pod at {addr}: {e}"))
    };
    let mut stream =
        crate::listen::in_netns(netns, move || TcpStream::connect_timeout(&addr, DEADLINE))
            .map_err(|e| ApiError::service_unavailable(format!("error trying to reach pod: {e}")))?
            .map_err(unreachable)?;
    stream
        .set_read_timeout(Some(DEADLINE))
        .map_err(unreachable)?;
    stream
        .write_all(
            format!(
                "{method} {path_and_query} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .map_err(unreachable)?;
    let mut raw = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut raw)
        .map_err(unreachable)?;
    parse_answer(&raw).ok_or_else(|| {
        ApiError::service_unavailable(format!("pod at {addr} sent no valid HTTP answer"))
    })
}

/// Status line, headers and body of an HTTP/1.x answer read to its end.
fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()?
        .strip_prefix("HTTP/1.")?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    let content_type = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.trim().to_string());
    Some(Answer {
        status,
        content_type,
        body: raw[split + 4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(pod_and_port: &str, rest: &[&str]) -> ProxyTarget {
        ProxyTarget::parse("kube-system", pod_and_port, rest)
            .unwrap_or_else(|| panic!("{pod_and_port} should parse"))
    }

    #[test]
    fn paths_name_pod_port_and_path() {
        let t = target("ctl:10660", &["debug", "plan"]);
        assert_eq!((t.pod.as_str(), t.port.as_deref()), ("ctl", Some("10660")));
        assert_eq!(t.path, "/debug/plan");
        assert_eq!(target("ctl", &[]).path, "/");
        assert!(ProxyTarget::parse("kube-system", "ctl:", &[]).is_none());
        assert!(ProxyTarget::parse("kube-system", ":80", &[]).is_none());
    }

    #[test]
    fn ports_come_from_the_path_the_containers_or_80() {
        let pod = json!({
            "spec": {"containers": [{"ports": [{"name": "metrics", "containerPort": 10660}]}]},
            "status": {"podIP": "172.30.0.1"},
        });
        let at = |p: &str| target(p, &[]).address(&pod).map(|a| a.to_string());
        assert_eq!(at("ctl:8080").ok().as_deref(), Some("172.30.0.1:8080"));
        assert_eq!(at("ctl:metrics").ok().as_deref(), Some("172.30.0.1:10660"));
        assert_eq!(at("ctl").ok().as_deref(), Some("172.30.0.1:10660"));
        assert_eq!(at("ctl:nope").map_err(|e| e.code), Err(503));
        let bare = json!({"status": {"podIP": "10.16.0.5"}});
        assert_eq!(
            target("p", &[]).address(&bare).map(|a| a.port()).ok(),
            Some(80)
        );
        let pending = json!({"status": {}});
        assert_eq!(
            target("p", &[]).address(&pending).map_err(|e| e.code),
            Err(503)
        );
    }

    #[test]
    fn answers_keep_status_type_and_body() {
        let raw =
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\r\nnot leading\n";
        let answer = parse_answer(raw).unwrap_or_else(|| panic!("should parse"));
        assert_eq!(answer.status, 503);
        assert_eq!(answer.content_type.as_deref(), Some("text/plain"));
        assert_eq!(answer.body, b"not leading\n");
        assert!(parse_answer(b"garbage").is_none());
        assert!(parse_answer(b"SPDY/3 200 OK\r\n\r\n").is_none());
    }
}
