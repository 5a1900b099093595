#!/usr/bin/env bash
# The prepared GPU check (issue 15), at most ~8 minutes on one H200/H100 with 16 cores. Run on the lent machine from
# the repository root with the wheels of bench/gpu_wheels.sh carried in .whl:
#   device run: bash bench/gpu.sh            (carry: [".whl"], timeout_s 560)
# Prints, in order: the base-size bf16 step (clips/s, MFU against 790 TFLOP/s, peak memory), the largest batch with
# and without activation checkpointing, the GPU decoder's clips/s against one CPU core, and the loader's clips/s on
# this machine's cores against the step. Everything is also written under $OUT (or /tmp/clover_gpu) as logs.
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=${OUT:-/tmp/clover_gpu}
mkdir -p "$LOGS"
PY=${PY:-python3}
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src:$PWD/bench${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$LOGS/device.txt"
nproc | tee -a "$LOGS/device.txt"
step() {  # name, seconds, command...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s)"
  timeout -k 5 "$limit" "$@" 2>&1 | tee "$LOGS/$name.log" || echo "== $name: stopped or failed (rc $?)"
}
# 1. Base-size bf16 step: the rows without compilation (compiling the base encoders would eat the budget).
step levers 150 $PY bench/levers.py --device cuda --preset base --frames 8 --size 224 --batch 32 --steps 5 \
  --warmup 2 --variants "fp32 eager (baseline)" "+ bf16 autocast" "+ SDPA kernels" "+ fused AdamW"
# 2. Largest batch per GPU, with and without activation checkpointing.
step max_batch 150 $PY bench/max_batch.py --limit 512
# 3. GPU decoder (torchcodec CUDA) against PyAV on one core, sources as served and after the preset.
step gpu_decode 90 $PY bench/gpu_decode.py --seconds 8
# 4. Loader against the step on this machine's cores: lean path on preset clips, 8 and 16 workers.
step loader 90 $PY bench/loader.py --sources b --paths lean --workers 8 16 --rounds 1 --samples 512 --shards 16 \
  --batch 32
