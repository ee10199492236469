#!/usr/bin/env bash
# The README's test command: every test of the workspace. Needs root (network namespaces, OVS).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test: run as root (the lab makes network namespaces)" >&2; exit 1; }
export RUST_BACKTRACE=1
# Lab tests run the workspace's programs (API server, kubelet, scheduler, podtool, kubectl-rovn)
# from the target dir.
cargo build --quiet --workspace --bins
# The image rovn:dev (deploy/images/Dockerfile) builds and its programs start. ROVN_SKIP_IMAGE=1
# leaves it out, for local iteration only: CI always builds it.
if [ "${ROVN_SKIP_IMAGE:-}" != 1 ]; then
    ./scripts/image.sh
fi
# Labs whose test process was killed (a cancelled run) would otherwise linger.
"${CARGO_TARGET_DIR:-target}/debug/rovn-lab" down --stale
# Tests spawn ovsdb-server, ovn-northd and whole labs; two at a time fit the two cores here.
cargo test --workspace --no-fail-fast "$@" -- --test-threads 2
