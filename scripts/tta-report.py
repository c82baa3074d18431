#!/usr/bin/env python3
"""Time-to-accuracy table and plot of issue 5's shaped-link runs (scripts/slow-network-tta.sh).

usage: tta-report.py DIR [DIR...] [--plot PNG] [--slack PP] [--target PCT]
Each DIR holds N-RATE-METHOD.jsonl files (one rank count and rate; a method in two folders: the
later folder's run). The target is the dense run's final test accuracy, or PCT (--target: the
final accuracy of a dense run with the same trajectory on another link, for a dense run stopped
once it passed the lower target; the comparison with its own final then reads "not run"); a
method "reaches" it at the first evaluation within SLACK percentage points (default 0.3) of it.
Times are train_time_s (training steps only, evaluations excluded). Speed-up: the dense run's
time to its own final accuracy over the method's time to the target minus the slack; also
against the dense run's own time to that lower target (the stricter, same-target comparison).
Step columns are medians over all steps of the run.
"""
import json
import statistics
import sys
from pathlib import Path


def load(path):
    recs = [json.loads(line) for line in open(path)]
    evals = [r for r in recs if r.get("type") == "eval"]
    steps = [r for r in recs if r.get("type") == "step"]
    return evals, steps


def first_time(evals, acc):
    for e in evals:
        if e["test_accuracy"] >= acc - 1e-12:
            return e["train_time_s"], e["step"]
    return None, None


def main(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    plot = argv[argv.index("--plot") + 1] if "--plot" in argv else None
    slack = float(argv[argv.index("--slack") + 1]) / 100 if "--slack" in argv else 0.003
    given = float(argv[argv.index("--target") + 1]) / 100 if "--target" in argv else None
    roots, skip = [], False
    for a in argv:
        if skip or a in ("--plot", "--slack", "--target"):
            skip = not skip
            continue
        roots.append(Path(a))
    runs, dense_path = {}, None
    for root in roots:
        for p in sorted(root.glob("*.jsonl")):
            evals, steps = load(p)
            if evals and steps:
                runs[p.stem.split("-", 2)[2]] = (evals, steps)
                if p.stem.endswith("-dense"):
                    dense_path = p
    if "dense" not in runs:
        print(f"tta-report: no dense run in {' '.join(map(str, roots))}", file=sys.stderr)
        return 2
    d_evals, _ = runs["dense"]
    target = d_evals[-1]["test_accuracy"] if given is None else given
    d_full, _ = first_time(d_evals, target)
    d_low, _ = first_time(d_evals, target - slack)
    if d_low is None:
        print(f"tta-report: the dense run never reaches {(target - slack) * 100:.2f} %",
              file=sys.stderr)
        return 2
    full = f"{d_full:.1f} s" if d_full is not None else "not run (stopped before)"
    print(f"target: dense final {target*100:.2f} %{' (given)' if given is not None else ''}; "
          f"within {slack*100:.1f} pp: >= {(target-slack)*100:.2f} %; dense reaches its final "
          f"at {full}, the lower target at {d_low:.1f} s\n")
    print("| method | steps | final acc. | train time | reaches target−0.3 pp at | "
          "× sooner than dense (its final / same target) | step ms | compute | compress | "
          "comm (wait) | message ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    order = ["dense", "dgc", "dgc-ar", "onebit", "powersgd", "ef21-topk", "ef21-topk-lr05"]
    for m in sorted(runs, key=lambda k: order.index(k) if k in order else 99):
        evals, steps = runs[m]
        med = lambda k: statistics.median(s.get(k, 0.0) for s in steps) * 1e3
        t, st = first_time(evals, target - slack)
        wait = f"{med('time_wait_s'):.1f}" if "time_wait_s" in steps[0] else "not recorded"
        ratio = sum(s["payload_dense_bytes"] for s in steps) / sum(s["payload_bytes"] for s in steps)
        reach = f"{t:.1f} s (step {st})" if t is not None else "never"
        own = f"{d_full / t:.1f}×" if d_full is not None and t else "not run"
        sooner = f"{own} / {d_low / t:.1f}×" if t else "–"
        print(f"| {m} | {len(steps)} | {evals[-1]['test_accuracy']*100:.2f} % | "
              f"{evals[-1]['train_time_s']:.1f} s | {reach} | {sooner} | {med('time_step_s'):.1f} | "
              f"{med('time_compute_s'):.1f} | {med('time_compress_s'):.1f} | "
              f"{med('time_comm_s'):.1f} ({wait}) | {ratio:.0f}× |")
    if plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 5))
        for m in sorted(runs, key=lambda k: order.index(k) if k in order else 99):
            evals, _ = runs[m]
            ax.plot([e["train_time_s"] for e in evals], [e["test_accuracy"] * 100 for e in evals],
                    label=m, marker=".", markersize=3)
        ax.axhline((target - slack) * 100, color="grey", ls="--", lw=0.8,
                   label=f"dense final − {slack*100:.1f} pp")
        ax.set_xlabel("training time (s, evaluations excluded)")
        ax.set_ylabel("Fashion-MNIST test accuracy (%)")
        ax.set_ylim(80, 90)
        n, rate = dense_path.stem.split("-")[:2]
        ax.set_title(f"wide-mlp time to accuracy: {n} ranks, {rate} links (tbf)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(plot, dpi=120)
        print(f"\nplot: {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
