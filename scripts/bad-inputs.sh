#!/usr/bin/env bash
# Runs `terse train` on each bad input named by issue 2 and prints a Markdown table of what
# happened: exit status, seconds, and the error line. Usage: scripts/bad-inputs.sh [WORK_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
terse=$PWD/build/release/apps/terse/terse
work=${1:-out/bad-inputs}
rm -rf "$work" && mkdir -p "$work" && work=$(cd "$work" && pwd)
data=/usr/share/datasets/fashion-mnist
small=(--train-limit 2048 --test-limit 512 --threads 1 --quiet)

# Datasets with one bad file each.
mk() { mkdir -p "$work/$1" && cp $data/*.gz "$work/$1/"; }
mk truncated && head -c 20000 $data/train-images-idx3-ubyte.gz >"$work/truncated/train-images-idx3-ubyte.gz"
mk corrupt && python3 - "$work/corrupt/train-labels-idx1-ubyte.gz" <<'PY'
import gzip, sys
raw = bytearray(gzip.open(sys.argv[1]).read())
raw[3] = 0x03   # magic 0x00000801 -> 0x00000803: a label file that claims to be images
gzip.open(sys.argv[1], "wb").write(bytes(raw))
PY
mk badlabel && python3 - "$work/badlabel/t10k-labels-idx1-ubyte.gz" <<'PY'
import gzip, sys
raw = bytearray(gzip.open(sys.argv[1]).read())
raw[8 + 123] = 42   # a label outside 0..9
gzip.open(sys.argv[1], "wb").write(bytes(raw))
PY

# Checkpoints to resume from with the wrong model / rank count, and one to corrupt.
"$terse" train --np 2 --model mlp --epochs 1 "${small[@]}" --checkpoint-dir "$work/ck-mlp2" >/dev/null 2>&1
cp -r "$work/ck-mlp2" "$work/ck-flipped"
f=$(ls "$work"/ck-flipped/epoch-1/rank-0.ckpt)
printf '\x55' | dd of="$f" bs=1 seek=$(( $(stat -c %s "$f") / 2 )) conv=notrunc status=none

row() {  # row "what" expected-exit cmd...
  local what=$1; shift
  local t0=$(date +%s%N)
  "$@" >"$work/out.txt" 2>"$work/err.txt"
  local rc=$?
  local dt=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { print (b - a) / 1e9 }')
  local msg=$(grep -m1 -E "error|Error|rank [0-9]+ .*(exited|signal)|Process name|not expected|not in range" "$work/err.txt" "$work/out.txt" -h | cut -c1-400 | sed 's/|/\\|/g')
  printf '| %s | %s | %.1f | %s |\n' "$what" "$rc" "$dt" "$msg"
}
echo "| bad input | exit | s | message |"
echo "|---|---|---|---|"
row "unknown optimizer" "$terse" train --optimizer sgdd:lr=0.1
row "unknown option" "$terse" train --optimizer sgd:lr=0.1,momentun=0.9
row "out-of-range hyper-parameter" "$terse" train --optimizer adam:betas=0.9/1.5
row "negative learning rate" "$terse" train --optimizer sgd:lr=-1
row "nesterov without momentum" "$terse" train --optimizer sgd:lr=0.1,nesterov=true
row "bad lr schedule" "$terse" train --lr-schedule cosine:warmup=-5
row "unknown flag" "$terse" train --epoch 3
row "zero batch size" "$terse" train --batch-size 0
row "missing dataset" "$terse" train --data-dir /nonexistent
row "truncated IDX (gzip)" "$terse" train --np 1 --data-dir "$work/truncated" "${small[@]}"
row "corrupt IDX (wrong magic)" "$terse" train --np 1 --data-dir "$work/corrupt" "${small[@]}"
row "IDX label out of range" "$terse" train --np 1 --data-dir "$work/badlabel" "${small[@]}"
row "checkpoint of another model" "$terse" train --np 2 --model cnn --epochs 2 "${small[@]}" --checkpoint-dir "$work/ck-mlp2" --resume
row "checkpoint of another rank count" "$terse" train --np 4 --model mlp --epochs 2 "${small[@]}" --checkpoint-dir "$work/ck-mlp2" --resume
row "corrupt checkpoint (one byte)" "$terse" train --np 2 --model mlp --epochs 2 "${small[@]}" --checkpoint-dir "$work/ck-flipped" --resume
cp -r "$work/ck-mlp2" "$work/ck-nan"
row "NaN loss (lr=1e6)" "$terse" train --np 2 --model mlp --epochs 3 "${small[@]}" --optimizer sgd:lr=1e6,momentum=0.9 --checkpoint-dir "$work/ck-nan" --resume
echo "| (after the NaN stop) LATEST | - | - | $(cat "$work/ck-nan/LATEST"), still resumable: $("$terse" train --np 2 --model mlp --epochs 2 "${small[@]}" --checkpoint-dir "$work/ck-nan" --resume >/dev/null 2>&1 && echo yes || echo no) |"
row "a rank dies (SIGKILL, rank 1 of 4)" env TERSE_TEST_KILL_RANK=1 TERSE_TEST_KILL_STEP=3 "$terse" train --np 4 --epochs 1 "${small[@]}"
row "a rank hangs (rank 1 of 4, --timeout 5)" env TERSE_TEST_KILL_RANK=1 TERSE_TEST_KILL_STEP=3 TERSE_TEST_KILL_MODE=stall "$terse" train --np 4 --epochs 1 --timeout 5 "${small[@]}"
