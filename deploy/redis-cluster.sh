#!/usr/bin/env bash
# Redis Cluster on 127.0.0.1 from Debian's redis-server: 3 primaries + 3 replicas, for
# development, tests and CI alike.
#   deploy/redis-cluster.sh start|stop|status|start-node PORT
#   ports: REDIS_CLUSTER_PORT (the base, default 7101) .. base+5; base..base+2 start as primaries.
# Each node keeps its data, log, pid and nodes.conf in $BG_VAR/redis-cluster-<port>/ (BG_VAR
# defaults to ./var). AOF is on (REDIS_APPENDFSYNC, default everysec here); cluster-node-timeout
# is 2000 ms, so a killed primary's replica takes over within a few seconds.
# Ready = `cluster_state:ok` on every node and every replica in sync with its primary.
# stop = SHUTDOWN NOSAVE on each node, then the dirs are removed: a leftover nodes.conf would
# make a node rejoin the old cluster.
# start-node PORT = start again one node that died (kill -9 in the fault tests) from its own
# directory: its nodes.conf and AOF make it rejoin, a former primary as a replica of the
# replica promoted in its place. Ready = its `cluster_state:ok` and its first sync done.
source "$(dirname "$0")/lib.sh"

BASE="${REDIS_CLUSTER_PORT:-7101}"
PORTS=()
for i in 0 1 2 3 4 5; do PORTS+=($((BASE + i))); done
dir_of() { echo "$BG_VAR/redis-cluster-$1"; }

node_ok() { redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | tr -d '\r' | grep -qx 'cluster_state:ok'; }
# A replica that never finished its first sync refuses to take over (its data is too old):
# ready means every replica's link to its primary is up, so a kill right after start fails over.
synced() { redis-cli -h 127.0.0.1 -p "$1" info replication 2>/dev/null | tr -d '\r' | grep -Eqx 'role:master|master_link_status:up'; }
node_ready() { node_ok "$1" && synced "$1"; }
all_ok() { for p in "${PORTS[@]}"; do node_ready "$p" || return 1; done; }
pinged() { redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG; }
all_pinged() { for p in "${PORTS[@]}"; do pinged "$p" || return 1; done; }
any_alive() { for p in "${PORTS[@]}"; do pid_alive "$(dir_of "$p")/redis.pid" && return 0; done; return 1; }

start() {
    need_apt redis-server redis-server
    if all_ok; then
        echo "redis-cluster: already running on 127.0.0.1:${PORTS[0]}..${PORTS[5]}"
        return 0
    fi
    if any_alive; then
        echo "redis-cluster: some nodes are running but the cluster is not ok; run stop first" >&2
        return 1
    fi
    local p
    for p in "${PORTS[@]}"; do
        rm -rf "$(dir_of "$p")"
        run_node "$p"
    done
    wait_until 20 "$(dir_of "${PORTS[0]}")/redis.log" all_pinged
    local addrs=()
    for p in "${PORTS[@]}"; do addrs+=("127.0.0.1:$p"); done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$(dir_of "$BASE")/create.log" 2>&1 \
        || { cat "$(dir_of "$BASE")/create.log" >&2; return 1; }
    wait_until 30 "$(dir_of "${PORTS[0]}")/redis.log" all_ok
    echo "redis-cluster: ready on 127.0.0.1:${PORTS[0]}..${PORTS[5]} (logs $BG_VAR/redis-cluster-<port>/)"
}

run_node() {  # run_node PORT: start (daemonized) the node on PORT in its directory
    local d
    d=$(dir_of "$1")
    mkdir -p "$d"
    redis-server --bind 127.0.0.1 --port "$1" --dir "$d" --daemonize yes \
        --pidfile "$d/redis.pid" --logfile "$d/redis.log" \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
        --appendonly yes --appendfsync "${REDIS_APPENDFSYNC:-everysec}" --save '' \
        --protected-mode yes
}

start_node() {  # start_node PORT: one node that died, started again from its directory
    local p=${1:?usage: $0 start-node PORT} d
    d=$(dir_of "$p")
    [ -f "$d/nodes.conf" ] || { echo "redis-cluster: no node was on port $p" >&2; return 1; }
    if pid_alive "$d/redis.pid"; then echo "redis-cluster: node $p already running"; return 0; fi
    run_node "$p"
    wait_until 30 "$d/redis.log" node_ready "$p"
    echo "redis-cluster: node $p back"
}

stop() {
    local p d pid
    for p in "${PORTS[@]}"; do
        d=$(dir_of "$p")
        if pid_alive "$d/redis.pid"; then
            pid=$(cat "$d/redis.pid")
            redis-cli -h 127.0.0.1 -p "$p" shutdown nosave >/dev/null 2>&1 || true
            for _ in $(seq 1 50); do running "$pid" || break; sleep 0.1; done
            running "$pid" && kill -9 "$pid" 2>/dev/null || true
        fi
        rm -rf "$d"
    done
    echo "redis-cluster: stopped"
}

status() {
    if all_ok; then echo "redis-cluster: running on 127.0.0.1:${PORTS[0]}..${PORTS[5]}"; else
        echo "redis-cluster: not running (or not ok)"; return 1; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    start-node) start_node "${2:-}" ;;
    *) echo "usage: $0 start|stop|status|start-node PORT" >&2; exit 2 ;;
esac
