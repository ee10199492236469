//! Real traffic between pods and nodes with `rovn-podtool`: one exchange (TCP or UDP) that
//! reports which server answered and which client address it saw, and a long-lived TCP
//! connection that is kept open across restarts.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::cluster::{Cluster, ExecOutput, PodRef, argv};
use super::error::{Result, ScenarioError};
use super::pods::parse_greeting;
use super::wait;

/// How long a server may take to answer for the first time (its pod may be Running while the
/// program is still binding, or its port still being installed).
pub const FIRST_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one exchange.
const EXCHANGE_TIMEOUT: &str = "2s";
/// The line every exchange sends and expects back.
pub const MESSAGE: &str = "rovn-scenario";

/// The transport of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// TCP echo.
    Tcp,
    /// UDP echo.
    Udp,
}

impl Proto {
    /// The podtool argument.
    pub fn as_str(&self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// Where a client runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum From {
    /// Inside a pod.
    Pod(PodRef),
    /// On a node's host network.
    Node(String),
    /// On the host outside the cluster ([`Cluster::exec_outside`]): NodePorts, externalIPs
    /// and hostPorts as the world reaches them.
    Outside,
}

impl std::fmt::Display for From {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            From::Pod(p) => write!(f, "pod {p}"),
            From::Node(n) => write!(f, "node {n}"),
            From::Outside => write!(f, "the outside"),
        }
    }
}

/// What a server said in one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The server's name (its pod name).
    pub server: String,
    /// The client address the server saw.
    pub client: Ipv4Addr,
    /// How long the successful exchange took, including starting the client.
    pub latency: Duration,
}

/// One exchange; retried until the server answers or [`FIRST_ANSWER_TIMEOUT`] passes. The echo
/// must carry [`MESSAGE`] back.
pub async fn exchange(
    cluster: &impl Cluster,
    from: &From,
    proto: Proto,
    target: SocketAddrV4,
) -> Result<Answer> {
    let command = connect_argv(cluster, proto, target);
    let what = format!("{} {target} to answer {from}", proto.as_str());
    wait::until(FIRST_ANSWER_TIMEOUT, &what, async || {
        run_exchange(cluster, from, proto, target, &command)
            .await
            .map(Some)
    })
    .await
}

/// One exchange, not retried (for reports that record failures instead of waiting them out).
pub async fn exchange_once(
    cluster: &impl Cluster,
    from: &From,
    proto: Proto,
    target: SocketAddrV4,
) -> Result<Answer> {
    run_exchange(
        cluster,
        from,
        proto,
        target,
        &connect_argv(cluster, proto, target),
    )
    .await
}

/// The `rovn-podtool connect` command line of one exchange.
pub(crate) fn connect_argv(
    cluster: &impl Cluster,
    proto: Proto,
    target: SocketAddrV4,
) -> Vec<String> {
    argv([
        cluster.podtool().as_str(),
        "connect",
        proto.as_str(),
        &target.to_string(),
        "--message",
        MESSAGE,
        "--timeout",
        EXCHANGE_TIMEOUT,
    ])
}

/// Runs `command` to completion where `from` says: in a pod, on a node or outside.
pub async fn exec_from(
    cluster: &impl Cluster,
    from: &From,
    command: &[String],
) -> Result<ExecOutput> {
    match from {
        From::Pod(pod) => cluster.exec_in_pod(pod, command).await,
        From::Node(node) => cluster.exec_on_node(node, command).await,
        From::Outside => cluster.exec_outside(command).await,
    }
}

async fn run_exchange(
    cluster: &impl Cluster,
    from: &From,
    proto: Proto,
    target: SocketAddrV4,
    command: &[String],
) -> Result<Answer> {
    let started = Instant::now();
    let out = exec_from(cluster, from, command).await?;
    let latency = started.elapsed();
    let said = out.ok(&format!("{} {target} from {from}", proto.as_str()))?;
    parse_answer(&said, latency)
}

/// Parses what `rovn-podtool connect` printed: the greeting, then the echoed message. Pure.
pub fn parse_answer(said: &str, latency: Duration) -> Result<Answer> {
    let mut lines = said.lines();
    let (server, client) = lines
        .next()
        .and_then(parse_greeting)
        .ok_or_else(|| ScenarioError::Check(format!("not a podtool greeting: {said:?}")))?;
    if !lines.any(|l| l.contains(MESSAGE)) {
        return Err(ScenarioError::Check(format!(
            "the echo lost the message: {said:?}"
        )));
    }
    Ok(Answer {
        server: server.to_string(),
        client,
        latency,
    })
}

/// An exchange that must be answered by `server` seeing `client`.
pub async fn expect_exchange(
    cluster: &impl Cluster,
    from: &From,
    proto: Proto,
    target: SocketAddrV4,
    server: &str,
    client: Ipv4Addr,
) -> Result<Answer> {
    let answer = exchange(cluster, from, proto, target).await?;
    crate::ensure!(
        answer.server == server,
        "{} {target} from {from} was answered by {}, expected {server}",
        proto.as_str(),
        answer.server
    );
    crate::ensure!(
        answer.client == client,
        "{} {target} from {from}: server {server} saw client {}, expected {client} (NAT?)",
        proto.as_str(),
        answer.client
    );
    Ok(answer)
}

/// A TCP connection held open by a shell in a pod: each line written is echoed back by the
/// server over the same connection, so a round trip proves the connection survived.
pub struct LongConnection {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    what: String,
}

/// Opens the connection (bash's `/dev/tcp`), prints the greeting, then relays stdin lines to
/// the socket and echoes to stdout.
const RELAY_SCRIPT: &str = r#"exec 3<>"/dev/tcp/$1/$2" || exit 3
IFS= read -r greeting <&3 || exit 4
printf '%s\n' "$greeting"
while IFS= read -r line; do
  printf '%s\n' "$line" >&3
  IFS= read -r echoed <&3 || exit 5
  printf '%s\n' "$echoed"
done"#;

/// Bound on one round trip over a long-lived connection.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(10);

impl LongConnection {
    /// Opens a TCP connection from `pod` to `target` and reads the server's greeting.
    pub async fn open(
        cluster: &impl Cluster,
        pod: &PodRef,
        target: SocketAddrV4,
    ) -> Result<(LongConnection, Answer)> {
        LongConnection::open_from(cluster, &From::Pod(pod.clone()), target).await
    }

    /// Opens a TCP connection from a pod or the outside to `target` and reads the server's
    /// greeting (the [`Cluster`] can spawn no long-lived command on a node).
    pub async fn open_from(
        cluster: &impl Cluster,
        from: &From,
        target: SocketAddrV4,
    ) -> Result<(LongConnection, Answer)> {
        let what = format!("long-lived TCP connection from {from} to {target}");
        let command = argv([
            "bash",
            "-c",
            RELAY_SCRIPT,
            "relay",
            &target.ip().to_string(),
            &target.port().to_string(),
        ]);
        let started = Instant::now();
        let mut child = match from {
            From::Pod(pod) => cluster.spawn_in_pod(pod, &command).await?,
            From::Outside => cluster.spawn_outside(&command).await?,
            From::Node(_) => {
                return Err(ScenarioError::Check(format!(
                    "{what}: a cluster cannot keep a command running on a node"
                )));
            }
        };
        let pipes = child.stdin.take().zip(child.stdout.take());
        let Some((stdin, stdout)) = pipes else {
            return Err(ScenarioError::Exec {
                what,
                detail: "the child has no stdin/stdout pipes".into(),
            });
        };
        let mut conn = LongConnection {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            what,
        };
        let greeting = conn.read_line().await?;
        let (server, client) = parse_greeting(&greeting).ok_or_else(|| {
            ScenarioError::Check(format!("{}: not a greeting: {greeting:?}", conn.what))
        })?;
        let answer = Answer {
            server: server.to_string(),
            client,
            latency: started.elapsed(),
        };
        Ok((conn, answer))
    }

    async fn read_line(&mut self) -> Result<String> {
        let read = tokio::time::timeout(ROUND_TRIP_TIMEOUT, self.lines.next_line()).await;
        match read {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => {
                let status = self.child.try_wait().ok().flatten();
                Err(ScenarioError::Check(format!(
                    "{}: closed (relay exit {status:?})",
                    self.what
                )))
            }
            Ok(Err(e)) => Err(ScenarioError::Exec {
                what: self.what.clone(),
                detail: e.to_string(),
            }),
            Err(_) => Err(ScenarioError::Check(format!(
                "{}: no answer within {ROUND_TRIP_TIMEOUT:?}",
                self.what
            ))),
        }
    }

    /// Sends `message` and expects it back over the same connection.
    pub async fn round_trip(&mut self, message: &str) -> Result<Duration> {
        let started = Instant::now();
        self.stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .map_err(|e| ScenarioError::Exec {
                what: self.what.clone(),
                detail: format!("writing to the relay: {e}"),
            })?;
        self.stdin.flush().await.map_err(|e| ScenarioError::Exec {
            what: self.what.clone(),
            detail: format!("flushing the relay: {e}"),
        })?;
        let echoed = self.read_line().await?;
        crate::ensure!(
            echoed == message,
            "{}: sent {message:?}, got back {echoed:?}",
            self.what
        );
        Ok(started.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_need_greeting_and_echo() {
        let a = parse_answer(
            "hostname=s client=10.16.0.4:5555\nrovn-scenario\n",
            Duration::from_millis(3),
        )
        .unwrap();
        assert_eq!(a.server, "s");
        assert_eq!(a.client, Ipv4Addr::new(10, 16, 0, 4));
        assert!(parse_answer("hostname=s client=10.16.0.4:5555\n", Duration::ZERO).is_err());
        assert!(parse_answer("garbage", Duration::ZERO).is_err());
    }
}
