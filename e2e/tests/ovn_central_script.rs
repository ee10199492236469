//! The image's `start-ovn-central.sh` run as three members, as the StatefulSet runs it (each
//! with its own database directory, the member list from `rovn-config`): the first creates the
//! raft clusters and the others join, all three become Ready (`probe ready`), a write through
//! the member list is read back from another member, exactly one ovn-northd is active, and a
//! member restarted with its database rejoins keeping the data. Runs in its own network and
//! PID namespaces (`unshare`), on loopback addresses, so nothing outlives the test and no port
//! is shared with anything else on the machine.

use std::path::Path;
use std::process::Command;

const HARNESS: &str = r#"
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

#[test]
fn three_members_form_a_cluster_and_a_restarted_member_rejoins() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/images/start-ovn-central.sh")
        .canonicalize()
        .expect("deploy/images/start-ovn-central.sh exists");
    let dir = tempfile::Builder::new()
        .prefix("rovn-ovn-central-")
        .tempdir()
        .expect("temp dir");
    // --pid --fork --kill-child: when the harness ends, however it ends, every daemon it
    // started dies with its PID namespace.
    // timeout: a hang guard for the whole harness; its SIGKILL of unshare takes the
    // namespace's processes along (--kill-child).
    let out = Command::new("timeout")
        .args(["--signal=KILL", "300", "unshare"])
        .args(["--net", "--pid", "--fork", "--kill-child", "--mount-proc"])
        .args(["bash", "-c", HARNESS, "harness"])
        .arg(&script)
        .arg(dir.path())
        .output()
        .expect("unshare runs (root)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !(out.status.success() && stdout.contains("harness-ok")) {
        let mut logs = String::new();
        for m in 1..=3 {
            let log = std::fs::read_to_string(dir.path().join(format!("member{m}.log")))
                .unwrap_or_default();
            logs.push_str(&format!("--- member {m}\n{log}\n"));
        }
        panic!(
            "the harness failed ({}):\n{stdout}\n{}\n{logs}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
