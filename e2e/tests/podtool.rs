//! `rovn-podtool` as pods use it: real sockets on loopback (free-port-probed), real processes.

use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const PODTOOL: &str = env!("CARGO_BIN_EXE_rovn-podtool");

/// Kills the server when the test ends, even on panic.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn podtool(args: &[&str]) -> Output {
    Command::new(PODTOOL).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn start_server(tcp: u16, udp: u16, http: u16) -> Server {
    let child = Command::new(PODTOOL)
        .args([
            "serve",
            "--tcp",
            &tcp.to_string(),
            "--udp",
            &udp.to_string(),
        ])
        .args(["--http", &http.to_string()])
        .env("HOSTNAME", "tool-test")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(Instant::now() < deadline, "podtool serve never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

#[test]
fn serves_tcp_udp_and_http() {
    let (tcp, udp, http) = (free_tcp_port(), free_udp_port(), free_tcp_port());
    let _server = start_server(tcp, udp, http);

    let out = podtool(&[
        "connect",
        "tcp",
        &format!("127.0.0.1:{tcp}"),
        "--message",
        "hi there",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    let mut lines = said.lines();
    assert!(
        lines
            .next()
            .unwrap_or_default()
            .starts_with("hostname=tool-test client=127.0.0.1:"),
        "{said}"
    );
    assert_eq!(lines.next(), Some("hi there"));

    let out = podtool(&[
        "connect",
        "udp",
        &format!("127.0.0.1:{udp}"),
        "--message",
        "ping",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.starts_with("hostname=tool-test client=127.0.0.1:"),
        "{said}"
    );
    assert!(said.trim_end().ends_with("\nping"), "{said}");

    let base = format!("127.0.0.1:{http}");
    let out = podtool(&["connect", "http", &base]);
    assert_eq!(stdout(&out).trim(), "tool-test");
    let out = podtool(&["connect", "http", &base, "--path", "/clientip"]);
    assert!(stdout(&out).starts_with("127.0.0.1:"), "{}", stdout(&out));
    let out = podtool(&["connect", "http", &base, "--message", "a b&c=d%"]);
    assert_eq!(stdout(&out).trim(), "a b&c=d%");
    let out = podtool(&["connect", "http", &base, "--path", "/nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));
}

#[test]
fn refused_connections_fail_with_one_line() {
    let port = free_tcp_port();
    let out = podtool(&["connect", "tcp", &format!("127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn silent_servers_time_out() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let out = podtool(&["connect", "tcp", &addr, "--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let (tcp, udp, http) = (free_tcp_port(), free_udp_port(), free_tcp_port());
    let mut server = start_server(tcp, udp, http);
    let pid = nix::unistd::Pid::from_raw(server.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pause_waits_for_sigterm() {
    let mut paused = Server(
        Command::new(PODTOOL)
            .arg("pause")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        paused.0.try_wait().unwrap().is_none(),
        "pause exited on its own"
    );
    let pid = nix::unistd::Pid::from_raw(paused.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = paused.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "pause ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_arguments_are_reported() {
    let out = podtool(&["serve"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nothing to serve"),
        "{}",
        stderr(&out)
    );
    let out = podtool(&["connect", "tcp", "127.0.0.1:1", "--timeout", "soon"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid duration"),
        "{}",
        stderr(&out)
    );
    let out = podtool(&["connect", "tcp", "no-port-here"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn probe_prints_one_verdict_per_target() {
    let (tcp, udp, http) = (free_tcp_port(), free_udp_port(), free_tcp_port());
    let _server = start_server(tcp, udp, http);
    let closed = free_tcp_port();
    let targets = [
        format!("tcp:127.0.0.1:{tcp}"),
        format!("udp:127.0.0.1:{udp}"),
        format!("tcp:127.0.0.1:{closed}"),
    ];
    let mut args = vec!["probe", "--timeout", "2s"];
    args.extend(targets.iter().map(String::as_str));
    let out = podtool(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    let verdicts: Vec<(&str, &str)> = said
        .lines()
        .map(|l| {
            let mut words = l.split_whitespace();
            (words.next().unwrap_or(""), words.next().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            (targets[0].as_str(), "reached"),
            (targets[1].as_str(), "reached"),
            (targets[2].as_str(), "refused"),
        ],
        "{said}"
    );
    let out = podtool(&["probe", "sctp:127.0.0.1:80"]);
    assert!(!out.status.success());
}
