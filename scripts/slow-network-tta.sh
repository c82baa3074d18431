#!/usr/bin/env bash
# slow-network-tta.sh OUT_DIR N RATE METHOD ...   (root) Time-to-accuracy runs of issue 5:
# wide-mlp on Fashion-MNIST, batch 64 per rank, N ranks on RATE links (bench/shaped-net/run.sh),
# cosine lr, evaluation on the whole test set every 13 steps (--eval-every: its clock,
# train_time_s, counts training steps only). Dense SGD-M runs 2 epochs; DGC 3 epochs (it may
# take more steps and still arrive sooner), with the paper's warm-up over the first half epoch
# (at 8 ranks); 1-bit Adam's warm-up is 15 % of its 2 epochs.
# Writes OUT_DIR/N-RATE-METHOD.jsonl; scripts/slow-network-report.py reads them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
(($# >= 4)) || { echo "usage: slow-network-tta.sh OUT_DIR N RATE METHOD ..." >&2; exit 2; }
out=$1 n=$2 rate=$3
shift 3
terse=$(readlink -f "${TERSE:-build/release/apps/terse/terse}")
mkdir -p "$out"
threads=${THREADS:-$(($(nproc) / n))}
((threads >= 1)) || threads=1
batch=${BATCH:-64}
spe=$((60000 / (batch * n)))        # steps per epoch
warm=$((spe / 2))                   # DGC warm-up: half an epoch
freeze=$((2 * spe * 15 / 100))      # 1-bit Adam: 15 % of 2 epochs
sgd=sgd:lr=0.1,momentum=0.9
for m in "$@"; do
  case $m in
  dense) args=(--epochs 2 --optimizer "$sgd") ;;
  dgc) args=(--epochs 3 --optimizer "$sgd" --compress "dgc:density=0.001,warmup=paper,warmup_steps=$warm") ;;
  dgc-ar) args=(--epochs 3 --optimizer "$sgd" --compress "dgc:density=0.001,warmup=paper,warmup_steps=$warm,exchange=allreduce") ;;
  onebit) args=(--epochs 2 --optimizer "onebit_adam:lr=0.001,freeze_step=$freeze") ;;
  powersgd) args=(--epochs 2 --optimizer "$sgd" --compress "powersgd:rank=4,start=10") ;;
  ef21-topk) args=(--epochs 2 --optimizer "$sgd" --compress topk:density=0.01 --feedback ef21) ;;
  *) echo "unknown method $m" >&2; exit 2 ;;
  esac
  name=$n-$rate-$m
  t0=$(date +%s)
  timeout -k 10 "${RUN_TIMEOUT:-900}" "$here/../bench/shaped-net/run.sh" "$n" "$rate" -- \
    "$terse" train --model wide-mlp \
    --batch-size "$batch" --threads "$threads" --eval-every 13 --timeout 120 "${args[@]}" \
    --metrics "$out/$name.jsonl" -q >"$out/$name.out" 2>"$out/$name.err" ||
    { echo "$name FAILED"; tail -3 "$out/$name.err"; continue; }
  echo "$name: $(($(date +%s) - t0)) s, $(grep -E "final test accuracy" "$out/$name.out")"
done
