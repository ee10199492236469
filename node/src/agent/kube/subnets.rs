//! The CIDRs of the Subnets the controller accepted, kept current by a watch, so `ovn0`'s routes
//! follow Subnets as they come, go, and are accepted or rejected.

use std::collections::BTreeMap;

use futures::StreamExt;
use ipnet::Ipv4Net;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use rovn_api::subnet::{READY, Subnet};
use tokio::sync::watch;

/// The CIDR a Subnet object declares, when it parses (the controller reports bad ones in the
/// Subnet's status; the agent just skips them).
pub fn subnet_cidr(subnet: &Subnet) -> Option<Ipv4Net> {
    subnet
        .spec
        .cidr_block
        .parse::<Ipv4Net>()
        .ok()
        .map(|n| n.trunc())
}

/// What the agent makes of one Subnet object for routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// The controller accepted this generation: route its CIDR.
    Route(Ipv4Net),
    /// Not accepted (rejected, no status yet, or a CIDR that does not parse): no route.
    Skip,
    /// The `Ready` condition speaks of an older generation (the object was just edited): keep
    /// what was decided for it before, neither routing the new, unvalidated CIDR nor dropping
    /// a route running pods use while the controller catches up.
    Keep,
}

/// Decides from the object alone whether its CIDR is routed (pure). A `Ready=True` Subnet
/// whose status names the CIDR in effect (`status.cidrBlock`: the controller keeps the last
/// accepted one while pods use it and an edit is refused, and while it is deleted but in use)
/// routes that CIDR. Without it (a controller that does not write it), only `spec.cidrBlock`
/// of a Subnet whose `Ready=True` condition was computed for its current
/// `metadata.generation` is routed, rather than a CIDR nobody validated.
pub fn routing(subnet: &Subnet) -> Routing {
    let status = subnet.status.as_ref();
    let condition = status.and_then(|status| status.conditions.iter().find(|c| c.type_ == READY));
    let Some(condition) = condition else {
        return Routing::Skip;
    };
    let in_effect = status
        .and_then(|s| s.cidr_block.as_deref())
        .and_then(|c| c.parse::<Ipv4Net>().ok());
    if let Some(cidr) = in_effect
        && condition.status == "True"
    {
        return Routing::Route(cidr.trunc());
    }
    if condition.observed_generation != subnet.metadata.generation {
        return Routing::Keep;
    }
    match subnet_cidr(subnet) {
        Some(cidr) if subnet.is_ready() => Routing::Route(cidr),
        _ => Routing::Skip,
    }
}

/// Folds watch events into name → routed CIDR (pure, for tests and the watch loop); see
/// [`routing`] for which Subnets are in it.
pub fn apply_event(
    current: &mut BTreeMap<String, Ipv4Net>,
    pending: &mut Option<BTreeMap<String, Ipv4Net>>,
    event: watcher::Event<Subnet>,
) {
    match event {
        watcher::Event::Init => *pending = Some(BTreeMap::new()),
        watcher::Event::InitApply(s) => {
            if let Some(p) = pending.as_mut() {
                let name = s.name_any();
                let decided = match routing(&s) {
                    Routing::Route(cidr) => Some(cidr),
                    Routing::Skip => None,
                    Routing::Keep => current.get(&name).copied(),
                };
                if let Some(cidr) = decided {
                    p.insert(name, cidr);
                }
            }
        }
        watcher::Event::InitDone => {
            if let Some(p) = pending.take() {
                *current = p;
            }
        }
        watcher::Event::Apply(s) => match routing(&s) {
            Routing::Route(cidr) => {
                current.insert(s.name_any(), cidr);
            }
            Routing::Skip => {
                current.remove(&s.name_any());
            }
            Routing::Keep => {}
        },
        watcher::Event::Delete(s) => {
            current.remove(&s.name_any());
        }
    }
}

/// Starts a task that publishes the routed Subnets (name → CIDR) on the returned channel
/// whenever they change. It holds `None` until the first list completes: an empty set before then would
/// mean "no Subnets", and routes replaced from it would cut running pods off from their node.
pub fn watch_cidrs(client: kube::Client) -> watch::Receiver<Option<BTreeMap<String, Ipv4Net>>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let api: Api<Subnet> = Api::all(client);
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut current = BTreeMap::new();
        let mut pending = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    apply_event(&mut current, &mut pending, event);
                    if pending.is_none() {
                        tx.send_if_modified(|old| {
                            if old.as_ref() == Some(&current) {
                                false
                            } else {
                                *old = Some(current.clone());
                                true
                            }
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "watching Subnets"),
            }
            if tx.is_closed() {
                break;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use rovn_api::subnet::{SubnetCondition, SubnetSpec, SubnetStatus};

    /// A Subnet at generation 2 whose Ready condition has `ready` computed for `observed`.
    fn subnet(name: &str, cidr: &str, ready: Option<(&str, i64)>) -> Subnet {
        let mut s = Subnet::new(
            name,
            SubnetSpec {
                cidr_block: cidr.to_string(),
                gateway: None,
                exclude_ips: vec![],
                namespaces: vec![],
                nat_outgoing: false,
                private: false,
                allow_subnets: Vec::new(),
            },
        );
        s.metadata.generation = Some(2);
        s.status = ready.map(|(status, observed)| SubnetStatus {
            conditions: vec![SubnetCondition {
                type_: READY.to_string(),
                status: status.to_string(),
                reason: "Test".to_string(),
                message: String::new(),
                last_transition_time: "2025-01-01T00:00:00Z".to_string(),
                observed_generation: Some(observed),
            }],
            ..SubnetStatus::default()
        });
        s
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn the_cidr_in_effect_is_routed_while_an_edit_is_refused() {
        let mut s = subnet("a", "10.61.0.0/24", Some(("True", 2)));
        if let Some(status) = s.status.as_mut() {
            status.cidr_block = Some("10.60.0.0/24".into());
        }
        assert_eq!(routing(&s), Routing::Route(net("10.60.0.0/24")));
        if let Some(status) = s.status.as_mut() {
            status.conditions[0].status = "False".into();
        }
        assert_eq!(routing(&s), Routing::Skip);
    }

    #[test]
    fn only_subnets_accepted_for_their_current_generation_are_routed() {
        assert_eq!(
            routing(&subnet("a", "10.16.0.1/16", Some(("True", 2)))),
            Routing::Route(net("10.16.0.0/16"))
        );
        assert_eq!(
            routing(&subnet("b", "0.0.0.0/1", Some(("False", 2)))),
            Routing::Skip
        );
        assert_eq!(routing(&subnet("c", "10.17.0.0/16", None)), Routing::Skip);
        assert_eq!(
            routing(&subnet("d", "not-a-cidr", Some(("True", 2)))),
            Routing::Skip
        );
        assert_eq!(
            routing(&subnet("e", "10.18.0.0/16", Some(("True", 1)))),
            Routing::Keep
        );
    }

    #[test]
    fn a_rejected_subnet_gets_no_route_and_an_edit_keeps_the_route_until_judged() {
        let mut current = BTreeMap::new();
        let mut pending = None;
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(subnet("good", "10.16.0.0/16", Some(("True", 2)))),
            watcher::Event::InitApply(subnet("bad", "0.0.0.0/1", Some(("False", 2)))),
            watcher::Event::InitApply(subnet("new", "10.30.0.0/16", None)),
            watcher::Event::InitDone,
        ] {
            apply_event(&mut current, &mut pending, event);
        }
        assert_eq!(
            current,
            BTreeMap::from([("good".to_string(), net("10.16.0.0/16"))])
        );

        // Edited to a new CIDR the controller has not judged yet: the accepted one stays.
        let mut edited = subnet("good", "10.99.0.0/16", Some(("True", 2)));
        edited.metadata.generation = Some(3);
        apply_event(&mut current, &mut pending, watcher::Event::Apply(edited));
        assert_eq!(current.get("good"), Some(&net("10.16.0.0/16")));

        // The controller rejects the edit: no route; a relist agrees.
        let mut rejected = subnet("good", "10.99.0.0/16", Some(("False", 3)));
        rejected.metadata.generation = Some(3);
        apply_event(
            &mut current,
            &mut pending,
            watcher::Event::Apply(rejected.clone()),
        );
        assert!(current.is_empty());
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(rejected),
            watcher::Event::InitDone,
        ] {
            apply_event(&mut current, &mut pending, event);
        }
        assert!(current.is_empty());

        // Accepted later: routed.
        apply_event(
            &mut current,
            &mut pending,
            watcher::Event::Apply(subnet("new", "10.30.0.0/16", Some(("True", 2)))),
        );
        assert_eq!(current.get("new"), Some(&net("10.30.0.0/16")));
    }
}
