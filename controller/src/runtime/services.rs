//! Services and their EndpointSlices: which Service's load balancers a change is about, and
//! each Service as a round renders it. Nothing here writes to Kubernetes; the rows follow the
//! objects in the next round.

use std::collections::{BTreeSet, HashMap, HashSet};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use rovn_api::{Owner, names};

use super::kubeio::Problems;
use super::watch::Key;
use super::world::World;
use crate::desired::Service;
use crate::services::{service_of_slice, service_view};

/// The slices of each Service, from the slices' labels.
#[derive(Default)]
pub(super) struct Services {
    /// Service key → the keys of its slices.
    slices_of: HashMap<Key, BTreeSet<Key>>,
    /// Slice key → the Service it was last seen to belong to.
    service_of: HashMap<Key, Key>,
    /// What was reported ignored of each Service.
    problems: Problems,
    /// The Services last seen with `internalTrafficPolicy: Local`: their backends live in
    /// every node's template row, so a change to one of them is a change to every node.
    local: HashSet<Key>,
}

impl Services {
    /// A Service changed or went away: its load balancers are rendered again.
    pub fn service_changed(&mut self, world: &mut World, key: &Key) {
        self.touch(world, key);
    }

    /// A slice changed or went away: the Services it belonged to before and after are
    /// rendered again.
    pub fn slice_changed(&mut self, world: &mut World, key: &Key) {
        let now = slice(world, key).and_then(|s| {
            service_of_slice(&s).map(|name| Key {
                namespace: key.namespace.clone(),
                name: name.to_string(),
            })
        });
        let before = self.service_of.remove(key);
        if let Some(before) = &before {
            if let Some(slices) = self.slices_of.get_mut(before) {
                slices.remove(key);
                if slices.is_empty() {
                    self.slices_of.remove(before);
                }
            }
            self.touch(world, before);
        }
        if let Some(now) = now {
            self.slices_of
                .entry(now.clone())
                .or_default()
                .insert(key.clone());
            self.service_of.insert(key.clone(), now.clone());
            if before.as_ref() != Some(&now) {
                self.touch(world, &now);
            }
        }
    }

    /// A (re)list of slices finished: the index is rebuilt from the cache and every Service
    /// rendered again.
    pub fn slices_resynced(&mut self, world: &mut World) {
        self.slices_of.clear();
        self.service_of.clear();
        for slice in world.caches.slices.state() {
            let Some(service) = service_of_slice(&slice) else {
                continue;
            };
            let key = Key::of(slice.as_ref());
            let service = Key {
                namespace: key.namespace.clone(),
                name: service.to_string(),
            };
            self.slices_of
                .entry(service.clone())
                .or_default()
                .insert(key.clone());
            self.service_of.insert(key, service);
        }
        world.queue.everything();
    }

    /// The node-local Services, whose endpoints a node's rows are rendered from.
    pub fn local_services(&mut self, world: &mut World) -> Vec<Service> {
        let keys: Vec<Key> = self.local.iter().cloned().collect();
        keys.iter()
            .filter_map(|key| self.desired_of(world, key))
            .filter(|s| s.local_only)
            .collect()
    }

    /// The Service's rows may differ from NB, and so may the load balancer group (owned by
    /// the cluster) that lists them; for a node-local Service (now or before), so may every
    /// node's template row.
    fn touch(&mut self, world: &mut World, key: &Key) {
        world.queue.touch(Owner::service(&key.namespace, &key.name));
        world.queue.touch(Owner::cluster(names::CLUSTER_ROUTER));
        let local = world
            .caches
            .services
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
            .and_then(|s| s.spec.as_ref()?.internal_traffic_policy.clone())
            .is_some_and(|policy| policy == "Local");
        let was_local = if local {
            !self.local.insert(key.clone())
        } else {
            self.local.remove(key)
        };
        if local || was_local {
            for node in world.caches.nodes.state() {
                world.queue.touch(Owner::node(&node.name_any()));
            }
        }
    }

    /// Every Service with load balancers, for a round over the whole cluster.
    pub fn desired(&mut self, world: &mut World) -> Vec<Service> {
        let keys: Vec<Key> = world
            .caches
            .services
            .state()
            .iter()
            .map(|s| Key::of(s.as_ref()))
            .collect();
        keys.iter()
            .filter_map(|key| self.desired_of(world, key))
            .collect()
    }

    /// The Service of `owner` as its load balancers see it; `None` when it has none (gone,
    /// headless, ExternalName). What of its objects was left out is reported once, as a
    /// Warning Event on the Service.
    pub fn service_of(&mut self, world: &mut World, owner: &Owner) -> Option<Service> {
        let key = Key {
            namespace: owner.namespace()?.to_string(),
            name: owner.name().to_string(),
        };
        self.desired_of(world, &key)
    }

    fn desired_of(&mut self, world: &mut World, key: &Key) -> Option<Service> {
        let owner = Owner::service(&key.namespace, &key.name);
        let Some(service) = world
            .caches
            .services
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
        else {
            self.problems.forget(&owner);
            return None;
        };
        let slices: Vec<_> = self
            .slices_of
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|k| slice(world, k))
            .collect();
        let view = service_view(&service, slices.iter().map(AsRef::as_ref));
        if view.service.as_ref().is_some_and(|s| s.local_only) {
            self.local.insert(key.clone());
        }
        self.problems.report(
            &world.events,
            &owner,
            "EndpointIgnored",
            "RenderLoadBalancer",
            view.ignored,
        );
        view.service
    }
}

fn slice(world: &World, key: &Key) -> Option<std::sync::Arc<EndpointSlice>> {
    world
        .caches
        .slices
        .get(&ObjectRef::new(&key.name).within(&key.namespace))
}
