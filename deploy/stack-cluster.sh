#!/usr/bin/env bash
# The whole stack on both clusters, for `make up-cluster`, `make run-cluster`, `make down-cluster`:
# Redis Cluster (deploy/redis-cluster.sh: 3 primaries + 3 replicas), 3 Kafka brokers
# (deploy/kafka-cluster.sh: RF 3, min.insync.replicas=2) and two workers in one consumer group.
#   deploy/stack-cluster.sh start|stop|status|demo
#   ports: REDIS_CLUSTER_PORT (default 7101..7106), KAFKA_CLUSTER_PORT (default 9201, brokers on
#   9201, 9203, 9205), the workers' web ports CLUSTER_WEB_PORTS (default "6067 6068"; logs in
#   $BG_VAR/worker-<port>/). The workers get BOUNCEGUARD_PARTITIONS=6 (3 partitions each) and
#   BOUNCEGUARD_REPLICATION=3. demo = `make run`'s feeder (deploy/demo.sh) on the cluster.
# The workers start one after the other: each creates the topics it needs at start-up, and
# the second then finds them made.
source "$(dirname "$0")/lib.sh"

REDIS_BASE="${REDIS_CLUSTER_PORT:-7101}"
KAFKA_BASE="${KAFKA_CLUSTER_PORT:-9201}"
WEB_PORTS=(${CLUSTER_WEB_PORTS:-6067 6068})
export REDIS_CLUSTER_PORT="$REDIS_BASE" KAFKA_CLUSTER_PORT="$KAFKA_BASE"
export BOUNCEGUARD_KAFKA="127.0.0.1:$KAFKA_BASE,127.0.0.1:$((KAFKA_BASE + 2)),127.0.0.1:$((KAFKA_BASE + 4))"
export BOUNCEGUARD_REDIS_URL="redis+cluster://127.0.0.1:$REDIS_BASE,127.0.0.1:$((REDIS_BASE + 1))"
export BOUNCEGUARD_PARTITIONS="${BOUNCEGUARD_PARTITIONS:-6}" BOUNCEGUARD_REPLICATION=3
DEPLOY="$BG_ROOT/deploy"

workers() {  # workers ACTION: deploy/worker.sh ACTION for each web port, in order
    local port
    for port in "${WEB_PORTS[@]}"; do BOUNCEGUARD_WEB_PORT="$port" "$DEPLOY/worker.sh" "$1"; done
}

case "${1:-}" in
    start)
        "$DEPLOY/redis-cluster.sh" start
        "$DEPLOY/kafka-cluster.sh" start
        workers start
        ;;
    stop)
        workers stop
        "$DEPLOY/kafka-cluster.sh" stop
        "$DEPLOY/redis-cluster.sh" stop
        ;;
    status)
        rc=0
        "$DEPLOY/redis-cluster.sh" status || rc=1
        "$DEPLOY/kafka-cluster.sh" status || rc=1
        workers status || rc=1
        exit "$rc"
        ;;
    demo)
        # demo.sh's hints name KAFKA_PORT and BOUNCEGUARD_WEB_PORT: the first broker and worker
        KAFKA_PORT="$KAFKA_BASE" BOUNCEGUARD_WEB_PORT="${WEB_PORTS[0]}" STOP_HINT="make down-cluster" \
            "$DEPLOY/demo.sh"
        ;;
    *) echo "usage: $0 start|stop|status|demo" >&2; exit 2 ;;
esac
