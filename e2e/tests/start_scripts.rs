//! The image's start scripts run on this machine as their pods run them (containers cannot be
//! started here), each inside private namespaces (`unshare`) so nothing outlives the test and
//! nothing is shared with the host or other tests.
//!
//! - `start-ovn-central.sh` as three members (own database directories, the member list from
//!   `rovn-config`) on loopback addresses: the first creates the raft clusters and the others
//!   join, all three become Ready (`probe ready`), a write through the member list is read back
//!   from another member, exactly one ovn-northd is active, and a member restarted with its
//!   database rejoins keeping the data.
//! - `start-ovs-ovn.sh` with fresh /run/openvswitch, /etc/openvswitch, /var/run/ovn: the three
//!   daemons come up (`probe live`), ovn-controller is not Ready until the chassis settings
//!   rovn-node writes are there, then is Ready; `stop` (the preStop) and a second `run` keep
//!   br-int and its ports, as an update of the DaemonSet must. The userspace datapath stands in
//!   for the kernel's, which this machine does not load.

use std::path::{Path, PathBuf};
use std::process::Command;

const CENTRAL_HARNESS: &str = r#"
set -euo pipefail
ip link set lo up
script=$1 dir=$2
export OVN_CENTRAL_IPS=127.0.0.11,127.0.0.12,127.0.0.13
nb=tcp:127.0.0.11:6641,tcp:127.0.0.12:6641,tcp:127.0.0.13:6641
start() {
    POD_IP=127.0.0.1$1 OVN_DB_DIR=$dir/db$1 OVN_RUN_DIR=$dir/run$1 \
        "$script" run >>"$dir/member$1.log" 2>&1 &
    echo $! >"$dir/member$1.pid"
}
probe() { OVN_RUN_DIR=$dir/run$1 "$script" probe "$2" >/dev/null 2>&1; }
# Polls `probe ready` of member $1 (a condition, not a timing: 600 x 0.1 s is a hang guard).
await_ready() {
    for _ in $(seq 600); do probe "$1" ready && probe "$1" live && return 0; sleep 0.1; done
    echo "member $1 never became ready" >&2
    return 1
}
for m in 1 2 3; do start $m; done
for m in 1 2 3; do await_ready $m; done
grep -q "creating the cluster" "$dir/member1.log"
grep -q "joining" "$dir/member2.log"
grep -q "joining" "$dir/member3.log"

ovn-nbctl --db="$nb" --timeout=30 ls-add from-the-list
ovn-nbctl --db=tcp:127.0.0.12:6641 --no-leader-only --timeout=30 --wait=none ls-list | grep -q from-the-list

active=0
for m in 1 2 3; do
    for _ in $(seq 300); do
        status=$(ovn-appctl -t "$dir/run$m/ovn-northd.ctl" status 2>/dev/null || true)
        case "$status" in *active*|*standby*) break ;; esac
        sleep 0.1
    done
    case "$status" in *active*) active=$((active + 1)) ;; esac
done
[ "$active" = 1 ] || { echo "$active ovn-northd active" >&2; exit 1; }

# A restart with the database present: member 1 starts as a member again.
OVN_RUN_DIR=$dir/run1 "$script" stop
wait "$(cat "$dir/member1.pid")" || true
start 1
await_ready 1
grep -q "exists, starting as a member" "$dir/member1.log"
ovn-nbctl --db=tcp:127.0.0.11:6641 --no-leader-only --timeout=30 ls-list | grep -q from-the-list
ovn-nbctl --db="$nb" --timeout=30 ls-add after-the-restart

for m in 1 2 3; do OVN_RUN_DIR=$dir/run$m "$script" stop; done
wait
echo harness-ok
"#;

const OVS_OVN_HARNESS: &str = r#"
set -euo pipefail
ip link set lo up
script=$1 dir=$2
for d in /run/openvswitch /etc/openvswitch /var/run/ovn; do mkdir -p "$d"; mount -t tmpfs tmpfs "$d"; done
export OVS_DATAPATH_TYPE=netdev
start() { "$script" run >>"$dir/ovs-ovn.log" 2>&1 & echo $! >"$dir/ovs-ovn.pid"; }
# Polls a probe (a condition, not a timing: 600 x 0.1 s is a hang guard).
await() {
    for _ in $(seq 600); do "$script" probe "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "probe $1 never passed" >&2
    return 1
}
start
await live
# Not Ready without rovn-node's settings: ovn-controller has no Southbound to connect to.
! "$script" probe ready 2>/dev/null

# A Southbound database, and what rovn-node writes (ovs-ovn writes none of it).
ovsdb-tool create "$dir/sb.db" /usr/share/ovn/ovn-sb.ovsschema
ovsdb-server "$dir/sb.db" --remote=ptcp:6642:127.0.0.1 --pidfile="$dir/sb.pid" \
    --unixctl="$dir/sb.ctl" --no-chdir --detach --log-file="$dir/sb.log"
ovs-vsctl set Open_vSwitch . external_ids:system-id=node-a \
    external_ids:ovn-remote=tcp:127.0.0.1:6642 external_ids:ovn-encap-type=geneve \
    external_ids:ovn-encap-ip=127.0.0.1 external_ids:ovn-bridge-datapath-type=netdev
ovs-vsctl --may-exist add-br br-int -- set Bridge br-int datapath_type=netdev fail_mode=secure
ovs-vsctl add-port br-int pod-port -- set Interface pod-port type=internal external_ids:iface-id=pod-a
await ready
ovn-sbctl --db=tcp:127.0.0.1:6642 --timeout=30 --bare --columns=name list Chassis | grep -qx node-a

# The preStop, then the container's exit, then a new container.
"$script" stop
wait "$(cat "$dir/ovs-ovn.pid")" || true
ovs-vsctl --no-wait list-ports br-int 2>/dev/null && { echo "ovsdb-server still running" >&2; exit 1; }
start
await live
await ready
ovs-vsctl list-ports br-int | grep -qx pod-port
[ "$(ovs-vsctl get Open_vSwitch . external_ids:system-id)" = '"node-a"' ] ||
    [ "$(ovs-vsctl get Open_vSwitch . external_ids:system-id)" = node-a ]
ovn-sbctl --db=tcp:127.0.0.1:6642 --timeout=30 --bare --columns=name list Chassis | grep -qx node-a
"$script" stop
wait "$(cat "$dir/ovs-ovn.pid")" || true
echo harness-ok
"#;

/// Runs `harness` with bash in new namespaces (`namespaces`: unshare's flags besides --pid),
/// giving it the start script `script` and a temp dir; panics with its output and the logs
/// `logs` (file names in the temp dir) unless it ends with `harness-ok`.
fn run_harness(namespaces: &[&str], harness: &str, script: &str, logs: &[&str]) {
    let script: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/images")
        .join(script)
        .canonicalize()
        .unwrap_or_else(|e| panic!("deploy/images/{script}: {e}"));
    let dir = tempfile::Builder::new()
        .prefix("rovn-start-script-")
        .tempdir()
        .expect("temp dir");
    // --pid --fork --kill-child: whatever happens, the daemons die with the PID namespace.
    // timeout: a hang guard for the whole harness; its SIGKILL of unshare takes the
    // namespace's processes along (--kill-child).
    let out = Command::new("timeout")
        .args(["--signal=KILL", "300", "unshare"])
        .args(namespaces)
        .args(["--pid", "--fork", "--kill-child", "--mount-proc"])
        .args(["bash", "-c", harness, "harness"])
        .arg(&script)
        .arg(dir.path())
        .output()
        .expect("unshare runs (root)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !(out.status.success() && stdout.contains("harness-ok")) {
        let mut text = String::new();
        for log in logs {
            let content = std::fs::read_to_string(dir.path().join(log)).unwrap_or_default();
            text.push_str(&format!("--- {log}\n{content}\n"));
        }
        panic!(
            "the harness failed ({}):\n{stdout}\n{}\n{text}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn ovn_central_members_form_a_cluster_and_a_restarted_member_rejoins() {
    run_harness(
        &["--net"],
        CENTRAL_HARNESS,
        "start-ovn-central.sh",
        &["member1.log", "member2.log", "member3.log"],
    );
}

#[test]
fn ovs_ovn_waits_for_rovn_node_and_a_restart_keeps_br_int() {
    run_harness(
        &["--mount", "--net"],
        OVS_OVN_HARNESS,
        "start-ovs-ovn.sh",
        &["ovs-ovn.log"],
    );
}
