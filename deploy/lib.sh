# Shared helpers for deploy/*.sh (sourced, not run). Each server script keeps its pid file, log
# and data under $BG_VAR/<name>-<port>/ so a dev stack and a test stack never share anything.
set -euo pipefail

BG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BG_VAR="${BG_VAR:-$BG_ROOT/var}"

need_apt() {  # need_apt COMMAND PACKAGE: install PACKAGE with apt when COMMAND is missing
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "installing $2 (apt) ..." >&2
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq "$2" >/dev/null
}

pid_alive() {  # pid_alive PIDFILE: true when the pid in PIDFILE is a running process
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_until() {  # wait_until SECONDS LOGFILE COMMAND...: poll COMMAND until it succeeds
    local deadline=$((SECONDS + $1)) log=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "not ready after timeout; last lines of $log:" >&2
            tail -n 40 "$log" >&2 || true
            return 1
        fi
        sleep 0.3
    done
}

running() {  # running PID: the process exists and is not a zombie waiting to be reaped
    # (a zombie has let go of its ports and files; where PID 1 reaps orphans only every second
    # or two, `kill -0` alone kept each stop waiting that long)
    ps -o stat= -p "$1" 2>/dev/null | grep -qv '^Z'
}

stop_pid() {  # stop_pid PIDFILE NAME: SIGTERM, wait up to 30 s, then SIGKILL; remove PIDFILE
    local pidfile=$1 name=$2 pid
    if ! pid_alive "$pidfile"; then
        rm -f "$pidfile"
        echo "$name: not running"
        return 0
    fi
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
        running "$pid" || break
        sleep 0.1
    done
    running "$pid" && kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    echo "$name: stopped"
}

spawn() {  # spawn PIDFILE LOG CMD...: run CMD in the background, detached, and record its pid
    # (CMD must exec the server itself, so that the pid file names the server, not a shell)
    local pidfile=$1 log=$2
    shift 2
    "$@" >"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    disown
}

launch() {  # launch NAME PIDFILE LOG SECONDS READY CMD...: run CMD in the background, record
    # its pid, and wait up to SECONDS until the function READY succeeds. CMD must become the
    # server process itself (exec), so that the pid file names the server, not a shell.
    local name=$1 pidfile=$2 log=$3 seconds=$4 ready=$5
    shift 5
    spawn "$pidfile" "$log" "$@"
    wait_until "$seconds" "$log" _ready_or_dead "$ready" "$pidfile" \
        || { stop_pid "$pidfile" "$name" >&2; return 1; }
    "$ready" || { echo "$name: exited during start-up; last lines of $log:" >&2
                  tail -n 40 "$log" >&2; rm -f "$pidfile"; return 1; }
}

_ready_or_dead() { "$1" || ! pid_alive "$2"; }
