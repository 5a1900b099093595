#!/usr/bin/env bash
# Wheels that the lent GPU machine lacks (its image has Python 3.12, torch, lightning, transformers, but no PyAV,
# torchdata, webdataset, lemminflect or torchcodec, and no network): download them here into .whl/ (git-ignored),
# then carry .whl to the device with bench/gpu.sh. About 50 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
mkdir -p .whl
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for package in av==18.1.0 torchdata==0.11.0 webdataset==1.0.2 braceexpand==0.1.7 lemminflect==0.2.3 \
  "torchcodec==${TORCHCODEC:-0.11.0}"; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "$package" || echo "no wheel for $package (the script goes on without it)"
done
ls -la .whl
