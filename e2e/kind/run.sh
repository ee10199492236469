#!/usr/bin/env bash
# rovn on kind: builds the image, creates a kind cluster without CNI or kube-proxy
# (kind-config.yaml), loads the image, applies deploy/overlays/kind with the cluster's node
# addresses filled in, waits until OVN, rovn and the nodes are Ready, runs rovn's scenarios
# against it, then the upstream Kubernetes e2e suite's sig-network Conformance, Services and
# NetworkPolicy tests. Logs are collected on failure; the cluster is deleted on exit.
#
#   e2e/kind/run.sh             everything (needs docker, kind, kubectl, cargo, curl)
#   e2e/kind/run.sh --dry-run   print the commands instead of running them (no tool needed
#                               but kubectl, which renders the manifests)
#
# Environment: ROVN_KIND_CLUSTER (cluster name, default rovn), ROVN_KIND_LOGS (where logs go
# on failure, default ./kind-logs), ROVN_KIND_KEEP=1 (keep the cluster), ROVN_KIND_SKIP_UPSTREAM=1
# (rovn's scenarios only), ROVN_E2E_FOCUS / ROVN_E2E_SKIP (override the upstream selection).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

dry_run=false
case "${1:-}" in
--dry-run) dry_run=true ;;
"") ;;
*)
    echo "usage: $0 [--dry-run]" >&2
    exit 2
    ;;
esac

cluster=${ROVN_KIND_CLUSTER:-rovn}
image=rovn:dev
logs=${ROVN_KIND_LOGS:-$repo/kind-logs}
work=$(mktemp -d /tmp/rovn-kind.XXXXXX)
kubeconfig=$work/kubeconfig
focus=${ROVN_E2E_FOCUS:-'\[sig-network\].*(\[Conformance\]|Services|NetworkPolicy)'}
# What needs a cloud, a second IP family, or more than this cluster has, or is known flaky.
skip=${ROVN_E2E_SKIP:-'LoadBalancer|ESIPP|\[Feature:|\[Disruptive\]|\[Flaky\]|IPv6|DualStack|SCTP|\[Serial\]|\[Slow\]|\[Provider:|GCE|AWS|Azure'}

# Prints a command, then runs it unless this is a dry run.
run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    "$dry_run" || "$@"
}

kctl() {
    run kubectl --kubeconfig "$kubeconfig" "$@"
}

created=false
finish() {
    local status=$?
    if [ "$status" != 0 ] && "$created" && ! "$dry_run"; then
        echo "kind: failed ($status); collecting logs into $logs" >&2
        mkdir -p "$logs"
        kind export logs "$logs" --name "$cluster" >/dev/null 2>&1 || true
        kubectl --kubeconfig "$kubeconfig" get pods -A -o wide >"$logs/pods.txt" 2>&1 || true
        kubectl --kubeconfig "$kubeconfig" get events -A >"$logs/events.txt" 2>&1 || true
        kubectl --kubeconfig "$kubeconfig" -n kube-system logs -l app.kubernetes.io/part-of=rovn \
            --all-containers --prefix --tail=-1 >"$logs/rovn.txt" 2>&1 || true
    fi
    if "$created" && [ "${ROVN_KIND_KEEP:-}" != 1 ]; then
        run kind delete cluster --name "$cluster" || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap finish EXIT

# The InternalIP of each node labelled rovn.io/ovn-central=true, sorted by node name (the
# control plane first), comma-separated.
central_ips() {
    if "$dry_run"; then
        echo 172.18.0.2,172.18.0.3,172.18.0.4
        return
    fi
    kubectl --kubeconfig "$kubeconfig" get nodes -l rovn.io/ovn-central=true --sort-by=.metadata.name \
        -o jsonpath='{range .items[*]}{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}' |
        paste -sd, -
}

api_server_ip() {
    if "$dry_run"; then
        echo 172.18.0.2
        return
    fi
    kubectl --kubeconfig "$kubeconfig" get nodes -l node-role.kubernetes.io/control-plane \
        -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}'
}

# This host's address on kind's Docker network (its gateway): the "outside" of rovn's
# scenarios, which masqueraded pods reach and which reaches NodePorts.
outside_ip() {
    if "$dry_run"; then
        echo 172.18.0.1
        return
    fi
    docker network inspect kind -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' |
        tr ' ' '\n' | grep -E '^[0-9]+(\.[0-9]+){3}$' | head -1
}

# deploy/overlays/kind with what is known only now: the members' and the API server's
# addresses (rovn, not kube-proxy, serves the `kubernetes` Service, so rovn itself cannot
# reach the API server through it).
render_overlay() {
    local ips=$1 api=$2 dir=$work/overlay nb="" sb="" ip
    for ip in ${ips//,/ }; do
        nb+="${nb:+,}tcp:$ip:6641"
        sb+="${sb:+,}tcp:$ip:6642"
    done
    mkdir -p "$dir"
    cat >"$dir/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- $(realpath --relative-to="$dir" "$repo/deploy/overlays/kind")
patches:
- patch: |-
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: rovn-config
      namespace: kube-system
    data:
      ovn-central-ips: "$ips"
      nb-remote: "$nb"
      sb-remote: "$sb"
      kube-apiserver-host: "$api"
      kube-apiserver-port: "6443"
YAML
    echo "$dir"
}

# 1. The image, as any Docker user builds it.
run docker build -f deploy/images/Dockerfile -t "$image" .

# 2. The cluster: no CNI, no kube-proxy; nodes stay NotReady until rovn-node writes the conflist.
created=true
run kind create cluster --name "$cluster" --config e2e/kind/kind-config.yaml --kubeconfig "$kubeconfig"
run kind load docker-image "$image" --name "$cluster"

# 3. rovn and OVN, in one apply (server-side: the CRD is too large for the last-applied annotation).
overlay=$(render_overlay "$(central_ips)" "$(api_server_ip)")
if "$dry_run"; then
    echo "# rendered overlay $overlay/kustomization.yaml:"
    sed 's/^/#   /' "$overlay/kustomization.yaml"
    kubectl kustomize "$overlay" >/dev/null
fi
kctl apply --server-side -k "$overlay"

# 4. Ready, in dependency order: the databases, the switches with their agents, the controller,
# then the nodes (Ready once the conflist is there) and cluster DNS (the first pods on rovn).
kctl -n kube-system rollout status statefulset/ovn-central --timeout=10m
kctl -n kube-system rollout status daemonset/rovn-node --timeout=10m
kctl -n kube-system rollout status daemonset/ovs-ovn --timeout=10m
kctl -n kube-system rollout status deployment/rovn-controller --timeout=10m
kctl wait --for=condition=Ready nodes --all --timeout=10m
kctl -n kube-system rollout status deployment/coredns --timeout=10m

# 5. rovn's own scenarios, through the API (KubectlCluster).
# This host is the scenarios' outside: it runs rovn-podtool from the build (on PATH), as pods
# run it from the image.
run env ROVN_KUBECONFIG="$kubeconfig" ROVN_OUTSIDE_ADDRESS="$(outside_ip)" \
    PATH="$repo/target/debug:$PATH" \
    cargo test -p rovn-e2e --test kind_scenarios -- --ignored --test-threads 1

# 6. Upstream e2e.test of the cluster's Kubernetes version.
if [ "${ROVN_KIND_SKIP_UPSTREAM:-}" != 1 ]; then
    version=v0.0.0
    if ! "$dry_run"; then
        version=$(kubectl --kubeconfig "$kubeconfig" version -o json |
            sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' | tail -1)
    fi
    run curl -fsSL -o "$work/kubernetes-test.tar.gz" \
        "https://dl.k8s.io/$version/kubernetes-test-linux-amd64.tar.gz"
    run mkdir -p "$logs/e2e"
    run tar -C "$work" -xzf "$work/kubernetes-test.tar.gz" kubernetes/test/bin/e2e.test kubernetes/test/bin/ginkgo
    run "$work/kubernetes/test/bin/ginkgo" --nodes=4 --timeout=90m "$work/kubernetes/test/bin/e2e.test" -- \
        --kubeconfig="$kubeconfig" --provider=skeleton --report-dir="$logs/e2e" \
        --ginkgo.focus="$focus" --ginkgo.skip="$skip"
fi
echo "kind: ok"
