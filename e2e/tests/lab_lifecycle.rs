//! Lifecycle guarantees of labs: two at once, the same name twice, `up` over leftovers, `down`
//! after a crash or on a half-made lab, and a failed `up` that explains itself and cleans up.

mod common;

use std::time::Duration;

use common::*;
use rovn_e2e::lab::{self, Lab, LabError, LabGuard, LabNames, Place, daemon, sb_chassis};

#[test]
fn two_labs_at_once() {
    let first = unique_name("ta");
    let second = unique_name("tb");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| LabGuard::up(&spec(&first, 2)));
        let b = s.spawn(|| LabGuard::up(&spec(&second, 2)));
        (a.join(), b.join())
    });
    let a = a.expect("thread").expect("first lab up");
    let b = b.expect("thread").expect("second lab up");
    // Same underlay addresses, separate namespaces: each lab only sees its own chassis.
    for guard in [&a, &b] {
        let names = guard.names();
        assert_eq!(sb_chassis(names).expect("chassis").len(), 2);
        let node1 = names.netns(Place::Node(1));
        assert!(
            output(&mut in_ns(
                &node1,
                "ping",
                &["-c", "1", "-W", "2", &node_ip(2)]
            ))
            .status
            .success(),
            "underlay ping in lab {}",
            names.name()
        );
    }
    a.down().expect("first down");
    assert_gone(&first);
    assert!(
        sb_chassis(b.names()).is_ok(),
        "second lab broke when the first went down"
    );
    b.down().expect("second down");
    assert_gone(&second);
}

#[test]
fn up_twice() {
    let name = unique_name("ut");
    for round in 0..2 {
        let guard = LabGuard::up(&spec(&name, 2)).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(sb_chassis(guard.names()).expect("chassis").len(), 2);
        guard.down().expect("down");
        assert_gone(&name);
    }
}

#[test]
fn up_over_leftovers_replaces_them() {
    let name = unique_name("uo");
    let _cleanup = lab::DownOnDrop::new(name.clone());
    let first = Lab::up(&spec(&name, 2)).expect("first up");
    let old_pids: Vec<i32> = first.daemons().iter().map(|d| d.pid).collect();
    let second = Lab::up(&spec(&name, 1)).expect("second up over the first");
    assert!(
        old_pids.iter().all(|p| !daemon::is_alive(*p)),
        "old daemons survived"
    );
    assert_eq!(sb_chassis(second.names()).expect("chassis"), ["node1"]);
    assert!(!lab::netns::exists(&second.names().netns(Place::Node(2))));
    second.down().expect("down");
    assert_gone(&name);
}

#[test]
fn down_after_crash_leaves_nothing() {
    let name = unique_name("dc");
    let _cleanup = lab::DownOnDrop::new(name.clone());
    let lab = Lab::up(&spec(&name, 2)).expect("up");
    let names = lab.names().clone();
    // A daemon killed hard, and half of the lab's records gone (pidfiles included), as after a
    // crash mid-way or a careless `rm`.
    let controller = daemon::read_pidfile(&names.pidfile(Place::Node(1), "ovn-controller"))
        .expect("ovn-controller pidfile");
    run_ok(&mut cmd("kill", &["-9", &controller.to_string()]));
    for place in [Place::Central, Place::Node(2)] {
        std::fs::remove_dir_all(names.place_dir(place)).expect("remove place dir");
    }
    std::fs::remove_file(names.state_file()).expect("remove lab.json");

    let crashed_status = || {
        lab::status()
            .expect("status")
            .into_iter()
            .find(|l| l.name == name.as_str())
            .expect("status lists the crashed lab")
    };
    let controller_dead = eventually(Duration::from_secs(5), || {
        crashed_status()
            .daemons
            .iter()
            .any(|d| d.label == "node1/ovn-controller" && !d.alive)
    });
    assert!(controller_dead, "a killed daemon is reported alive");
    let crashed = crashed_status();
    assert!(crashed.info.is_none(), "lab.json was removed");
    assert!(
        crashed
            .daemons
            .iter()
            .any(|d| d.label == "node1/ovs-vswitchd" && d.alive),
        "{:?}",
        crashed.daemons
    );

    lab::down(names.name()).expect("down after crash");
    assert_gone(&name);
    lab::down(names.name()).expect("second down is a no-op");
    assert_gone(&name);
}

#[test]
fn down_finds_root_namespace_daemons_without_pidfiles() {
    let name = unique_name("rp");
    let _cleanup = lab::DownOnDrop::new(name.clone());
    let names = LabNames::new(name.clone());
    std::fs::create_dir_all(names.logs_dir()).expect("dir");
    // Stands in for the API server after its pidfile was lost: a lab program, in the root
    // namespace, naming the lab's state dir. A bystander reading a lab log must survive.
    let fake = names.state_dir().join("ovsdb-server");
    std::fs::copy("/bin/sleep", &fake).expect("copy sleep");
    let log = names.log_file(Place::Central, "x");
    std::fs::write(&log, "").expect("log");
    let mut fake_daemon = spawn_quiet(&fake.display().to_string(), &["300"]);
    let daemon_pid = fake_daemon.id() as i32;
    // The kernel renames a process a moment after `spawn` returns from its exec.
    let renamed = eventually(Duration::from_secs(5), || {
        daemon::program_name(daemon_pid).as_deref() == Some("ovsdb-server")
    });
    assert!(renamed, "the fake daemon never showed its name");
    let mut bystander = spawn_quiet("tail", &["-f", &log.display().to_string()]);
    lab::down(&name).expect("down");
    assert!(
        fake_daemon.try_wait().expect("try_wait").is_some() || !daemon::is_alive(daemon_pid),
        "the lab program survived down"
    );
    let _ = fake_daemon.wait();
    assert!(
        bystander.try_wait().expect("try_wait").is_none(),
        "down killed a process that only reads a lab log"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert_gone(&name);
}

fn spawn_quiet(program: &str, args: &[&str]) -> std::process::Child {
    std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"))
}

#[test]
fn down_cleans_a_half_made_lab() {
    let name = unique_name("hm");
    let _cleanup = lab::DownOnDrop::new(name.clone());
    let names = LabNames::new(name.clone());
    // What a crash right after the first steps of `up` leaves: a namespace with a process in
    // it, a link, and a directory, with no pidfile or record.
    let ns = names.netns(Place::Central);
    lab::netns::add(&ns).expect("netns");
    lab::netns::batch(&ns, &["link add br-lab type bridge".to_string()]).expect("bridge");
    std::fs::create_dir_all(names.place_dir(Place::Central)).expect("dir");
    run_ok(&mut in_ns(
        &ns,
        "sh",
        &["-c", "sleep 300 >/dev/null 2>&1 &"],
    ));
    let orphans = lab::netns::pids(&ns).expect("pids");
    assert!(!orphans.is_empty(), "the sleeper is not in {ns}");
    assert!(!leftovers(&name).is_empty());
    lab::down(&name).expect("down");
    assert_gone(&name);
    assert!(
        orphans.iter().all(|p| !daemon::is_alive(*p)),
        "processes of the half-made lab survived: {orphans:?}"
    );
}

#[test]
fn failed_up_explains_and_cleans_up() {
    let name = unique_name("fu");
    let _cleanup = lab::DownOnDrop::new(name.clone());
    let mut spec = spec(&name, 2);
    spec.timeout = Duration::from_millis(1);
    let err = Lab::up(&spec).expect_err("up cannot finish in 1 ms");
    assert!(matches!(err, LabError::Timeout { .. }), "{err}");
    assert!(
        err.to_string().contains("last lines of"),
        "no log tail in: {err}"
    );
    assert_gone(&name);
}

#[test]
fn bad_specs_are_rejected_before_anything_is_made() {
    let name = unique_name("bs");
    for nodes in [0, 201] {
        let err = Lab::up(&spec(&name, nodes)).expect_err("invalid node count");
        assert!(matches!(err, LabError::InvalidSpec(_)), "{err}");
    }
    assert_gone(&name);
}

#[test]
fn missing_kube_binaries_are_named() {
    let name = unique_name("mk");
    let _cleanup = lab::DownOnDrop::new(name.clone());
    let empty = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(&name, 1);
    spec.kube = true;
    spec.bin_dir = Some(empty.path().to_path_buf());
    let err = Lab::up(&spec).expect_err("no kube binaries there");
    assert!(err.to_string().contains("rovn-kubesim not found"), "{err}");
    assert_gone(&name);
}

#[test]
fn stale_labs_of_dead_owners_are_removed() {
    let orphan = unique_name("so");
    let owned = unique_name("sl");
    let _cleanup = lab::DownOnDrop::new(orphan.clone());
    // An owner that has exited, as a test process killed before its guard ran.
    let mut dead_owner = cmd("sleep", &["30"]).spawn().expect("spawn owner");
    let owner_ref = lab::ProcessRef::of(dead_owner.id() as i32).expect("owner running");
    dead_owner.kill().expect("kill owner");
    dead_owner.wait().expect("reap owner");
    let mut orphan_spec = spec(&orphan, 1);
    orphan_spec.owner = Some(owner_ref);
    let _orphan_lab = Lab::up(&orphan_spec).expect("orphan up");
    let owned_lab = LabGuard::up(&spec(&owned, 1)).expect("owned up");

    let removed = lab::down_stale().expect("down --stale");
    assert!(removed.contains(&orphan), "{removed:?}");
    assert!(
        !removed.contains(&owned),
        "a lab of a live owner was removed"
    );
    assert_gone(&orphan);
    assert_eq!(sb_chassis(owned_lab.names()).expect("chassis"), ["node1"]);
    owned_lab.down().expect("down");
    assert_gone(&owned);
}
