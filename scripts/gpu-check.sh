#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the triton backend's tests compiled for CUDA (not interpreted)
# and the GPU bench, in at most about 8 minutes. Usage: bash scripts/gpu-check.sh
# Needs torch with CUDA (its wheels bring Triton) and descend installed with the dev extra.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -c 'import torch, triton; assert torch.cuda.is_available(), "no CUDA device"; print(torch.__version__, triton.__version__, torch.cuda.get_device_name())'
unset TRITON_INTERPRET
timeout 300 $PY -m pytest -q -p no:cacheprovider tests/test_engine_triton.py
timeout 90 $PY -m descend.bench --device cuda --shape small --steps 20
timeout 90 $PY -m descend.bench --device cuda --shape large --steps 10
