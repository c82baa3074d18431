#!/usr/bin/env bash
# The main job: install, build, then 4-rank data-parallel training of a CNN on Fashion-MNIST.
# Extra arguments are passed to `terse train` (e.g. --epochs 1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
mkdir -p out
exec build/release/apps/terse/terse train --np 4 --model cnn \
  --optimizer sgd:lr=0.1,momentum=0.9 --epochs 5 \
  --checkpoint-dir out/checkpoints --metrics out/metrics.jsonl "$@"
