#!/usr/bin/env bash
# Builds ef21_logreg, runs the EF21 / EF21-W logistic-regression experiment and plots it
# (docs/ef21.md). Usage: scripts/ef21-experiment.sh [extra ef21_logreg flags]
#   BUILD_DIR (default build/ef21), RESULTS_DIR (default $BUILD_DIR/ef21-results),
#   IMG_DIR (default docs/img). Needs python3-matplotlib (Debian) for the plots; PYTHON overrides the interpreter.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build/ef21}"
RESULTS_DIR="${RESULTS_DIR:-$BUILD_DIR/ef21-results}"
IMG_DIR="${IMG_DIR:-$ROOT/docs/img}"
# Debian's python3-matplotlib lives under /usr/bin/python3 (a pyenv python3 may shadow it).
PYTHON="${PYTHON:-/usr/bin/python3}"

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DTERSE_WERROR=ON -DTERSE_TORCH=OFF -DTERSE_CUDA=OFF
fi
cmake --build "$BUILD_DIR" -j2 --target ef21_logreg
mkdir -p "$RESULTS_DIR"
"$BUILD_DIR/bench/ef21_logreg" --out "$RESULTS_DIR" "$@" | tee "$RESULTS_DIR/log.txt"
"$PYTHON" "$ROOT/scripts/plot-ef21.py" "$RESULTS_DIR" "$IMG_DIR"
