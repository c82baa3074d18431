#!/usr/bin/env bash
# Builds terse on the GPU machine against the libtorch inside its PyTorch (2.x), warnings as
# errors, and runs the whole CTest suite there. That machine has no package registry, so the
# header-only and test libraries it lacks (nlohmann-json, CLI11, GoogleTest, Google Benchmark,
# zlib) travel in an ignored .deps/ prefix copied from this machine's Debian packages, with the
# Fashion-MNIST files:  scripts/make-device-deps.sh  builds it.  WERROR=OFF collects every
# warning of a newer compiler in one run instead of stopping at the first file.
# TARGETS="a b": build only those (default: everything); CTEST_ARGS: passed to ctest (e.g.
# "-L parity" for the CUDA-against-CPU tests alone); BENCH=1: then the GPU benchmarks
# (cuda_optim_bench and torch's AdamW of the same sizes, scripts/torch_optim_cuda_bench.py;
# cuda_codec_bench for the compression kernels; cuda_dgc_bench and torch.topk of the same input,
# scripts/torch_topk_cuda_bench.py; cuda_dgc_exchange_bench for DGC's exchange in training;
# cuda_powersgd_bench for PowerSGD's GPU passes; cuda_muon_bench and torch's Muon,
# scripts/torch_muon_cuda_bench.py), their JSON in $OUT.
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
targets=()
# shellcheck disable=SC2206 # TARGETS is a list of words
[ -n "${TARGETS:-}" ] && targets=(--target ${TARGETS})
cmake --build build/device -j "$(nproc)" "${targets[@]}" -- -k 0 >"$out/build.log" 2>&1
status=$?
grep -E "error|warning:|FAILED" "$out/build.log" | head -40
[ $status -eq 0 ] || exit $status
echo "build: ok"
[ -x build/device/apps/terse/terse ] && build/device/apps/terse/terse info
# shellcheck disable=SC2086 # CTEST_ARGS is a list of words
ctest --test-dir build/device -j 8 --timeout 300 ${CTEST_ARGS:-} >"$out/ctest.log" 2>&1
status=$?
grep -E "tests passed|Failed|\*\*\*|Not Run|Timeout|Skipped" "$out/ctest.log" | head -40
if [ "${BENCH:-0}" = 1 ]; then
  nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv,noheader
  build/device/bench/cuda_optim_bench --json "$out/cuda_optim.json" || status=1
  build/device/bench/cuda_codec_bench --json "$out/cuda_codec.json" || status=1
  build/device/bench/cuda_dgc_bench --json "$out/cuda_dgc.json" || status=1
  build/device/bench/cuda_dgc_exchange_bench --json "$out/cuda_dgc_exchange.json" || status=1
  build/device/bench/cuda_powersgd_bench --json "$out/cuda_powersgd.json" || status=1
  build/device/bench/cuda_muon_bench --json "$out/cuda_muon.json" || status=1
  python3 scripts/torch_muon_cuda_bench.py >"$out/torch_muon.json" || status=1
  python3 scripts/torch_topk_cuda_bench.py >"$out/torch_topk.json" || status=1
  cat "$out/torch_topk.json"
  python3 scripts/torch_optim_cuda_bench.py >"$out/torch_adamw.json" || status=1
  cat "$out/torch_adamw.json"
fi
exit $status
