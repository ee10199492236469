#!/usr/bin/env bash
# The README's main command: a 2-node lab (central OVN, nodes with OVS and ovn-controller, the test API
# server, kubelets and scheduler), then what runs in it. `lab.sh down` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "lab: run as root (the lab makes network namespaces)" >&2; exit 1; }
name=${ROVN_LAB_NAME:-demo}
nodes=${ROVN_LAB_NODES:-2}

# Debug builds: the lab's programs are light, and a release build of the kube crates would
# dominate the time to a working demo.
cargo build --quiet -p rovn-e2e -p rovn-kubesim -p rovn-kubelet --bins
bin=${CARGO_TARGET_DIR:-target}/debug

case "${1:-up}" in
up)
    info=$("$bin/rovn-lab" up --name "$name" --nodes "$nodes")
    echo "$info"
    kubeconfig=$(sed -n 's/^kubeconfig=//p' <<<"$info")
    nb=$(sed -n 's/^nb=//p' <<<"$info")
    echo
    echo "== kubectl --kubeconfig $kubeconfig get nodes -o wide"
    kubectl --kubeconfig "$kubeconfig" get nodes -o wide
    echo
    echo "== ovn-sbctl show (chassis and tunnels)"
    "$bin/rovn-lab" exec --name "$name" central -- ovn-sbctl show
    cat <<USAGE

Use it:
  kubectl --kubeconfig $kubeconfig get pods -A
  ovn-nbctl --db=$nb show
  $bin/rovn-lab exec --name $name node1 -- ovs-vsctl show
  $bin/rovn-lab status
Tear it down with: make lab-down
USAGE
    ;;
down)
    "$bin/rovn-lab" down --name "$name"
    ;;
*)
    echo "usage: lab.sh up|down" >&2
    exit 2
    ;;
esac
