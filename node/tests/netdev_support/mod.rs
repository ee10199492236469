//! Shared harness of the netdev tests: throwaway network namespaces (deleted on drop, even when
//! the test fails), a way to run the "agent side" inside one of them so the root namespace is
//! never touched, and `ip`/`ethtool` probes that observe the result independently of rovn's code.

#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use rovn_testkit::wait::{self, Wait};
use serde_json::Value;

/// A named network namespace (`ip netns add`), removed when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates a namespace whose name is unique per process and test (`tag` says which role).
    pub fn new(tag: &str) -> Netns {
        let name = format!("rovnt-{}", rovn_testkit::unique::name(tag));
        run_ok("ip", &["netns", "add", &name]);
        let netns = Netns { name };
        netns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        netns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// Runs a command inside the namespace and returns its stdout; panics (failing the test)
    /// with its stderr when it fails.
    pub fn exec_ok(&self, argv: &[&str]) -> String {
        let mut full = vec!["netns", "exec", self.name.as_str()];
        full.extend_from_slice(argv);
        run_ok("ip", &full)
    }

    /// Runs a command inside the namespace; whether it succeeded.
    pub fn exec_succeeds(&self, argv: &[&str]) -> bool {
        let mut full = vec!["netns", "exec", self.name.as_str()];
        full.extend_from_slice(argv);
        Command::new("ip")
            .args(&full)
            .output()
            .map(|out| out.status.success())
            .unwrap_or(false)
    }

    /// `ip -j <args>` inside the namespace, parsed.
    pub fn ip_json(&self, args: &[&str]) -> Value {
        let mut argv = vec!["ip", "-j"];
        argv.extend_from_slice(args);
        let out = self.exec_ok(&argv);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {out}"))
    }

    /// The one link called `ifname` as `ip -j -d link show` reports it.
    pub fn link(&self, ifname: &str) -> Value {
        self.ip_json(&["-d", "link", "show", "dev", ifname])[0].clone()
    }

    /// The link's `operstate`, once it is "UP" or after two seconds. The kernel's link watcher
    /// updates operational state asynchronously after a device (or its veth peer) comes up.
    pub fn settled_operstate(&self, ifname: &str) -> String {
        let state = || {
            self.link(ifname)["operstate"]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        let up = Wait::new(Duration::from_secs(2))
            .every(Duration::from_millis(20))
            .poll(|| wait::holds(state() == "UP"));
        match up {
            Ok(Some(())) => "UP".to_string(),
            _ => state(),
        }
    }

    /// Whether a link called `ifname` exists.
    pub fn has_link(&self, ifname: &str) -> bool {
        self.exec_succeeds(&["ip", "link", "show", "dev", ifname])
    }

    /// `ip -j route show <args>` inside the namespace.
    pub fn routes(&self, args: &[&str]) -> Vec<Value> {
        let mut argv = vec!["route", "show"];
        argv.extend_from_slice(args);
        self.ip_json(&argv).as_array().cloned().unwrap_or_default()
    }

    /// Runs `body` on a fresh thread that has entered this namespace, with its own runtime, the
    /// way the agent would run in it. Panics in `body` propagate to the test.
    pub fn run<F, Fut, T>(&self, body: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        self.run_with(tokio::runtime::Builder::new_current_thread, body)
    }

    /// Like [`Netns::run`] on a multi-threaded runtime, as the agent runs; its workers are
    /// started from the thread inside the namespace and so live in it too.
    pub fn run_on_workers<F, Fut, T>(&self, body: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        self.run_with(tokio::runtime::Builder::new_multi_thread, body)
    }

    fn run_with<F, Fut, T>(&self, builder: fn() -> tokio::runtime::Builder, body: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let path = self.path();
        let worker = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open test netns");
            setns(&file, CloneFlags::CLONE_NEWNET).expect("enter test netns");
            builder()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("test runtime")
                .block_on(body())
        });
        match worker.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// Runs a command, panicking with its output when it fails.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawn {program} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The IPv4 addresses of a link as `addr/prefix` strings.
pub fn ipv4_addresses(link_addr_json: &Value) -> Vec<String> {
    link_addr_json["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|info| info["family"] == "inet")
        .map(|info| {
            format!(
                "{}/{}",
                info["local"].as_str().unwrap_or(""),
                info["prefixlen"]
            )
        })
        .collect()
}
