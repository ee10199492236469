#!/usr/bin/env bash
# Installs what rovn's build, tests and lab need on a fresh Debian (bookworm) machine.
# Idempotent: packages already present are left alone, and apt is only asked when one is missing.
set -euo pipefail

packages=(
    openvswitch-switch openvswitch-common openvswitch-pki
    ovn-central ovn-host ovn-common
    nftables iproute2 ethtool iputils-ping procps psmisc
    containernetworking-plugins
    python3 ca-certificates build-essential pkg-config
    shellcheck
    # scripts/image.sh: the image's Debian bases and its build, without a Docker engine.
    mmdebstrap buildah
)

missing=()
# kubectl ships with this machine image; Debian's own is the old kubernetes-client.
command -v kubectl >/dev/null 2>&1 || packages+=(kubernetes-client)
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The Debian packages start system-wide daemons where an init system runs; the lab runs its
# own, per namespace, and must not share their sockets.
for svc in ovn-host ovn-central openvswitch-switch; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
    fi
done

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo is missing; install the Rust toolchain (rustup) first" >&2
    exit 1
fi
echo "setup: ok"
