#!/usr/bin/env bash
# The node's switch: the local Open_vSwitch database, ovs-vswitchd and ovn-controller, on the
# host network. rovn-node owns the chassis settings (external_ids system-id, ovn-remote,
# ovn-encap-type, ovn-encap-ip, ovn-bridge-datapath-type) and br-int; this script writes
# none of them: one writer per key. ovn-controller waits until rovn-node has written them.
#
#   start-ovs-ovn.sh run          start the three daemons, exit when one of them exits
#   start-ovs-ovn.sh probe live   ovsdb-server, ovs-vswitchd and ovn-controller answer
#   start-ovs-ovn.sh probe ready  ovn-controller is connected to the Southbound database
#   start-ovs-ovn.sh stop         exit keeping br-int, its ports and the kernel datapath, so a
#                                 restart (an update) leaves the pods' interfaces in place
#
# Environment: OVS_DATAPATH_TYPE (default system) is rovn-node's --datapath-type; only the
# system datapath needs the openvswitch kernel module.
set -euo pipefail

conf_db=/etc/openvswitch/conf.db
schema=/usr/share/openvswitch/vswitch.ovsschema
ovs_run=/run/openvswitch
ovn_run=/var/run/ovn

die() {
    echo "start-ovs-ovn: $*" >&2
    exit 1
}

stop() {
    # --restart: the chassis and its Port_Bindings stay in the Southbound database, and br-int
    # keeps its flows until the next ovn-controller replaces them.
    ovn-appctl -t ovn-controller exit --restart 2>/dev/null || true
    # No --cleanup: the kernel datapath and its ports stay.
    ovs-appctl -t ovs-vswitchd exit 2>/dev/null || true
    ovs-appctl -t ovsdb-server exit 2>/dev/null || true
}

run() {
    if [ "${OVS_DATAPATH_TYPE:-system}" = system ] && [ ! -d /sys/module/openvswitch ]; then
        modprobe openvswitch || die "the openvswitch kernel module is not loaded and cannot be (is the host's /lib/modules mounted?)"
    fi
    mkdir -p "$ovs_run" "$ovn_run" "$(dirname "$conf_db")"
    if [ ! -e "$conf_db" ]; then
        ovsdb-tool create "$conf_db" "$schema"
    elif [ "$(ovsdb-tool needs-conversion "$conf_db" "$schema")" = yes ]; then
        # An image update with a newer schema: convert in place, keeping every row.
        ovsdb-tool convert "$conf_db" "$schema"
    fi

    trap 'stop' TERM INT
    ovsdb-server "$conf_db" --no-chdir -vconsole:info -vfile:off \
        --remote="punix:$ovs_run/db.sock" --remote=db:Open_vSwitch,Open_vSwitch,manager_options \
        --pidfile="$ovs_run/ovsdb-server.pid" &
    local i
    for i in $(seq 50); do
        [ -S "$ovs_run/db.sock" ] && break
        [ "$i" = 50 ] && die "ovsdb-server did not create $ovs_run/db.sock"
        sleep 0.2
    done
    ovs-vsctl --no-wait init
    ovs-vswitchd "unix:$ovs_run/db.sock" --no-chdir -vconsole:info -vfile:off \
        --pidfile="$ovs_run/ovs-vswitchd.pid" &
    ovn-controller "unix:$ovs_run/db.sock" --no-chdir -vconsole:info -vfile:off \
        --pidfile="$ovn_run/ovn-controller.pid" &
    local status=0
    wait -n || status=$?
    stop
    wait || true
    echo "start-ovs-ovn: a daemon exited (status $status)" >&2
    exit "$status"
}

probe() {
    case "${1:-}" in
    live)
        ovs-vsctl --timeout=5 show >/dev/null
        ovs-appctl --timeout=5 -t ovs-vswitchd version >/dev/null
        ovn-appctl --timeout=5 -t ovn-controller version >/dev/null
        ;;
    ready)
        [ "$(ovn-appctl --timeout=5 -t ovn-controller connection-status)" = connected ]
        ;;
    *) die "probe live|ready" ;;
    esac
}

case "${1:-run}" in
run) run ;;
probe) probe "${2:-}" ;;
stop) stop ;;
*) die "usage: $0 run|probe live|probe ready|stop" ;;
esac
