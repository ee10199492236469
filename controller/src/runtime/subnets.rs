//! Subnet objects: validated together into the Subnet set and the address pools, rejections
//! reported, and each Subnet's status written when it changes; the finalizer that keeps a
//! deleted Subnet while pods use it; `ovn-default` re-created when it is gone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use rovn_api::Owner;
use rovn_api::subnet::Subnet;

use super::kubeio;
use super::reports::Done;
use super::world::{Retries, World};
use crate::subnets::{
    Addressing, Facts, SubnetOutcome, accepted_condition, finalizers_with, has_finalizer,
    is_terminating, status_needs_write, subnet_status, validate_subnets_with,
};

/// The pods holding addresses on each Subnet: (address, pod owner as text).
pub(super) type Holders = BTreeMap<String, Vec<(Ipv4Addr, String)>>;

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
    /// The Terminating / SpecChangeRefused message last reported per Subnet.
    reported_holds: HashMap<String, String>,
    /// The addressing this process last accepted per Subnet (the status says it for what an
    /// earlier process accepted).
    accepted: BTreeMap<String, Addressing>,
    /// Subnets whose finalizer patch is in flight.
    finalizer_pending: HashSet<String>,
    finalizer_retries: Retries<String>,
    /// The create of a missing `ovn-default` is in flight.
    default_pending: bool,
    default_retries: Retries<()>,
}

impl Subnets {
    /// Validates every Subnet again and rebuilds the pools that changed; returns the Subnets
    /// whose pool was rebuilt (their pods must take their addresses again). When what NB rows
    /// depend on changed (a Subnet accepted, rejected, or its CIDR or gateway), the next round
    /// is a full one; the controller's own status writes change none of that.
    pub fn changed(&mut self, world: &mut World, holders: Holders) -> Vec<String> {
        let rendered_before = rendered(world);
        let objects: Vec<Subnet> = world
            .caches
            .subnets
            .state()
            .iter()
            .map(|s| s.as_ref().clone())
            .collect();
        let present: HashSet<String> = objects.iter().map(|s| s.name_any()).collect();
        self.accepted.retain(|name, _| present.contains(name));
        let mut accepted = self.accepted.clone();
        for object in &objects {
            if let Some(addressing) = Addressing::from_status(object) {
                accepted.entry(object.name_any()).or_insert(addressing);
            }
        }
        let facts = Facts { holders, accepted };
        world.subnet_set = validate_subnets_with(&objects, &world.settings.reserved, &facts);
        for config in world.subnet_set.accepted() {
            self.accepted.insert(
                config.name.clone(),
                Addressing {
                    cidr: config.cidr,
                    gateway: config.gateway,
                    exclude_ips: config.exclude_ips.clone(),
                },
            );
        }
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
        self.report_holds(world, &by_name);
        if rendered(world) != rendered_before {
            world.queue.everything();
        }
        changes.rebuilt
    }

    /// An Event when a Subnet starts (or changes how it goes on) holding for its pods: deleted
    /// while in use (`Terminating`), or an edit refused (`SpecChangeRefused`).
    fn report_holds(&mut self, world: &World, by_name: &HashMap<String, &Subnet>) {
        let mut now = HashMap::new();
        for config in world.subnet_set.accepted() {
            let (reason, message) = accepted_condition(config);
            if !config.terminating && config.refused.is_empty() {
                continue;
            }
            if self.reported_holds.get(&config.name) != Some(&message)
                && let Some(object) = by_name.get(&config.name)
            {
                world.events.warn(
                    kubeio::reference(*object),
                    reason,
                    "ValidateSubnet",
                    format!("{}: {message}", Owner::subnet(&config.name)),
                );
            }
            now.insert(config.name.clone(), message);
        }
        self.reported_holds = now;
    }

    /// Puts the finalizer on every accepted Subnet that lacks it, and takes it off a deleted
    /// Subnet once no pod uses it (released) and NB holds none of its rows (`owns_rows`). Each
    /// patch is checked against the object's resourceVersion; a failure is retried.
    pub fn finalizers(&mut self, world: &mut World, owns_rows: impl Fn(&Owner) -> bool) {
        for object in world.caches.subnets.state() {
            let name = object.name_any();
            if self.finalizer_pending.contains(&name) {
                continue;
            }
            let add = !is_terminating(&object)
                && !has_finalizer(&object)
                && world.subnet_set.get(&name).is_some();
            let remove = is_terminating(&object)
                && has_finalizer(&object)
                && world.subnet_set.released().contains(&name)
                && !owns_rows(&Owner::subnet(&name));
            if !add && !remove {
                continue;
            }
            let finalizers = finalizers_with(&object, add);
            let rv = object.metadata.resource_version.clone();
            self.finalizer_pending.insert(name.clone());
            let kube = world.kube.clone();
            let reported = name.clone();
            if remove {
                tracing::info!(subnet = %name, "no pod uses the deleted Subnet and its rows are gone: removing its finalizer");
            }
            world.spawn(
                async move {
                    kubeio::patch_subnet_finalizers(kube, &name, rv.as_deref(), &finalizers).await
                },
                move |result| Done::SubnetFinalizerWritten(reported, result),
            );
        }
    }

    /// A finalizer patch is done: on failure (a conflict included) the Subnets are looked at
    /// again after a backoff, from the objects as they are then.
    pub fn finalizer_written(
        &mut self,
        world: &mut World,
        name: &str,
        result: Result<(), kubeio::WriteError>,
    ) {
        self.finalizer_pending.remove(name);
        let key = name.to_string();
        match result {
            Ok(()) => self.finalizer_retries.forget(&key),
            Err(e) if e.is_not_found() => self.finalizer_retries.forget(&key),
            Err(e) => {
                tracing::warn!(subnet = %name, error = %e, "Subnet finalizer; retrying");
                let delay = self.finalizer_retries.failed(&key);
                world.after(delay, Done::SubnetsRecheck);
            }
        }
    }

    /// `ovn-default` belongs to the controller: when the object is gone (deleted and
    /// released), it is created again from the flags.
    pub fn ensure_default(&mut self, world: &mut World) {
        let present = world
            .caches
            .subnets
            .get(&kube::runtime::reflector::ObjectRef::new(
                rovn_api::names::DEFAULT_SUBNET,
            ))
            .is_some();
        if present || self.default_pending {
            return;
        }
        let settings = &world.settings;
        let object = settings.default_subnet();
        self.default_pending = true;
        let kube = world.kube.clone();
        world.spawn(
            async move { kubeio::create_if_absent(kube, &object).await },
            Done::DefaultSubnetCreated,
        );
    }

    /// The create of `ovn-default` is done.
    pub fn default_created(&mut self, world: &mut World, result: Result<bool, kubeio::WriteError>) {
        self.default_pending = false;
        match result {
            Ok(created) => {
                self.default_retries.forget(&());
                if created {
                    tracing::info!(
                        "created Subnet {} again from the flags",
                        rovn_api::names::DEFAULT_SUBNET
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "re-creating the default Subnet; retrying");
                let delay = self.default_retries.failed(&());
                world.after(delay, Done::SubnetsRecheck);
            }
        }
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
