//! Test fixtures: real NB and SB `ovsdb-server`s and `ovn-northd` (from `rovn-testkit`), a
//! replicating NB client, cluster snapshots, and `ovn-nbctl` / `ovn-sbctl` wrappers. Everything
//! is killed and removed on drop, also when a test fails.
#![allow(dead_code)]

pub mod kube;

use std::net::Ipv4Addr;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use rovn_api::MacAddr;
use rovn_controller::desired::{ClusterState, JoinSubnet, Node, PodPort, Subnet, desired_state};
use rovn_controller::reconcile::{self, Applied, ApplyOptions, Plan};
use rovn_ovsdb::transport::Remote;
use rovn_ovsdb::{Client, ClientConfig};
use rovn_testkit::{OvnCentral, wait};

/// NB, optionally SB + ovn-northd: the kit's [`OvnCentral`] (`nb`, `sb`, `nb_remote()`,
/// `nbctl()`, `sbctl()` through `Deref`) plus a controller-shaped NB client.
pub struct Ovn(OvnCentral);

impl Ovn {
    /// NB only: for tests about what rovn writes, not what northd makes of it.
    pub fn nb_only() -> Result<Ovn> {
        OvnCentral::nb_only().map(Ovn)
    }

    /// NB, SB and an `ovn-northd` translating one into the other.
    pub fn with_northd() -> Result<Ovn> {
        OvnCentral::with_northd().map(Ovn)
    }

    /// A fresh NB client (a controller start), synced.
    pub async fn client(&self) -> Result<Client> {
        let remote = Remote::Unix(self.nb.sock().to_path_buf());
        let mut config = ClientConfig::new("OVN_Northbound", vec![remote]);
        config.tables = reconcile::monitored_tables();
        config.indexes = reconcile::indexes();
        let client = Client::start(config)?;
        client.wait_synced(Duration::from_secs(10)).await?;
        Ok(client)
    }
}

impl Deref for Ovn {
    type Target = OvnCentral;

    fn deref(&self) -> &OvnCentral {
        &self.0
    }
}

impl DerefMut for Ovn {
    fn deref_mut(&mut self) -> &mut OvnCentral {
        &mut self.0
    }
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
                internal_ip: None,
            }
        })
        .collect();
    let pod_list = (0..pods).map(|i| pod(i, nodes.max(1))).collect();
    ClusterState {
        join: JoinSubnet {
            cidr: net("100.64.0.0/16"),
            gateway: ip(100, 64, 0, 1),
        },
        service_cidr: net("10.96.0.0/12"),
        subnets: vec![
            Subnet {
                name: "ovn-default".into(),
                cidr: net("10.16.0.0/16"),
                gateway: ip(10, 16, 0, 1),
                private: false,
                allow_subnets: Vec::new(),
            },
            Subnet {
                name: "blue".into(),
                cidr: net("10.17.0.0/16"),
                gateway: ip(10, 17, 0, 1),
                private: false,
                allow_subnets: Vec::new(),
            },
        ],
        nodes: node_list,
        pods: pod_list,
        services: Vec::new(),
        policies: Vec::new(),
        policy_pods: Default::default(),
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

/// Polls `check` every 100 ms until it returns true (`Ok(true)`) or `timeout` passes
/// (`Ok(false)`); an error from `check` ends the wait.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> Result<bool>) -> Result<bool> {
    wait::poll(timeout, || Ok(check()?.then_some(()))).map(|done| done.is_some())
}
