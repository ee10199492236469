//! The CIDRs of all Subnet objects, kept current by a watch, so `ovn0`'s routes follow
//! Subnets as they come and go.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use ipnet::Ipv4Net;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use rovn_api::subnet::Subnet;
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

/// Folds watch events into name → CIDR (pure, for tests and the watch loop).
pub fn apply_event(
    current: &mut BTreeMap<String, Ipv4Net>,
    pending: &mut Option<BTreeMap<String, Ipv4Net>>,
    event: watcher::Event<Subnet>,
) {
    match event {
        watcher::Event::Init => *pending = Some(BTreeMap::new()),
        watcher::Event::InitApply(s) => {
            if let (Some(p), Some(cidr)) = (pending.as_mut(), subnet_cidr(&s)) {
                p.insert(s.name_any(), cidr);
            }
        }
        watcher::Event::InitDone => {
            if let Some(p) = pending.take() {
                *current = p;
            }
        }
        watcher::Event::Apply(s) => match subnet_cidr(&s) {
            Some(cidr) => {
                current.insert(s.name_any(), cidr);
            }
            None => {
                current.remove(&s.name_any());
            }
        },
        watcher::Event::Delete(s) => {
            current.remove(&s.name_any());
        }
    }
}

/// Starts a task that publishes the set of Subnet CIDRs on the returned channel whenever it
/// changes. It holds `None` until the first list completes: an empty set before then would
/// mean "no Subnets", and routes replaced from it would cut running pods off from their node.
pub fn watch_cidrs(client: kube::Client) -> watch::Receiver<Option<BTreeSet<Ipv4Net>>> {
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
                        let cidrs: BTreeSet<Ipv4Net> = current.values().copied().collect();
                        tx.send_if_modified(|old| {
                            if old.as_ref() == Some(&cidrs) {
                                false
                            } else {
                                *old = Some(cidrs);
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
