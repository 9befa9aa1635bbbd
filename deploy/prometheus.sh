#!/usr/bin/env bash
# Prometheus on 127.0.0.1 from Debian's prometheus package, for development, tests and CI alike.
#   deploy/prometheus.sh start|stop|status
#   port: PROMETHEUS_PORT (default 9090); configuration: PROMETHEUS_CONFIG (default
#   deploy/prometheus.yml, which scrapes the `make up` worker on 127.0.0.1:6066 and loads
#   deploy/alerts.yml). The tests pass a generated configuration scraping their own worker.
# Data (TSDB), log and pid live in $BG_VAR/prometheus-$PROMETHEUS_PORT/ (BG_VAR defaults to ./var).
source "$(dirname "$0")/lib.sh"

PORT="${PROMETHEUS_PORT:-9090}"
CONFIG="${PROMETHEUS_CONFIG:-$BG_ROOT/deploy/prometheus.yml}"
DIR="$BG_VAR/prometheus-$PORT"
PIDFILE="$DIR/prometheus.pid"
LOG="$DIR/prometheus.log"

ready() { curl -fsS "http://127.0.0.1:$PORT/-/ready" >/dev/null; }

start() {
    need_apt prometheus prometheus
    mkdir -p "$DIR/data"
    if pid_alive "$PIDFILE"; then
        echo "prometheus: already running on 127.0.0.1:$PORT"
        return 0
    fi
    # Debian's package ships a systemd unit for the system-wide instance; this one is ours,
    # on loopback, with its own TSDB, so a test instance never touches a developer's data.
    launch prometheus "$PIDFILE" "$LOG" 30 ready \
        prometheus --config.file="$CONFIG" --storage.tsdb.path="$DIR/data" \
        --web.listen-address="127.0.0.1:$PORT" --storage.tsdb.retention.time=2d
    echo "prometheus: ready on 127.0.0.1:$PORT (config $CONFIG, log $LOG)"
}

status() {
    if pid_alive "$PIDFILE" && ready; then echo "prometheus: running on 127.0.0.1:$PORT"; else
        echo "prometheus: not running"; return 1; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop_pid "$PIDFILE" prometheus ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
