#!/usr/bin/env bash
# OVN central, one raft member per pod: the Northbound and Southbound ovsdb-servers and
# ovn-northd (active/standby through the Southbound lock northd takes; no election of ours).
#
#   start-ovn-central.sh run          start all three, exit when one of them exits
#   start-ovn-central.sh probe live   the daemons answer on their control sockets
#   start-ovn-central.sh probe ready  both databases are members of their cluster with a leader
#   start-ovn-central.sh stop         ask the daemons to exit (the pod's preStop)
#
# Environment:
#   POD_IP            this member's address (the node's: the pod runs on the host network)
#   OVN_CENTRAL_IPS   every member's address, comma-separated, the same on every member; the
#                     first one creates the cluster, the others join it
#   OVN_DB_DIR        where the databases live (default /var/lib/ovn, a hostPath)
#   OVN_RUN_DIR       control sockets and pid files (default /var/run/ovn)
#
# Raft addresses are IPs, not the StatefulSet's DNS names: the cluster DNS runs in pods that
# need rovn's networking, which needs these databases first.
set -euo pipefail

db_dir=${OVN_DB_DIR:-/var/lib/ovn}
run_dir=${OVN_RUN_DIR:-/var/run/ovn}
nb_port=6641
sb_port=6642
nb_raft_port=6643
sb_raft_port=6644

die() {
    echo "start-ovn-central: $*" >&2
    exit 1
}

members() {
    [ -n "${OVN_CENTRAL_IPS:-}" ] || die "OVN_CENTRAL_IPS is empty: set ovn-central-ips in the ConfigMap rovn-config"
    tr ',' ' ' <<<"$OVN_CENTRAL_IPS"
}

# "tcp:A:port,tcp:B:port,…" for every member.
remotes() {
    local port=$1 out="" ip
    for ip in $(members); do
        out+="${out:+,}tcp:${ip}:${port}"
    done
    echo "$out"
}

# True when a member other than this one is connected to a formed cluster of database
# `name` on `port`: a first member that lost its disk must join that cluster, not found a
# second one. (A member still joining is not connected, so a simultaneous start still has the
# first member create the cluster.)
peer_serves() {
    local name=$1 port=$2 ip reply
    local query='["_Server",{"op":"select","table":"Database","where":[["name","==","'"$name"'"]],"columns":["connected","leader"]}]'
    for ip in $(members); do
        [ "$ip" = "$POD_IP" ] && continue
        reply=$(ovsdb-client --timeout=3 query "tcp:${ip}:${port}" "$query" 2>/dev/null) || continue
        if grep -q '"connected":true' <<<"$reply"; then
            return 0
        fi
    done
    return 1
}

# Creates or joins the cluster of database `name` unless its file already exists (a restart
# keeps its membership and log).
init_db() {
    local name=$1 file=$2 schema=$3 port=$4 raft_port=$5 first ip
    local local_addr="tcp:${POD_IP}:${raft_port}"
    if [ -e "$file" ]; then
        echo "start-ovn-central: $name: $file exists, starting as a member"
        return
    fi
    first=$(members | awk '{print $1}')
    if [ "$POD_IP" = "$first" ] && ! peer_serves "$name" "$port"; then
        echo "start-ovn-central: $name: creating the cluster at $local_addr"
        ovsdb-tool create-cluster "$file" "$schema" "$local_addr"
    else
        local peers=()
        for ip in $(members); do
            [ "$ip" = "$POD_IP" ] || peers+=("tcp:${ip}:${raft_port}")
        done
        echo "start-ovn-central: $name: joining ${peers[*]} as $local_addr"
        ovsdb-tool join-cluster "$file" "$name" "$local_addr" "${peers[@]}"
    fi
}

stop() {
    ovn-appctl -t "$run_dir/ovn-northd.ctl" exit 2>/dev/null || true
    ovn-appctl -t "$run_dir/ovnnb_db.ctl" exit 2>/dev/null || true
    ovn-appctl -t "$run_dir/ovnsb_db.ctl" exit 2>/dev/null || true
}

run() {
    [ -n "${POD_IP:-}" ] || die "POD_IP is empty: give it from status.podIP"
    members | tr ' ' '\n' | grep -qxF "$POD_IP" ||
        die "this member's address $POD_IP is not in OVN_CENTRAL_IPS ($OVN_CENTRAL_IPS): run ovn-central only on the nodes listed there"
    mkdir -p "$db_dir" "$run_dir"
    init_db OVN_Northbound "$db_dir/ovnnb_db.db" /usr/share/ovn/ovn-nb.ovsschema "$nb_port" "$nb_raft_port"
    init_db OVN_Southbound "$db_dir/ovnsb_db.db" /usr/share/ovn/ovn-sb.ovsschema "$sb_port" "$sb_raft_port"

    trap 'stop' TERM INT
    ovsdb-server "$db_dir/ovnnb_db.db" --no-chdir -vconsole:info -vfile:off \
        --remote="punix:$run_dir/ovnnb_db.sock" --remote="ptcp:${nb_port}:${POD_IP}" \
        --unixctl="$run_dir/ovnnb_db.ctl" --pidfile="$run_dir/ovnnb_db.pid" &
    ovsdb-server "$db_dir/ovnsb_db.db" --no-chdir -vconsole:info -vfile:off \
        --remote="punix:$run_dir/ovnsb_db.sock" --remote="ptcp:${sb_port}:${POD_IP}" \
        --unixctl="$run_dir/ovnsb_db.ctl" --pidfile="$run_dir/ovnsb_db.pid" &
    # northd talks to the leaders through the whole lists; whichever member's northd holds
    # the Southbound lock is active, the others stand by.
    ovn-northd --no-chdir -vconsole:info -vfile:off \
        --ovnnb-db="$(remotes "$nb_port")" --ovnsb-db="$(remotes "$sb_port")" \
        --unixctl="$run_dir/ovn-northd.ctl" --pidfile="$run_dir/ovn-northd.pid" &
    # The first daemon to exit (or a TERM) ends the pod; the others are asked to exit too.
    local status=0
    wait -n || status=$?
    stop
    wait || true
    echo "start-ovn-central: a daemon exited (status $status)" >&2
    exit "$status"
}

# True when the server behind `ctl` is a member of database `name`'s cluster and knows a
# leader: it has joined (or rejoined after a restart) and serves clients.
member_with_leader() {
    local status
    status=$(ovn-appctl -t "$1" cluster/status "$2")
    grep -q '^Status: cluster member$' <<<"$status" &&
        grep -q '^Leader: ' <<<"$status" &&
        ! grep -q '^Leader: unknown$' <<<"$status"
}

probe() {
    case "${1:-}" in
    live)
        ovn-appctl -t "$run_dir/ovnnb_db.ctl" version >/dev/null
        ovn-appctl -t "$run_dir/ovnsb_db.ctl" version >/dev/null
        ovn-appctl -t "$run_dir/ovn-northd.ctl" status >/dev/null
        ;;
    ready)
        member_with_leader "$run_dir/ovnnb_db.ctl" OVN_Northbound
        member_with_leader "$run_dir/ovnsb_db.ctl" OVN_Southbound
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
