#!/usr/bin/env bash
# Train with reward servers that are ALREADY running (start them with scripts/run_reward_servers.sh,
# or use scripts/run_single_node.sh, which does both).
#
#   REWARD_3D_SERVER_URL=http://10.0.0.5:18089 GENERAL_REWARD_SERVER_URL=http://10.0.0.5:18090 \
#   TRAIN_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 scripts/run_training.sh configs/world_r1_small.toml [KEY=VALUE ...]
#
# Environment:
#   REWARD_3D_SERVER_URL       server of the 3D rewards (meta_view, reconstruction, trajectory_alignment)
#   GENERAL_REWARD_SERVER_URL  server of the other rewards (aesthetic); unset: scored in-process
#   TRAIN_VISIBLE_DEVICES      GPUs for training (becomes CUDA_VISIBLE_DEVICES); default: all
#   NUM_PROCESSES              training processes (default: number of TRAIN_VISIBLE_DEVICES, or of GPUs, or 1)
#   LAUNCHER                   accelerate (default) | deepspeed | torchrun
#   ZERO_STAGE                 3 (default, DeepSpeed ZeRO-3) | 2 | 0 (plain data parallel)
#   ACCELERATE_CONFIG          an accelerate yaml instead of configs/accelerate/zero{3,2}.yaml / ddp.yaml
#   SERVER_WAIT_S              how long to wait for the servers' /health (default 60)
#   WORLDR1_DEVICE             cpu to force a CPU run (gloo, DS_ACCELERATOR=cpu); default: auto
# Arguments: CONFIG [KEY=VALUE ...] [--max-steps N] [--output-dir DIR] [--resume DIR]
set -euo pipefail
source "$(dirname "$0")/lib/launch_common.sh"

[ $# -ge 1 ] || die "usage: $0 CONFIG [KEY=VALUE ...] [--max-steps N] [--output-dir DIR] [--resume DIR]"

if [ -n "${TRAIN_VISIBLE_DEVICES:-}" ]; then
    export CUDA_VISIBLE_DEVICES="$TRAIN_VISIBLE_DEVICES"
fi
if [ -z "${NUM_PROCESSES:-}" ]; then
    if [ -n "${TRAIN_VISIBLE_DEVICES:-}" ]; then NUM_PROCESSES=$(count_devices "$TRAIN_VISIBLE_DEVICES")
    elif has_cuda; then NUM_PROCESSES=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")
    else NUM_PROCESSES=1; fi
fi
export NUM_PROCESSES

for var in REWARD_3D_SERVER_URL GENERAL_REWARD_SERVER_URL; do
    url="${!var:-}"
    if [ -n "$url" ]; then
        export "$var"
        wait_healthy "$url" "${SERVER_WAIT_S:-60}" || die "$var=$url is not healthy; start the servers first (scripts/run_reward_servers.sh)"
        log "$var=$url is healthy"
    fi
done

launch_train "$@"
