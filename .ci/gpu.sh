#!/usr/bin/env bash
# The prepared device check: every GPU path of the harness in one command (.ci/gpu_check.py says
# what each check does). One PASS / FAIL / SKIP line per check, then the figures.
#
#   bash .ci/gpu.sh --prepare               # on the development machine, once: fills the
#                                           # git-ignored .whl/ and .devdata/ that travel
#   bash .ci/gpu.sh [--device cuda] [--out DIR] [--only CHECK ...]   # on the GPU machine
#   bash .ci/gpu.sh --device cpu            # the same checks at toy sizes (CI runs this)
#
# On the GPU machine nothing can be downloaded: the wheels its image lacks (lpips, pytorch-fid,
# POT, jsonschema, vector-quantize-pytorch and what they need) come from .whl/, real MNIST's raw
# files and LPIPS's AlexNet from .devdata/ (about 25 MB together; the tree must stay < 64 MiB).
# pytorch-fid's Inception (87 MB) does not fit: the evaluation check uses a stand-in network.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ "${1:-}" = "--prepare" ]; then
  # versions: what this machine's environment has installed (the ones the suite ran with)
  pins=()
  for p in lpips pytorch-fid POT jsonschema jsonschema-specifications referencing rpds-py \
           vector-quantize-pytorch einx torch-einops-utils frozendict loguru; do
    v=$($PY -m pip show "$p" 2>/dev/null | sed -n 's/^Version: //p')
    [ -n "$v" ] || { echo "gpu.sh --prepare: $p is not installed here (pip install -e \".[test]\" first)"; exit 2; }
    pins+=("$p==$v")
  done
  rm -rf .whl && mkdir -p .whl
  # the GPU image runs CPython 3.12 on x86-64 (device tool: KINDS.md)
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .whl "${pins[@]}"
  raw="${QGVAE_DATA_ROOT:-data}/MNIST/raw"
  mkdir -p .devdata/MNIST/raw .devdata/torch_home/hub/checkpoints
  cp "$raw"/*-ubyte.gz .devdata/MNIST/raw/ \
    || { echo "gpu.sh --prepare: no MNIST raw files in $raw (set QGVAE_DATA_ROOT)"; exit 2; }
  alex="${TORCH_HOME:-$HOME/.cache/torch}/hub/checkpoints/alexnet-owt-7be5be79.pth"
  cp "$alex" .devdata/torch_home/hub/checkpoints/ \
    || { echo "gpu.sh --prepare: $alex missing (qgvae fetch-weights)"; exit 2; }
  du -sh .whl .devdata
  echo "carry: .whl .devdata  (device tool: carry=[\".whl\", \".devdata\"])"
  exit 0
fi

# What the image lacks, from the carried wheels; the project itself for its entry points
# (methods are plug-ins found through them). Where the environment has all of it (CI's
# virtual environment), nothing is installed.
if ! $PY -c "import lpips, ot, jsonschema, pytorch_fid, qgvae.methods as m; assert m.registered()" \
    2>/dev/null; then
  site=/tmp/qgvae-site
  if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$site" .whl/*.whl
  fi
  $PY -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --upgrade \
    --target "$site" .
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
exec $PY .ci/gpu_check.py "$@"
