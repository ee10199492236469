#!/usr/bin/env bash
# The README's main command: a 2-node lab (central OVN, nodes with OVS and ovn-controller, the test API
# server, kubelets and scheduler) running rovn (rovn-controller, a rovn-node per node), then the demo:
# pods on both nodes and who reaches whom. `lab.sh down` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "lab: run as root (the lab makes network namespaces)" >&2; exit 1; }
name=${ROVN_LAB_NAME:-demo}
nodes=${ROVN_LAB_NODES:-2}

bin=${CARGO_TARGET_DIR:-target}/debug

case "${1:-up}" in
up)
    # Debug builds: the lab's programs are light, and a release build of the kube crates would
    # dominate the time to a working demo.
    cargo build --quiet -p rovn-e2e -p rovn-kubesim -p rovn-kubelet -p rovn-controller -p rovn-node \
        -p kubectl-rovn --bins
    start=$(date +%s%N)
    info=$("$bin/rovn-lab" up --name "$name" --nodes "$nodes" --rovn)
    echo "$info"
    kubeconfig=$(sed -n 's/^kubeconfig=//p' <<<"$info")
    echo
    echo "== kubectl --kubeconfig $kubeconfig get nodes -o wide"
    kubectl --kubeconfig "$kubeconfig" get nodes -o wide
    echo
    "$bin/rovn-lab" demo --name "$name"
    echo
    ms=$((($(date +%s%N) - start) / 1000000))
    printf 'Lab and demo ready in %d.%01ds after the build. Tear it down with: make lab-down\n' \
        $((ms / 1000)) $((ms % 1000 / 100))
    ;;
down)
    # Tearing down needs only rovn-lab; build it only when it is missing.
    [ -x "$bin/rovn-lab" ] || cargo build --quiet -p rovn-e2e --bin rovn-lab
    "$bin/rovn-lab" down --name "$name"
    ;;
*)
    echo "usage: lab.sh up|down" >&2
    exit 2
    ;;
esac
