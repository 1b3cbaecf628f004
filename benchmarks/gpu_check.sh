#!/usr/bin/env bash
# The prepared GPU run (one call on a machine with a CUDA device): the CUDA tests, then the engine
# benchmark on the GPU for the paper's full-width model and cpu-small, on a phantom and a
# 512 x 512 x 250 volume. Needs only torch, numpy, scipy and pytest (no nibabel/pydicom/Panel:
# hence --noconftest). Results go to $OUT (default benchmarks/) as engine_cuda.md.
#   PY=python3 OUT=/tmp bash benchmarks/gpu_check.sh
set -euo pipefail
PY=${PY:-python3}
OUT=${OUT:-benchmarks}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name(0))"
$PY -m pytest -q --noconftest -o addopts="" tests/gpu 2>&1 | tee "$OUT/gpu_tests.txt"
$PY benchmarks/engine_speed.py --device cuda --presets paper,cpu-small --rounds 5 --sample-every 4 --skip-cold \
    --threads 4 2>&1 | tee "$OUT/engine_cuda.md"
