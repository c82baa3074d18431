#!/usr/bin/env bash
# Builds terse on the GPU machine against the libtorch inside its PyTorch (2.x), warnings as
# errors, and runs the whole CTest suite there. That machine has no package registry, so the
# header-only and test libraries it lacks (nlohmann-json, CLI11, GoogleTest, Google Benchmark,
# zlib) travel in an ignored .deps/ prefix copied from this machine's Debian packages, with the
# Fashion-MNIST files:  scripts/make-device-deps.sh  builds it.  WERROR=OFF collects every
# warning of a newer compiler in one run instead of stopping at the first file.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/terse-device}
mkdir -p "$out"
# shellcheck source=scripts/device-env.sh
. scripts/device-env.sh
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
g++ --version | head -1; nvcc --version | tail -1; mpirun --version | head -1
cmake -S . -B build/device "${TERSE_CMAKE_ARGS[@]}" -DTERSE_WERROR="${WERROR:-ON}" \
  >"$out/configure.log" 2>&1
status=$?
grep -E "terse:|Torch|Error" "$out/configure.log"
[ $status -eq 0 ] || { tail -30 "$out/configure.log"; exit $status; }
cmake --build build/device -j "$(nproc)" -- -k 0 >"$out/build.log" 2>&1
status=$?
grep -E "error|warning:|FAILED" "$out/build.log" | head -40
[ $status -eq 0 ] || exit $status
echo "build: ok"
build/device/apps/terse/terse info
ctest --test-dir build/device -j 8 --timeout 300 >"$out/ctest.log" 2>&1
status=$?
grep -E "tests passed|Failed|\*\*\*|Not Run|Timeout" "$out/ctest.log" | head -40
exit $status
