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
#   SERVER_LOG_DIR           server logs (default runs/reward_servers)
set -euo pipefail
source "$(dirname "$0")/lib/launch_common.sh"

[ $# -ge 1 ] || die "usage: $0 CONFIG [KEY=VALUE ...] [--max-steps N] [--output-dir DIR]"
CONFIG="$1"
[ -f "$CONFIG" ] || die "run config '$CONFIG' not found"

REWARD_HOST="${REWARD_HOST:-127.0.0.1}"
export REWARD_3D_PORT="${REWARD_3D_PORT:-18089}" GENERAL_REWARD_PORT="${GENERAL_REWARD_PORT:-18090}"
export REWARD_HOST SERVER_VISIBLE_DEVICES="${SERVER_VISIBLE_DEVICES:-}"
SERVER_LOG_DIR="${SERVER_LOG_DIR:-runs/reward_servers}"
mkdir -p "$SERVER_LOG_DIR"
SERVER_LOG="$SERVER_LOG_DIR/servers-$(date +%Y%m%d-%H%M%S)-$$.log"

SERVER_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        log "stopping the reward servers (process group $SERVER_PID)"
        kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 20); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
        kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The servers run in their own process group (setsid), so one signal stops all of them.
log "starting reward servers (devices: ${SERVER_VISIBLE_DEVICES:-cpu}); log: $SERVER_LOG"
CUDA_VISIBLE_DEVICES="$SERVER_VISIBLE_DEVICES" setsid "$(dirname "$0")/run_reward_servers.sh" "$CONFIG" \
    >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

export REWARD_3D_SERVER_URL="${REWARD_3D_SERVER_URL:-http://$REWARD_HOST:$REWARD_3D_PORT}"
export GENERAL_REWARD_SERVER_URL="${GENERAL_REWARD_SERVER_URL:-http://$REWARD_HOST:$GENERAL_REWARD_PORT}"
for url in "$REWARD_3D_SERVER_URL" "$GENERAL_REWARD_SERVER_URL"; do
    if ! wait_healthy "$url" "${SERVER_WAIT_S:-600}" "$SERVER_PID"; then
        log "reward server log ($SERVER_LOG):"; tail -n 30 "$SERVER_LOG" >&2 || true
        exit 3
    fi
    log "$url is healthy"
done

# Not exec: the EXIT trap must run after training to stop the servers.
SERVER_WAIT_S=30 "$(dirname "$0")/run_training.sh" "$@"
