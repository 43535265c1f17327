#!/usr/bin/env bash
# Start the two reward servers of a World-R1 run -- a 3D server (geometry + VLM rewards) and a
# general server (aesthetic) -- wait until both answer /health, and print the environment
# variables that point training at them.
#
#   scripts/run_reward_servers.sh            # start both (background), write pid and log files
#   scripts/run_reward_servers.sh stop       # stop the servers started from the same RUN_DIR
#   scripts/run_reward_servers.sh status     # /health of both
#   scripts/run_reward_servers.sh plan       # print the server commands, start nothing
#
# With CONFIG set, each server starts only the rewards that config's [[rewards]] uses (a server
# left with none is not started).
#
# Everything is configurable through the environment:
#   REWARD_3D_NAMES     rewards of the 3D server        (default: "meta_view reconstruction trajectory_alignment";
#                       empty: do not start it)
#   REWARD_3D_PORT      its port                         (default: 18089)
#   REWARD_3D_DEVICE    its device                       (default: cuda:0; a list such as
#                       cuda:0,cuda:1,cuda:2,cuda:3 starts one worker process per GPU: --devices)
#   GENERAL_NAMES       rewards of the general server    (default: "aesthetic"; empty: do not start it)
#   GENERAL_PORT        its port                         (default: 18090)
#   GENERAL_DEVICE      its device                       (default: cuda:1; a list: --devices)
#   HOST                bind address                     (default: 127.0.0.1; other hosts need TOKEN_FILE)
#   TOKEN_FILE          bearer token file                (default: none)
#   CONFIG              run config whose [[rewards]] options the servers use (default: none)
#   MAX_BATCH           samples merged into one reward call (default: 16)
#   EXTRA_ARGS          more `worldr1 reward serve` flags, e.g. "--batch-wait-ms 20 --timeout 900"
#   RUN_DIR             where pid and log files go       (default: runs/reward_servers)
#   STARTUP_TIMEOUT     seconds to wait for /health      (default: 900; loading a VLM takes a while)
#   WORLDR1             the CLI       (default: the project's .venv/bin/python -m worldr1_core.cli,
#                       else $VIRTUAL_ENV's python, else python3)
set -euo pipefail

REWARD_3D_NAMES=${REWARD_3D_NAMES-"meta_view reconstruction trajectory_alignment"}
REWARD_3D_PORT=${REWARD_3D_PORT:-18089}
REWARD_3D_DEVICE=${REWARD_3D_DEVICE:-cuda:0}
GENERAL_NAMES=${GENERAL_NAMES-"aesthetic"}
GENERAL_PORT=${GENERAL_PORT:-18090}
GENERAL_DEVICE=${GENERAL_DEVICE:-cuda:1}
HOST=${HOST:-127.0.0.1}
TOKEN_FILE=${TOKEN_FILE:-}
CONFIG=${CONFIG:-}
MAX_BATCH=${MAX_BATCH:-16}
EXTRA_ARGS=${EXTRA_ARGS:-}
RUN_DIR=${RUN_DIR:-runs/reward_servers}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-900}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z "${WORLDR1:-}" ]]; then
    if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then PY="$REPO_ROOT/.venv/bin/python"
    elif [[ -n "${VIRTUAL_ENV:-}" && -x "$VIRTUAL_ENV/bin/python" ]]; then PY="$VIRTUAL_ENV/bin/python"
    else PY=$(command -v python3 || command -v python); fi
    WORLDR1="$PY -m worldr1_core.cli"
fi

# only the rewards the run config uses
if [[ -n "$CONFIG" ]]; then
    # shellcheck disable=SC2086
    CONFIGURED=$($WORLDR1 config show "$CONFIG" --json | ${WORLDR1%% *} -c \
        'import json, sys; print(" ".join(r["name"] for r in json.load(sys.stdin)["rewards"]))')
    only_configured() {  # only_configured NAMES... -> the names the config uses
        local out=() n
        for n in "$@"; do [[ " $CONFIGURED " == *" $n "* ]] && out+=("$n"); done
        echo "${out[*]}"
    }
    # shellcheck disable=SC2086
    REWARD_3D_NAMES=$(only_configured $REWARD_3D_NAMES)
    # shellcheck disable=SC2086
    GENERAL_NAMES=$(only_configured $GENERAL_NAMES)
    echo "config $CONFIG uses: $CONFIGURED -> 3d server: ${REWARD_3D_NAMES:-(not started)}, general server: ${GENERAL_NAMES:-(not started)}"
fi

# host as a client reaches it (0.0.0.0 / :: bind every interface; talk to loopback locally)
client_host() { case "$HOST" in 0.0.0.0|::) echo 127.0.0.1 ;; *) echo "$HOST" ;; esac; }

health() {  # health PORT -> prints the JSON, fails if not 200
    local auth=()
    [[ -n "$TOKEN_FILE" ]] && auth=(-H "Authorization: Bearer $(tr -d '[:space:]' < "$TOKEN_FILE")")
    curl -fsS --max-time 5 "${auth[@]}" "http://$(client_host):$1/health"
}

start_one() {  # start_one LABEL PORT DEVICE NAMES...
    local label=$1 port=$2 device=$3; shift 3
    local pidfile="$RUN_DIR/$label.pid" log="$RUN_DIR/$label.log"
    if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "$label server already running (pid $(cat "$pidfile")); stop it first" >&2
        return 1
    fi
    local device_flag=--device
    [[ "$device" == *,* ]] && device_flag=--devices  # a list: one worker process per device
    local args=(reward serve "$@" --host "$HOST" --port "$port" "$device_flag" "$device" --max-batch "$MAX_BATCH")
    [[ -n "$TOKEN_FILE" ]] && args+=(--token-file "$TOKEN_FILE")
    [[ -n "$CONFIG" ]] && args+=(--config "$CONFIG")
    # shellcheck disable=SC2206  # WORLDR1 and EXTRA_ARGS are word lists on purpose
    local cmd=($WORLDR1 "${args[@]}" $EXTRA_ARGS)
    echo "starting $label server: ${cmd[*]}"
    [[ "${PLAN_ONLY:-0}" == 1 ]] && return 0
    nohup "${cmd[@]}" > "$log" 2>&1 &
    echo $! > "$pidfile"
}

wait_healthy() {  # wait_healthy LABEL PORT
    local label=$1 port=$2 pid
    pid=$(cat "$RUN_DIR/$label.pid")
    local deadline=$((SECONDS + STARTUP_TIMEOUT))
    until health "$port" > /dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$label server (pid $pid) exited during startup; last log lines:" >&2
            tail -n 20 "$RUN_DIR/$label.log" >&2
            return 1
        fi
        if (( SECONDS >= deadline )); then
            echo "$label server not healthy after ${STARTUP_TIMEOUT}s; see $RUN_DIR/$label.log" >&2
            return 1
        fi
        sleep 1
    done
    echo "$label server healthy on http://$(client_host):$port (pid $pid, log $RUN_DIR/$label.log)"
}

stop_one() {  # stop_one LABEL
    local pidfile="$RUN_DIR/$1.pid"
    [[ -f "$pidfile" ]] || return 0
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
        echo "stopped $1 server (pid $pid)"
    fi
    rm -f "$pidfile"
}

mkdir -p "$RUN_DIR"
case "${1:-start}" in
    start)
        started=()
        if [[ -n "$REWARD_3D_NAMES" ]]; then
            # shellcheck disable=SC2086
            start_one 3d "$REWARD_3D_PORT" "$REWARD_3D_DEVICE" $REWARD_3D_NAMES; started+=(3d)
        fi
        if [[ -n "$GENERAL_NAMES" ]]; then
            # shellcheck disable=SC2086
            start_one general "$GENERAL_PORT" "$GENERAL_DEVICE" $GENERAL_NAMES; started+=(general)
        fi
        for label in "${started[@]}"; do
            port=$REWARD_3D_PORT; [[ $label == general ]] && port=$GENERAL_PORT
            if ! wait_healthy "$label" "$port"; then
                for other in "${started[@]}"; do stop_one "$other"; done
                exit 1
            fi
        done
        echo
        echo "# point training at the servers:"
        if [[ -n "$REWARD_3D_NAMES" ]]; then echo "export REWARD_3D_SERVER_URL=http://$(client_host):$REWARD_3D_PORT"; fi
        if [[ -n "$GENERAL_NAMES" ]]; then echo "export GENERAL_REWARD_SERVER_URL=http://$(client_host):$GENERAL_PORT"; fi
        if [[ -n "$TOKEN_FILE" ]]; then echo "export WORLDR1_REWARD_TOKEN_FILE=$TOKEN_FILE"; fi
        ;;
    plan)
        PLAN_ONLY=1
        # shellcheck disable=SC2086
        [[ -n "$REWARD_3D_NAMES" ]] && start_one 3d "$REWARD_3D_PORT" "$REWARD_3D_DEVICE" $REWARD_3D_NAMES
        # shellcheck disable=SC2086
        [[ -n "$GENERAL_NAMES" ]] && start_one general "$GENERAL_PORT" "$GENERAL_DEVICE" $GENERAL_NAMES
        exit 0
        ;;
    stop)
        stop_one 3d
        stop_one general
        ;;
    status)
        if [[ -n "$REWARD_3D_NAMES" ]]; then echo "3d:"; health "$REWARD_3D_PORT" || true; echo; fi
        if [[ -n "$GENERAL_NAMES" ]]; then echo "general:"; health "$GENERAL_PORT" || true; echo; fi
        ;;
    *)
        echo "usage: $0 [start|stop|status|plan]" >&2
        exit 2
        ;;
esac
