//! The pod veth against real network namespaces: both the "agent" and the "sandbox" are
//! throwaway namespaces, so the root namespace is never touched. Needs root, `ip`, `ethtool`,
//! `ping`.

mod netdev_support;

use std::net::Ipv4Addr;

use netdev_support::{Netns, ipv4_addresses, run_ok};
use rovn_api::MacAddr;
use rovn_node::netdev::{
    AttachedVeth, NetdevError, OperState, PodInterfaceSpec, attach_pod, create_pod_veth,
    detach_pod, host_veth_name, inspect_sandbox, list_host_veths, remove_from_sandbox,
};

const POD_MAC: MacAddr = MacAddr([0x0a, 0x58, 0x0a, 0x10, 0x00, 0x05]);

fn spec_for(pod: &Netns) -> PodInterfaceSpec {
    PodInterfaceSpec {
        sandbox: pod.path(),
        ifname: "eth0".to_string(),
        mac: POD_MAC,
        address: "10.16.0.5/16".parse().expect("literal"),
        gateway: Ipv4Addr::new(10, 16, 0, 1),
        mtu: 1400,
        tx_checksum_offload: false,
    }
}

fn host_name_for(test: &str) -> String {
    host_veth_name(&format!("{test}-{}", std::process::id()))
}

fn attach_in(
    agent: &Netns,
    host: &str,
    spec: &PodInterfaceSpec,
) -> Result<AttachedVeth, NetdevError> {
    let (host, spec) = (host.to_string(), spec.clone());
    agent.run(move || async move { attach_pod(&host, &spec).await })
}

/// Asserts the sandbox end looks exactly as `spec` asks, as `ip` and `ethtool` see it.
fn assert_pod_end_configured(pod: &Netns, spec: &PodInterfaceSpec) {
    let link = pod.link(&spec.ifname);
    assert_eq!(link["address"], spec.mac.to_string());
    assert_eq!(link["mtu"], spec.mtu);
    assert_eq!(pod.settled_operstate(&spec.ifname), "UP", "{link}");
    assert_eq!(link["linkinfo"]["info_kind"], "veth");
    let addr = pod.ip_json(&["addr", "show", "dev", &spec.ifname]);
    assert_eq!(ipv4_addresses(&addr[0]), vec![spec.address.to_string()]);
    let defaults = pod.routes(&["default"]);
    assert_eq!(defaults.len(), 1, "{defaults:?}");
    assert_eq!(defaults[0]["gateway"], spec.gateway.to_string());
    assert_eq!(defaults[0]["dev"], spec.ifname);
    let features = pod.exec_ok(&["ethtool", "-k", &spec.ifname]);
    assert!(
        features.lines().any(|l| l.trim() == "tx-checksumming: off"),
        "{features}"
    );
}

#[test]
fn attach_configures_both_ends_and_passes_packets() {
    let agent = Netns::new("agent");
    let pod = Netns::new("pod");
    let spec = spec_for(&pod);
    let host = host_name_for("attach");

    let attached = attach_in(&agent, &host, &spec).expect("attach");

    assert_pod_end_configured(&pod, &spec);
    let pod_link = pod.link("eth0");
    assert_eq!(pod_link["ifindex"], attached.sandbox_ifindex);
    assert_eq!(attached.sandbox_mac, POD_MAC);
    let host_link = agent.link(&host);
    assert_eq!(host_link["ifindex"], attached.host_ifindex);
    assert_eq!(host_link["address"], attached.host_mac.to_string());
    assert_eq!(host_link["mtu"], 1400);
    assert_eq!(agent.settled_operstate(&host), "UP");
    assert_eq!(attached.host_name, host);

    // Test only: the host end plays the gateway so real packets can cross the pair.
    agent.exec_ok(&["ip", "addr", "add", "10.16.0.1/16", "dev", &host]);
    agent.exec_ok(&["ping", "-c", "2", "-W", "2", "10.16.0.5"]);
    pod.exec_ok(&[
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "-M",
        "do",
        "-s",
        "1372",
        "10.16.0.1",
    ]);
}

#[test]
fn a_new_pair_is_created_with_the_host_end_up_in_one_step() {
    let agent = Netns::new("agent");
    let pod = Netns::new("pod");
    let spec = spec_for(&pod);
    let host = host_name_for("fresh");

    let veth = {
        let (host, spec) = (host.clone(), spec.clone());
        agent
            .run(move || async move { create_pod_veth(&host, &spec).await })
            .expect("create")
    };

    // What ADD plugs into OVS while the sandbox end is still being configured.
    let host_link = agent.link(&host);
    assert_eq!(host_link["ifindex"], veth.host_ifindex);
    assert_eq!(host_link["address"], veth.host_mac.to_string());
    assert_eq!(host_link["mtu"], 1400);
    let flags = host_link["flags"].as_array().expect("flags");
    assert!(flags.iter().any(|f| f == "UP"), "{host_link}");
    let pod_link = pod.link("eth0");
    assert_eq!(pod_link["address"], POD_MAC.to_string());
    assert_eq!(pod_link["mtu"], 1400);
    let addr = pod.ip_json(&["addr", "show", "dev", "eth0"]);
    assert!(ipv4_addresses(&addr[0]).is_empty(), "{addr}");
}

#[test]
fn attach_twice_gives_the_same_pair() {
    let agent = Netns::new("agent");
    let pod = Netns::new("pod");
    let spec = spec_for(&pod);
    let host = host_name_for("twice");

    let started = std::time::Instant::now();
    let first = attach_in(&agent, &host, &spec).expect("first attach");
    let created = started.elapsed();
    let second = attach_in(&agent, &host, &spec).expect("second attach");
    eprintln!(
        "attach: create {created:?}, converge {:?}",
        started.elapsed() - created
    );

    assert_eq!(first, second);
    assert_pod_end_configured(&pod, &spec);
}

#[test]
fn attach_repairs_a_drifted_pod_end() {
    let agent = Netns::new("agent");
    let pod = Netns::new("pod");
    let spec = spec_for(&pod);
    let host = host_name_for("drift");
    let first = attach_in(&agent, &host, &spec).expect("attach");
    pod.exec_ok(&["ip", "link", "set", "eth0", "down"]);
    pod.exec_ok(&["ip", "addr", "add", "10.99.0.9/24", "dev", "eth0"]);
    pod.exec_ok(&["ethtool", "-K", "eth0", "tx", "on"]);
    pod.exec_ok(&[
        "ip",
        "link",
        "set",
        "eth0",
        "mtu",
        "1300",
        "address",
        "0a:58:0a:63:00:09",
    ]);

    let again = attach_in(&agent, &host, &spec).expect("re-attach");

    assert_eq!(
        again.sandbox_ifindex, first.sandbox_ifindex,
        "the pair was recreated"
    );
    assert_pod_end_configured(&pod, &spec);
}

#[test]
fn attach_converges_after_a_leftover_host_veth() {
    let agent = Netns::new("agent");
    let pod = Netns::new("pod");
    let spec = spec_for(&pod);
    let host = host_name_for("leftover");
    // A half-done earlier attempt: the pair exists but the peer never left the agent's netns.
    agent.exec_ok(&[
        "ip",
        "link",
        "add",
        &host,
        "type",
        "veth",
        "peer",
        "name",
        "rovnt-stray",
    ]);

    let attached = attach_in(&agent, &host, &spec).expect("attach over the leftover");

    assert_pod_end_configured(&pod, &spec);
    assert!(!agent.has_link("rovnt-stray"), "the leftover pair survived");
    assert_eq!(agent.link(&host)["ifindex"], attached.host_ifindex);
}

#[test]
fn attach_refuses_a_foreign_interface_in_the_sandbox() {
    let agent = Netns::new("agent");
    let pod = Netns::new("pod");
    pod.exec_ok(&["ip", "tuntap", "add", "eth0", "mode", "tap"]);
    let host = host_name_for("foreign");

    let err = attach_in(&agent, &host, &spec_for(&pod)).expect_err("must refuse");

    assert!(matches!(err, NetdevError::Conflict { .. }), "{err}");
    assert_eq!(pod.link("eth0")["linkinfo"]["info_kind"], "tun");
    assert!(!agent.has_link(&host));
}

#[test]
fn attach_into_a_missing_netns_fails_cleanly() {
    let agent = Netns::new("agent");
    let gone = Netns::new("gone");
    let spec = spec_for(&gone);
    drop(gone);
    let host = host_name_for("missing");

    let err = attach_in(&agent, &host, &spec).expect_err("must fail");

    assert!(matches!(err, NetdevError::NetnsMissing { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&spec.sandbox.display().to_string()),
        "{err}"
    );
    assert!(!agent.has_link(&host));
}

#[test]
fn inspect_and_list_report_what_attach_made() {
    let agent = Netns::new("agent");
    let pod = Netns::new("pod");
    let spec = spec_for(&pod);
    let host = host_name_for("inspect");
    agent.exec_ok(&[
        "ip", "link", "add", "notrovn0", "type", "veth", "peer", "name", "notrovn1",
    ]);
    let attached = attach_in(&agent, &host, &spec).expect("attach");

    assert_eq!(pod.settled_operstate("eth0"), "UP");
    let (sandbox, ifname) = (spec.sandbox.clone(), spec.ifname.clone());
    let seen = agent
        .run(move || async move { inspect_sandbox(&sandbox, &ifname).await })
        .expect("inspect");
    assert_eq!(seen.ifindex, attached.sandbox_ifindex);
    assert_eq!(seen.mac, Some(POD_MAC));
    assert_eq!(seen.addresses, vec![spec.address]);
    assert_eq!(seen.mtu, Some(spec.mtu));
    assert_eq!(seen.default_gateway, Some(spec.gateway));
    assert!(seen.admin_up);
    assert_eq!(seen.oper_state, OperState::Up);
    assert_eq!(seen.tx_checksum_offload, Some(false));

    let veths = agent
        .run(|| async { list_host_veths().await })
        .expect("list");
    let names: Vec<&str> = veths.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, vec![host.as_str()]);
    assert_eq!(veths[0].ifindex, attached.host_ifindex);

    let sandbox = spec.sandbox.clone();
    let missing = agent.run(move || async move { inspect_sandbox(&sandbox, "eth9").await });
    assert!(
        matches!(missing, Err(NetdevError::NoSuchDevice { .. })),
        "{missing:?}"
    );
}

#[test]
fn detach_and_remove_are_idempotent() {
    let agent = Netns::new("agent");
    let pod = Netns::new("pod");
    let spec = spec_for(&pod);
    let host = host_name_for("detach");
    attach_in(&agent, &host, &spec).expect("attach");

    let name = host.clone();
    agent
        .run(move || async move {
            detach_pod(&name).await?;
            detach_pod(&name).await
        })
        .expect("detach twice");
    assert!(!agent.has_link(&host));
    assert!(!pod.has_link("eth0"), "the peer must go with the host end");

    attach_in(&agent, &host, &spec).expect("attach again");
    let sandbox = spec.sandbox.clone();
    agent
        .run(move || async move {
            remove_from_sandbox(&sandbox, "eth0").await?;
            remove_from_sandbox(&sandbox, "eth0").await
        })
        .expect("remove twice");
    assert!(!pod.has_link("eth0"));
    assert!(!agent.has_link(&host), "the host end must go with the peer");

    drop(pod);
    let sandbox = spec.sandbox.clone();
    agent
        .run(move || async move { remove_from_sandbox(&sandbox, "eth0").await })
        .expect("remove from a deleted netns");
}

#[test]
fn tx_checksum_offload_is_left_on_when_asked() {
    let agent = Netns::new("agent");
    let pod = Netns::new("pod");
    let spec = PodInterfaceSpec {
        tx_checksum_offload: true,
        ..spec_for(&pod)
    };
    attach_in(&agent, &host_name_for("csum"), &spec).expect("attach");
    let features = run_ok("ip", &["netns", "exec", &pod.name, "ethtool", "-k", "eth0"]);
    assert!(
        features.lines().any(|l| l.trim() == "tx-checksumming: on"),
        "{features}"
    );
}

#[test]
fn attach_with_a_changed_spec_converges_on_a_live_pair() {
    let agent = Netns::new("agent");
    let pod = Netns::new("pod");
    let host = host_name_for("respec");
    let first = attach_in(&agent, &host, &spec_for(&pod)).expect("attach");
    let changed = PodInterfaceSpec {
        mac: MacAddr([0x0a, 0x58, 0x0a, 0x10, 0x00, 0x06]),
        address: "10.16.0.6/16".parse().expect("literal"),
        mtu: 1350,
        ..spec_for(&pod)
    };

    let again = attach_in(&agent, &host, &changed).expect("attach with the new spec");

    assert_eq!(again.sandbox_ifindex, first.sandbox_ifindex);
    assert_eq!(again.sandbox_mac, changed.mac);
    let link = pod.link("eth0");
    assert_eq!(link["address"], changed.mac.to_string());
    assert_eq!(link["mtu"], 1350);
    assert_eq!(pod.settled_operstate("eth0"), "UP");
    let addr = pod.ip_json(&["addr", "show", "dev", "eth0"]);
    assert_eq!(ipv4_addresses(&addr[0]), vec!["10.16.0.6/16".to_string()]);
    assert_eq!(agent.link(&host)["mtu"], 1350);
}

/// A process living in the pod's namespace, killed on drop; gives a `/proc/<pid>/ns/net` path
/// the way container runtimes without `/run/netns` do.
struct PodProcess(std::process::Child);

impl Drop for PodProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn attach_accepts_a_proc_pid_netns_path() {
    let agent = Netns::new("agent");
    let pod = Netns::new("pod");
    let process = PodProcess(
        std::process::Command::new("ip")
            .args(["netns", "exec", &pod.name, "sleep", "60"])
            .spawn()
            .expect("spawn sleeper"),
    );
    // `ip netns exec` enters the namespace and then execs sleep in the same process.
    let path = std::path::PathBuf::from(format!("/proc/{}/ns/net", process.0.id()));
    let wanted = std::fs::metadata(pod.path()).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::metadata(&path)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .ok()
        != wanted.as_ref().ok().copied()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "sleeper never entered the pod netns"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let spec = PodInterfaceSpec {
        sandbox: path,
        ..spec_for(&pod)
    };

    attach_in(&agent, &host_name_for("procpath"), &spec).expect("attach");

    assert_pod_end_configured(&pod, &spec);
    drop(process);
}

#[test]
fn the_agents_own_netns_is_never_treated_as_a_sandbox() {
    let agent = Netns::new("agent");
    let spec = spec_for(&agent);

    let err = attach_in(&agent, &host_name_for("own"), &spec).expect_err("must refuse");
    assert!(matches!(err, NetdevError::InvalidRequest { .. }), "{err}");
    assert!(!agent.has_link("eth0"));

    let own = agent.path();
    let removal = agent.run(move || async move { remove_from_sandbox(&own, "lo").await });
    assert!(
        matches!(removal, Err(NetdevError::InvalidRequest { .. })),
        "{removal:?}"
    );
    assert!(agent.has_link("lo"));
}

#[test]
fn many_pods_attach_concurrently_on_a_multi_threaded_runtime() {
    const PODS: u8 = 8;
    let agent = Netns::new("agent");
    let pods: Vec<Netns> = (0..PODS).map(|_| Netns::new("pod")).collect();
    let specs: Vec<(String, PodInterfaceSpec)> = pods
        .iter()
        .zip(10u8..)
        .map(|(pod, host_octet)| {
            let spec = PodInterfaceSpec {
                mac: MacAddr([0x0a, 0x58, 0x0a, 0x10, 0x00, host_octet]),
                address: format!("10.16.0.{host_octet}/16").parse().expect("literal"),
                ..spec_for(pod)
            };
            (host_name_for(&format!("many{host_octet}")), spec)
        })
        .collect();

    let jobs = specs.clone();
    let results = agent.run_on_workers(move || async move {
        let tasks: Vec<_> = jobs
            .into_iter()
            .map(|(host, spec)| tokio::spawn(async move { attach_pod(&host, &spec).await }))
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("attach task panicked"));
        }
        results
    });

    for (result, (pod, (host, spec))) in results.into_iter().zip(pods.iter().zip(&specs)) {
        let attached = result.expect("attach");
        assert_eq!(&attached.host_name, host);
        assert_pod_end_configured(pod, spec);
    }
    let mut listed: Vec<String> = agent
        .run(|| async { list_host_veths().await })
        .expect("list")
        .into_iter()
        .map(|veth| veth.name)
        .collect();
    listed.sort();
    let mut expected: Vec<String> = specs.into_iter().map(|(host, _)| host).collect();
    expected.sort();
    assert_eq!(listed, expected);
}
