#!/usr/bin/env python3
"""Step-time table of issue 5's shaped-link matrix (bench/shaped-net/matrix.sh).

usage: matrix-report.py DIR...   (later DIRs override earlier runs of the same N-RATE-METHOD)
Medians over the measured steps (the first SKIP=5 are warm-up). comm includes the wait for the
slowest rank (time_wait_s, where recorded); transfer = comm - wait. "vs dense" divides the dense
run's comm (same N and rate) by the method's comm, and by its transfer.
"""
import json
import statistics
import sys
from pathlib import Path

SKIP = 5
ORDER = ["dense", "dgc", "dgc-ar", "dgc-arf", "onebit", "powersgd", "ef21-topk"]
RATES = {"100mbit": 0, "1gbit": 1, "10gbit": 2}


def main(dirs):
    runs = {}
    for d in dirs:
        for p in sorted(Path(d).glob("*.jsonl")):
            steps = [json.loads(l) for l in open(p) if '"type":"step"' in l][SKIP:]
            if steps:
                runs[p.stem] = (steps, d)
    print("| ranks | link | method | step ms | compute | compress | comm | wait | transfer | "
          "comm vs dense | transfer vs dense | sent/rank | source |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    key = lambda name: (-int(name.split("-")[0]), RATES[name.split("-")[1]],
                        ORDER.index(name.split("-", 2)[2]))
    for name in sorted(runs, key=key):
        n, rate, m = name.split("-", 2)
        steps, src = runs[name]
        med = lambda f: statistics.median(f(s) for s in steps) * 1e3
        has_wait = "time_wait_s" in steps[0]
        comm = med(lambda s: s["time_comm_s"])
        wait = med(lambda s: s.get("time_wait_s", 0.0))
        transfer = med(lambda s: s["time_comm_s"] - s.get("time_wait_s", 0.0))
        dense = runs.get(f"{n}-{rate}-dense")
        vs = vt = ""
        if dense and m != "dense":
            dc = statistics.median(s["time_comm_s"] for s in dense[0]) * 1e3
            vs = f"{dc / comm:.1f}×"
            vt = f"{dc / transfer:.1f}×" if has_wait else ""
        sent = statistics.median(s["bytes_sent"] for s in steps) / 1e6
        print(f"| {n} | {rate} | {m} | {med(lambda s: s['time_step_s']):.1f} | "
              f"{med(lambda s: s['time_compute_s']):.1f} | {med(lambda s: s['time_compress_s']):.1f} | "
              f"{comm:.1f} | {f'{wait:.1f}' if has_wait else '–'} | "
              f"{f'{transfer:.1f}' if has_wait else '–'} | {vs} | {vt} | {sent:.3f} MB | "
              f"{Path(src).name} |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
