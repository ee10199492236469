use std::net::Ipv4Addr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use rovn_api::subnet::{Subnet, SubnetSpec, SubnetStatus};

use super::*;
use crate::ipam::Usage;

fn reserved() -> Reserved {
    Reserved {
        join: "100.64.0.0/16".parse().unwrap(),
        service: "10.96.0.0/12".parse().unwrap(),
    }
}

/// A Subnet object created `age` seconds after the epoch.
fn subnet(name: &str, age: i64, cidr: &str) -> Subnet {
    let mut object = Subnet::new(
        name,
        SubnetSpec {
            cidr_block: cidr.into(),
            gateway: None,
            exclude_ips: vec![],
            namespaces: vec![],
            nat_outgoing: false,
            private: false,
            allow_subnets: Vec::new(),
        },
    );
    object.metadata.creation_timestamp = Some(Time(Timestamp::from_second(age).unwrap()));
    object.metadata.generation = Some(1);
    object
}

fn with_namespaces(mut object: Subnet, namespaces: &[&str]) -> Subnet {
    object.spec.namespaces = namespaces.iter().map(|n| n.to_string()).collect();
    object
}

fn rejection_of(set: &SubnetSet, name: &str) -> SubnetRejection {
    assert!(set.get(name).is_none(), "{name} should be rejected");
    set.rejection(name).cloned().unwrap()
}

fn accepted_names(set: &SubnetSet) -> Vec<&str> {
    set.accepted().map(|s| s.name.as_str()).collect()
}

#[test]
fn a_valid_subnet_is_parsed_with_defaults() {
    let mut object = subnet("blue", 1, "10.17.0.0/24");
    object.spec.namespaces = vec!["b".into(), "a".into(), "b".into()];
    object.spec.exclude_ips = vec!["10.17.0.10..10.17.0.20".into()];
    object.spec.nat_outgoing = true;
    object.spec.private = true;
    object.spec.allow_subnets = vec!["10.18.0.0/16".into(), "10.16.0.9/16".into()];
    let set = validate_subnets(&[object], &reserved());
    let config = set.get("blue").unwrap();
    assert_eq!(config.cidr, "10.17.0.0/24".parse().unwrap());
    assert_eq!(config.gateway, Ipv4Addr::new(10, 17, 0, 1));
    assert_eq!(config.namespaces, ["a", "b"]);
    assert!(config.nat_outgoing && config.private);
    let allowed: Vec<String> = config.allow_subnets.iter().map(|c| c.to_string()).collect();
    assert_eq!(allowed, ["10.16.0.0/16", "10.18.0.0/16"]);
    assert_eq!(config.generation, Some(1));
    assert_eq!(
        config.desired(),
        crate::desired::Subnet {
            name: "blue".into(),
            cidr: config.cidr,
            gateway: config.gateway,
            private: true,
            allow_subnets: config.allow_subnets.clone(),
        }
    );
    let pool = config.pool().unwrap();
    // 256 − network − broadcast − gateway − 11 excluded.
    assert_eq!(pool.usage().available, 256 - 3 - 11);
    assert!(set.rejected().is_empty());
}

#[test]
fn every_standalone_rejection_kind() {
    let mut cases: Vec<(Subnet, RejectReason, &str)> = vec![
        (
            subnet("join", 1, "10.17.0.0/24"),
            RejectReason::InvalidName,
            "join",
        ),
        (
            subnet("", 1, "10.17.0.0/24"),
            RejectReason::InvalidName,
            "no name",
        ),
        (
            subnet("a", 1, "10.17.0.0"),
            RejectReason::InvalidCidr,
            "not an IPv4 CIDR",
        ),
        (
            subnet("a", 1, "fd00::/64"),
            RejectReason::InvalidCidr,
            "not an IPv4 CIDR",
        ),
        (
            subnet("a", 1, "10.17.0.1/24"),
            RejectReason::InvalidCidr,
            "host bits",
        ),
        (
            subnet("a", 1, "10.17.0.0/31"),
            RejectReason::InvalidCidr,
            "no room",
        ),
        (
            subnet("a", 1, "0.0.0.0/0"),
            RejectReason::InvalidCidr,
            "too large",
        ),
        (
            subnet("a", 1, "100.64.128.0/24"),
            RejectReason::ReservedRange,
            "join CIDR 100.64.0.0/16",
        ),
        (
            subnet("a", 1, "10.0.0.0/8"),
            RejectReason::ReservedRange,
            "service CIDR 10.96.0.0/12",
        ),
    ];
    let mut gateway = |gw: &str, why: &'static str| {
        let mut object = subnet("a", 1, "10.17.0.0/24");
        object.spec.gateway = Some(gw.into());
        cases.push((object, RejectReason::InvalidGateway, why));
    };
    gateway("10.17.0.256", "not an IPv4 address");
    gateway("10.18.0.1", "outside");
    gateway("10.17.0.255", "not a host address");
    let mut exclude = subnet("a", 1, "10.17.0.0/24");
    exclude.spec.exclude_ips = vec!["10.17.0.5".into(), "10.17.1.5".into()];
    cases.push((exclude, RejectReason::InvalidExcludeIps, "10.17.1.5"));
    cases.push((
        with_namespaces(subnet("a", 1, "10.17.0.0/24"), &["Bad_Name"]),
        RejectReason::InvalidNamespaces,
        "Bad_Name",
    ));
    let mut allow = subnet("a", 1, "10.17.0.0/24");
    allow.spec.allow_subnets = vec!["10.18.0.0/16".into(), "10.19.0.0".into()];
    cases.push((allow, RejectReason::InvalidAllowSubnets, "\"10.19.0.0\""));
    for (object, reason, text) in cases {
        let name = object.metadata.name.clone().unwrap();
        let set = validate_subnets(&[object], &reserved());
        let rejection = rejection_of(&set, &name);
        assert_eq!(rejection.reason, reason, "{rejection:?}");
        assert!(rejection.message.contains(text), "{rejection:?}");
        assert_eq!(rejection.generation, Some(1));
    }
}

#[test]
fn the_newer_of_two_overlapping_subnets_is_rejected_whole() {
    let older = with_namespaces(subnet("older", 10, "10.17.0.0/16"), &["a"]);
    let newer = with_namespaces(subnet("newer", 20, "10.17.5.0/24"), &["b"]);
    // Input order does not matter, and the name would sort "newer" first: age decides.
    let set = validate_subnets(&[newer, older], &reserved());
    assert_eq!(accepted_names(&set), ["older"]);
    let rejection = rejection_of(&set, "newer");
    assert_eq!(rejection.reason, RejectReason::Overlap);
    assert!(
        rejection.message.contains("older Subnet older"),
        "{rejection:?}"
    );
    // Rejected whole: its namespace is not routed to it, nor to ovn-default: its pods wait.
    assert!(matches!(
        set.for_namespace("b"),
        Err(SubnetChoiceError::NamespaceSubnetNotReady { ref name, .. }) if name == "newer"
    ));
}

#[test]
fn a_namespace_listed_twice_stays_with_the_older_subnet() {
    let older = with_namespaces(subnet("red", 10, "10.17.0.0/24"), &["shop"]);
    let newer = with_namespaces(subnet("green", 20, "10.18.0.0/24"), &["dev", "shop"]);
    let set = validate_subnets(&[newer, older], &reserved());
    let rejection = rejection_of(&set, "green");
    assert_eq!(rejection.reason, RejectReason::NamespaceConflict);
    assert!(rejection.message.contains("shop") && rejection.message.contains("red"));
    assert_eq!(set.for_namespace("shop").unwrap().name, "red");
    // Not half-applied: "dev" does not go to green, nor to ovn-default.
    let err = set.for_namespace("dev").unwrap_err();
    assert_eq!(err.reason(), "SubnetNotReady");
    assert!(err.to_string().contains("green"), "{err}");
}

#[test]
fn equal_timestamps_are_ordered_by_name() {
    let set = validate_subnets(
        &[
            subnet("b", 5, "10.17.0.0/24"),
            subnet("a", 5, "10.17.0.0/24"),
        ],
        &reserved(),
    );
    assert_eq!(accepted_names(&set), ["a"]);
    assert_eq!(rejection_of(&set, "b").reason, RejectReason::Overlap);
}

#[test]
fn duplicate_names_keep_the_first() {
    let set = validate_subnets(
        &[
            subnet("a", 5, "10.17.0.0/24"),
            subnet("a", 6, "10.18.0.0/24"),
        ],
        &reserved(),
    );
    assert_eq!(set.get("a").unwrap().cidr, "10.17.0.0/24".parse().unwrap());
    assert_eq!(set.rejected()[0].reason, RejectReason::InvalidName);
}

#[test]
fn outcome_is_the_same_for_every_input_order() {
    let objects = vec![
        subnet("ovn-default", 1, "10.16.0.0/16"),
        with_namespaces(subnet("a", 2, "10.17.0.0/24"), &["x", "y"]),
        with_namespaces(subnet("b", 3, "10.17.0.128/25"), &["z"]),
        with_namespaces(subnet("c", 3, "10.18.0.0/24"), &["y"]),
        with_namespaces(subnet("d", 4, "10.19.0.0/24"), &["z"]),
        subnet("e", 4, "bogus"),
        subnet("f", 5, "100.64.0.0/24"),
    ];
    let expected = validate_subnets(&objects, &reserved());
    assert_eq!(accepted_names(&expected), ["a", "d", "ovn-default"]);
    let reasons: Vec<(&str, RejectReason)> = expected
        .rejected()
        .iter()
        .map(|r| (r.name.as_str(), r.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            ("b", RejectReason::Overlap),
            ("c", RejectReason::NamespaceConflict),
            ("e", RejectReason::InvalidCidr),
            ("f", RejectReason::ReservedRange),
        ]
    );
    // Every rotation and the reversal of the input give the same set.
    let mut shuffled = objects.clone();
    for _ in 0..objects.len() {
        shuffled.rotate_left(1);
        assert_eq!(validate_subnets(&shuffled, &reserved()), expected);
    }
    shuffled.reverse();
    assert_eq!(validate_subnets(&shuffled, &reserved()), expected);
}

fn cluster() -> SubnetSet {
    validate_subnets(
        &[
            subnet("ovn-default", 1, "10.16.0.0/16"),
            with_namespaces(subnet("team", 2, "10.17.0.0/24"), &["team-a"]),
            subnet("open", 3, "10.18.0.0/24"),
            subnet("broken", 4, "10.16.1.0/24"),
        ],
        &reserved(),
    )
}

#[test]
fn namespaces_choose_their_subnet_or_the_default() {
    let set = cluster();
    assert_eq!(set.for_namespace("team-a").unwrap().name, "team");
    assert_eq!(set.for_namespace("other").unwrap().name, "ovn-default");
    assert_eq!(set.for_pod("team-a", None).unwrap().name, "team");
    assert_eq!(set.for_pod("other", None).unwrap().name, "ovn-default");

    let no_default = validate_subnets(&[subnet("open", 3, "10.18.0.0/24")], &reserved());
    assert_eq!(
        no_default.for_pod("x", None),
        Err(SubnetChoiceError::NoDefault {
            namespace: "x".into()
        })
    );
}

#[test]
fn a_requested_subnet_must_exist_be_accepted_and_allow_the_namespace() {
    let set = cluster();
    assert_eq!(set.for_pod("anything", Some("open")).unwrap().name, "open");
    assert_eq!(
        set.for_pod("team-a", Some("ovn-default")).unwrap().name,
        "ovn-default"
    );
    assert_eq!(set.for_pod("team-a", Some("team")).unwrap().name, "team");
    let err = set.for_pod("other", Some("team")).unwrap_err();
    assert_eq!(
        err,
        SubnetChoiceError::NamespaceNotListed {
            subnet: "team".into(),
            namespace: "other".into()
        }
    );
    assert!(
        err.to_string().contains("does not list namespace other"),
        "{err}"
    );
    let err = set.for_pod("other", Some("nope")).unwrap_err();
    assert!(matches!(err, SubnetChoiceError::Unknown { .. }), "{err}");
    let err = set.for_pod("other", Some("broken")).unwrap_err();
    assert!(
        matches!(
            &err,
            SubnetChoiceError::Rejected {
                reason: RejectReason::Overlap,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("ovn-default"), "{err}");
}

#[test]
fn default_subnet_writes_the_gateway_out() {
    let object = default_subnet(
        "10.16.0.0/16".parse().unwrap(),
        None,
        vec!["10.16.0.2".into()],
        true,
    );
    assert_eq!(object.metadata.name.as_deref(), Some("ovn-default"));
    assert_eq!(object.spec.cidr_block, "10.16.0.0/16");
    assert_eq!(object.spec.gateway.as_deref(), Some("10.16.0.1"));
    assert_eq!(object.spec.exclude_ips, ["10.16.0.2"]);
    assert!(object.spec.nat_outgoing);
    let object = default_subnet(
        "10.16.0.0/16".parse().unwrap(),
        Some(Ipv4Addr::new(10, 16, 255, 254)),
        vec![],
        false,
    );
    assert_eq!(object.spec.gateway.as_deref(), Some("10.16.255.254"));
    assert!(!object.spec.nat_outgoing);
    // The controller's own default passes validation.
    let mut object = object;
    object.metadata.creation_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    assert!(
        validate_subnets(&[object], &reserved())
            .get("ovn-default")
            .is_some()
    );
}

#[test]
fn status_reports_usage_or_the_rejection() {
    let set = cluster();
    let t0 = Timestamp::from_second(1_700_000_000).unwrap();
    let usage = Usage {
        used: 3,
        available: 250,
    };
    let ready = subnet_status(
        SubnetOutcome::Accepted(set.get("open").unwrap(), usage),
        None,
        t0,
    );
    assert_eq!((ready.used_ips, ready.available_ips), (3, 250));
    let condition = &ready.conditions[0];
    assert_eq!(ready.conditions.len(), 1);
    assert_eq!(
        (condition.type_.as_str(), condition.status.as_str()),
        ("Ready", "True")
    );
    assert_eq!(condition.reason, "Accepted");
    assert_eq!(condition.last_transition_time, "2023-11-14T22:13:20Z");
    assert_eq!(condition.observed_generation, Some(1));

    let rejection = set.rejection("broken").unwrap();
    let not_ready = subnet_status(SubnetOutcome::Rejected(rejection), None, t0);
    let condition = &not_ready.conditions[0];
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "Overlap")
    );
    assert_eq!(condition.message, rejection.message);
    assert_eq!((not_ready.used_ips, not_ready.available_ips), (0, 0));
}

#[test]
fn transition_time_moves_only_when_readiness_changes() {
    let set = cluster();
    let open = set.get("open").unwrap();
    let t0 = Timestamp::from_second(1_700_000_000).unwrap();
    let t1 = Timestamp::from_second(1_700_000_100).unwrap();
    let t2 = Timestamp::from_second(1_700_000_200).unwrap();
    let usage = |used| Usage {
        used,
        available: 253 - used,
    };

    let first = subnet_status(SubnetOutcome::Accepted(open, usage(1)), None, t0);
    // Nothing changed: same status, nothing to write.
    let again = subnet_status(SubnetOutcome::Accepted(open, usage(1)), Some(&first), t1);
    assert_eq!(again, first);
    assert!(!status_needs_write(Some(&first), &again));
    assert!(status_needs_write(None, &again));
    // Usage changed: a write, but the condition keeps its time.
    let busier = subnet_status(SubnetOutcome::Accepted(open, usage(2)), Some(&first), t1);
    assert!(status_needs_write(Some(&first), &busier));
    assert_eq!(
        busier.conditions[0].last_transition_time,
        "2023-11-14T22:13:20Z"
    );
    // Readiness flips: the time moves.
    let broken = set.rejection("broken").unwrap();
    let rejected = subnet_status(SubnetOutcome::Rejected(broken), Some(&busier), t2);
    assert_eq!(
        rejected.conditions[0].last_transition_time,
        "2023-11-14T22:16:40Z"
    );
    // A status without conditions (e.g. written by hand) counts as a transition.
    let bare = SubnetStatus::default();
    let fresh = subnet_status(SubnetOutcome::Accepted(open, usage(1)), Some(&bare), t2);
    assert_eq!(
        fresh.conditions[0].last_transition_time,
        "2023-11-14T22:16:40Z"
    );
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// `facts` where `holders` hold addresses on `subnet`, accepted before with `previous`.
fn facts(subnet: &str, previous: Option<(&str, &str, &[&str])>, holders: &[&str]) -> Facts {
    let mut facts = Facts::default();
    facts.holders.insert(
        subnet.to_string(),
        holders
            .iter()
            .enumerate()
            .map(|(i, h)| (ip(h), format!("Pod/ns/p{i}")))
            .collect(),
    );
    if let Some((cidr, gateway, exclude)) = previous {
        facts.accepted.insert(
            subnet.to_string(),
            Addressing {
                cidr: cidr.parse().unwrap(),
                gateway: ip(gateway),
                exclude_ips: exclude.iter().map(|s| s.to_string()).collect(),
            },
        );
    }
    facts
}

fn deleted(mut object: Subnet) -> Subnet {
    object.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(100).unwrap()));
    object
}

#[test]
fn edits_that_would_move_pods_are_refused_and_the_accepted_addressing_stays() {
    let mut edited = subnet("blue", 1, "10.30.0.0/24");
    edited.spec.gateway = Some("10.30.0.254".into());
    let used = facts(
        "blue",
        Some(("10.20.0.0/24", "10.20.0.1", &[])),
        &["10.20.0.5"],
    );
    let set = validate_subnets_with(&[edited.clone()], &reserved(), &used);
    let blue = set.get("blue").unwrap();
    assert_eq!(blue.cidr.to_string(), "10.20.0.0/24");
    assert_eq!(blue.gateway, ip("10.20.0.1"));
    let fields: Vec<Field> = blue.refused.iter().map(|r| r.field).collect();
    assert_eq!(fields, [Field::CidrBlock, Field::Gateway]);
    assert!(
        blue.refused[0].why.contains("1 pod uses"),
        "{:?}",
        blue.refused
    );
    assert!(set.waits_for_pods("blue"));

    // Nobody uses it: the edit takes effect.
    let unused = facts("blue", Some(("10.20.0.0/24", "10.20.0.1", &[])), &[]);
    let set = validate_subnets_with(&[edited.clone()], &reserved(), &unused);
    let blue = set.get("blue").unwrap();
    assert_eq!(blue.cidr.to_string(), "10.30.0.0/24");
    assert_eq!(blue.gateway, ip("10.30.0.254"));
    assert!(blue.refused.is_empty() && !set.waits_for_pods("blue"));

    // Reverted: nothing refused.
    let reverted = subnet("blue", 1, "10.20.0.0/24");
    let set = validate_subnets_with(&[reverted], &reserved(), &used);
    assert!(set.get("blue").unwrap().refused.is_empty());

    // A refused CIDR edit that would also be invalid keeps the Subnet ready with the old one.
    let invalid = subnet("blue", 1, "not-a-cidr");
    let set = validate_subnets_with(&[invalid], &reserved(), &used);
    assert_eq!(set.get("blue").unwrap().cidr.to_string(), "10.20.0.0/24");
}

#[test]
fn a_gateway_on_a_pods_address_is_refused_always() {
    let mut edited = subnet("blue", 1, "10.20.0.0/24");
    edited.spec.gateway = Some("10.20.0.5".into());
    let used = facts(
        "blue",
        Some(("10.20.0.0/24", "10.20.0.1", &[])),
        &["10.20.0.5"],
    );
    let set = validate_subnets_with(&[edited.clone()], &reserved(), &used);
    let blue = set.get("blue").unwrap();
    assert_eq!(blue.gateway, ip("10.20.0.1"));
    assert!(
        blue.refused[0]
            .why
            .contains("10.20.0.5 is the address of Pod/ns/p0"),
        "{:?}",
        blue.refused
    );
    // Without an accepted addressing to keep (a status written by nobody yet), rejected.
    let unknown = facts("blue", None, &["10.20.0.5"]);
    let set = validate_subnets_with(&[edited], &reserved(), &unknown);
    let rejection = rejection_of(&set, "blue");
    assert_eq!(rejection.reason, RejectReason::InvalidGateway);
    assert!(rejection.message.contains("Pod/ns/p0"), "{rejection:?}");
}

#[test]
fn exclude_ips_may_change_unless_they_cover_a_pod() {
    let used = facts(
        "blue",
        Some(("10.20.0.0/24", "10.20.0.1", &[])),
        &["10.20.0.5"],
    );
    let mut object = subnet("blue", 1, "10.20.0.0/24");
    object.spec.exclude_ips = vec!["10.20.0.100..10.20.0.120".into()];
    let set = validate_subnets_with(&[object.clone()], &reserved(), &used);
    let blue = set.get("blue").unwrap();
    assert_eq!(blue.exclude_ips, object.spec.exclude_ips);
    assert!(blue.refused.is_empty());

    object.spec.exclude_ips = vec!["10.20.0.2..10.20.0.9".into()];
    let set = validate_subnets_with(&[object], &reserved(), &used);
    let blue = set.get("blue").unwrap();
    assert!(blue.exclude_ips.is_empty());
    assert_eq!(blue.refused[0].field, Field::ExcludeIps);
    assert!(
        blue.refused[0].why.contains("10.20.0.5"),
        "{:?}",
        blue.refused
    );
}

#[test]
fn a_deleted_subnet_stays_while_pods_use_it_and_takes_no_new_ones() {
    let default = subnet("ovn-default", 0, "10.16.0.0/16");
    let team = deleted(with_namespaces(subnet("team", 1, "10.20.0.0/24"), &["a"]));
    let newer = with_namespaces(subnet("newer", 2, "10.21.0.0/24"), &["a"]);
    let objects = [default.clone(), team.clone(), newer.clone()];
    let used = facts(
        "team",
        Some(("10.20.0.0/24", "10.20.0.1", &[])),
        &["10.20.0.5"],
    );
    let set = validate_subnets_with(&objects, &reserved(), &used);
    let config = set.get("team").unwrap();
    assert!(config.terminating && config.pods == 1);
    assert!(set.waits_for_pods("team") && set.released().is_empty());
    // It still holds its namespace (the newer one stays rejected) but takes no new pods.
    assert_eq!(
        rejection_of(&set, "newer").reason,
        RejectReason::NamespaceConflict
    );
    let err = set.for_pod("a", None).unwrap_err();
    assert_eq!(
        err,
        SubnetChoiceError::Terminating {
            name: "team".into(),
            pods: 1
        }
    );
    assert_eq!(err.reason(), "SubnetNotReady");
    assert!(set.for_pod("b", Some("team")).is_err());

    // Its last pod gone: released, and only then the newer one takes the namespace.
    let set = validate_subnets_with(&objects, &reserved(), &Facts::default());
    assert_eq!(set.released(), ["team"]);
    assert!(set.get("team").is_none());
    assert_eq!(set.for_pod("a", None).unwrap().name, "newer");

    // A deleted ovn-default in use takes no new pods either.
    let used = facts("ovn-default", None, &["10.16.0.9"]);
    let set = validate_subnets_with(&[deleted(default)], &reserved(), &used);
    assert!(set.get("ovn-default").unwrap().terminating);
    assert_eq!(
        set.for_pod("x", None).unwrap_err(),
        SubnetChoiceError::NoDefault {
            namespace: "x".into()
        }
    );
}

#[test]
fn the_addressing_in_effect_is_read_back_from_the_status() {
    let config = validate_subnets(&[subnet("blue", 1, "10.20.0.0/24")], &reserved());
    let config = config.get("blue").unwrap();
    let mut object = subnet("blue", 1, "10.30.0.0/24");
    object.status = Some(subnet_status(
        SubnetOutcome::Accepted(
            config,
            Usage {
                used: 1,
                available: 2,
            },
        ),
        None,
        Timestamp::from_second(0).unwrap(),
    ));
    let addressing = Addressing::from_status(&object).unwrap();
    assert_eq!(addressing.cidr.to_string(), "10.20.0.0/24");
    assert_eq!(addressing.gateway, ip("10.20.0.1"));
}

#[test]
fn statuses_say_terminating_and_refused_edits_and_stay_ready() {
    let mut object = subnet("blue", 1, "10.30.0.0/24");
    let used = facts(
        "blue",
        Some(("10.20.0.0/24", "10.20.0.1", &[])),
        &["10.20.0.5", "10.20.0.6"],
    );
    let set = validate_subnets_with(&[object.clone()], &reserved(), &used);
    let usage = Usage {
        used: 2,
        available: 250,
    };
    let now = Timestamp::from_second(0).unwrap();
    let status = subnet_status(
        SubnetOutcome::Accepted(set.get("blue").unwrap(), usage),
        None,
        now,
    );
    let c = &status.conditions[0];
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "SpecChangeRefused")
    );
    assert!(
        c.message.contains("cidrBlock") && c.message.contains("2 pods use"),
        "{}",
        c.message
    );
    assert_eq!(status.cidr_block.as_deref(), Some("10.20.0.0/24"));

    object = deleted(object);
    let set = validate_subnets_with(&[object], &reserved(), &used);
    let status = subnet_status(
        SubnetOutcome::Accepted(set.get("blue").unwrap(), usage),
        None,
        now,
    );
    let c = &status.conditions[0];
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "Terminating")
    );
    assert!(c.message.contains("2 pods still use it"), "{}", c.message);
}

#[test]
fn finalizers_are_added_once_and_removed_alone() {
    let mut object = subnet("blue", 1, "10.20.0.0/24");
    assert!(!has_finalizer(&object));
    object.metadata.finalizers = Some(vec!["other/keep".into()]);
    let added = finalizers_with(&object, true);
    assert_eq!(added, ["other/keep", rovn_api::subnet::FINALIZER]);
    object.metadata.finalizers = Some(added);
    assert!(has_finalizer(&object));
    assert_eq!(finalizers_with(&object, true).len(), 2);
    assert_eq!(finalizers_with(&object, false), ["other/keep"]);
    assert!(!is_terminating(&object) && is_terminating(&deleted(object)));
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A Subnet drawn from a small space, so overlaps and namespace clashes are frequent.
    fn arb_subnet() -> impl Strategy<Value = Subnet> {
        let cidrs = prop::sample::select(vec![
            "10.16.0.0/16",
            "10.16.1.0/24",
            "10.17.0.0/24",
            "10.17.0.128/25",
            "100.64.3.0/24",
            "10.100.0.0/16",
            "10.18.0.1/24",
            "garbage",
        ]);
        let namespaces =
            prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "d"]), 0..3);
        ("[a-f]", 0i64..4, cidrs, namespaces).prop_map(|(name, age, cidr, namespaces)| {
            with_namespaces(subnet(&name, age, cidr), &namespaces)
        })
    }

    proptest! {
        #[test]
        fn accepted_subnets_never_conflict_and_order_does_not_matter(
            (objects, shuffled) in prop::collection::vec(arb_subnet(), 0..8)
                .prop_flat_map(|objects| (Just(objects.clone()), Just(objects).prop_shuffle())),
        ) {
            let set = validate_subnets(&objects, &reserved());
            prop_assert_eq!(&validate_subnets(&shuffled, &reserved()), &set);
            let accepted: Vec<&SubnetConfig> = set.accepted().collect();
            prop_assert_eq!(accepted.len() + set.rejected().len(), objects.len());
            for (i, a) in accepted.iter().enumerate() {
                prop_assert!(!a.cidr.contains(&reserved().join.network()) && !reserved().join.contains(&a.cidr.network()));
                prop_assert!(!a.cidr.contains(&reserved().service.network()) && !reserved().service.contains(&a.cidr.network()));
                for b in &accepted[i + 1..] {
                    prop_assert!(!a.cidr.contains(&b.cidr.network()) && !b.cidr.contains(&a.cidr.network()),
                        "{} and {} overlap", a.name, b.name);
                    prop_assert!(a.namespaces.iter().all(|n| !b.namespaces.contains(n)),
                        "{} and {} share a namespace", a.name, b.name);
                }
            }
            // Every namespace is routed to the Subnet listing it.
            for namespace in ["a", "b", "c", "d"] {
                if let Ok(chosen) = set.for_namespace(namespace) {
                    prop_assert!(chosen.lists_namespace(namespace) || chosen.name == "ovn-default" );
                }
            }
        }
    }
}
