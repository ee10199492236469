//! `rovn-podtool probe`: many reachability checks from one process, all at once, so a
//! NetworkPolicy truth table costs one exec per source pod instead of one per cell. Each target
//! gets one verdict that tells a dropped packet (policy) from a refused one (nothing listening,
//! or a `reject`) and from anything else.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinSet;

/// How often an unanswered UDP probe is sent again within its timeout: one lost datagram (a
/// flow being installed) must not read as a policy drop.
const UDP_RESEND: Duration = Duration::from_millis(200);

/// The transport of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeProto {
    /// A TCP connection that must deliver the server's greeting.
    Tcp,
    /// A UDP datagram that must be answered.
    Udp,
}

impl ProbeProto {
    /// The word used on the command line and in result lines.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeProto::Tcp => "tcp",
            ProbeProto::Udp => "udp",
        }
    }
}

/// One thing to probe: `tcp:IP:PORT` or `udp:IP:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeTarget {
    /// The transport.
    pub proto: ProbeProto,
    /// Where to.
    pub addr: SocketAddr,
}

impl fmt::Display for ProbeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.proto.as_str(), self.addr)
    }
}

impl FromStr for ProbeTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (proto, addr) = text
            .split_once(':')
            .ok_or_else(|| format!("invalid probe target {text:?}: expected tcp:IP:PORT"))?;
        let proto = match proto {
            "tcp" => ProbeProto::Tcp,
            "udp" => ProbeProto::Udp,
            other => {
                return Err(format!(
                    "invalid protocol {other:?} in {text:?}: tcp or udp"
                ));
            }
        };
        let addr = addr
            .parse()
            .map_err(|e| format!("invalid address in probe target {text:?}: {e}"))?;
        Ok(ProbeTarget { proto, addr })
    }
}

/// What became of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The server answered.
    Reached,
    /// Nothing came back within the timeout: the packets were dropped on the way.
    Dropped,
    /// The destination (or something on the way) said no: TCP RST or ICMP port unreachable.
    Refused,
    /// Anything else (unreachable network, a connection that never greeted…), with the reason.
    Failed(String),
}

impl Verdict {
    /// The word of a result line.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Reached => "reached",
            Verdict::Dropped => "dropped",
            Verdict::Refused => "refused",
            Verdict::Failed(_) => "failed",
        }
    }
}

/// One probe's outcome, printed as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// What was probed.
    pub target: ProbeTarget,
    /// What happened.
    pub verdict: Verdict,
    /// When the probe started, from the start of the run.
    pub at: Duration,
    /// How long it took.
    pub took: Duration,
}

impl fmt::Display for ProbeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} at={}ms took={}ms",
            self.target,
            self.verdict.word(),
            self.at.as_millis(),
            self.took.as_millis()
        )?;
        if let Verdict::Failed(reason) = &self.verdict {
            write!(f, " reason={reason}")?;
        }
        Ok(())
    }
}

/// Reads a result line back, `None` for anything else. Pure.
pub fn parse_result_line(line: &str) -> Option<ProbeResult> {
    let mut words = line.split_whitespace();
    let target = words.next()?.parse().ok()?;
    let verdict = match words.next()? {
        "reached" => Verdict::Reached,
        "dropped" => Verdict::Dropped,
        "refused" => Verdict::Refused,
        "failed" => Verdict::Failed(
            line.split_once(" reason=")
                .map(|(_, r)| r.to_string())
                .unwrap_or_default(),
        ),
        _ => return None,
    };
    let millis = |word: Option<&str>, key: &str| {
        let ms = word?.strip_prefix(key)?.strip_suffix("ms")?.parse().ok()?;
        Some(Duration::from_millis(ms))
    };
    let at = millis(words.next(), "at=")?;
    let took = millis(words.next(), "took=")?;
    Some(ProbeResult {
        target,
        verdict,
        at,
        took,
    })
}

/// Probes one target within `timeout`.
pub async fn probe(target: ProbeTarget, timeout: Duration) -> Verdict {
    let attempt = async {
        match target.proto {
            ProbeProto::Tcp => probe_tcp(target.addr).await,
            ProbeProto::Udp => probe_udp(target.addr).await,
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(verdict) => verdict,
        Err(_) => Verdict::Dropped,
    }
}

fn io_verdict(action: &str, e: &std::io::Error) -> Verdict {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        Verdict::Refused
    } else {
        Verdict::Failed(format!("{action}: {e}"))
    }
}

async fn probe_tcp(addr: SocketAddr) -> Verdict {
    let stream = match TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(e) => return io_verdict("connect", &e),
    };
    let mut greeting = String::new();
    match tokio::io::BufReader::new(stream)
        .read_line(&mut greeting)
        .await
    {
        Ok(_) if greeting.starts_with("hostname=") => Verdict::Reached,
        Ok(_) => Verdict::Failed(format!("connected, but no greeting: {greeting:?}")),
        Err(e) => io_verdict("read the greeting", &e),
    }
}

async fn probe_udp(addr: SocketAddr) -> Verdict {
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = match UdpSocket::bind(local).await {
        Ok(s) => s,
        Err(e) => return io_verdict("bind", &e),
    };
    if let Err(e) = socket.connect(addr).await {
        return io_verdict("connect", &e);
    }
    let mut buf = vec![0u8; 2048];
    loop {
        if let Err(e) = socket.send(b"probe").await {
            return io_verdict("send", &e);
        }
        match tokio::time::timeout(UDP_RESEND, socket.recv(&mut buf)).await {
            Err(_) => continue,
            Ok(Err(e)) => return io_verdict("receive", &e),
            Ok(Ok(n)) if buf[..n].starts_with(b"hostname=") => return Verdict::Reached,
            Ok(Ok(n)) => {
                return Verdict::Failed(format!(
                    "answered without a greeting: {:?}",
                    String::from_utf8_lossy(&buf[..n])
                ));
            }
        }
    }
}

/// Probes every target at once; results come back in the order of `targets`.
pub async fn probe_all(targets: &[ProbeTarget], timeout: Duration) -> Vec<ProbeResult> {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (i, &target) in targets.iter().enumerate() {
        tasks.spawn(async move {
            let verdict = probe(target, timeout).await;
            (i, verdict, started.elapsed())
        });
    }
    let mut results: Vec<Option<ProbeResult>> = vec![None; targets.len()];
    while let Some(done) = tasks.join_next().await {
        let (i, verdict, took) = match done {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "probe task failed");
                continue;
            }
        };
        results[i] = Some(ProbeResult {
            target: targets[i],
            verdict,
            at: Duration::ZERO,
            took,
        });
    }
    results
        .into_iter()
        .zip(targets)
        .map(|(r, &target)| {
            r.unwrap_or(ProbeResult {
                target,
                verdict: Verdict::Failed("the probe task died".into()),
                at: Duration::ZERO,
                took: started.elapsed(),
            })
        })
        .collect()
}

/// Starts a round of probes every `every` until `stop` completes, handing each result to
/// `report` as it arrives; waits for the probes in flight before returning. For watching a
/// destination continuously (a pod that must be isolated from its first packet).
pub async fn probe_repeatedly(
    targets: &[ProbeTarget],
    timeout: Duration,
    every: Duration,
    stop: impl std::future::Future<Output = ()>,
    mut report: impl FnMut(ProbeResult),
) {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = tick.tick() => {
                for &target in targets {
                    tasks.spawn(async move {
                        let at = started.elapsed();
                        let verdict = probe(target, timeout).await;
                        ProbeResult { target, verdict, at, took: started.elapsed() - at }
                    });
                }
            }
            Some(done) = tasks.join_next() => match done {
                Ok(result) => report(result),
                Err(e) => tracing::error!(error = %e, "probe task failed"),
            },
        }
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(result) => report(result),
            Err(e) => tracing::error!(error = %e, "probe task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print_back() {
        let t: ProbeTarget = "udp:10.16.0.4:81".parse().unwrap();
        assert_eq!(t.proto, ProbeProto::Udp);
        assert_eq!(t.addr, "10.16.0.4:81".parse().unwrap());
        assert_eq!(t.to_string(), "udp:10.16.0.4:81");
        assert!("sctp:10.16.0.4:81".parse::<ProbeTarget>().is_err());
        assert!("tcp:10.16.0.4".parse::<ProbeTarget>().is_err());
        assert!("10.16.0.4:80".parse::<ProbeTarget>().is_err());
    }

    #[test]
    fn result_lines_round_trip() {
        let target: ProbeTarget = "tcp:10.16.0.4:80".parse().unwrap();
        for verdict in [
            Verdict::Reached,
            Verdict::Dropped,
            Verdict::Refused,
            Verdict::Failed("connect: network unreachable".into()),
        ] {
            let line = ProbeResult {
                target,
                verdict: verdict.clone(),
                at: Duration::from_millis(7),
                took: Duration::from_millis(1000),
            }
            .to_string();
            let parsed = parse_result_line(&line).unwrap();
            assert_eq!((parsed.target, parsed.verdict), (target, verdict), "{line}");
            assert_eq!(parsed.at, Duration::from_millis(7));
            assert_eq!(parsed.took, Duration::from_millis(1000));
        }
        assert_eq!(parse_result_line("tcp:10.16.0.4:80 maybe"), None);
        assert_eq!(parse_result_line("tcp:10.16.0.4:80 reached"), None);
        assert_eq!(parse_result_line(""), None);
    }

    #[tokio::test]
    async fn loopback_servers_are_reached_and_closed_ports_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, peer)) = listener.accept().await {
                let hello = super::super::greeting("t", peer);
                let _ = tokio::io::AsyncWriteExt::write_all(&mut s, hello.as_bytes()).await;
            }
        });
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let udp_closed = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let targets = [
            ProbeTarget {
                proto: ProbeProto::Tcp,
                addr: open,
            },
            ProbeTarget {
                proto: ProbeProto::Tcp,
                addr: closed,
            },
            ProbeTarget {
                proto: ProbeProto::Udp,
                addr: udp_closed,
            },
        ];
        let results = probe_all(&targets, Duration::from_secs(2)).await;
        let verdicts: Vec<Verdict> = results.into_iter().map(|r| r.verdict).collect();
        assert_eq!(
            verdicts,
            [Verdict::Reached, Verdict::Refused, Verdict::Refused]
        );
    }
}
