#!/usr/bin/env python3
"""Alpha-beta cost model of terse's collective algorithms (issue 5, docs/results.md "Slow network").

usage: cost_model.py [--plot IMG_DIR] [--max-error E] MEASURED...
  --max-error E: exit with status 1, naming the points, when any prediction (collectives and
  modelled training steps) is off by more than E (0.25 = 25 %); CTest runs it on the host data.
  MEASURED: collectives_bench --json files (coll-N-RATE.json) and/or the console output of
  scripts/slow-network-device.sh (bench/results/slow-network-*.txt). Each file is one machine:
  its name says which (h100-host or dev-vm); rates come from the file name (100mbit, 1gbit, ...).

Time of one call on N ranks, n f32 elements, k pairs, link rate R (bit/s):
  beta  = 8 / min(0.957 R, C / N)   seconds per byte: TCP goodput through tbf, measured
          (shaped-network.md), or the host's bridge forwarding capacity C shared by the N
          ranks of one machine (fitted; the projection assumes one host per worker)
  alpha = seconds per message round (fitted per machine)
  p     = seconds per pass over n f32 elements in memory (fitted per machine), i.e. local work
  all_reduce, >= 64 KiB, N >= 4 (libnbc Rabenseifner, terse sends from a copy):
          2 L alpha + 2 (N-1)/N 4n beta + 2 n p                    L = ceil(log2 N)
  all_reduce, small (libnbc binomial, in place):  2 L (alpha + 4n beta)
  ring all_reduce (NCCL, Horovod; for projection): 2 (N-1) alpha + 2 (N-1)/N 4n beta + 2 n p
  sparse_all_gather (DGC): 3 (N-1) alpha + (N-1) 8k beta + 2 n p + N k p/64
  sparse_all_reduce (Ok-Topk, terse's SparseAllReduce): 7 (N-1) alpha + 2 (N-1)/N 8k beta + n p
  one_bit_all_reduce (1-bit Adam): 2 (N-1) alpha + 2 (N-1)/N n/8 beta + q n p   (q fitted)
The bytes terms are the per-rank byte counts the algorithms report (ring-equivalent); the round
counts follow their message structure. alpha, p, C and the pass counts are fitted (least squares on the relative
error) to every collectives_bench point of a machine; the training steps' communication times
are then predicted, not fitted.
"""
import json
import math
import re
import sys
from pathlib import Path

GOODPUT = 0.957


def rate_bits(name):
    m = re.search(r"(\d+)(mbit|gbit)", name)
    return float(m.group(1)) * (1e6 if m.group(2) == "mbit" else 1e9)


# Aggregate bits/s the host's kernel can forward through the bridge for all ranks together
# (fitted per machine; on 2 cores, 8 ranks at 10 Gbit/s get ~1.3 Gbit/s each, not 10).
HOST = {"cap": 1e12}


def beta(rate, N=1):
    return 8.0 / min(GOODPUT * rate, HOST["cap"] / N)


def log2c(n):
    return max(1, math.ceil(math.log2(n)))


def t_all_reduce(N, n, rate, a, p, ring=False):
    b = beta(rate, N)
    L = log2c(N)
    if ring:
        return 2 * (N - 1) * a + 2 * (N - 1) / N * 4 * n * b + 2 * n * p
    if 4 * n >= 65536 and N >= 4:
        return 2 * L * a + 2 * (N - 1) / N * 4 * n * b + 2 * n * p
    return 2 * L * (a + 4 * n * b)


def t_sparse_all_gather(N, n, k, rate, a, p, c=2.0, pair_bytes=8):
    return 3 * (N - 1) * a + (N - 1) * pair_bytes * k * beta(rate, N) + c * n * p


def t_sparse_all_reduce(N, n, k, rate, a, p, c=1.0):
    return 7 * (N - 1) * a + 2 * (N - 1) / N * 8 * k * beta(rate, N) + c * n * p


def t_one_bit(N, n, rate, a, p, q):
    return 2 * (N - 1) * a + 2 * (N - 1) / N * n / 8 * beta(rate, N) + q * n * p


# Fitted per machine: alpha (s per round), p (s per element pass), and the local passes of the
# sparse all-gather, the sparse all-reduce and the 1-bit all-reduce.
NAMES = ("alpha", "p", "c_gather", "c_sparse_ar", "c_one_bit", "host_cap")


def predict(row, N, rate, params):
    a, p, cg, car, q, HOST["cap"] = params
    algo, n, k = row["algo"], row["numel"], row["k"]
    if algo == "all_reduce":
        return t_all_reduce(N, n, rate, a, p)
    if algo == "sparse_all_gather":
        return t_sparse_all_gather(N, n, k, rate, a, p, cg)
    if algo == "sparse_all_reduce":
        return t_sparse_all_reduce(N, n, k, rate, a, p, car)
    if algo == "one_bit_all_reduce":
        return t_one_bit(N, n, rate, a, p, q)
    raise ValueError(algo)


# Training steps (wide-mlp, 5.8 M parameters): which collectives one step's time_comm_s holds.
WIDE_MLP = 5_798_410
WIDE_MLP_BIAS = 2048 + 2048 + 10


def t_step(method, N, rate, params, nbytes):
    """time_comm_s of one step; nbytes = the step's measured bytes_sent (DGC's sampled top-k
    sends k or somewhat fewer pairs, so k comes from the measurement)."""
    a, p, cg, car, q, HOST["cap"] = params
    b = beta(rate, N)
    L = log2c(N)
    n = WIDE_MLP
    loss_rounds = 2 * L  # the mean-loss all-reduce of every step (binomial, one element)
    if method == "dense":
        return t_all_reduce(N, n, rate, a, p) + loss_rounds * a
    if method == "dgc":  # 1-D tensors dense (binomial), one payload all-gather of the rest
        # (lengths + blob); decoding is counted as compression, not communication
        return (2 * L + 2 * (N - 1) + loss_rounds) * a + nbytes * b
    if method == "dgc-ar":  # NaN flag gather + SparseAllReduce + 1-D dense, result scattered
        return ((N - 1) + 7 * (N - 1) + 2 * L + loss_rounds) * a + nbytes * b + (car + 1) * n * p
    raise ValueError(method)


def load(paths):
    """{machine: {"coll": [(N, rate, row)], "steps": [(N, rate, method, comm_s, bytes)]}}"""
    data = {}
    for path in map(Path, paths):
        machine = "h100-host" if "h100" in path.name else "dev-vm"
        d = data.setdefault(machine, {"coll": [], "steps": []})
        if path.suffix == ".json":
            j = json.loads(path.read_text())
            rate = rate_bits(path.name)
            for row in j["rows"]:
                d["coll"].append((row["ranks"], rate, row))
            continue
        text = path.read_text()
        rate = rate_bits(path.name) if re.search(r"\d+(mbit|gbit)", path.name) else 1e9
        N = int(re.search(r"collectives on (\d+) ranks", text).group(1))
        for m in re.finditer(r"^(\w+)\s+(\d+)\s+([\d.]+)\s+(\d+)\s+([\d.]+) ms\s+(\d+) B/rank",
                             text, re.M):
            row = {"algo": m.group(1), "numel": int(m.group(2)), "density": float(m.group(3)),
                   "k": int(m.group(4)), "ms": float(m.group(5)), "bytes_sent": int(m.group(6))}
            d["coll"].append((N, rate, row))
        for m in re.finditer(r"^(\d+)-(\d+\w+)-([\w-]+): \d+ steps, step [\d.]+ ms = compute [\d.]+ \+"
                             r" compress [\d.]+ \+ comm ([\d.]+) \+ optim [\d.]+; ([\d.]+) MB", text, re.M):
            d["steps"].append((int(m.group(1)), rate_bits(m.group(2)), m.group(3),
                               float(m.group(4)) / 1e3, float(m.group(5)) * 1e6))
    return data


def fit(points):
    """Least squares on log(predicted / measured) over a grid refined around the best point."""
    def loss(params):
        return sum(math.log(predict(row, N, rate, params) / (row["ms"] / 1e3)) ** 2
                   for N, rate, row in points)
    best = None
    for a in [x * 1e-6 for x in (2, 5, 10, 20, 40, 80, 160, 320)]:
        for p in [x * 1e-3 for x in (0.2, 0.5, 1, 2, 4, 8)]:
            params = (a, p / WIDE_MLP, 2.0, 1.0, 8.0, 100e9)
            v = loss(params)
            if best is None or v < best[0]:
                best = (v, params)
    params = list(best[1])
    step = [0.5] * len(NAMES)
    for _ in range(80):  # coordinate search on a log scale
        for i in range(len(NAMES)):
            for f in (1 + step[i], 1 / (1 + step[i])):
                trial = params.copy()
                trial[i] *= f
                if loss(trial) < loss(params):
                    params = trial
            step[i] *= 0.8
    return tuple(params)


def rate_name(rate):
    return f"{rate / 1e9:g} Gbit/s" if rate >= 1e9 else f"{rate / 1e6:g} Mbit/s"


def main(argv):
    plot_dir = None
    max_error = None
    while len(argv) >= 2 and argv[0] in ("--plot", "--max-error"):
        if argv[0] == "--plot":
            plot_dir = Path(argv[1])
        else:
            max_error = float(argv[1])
        argv = argv[2:]
    if not argv:
        sys.exit(__doc__)
    misses = []
    data = load(argv)
    fitted = {}
    worst = 0.0
    for machine, d in sorted(data.items()):
        params = fit(d["coll"])
        fitted[machine] = params
        a, p, cg, car, q, cap = params
        print(f"\n### {machine}: alpha = {a * 1e6:.1f} us/round, one pass over 5.8 M f32 = "
              f"{p * WIDE_MLP * 1e3:.2f} ms; local passes: sparse all-gather {cg:.2f}, sparse "
              f"all-reduce {car:.2f}, 1-bit all-reduce {q:.2f}; host forwarding cap "
              f"{cap / 1e9:.1f} Gbit/s over all ranks\n")
        print("| ranks | link | algorithm | elements | k | measured ms | model ms | error |")
        print("|---|---|---|---|---|---|---|---|")
        for N, rate, row in sorted(d["coll"], key=lambda x: (x[0], x[1])):
            pred = predict(row, N, rate, params) * 1e3
            err = pred / row["ms"] - 1
            worst = max(worst, abs(err))
            if max_error is not None and abs(err) > max_error:
                misses.append(f"{machine}: {row['algo']} N={N} {rate_name(rate)} k={row['k']}: "
                              f"{err:+.0%}")
            print(f"| {N} | {rate_name(rate)} | {row['algo']} | {row['numel']} | {row['k']} | "
                  f"{row['ms']:.3f} | {pred:.3f} | {err:+.0%} |")
        for N, rate, method, comm, nbytes in d["steps"]:
            try:
                pred = t_step(method, N, rate, params, nbytes)
            except ValueError:
                print(f"| {N} | {rate_name(rate)} | training step, {method} | | | {comm * 1e3:.1f} |"
                      f" not modelled | |")
                continue
            err = pred / comm - 1
            if max_error is not None and abs(err) > max_error:
                misses.append(f"{machine}: training step {method} N={N}: {err:+.0%}")
            print(f"| {N} | {rate_name(rate)} | training step, {method} (predicted) | {WIDE_MLP} | |"
                  f" {comm * 1e3:.1f} | {pred * 1e3:.1f} | {err:+.0%} |")
    print(f"\nlargest error over the collectives_bench points: {worst:.0%}")
    if plot_dir:
        project(fitted.get("h100-host") or next(iter(fitted.values())), plot_dir)
    if misses:
        print(f"\n{len(misses)} predictions off by more than {max_error:.0%}:\n  " +
              "\n  ".join(misses), file=sys.stderr)
        sys.exit(1)


def project(params, plot_dir):
    """Communication time per step for 16..1024 workers at 1, 10, 100 Gbit/s."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    a, p, cg, car, q, _ = params
    HOST["cap"] = 1e15  # a real cluster: one host per worker, no shared bridge
    ns = [2 ** i for i in range(2, 11)]
    n = 25_557_032  # ResNet-50's gradient, as in the DGC paper
    k = round(0.001 * n)
    algos = {
        "dense ring all-reduce": lambda N, r: t_all_reduce(N, n, r, a, p, ring=True),
        "dense Rabenseifner": lambda N, r: t_all_reduce(N, n, r, a, p),
        "DGC sparse all-gather (0.1 %)": lambda N, r: t_sparse_all_gather(N, n, k, r, a, p, cg),
        "Ok-Topk sparse all-reduce (0.1 %)":
            lambda N, r: t_sparse_all_reduce(N, n, k, r, a, p, car),
        "1-bit all-reduce": lambda N, r: t_one_bit(N, n, r, a, p, q),
    }
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
    print(f"\n### Projection: ResNet-50 gradient ({n} f32), density 0.001, fitted alpha and p\n")
    print("| link | workers | " + " | ".join(algos) + " |")
    print("|---|---|" + "---|" * len(algos))
    for ax, rate in zip(axes, (1e9, 10e9, 100e9)):
        for name, f in algos.items():
            ax.plot(ns, [f(N, rate) * 1e3 for N in ns], marker="o", label=name)
        for N in (16, 64, 256, 1024):
            print(f"| {rate_name(rate)} | {N} | " +
                  " | ".join(f"{f(N, rate) * 1e3:.1f} ms" for f in algos.values()) + " |")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{rate_name(rate)} per worker")
        ax.set_xlabel("workers")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("communication per step (ms)")
    axes[0].legend(fontsize=8)
    fig.suptitle("terse cost model: ResNet-50 gradient (25.6 M f32), alpha-beta fitted on "
                 "shaped-link measurements")
    fig.tight_layout()
    plot_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(plot_dir / "cost_model_projection.png", dpi=110)
    # Where the all-gather stops paying: its bytes reach the dense all-reduce's at N = 1/density.
    for rate in (1e9, 10e9, 100e9):
        cross = next((N for N in range(4, 4097)
                      if t_sparse_all_gather(N, n, k, rate, a, p, cg) > t_all_reduce(N, n, rate, a, p)),
                     None)
        print(f"{rate_name(rate)}: the sparse all-gather costs more than the dense all-reduce from "
              f"N = {cross} workers")


if __name__ == "__main__":
    main(sys.argv[1:])
