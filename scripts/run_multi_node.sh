#!/usr/bin/env bash
# Multi-node training: run this on EVERY node with the same MASTER_ADDR/MASTER_PORT/NNODES and
# its own NODE_RANK (0 on the master). Reward servers are already running somewhere all nodes reach.
#
#   # node 0 (10.0.0.1)                                  # node 1
#   MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 NNODES=2 \    MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 NNODES=2 \
#   NODE_RANK=0 NUM_PROCESSES=8 \                        NODE_RANK=1 NUM_PROCESSES=8 \
#   REWARD_3D_SERVER_URL=http://10.0.0.9:18089 \         REWARD_3D_SERVER_URL=http://10.0.0.9:18089 \
#   GENERAL_REWARD_SERVER_URL=http://10.0.0.9:18090 \    GENERAL_REWARD_SERVER_URL=http://10.0.0.9:18090 \
#   scripts/run_multi_node.sh configs/world_r1_large.toml  scripts/run_multi_node.sh configs/world_r1_large.toml
#
# Required: MASTER_ADDR, MASTER_PORT, NNODES, NODE_RANK. NUM_PROCESSES is per node (default: the
# node's GPUs). Servers reached over the network need a token: WORLDR1_REWARD_TOKEN_FILE.
# Every other variable is as in scripts/run_training.sh.
set -euo pipefail
source "$(dirname "$0")/lib/launch_common.sh"

for var in MASTER_ADDR MASTER_PORT NNODES NODE_RANK; do
    [ -n "${!var:-}" ] || die "$var is required (see the header of $0)"
done
[[ "$NNODES" =~ ^[0-9]+$ && "$NODE_RANK" =~ ^[0-9]+$ && "$NODE_RANK" -lt "$NNODES" ]] \
    || die "NODE_RANK ($NODE_RANK) must be an integer in [0, NNODES=$NNODES)"
export MASTER_ADDR MASTER_PORT NNODES NODE_RANK
exec "$(dirname "$0")/run_training.sh" "$@"
