#!/usr/bin/env bash
# The checks that need a GPU, in one go (about 6 minutes on one H100/H200):
#   1. the CUDA tests (fake quantization on the GPU, fp16 AMP, training runs eager and
#      compiled, torchrun with NCCL) and the CPU quantizer tests on this machine's torch;
#   2. the full-size GaitBase (channels 64/128/256/512, 64x44, CASIA-B batch of 8 x 16
#      sequences x 30 frames) step-time benchmark: fp32 eager, then fp16 AMP eager and compiled.
# Logs go to $OUT (default ./gpu-check).  Usage: bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
status=0
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee "$OUT/env.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >> "$OUT/env.txt" 2>&1
$PY -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_quant_functional.py \
    tests/test_quantizers.py tests/test_quant_kernels.py 2>&1 | tee "$OUT/pytest.txt" || status=1
FULL=(--device cuda --channels 64 128 256 512 --sizes 64x44 --frames 3840 --seq-len 30 --classes 74)
# The detach-trick reference peaks at 87 GiB in fp32: only on cards with more than 100 GiB.
EXTRA=$($PY -c "import torch; print('lsq-detach' if torch.cuda.get_device_properties(0).total_memory > 100 * 2**30 else '')")
$PY benchmarks/bench_quant.py "${FULL[@]}" --no-compile --reps 10 --variants fp32 lsq-ste lsq-soft lsq-ste-fused lsq-soft-fused $EXTRA \
    2>&1 | tee "$OUT/bench_fp32_eager.txt" || status=1
timeout "${COMPILE_TIMEOUT:-300}" $PY benchmarks/bench_quant.py "${FULL[@]}" --amp --reps 10 \
    --variants fp32 lsq-ste lsq-soft lsq-ste-fused lsq-soft-fused 2>&1 | tee "$OUT/bench_amp.txt" || status=1
exit $status
