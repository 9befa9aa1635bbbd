#!/usr/bin/env bash
# The bounceguard worker in the background, for `make up` / `make down`.
#   deploy/worker.sh start|stop|status
# Settings come from BOUNCEGUARD_* variables (pipeline/config.py); the web port from
# BOUNCEGUARD_WEB_PORT (default 6066). Log and pid in $BG_VAR/worker-$PORT/.
# Ready means GET /health answers 200.
source "$(dirname "$0")/lib.sh"

PORT="${BOUNCEGUARD_WEB_PORT:-6066}"
export BOUNCEGUARD_WEB_PORT="$PORT"
export BOUNCEGUARD_KAFKA="${BOUNCEGUARD_KAFKA:-127.0.0.1:${KAFKA_PORT:-9092}}"
export BOUNCEGUARD_REDIS_URL="${BOUNCEGUARD_REDIS_URL:-redis://127.0.0.1:${REDIS_PORT:-6379}/0}"
DIR="$BG_VAR/worker-$PORT"
PIDFILE="$DIR/worker.pid"
LOG="$DIR/worker.log"
PYTHON="${BG_PYTHON:-$BG_ROOT/.venv/bin/python}"

ready() { curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null; }
run_worker() { cd "$BG_ROOT" && exec "$PYTHON" -m pipeline worker --loglevel info; }

start() {
    mkdir -p "$DIR"
    if pid_alive "$PIDFILE"; then
        echo "worker: already running (web 127.0.0.1:$PORT)"
        return 0
    fi
    launch worker "$PIDFILE" "$LOG" 90 ready run_worker
    echo "worker: ready, web on 127.0.0.1:$PORT (log $LOG)"
}

status() {
    if pid_alive "$PIDFILE" && ready; then echo "worker: running (web 127.0.0.1:$PORT)"; else
        echo "worker: not running"; return 1; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop_pid "$PIDFILE" worker ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
