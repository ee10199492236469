//! What to do about one pod or node, decided from its object and what the controller already
//! holds for it. Pure, so every case is unit-tested without an API server.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use rovn_api::annotations::{
    AnnotationError, Ipv4PodAllocation, Ipv4PodRequest, parse_pod_allocation, parse_pod_request,
};

use super::ledger::Recorded;

/// The controller's next step for a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodAction {
    /// Nothing to do (not scheduled yet, host network, or already handled).
    Skip,
    /// The pod no longer needs its address (gone, terminal, or host network).
    Release,
    /// rovn's own NB port records the pod's address (written before a restart): hold it again,
    /// whatever the pod's annotations say now.
    Restore(Recorded),
    /// The pod needs an address, honouring what it requests.
    Allocate(Ipv4PodRequest),
    /// The pod's annotations cannot be read, or name an IPv6 address this IPv4 cluster has no
    /// pool for; the user must fix them.
    Refuse(AnnotationError),
}

/// What the controller holds for a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held<'a> {
    /// Nothing.
    Nothing,
    /// An address (being written or written) for the pod with this UID.
    Address(&'a str),
}

fn annotations(pod: &Pod) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    pod.metadata.annotations.as_ref().unwrap_or(&EMPTY)
}

/// Whether the pod is done for good: its address can go to another pod.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether the pod shares its node's network namespace (rovn gives it nothing).
pub fn is_host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The node the pod is scheduled to, once it is.
pub fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// The next step for `pod` (`None`: deleted) given what is held for it and what its NB port
/// records (`recorded`, read at start-up). A held address of another UID (a pod re-created
/// under the same name) must be released by the caller before asking again with
/// [`Held::Nothing`].
///
/// Annotations are the controller's output, and anyone who can edit a pod can write them: an
/// allocation in a pod's annotations without a port that records it is taken as a static
/// request for the same address, MAC and Subnet, which allocation then validates like any
/// other.
pub fn decide_pod(pod: Option<&Pod>, held: Held<'_>, recorded: Option<&Recorded>) -> PodAction {
    let Some(pod) = pod else {
        return match held {
            Held::Nothing => PodAction::Skip,
            Held::Address(_) => PodAction::Release,
        };
    };
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    if is_host_network(pod) || is_terminal(pod) {
        return match held {
            Held::Nothing => PodAction::Skip,
            Held::Address(_) => PodAction::Release,
        };
    }
    match held {
        Held::Address(held_uid) if held_uid == uid => return PodAction::Skip,
        Held::Address(_) => return PodAction::Release,
        Held::Nothing => {}
    }
    if node_of(pod).is_none() {
        return PodAction::Skip;
    }
    if let Some(recorded) = recorded.filter(|r| r.uid == uid) {
        return PodAction::Restore(recorded.clone());
    }
    let annotations = annotations(pod);
    // The pools are IPv4: an IPv6 value is refused here, like a malformed one.
    let action = match parse_pod_allocation(annotations) {
        Ok(Some(allocation)) => Ipv4PodAllocation::try_from(allocation).map(|a| {
            PodAction::Allocate(Ipv4PodRequest {
                ip: Some(a.ip),
                mac: Some(a.mac),
                switch: Some(a.switch),
            })
        }),
        Err(e) => Err(e),
        Ok(None) => parse_pod_request(annotations)
            .and_then(Ipv4PodRequest::try_from)
            .map(PodAction::Allocate),
    };
    action.unwrap_or_else(PodAction::Refuse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use rovn_api::names::annotations as keys;

    fn pod(node: Option<&str>, annotations: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u1".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_string),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn unscheduled_pods_wait_and_scheduled_ones_get_an_address() {
        assert_eq!(
            decide_pod(Some(&pod(None, &[])), Held::Nothing, None),
            PodAction::Skip
        );
        assert!(matches!(
            decide_pod(Some(&pod(Some("n1"), &[])), Held::Nothing, None),
            PodAction::Allocate(_)
        ));
        assert_eq!(
            decide_pod(Some(&pod(Some("n1"), &[])), Held::Address("u1"), None),
            PodAction::Skip
        );
    }

    #[test]
    fn deleted_terminal_and_recreated_pods_release() {
        assert_eq!(
            decide_pod(None, Held::Address("u1"), None),
            PodAction::Release
        );
        assert_eq!(decide_pod(None, Held::Nothing, None), PodAction::Skip);
        let mut done = pod(Some("n1"), &[]);
        done.status = Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        assert_eq!(
            decide_pod(Some(&done), Held::Address("u1"), None),
            PodAction::Release
        );
        assert_eq!(
            decide_pod(Some(&done), Held::Nothing, None),
            PodAction::Skip
        );
        assert_eq!(
            decide_pod(Some(&pod(Some("n1"), &[])), Held::Address("old-uid"), None),
            PodAction::Release
        );
    }

    #[test]
    fn host_network_pods_get_nothing() {
        let mut host = pod(Some("n1"), &[]);
        if let Some(spec) = host.spec.as_mut() {
            spec.host_network = Some(true);
        }
        assert_eq!(
            decide_pod(Some(&host), Held::Nothing, None),
            PodAction::Skip
        );
    }

    /// A scheduled pod carrying a complete allocation of `ip` in `cidr`.
    fn allocated(ip: &str, cidr: &str, gateway: &str) -> Pod {
        pod(
            Some("n1"),
            &[
                (keys::IP_ADDRESS, ip),
                (keys::MAC_ADDRESS, "0a:58:0a:10:00:05"),
                (keys::CIDR, cidr),
                (keys::GATEWAY, gateway),
                (keys::LOGICAL_SWITCH, "ovn-default"),
                (keys::ALLOCATED, "true"),
            ],
        )
    }

    #[test]
    fn recorded_ports_win_and_annotations_alone_are_only_requests() {
        let allocated = allocated("10.16.0.5", "10.16.0.0/16", "10.16.0.1");
        let recorded = Recorded {
            uid: "u1".into(),
            switch: "ovn-default".into(),
            ip: std::net::Ipv4Addr::new(10, 16, 0, 9),
            mac: rovn_api::MacAddr::derived_from(std::net::Ipv4Addr::new(10, 16, 0, 9)),
        };
        assert_eq!(
            decide_pod(Some(&allocated), Held::Nothing, Some(&recorded)),
            PodAction::Restore(recorded.clone()),
            "NB's record, not the edited annotation"
        );
        let garbled = pod(
            Some("n1"),
            &[(keys::IP_ADDRESS, "garbage"), (keys::ALLOCATED, "true")],
        );
        assert_eq!(
            decide_pod(Some(&garbled), Held::Nothing, Some(&recorded)),
            PodAction::Restore(recorded.clone())
        );
        let other_incarnation = Recorded {
            uid: "old".into(),
            ..recorded
        };
        assert!(matches!(
            decide_pod(Some(&allocated), Held::Nothing, Some(&other_incarnation)),
            PodAction::Allocate(r) if r.ip == Some(std::net::Ipv4Addr::new(10, 16, 0, 5))
                && r.switch.as_deref() == Some("ovn-default")
        ));
        assert!(matches!(
            decide_pod(Some(&allocated), Held::Nothing, None),
            PodAction::Allocate(r) if r.ip == Some(std::net::Ipv4Addr::new(10, 16, 0, 5))
        ));
        let bad = pod(Some("n1"), &[(keys::IP_ADDRESS, "10.16.0.300")]);
        assert!(matches!(
            decide_pod(Some(&bad), Held::Nothing, None),
            PodAction::Refuse(e) if e.key == keys::IP_ADDRESS
        ));
    }

    #[test]
    fn ipv6_annotations_are_refused_like_malformed_ones() {
        let v6 = pod(Some("n1"), &[(keys::IP_ADDRESS, "fd00::9")]);
        assert!(matches!(
            decide_pod(Some(&v6), Held::Nothing, None),
            PodAction::Refuse(e) if e.key == keys::IP_ADDRESS
                && e.reason == rovn_api::annotations::IPV6_NOT_CONFIGURED
        ));
        assert!(matches!(
            decide_pod(Some(&allocated("fd00::5", "fd00::/64", "fd00::1")), Held::Nothing, None),
            PodAction::Refuse(e) if e.reason == rovn_api::annotations::IPV6_NOT_CONFIGURED
        ));
    }
}
