#!/usr/bin/env bash
# Issue 2's acceptance runs, on the release build: the 4-rank Fashion-MNIST CNN run (A), the same
# run killed with SIGKILL right after its epoch-2 checkpoint and resumed (B), and a second
# uninterrupted run (C). Prints per-epoch accuracy and wall time, and checks that B's and C's
# final metrics equal A's. Usage: scripts/acceptance-foundation.sh [OUT_DIR] [extra train flags]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/acceptance}
shift || true
terse=build/release/apps/terse/terse
[ -x "$terse" ] || { echo "build first: scripts/build.sh release" >&2; exit 1; }
rm -rf "$out" && mkdir -p "$out"
cmd=(train --np 4 --model cnn --optimizer sgd:lr=0.1,momentum=0.9 "$@")
final() { grep '"type":"epoch"' "$1" | tail -1; }

echo "== A: $terse ${cmd[*]}"
/usr/bin/time -f "A wall %e s" "$terse" "${cmd[@]}" --checkpoint-dir "$out/a-ckpt" \
  --metrics "$out/a.jsonl" 2>"$out/a.err" | tee "$out/a.out"
tail -1 "$out/a.err"

echo "== B: the same, killed after the epoch-2 checkpoint, then --resume"
setsid "$terse" "${cmd[@]}" --checkpoint-dir "$out/b-ckpt" --metrics "$out/b.jsonl" \
  >"$out/b1.out" 2>"$out/b1.err" &
pid=$!
until grep -qs "epoch-2" "$out/b-ckpt/LATEST"; do
  kill -0 $pid 2>/dev/null || { echo "B ended before its epoch-2 checkpoint" >&2; exit 1; }
  sleep 0.2
done
kill -9 -- -$pid 2>/dev/null || true
wait $pid 2>/dev/null || true
echo "killed B with SIGKILL after LATEST=$(cat "$out/b-ckpt/LATEST")"
"$terse" "${cmd[@]}" --checkpoint-dir "$out/b-ckpt" --metrics "$out/b.jsonl" --resume \
  >"$out/b2.out" 2>"$out/b2.err"

echo "== C: a second uninterrupted run"
"$terse" "${cmd[@]}" --metrics "$out/c.jsonl" >"$out/c.out" 2>"$out/c.err"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def epochs(name):
    return [json.loads(l) for l in open(f"{out}/{name}.jsonl") if '"type":"epoch"' in l]
a, b, c = epochs("a"), epochs("b"), epochs("c")
print("| epoch | test accuracy | test loss | train loss | epoch wall s |")
print("|---|---|---|---|---|")
for e in a:
    print(f"| {e['epoch']} | {e['test_accuracy']:.4f} | {e['test_loss']:.4f} | {e['loss']:.4f} | {e['wall_s']:.1f} |")
keys = ("test_accuracy", "test_loss", "loss", "step")
fa, fb, fc = a[-1], b[-1], c[-1]
same_b = all(fa[k] == fb[k] for k in keys)
same_c = all(fa[k] == fc[k] for k in keys)
print(f"best test accuracy {max(e['test_accuracy'] for e in a):.4f}, final {fa['test_accuracy']:.4f}")
print(f"resumed run B final == A final: {same_b}  ({[fb[k] for k in keys]})")
print(f"second run C final == A final: {same_c}  ({[fc[k] for k in keys]})")
sys.exit(0 if same_b and same_c and max(e['test_accuracy'] for e in a) >= 0.90 else 1)
PY
