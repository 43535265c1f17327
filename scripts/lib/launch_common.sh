# Shared by scripts/run_*.sh (sourced, not executed). Thin helpers around the worldr1 CLI.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

log() { echo "[$(date +%H:%M:%S)] $(basename "$0"): $*" >&2; }
die() { log "error: $*"; exit 2; }

# The Python that has worldr1 installed: $PYTHON, else the repo's .venv, else python3 on PATH.
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$REPO_ROOT/.venv/bin/python" ]; then PYTHON="$REPO_ROOT/.venv/bin/python"; else PYTHON="$(command -v python3 || command -v python)"; fi
fi
export PYTHON

# Number of comma-separated entries of a device list ("0,1,2" -> 3; "" -> 0).
count_devices() { local list="$1"; [ -z "$list" ] && { echo 0; return; }; awk -F, '{print NF}' <<<"$list"; }

# Whether this machine has a usable CUDA GPU (WORLDR1_DEVICE=cpu|cuda forces the answer).
has_cuda() {
    case "${WORLDR1_DEVICE:-auto}" in
        cpu) return 1 ;;
        cuda) return 0 ;;
    esac
    command -v nvidia-smi >/dev/null 2>&1 || return 1
    "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null
}

# Poll GET URL/health until it answers 200 (token from WORLDR1_REWARD_TOKEN[_FILE] if set).
# wait_healthy URL TIMEOUT_S [PID]: fails early if process PID (the server launcher) has exited.
wait_healthy() {
    local url="$1" timeout="$2" pid="${3:-}" start=$SECONDS
    while true; do
        if "$PYTHON" - "$url" <<'PY' 2>/dev/null; then return 0; fi
import os, sys, urllib.request
url = sys.argv[1].rstrip("/") + "/health"
token = os.environ.get("WORLDR1_REWARD_TOKEN", "")
if not token and os.environ.get("WORLDR1_REWARD_TOKEN_FILE"):
    token = open(os.environ["WORLDR1_REWARD_TOKEN_FILE"]).read().strip()
req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
with urllib.request.urlopen(req, timeout=5) as resp:
    sys.exit(0 if resp.status == 200 else 1)
PY
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            log "the reward server launcher (pid $pid) exited before $url became healthy"; return 1
        fi
        if [ $((SECONDS - start)) -ge "$timeout" ]; then
            log "$url/health did not answer within ${timeout}s"; return 1
        fi
        sleep 1
    done
}

# Config overrides selecting DeepSpeed ZeRO-STAGE for launchers without an accelerate yaml
# (ZERO_STAGE=0: none; the trainer's `auto` backend then picks DDP for several processes).
zero_overrides() {
    local stage="$1" ds_cfg="$REPO_ROOT/configs/deepspeed/zero$1.json"
    [ "$stage" = 0 ] && return 0
    [ -f "$ds_cfg" ] || die "ZERO_STAGE=$stage: DeepSpeed config '$ds_cfg' not found"
    echo "distributed.backend=deepspeed distributed.zero_stage=$stage distributed.deepspeed_config=$ds_cfg"
}

# launch_train CONFIG [OVERRIDES...]: start `worldr1 train` under the chosen launcher.
# Environment: NUM_PROCESSES (per node), LAUNCHER (accelerate | deepspeed | torchrun),
# ZERO_STAGE (3 | 2 | 0 = plain data parallel), ACCELERATE_CONFIG, and for several nodes
# NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT.
launch_train() {
    local config="$1"; shift
    [ -f "$config" ] || die "run config '$config' not found"
    local nproc="${NUM_PROCESSES:-1}" nnodes="${NNODES:-1}" node_rank="${NODE_RANK:-0}"
    local master_addr="${MASTER_ADDR:-127.0.0.1}" master_port="${MASTER_PORT:-29500}"
    local launcher="${LAUNCHER:-accelerate}" stage="${ZERO_STAGE:-3}"
    local total=$((nproc * nnodes))
    local train=(-m worldr1_core.cli train "$config" "$@")
    if ! has_cuda; then
        export DS_ACCELERATOR=cpu   # DeepSpeed on CPU: gloo process group
        export WORLDR1_DEVICE=cpu
    fi
    log "launcher=$launcher processes=$nproc/node nodes=$nnodes node_rank=$node_rank zero_stage=$stage device=${DS_ACCELERATOR:-cuda} config=$config"
    case "$launcher" in
        accelerate)
            local acfg="${ACCELERATE_CONFIG:-}"
            if [ -z "$acfg" ]; then
                case "$stage" in
                    3) acfg="$REPO_ROOT/configs/accelerate/zero3.yaml"
                       [ -n "${DS_ACCELERATOR:-}" ] && acfg="$REPO_ROOT/configs/accelerate/zero3_cpu.yaml" ;;
                    2) acfg="$REPO_ROOT/configs/accelerate/zero2.yaml" ;;
                    0) acfg="$REPO_ROOT/configs/accelerate/ddp.yaml" ;;
                    *) die "ZERO_STAGE must be 3, 2 or 0 (plain data parallel), got '$stage'" ;;
                esac
            fi
            [ -f "$acfg" ] || die "accelerate config '$acfg' not found"
            local extra=()
            if [ -n "${DS_ACCELERATOR:-}" ] && ! grep -q '^use_cpu: *true' "$acfg"; then extra+=(--cpu); fi
            # several nodes under DeepSpeed: one torchrun-style launcher per node (no pdsh/ssh)
            if [ "$nnodes" -gt 1 ] && grep -q '^distributed_type: *DEEPSPEED' "$acfg"; then
                extra+=(--deepspeed_multinode_launcher standard)
            fi
            exec "$PYTHON" -m accelerate.commands.launch --config_file "$acfg" "${extra[@]}" \
                --num_processes "$total" --num_machines "$nnodes" --machine_rank "$node_rank" \
                --main_process_ip "$master_addr" --main_process_port "$master_port" \
                "${train[@]}"
            ;;
        deepspeed)
            [ "$stage" = 0 ] && die "LAUNCHER=deepspeed needs ZERO_STAGE 2 or 3"
            local hostargs=()
            if [ "$nnodes" -gt 1 ]; then
                hostargs=(--num_nodes "$nnodes" --node_rank "$node_rank" --master_addr "$master_addr" --no_ssh)
            fi
            # --no_local_rank: ranks come from the environment (LOCAL_RANK), not from argv
            local zo; zo=$(zero_overrides "$stage")
            # shellcheck disable=SC2086  # $zo: separate KEY=VALUE words, before the user's own overrides
            exec "$PYTHON" -m deepspeed.launcher.runner "${hostargs[@]}" --num_gpus "$nproc" --master_port "$master_port" \
                --no_local_rank --module worldr1_core.cli train "$config" $zo "$@"
            ;;
        torchrun)
            local zo; zo=$(zero_overrides "$stage")
            # shellcheck disable=SC2086  # $zo: separate KEY=VALUE words, before the user's own overrides
            exec "$PYTHON" -m torch.distributed.run --nnodes "$nnodes" --node_rank "$node_rank" \
                --nproc_per_node "$nproc" --master_addr "$master_addr" --master_port "$master_port" \
                -m worldr1_core.cli train "$config" $zo "$@"
            ;;
        *) die "LAUNCHER must be accelerate, deepspeed or torchrun, got '$launcher'" ;;
    esac
}

# reward_names_by_group CONFIG [OVERRIDES...]: prints two lines, "3d NAME..." and "general NAME...":
# the config's [[rewards]] that go to each reward server (entries with their own `server = ...`
# are left out: they name their server themselves, or "local" for in-process scoring).
reward_names_by_group() {
    "$PYTHON" - "$@" <<'PY'
import sys
from worldr1_core.config import compose
try:
    from worldr1_core.reward_serving.client import server_group_of
except ImportError:  # reward servers not installed: the release's split
    def server_group_of(name, registry=None):
        return "3d" if name in {"meta_view", "reconstruction", "trajectory_alignment"} else "general"
from worldr1_core.registry import get_registry

overrides = [a for a in sys.argv[2:] if "=" in a and not a.startswith("-")]
data, _ = compose(sys.argv[1], overrides)
groups = {"3d": [], "general": []}
for entry in data.get("rewards", []):
    if entry.get("server"):
        continue
    groups.setdefault(server_group_of(entry["name"], get_registry()), []).append(entry["name"])
for group, names in groups.items():
    print(group, *names)
PY
}
