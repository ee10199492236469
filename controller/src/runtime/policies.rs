//! NetworkPolicies, Namespaces and pods' labels: which policy, namespace and node rows a change
//! is about, and the pod index those rows are rendered from. Nothing here writes to
//! Kubernetes but Events; the rows follow in the next round.
//!
//! A pod's port joining its groups must land in the transaction that creates the port, or a
//! pod selected by an existing policy would take packets before it is isolated. So whenever a
//! pod's port is rendered, the owners of the groups that hold it (the policies selecting it,
//! its namespace's deny groups, its node's group) are rendered in the same round, and a round
//! that fits one transaction is sent as one.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Namespace as KubeNamespace;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use rovn_api::{Owner, OwnerKind};

use super::kubeio::Problems;
use super::pods::Pods;
use super::watch::Key;
use super::world::World;
use crate::desired::{Policy, PolicyPod, PolicyPods};
use crate::policies::{PolicyView, labels_of, policy_pod, policy_view};

/// The parsed policies and the pods they select from.
#[derive(Default)]
pub(super) struct Policies {
    /// Every NetworkPolicy, parsed once per change.
    views: BTreeMap<Key, PolicyView>,
    /// The pods with ports and the namespaces, as policies see them.
    pods: PolicyPods,
    /// What was reported of each policy and pod.
    problems: Problems,
}

fn policy_owner(key: &Key) -> Owner {
    Owner::namespaced(OwnerKind::NetworkPolicy, &key.namespace, &key.name)
}

fn namespace_owner(namespace: &str) -> Owner {
    Owner::cluster_scoped(OwnerKind::Namespace, namespace)
}

impl Policies {
    /// A NetworkPolicy changed or went away: it and its namespace's deny groups are rendered
    /// again.
    pub fn policy_changed(&mut self, world: &mut World, key: &Key) {
        let owner = policy_owner(key);
        let cached = world
            .caches
            .policies
            .get(&ObjectRef::new(&key.name).within(&key.namespace));
        match cached {
            Some(policy) => {
                let view = policy_view(&policy);
                let problems = view
                    .ignored
                    .iter()
                    .chain(&view.unreadable)
                    .map(|problem| format!("{owner}: not enforced: {problem}"));
                self.problems.report(
                    &world.events,
                    &owner,
                    "PolicyNotEnforced",
                    "RenderPolicy",
                    problems,
                );
                self.views.insert(key.clone(), view);
            }
            None => {
                self.views.remove(key);
                self.problems.forget(&owner);
            }
        }
        world.queue.touch(owner);
        world.queue.touch(namespace_owner(&key.namespace));
    }

    /// A (re)list of policies finished: every view is parsed again.
    pub fn policies_resynced(&mut self, world: &mut World) {
        let keys: BTreeSet<Key> = world
            .caches
            .policies
            .state()
            .iter()
            .map(|p| Key::of(p.as_ref()))
            .chain(self.views.keys().cloned())
            .collect();
        for key in keys {
            self.policy_changed(world, &key);
        }
        world.queue.everything();
    }

    /// A namespace changed or went away: policies selecting peers by namespace labels are
    /// rendered again.
    pub fn namespace_changed(&mut self, world: &mut World, name: &str) {
        let labels = world
            .caches
            .namespaces
            .get(&ObjectRef::<KubeNamespace>::new(name))
            .map(|ns| labels_of(ns.metadata.labels.as_ref()));
        if self.pods.namespace(name) == labels.as_ref() {
            return;
        }
        self.pods.set_namespace(name, labels);
        for (key, view) in &self.views {
            if view.policy.as_ref().is_some_and(Policy::selects_namespaces) {
                world.queue.touch(policy_owner(key));
            }
        }
    }

    /// A (re)list of namespaces finished.
    pub fn namespaces_resynced(&mut self, world: &mut World) {
        let names: BTreeSet<String> = world
            .caches
            .namespaces
            .state()
            .iter()
            .map(|ns| ns.name_any())
            .chain(self.pods.namespaces().map(|(n, _)| n.clone()))
            .collect();
        for name in names {
            self.namespace_changed(world, &name);
        }
    }

    /// The pod `key` (its labels, its port) may have changed: the index follows, and the
    /// owners whose rows hold it, before or after, are returned. The groups holding its port
    /// are always among them, since a port created again must be taken in again.
    pub fn pod_changed(&mut self, world: &mut World, pods: &Pods, key: &Key) -> BTreeSet<Owner> {
        let owner = Owner::pod(&key.namespace, &key.name);
        let port = pods.port_of(&owner);
        let cached = world
            .caches
            .pods
            .get(&ObjectRef::new(&key.name).within(&key.namespace));
        let mut ignored = Vec::new();
        let now = match port.zip(cached) {
            Some((port, pod)) => Some(policy_pod(&pod, &port, &mut ignored)),
            // Its port stays as it is, so do its places in groups and sets: a pod whose edited
            // annotations are being refused must not slip out of its isolation meanwhile.
            None if pods.is_kept(key) => self.pods.pod(&key.namespace, &key.name).cloned(),
            None => None,
        };
        if now.is_some() {
            let problems = ignored.into_iter().map(|p| format!("{owner}: {p}"));
            self.problems.report(
                &world.events,
                &owner,
                "NamedPortIgnored",
                "RenderPolicy",
                problems,
            );
        } else {
            self.problems.forget(&owner);
        }
        let before = self.pods.set_pod(&key.namespace, &key.name, now.clone());
        let mut owners = BTreeSet::new();
        for pod in before.iter().chain(now.iter()) {
            self.groups_holding(pod, &mut owners);
        }
        if before != now {
            self.sets_changed(before.as_ref(), now.as_ref(), &mut owners);
        }
        owners
    }

    /// The owners of the port groups that hold `pod`'s port.
    fn groups_holding(&self, pod: &PolicyPod, owners: &mut BTreeSet<Owner>) {
        owners.insert(Owner::node(&pod.node));
        let mut in_namespace = false;
        for (key, view) in self.views.range(
            Key {
                namespace: pod.namespace.clone(),
                name: String::new(),
            }..,
        ) {
            if key.namespace != pod.namespace {
                break;
            }
            in_namespace = true;
            if view
                .policy
                .as_ref()
                .is_some_and(|p| p.subject.matches(&pod.labels))
            {
                owners.insert(policy_owner(key));
            }
        }
        if in_namespace {
            owners.insert(namespace_owner(&pod.namespace));
        }
    }

    /// The owners of the address sets a pod's change from `before` to `now` changes: every
    /// policy where its address or its places in the sets ([`PolicyPods::places`]) differ. A
    /// label change that leaves a pod in the same sets (under a broad selector, the common
    /// case) renders none of those policies: re-rendering each, with every set of thousands of
    /// addresses, made one label change cost most of a second on 10,000 pods.
    fn sets_changed(
        &self,
        before: Option<&PolicyPod>,
        now: Option<&PolicyPod>,
        owners: &mut BTreeSet<Owner>,
    ) {
        for (key, view) in &self.views {
            let Some(policy) = &view.policy else {
                continue;
            };
            let place = |pod: Option<&PolicyPod>| {
                pod.and_then(|p| Some((p.ip, self.pods.places(policy, p)?)))
            };
            if place(before) != place(now) {
                owners.insert(policy_owner(key));
            }
        }
    }

    /// Rebuilds the pod index from every pod with a port, for a round over the whole cluster
    /// (so a missed change cannot outlive a full round).
    pub fn reindex(&mut self, world: &mut World, pods: &Pods) {
        let mut index = PolicyPods::default();
        for (name, labels) in self.pods.namespaces() {
            index.set_namespace(name, Some(labels.clone()));
        }
        for port in pods.ports() {
            let cached = world
                .caches
                .pods
                .get(&ObjectRef::new(&port.name).within(&port.namespace));
            if let Some(pod) = cached {
                let mut ignored = Vec::new();
                index.set_pod(
                    &port.namespace,
                    &port.name,
                    Some(policy_pod(&pod, &port, &mut ignored)),
                );
            }
        }
        for owner in pods.kept() {
            let (Some(namespace), name) = (owner.namespace(), owner.name()) else {
                continue;
            };
            if let Some(pod) = self.pods.pod(namespace, name) {
                index.set_pod(namespace, name, Some(pod.clone()));
            }
        }
        self.pods = index;
    }

    /// The pod index rows are rendered from.
    pub fn pods(&self) -> &PolicyPods {
        &self.pods
    }

    /// Every readable policy, for a round over the whole cluster.
    pub fn all(&self) -> Vec<Policy> {
        self.views
            .values()
            .filter_map(|v| v.policy.clone())
            .collect()
    }

    /// The policy of `owner`: `Ok(None)` when it is gone, `Err` with the reason when it
    /// cannot be read (its rows are then held as they are).
    pub fn policy(&self, owner: &Owner) -> Result<Option<&Policy>, String> {
        let key = Key {
            namespace: owner.namespace().unwrap_or_default().to_string(),
            name: owner.name().to_string(),
        };
        match self.views.get(&key) {
            None => Ok(None),
            Some(view) => match (&view.policy, &view.unreadable) {
                (Some(policy), _) => Ok(Some(policy)),
                (None, reason) => Err(reason.clone().unwrap_or_default()),
            },
        }
    }

    /// Every unreadable policy with the reason.
    pub fn unreadable(&self) -> Vec<(Owner, String)> {
        self.views
            .iter()
            .filter_map(|(key, view)| Some((policy_owner(key), view.unreadable.clone()?)))
            .collect()
    }

    /// The readable policies of `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<&Policy> {
        self.views
            .range(
                Key {
                    namespace: namespace.to_string(),
                    name: String::new(),
                }..,
            )
            .take_while(|(key, _)| key.namespace == namespace)
            .filter_map(|(_, view)| view.policy.as_ref())
            .collect()
    }
}
