#!/usr/bin/env bash
# Redis on 127.0.0.1 from Debian's redis-server, for development, tests and CI alike.
#   deploy/redis.sh start|stop|kill|status   port: REDIS_PORT (default 6379)
#   kill: SIGKILL of the server by its pid file, no shutdown and no save (crash tests).
# Data, log and pid live in $BG_VAR/redis-$REDIS_PORT/ (BG_VAR defaults to ./var).
# AOF is on with appendfsync always: a counter write is on disk before the worker acks the
# batch, so neither a restart nor a kill -9 of Redis loses counted events (Redis fsyncs once per
# event-loop turn, so a pipelined batch costs about one fsync). REDIS_APPENDFSYNC=everysec
# trades that for speed (about +25 % worker throughput in `make bench` on the dev VM).
source "$(dirname "$0")/lib.sh"

PORT="${REDIS_PORT:-6379}"
DIR="$BG_VAR/redis-$PORT"
PIDFILE="$DIR/redis.pid"
LOG="$DIR/redis.log"

ready() { redis-cli -h 127.0.0.1 -p "$PORT" ping | grep -q PONG; }

start() {
    need_apt redis-server redis-server
    mkdir -p "$DIR"
    if pid_alive "$PIDFILE"; then
        echo "redis: already running on 127.0.0.1:$PORT"
        return 0
    fi
    redis-server --bind 127.0.0.1 --port "$PORT" --dir "$DIR" --daemonize yes \
        --pidfile "$PIDFILE" --logfile "$LOG" --appendonly yes --appendfsync "${REDIS_APPENDFSYNC:-always}" \
        --save '' --protected-mode yes
    wait_until 20 "$LOG" ready
    echo "redis: ready on 127.0.0.1:$PORT (log $LOG)"
}

kill_now() {  # SIGKILL, as a crash would; the AOF on disk is all that survives
    if ! pid_alive "$PIDFILE"; then
        rm -f "$PIDFILE"
        echo "redis: not running"
        return 0
    fi
    local pid
    pid=$(cat "$PIDFILE")
    kill -9 "$pid"
    while running "$pid"; do sleep 0.1; done
    rm -f "$PIDFILE"
    echo "redis: killed (SIGKILL)"
}

status() {
    if pid_alive "$PIDFILE" && ready; then echo "redis: running on 127.0.0.1:$PORT"; else
        echo "redis: not running"; return 1; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop_pid "$PIDFILE" redis ;;
    kill) kill_now ;;
    status) status ;;
    *) echo "usage: $0 start|stop|kill|status" >&2; exit 2 ;;
esac
