#!/usr/bin/env bash
# Create .venv in the repository root (if missing) and install worldr1 with everything the
# tests need. Idempotent: a second call with unchanged requirements does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv
PIP="$VENV/bin/python -m pip"

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
stamp="$VENV/.worldr1-installed"
want=$(cat requirements/*.txt pyproject.toml setup.py tools/setup_venv.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

quiet() { "$@" 2>&1 | grep -v -e "is ignored: it is neither" -e "^$" || true; return "${PIPESTATUS[0]}"; }

echo "[setup] installing into $VENV (first time: a few minutes)"
quiet $PIP install -q --upgrade pip
# torch first: these exact versions are on local disk here; any other version downloads GBs.
quiet $PIP install -q torch==2.14.1 torchvision==0.29.1
quiet $PIP install -q -r requirements/base.txt -r requirements/rewards.txt -r requirements/dev.txt
# Declared deps of these two would downgrade protobuf/pytest/numpy: install them without.
quiet $PIP install -q --no-deps hpsv2==1.2.0 depth-anything-3==0.1.1
# hpsv2's wheel lacks the BPE vocab its tokenizer reads; the same file ships in open-clip-torch.
vocab_dir=$($VENV/bin/python -c "import importlib.util,os;print(os.path.join(os.path.dirname(importlib.util.find_spec('hpsv2').origin),'src','open_clip'))")
if [ ! -f "$vocab_dir/bpe_simple_vocab_16e6.txt.gz" ]; then
    tmp=$(mktemp -d)
    quiet $PIP download -q --no-deps open-clip-torch==3.3.0 -d "$tmp"
    $VENV/bin/python - "$tmp" "$vocab_dir" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/open_clip_torch-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    data = z.read("open_clip/bpe_simple_vocab_16e6.txt.gz")
open(sys.argv[2] + "/bpe_simple_vocab_16e6.txt.gz", "wb").write(data)
PY
    rm -rf "$tmp"
fi
quiet $PIP install -q --no-deps --no-build-isolation -e .
echo "$want" > "$stamp"
echo "[setup] done"
