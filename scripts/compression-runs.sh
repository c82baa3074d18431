#!/usr/bin/env bash
# Issue 3's training acceptance: the Fashion-MNIST CNN on 8 ranks (oversubscribed is fine),
# dense SGD-M against DGC and every compressor with and without error feedback. Each run writes
# OUT/NAME.jsonl (metrics) and OUT/NAME.out (summary); scripts/compression-table.py turns them
# into the table of docs/results.md.
# Usage: [EXTRA="--batch-size 16"] scripts/compression-runs.sh OUT_DIR EPOCHS NAME=COMPRESS[@FEEDBACK] ...
#   the acceptance run of docs/results.md (about 30 min on 2 cores):
#   EXTRA="--batch-size 16" scripts/compression-runs.sh out/compression-b16-e10 10 dense=none \
#          dgc=dgc:density=0.001,values=f16,warmup=paper,warmup_steps=128
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
epochs=$2
shift 2
terse=${TERSE:-build/release/apps/terse/terse}
[ -x "$terse" ] || { echo "build first: scripts/build.sh release" >&2; exit 1; }
mkdir -p "$out"
for run in "$@"; do
  name=${run%%=*}
  spec=${run#*=}
  compress=${spec%@*}
  feedback=none
  [[ "$spec" == *@* ]] && feedback=${spec##*@}
  echo "== $name: --compress $compress --feedback $feedback"
  /usr/bin/time -f "wall %e s" "$terse" train --np 8 --model cnn \
    --optimizer sgd:lr=0.1,momentum=0.9 --epochs "$epochs" --compress "$compress" \
    --feedback "$feedback" ${EXTRA:-} --metrics "$out/$name.jsonl" -q >"$out/$name.out" 2>"$out/$name.err" ||
    { echo "run $name failed:"; tail -5 "$out/$name.err"; continue; }
  grep -E "final test accuracy|compression ratio" "$out/$name.out"
done
