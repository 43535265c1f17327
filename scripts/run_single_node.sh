#!/usr/bin/env bash
# One node, everything: start the reward servers on SERVER_VISIBLE_DEVICES, wait until they are
# healthy, train on TRAIN_VISIBLE_DEVICES, and stop the servers when training ends, fails or is
# interrupted.
#
#   SERVER_VISIBLE_DEVICES=6,7 TRAIN_VISIBLE_DEVICES=0,1,2,3,4,5 NUM_PROCESSES=6 \
#       scripts/run_single_node.sh configs/world_r1_small.toml [KEY=VALUE ...]
#   # CPU smoke test (tiny model, 2 processes, ZeRO-3 on gloo):
#   WORLDR1_DEVICE=cpu NUM_PROCESSES=2 scripts/run_single_node.sh configs/tiny_cpu.toml --max-steps 2
#
# Environment (besides those of scripts/run_training.sh):
#   SERVER_VISIBLE_DEVICES   GPUs of the reward servers (default: none, i.e. CPU)
#   REWARD_HOST              address the servers bind and the trainer calls (default 127.0.0.1)
#   REWARD_3D_PORT           port of the 3D-reward server (default 18089)
#   GENERAL_REWARD_PORT      port of the general-reward server (default 18090)
#   SERVER_WAIT_S            seconds to wait for /health (default 600: real reward models load slowly)
#   SERVER_LOG_DIR           server pid and log files go to SERVER_LOG_DIR/<time>-<pid>/ (default runs/reward_servers)
#   WORLDR1_REWARD_TOKEN_FILE  bearer token file: the servers require it and the trainer sends it
#                            (needed when REWARD_HOST is not a loopback address)
# The config's [[rewards]] are split between the servers by server group (3D: meta_view,
# reconstruction, trajectory_alignment; general: the rest); entries with their own `server = ...`
# are not served. Servers are started and stopped by scripts/run_reward_servers.sh.
set -euo pipefail
source "$(dirname "$0")/lib/launch_common.sh"

[ $# -ge 1 ] || die "usage: $0 CONFIG [KEY=VALUE ...] [--max-steps N] [--output-dir DIR]"
CONFIG="$1"
[ -f "$CONFIG" ] || die "run config '$CONFIG' not found"

REWARD_HOST="${REWARD_HOST:-127.0.0.1}"
REWARD_3D_PORT="${REWARD_3D_PORT:-18089}"
GENERAL_REWARD_PORT="${GENERAL_REWARD_PORT:-18090}"
SERVER_VISIBLE_DEVICES="${SERVER_VISIBLE_DEVICES:-}"
SERVER_RUN_DIR="${SERVER_LOG_DIR:-runs/reward_servers}/$(date +%Y%m%d-%H%M%S)-$$"

# Which rewards each server serves: the config's [[rewards]], split by server group.
groups="$(reward_names_by_group "$@")" || die "could not read the rewards of $CONFIG"
REWARD_3D_NAMES="$(awk '$1 == "3d" {$1 = ""; print substr($0, 2)}' <<<"$groups")"
GENERAL_NAMES="$(awk '$1 == "general" {$1 = ""; print substr($0, 2)}' <<<"$groups")"

# Devices: the 3D server on the first server GPU, the general one on the second (or the same).
n_server_gpus=$(count_devices "$SERVER_VISIBLE_DEVICES")
if [ "$n_server_gpus" -ge 2 ]; then dev3d=cuda:0; devgen=cuda:1
elif [ "$n_server_gpus" -eq 1 ]; then dev3d=cuda:0; devgen=cuda:0
else dev3d=cpu; devgen=cpu; fi

servers() {  # servers start|stop: scripts/run_reward_servers.sh with this run's settings
    CUDA_VISIBLE_DEVICES="$SERVER_VISIBLE_DEVICES" RUN_DIR="$SERVER_RUN_DIR" CONFIG="$CONFIG" HOST="$REWARD_HOST" \
    REWARD_3D_NAMES="$REWARD_3D_NAMES" REWARD_3D_PORT="$REWARD_3D_PORT" REWARD_3D_DEVICE="$dev3d" \
    GENERAL_NAMES="$GENERAL_NAMES" GENERAL_PORT="$GENERAL_REWARD_PORT" GENERAL_DEVICE="$devgen" \
    STARTUP_TIMEOUT="${SERVER_WAIT_S:-600}" WORLDR1="$PYTHON -m worldr1_core.cli" TOKEN_FILE="${WORLDR1_REWARD_TOKEN_FILE:-}" \
        "$(dirname "$0")/run_reward_servers.sh" "$1"
}

STARTED=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "$STARTED" = 1 ]; then
        log "stopping the reward servers"
        servers stop >&2 || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

unset REWARD_3D_SERVER_URL GENERAL_REWARD_SERVER_URL
if [ -z "$REWARD_3D_NAMES$GENERAL_NAMES" ]; then
    log "no reward of $CONFIG goes to a server; training with in-process rewards"
else
    log "starting reward servers on ${SERVER_VISIBLE_DEVICES:-cpu}: 3d=[${REWARD_3D_NAMES}] general=[${GENERAL_NAMES}] (logs: $SERVER_RUN_DIR)"
    STARTED=1
    servers start >&2 || { log "the reward servers did not start"; exit 3; }
    client_host="$REWARD_HOST"; case "$client_host" in 0.0.0.0|::) client_host=127.0.0.1 ;; esac
    [ -n "$REWARD_3D_NAMES" ] && export REWARD_3D_SERVER_URL="http://$client_host:$REWARD_3D_PORT"
    [ -n "$GENERAL_NAMES" ] && export GENERAL_REWARD_SERVER_URL="http://$client_host:$GENERAL_REWARD_PORT"
fi

# Not exec: the EXIT trap must run after training to stop the servers.
SERVER_WAIT_S=30 "$(dirname "$0")/run_training.sh" "$@"
