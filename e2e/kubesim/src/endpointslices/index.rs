//! The controller's bookkeeping between store changes and reconciles: which pods each
//! managed Service selects, which slices each Service has, which Services need a
//! reconcile, and which slice changes were the controller's own writes. Kept
//! incrementally so a reconcile reads only its own pods and slices, and a pod event
//! costs a few hash lookups: Services are filed under one `key=value` requirement of
//! their selector, so only those filed under one of the pod's labels are matched
//! (upstream matches every Service of the namespace; at 1,000 Services that is the
//! controller's main cost). Pure data: callers pass in what they read from the store.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::selectors::{LabelRequirement, LabelSelector};

/// (namespace, name) of a Service, pod or slice.
pub type Key = (String, String);

/// The managed Services of one namespace and the pods they select.
#[derive(Debug, Default)]
struct Namespace {
    /// Managed Services' selectors, by Service name.
    selectors: HashMap<String, LabelSelector>,
    /// Service names by the first `key=value` requirement of their selector
    /// (label key → value → Services): a pod can only match those filed under one
    /// of its own labels.
    anchored: HashMap<String, HashMap<String, BTreeSet<String>>>,
    /// Services whose selector has no equality requirement, matched against every
    /// pod (only reachable through a future set-based selector; Service selectors
    /// are equality maps).
    unanchored: BTreeSet<String>,
    /// The pods each Service selects.
    members: HashMap<String, BTreeSet<String>>,
    /// The Services each pod is selected by.
    memberships: HashMap<String, BTreeSet<String>>,
}

fn anchor(selector: &LabelSelector) -> Option<(&str, &str)> {
    selector.0.iter().find_map(|r| match r {
        LabelRequirement::Equals(k, v) => Some((k.as_str(), v.as_str())),
        _ => None,
    })
}

impl Namespace {
    /// The Services whose selector matches `pod` (its `metadata.labels`).
    fn selecting(&self, pod: &Value) -> BTreeSet<String> {
        let labels = pod
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten();
        let anchored = labels.filter_map(|(k, v)| self.anchored.get(k)?.get(v.as_str()?));
        anchored
            .flatten()
            .chain(&self.unanchored)
            .filter(|svc| self.selectors.get(*svc).is_some_and(|s| s.matches(pod)))
            .cloned()
            .collect()
    }

    fn forget(&mut self, service: &str) {
        let Some(selector) = self.selectors.remove(service) else {
            return;
        };
        match anchor(&selector) {
            Some((k, v)) => {
                if let Some(values) = self.anchored.get_mut(k) {
                    if let Some(names) = values.get_mut(v) {
                        names.remove(service);
                        if names.is_empty() {
                            values.remove(v);
                        }
                    }
                    if values.is_empty() {
                        self.anchored.remove(k);
                    }
                }
            }
            None => {
                self.unanchored.remove(service);
            }
        }
        for pod in self.members.remove(service).unwrap_or_default() {
            if let Some(of) = self.memberships.get_mut(&pod) {
                of.remove(service);
                if of.is_empty() {
                    self.memberships.remove(&pod);
                }
            }
        }
    }

    fn learn<'a>(
        &mut self,
        service: &str,
        selector: LabelSelector,
        pods: impl IntoIterator<Item = (&'a str, &'a Value)>,
    ) {
        let members: BTreeSet<String> = pods
            .into_iter()
            .filter(|(_, pod)| selector.matches(pod))
            .map(|(pod, _)| pod.to_string())
            .collect();
        for pod in &members {
            self.memberships
                .entry(pod.clone())
                .or_default()
                .insert(service.to_string());
        }
        self.members.insert(service.to_string(), members);
        match anchor(&selector) {
            Some((k, v)) => {
                self.anchored
                    .entry(k.to_string())
                    .or_default()
                    .entry(v.to_string())
                    .or_default()
                    .insert(service.to_string());
            }
            None => {
                self.unanchored.insert(service.to_string());
            }
        }
        self.selectors.insert(service.to_string(), selector);
    }
}

/// See the module doc.
#[derive(Debug, Default)]
pub struct Index {
    /// Managed Services and their pods, by namespace.
    namespaces: HashMap<String, Namespace>,
    /// Names of the slices managed by this controller, by the Service they name.
    slices: HashMap<Key, BTreeSet<String>>,
    /// The Service each managed slice is filed under (slice key → Service name).
    slice_service: HashMap<Key, String>,
    /// The resourceVersion of the controller's latest write of a slice: its own
    /// change events need no reconcile (upstream's `EndpointSliceTracker`).
    expected: HashMap<Key, u64>,
    /// Services whose slices may be out of date.
    dirty: BTreeSet<Key>,
}

fn key(namespace: &str, name: &str) -> Key {
    (namespace.to_string(), name.to_string())
}

impl Index {
    /// A pod was written (`labels_view`: its new state, whose `metadata.labels` are
    /// matched) or removed (`None`). Every Service that selected it before or selects
    /// it now is dirtied, as upstream's `updatePod` does; its membership follows.
    pub fn pod_changed(&mut self, namespace: &str, name: &str, labels_view: Option<&Value>) {
        let Some(ns) = self.namespaces.get_mut(namespace) else {
            return;
        };
        let now = labels_view.map(|v| ns.selecting(v)).unwrap_or_default();
        let before = ns.memberships.remove(name).unwrap_or_default();
        for service in before.difference(&now) {
            if let Some(members) = ns.members.get_mut(service) {
                members.remove(name);
            }
        }
        for service in now.difference(&before) {
            if let Some(members) = ns.members.get_mut(service) {
                members.insert(name.to_string());
            }
        }
        for service in before.union(&now) {
            self.dirty.insert(key(namespace, service));
        }
        if !now.is_empty() {
            ns.memberships.insert(name.to_string(), now);
        }
    }

    /// A Service was written or removed: `selector` is what [`super::desired::
    /// selector_of`] made of it (`None`: removed, selector-less, ExternalName or
    /// malformed). When the selector changed, membership is recomputed from
    /// `pods_in_namespace` (name, object), which is only iterated then.
    pub fn service_changed<'a>(
        &mut self,
        namespace: &str,
        name: &str,
        selector: Option<LabelSelector>,
        pods_in_namespace: impl IntoIterator<Item = (&'a str, &'a Value)>,
    ) {
        self.dirty.insert(key(namespace, name));
        let ns = self.namespaces.entry(namespace.to_string()).or_default();
        if selector.is_some() && ns.selectors.get(name) == selector.as_ref() {
            return;
        }
        ns.forget(name);
        match selector {
            Some(selector) => ns.learn(name, selector, pods_in_namespace),
            None if ns.selectors.is_empty() => {
                self.namespaces.remove(namespace);
            }
            None => {}
        }
    }

    fn file_slice(&mut self, slice: &Key, service: Option<&str>) -> Option<String> {
        let before = match service {
            Some(s) => self.slice_service.insert(slice.clone(), s.to_string()),
            None => self.slice_service.remove(slice),
        };
        if let Some(old) = before.as_deref().filter(|old| Some(*old) != service) {
            let old_key = key(&slice.0, old);
            if let Some(set) = self.slices.get_mut(&old_key) {
                set.remove(&slice.1);
                if set.is_empty() {
                    self.slices.remove(&old_key);
                }
            }
        }
        if let Some(s) = service {
            self.slices
                .entry(key(&slice.0, s))
                .or_default()
                .insert(slice.1.clone());
        }
        before
    }

    /// A slice was written or removed by anyone: `managed_for` is the Service its
    /// service-name label names when it carries this controller's managed-by label,
    /// `None` otherwise (or when `gone`). Unless it is the controller's own write,
    /// the Services it belonged to and belongs to now are dirtied, so a user's edit
    /// or delete of a managed slice is repaired and a slice whose Service is gone is
    /// deleted.
    pub fn slice_changed(
        &mut self,
        namespace: &str,
        name: &str,
        managed_for: Option<&str>,
        rv: u64,
        gone: bool,
    ) {
        let slice = key(namespace, name);
        let now = if gone { None } else { managed_for };
        let before = self.file_slice(&slice, now);
        let own = match self.expected.get(&slice) {
            Some(&mine) if rv <= mine => {
                if rv == mine {
                    self.expected.remove(&slice);
                }
                true
            }
            _ => false,
        };
        if own {
            return;
        }
        for service in before.iter().map(String::as_str).chain(now) {
            self.dirty.insert(key(namespace, service));
        }
    }

    /// The controller itself wrote a slice at `rv` (`gone`: deleted it): it is filed
    /// at once, so a reconcile before the change event arrives already sees it, and
    /// the event is recognised as its own.
    pub fn wrote_slice(&mut self, namespace: &str, name: &str, service: &str, rv: u64, gone: bool) {
        let slice = key(namespace, name);
        self.file_slice(&slice, (!gone).then_some(service));
        self.expected.insert(slice, rv);
    }

    /// Takes the Services to reconcile, in (namespace, name) order.
    pub fn take_dirty(&mut self) -> Vec<Key> {
        std::mem::take(&mut self.dirty).into_iter().collect()
    }

    /// Whether any Service awaits a reconcile.
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The pods a managed Service's selector matched when last seen.
    pub fn members(&self, service: &Key) -> impl Iterator<Item = &str> {
        self.namespaces
            .get(&service.0)
            .and_then(|ns| ns.members.get(&service.1))
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// The managed slices filed under a Service.
    pub fn slices(&self, service: &Key) -> impl Iterator<Item = &str> {
        self.slices
            .get(service)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(app: &str) -> Option<LabelSelector> {
        LabelSelector::parse(&format!("app={app}")).ok()
    }

    fn pod(app: &str) -> Value {
        json!({"metadata": {"labels": {"app": app}}})
    }

    fn svc_key(name: &str) -> Key {
        key("ns", name)
    }

    #[test]
    fn a_pod_change_dirties_only_the_services_it_matched_or_matches() {
        let mut idx = Index::default();
        let (a, b) = (pod("a"), pod("b"));
        idx.service_changed("ns", "sa", sel("a"), [("p1", &a)]);
        idx.service_changed("ns", "sb", sel("b"), [("p1", &a)]);
        idx.service_changed("other", "so", sel("a"), []);
        assert_eq!(idx.take_dirty().len(), 3);
        assert_eq!(idx.members(&svc_key("sa")).collect::<Vec<_>>(), ["p1"]);

        idx.pod_changed("ns", "p1", Some(&b));
        assert_eq!(idx.take_dirty(), vec![svc_key("sa"), svc_key("sb")]);
        assert_eq!(idx.members(&svc_key("sa")).count(), 0);
        assert_eq!(idx.members(&svc_key("sb")).collect::<Vec<_>>(), ["p1"]);

        idx.pod_changed("ns", "p2", Some(&pod("c")));
        assert!(idx.take_dirty().is_empty(), "matches no Service");
        idx.pod_changed("ns", "p1", None);
        assert_eq!(idx.take_dirty(), vec![svc_key("sb")]);
        assert_eq!(idx.members(&svc_key("sb")).count(), 0);
    }

    #[test]
    fn every_requirement_counts_not_just_the_one_services_are_filed_under() {
        let mut idx = Index::default();
        idx.service_changed("ns", "both", LabelSelector::parse("app=a,tier=fe").ok(), []);
        idx.service_changed(
            "ns",
            "set",
            LabelSelector::parse("tier in (fe,be)").ok(),
            [],
        );
        idx.take_dirty();
        idx.pod_changed(
            "ns",
            "p",
            Some(&json!({"metadata": {"labels": {"app": "a"}}})),
        );
        assert!(!idx.has_dirty(), "app=a alone matches neither");
        let fe = json!({"metadata": {"labels": {"app": "a", "tier": "fe"}}});
        idx.pod_changed("ns", "p", Some(&fe));
        assert_eq!(idx.take_dirty(), vec![svc_key("both"), svc_key("set")]);
        idx.service_changed(
            "ns",
            "both",
            LabelSelector::parse("app=b").ok(),
            [("p", &fe)],
        );
        assert_eq!(idx.members(&svc_key("both")).count(), 0, "re-selected");
        idx.take_dirty();
        idx.pod_changed("ns", "p", None);
        assert_eq!(
            idx.take_dirty(),
            vec![svc_key("set")],
            "only what it was a member of"
        );
    }

    #[test]
    fn own_slice_writes_do_not_dirty_but_others_do() {
        let mut idx = Index::default();
        idx.wrote_slice("ns", "s-1", "s", 10, false);
        idx.slice_changed("ns", "s-1", Some("s"), 10, false);
        assert!(!idx.has_dirty(), "the controller's own create");
        assert_eq!(idx.slices(&svc_key("s")).collect::<Vec<_>>(), ["s-1"]);
        idx.slice_changed("ns", "s-1", Some("s"), 11, false);
        assert_eq!(idx.take_dirty(), vec![svc_key("s")], "someone else's edit");
        idx.slice_changed("ns", "s-1", Some("t"), 12, false);
        assert_eq!(idx.take_dirty(), vec![svc_key("s"), svc_key("t")]);
        assert_eq!(idx.slices(&svc_key("s")).count(), 0);
        idx.slice_changed("ns", "s-1", None, 13, false);
        assert_eq!(idx.take_dirty(), vec![svc_key("t")], "managed-by removed");
        assert_eq!(idx.slices(&svc_key("t")).count(), 0);
        idx.slice_changed("ns", "user", None, 14, false);
        assert!(!idx.has_dirty(), "slices of others are not watched");
    }

    #[test]
    fn an_unchanged_selector_does_not_rescan_pods() {
        let mut idx = Index::default();
        let a = pod("a");
        idx.service_changed("ns", "s", sel("a"), [("p1", &a)]);
        let scanned = std::cell::Cell::new(0);
        let pods = [("p2", &a)];
        let counting = pods.iter().map(|p| {
            scanned.set(scanned.get() + 1);
            *p
        });
        idx.service_changed("ns", "s", sel("a"), counting);
        assert_eq!(scanned.get(), 0);
        assert_eq!(idx.take_dirty(), vec![svc_key("s")]);
        idx.service_changed("ns", "s", None, []);
        assert_eq!(idx.members(&svc_key("s")).count(), 0);
        idx.pod_changed("ns", "p1", Some(&a));
        assert_eq!(idx.take_dirty(), vec![svc_key("s")], "the removal itself");
        assert!(!idx.has_dirty());
    }
}
