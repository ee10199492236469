//! Running one probe: the I/O half of [`super::spec::Handler`].
//!
//! Where each handler runs is where the real kubelet runs it: `exec` inside the container (here,
//! a child process in the pod's sandbox network namespace with the container's environment and
//! program lookup); `tcpSocket` and `httpGet` from the kubelet itself, i.e. from the node's
//! network namespace towards the pod IP (or `host`), so a probe exercises the node-to-pod path
//! exactly as in a real cluster. Every probe is bounded by `timeoutSeconds`.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

use super::Outcome;
use super::http::{self as probe_http, HttpUrl, MAX_BODY, Step};
use super::spec::{Handler, ReadinessProbe};
use crate::containers;

/// The most command output kept for an event, as upstream.
pub const MAX_OUTPUT: usize = 10 * 1024;

/// Everything about the container a probe needs to reach it; fixed for the pod's life.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// `namespace/name` of the pod, for logs.
    pub pod: String,
    /// The container's name, for logs.
    pub container: String,
    /// The pod IP (the node's for hostNetwork pods); empty when the network gave none.
    pub pod_ip: String,
    /// The sandbox namespace exec probes enter (`None`: the kubelet's own, hostNetwork).
    pub netns: Option<PathBuf>,
    /// The container's environment, which exec probes get too.
    pub env: Vec<(String, String)>,
    /// Searched first for a bare program name, as for containers.
    pub own_dir: Option<PathBuf>,
    /// `PATH` to search a bare program name in.
    pub path_env: String,
}

/// Runs the probe once and reports what happened.
pub async fn run(probe: &ReadinessProbe, target: &ProbeTarget) -> Outcome {
    match &probe.handler {
        Handler::Exec { command } => exec(command, probe.timeout, target).await,
        Handler::TcpSocket { host, port } => match destination(host.as_deref(), target) {
            Ok(host) => tcp(host, *port, probe.timeout).await,
            Err(e) => e,
        },
        Handler::HttpGet {
            host,
            port,
            path,
            headers,
        } => match destination(host.as_deref(), target) {
            Ok(host) => http_get(&HttpUrl::new(host, *port, path), headers, probe.timeout).await,
            Err(e) => e,
        },
    }
}

/// `host` when the spec sets one, else the pod IP; without either the probe cannot run.
fn destination<'a>(host: Option<&'a str>, target: &'a ProbeTarget) -> Result<&'a str, Outcome> {
    match host {
        Some(h) => Ok(h),
        None if !target.pod_ip.is_empty() => Ok(&target.pod_ip),
        None => Err(Outcome::Error("the pod has no IP to probe".into())),
    }
}

/// Connects and closes: upstream's TCP probe.
pub async fn tcp(host: &str, port: u16, timeout: Duration) -> Outcome {
    let addr = HttpUrl::new(host, port, "/").authority();
    match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(_connected)) => Outcome::Success(String::new()),
        Ok(Err(e)) => Outcome::Failure(format!("dial tcp {addr}: connect: {e}")),
        Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// `GET url`, following same-host redirects, the whole exchange bounded by `timeout`.
pub async fn http_get(url: &HttpUrl, headers: &[(String, String)], timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, follow(url, headers)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Failure(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting \
             headers)"
        )),
    }
}

async fn follow(original: &HttpUrl, spec_headers: &[(String, String)]) -> Outcome {
    let without_host: Vec<(String, String)> = spec_headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("Host"))
        .cloned()
        .collect();
    let mut current = original.clone();
    let mut keep_host = true;
    let mut redirects = 0;
    loop {
        let spec = if keep_host {
            spec_headers
        } else {
            &without_host
        };
        let headers = probe_http::request_headers(&current, spec);
        let response = match get_once(&current, &headers).await {
            Ok(r) => r,
            Err(e) => return Outcome::Failure(format!("Get \"{current}\": {e}")),
        };
        match probe_http::classify(
            original,
            &current,
            redirects,
            response.status,
            response.location.as_deref(),
            &response.body,
        ) {
            Step::Done(outcome) => return outcome,
            Step::Follow { url, keep_host: k } => {
                current = url;
                keep_host = keep_host && k;
                redirects += 1;
            }
        }
    }
}

struct Response {
    status: u16,
    location: Option<String>,
    body: String,
}

/// One HTTP/1.1 exchange on a fresh connection (`Connection: close`, as upstream disables
/// keep-alive), keeping at most [`MAX_BODY`] of the body.
async fn get_once(url: &HttpUrl, headers: &[(String, String)]) -> Result<Response, String> {
    let stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("dial tcp {}: connect: {e}", url.authority()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let mut request = hyper::Request::get(url.target.as_str());
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_bytes());
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("building the request: {e}"))?;
    let exchange = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(hyper::header::LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let mut body = response.into_body();
        let mut kept: Vec<u8> = Vec::new();
        while kept.len() < MAX_BODY {
            match body.frame().await {
                None => break,
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        kept.extend_from_slice(data);
                    }
                }
            }
        }
        Ok(Response {
            status,
            location,
            body: probe_http::body_text(&kept),
        })
    };
    // The connection is driven alongside the exchange; it ends once the exchange drops its
    // sender and body (or the server closes).
    let (response, _) = tokio::join!(exchange, conn);
    response
}

/// Runs the command in the container's environment and sandbox; exit status 0 is success. The
/// output is stdout then stderr, at most [`MAX_OUTPUT`], as the real kubelet's runtime returns
/// it. After `timeout` the command's whole process group is killed and the probe fails.
pub async fn exec(command: &[String], timeout: Duration, target: &ProbeTarget) -> Outcome {
    let Some(program_name) = command.first() else {
        return Outcome::Error("exec probe: empty command".into());
    };
    let Some(program) = containers::resolve_program(
        program_name,
        target.own_dir.as_deref(),
        OsStr::new(&target.path_env),
    ) else {
        return Outcome::Error(format!("exec probe: executable {program_name:?} not found"));
    };
    let args = command.get(1..).unwrap_or_default();
    let mut cmd =
        match containers::pod_command(&program, args, &target.env, target.netns.as_deref()) {
            Ok(cmd) => cmd,
            Err(e) => {
                return Outcome::Error(format!("exec probe: opening the sandbox namespace: {e}"));
            }
        };
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::Error(format!("exec probe: starting {program_name:?}: {e}")),
    };
    let mut group = containers::GroupKiller(child.id());
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let finished = tokio::time::timeout(timeout, async {
        tokio::join!(read_capped(stdout), read_capped(stderr), child.wait())
    })
    .await;
    match finished {
        Ok((mut out, err, status)) => {
            // Done: whatever it left in the background lives on, as with a real exec.
            group.0 = None;
            out.extend_from_slice(&err);
            out.truncate(MAX_OUTPUT);
            let text = String::from_utf8_lossy(&out).into_owned();
            match status {
                Ok(s) if s.success() => Outcome::Success(text),
                Ok(_) => Outcome::Failure(text),
                Err(e) => Outcome::Error(format!("exec probe: waiting for {program_name:?}: {e}")),
            }
        }
        Err(_) => {
            drop(group);
            let _ = child.wait().await;
            Outcome::Failure(format!(
                "command {:?} timed out after {}s",
                command.join(" "),
                timeout.as_secs()
            ))
        }
    }
}

/// Reads a stream to its end, keeping the first [`MAX_OUTPUT`] bytes (and draining the rest so
/// the command never blocks on a full pipe).
async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>) -> Vec<u8> {
    let Some(mut reader) = reader else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn target(pod_ip: &str) -> ProbeTarget {
        ProbeTarget {
            pod: "ns/p".into(),
            container: "c".into(),
            pod_ip: pod_ip.into(),
            netns: None,
            env: vec![
                ("PATH".into(), containers::inherited_path()),
                ("PROBE_VAR".into(), "from-env".into()),
            ],
            own_dir: None,
            path_env: containers::inherited_path(),
        }
    }

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    /// A one-shot-per-connection HTTP server on loopback answering `responses` in turn.
    fn serve(
        responses: Vec<String>,
    ) -> std::io::Result<(u16, std::thread::JoinHandle<Vec<String>>)> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let handle = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for response in responses {
                let Ok((mut conn, _)) = listener.accept() else {
                    break;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                requests.push(String::from_utf8_lossy(&head).into_owned());
                let _ = conn.write_all(response.as_bytes());
            }
            requests
        });
        Ok((port, handle))
    }

    fn response(status: &str, extra: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn exec_exit_status_and_output() {
        let t = target("");
        let ok = exec(
            &argv(&["sh", "-c", "echo $PROBE_VAR"]),
            Duration::from_secs(5),
            &t,
        )
        .await;
        assert_eq!(ok, Outcome::Success("from-env\n".into()));
        let failed = exec(
            &argv(&["sh", "-c", "echo err >&2; echo out; exit 3"]),
            Duration::from_secs(5),
            &t,
        )
        .await;
        assert_eq!(failed, Outcome::Failure("out\nerr\n".into()));
        let missing = exec(&argv(&["rovn-no-such-probe"]), Duration::from_secs(1), &t).await;
        assert!(
            matches!(&missing, Outcome::Error(m) if m.contains("rovn-no-such-probe")),
            "{missing:?}"
        );
    }

    #[tokio::test]
    async fn exec_timeout_kills_the_group() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let marker = dir.path().join("survived");
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let started = std::time::Instant::now();
        let outcome = exec(
            &argv(&["sh", "-c", &script]),
            Duration::from_secs(1),
            &target(""),
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            matches!(&outcome, Outcome::Failure(m) if m.contains("timed out after 1s")),
            "{outcome:?}"
        );
        // The background child was in the group and died with it.
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            assert!(!marker.exists(), "a probe child outlived the timeout");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    #[tokio::test]
    async fn tcp_connects_or_fails() -> Result<(), Box<dyn std::error::Error>> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let ok = tcp("127.0.0.1", port, Duration::from_secs(2)).await;
        assert_eq!(ok, Outcome::Success(String::new()));
        drop(listener);
        let refused = tcp("127.0.0.1", port, Duration::from_secs(2)).await;
        assert!(
            matches!(&refused, Outcome::Failure(m) if m.starts_with(&format!("dial tcp 127.0.0.1:{port}"))),
            "{refused:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn http_statuses_headers_and_redirects() -> Result<(), Box<dyn std::error::Error>> {
        let (port, server) = serve(vec![
            response("302 Found", "Location: /ready\r\n", ""),
            response("200 OK", "", "fine"),
        ])?;
        let url = HttpUrl::new("127.0.0.1", port, "/healthz");
        let headers = vec![("X-Probe".to_owned(), "yes".to_owned())];
        let outcome = http_get(&url, &headers, Duration::from_secs(5)).await;
        assert_eq!(outcome, Outcome::Success("fine".into()));
        let requests = server.join().map_err(|_| "server panicked")?;
        assert!(
            requests[0].starts_with("GET /healthz HTTP/1.1\r\n"),
            "{}",
            requests[0]
        );
        assert!(requests[0].contains("x-probe: yes") || requests[0].contains("X-Probe: yes"));
        assert!(
            requests[0]
                .to_ascii_lowercase()
                .contains("user-agent: kube-probe/")
        );
        assert!(
            requests[1].starts_with("GET /ready HTTP/1.1\r\n"),
            "{}",
            requests[1]
        );

        let (port, server) = serve(vec![response("503 Service Unavailable", "", "busy")])?;
        let url = HttpUrl::new("127.0.0.1", port, "/");
        let outcome = http_get(&url, &[], Duration::from_secs(5)).await;
        assert_eq!(
            outcome,
            Outcome::Failure("HTTP probe failed with statuscode: 503".into())
        );
        let _ = server.join();

        let (port, server) = serve(vec![response(
            "301 Moved Permanently",
            "Location: http://elsewhere.test/\r\n",
            "bye",
        )])?;
        let url = HttpUrl::new("127.0.0.1", port, "/");
        let outcome = http_get(&url, &[], Duration::from_secs(5)).await;
        assert_eq!(
            outcome,
            Outcome::Warning("Probe terminated redirects, Response body: bye".into())
        );
        let _ = server.join();
        Ok(())
    }

    #[tokio::test]
    async fn http_refused_and_timeout_fail() -> Result<(), Box<dyn std::error::Error>> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        // Accepted by the kernel but never answered.
        let url = HttpUrl::new("127.0.0.1", port, "/");
        let outcome = http_get(&url, &[], Duration::from_millis(300)).await;
        assert!(
            matches!(&outcome, Outcome::Failure(m) if m.contains("deadline exceeded")),
            "{outcome:?}"
        );
        drop(listener);
        let outcome = http_get(&url, &[], Duration::from_secs(2)).await;
        assert!(
            matches!(&outcome, Outcome::Failure(m) if m.contains("connect")),
            "{outcome:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn no_pod_ip_is_an_error() {
        let probe = ReadinessProbe {
            handler: Handler::TcpSocket {
                host: None,
                port: 80,
            },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        };
        assert!(matches!(run(&probe, &target("")).await, Outcome::Error(_)));
    }
}
