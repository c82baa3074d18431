#!/usr/bin/env bash
# Issue 5's measurements on a many-core machine (the GPU machine's 16 cores: 8 ranks x 2
# threads without oversubscription), as root. Builds terse (Release, no tests) against the
# libtorch of the local PyTorch, then runs each PART given, writing under $OUT (default
# out/slow-network):
#   matrix:N[:RATE]  bench/shaped-net/matrix.sh at N ranks (default 100mbit 1gbit 10gbit)
#   tta:N[:METHOD]   time-to-accuracy runs at N ranks on 1gbit (scripts/slow-network-tta.sh)
#   coll:N[:RATE]    collectives_bench at N ranks (default: each rate)
# PowerSGD is left out by default: its 8-rank runs on shaped links hung (docs/results.md).
# The GPU machine has no ip/tc: Debian's iproute2 travels in .deps/iproute2 (wrappers that use
# their own loader), the Fashion-MNIST files in .deps/datasets (scripts/make-device-deps.sh).
# EXTRA_TARGETS: more targets to build (e.g. one_bit_all_reduce_bench optim_bench).
# Usage: scripts/slow-network-device.sh matrix:8 tta:8 ...   (TAR_TO=DIR: also archive $OUT into
# DIR/slow-network.tgz after each part; DIR must lie outside $OUT. Through the device tool:
# `OUT=/tmp/sn TAR_TO="$DEVICE_OUT" ...` with DEVICE_OUT=$OUT saved first, since a prefix
# assignment OUT=... is already visible to TAR_TO=$OUT in the same command)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-out/slow-network}
mkdir -p "$out"
[ -d .deps/iproute2/bin ] && export PATH=$PWD/.deps/iproute2/bin:$PATH
# shellcheck source=scripts/device-env.sh
. scripts/device-env.sh
t0=$(date +%s)
cmake -S . -B build/release "${TERSE_CMAKE_ARGS[@]}" -DTERSE_BUILD_TESTS=OFF >"$out/configure.log" 2>&1 ||
  { tail -20 "$out/configure.log"; exit 1; }
targets=(terse)
[ -f bench/collectives.cmake ] && targets+=(collectives_bench)
# shellcheck disable=SC2206 # EXTRA_TARGETS is a list of words
targets+=(${EXTRA_TARGETS:-})
cmake --build build/release -j "$(nproc)" --target "${targets[@]}" >"$out/build.log" 2>&1 ||
  { grep -E "error|FAILED" "$out/build.log" | head -20; exit 1; }
echo "build: $(($(date +%s) - t0)) s"
terse=$PWD/build/release/apps/terse/terse
nproc; lscpu | grep -E "Model name" || true
for part in "$@"; do
  IFS=: read -r kind n what <<<"$part"
  t0=$(date +%s)
  case $kind in
  matrix) # matrix:N[:RATE]
    # shellcheck disable=SC2086 # METHODS is a list of words
    TERSE=$terse bench/shaped-net/matrix.sh "$out/matrix" "$n" "${what:-100mbit 1gbit 10gbit}" \
      ${METHODS:-dense dgc dgc-ar dgc-arf onebit ef21-topk}
    ;;
  tta) # tta:N[:METHOD]
    # shellcheck disable=SC2086 # a list of words
    TERSE=$terse scripts/slow-network-tta.sh "$out/tta" "$n" "${TTA_RATE:-1gbit}" \
      ${what:-dense dgc dgc-ar onebit ef21-topk}
    ;;
  coll) # coll:N[:RATE]
    for rate in ${what:-100mbit 1gbit 10gbit}; do
      dense=256,64k,1M,4M
      [[ $rate == 100mbit ]] && dense=256,64k,1M
      timeout -k 10 "${COLL_TIMEOUT:-300}" bench/shaped-net/run.sh "$n" "$rate" -- \
        "$PWD/build/release/bench/collectives_bench" --numel 5800000 --densities 0.001,0.01 \
        --dense "$dense" --reps "${REPS:-5}" --threads "$(($(nproc) / n > 0 ? $(nproc) / n : 1))" --json "$out/coll-$n-$rate.json" \
        >"$out/coll-$n-$rate.out" 2>&1 || { echo "coll $n $rate FAILED"; tail -5 "$out/coll-$n-$rate.out"; }
      grep -v "setpgid" "$out/coll-$n-$rate.out"
    done
    ;;
  *) echo "unknown part '$part'; use matrix:N[:RATE], tta:N[:METHOD] or coll:N[:RATE]" >&2 ;;
  esac
  echo "$part: $(($(date +%s) - t0)) s"
  # The device tool brings back a few files only: one archive, refreshed after every part.
  if [ -n "${TAR_TO:-}" ]; then
    case $(readlink -f "$TAR_TO")/ in
    "$(readlink -f "$out")"/*) echo "TAR_TO ($TAR_TO) lies inside OUT ($out); not archived" >&2 ;;
    *) tar czf "$TAR_TO/slow-network.tgz" -C "$out" . ;;
    esac
  fi
done
