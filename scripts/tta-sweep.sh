#!/usr/bin/env bash
# tta-sweep.sh OUT_DIR N "NAME|TERSE TRAIN ARGS" ...   Accuracy curves of several recipes at N
# ranks on an unshaped loopback, PAR (default 2) at a time: the tuning behind issue 5's
# time-to-accuracy runs. A curve does not depend on the link (only the clock does), so the
# recipes are chosen here, cheaply, and then timed on shaped links (scripts/slow-network-tta.sh).
# Every run: wide-mlp, Fashion-MNIST, batch 64 per rank, cosine lr, eval every EVAL_EVERY (26)
# steps; writes OUT_DIR/NAME.jsonl/.out/.err and prints final and best test accuracy.
# An argument @FILE stands for FILE's lines (blank lines and # comments skipped).
set -uo pipefail
(($# >= 3)) || { echo "usage: tta-sweep.sh OUT_DIR N \"NAME|ARGS\" ..." >&2; exit 2; }
out=$1 n=$2
shift 2
terse=$(readlink -f "${TERSE:-build/release/apps/terse/terse}")
[[ -x $terse ]] || { echo "tta-sweep.sh: no terse binary at $terse" >&2; exit 2; }
par=${PAR:-2}
threads=$(($(nproc) / (n * par)))
((threads >= 1)) || threads=1
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run_one() {
  local name=${1%%|*} args=${1#*|}
  local t0
  t0=$(date +%s)
  # shellcheck disable=SC2086 # args is a word list on purpose
  timeout -k 10 "${RUN_TIMEOUT:-600}" mpirun --bind-to none -n "$n" "$terse" train \
    --model wide-mlp --batch-size "${BATCH:-64}" --threads "$threads" \
    --eval-every "${EVAL_EVERY:-26}" --metrics "$out/$name.jsonl" -q $args \
    >"$out/$name.out" 2>"$out/$name.err" || { echo "$name FAILED: $(tail -2 "$out/$name.err")"; return; }
  python3 - "$out/$name.jsonl" "$name" "$(($(date +%s) - t0))" <<'PY'
import json, sys
path, name, secs = sys.argv[1], sys.argv[2], sys.argv[3]
recs = [json.loads(l) for l in open(path)]
ev = [r for r in recs if r.get("type") == "eval"]
best = max(ev, key=lambda r: r["test_accuracy"])
print(f"{name}: final {ev[-1]['test_accuracy']*100:.2f} % at step {ev[-1]['step']}, best "
      f"{best['test_accuracy']*100:.2f} % at step {best['step']}, {len(ev)} evals, {secs} s")
PY
}
specs=()
for a in "$@"; do
  if [[ $a == @* ]]; then
    while IFS= read -r line; do
      [[ -z $line || $line == \#* ]] || specs+=("$line")
    done <"${a#@}"
  else
    specs+=("$a")
  fi
done
running=0
for spec in "${specs[@]}"; do
  run_one "$spec" &
  running=$((running + 1))
  if ((running >= par)); then
    wait -n
    running=$((running - 1))
  fi
done
wait
