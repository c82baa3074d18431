#!/usr/bin/env bash
# Issue 4's acceptance on the byte-level LM (docs/results.md "1-bit Adam"): 4 ranks, 3 epochs
# (1 092 steps), cosine lr. Runs Adam and 1-bit Adam with a 15 % warm-up (freeze_step 164)
# uninterrupted, then 1-bit Adam again killed with SIGKILL after its epoch-2 checkpoint (deep
# in the compression phase) and resumed; prints the table and checks that the resumed run's
# every step record equals the uninterrupted one's (timings aside).
# Usage: scripts/onebit-lm-acceptance.sh [OUT_DIR]   (about 15 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/onebit-lm}
terse=${TERSE:-build/release/apps/terse/terse}
[ -x "$terse" ] || { echo "build first: scripts/build.sh release (or set TERSE=path)" >&2; exit 1; }
rm -rf "$out" && mkdir -p "$out"
base=(train --np 4 --threads 1 --model lm --lr-schedule cosine --epochs 3)
adam=adam:lr=0.003
onebit=onebit_adam:lr=0.003,freeze_step=164,bias_correction=true

echo "== adam"
"$terse" "${base[@]}" --optimizer "$adam" --metrics "$out/adam.jsonl" >"$out/adam.out" 2>"$out/adam.err"
echo "== onebit (uninterrupted)"
"$terse" "${base[@]}" --optimizer "$onebit" --metrics "$out/onebit.jsonl" \
  --checkpoint-dir "$out/onebit-ckpt" >"$out/onebit.out" 2>"$out/onebit.err"
echo "== onebit, killed after the epoch-2 checkpoint, then --resume"
setsid "$terse" "${base[@]}" --optimizer "$onebit" --metrics "$out/resumed.jsonl" \
  --checkpoint-dir "$out/resumed-ckpt" >"$out/resumed1.out" 2>"$out/resumed1.err" &
pid=$!
until grep -qs "epoch-2" "$out/resumed-ckpt/LATEST"; do
  kill -0 $pid 2>/dev/null || { echo "the run ended before its epoch-2 checkpoint" >&2; exit 1; }
  sleep 0.2
done
kill -9 -- -$pid 2>/dev/null || true
wait $pid 2>/dev/null || true
"$terse" "${base[@]}" --optimizer "$onebit" --metrics "$out/resumed.jsonl" \
  --checkpoint-dir "$out/resumed-ckpt" --resume >"$out/resumed2.out" 2>"$out/resumed2.err"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def records(name):
    # A resumed run appends to its metrics file: the killed run's records after its last
    # checkpoint (and a line cut by the kill) come first, then the resumed run rewrites them.
    # Keep the last record of each (type, step), in step order.
    last = {}
    for line in open(f"{out}/{name}.jsonl"):
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        last[(r["step"], r["type"] == "epoch")] = r
    return [last[k] for k in sorted(last)]
timing = {"time_compute_s", "time_comm_s", "time_compress_s", "time_optim_s", "time_step_s",
          "train_time_s", "wall_s"}
def det(rs):
    return [{k: v for k, v in r.items() if k not in timing} for r in rs]
runs = {n: records(n) for n in ("adam", "onebit", "resumed")}
def summary(rs):
    steps = [r for r in rs if r["type"] == "step"]
    ep = [r for r in rs if r["type"] == "epoch"][-1]
    comp = [s for s in steps if s["payload_bytes"] < s["payload_dense_bytes"]]
    tot = lambda ss, k: sum(s[k] for s in ss)
    return dict(val=ep["val_loss"], ppl=ep["perplexity"], bpb=ep["bits_per_byte"],
                msg=tot(steps, "payload_dense_bytes") / tot(steps, "payload_bytes"),
                wire=tot(steps, "bytes_dense") / tot(steps, "bytes_sent"),
                msg_c=(tot(comp, "payload_dense_bytes") / tot(comp, "payload_bytes")) if comp else 1,
                wire_c=(tot(comp, "bytes_dense") / tot(comp, "bytes_sent")) if comp else 1,
                first=(comp[0]["step"] if comp else None), steps=len(steps),
                mib=tot(steps, "payload_bytes") / 2**20, wmib=tot(steps, "bytes_sent") / 2**20)
a, o = summary(runs["adam"]), summary(runs["onebit"])
print("| run | val loss (nats/byte) | Δ vs Adam | perplexity | bits/byte | message MiB/rank | volume ratio, whole run: message / wire | compression phase (from step): message / wire |")
print("|---|---|---|---|---|---|---|---|")
for name, s in (("Adam", a), ("1-bit Adam, freeze 164 (15 %)", o)):
    print(f"| {name} | {s['val']:.4f} | {100 * (s['val'] / a['val'] - 1):+.2f} % | {s['ppl']:.3f} | "
          f"{s['bpb']:.4f} | {s['mib']:.2f} | {s['msg']:.2f}× / {s['wire']:.2f}× | "
          f"{s['msg_c']:.2f}× / {s['wire_c']:.2f}× ({s['first']}) |")
same = det(runs["resumed"]) == det(runs["onebit"])
print(f"resumed run == uninterrupted run, every step and epoch record: {same} "
      f"({len(runs['resumed'])} records)")
ok = same and abs(o["val"] / a["val"] - 1) <= 0.02 and o["msg"] >= 5 and o["msg_c"] >= 16
sys.exit(0 if ok else 1)
PY
