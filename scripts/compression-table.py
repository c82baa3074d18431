#!/usr/bin/env python3
"""Summarises scripts/compression-runs.sh output: final test accuracy, compression ratio over the
whole run and after warm-up (steps whose message is within 10% of the last step's), bits per
gradient element, wall time. Usage: compression-table.py OUT_DIR [BASELINE_NAME]"""
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])
base_name = sys.argv[2] if len(sys.argv) > 2 else "dense"
rows = {}
for path in sorted(out.glob("*.jsonl")):
    steps = [json.loads(l) for l in path.read_text().splitlines() if '"type":"step"' in l]
    epochs = [json.loads(l) for l in path.read_text().splitlines() if '"type":"epoch"' in l]
    if not steps or not epochs:
        continue
    payload = sum(s["payload_bytes"] for s in steps)
    dense = sum(s["payload_dense_bytes"] for s in steps)
    last = steps[-1]["payload_bytes"]
    steady = [s for s in steps if s["payload_bytes"] <= 1.1 * last]
    first_steady = next(i for i, s in enumerate(steps) if all(
        t["payload_bytes"] <= 1.1 * last for t in steps[i:]))
    after = steps[first_steady:]
    ratio_after = sum(s["payload_dense_bytes"] for s in after) / sum(s["payload_bytes"] for s in after)
    wall = sum(e["wall_s"] for e in epochs)
    numel = steps[0]["payload_dense_bytes"] / 4
    rows[path.stem] = dict(acc=epochs[-1]["test_accuracy"], ratio=dense / payload,
                           ratio_after=ratio_after, warm=first_steady,
                           bits=8 * payload / (numel * len(steps)), wall=wall,
                           accs=[e["test_accuracy"] for e in epochs])
failed = {}
for err in sorted(out.glob("*.err")):
    if err.stem in rows:
        continue
    lines = [l for l in err.read_text().splitlines() if "terse: error" in l]
    failed[err.stem] = lines[0].split("error: ", 1)[1][:110] if lines else "failed"
base = rows.get(base_name)
print("| run | final test accuracy | Δ vs %s (pp) | ratio (whole run) | ratio after warm-up "
      "(from step) | bits / gradient element | wall |" % base_name)
print("|---|---|---|---|---|---|---|")
for name, r in rows.items():
    delta = "%+.2f" % (100 * (r["acc"] - base["acc"])) if base else "n/a"
    print("| %s | %.4f | %s | %.1f× | %.1f× (%d) | %.4f | %.0f s |" % (
        name, r["acc"], delta, r["ratio"], r["ratio_after"], r["warm"] + 1, r["bits"], r["wall"]))
for name, why in failed.items():
    print("| %s | diverged: %s | | | | | |" % (name, why.replace("|", "/")))
print()
for name, r in rows.items():
    print("%s per-epoch accuracy: %s" % (name, " ".join("%.4f" % a for a in r["accs"])))
