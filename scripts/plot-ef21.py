#!/usr/bin/env python3
"""Plots of the EF21 / EF21-W logistic-regression experiment (docs/ef21.md).

usage: plot-ef21.py RESULTS_DIR IMG_DIR

Reads RESULTS_DIR/summary.json and the per method/k CSVs written by ef21_logreg and writes
  IMG_DIR/ef21_best.png        ||grad f||^2 vs bits/worker, each method at its best multiplier
  IMG_DIR/ef21_theory.png      the same at the theory step (multiplier 1), plus EF21 at L_AM's step
  IMG_DIR/ef21_multipliers.png final ||grad f||^2 vs step gamma*L over the grid, per method and k
One panel per k; bits/worker are measured payload bytes x 8 (32-byte header included).
"""
import csv
import json
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {
    "gd": ("GD (dense f32)", "black", "-"),
    "topk": ("Top-k, no EF", "tab:gray", ":"),
    "ef14": ("EF14", "tab:blue", "--"),
    "ef21": ("EF21 (L_QM step)", "tab:orange", "-"),
    "ef21w": ("EF21-W (L_AM step)", "tab:green", "-"),
    "ef21_amstep": ("EF21 at L_AM step", "tab:red", "-."),
}


def read_curves(path):
    curves = defaultdict(lambda: ([], []))
    with open(path) as f:
        for row in csv.DictReader(f):
            bits, g = curves[float(row["multiplier"])]
            bits.append(float(row["bits_per_worker"]))
            g.append(float(row["grad_norm_sq"]))
    return curves


def fmt_mult(m):
    return f"{m:g}x"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    res, img = sys.argv[1], sys.argv[2]
    with open(os.path.join(res, "summary.json")) as f:
        summary = json.load(f)
    prob = summary["problem"]
    ks = summary["ks"]
    runs = summary["runs"]
    best = {r["group"]: r for r in runs if r["best"]}
    title = (f"Fashion-MNIST {prob['class_neg']} vs {prob['class_pos']}, n={prob['workers']}, "
             f"d={prob['dim']}, L_QM/L_AM={prob['L_QM'] / prob['L_AM']:.2f}")
    os.makedirs(img, exist_ok=True)

    def panel_plot(fname, pick, methods, suptitle):
        fig, axes = plt.subplots(1, len(ks), figsize=(4.2 * len(ks), 3.4), squeeze=False)
        for ax, k in zip(axes[0], ks):
            xmax = 0.0
            for m in methods:
                group = "gd" if m == "gd" else f"{m}_k{k}"
                path = os.path.join(res, group + ".csv")
                if not os.path.exists(path):
                    continue
                mult = pick(group)
                if mult is None:
                    continue
                curves = read_curves(path)
                if mult not in curves:
                    continue
                bits, g = curves[mult]
                label, color, ls = STYLE[m]
                ax.plot(bits, g, ls, color=color, lw=1.4, label=f"{label} {fmt_mult(mult)}")
                if m != "gd":
                    xmax = max(xmax, bits[-1])
            ax.set_yscale("log")
            ax.set_xlim(0, xmax if xmax > 0 else None)
            ax.set_xlabel("bits per worker (measured payload)")
            ax.set_title(f"Top-{k}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel("||grad f(x_t)||^2")
        fig.suptitle(f"{suptitle}; {title}", fontsize=9)
        fig.tight_layout()
        out = os.path.join(img, fname)
        fig.savefig(out, dpi=72)
        plt.close(fig)
        print(f"wrote {out} ({os.path.getsize(out) // 1024} KB)")

    def best_mult(group):
        r = best.get(group)
        return None if r is None else float(r["multiplier"])

    panel_plot("ef21_best.png", best_mult, ["gd", "topk", "ef14", "ef21", "ef21w"],
               "best multiplier per method")
    panel_plot("ef21_theory.png", lambda g: 1.0,
               ["gd", "topk", "ef14", "ef21", "ef21w", "ef21_amstep"], "theory steps (multiplier 1)")

    # Final ||grad f||^2 against the step gamma * L (diverged runs drawn at the top as crosses):
    # on this axis EF21 and EF21-W with Top-k fall on one curve (same iteration at equal gamma).
    lsm = prob["L"]
    fig, axes = plt.subplots(1, len(ks), figsize=(4.2 * len(ks), 3.2), squeeze=False)
    for ax, k in zip(axes[0], ks):
        for m in ["topk", "ef14", "ef21", "ef21w"]:
            rs = sorted((r for r in runs if r["group"] == f"{m}_k{k}"), key=lambda r: r["multiplier"])
            if not rs:
                continue
            label, color, ls = STYLE[m]
            ok = [r for r in rs if not r["diverged"]]
            ax.plot([r["gamma"] * lsm for r in ok], [r["final_grad_norm_sq"] for r in ok], "o" + ls,
                    color=color, ms=3, lw=1, label=label)
            bad = [r for r in rs if r["diverged"]]
            if bad:
                top = max([r["final_grad_norm_sq"] for r in ok] or [1.0])
                ax.plot([r["gamma"] * lsm for r in bad], [top * 10] * len(bad), "x", color=color)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("step gamma * L (grid: theory step x 4^j)")
        ax.set_title(f"Top-{k}: final ||grad f||^2 (tol 1e-9)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = os.path.join(img, "ef21_multipliers.png")
    fig.savefig(out, dpi=72)
    plt.close(fig)
    print(f"wrote {out} ({os.path.getsize(out) // 1024} KB)")


if __name__ == "__main__":
    main()
