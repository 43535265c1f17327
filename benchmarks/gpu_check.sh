#!/usr/bin/env bash
# The one prepared GPU run (device tool): real Wan2.1-1.3B architecture step at 480x832x81 and the
# gsplat-vs-torch splatter comparison. Wheels for packages the GPU image lacks are carried in .whl/.
# Writes JSON to $OUT (or ./gpu_out). Usage: bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
# worldr1 from this checkout without installing: plugins/ is imported as worldr1_plugins.
mkdir -p /tmp/pkg && rm -rf /tmp/pkg/worldr1_plugins && cp -r plugins /tmp/pkg/worldr1_plugins
export PYTHONPATH=/tmp/pkg:$PWD:/tmp/site
nvidia-smi -L 2>/dev/null; python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
timeout "${WAN_TIMEOUT:-240}" python3 benchmarks/gpu_wan_step.py --out "$OUT/gpu_wan_step.json" ${WAN_ARGS:-} 2>&1 | tail -40
echo "wan step rc=${PIPESTATUS[0]}"
MAX_JOBS=${MAX_JOBS:-16} timeout "${GSPLAT_TIMEOUT:-300}" python3 benchmarks/gpu_gsplat_check.py --out "$OUT/gsplat_check.json" 2>&1 | tail -30
echo "gsplat check rc=${PIPESTATUS[0]}"
