//! Shared harness for the `rovn-cni` integration tests: runs the real built binary the way
//! a container runtime does, and serves a real unix socket with the real protocol types.

#![allow(dead_code)]

use std::io::{BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rovn_node::cni::protocol::{CniRequest, CniResponse, read_message, write_message};
use rovn_testkit::process::ChildGuard;

/// How long one binary run may take before the test declares it hung.
pub const RUN_LIMIT: Duration = Duration::from_secs(20);

/// What the runtime connects to the plugin's stdin.
pub enum Stdin {
    /// `/dev/null`.
    Null,
    /// These bytes, then EOF.
    Bytes(Vec<u8>),
    /// A pipe the test never writes to nor closes while the binary runs.
    HeldOpen,
}

/// The visible outcome of one run.
#[derive(Debug)]
pub struct Run {
    /// `None` when killed by a signal.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Wall time from spawn to exit, for timeout assertions.
    pub elapsed: Duration,
}

impl Run {
    /// Stdout parsed as JSON; panics with the whole run in the message if it is not.
    pub fn stdout_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts the run failed with exactly one CNI error object of `code` and returns it.
    pub fn assert_cni_error(&self, code: u64) -> serde_json::Value {
        assert_ne!(self.exit_code, Some(0), "expected failure: {self:?}");
        assert!(self.exit_code.is_some(), "killed by a signal: {self:?}");
        let error = self.stdout_json();
        assert_eq!(
            error["code"],
            serde_json::json!(code),
            "wrong code: {self:?}"
        );
        assert!(
            error["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "no msg: {self:?}"
        );
        assert!(error["cniVersion"].is_string(), "no cniVersion: {self:?}");
        error
    }
}

/// Runs `rovn-cni` with exactly `env` (nothing inherited) and `stdin`.
pub fn run_cni(env: &[(&str, &str)], stdin: Stdin) -> Run {
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_rovn-cni"));
    command
        .env_clear()
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.stdin(match stdin {
        Stdin::Null => Stdio::null(),
        Stdin::Bytes(_) | Stdin::HeldOpen => Stdio::piped(),
    });
    let mut guard = ChildGuard::new(command.spawn().expect("spawn rovn-cni"));
    let child = guard.child().expect("child present");
    let held_stdin = match stdin {
        Stdin::Bytes(bytes) => {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
            None
        }
        Stdin::HeldOpen => child.stdin.take(),
        Stdin::Null => None,
    };
    let mut stdout_pipe = child.stdout.take().expect("stdout pipe");
    let mut stderr_pipe = child.stderr.take().expect("stderr pipe");
    let stdout_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout_pipe.read_to_string(&mut text);
        text
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for rovn-cni") {
            break status;
        }
        assert!(
            started.elapsed() < RUN_LIMIT,
            "rovn-cni hung for {RUN_LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    guard.release();
    drop(held_stdin);
    Run {
        exit_code: status.code(),
        stdout: stdout_reader.join().expect("stdout reader"),
        stderr: stderr_reader.join().expect("stderr reader"),
        elapsed,
    }
}

/// The env of a kubelet-driven ADD for pod `default/web`.
pub fn add_env(socket: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "3f2a9c1e7b"),
        ("CNI_NETNS", "/var/run/netns/cni-1234"),
        ("CNI_IFNAME", "eth0"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=3f2a9c1e7b;K8S_POD_UID=8d1c",
        ),
        ("CNI_PATH", "/opt/cni/bin"),
        ("ROVN_CNI_SOCKET", socket),
    ]
}

/// Replaces or adds `key` in an env list.
pub fn with<'a>(
    mut env: Vec<(&'static str, &'a str)>,
    key: &'static str,
    value: &'a str,
) -> Vec<(&'static str, &'a str)> {
    env.retain(|(k, _)| *k != key);
    env.push((key, value));
    env
}

/// Removes `key` from an env list.
pub fn without<'a>(
    mut env: Vec<(&'static str, &'a str)>,
    key: &str,
) -> Vec<(&'static str, &'a str)> {
    env.retain(|(k, _)| *k != key);
    env
}

/// How the test agent answers one connection.
pub enum Reply {
    /// A proper response frame.
    Response(CniResponse),
    /// These raw bytes, then close.
    Raw(Vec<u8>),
    /// Read the request, then keep the connection open without answering until shutdown.
    Hold,
}

/// A tiny agent on a real unix socket in its own temp dir. It records every request it
/// receives and answers with what the test's function decides. Dropping it stops it and
/// removes the socket.
pub struct TestAgent {
    dir: tempfile::TempDir,
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    requests: mpsc::Receiver<CniRequest>,
    thread: Option<JoinHandle<()>>,
}

impl TestAgent {
    /// Binds a fresh socket and serves it on a thread until dropped.
    pub fn start<F>(answer: F) -> TestAgent
    where
        F: Fn(&CniRequest) -> Reply + Send + 'static,
    {
        let dir = tempfile::Builder::new()
            .prefix("rovn-cni-test-")
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("cni.sock");
        let listener = UnixListener::bind(&socket).expect("bind test agent socket");
        let stop = Arc::new(AtomicBool::new(false));
        let (sender, requests) = mpsc::channel();
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for connection in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = connection else { continue };
                let mut reader = BufReader::new(&stream);
                let Ok(request) = read_message::<_, CniRequest>(&mut reader) else {
                    continue;
                };
                let reply = answer(&request);
                let _ = sender.send(request);
                let mut writer = &stream;
                match reply {
                    Reply::Response(response) => {
                        let _ = write_message(&mut writer, &response);
                    }
                    Reply::Raw(bytes) => {
                        let _ = writer.write_all(&bytes);
                    }
                    Reply::Hold => held.push(stream),
                }
            }
        });
        TestAgent {
            dir,
            socket,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    /// The socket path, as `ROVN_CNI_SOCKET` or the config's `"socket"` want it.
    pub fn socket(&self) -> &str {
        self.socket.to_str().expect("temp socket path is UTF-8")
    }

    /// The agent's private temp dir, removed with it; tests put their log files there.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The next request the agent received, waiting briefly for it.
    pub fn received(&self) -> CniRequest {
        self.requests
            .recv_timeout(Duration::from_secs(5))
            .expect("agent received no request")
    }

    /// True if nothing (more) reached the agent.
    pub fn received_nothing(&self) -> bool {
        self.requests.try_recv().is_err()
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.socket);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
