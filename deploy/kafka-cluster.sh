#!/usr/bin/env bash
# A 3-broker Apache Kafka 3.9 cluster (KRaft) on 127.0.0.1, from the same Maven jars as
# deploy/kafka.sh, for development, tests and CI alike.
#   deploy/kafka-cluster.sh start|stop|status
#   ports: KAFKA_CLUSTER_PORT (the base, default 9201). Node n (1..3) listens for clients on
#   base+2(n-1) and for the controller quorum on base+2(n-1)+1:
#     node 1: 9201 broker, 9202 controller;  node 2: 9203, 9204;  node 3: 9205, 9206.
# Every node is broker and controller at once (process.roles=broker,controller); the three
# controllers form one quorum, so the cluster keeps working with any one node down.
# Each node keeps its config, data, log and pid (kafka.pid: the JVM) in
# $BG_VAR/kafka-cluster-<broker port>/. Topics default to replication factor 3 with
# min.insync.replicas=2: an acks=all write is on two brokers before it is acknowledged, and
# one broker down still accepts writes. Ready = every broker answers a metadata request that
# lists 3 brokers. stop = kill -9 and remove the directories (a test cluster; nothing kept).
source "$(dirname "$0")/lib.sh"

BASE="${KAFKA_CLUSTER_PORT:-9201}"
PARTITIONS="${KAFKA_PARTITIONS:-6}"
LIBS="${KAFKA_LIBS:-$BG_ROOT/var/kafka-libs}"
# Three JVMs share the machine with Redis and the workers: small heaps are plenty for tests.
HEAP="${KAFKA_HEAP:--Xmx256m -Xms128m}"
NODES=(1 2 3)

port_of() { echo $((BASE + 2 * ($1 - 1))); }
cport_of() { echo $((BASE + 2 * ($1 - 1) + 1)); }
dir_of() { echo "$BG_VAR/kafka-cluster-$(port_of "$1")"; }

voters() {  # the controller quorum, as controller.quorum.voters wants it: 1@host:port,...
    local n out=()
    for n in "${NODES[@]}"; do out+=("$n@127.0.0.1:$(cport_of "$n")"); done
    (IFS=,; echo "${out[*]}")
}

broker_ready() {  # broker_ready PORT: the broker answers metadata listing all 3 brokers
    kcat -b "127.0.0.1:$1" -L -m 3 2>/dev/null | grep -Eq '^ *3 brokers:'
}
all_ready() { for n in "${NODES[@]}"; do broker_ready "$(port_of "$n")" || return 1; done; }
all_alive() { for n in "${NODES[@]}"; do pid_alive "$(dir_of "$n")/kafka.pid" || return 1; done; }
ready_or_dead() { all_ready || ! all_alive; }  # stop waiting as soon as one node has died
any_alive() { for n in "${NODES[@]}"; do pid_alive "$(dir_of "$n")/kafka.pid" && return 0; done; return 1; }

write_config() {  # write_config NODE
    local n=$1 d
    d=$(dir_of "$n")
    mkdir -p "$d/data"
    cat > "$d/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(voters)
listeners=PLAINTEXT://127.0.0.1:$(port_of "$n"),CONTROLLER://127.0.0.1:$(cport_of "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(port_of "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$d/data
num.partitions=$PARTITIONS
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=6
# A killed broker is fenced (and its partitions get new leaders) once the controller misses
# its heartbeats for this long; the default 9 s would be the whole of a test's recovery.
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
# The log cleaner (it compacts __consumer_offsets) takes a 128 MB dedupe buffer from the heap
# by default: half of our 256 MB, and an OutOfMemoryError at start-up now and then.
log.cleaner.dedupe.buffer.size=8388608
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
    cp "$BG_ROOT/deploy/kafka/log4j.properties" "$d/log4j.properties"
}

node_java() {  # node_java NODE MAINCLASS ARGS...: run a Kafka main class for NODE (exec: the pid is the JVM)
    local d
    d=$(dir_of "$1")
    shift
    # shellcheck disable=SC2086
    exec java $HEAP -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j.configuration="file:$d/log4j.properties" -Dkafka.logs.dir="$d" \
        -cp "$LIBS/*" "$@"
}

format_node() {  # format_node NODE CLUSTER_ID: write the node's meta.properties
    local d
    d=$(dir_of "$1")
    (node_java "$1" kafka.tools.StorageTool format -t "$2" -c "$d/server.properties") \
        >"$d/format.log" 2>&1 || { cat "$d/format.log" >&2; return 1; }
}

start() {
    need_apt kcat kcat
    "$BG_ROOT/deploy/kafka.sh" fetch
    if all_ready; then
        echo "kafka-cluster: already running on 127.0.0.1:$(port_of 1),$(port_of 2),$(port_of 3)"
        return 0
    fi
    if any_alive; then
        echo "kafka-cluster: some nodes run but the cluster is not ready; run stop first" >&2
        return 1
    fi
    local n cluster_id
    for n in "${NODES[@]}"; do
        rm -rf "$(dir_of "$n")"
        write_config "$n"
    done
    cluster_id=$( (node_java 1 kafka.tools.StorageTool random-uuid) | tail -n 1)
    # Formatting is a JVM start each: in parallel, it costs one start instead of three.
    local pids=()
    for n in "${NODES[@]}"; do format_node "$n" "$cluster_id" & pids+=($!); done
    for n in "${pids[@]}"; do wait "$n"; done
    # All three at once: no node can be ready alone, since the quorum needs two controllers.
    for n in "${NODES[@]}"; do
        spawn "$(dir_of "$n")/kafka.pid" "$(dir_of "$n")/kafka.log" \
            node_java "$n" kafka.Kafka "$(dir_of "$n")/server.properties"
    done
    wait_until 120 "$(dir_of 1)/kafka.log" ready_or_dead || { stop >&2; return 1; }
    if ! all_ready; then
        for n in "${NODES[@]}"; do
            pid_alive "$(dir_of "$n")/kafka.pid" && continue
            echo "kafka-cluster: node $n exited during start-up; last lines of its log:" >&2
            tail -n 40 "$(dir_of "$n")/kafka.log" >&2
        done
        stop >&2
        return 1
    fi
    echo "kafka-cluster: ready on 127.0.0.1:$(port_of 1),$(port_of 2),$(port_of 3)" \
        "(logs $BG_VAR/kafka-cluster-<port>/kafka.log)"
}

stop() {
    # kill -9, not a controlled shutdown: the data is removed anyway, and the last node of a
    # quorum would wait for controllers that are already gone. All first, then wait for all.
    local n d pids=()
    for n in "${NODES[@]}"; do
        d=$(dir_of "$n")
        pid_alive "$d/kafka.pid" || continue
        pids+=("$(cat "$d/kafka.pid")")
        kill -9 "${pids[-1]}" 2>/dev/null || true
    done
    for n in "${pids[@]}"; do
        for _ in $(seq 1 100); do running "$n" || break; sleep 0.1; done
    done
    for n in "${NODES[@]}"; do rm -rf "$(dir_of "$n")"; done
    echo "kafka-cluster: stopped"
}

status() {
    local n up=0
    for n in "${NODES[@]}"; do
        if pid_alive "$(dir_of "$n")/kafka.pid" && broker_ready "$(port_of "$n")"; then
            echo "kafka-cluster: node $n running on 127.0.0.1:$(port_of "$n")"
            up=$((up + 1))
        else
            echo "kafka-cluster: node $n not running (or not seeing 3 brokers)"
        fi
    done
    [ "$up" = 3 ]
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
