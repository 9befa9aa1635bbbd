#!/usr/bin/env bash
# Apache Kafka 3.9 (KRaft, combined broker+controller, single node) on 127.0.0.1, fetched as
# Maven Central artifacts and run with java. Shared by development, tests and CI.
#   deploy/kafka.sh fetch|start|stop|status
#   ports: KAFKA_PORT (default 9092), KAFKA_CONTROLLER_PORT (default KAFKA_PORT+1)
# Jars are cached in var/kafka-libs/ (git-ignored; KAFKA_LIBS overrides); data, log and pid in
# $BG_VAR/kafka-$KAFKA_PORT/. Readiness means the broker answers a metadata request listing
# at least one broker (kcat -L), not merely that the port is open.
source "$(dirname "$0")/lib.sh"

PORT="${KAFKA_PORT:-9092}"
CPORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
PARTITIONS="${KAFKA_PARTITIONS:-4}"
LIBS="${KAFKA_LIBS:-$BG_ROOT/var/kafka-libs}"
DIR="$BG_VAR/kafka-$PORT"
PIDFILE="$DIR/kafka.pid"
LOG="$DIR/kafka.log"
HEAP="${KAFKA_HEAP:--Xmx512m -Xms256m}"

fetch() {
    [ -f "$LIBS/.complete" ] && return 0
    need_apt java openjdk-17-jre-headless
    need_apt mvn maven
    echo "kafka: fetching broker jars from Maven Central into $LIBS ..." >&2
    mkdir -p "$LIBS"
    mvn -q -B -f "$BG_ROOT/deploy/kafka/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$LIBS" -DincludeScope=runtime >&2
    touch "$LIBS/.complete"
}

ready() {
    kcat -b "127.0.0.1:$PORT" -L -m 3 2>/dev/null | grep -Eq '^ *[1-9][0-9]* brokers:'
}

write_config() {
    mkdir -p "$DIR/data"
    cat > "$DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/data
num.partitions=$PARTITIONS
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
    cp "$BG_ROOT/deploy/kafka/log4j.properties" "$DIR/log4j.properties"
}

java_run() {  # java_run MAINCLASS ARGS...: run a Kafka main class on the fetched classpath
    # exec, so that a backgrounded java_run's $! is the JVM itself (the pid file must name it)
    # shellcheck disable=SC2086
    exec java $HEAP -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j.configuration="file:$DIR/log4j.properties" -Dkafka.logs.dir="$DIR" \
        -cp "$LIBS/*" "$@"
}

start() {
    need_apt kcat kcat
    fetch
    if pid_alive "$PIDFILE"; then
        echo "kafka: already running on 127.0.0.1:$PORT"
        return 0
    fi
    write_config
    if [ ! -f "$DIR/data/meta.properties" ]; then
        local cluster_id
        cluster_id=$( (java_run kafka.tools.StorageTool random-uuid) | tail -n 1)
        (java_run kafka.tools.StorageTool format -t "$cluster_id" -c "$DIR/server.properties") \
            >"$DIR/format.log" 2>&1 || { cat "$DIR/format.log" >&2; return 1; }
    fi
    launch kafka "$PIDFILE" "$LOG" 90 ready java_run kafka.Kafka "$DIR/server.properties"
    echo "kafka: ready on 127.0.0.1:$PORT (log $LOG)"
}

status() {
    if pid_alive "$PIDFILE" && ready; then echo "kafka: running on 127.0.0.1:$PORT"; else
        echo "kafka: not running"; return 1; fi
}

case "${1:-}" in
    fetch) fetch ;;
    start) start ;;
    stop) stop_pid "$PIDFILE" kafka ;;
    status) status ;;
    *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
