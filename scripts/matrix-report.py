#!/usr/bin/env python3
"""Step-time table of issue 5's shaped-link matrix (bench/shaped-net/matrix.sh).

usage: matrix-report.py DIR...   (later DIRs override earlier runs of the same N-RATE-METHOD)
Medians over the measured steps (the first SKIP=5 are warm-up). comm includes the wait for the
slowest rank (time_wait_s, where recorded); transfer = comm - wait. "vs dense" divides the dense
run's comm (same N and rate) by the method's comm, and by its transfer.
Runs made with --metrics-every-rank (N-RATE-METHOD.rank<r>.jsonl beside rank 0's file) add
"all ranks": the mean over ranks of each rank's median comm (rank 0's wait is one sample of how
late the slowest rank was; the mean over ranks is the job's), that against the same mean of the
dense run, and "jitter": the median over steps of (slowest rank's local work - the median rank's),
local work = compute + compress + optim.
"""
import json
import statistics
import sys
from pathlib import Path

SKIP = 5
ORDER = ["dense", "dgc", "dgc-ar", "dgc-arf", "onebit", "onebit-overlap", "onebit-serial",
         "powersgd", "ef21-topk"]
RATES = {"100mbit": 0, "1gbit": 1, "10gbit": 2}


def ranks_of(path):
    """Every rank's measured steps: rank 0's file, then N-RATE-METHOD.rank<r>.jsonl in order."""
    out = [path]
    r = 1
    while (q := path.with_name(f"{path.stem}.rank{r}{path.suffix}")).exists():
        out.append(q)
        r += 1
    return [[json.loads(l) for l in open(q) if '"type":"step"' in l][SKIP:] for q in out]


def mean_comm(ranks):
    if len(ranks) < 2:
        return None
    return statistics.mean(statistics.median(s["time_comm_s"] for s in r) for r in ranks) * 1e3


def jitter(ranks):
    work = lambda s: s["time_compute_s"] + s["time_compress_s"] + s["time_optim_s"]
    steps = min(len(r) for r in ranks)
    per_step = []
    for i in range(steps):
        w = [work(r[i]) for r in ranks]
        per_step.append(max(w) - statistics.median(w))
    return statistics.median(per_step) * 1e3


def main(dirs):
    runs = {}
    for d in dirs:
        for p in sorted(Path(d).glob("*.jsonl")):
            if ".rank" in p.stem:
                continue
            steps = [json.loads(l) for l in open(p) if '"type":"step"' in l][SKIP:]
            if steps:
                runs[p.stem] = (steps, d, ranks_of(p))
    print("| ranks | link | method | step ms | compute | compress | comm | wait | transfer | "
          "comm vs dense | transfer vs dense | comm, all ranks | vs dense, all ranks | jitter | "
          "sent/rank | source |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    key = lambda name: (-int(name.split("-")[0]), RATES[name.split("-")[1]],
                        ORDER.index(name.split("-", 2)[2]))
    for name in sorted(runs, key=key):
        n, rate, m = name.split("-", 2)
        steps, src, ranks = runs[name]
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
        all_comm = mean_comm(ranks)
        va = ""
        if dense and m != "dense" and all_comm and dense[2]:
            va = f"{mean_comm(dense[2]) / all_comm:.1f}×"
        sent = statistics.median(s["bytes_sent"] for s in steps) / 1e6
        print(f"| {n} | {rate} | {m} | {med(lambda s: s['time_step_s']):.1f} | "
              f"{med(lambda s: s['time_compute_s']):.1f} | {med(lambda s: s['time_compress_s']):.1f} | "
              f"{comm:.1f} | {f'{wait:.1f}' if has_wait else '–'} | "
              f"{f'{transfer:.1f}' if has_wait else '–'} | {vs} | {vt} | "
              f"{f'{all_comm:.1f}' if all_comm else ''} | {va} | "
              f"{f'{jitter(ranks):.1f}' if len(ranks) > 1 else ''} | {sent:.3f} MB | "
              f"{Path(src).name} |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
