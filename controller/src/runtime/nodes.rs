//! Nodes: each node's address on `join` (restored from its annotations, or allocated and
//! patched), and its port's chassis.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use rovn_api::annotations::{Ipv4NodeJoin, parse_chassis, parse_node_join, render_node_join};
use rovn_api::{MacAddr, Owner};

use super::kubeio;
use super::reports::{Done as WorldDone, NodeDone as Done};
use super::world::{Retries, World};
use crate::desired;
use crate::ipam::Request;

/// A node's join address as the controller holds it.
#[derive(Debug, Clone)]
struct NodeRecord {
    uid: String,
    ip: Ipv4Addr,
    mac: MacAddr,
    written: bool,
    /// The chassis the node's ports are bound to, as last rendered.
    chassis: Option<String>,
    /// The node's IPv4 InternalIP, as last rendered.
    internal_ip: Option<Ipv4Addr>,
}

/// The nodes' bookkeeping.
#[derive(Default)]
pub(super) struct Nodes {
    records: HashMap<String, NodeRecord>,
    attempts: Retries<String>,
}

impl Nodes {
    /// How many nodes hold a join address.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// At start-up and after a relist: every node known before or now, in name order.
    pub fn resync(&mut self, world: &mut World) {
        let mut names: BTreeSet<String> = self.records.keys().cloned().collect();
        names.extend(world.caches.nodes.state().iter().map(|n| n.name_any()));
        for name in names {
            self.changed(world, &name);
        }
    }

    /// Acts on the node `name` as it is in the cache now. Any change of a node's port (or its
    /// chassis, which every pod port on it names) makes the next round a full one.
    pub fn changed(&mut self, world: &mut World, name: &str) {
        let owner = Owner::node(name);
        let Some(node) = world.caches.nodes.get(&ObjectRef::new(name)) else {
            if let Some(record) = self.records.remove(name) {
                world.alloc.join().release(&owner.to_string());
                if record.written {
                    world.queue.everything();
                }
            }
            return;
        };
        let uid = node.metadata.uid.clone().unwrap_or_default();
        let empty = BTreeMap::new();
        let annotations = node.metadata.annotations.as_ref().unwrap_or(&empty);
        let chassis = parse_chassis(annotations);
        let internal_ip = rovn_api::node::internal_ipv4(&node);
        if let Some(record) = self.records.get_mut(name) {
            if record.uid == uid {
                // Status heartbeats change nothing rovn renders; a new chassis changes every
                // port on the node, a new address the node's reroute.
                if record.chassis != chassis || record.internal_ip != internal_ip {
                    record.chassis = chassis;
                    record.internal_ip = internal_ip;
                    world.queue.everything();
                }
                return;
            }
            self.records.remove(name);
            world.alloc.join().release(&owner.to_string());
        }
        // The join pool is IPv4: an IPv6 join address is refused here, like a malformed one.
        match parse_node_join(annotations).and_then(|j| j.map(Ipv4NodeJoin::try_from).transpose()) {
            Ok(Some(join)) if join.cidr == world.settings.join_cidr => {
                match world
                    .alloc
                    .join()
                    .restore(&owner.to_string(), join.ip, join.mac)
                {
                    Ok(_) => {
                        self.records.insert(
                            name.to_string(),
                            NodeRecord {
                                uid,
                                ip: join.ip,
                                mac: join.mac,
                                written: true,
                                chassis,
                                internal_ip,
                            },
                        );
                        world.queue.everything();
                        return;
                    }
                    Err(e) => world.events.warn(
                        kubeio::reference(node.as_ref()),
                        "JoinAddressConflict",
                        "AllocateAddress",
                        format!("{owner}: {e}; allocating a new join address"),
                    ),
                }
            }
            Ok(_) => {}
            Err(e) => world.events.warn(
                kubeio::reference(node.as_ref()),
                "InvalidAnnotation",
                "AllocateAddress",
                format!("{owner}: {e}; allocating a new join address"),
            ),
        }
        let allocation = match world
            .alloc
            .join()
            .allocate(&owner.to_string(), Request::default())
        {
            Ok(a) => a,
            Err(e) => {
                world.events.warn(
                    kubeio::reference(node.as_ref()),
                    e.reason(),
                    "AllocateAddress",
                    format!("{owner}: {e}"),
                );
                return;
            }
        };
        self.records.insert(
            name.to_string(),
            NodeRecord {
                uid: uid.clone(),
                ip: allocation.ip,
                mac: allocation.mac,
                written: false,
                chassis,
                internal_ip,
            },
        );
        let annotations = render_node_join(
            &Ipv4NodeJoin {
                ip: allocation.ip,
                mac: allocation.mac,
                cidr: world.settings.join_cidr,
                gateway: world.alloc.join_gateway(),
            }
            .into(),
        );
        let rv = node.metadata.resource_version.clone();
        let kube = world.kube.clone();
        let (name, patch_name, patch_uid) = (name.to_string(), name.to_string(), uid.clone());
        world.spawn(
            async move {
                kubeio::patch_node_annotations(
                    kube,
                    &patch_name,
                    &patch_uid,
                    rv.as_deref(),
                    &annotations,
                )
                .await
                .map(drop)
            },
            move |result| WorldDone::Node(Done::Patched { name, uid, result }),
        );
    }

    /// A background write of a node's is done.
    pub fn done(&mut self, world: &mut World, done: Done) {
        let (name, uid, result) = match done {
            Done::Retry(name) => return self.changed(world, &name),
            Done::Patched { name, uid, result } => (name, uid, result),
        };
        let Some(record) = self.records.get_mut(&name) else {
            return;
        };
        if record.uid != uid || record.written {
            return;
        }
        match result {
            Ok(()) => {
                record.written = true;
                self.attempts.forget(&name);
                world.queue.everything();
            }
            Err(e) => {
                self.records.remove(&name);
                world.alloc.join().release(&Owner::node(&name).to_string());
                if e.is_not_found() {
                    return;
                }
                tracing::warn!(node = %name, error = %e, "join annotation patch failed; retrying");
                let delay = self.attempts.failed(&name);
                world.after(delay, WorldDone::Node(Done::Retry(name)));
            }
        }
    }

    /// Every node whose join address is written, with its chassis, for a full render.
    /// One node as [`Nodes::desired`] lists it.
    pub fn node(&self, name: &str) -> Option<desired::Node> {
        let r = self.records.get(name).filter(|r| r.written)?;
        Some(desired::Node {
            name: name.to_string(),
            join_ip: r.ip,
            join_mac: r.mac,
            chassis: r.chassis.clone(),
            internal_ip: r.internal_ip,
        })
    }

    pub fn desired(&self) -> Vec<desired::Node> {
        self.records
            .iter()
            .filter(|(_, r)| r.written)
            .map(|(name, r)| desired::Node {
                name: name.clone(),
                join_ip: r.ip,
                join_mac: r.mac,
                chassis: r.chassis.clone(),
                internal_ip: r.internal_ip,
            })
            .collect()
    }
}
