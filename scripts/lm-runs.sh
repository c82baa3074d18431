#!/usr/bin/env bash
# The byte-level language model ("lm", docs/training.md) on the Jargon File, 4 ranks on one
# machine (oversubscribed is fine, 1 thread each), one run per optimizer, so Adam and 1-bit Adam
# can be compared on the same text. Each run writes OUT/NAME.jsonl (metrics), OUT/NAME.out (the
# summary) and OUT/NAME.err (progress).
# Usage: [EPOCHS=3] [EXTRA="--batch-size 16"] scripts/lm-runs.sh OUT_DIR NAME=OPTIMIZER_SPEC ...
#   e.g. scripts/lm-runs.sh out/lm adam=adam:lr=0.003   (docs/training.md: 4 min 47 s on the
#   shared 2-core machine, validation 1.924 nats/byte)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/lm-runs.sh OUT_DIR NAME=OPTIMIZER_SPEC ...}
shift
[ $# -ge 1 ] || { echo "usage: scripts/lm-runs.sh OUT_DIR NAME=OPTIMIZER_SPEC ..." >&2; exit 2; }
epochs=${EPOCHS:-3}
terse=${TERSE:-build/release/apps/terse/terse}
[ -x "$terse" ] || { echo "build first: scripts/build.sh release (or set TERSE=path)" >&2; exit 1; }
mkdir -p "$out"
for run in "$@"; do
  name=${run%%=*}
  optimizer=${run#*=}
  echo "== $name: --optimizer $optimizer"
  # shellcheck disable=SC2086 # EXTRA is a list of flags
  /usr/bin/time -f "wall %e s" "$terse" train --np 4 --threads 1 --model lm \
    --optimizer "$optimizer" --lr-schedule cosine --epochs "$epochs" ${EXTRA:-} \
    --metrics "$out/$name.jsonl" >"$out/$name.out" 2>"$out/$name.err" ||
    { echo "run $name failed:"; tail -5 "$out/$name.err"; continue; }
  grep -E "final validation loss|perplexity|bits per byte|wall time" "$out/$name.out"
done
