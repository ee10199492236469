//! Test fixtures: real NB and SB `ovsdb-server`s and `ovn-northd` in a temp dir, a replicating
//! NB client, cluster snapshots, and `ovn-nbctl` / `ovn-sbctl` wrappers. Everything is killed
//! and removed on drop, also when a test fails.
#![allow(dead_code)]

pub mod kube;
#[path = "../../../ovsdb/tests/support/mod.rs"]
pub mod support;

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ipnet::Ipv4Net;
use rovn_api::MacAddr;
use rovn_controller::desired::{ClusterState, JoinSubnet, Node, PodPort, Subnet, desired_state};
use rovn_controller::reconcile::{self, Applied, ApplyOptions, Plan};
use rovn_ovsdb::{Client, ClientConfig};
use support::TestServer;

/// NB, optionally SB + ovn-northd.
pub struct Ovn {
    pub nb: TestServer,
    pub sb: Option<TestServer>,
    northd: Option<Child>,
}

impl Ovn {
    /// NB only: for tests about what rovn writes, not what northd makes of it.
    pub fn nb_only() -> Result<Ovn> {
        Ok(Ovn {
            nb: TestServer::nb()?,
            sb: None,
            northd: None,
        })
    }

    /// NB, SB and an `ovn-northd` translating one into the other.
    pub fn with_northd() -> Result<Ovn> {
        let nb = TestServer::nb()?;
        let sb = TestServer::start(support::SB_SCHEMA)?;
        let dir = nb.dir().to_path_buf();
        let northd = Command::new("ovn-northd")
            .arg(format!("--ovnnb-db={}", nb_socket(&nb)))
            .arg(format!("--ovnsb-db={}", nb_socket(&sb)))
            .arg(format!("--unixctl={}", dir.join("northd.ctl").display()))
            .arg(format!("--log-file={}", dir.join("northd.log").display()))
            .env("OVN_RUNDIR", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting ovn-northd")?;
        Ok(Ovn {
            nb,
            sb: Some(sb),
            northd: Some(northd),
        })
    }

    pub fn nb_remote(&self) -> String {
        nb_socket(&self.nb)
    }

    /// `ovn-nbctl --db=<nb> args...`
    pub fn nbctl(&self, args: &[&str]) -> Result<String> {
        ctl("ovn-nbctl", &self.nb_remote(), args)
    }

    /// `ovn-sbctl --db=<sb> args...`
    pub fn sbctl(&self, args: &[&str]) -> Result<String> {
        let Some(sb) = &self.sb else {
            bail!("this fixture has no SB");
        };
        ctl("ovn-sbctl", &nb_socket(sb), args)
    }

    /// A fresh NB client (a controller start), synced.
    pub async fn client(&self) -> Result<Client> {
        let mut config = ClientConfig::new("OVN_Northbound", vec![self.nb.remote()]);
        config.tables = reconcile::monitored_tables();
        config.indexes = reconcile::indexes();
        let client = Client::start(config)?;
        client.wait_synced(Duration::from_secs(10)).await?;
        Ok(client)
    }
}

impl Drop for Ovn {
    fn drop(&mut self) {
        if let Some(mut child) = self.northd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn nb_socket(server: &TestServer) -> String {
    format!("unix:{}", server.dir().join("db.sock").display())
}

fn ctl(program: &str, db: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .arg(format!("--db={db}"))
        .arg("--timeout=20")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Diffs against the client's replica.
pub fn plan(client: &Client, cluster: &ClusterState) -> Result<Plan> {
    let desired = desired_state(cluster);
    client
        .read(|replica| reconcile::diff(&desired, replica))
        .context("the client has no replica")?
        .context("diff")
}

/// Diff + apply, with the default options.
pub async fn reconcile(client: &Client, cluster: &ClusterState) -> Result<(Plan, Applied)> {
    let plan = plan(client, cluster)?;
    let applied = reconcile::apply(client, &plan, &ApplyOptions::default()).await?;
    Ok((plan, applied))
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

/// Two subnets (`ovn-default` 10.16/16 and `blue` 10.17/16), `nodes` nodes and `pods` pods
/// spread over both subnets and all nodes.
pub fn cluster(nodes: usize, pods: usize) -> ClusterState {
    let net = |s: &str| s.parse::<Ipv4Net>().unwrap_or_default();
    let node_list = (0..nodes)
        .map(|i| {
            let host = 2 + i;
            let join_ip = ip(100, 64, (host / 256) as u8, (host % 256) as u8);
            Node {
                name: format!("node{i}"),
                join_ip,
                join_mac: MacAddr::derived_from(join_ip),
                chassis: None,
            }
        })
        .collect();
    let pod_list = (0..pods).map(|i| pod(i, nodes.max(1))).collect();
    ClusterState {
        join: JoinSubnet {
            cidr: net("100.64.0.0/16"),
            gateway: ip(100, 64, 0, 1),
        },
        subnets: vec![
            Subnet {
                name: "ovn-default".into(),
                cidr: net("10.16.0.0/16"),
                gateway: ip(10, 16, 0, 1),
            },
            Subnet {
                name: "blue".into(),
                cidr: net("10.17.0.0/16"),
                gateway: ip(10, 17, 0, 1),
            },
        ],
        nodes: node_list,
        pods: pod_list,
    }
}

/// Pod `i`: even ones on `ovn-default`, odd ones on `blue`.
pub fn pod(i: usize, nodes: usize) -> PodPort {
    let (switch, second) = if i.is_multiple_of(2) {
        ("ovn-default", 16)
    } else {
        ("blue", 17)
    };
    let host = i / 2 + 2;
    let addr = ip(10, second, (host / 256) as u8, (host % 256) as u8);
    PodPort {
        namespace: format!("ns{}", i % 5),
        name: format!("pod{i}"),
        uid: format!("uid-{i}"),
        node: format!("node{}", i % nodes),
        switch: switch.into(),
        ip: addr,
        mac: MacAddr::derived_from(addr),
    }
}

/// Polls `check` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> Result<bool>) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if check()? {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
