#!/usr/bin/env bash
# Issue 6's training table: the Fashion-MNIST CNN on 4 ranks, one run per optimizer with its
# recommended hyper-parameters (docs/optimizers.md), same seed, data, schedule (cosine) and epochs.
# Each run writes OUT/NAME.out (the summary) and OUT/NAME.jsonl; scripts/optimizer-table.py turns
# them into the table of docs/results.md.
# Usage: [EPOCHS=5] [THREADS=0] [ONLY="adam adam8bit"] scripts/optimizer-table.sh OUT_DIR
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/optimizer-table.sh OUT_DIR}
terse=${TERSE:-build/release/apps/terse/terse}
[ -x "$terse" ] || { echo "build first: scripts/build.sh release" >&2; exit 1; }
mkdir -p "$out"
# name=spec (extra train flags after a '|')
runs=(
  "sgd=sgd:lr=0.1,momentum=0.9"
  "nesterov=sgd:lr=0.1,momentum=0.9,nesterov=true"
  "adam=adam:lr=0.001"
  "adamw=adamw:lr=0.001,weight_decay=0.01"
  "lion=lion:lr=0.0001,weight_decay=0.1"
  "adabelief=adabelief:lr=0.001,eps=1e-16"
  "sgd_sai=sgd_sai:lr=0.001"
  "adan=adan:lr=0.001,weight_decay=0.02"
  "exadam=exadam:lr=0.001"
  "diffgrad=diffgrad:lr=0.001"
  "spam=spam:lr=0.001"
  "adamp=adamp:lr=0.001"
  "sgdp=sgdp:lr=0.1,momentum=0.9,nesterov=true"
  "muon=muon:lr=0.02,adam_lr=0.001"
  "auon=auon:lr=0.02"
  "frugal=frugal:lr=0.001"
  "adam8bit=adam8bit:lr=0.001"
  "adamw8bit=adamw8bit:lr=0.001,weight_decay=0.01"
  "momentum8bit=momentum8bit:lr=0.1,momentum=0.9"
  "lion8bit=lion8bit:lr=0.0001,weight_decay=0.1"
  "lookahead_adam=lookahead:inner=adam,k=5,alpha=0.5,lr=0.001"
  "adam_ema=adam:lr=0.001|--ema decay=0.999"
)
for run in "${runs[@]}"; do
  name=${run%%=*}
  rest=${run#*=}
  spec=${rest%%|*}
  extra=""
  [[ $rest == *"|"* ]] && extra=${rest#*|}
  if [[ -n ${ONLY:-} && " $ONLY " != *" $name "* ]]; then continue; fi
  echo "== $name: --optimizer $spec $extra"
  # shellcheck disable=SC2086 # extra is a list of words
  /usr/bin/time -f "wall %e s" timeout -k 10 "${RUN_TIMEOUT:-900}" "$terse" train --np 4 \
    --model cnn --epochs "${EPOCHS:-5}" --threads "${THREADS:-0}" --optimizer "$spec" $extra \
    --metrics "$out/$name.jsonl" -q >"$out/$name.out" 2>"$out/$name.err" ||
    { echo "run $name failed:"; tail -3 "$out/$name.err"; continue; }
  grep -E "final test accuracy|optimizer state memory|wall time" "$out/$name.out"
done
