#!/usr/bin/env bash
# Builds the image rovn:dev from deploy/images/Dockerfile with buildah, without a Docker engine
# or a registry: the Debian base is made here with mmdebstrap, the Rust stage runs on that
# base with this machine's Rust toolchain bind-mounted, and the image's programs are then run
# once each (--version or --help) to show they start. Needs root.
#
#   scripts/image.sh              build (reusing the bases, the layers and the cargo caches)
#   ROVN_IMAGE=rovn:x scripts/image.sh
#
# Containers cannot be started here (podman's OCI runtime is refused setrlimit), so nothing
# runs the daemons; `buildah run --isolation chroot` runs single commands in the image.
set -euo pipefail
cd "$(dirname "$0")/.."

image=${ROVN_IMAGE:-rovn:dev}
suite=bookworm
base=localhost/rovn-base:$suite
sysroot=$(rustc --print sysroot)
rust_version=$(rustc --version | awk '{print $2}')
rust=localhost/rovn-rust:$rust_version-$suite

# scripts/setup.sh holds the one package list (mmdebstrap and buildah among it); run alone,
# this script asks it for what is missing.
for tool in mmdebstrap buildah; do
    command -v "$tool" >/dev/null 2>&1 || { scripts/setup.sh; break; }
done

work=$(mktemp -d /tmp/rovn-image.XXXXXX)
containers=()
cleanup() {
    local c
    for c in "${containers[@]}"; do
        buildah rm "$c" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

have_image() {
    buildah inspect --type image "$1" >/dev/null 2>&1
}

# An image from a root filesystem tarball made by mmdebstrap with `packages` on top of minbase;
# with `host_ca` yes, this machine's CA bundle replaces Debian's (for a TLS-inspecting proxy
# between the build and crates.io); further arguments are `buildah config` options.
debian_image() {
    local name=$1 packages=$2 host_ca=$3 tarball="$work/rootfs.tar" c
    shift 3
    # mmdebstrap gives the hook the root directory as $1.
    # shellcheck disable=SC2016
    local hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin'
    echo "image: making $name with mmdebstrap ($suite, minbase${packages:+ + $packages})"
    mmdebstrap --quiet --variant=minbase ${packages:+--include="$packages"} \
        --aptopt='APT::Install-Recommends "false"' \
        --customize-hook="$hook" \
        "$suite" "$tarball"
    c=$(buildah from scratch)
    containers+=("$c")
    # A local tar archive is unpacked by `buildah add`.
    buildah add --quiet "$c" "$tarball" / >/dev/null
    if [ "$host_ca" = yes ]; then
        buildah copy --quiet "$c" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
    fi
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --cmd /bin/bash "$@" "$c"
    buildah commit --quiet "$c" "$name" >/dev/null
    rm -f "$tarball"
}

# BASE_IMAGE: what docker.io/library/debian:bookworm-slim is for a Docker build.
have_image "$base" || debian_image "$base" "" no
# RUST_IMAGE: bookworm with a C toolchain (ring compiles C) and the Rust toolchain mounted at
# /usr/local/rust by the build below (what docker.io/library/rust:*-slim-bookworm holds). It
# only builds; nothing of it but the binaries reaches rovn:dev.
have_image "$rust" || debian_image "$rust" "gcc,libc6-dev,ca-certificates" yes \
    --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/rust/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

echo "image: building $image"
# --layers reuses the apt layer; the Dockerfile's cache mounts keep cargo's registry and
# target dir between builds (buildah keeps them under /var/tmp/buildah-cache).
buildah bud --quiet --isolation chroot --layers --pull=false \
    --volume "$sysroot:/usr/local/rust:ro" \
    --build-arg RUST_IMAGE="$rust" --build-arg BASE_IMAGE="$base" \
    -f deploy/images/Dockerfile -t "$image" .

# The build stage's image is dangling once the build is done; its work is in the cargo caches.
buildah rmi --prune >/dev/null 2>&1 || true

echo "image: smoke-running $image"
c=$(buildah from --pull=false "$image")
containers+=("$c")
in_image() {
    buildah run --isolation chroot "$c" -- "$@"
}
in_image rovn-controller --version
in_image kubectl-rovn --version
# rovn-node and rovn-podtool have no --version; --help parses their whole command line.
in_image rovn-node --help >/dev/null
in_image rovn-podtool --help >/dev/null
# A CNI plugin answers VERSION with the CNI versions it speaks.
buildah run --isolation chroot --env CNI_COMMAND=VERSION "$c" -- rovn-cni </dev/null | grep -q cniVersion
in_image ovn-nbctl --version | sed -n 1p
in_image ovsdb-server --version | sed -n 1p
in_image ovs-vswitchd --version | sed -n 1p
in_image ovn-controller --version | sed -n 1p
in_image ovn-northd --version | sed -n 1p
in_image bash -n /usr/local/bin/start-ovn-central.sh
in_image bash -n /usr/local/bin/start-ovs-ovn.sh
echo "image: $image ok ($(buildah images --format '{{.Size}}' "$image" 2>/dev/null | sed -n 1p))"
