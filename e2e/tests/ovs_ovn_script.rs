//! The image's `start-ovs-ovn.sh` as the DaemonSet runs it, in private mount, network and PID
//! namespaces (fresh /run/openvswitch, /etc/openvswitch, /var/run/ovn): the three daemons
//! come up (`probe live`), ovn-controller is not Ready until the chassis settings rovn-node
//! writes are there, then is Ready (connected to a Southbound database); `stop` (the preStop)
//! and a second `run` keep br-int and its ports, as an update of the DaemonSet must. The
//! userspace datapath stands in for the kernel's, which this machine does not load.

use std::path::Path;
use std::process::Command;

const HARNESS: &str = r#"
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

#[test]
fn ovs_ovn_waits_for_rovn_node_and_a_restart_keeps_br_int() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/images/start-ovs-ovn.sh")
        .canonicalize()
        .expect("deploy/images/start-ovs-ovn.sh exists");
    let dir = tempfile::Builder::new()
        .prefix("rovn-ovs-ovn-")
        .tempdir()
        .expect("temp dir");
    // --pid --fork --kill-child: whatever happens, the daemons die with the PID namespace;
    // the tmpfs mounts die with the mount namespace.
    // timeout: a hang guard for the whole harness; its SIGKILL of unshare takes the
    // namespace's processes along (--kill-child).
    let out = Command::new("timeout")
        .args(["--signal=KILL", "300", "unshare"])
        .args([
            "--mount",
            "--net",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
        ])
        .args(["bash", "-c", HARNESS, "harness"])
        .arg(&script)
        .arg(dir.path())
        .output()
        .expect("unshare runs (root)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !(out.status.success() && stdout.contains("harness-ok")) {
        let log = std::fs::read_to_string(dir.path().join("ovs-ovn.log")).unwrap_or_default();
        panic!(
            "the harness failed ({}):\n{stdout}\n{}\n--- ovs-ovn\n{log}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
