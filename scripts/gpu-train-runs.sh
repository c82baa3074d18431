#!/usr/bin/env bash
# The earlier issues' accuracy runs with --device cuda on one GPU (docs/results.md, "Training on
# one GPU"): the Fashion-MNIST CNN of the foundation (4 ranks, SGD-M, 5 epochs), DGC against
# dense at 8 ranks x batch 16 for 10 epochs, the byte-level LM with Adam (4 ranks, 3 epochs), the
# same LM with 1-bit Adam (onebit4, issue 4's run), the CNN with --ema (ema4), and one rank with
# the NCCL backend against the MPI one. Ranks share the one GPU through the mpi
# backend (NCCL takes one rank per GPU). Each run writes OUT/NAME.jsonl, .out and .err; the
# table of final metrics and mean step times goes to stdout and OUT/summary.json.
# The g-* runs are issue 8's matrix, one rank per GPU over NCCL (GPUS ranks, default 8): the CNN
# dense, with DGC and with PowerSGD, the LM with Adam, 1-bit Adam and PowerSGD; TRANSPORT=socket
# restricts NCCL to its socket transport (NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1), standing for a
# slow network between hosts. NCCL_NVLS_ENABLE=0 is always set.
# Usage: [TERSE=build/release/apps/terse/terse] [TEXT=path] [RUNS="cnn4 lm4 ..."]
#        [DEVICE=cuda] [SEEDS="0 1 2"] [PARALLEL=1] [GPUS=8] [TRANSPORT=nvlink|socket]
#        scripts/gpu-train-runs.sh OUT_DIR
# SEEDS runs each with --seed S as NAME.sS (one seed, 0, by default, named NAME).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${1:?usage: scripts/gpu-train-runs.sh OUT_DIR}
terse=${TERSE:-build/release/apps/terse/terse}
text=${TEXT:-/usr/share/doc/jargon-text/jargon.txt.gz}
device=${DEVICE:-cuda}
[ -x "$terse" ] || { echo "build first: scripts/build.sh release (or set TERSE=path)" >&2; exit 1; }
mkdir -p "$out"
sgd="sgd:lr=0.1,momentum=0.9"
dgc="dgc:density=0.001,values=f16,warmup=paper,warmup_steps=128"
onebit="onebit_adam:lr=0.003,freeze_step=164,bias_correction=true"
gpus=${GPUS:-8}
nccl="--np $gpus --backend nccl"
lm="--model lm --text $text --lr-schedule cosine --epochs 3"
export NCCL_NVLS_ENABLE=0
case ${TRANSPORT:-nvlink} in
  nvlink) ;;
  socket) export NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 ;;
  *) echo "TRANSPORT must be nvlink or socket, got ${TRANSPORT}" >&2; exit 2 ;;
esac
declare -A args=(
  [cnn4]="--np 4 --model cnn --optimizer $sgd"
  [dense8]="--np 8 --model cnn --optimizer $sgd --epochs 10 --batch-size 16"
  [dgc8]="--np 8 --model cnn --optimizer $sgd --epochs 10 --batch-size 16 --compress $dgc"
  [lm4]="--np 4 --model lm --text $text --lr-schedule cosine --epochs 3 --optimizer adam:lr=0.003"
  [onebit4]="--np 4 --model lm --text $text --lr-schedule cosine --epochs 3 --optimizer $onebit"
  [ema4]="--np 4 --model cnn --optimizer $sgd --ema decay=0.999"
  [nccl1]="--np 1 --model cnn --optimizer $sgd --batch-size 256 --backend nccl"
  [mpi1]="--np 1 --model cnn --optimizer $sgd --batch-size 256 --backend mpi"
  [g-cnn-dense]="$nccl --model cnn --optimizer $sgd"
  [g-cnn-dgc]="$nccl --model cnn --optimizer $sgd --compress $dgc"
  [g-cnn-powersgd]="$nccl --model cnn --optimizer $sgd --compress powersgd:rank=4,start=100"
  [g-lm-adam]="$nccl $lm --optimizer adam:lr=0.003"
  [g-lm-onebit]="$nccl $lm --optimizer $onebit"
  [g-lm-powersgd]="$nccl $lm --optimizer adam:lr=0.003 --compress powersgd:rank=4,start=100"
)
runs=${RUNS:-"cnn4 lm4 dgc8 dense8 nccl1 mpi1"}
seeds=${SEEDS:-}
one() {
  local name=$1 seed=$2 tag=$1
  [ -n "$seeds" ] && tag=$name.s$seed
  # shellcheck disable=SC2086 # the flags are lists of words
  /usr/bin/time -f "wall %e s" "$terse" train --device "$device" --threads 1 ${args[$name]} \
    --seed "$seed" --metrics "$out/$tag.jsonl" >"$out/$tag.out" 2>"$out/$tag.err" ||
    { echo "run $tag failed:"; tail -n 5 "$out/$tag.err"; }
}
# PARALLEL=1 runs them at once (accuracy only: their step times then share the machine).
names=()
for name in $runs; do
  [ -n "${args[$name]:-}" ] || { echo "unknown run $name; known: ${!args[*]}" >&2; exit 2; }
done
for name in $runs; do
  for seed in ${seeds:-0}; do
    if [ "${PARALLEL:-0}" = 1 ]; then one "$name" "$seed" & else one "$name" "$seed"; fi
    if [ -n "$seeds" ]; then names+=("$name.s$seed"); else names+=("$name"); fi
  done
done
wait
python3 - "$out" "${names[@]}" <<'PY'
import json, sys, statistics
out, runs = sys.argv[1], sys.argv[2:]
rows = {}
for name in runs:
    try:
        recs = [json.loads(l) for l in open(f"{out}/{name}.jsonl")]
    except OSError:
        continue
    steps = [r for r in recs if r["type"] == "step"]
    epochs = [r for r in recs if r["type"] == "epoch"]
    if not epochs:
        continue
    last = epochs[-1]
    tail = steps[len(steps) // 10:]  # without the first tenth (start-up, warm-up)
    row = {"epochs": len(epochs), "steps": len(steps),
           "test_accuracy": last["test_accuracy"], "test_loss": last["test_loss"],
           "per_epoch_accuracy": [round(e["test_accuracy"], 4) for e in epochs],
           "compression_ratio": last["compression_ratio"],
           "step_ms_median": 1e3 * statistics.median(s["time_step_s"] for s in tail),
           "compute_ms_median": 1e3 * statistics.median(s["time_compute_s"] for s in tail),
           "comm_ms_median": 1e3 * statistics.median(s["time_comm_s"] for s in tail),
           "compress_ms_median": 1e3 * statistics.median(s["time_compress_s"] for s in tail),
           "optim_ms_median": 1e3 * statistics.median(s["time_optim_s"] for s in tail),
           "bytes_sent_per_step_median": statistics.median(s["bytes_sent"] for s in tail),
           "train_time_s": last["train_time_s"]}
    if "val_loss" in last:
        row["val_loss"] = last["val_loss"]
    if "ema_test_accuracy" in last:
        row["ema_test_accuracy"] = last["ema_test_accuracy"]
    rows[name] = row
    print(name, json.dumps(row))
json.dump(rows, open(f"{out}/summary.json", "w"), indent=1)
PY
