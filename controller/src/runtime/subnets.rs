//! Subnet objects: validated together into the Subnet set and the address pools, rejections
//! reported, and each Subnet's status written when it changes.

use std::collections::{HashMap, HashSet};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use rovn_api::Owner;
use rovn_api::subnet::Subnet;

use super::kubeio;
use super::reports::Done;
use super::world::World;
use crate::subnets::{SubnetOutcome, status_needs_write, subnet_status, validate_subnets};

/// What NB rows depend on of the Subnet set: the accepted Subnets as rendered, and the rejected
/// ones (kept as they are).
fn rendered(world: &World) -> (Vec<crate::desired::Subnet>, Vec<String>) {
    let set = &world.subnet_set;
    let mut accepted: Vec<_> = set.accepted().map(|c| c.desired()).collect();
    accepted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut rejected: Vec<String> = set.rejected().iter().map(|r| r.name.clone()).collect();
    rejected.sort();
    (accepted, rejected)
}

/// The Subnets' bookkeeping.
#[derive(Default)]
pub(super) struct Subnets {
    /// The rejection last reported per Subnet, so a rejection is reported once per message.
    reported: HashMap<String, String>,
    /// Subnets whose status write is in flight.
    status_pending: HashSet<String>,
}

impl Subnets {
    /// Validates every Subnet again and rebuilds the pools that changed; returns the Subnets
    /// whose pool was rebuilt (their pods must take their addresses again). When what NB rows
    /// depend on changed (a Subnet accepted, rejected, or its CIDR or gateway), the next round
    /// is a full one; the controller's own status writes change none of that.
    pub fn changed(&mut self, world: &mut World) -> Vec<String> {
        let rendered_before = rendered(world);
        let objects: Vec<Subnet> = world
            .caches
            .subnets
            .state()
            .iter()
            .map(|s| s.as_ref().clone())
            .collect();
        world.subnet_set = validate_subnets(&objects, &world.settings.reserved);
        let changes = world.alloc.update_subnets(&world.subnet_set);
        let by_name: HashMap<String, &Subnet> = objects.iter().map(|s| (s.name_any(), s)).collect();
        for (name, error) in &changes.failed {
            if let Some(object) = by_name.get(name) {
                world.events.warn(
                    kubeio::reference(*object),
                    "InvalidSubnet",
                    "ValidateSubnet",
                    format!("{}: {error}", Owner::subnet(name)),
                );
            }
        }
        for rejection in world.subnet_set.rejected() {
            let message = format!("{}: {}", rejection.reason, rejection.message);
            if self.reported.get(&rejection.name) == Some(&message) {
                continue;
            }
            if let Some(object) = by_name.get(&rejection.name) {
                world.events.warn(
                    kubeio::reference(*object),
                    &rejection.reason.to_string(),
                    "ValidateSubnet",
                    format!(
                        "{} rejected: {}",
                        Owner::subnet(&rejection.name),
                        rejection.message
                    ),
                );
            }
            self.reported.insert(rejection.name.clone(), message);
        }
        let set = &world.subnet_set;
        self.reported
            .retain(|name, _| set.rejection(name).is_some());
        if rendered(world) != rendered_before {
            world.queue.everything();
        }
        changes.rebuilt
    }

    /// Subnets rejected now: a Subnet edited into an invalid state keeps the switch it had,
    /// and so its pods keep their ports, until the edit is fixed or the Subnet deleted.
    pub fn kept(world: &World) -> impl Iterator<Item = Owner> + '_ {
        world
            .subnet_set
            .rejected()
            .iter()
            .map(|r| Owner::subnet(&r.name))
    }

    /// Writes every Subnet status that differs from what the object shows.
    pub fn write_statuses(&mut self, world: &mut World) {
        let now = Timestamp::now();
        for object in world.caches.subnets.state() {
            let name = object.name_any();
            if self.status_pending.contains(&name) {
                continue;
            }
            let outcome = if let Some(config) = world.subnet_set.get(&name) {
                match world.alloc.usage(&name) {
                    Some(usage) => SubnetOutcome::Accepted(config, usage),
                    None => continue,
                }
            } else if let Some(rejection) = world.subnet_set.rejection(&name) {
                SubnetOutcome::Rejected(rejection)
            } else {
                continue;
            };
            let status = subnet_status(outcome, object.status.as_ref(), now);
            if !status_needs_write(object.status.as_ref(), &status) {
                continue;
            }
            self.status_pending.insert(name.clone());
            let kube = world.kube.clone();
            let written = name.clone();
            world.spawn(
                async move {
                    if let Err(e) = kubeio::patch_subnet_status(kube, &name, &status).await {
                        tracing::warn!(subnet = %name, error = %e, "subnet status");
                    }
                },
                move |()| Done::SubnetStatusWritten(written),
            );
        }
    }

    /// A status write is done (written or not: the next change writes again).
    pub fn status_written(&mut self, name: &str) {
        self.status_pending.remove(name);
    }
}
