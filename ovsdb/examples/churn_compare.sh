#!/usr/bin/env bash
# Runs nb_churn (rovn) and raw_churn.py (raw pipelined JSON) in per-pod and batch mode, each
# against a fresh OVN Northbound ovsdb-server in its own temp dir, and prints the four rates
# and rovn's ratio to the raw client. Each figure is the median of RUNS runs (default 3), the
# clients alternating, so that load from elsewhere on the machine hits both alike.
# Usage: [RUNS=3] [MODES="per-pod batch"] churn_compare.sh [PODS] [BATCH_OPS]
set -euo pipefail

PODS=${1:-10000}
BATCH_OPS=${2:-10000}
RUNS=${RUNS:-3}
MODES=${MODES:-per-pod batch}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SCHEMA=/usr/share/ovn/ovn-nb.ovsschema

(cd "$ROOT" && cargo build --release -q -p rovn-ovsdb --example nb_churn)
NB_CHURN=$TARGET/release/examples/nb_churn

# Raised priority (root only) shields server and clients alike from other work on the machine.
NICE=
if [ "$(id -u)" = 0 ]; then NICE="nice -n -10"; fi

WORK=$(mktemp -d /tmp/rovn-churn.XXXXXX)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

start_server() {
    local dir=$WORK/$1
    mkdir -p "$dir"
    ovsdb-tool create "$dir/nb.db" "$SCHEMA"
    $NICE ovsdb-server "$dir/nb.db" --remote="punix:$dir/nb.sock" --unixctl="$dir/ctl" \
        --log-file="$dir/ovsdb-server.log" --no-chdir -vconsole:off </dev/null >/dev/null 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        [ -S "$dir/nb.sock" ] && return 0
        sleep 0.05
    done
    echo "ovsdb-server did not start; see $dir/ovsdb-server.log" >&2
    exit 1
}

stop_server() {
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

declare -A RATES CPUS
run() { # client mode
    local client=$1 mode=$2 out
    local name=$client-$mode-$RANDOM
    start_server "$name"
    local remote=unix:$WORK/$name/nb.sock
    local cmd=(python3 "$HERE/raw_churn.py")
    if [ "$client" = rovn ]; then cmd=("$NB_CHURN"); fi
    # The client's own CPU time does not depend on other load: it shows what the client costs.
    out=$( { TIMEFORMAT='%U %S'; time $NICE "${cmd[@]}" --remote "$remote" --pods "$PODS" \
        --mode "$mode" --batch-ops "$BATCH_OPS" 2>"$WORK/client.err"; } 2>"$WORK/cpu.txt") || {
        cat "$WORK/client.err" >&2; exit 1; }
    stop_server
    CPUS[$client-$mode]+="$(awk '{ printf "%.2f", $1 + $2 }' "$WORK/cpu.txt") "
    # Every line of the output gets the prefix, which ${out//…} cannot do.
    # shellcheck disable=SC2001
    echo "$out" | sed "s/^/  [$client $mode] /" >&2
    rm -rf "${WORK:?}/$name"
    # Flush this run's database writes now, so that their write-back does not land on the next.
    sync
    sleep 0.5
    RATES[$client-$mode]+="$(echo "$out" | sed -n 's/^pods_per_sec=//p' | tail -1) "
}

median() { tr ' ' '\n' | sort -n | awk 'NF { v[++n] = $1 } END { print (n ? v[int((n + 1) / 2)] : "n/a") }'; }

for n in $(seq "$RUNS"); do
    for mode in $MODES; do
        # Alternate who goes first, so that drifting load elsewhere does not favour one.
        if [ $((n % 2)) = 1 ]; then
            run raw "$mode"; run rovn "$mode"
        else
            run rovn "$mode"; run raw "$mode"
        fi
    done
done
declare -A RATE CPU
for key in raw-per-pod rovn-per-pod raw-batch rovn-batch; do
    RATE[$key]=$(echo "${RATES[$key]:-}" | median)
    CPU[$key]=$(echo "${CPUS[$key]:-}" | median)
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else printf "n/a" }'; }
echo "pods=$PODS batch_ops=$BATCH_OPS runs=$RUNS (median)"
echo "raw_per_pod_pods_per_sec=${RATE[raw-per-pod]}"
echo "rovn_per_pod_pods_per_sec=${RATE[rovn-per-pod]}"
echo "raw_batch_pods_per_sec=${RATE[raw-batch]}"
echo "rovn_batch_pods_per_sec=${RATE[rovn-batch]}"
echo "client_cpu_seconds: raw_per_pod=${CPU[raw-per-pod]} rovn_per_pod=${CPU[rovn-per-pod]} raw_batch=${CPU[raw-batch]} rovn_batch=${CPU[rovn-batch]}"
echo "ratio_per_pod=$(ratio "${RATE[rovn-per-pod]}" "${RATE[raw-per-pod]}")"
echo "ratio_batch=$(ratio "${RATE[rovn-batch]}" "${RATE[raw-batch]}")"
