#!/usr/bin/env python3
"""Markdown table of scripts/optimizer-table.sh runs: optimizer, spec, final test accuracy, wall
time, optimizer step time, optimizer state memory (and vs Adam's).
Usage: scripts/optimizer-table.py OUT_DIR"""
import pathlib
import re
import sys


def rows(out_dir):
    for f in sorted(pathlib.Path(out_dir).glob("*.out")):
        text = f.read_text()
        get = lambda key: (re.search(r"^  " + re.escape(key) + r"\s+(.*)$", text, re.M) or [None, None])[1]
        acc = get("final test accuracy")
        if acc is None:
            yield f.stem, None
            continue
        times = get("time compute/comm/compress/optim").split(" / ")
        yield f.stem, {
            "optimizer": get("optimizer"),
            "acc": float(acc.split()[0]) * 100,
            "wall": get("wall time"),
            "optim": times[3],
            "state": get("optimizer state memory"),
        }


def to_bytes(text):
    m = re.match(r"([\d.]+)\s*(B|KiB|MiB|GiB)", text)
    mult = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}[m.group(2)]
    return float(m.group(1)) * mult


def main():
    data = dict(rows(sys.argv[1]))
    adam = data.get("adam")
    print("| run | --optimizer | test accuracy | vs Adam | wall | optimizer steps | state | state vs Adam |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in data.items():
        if r is None:
            print(f"| {name} | (failed: see {name}.err) | | | | | | |")
            continue
        d_acc = f"{r['acc'] - adam['acc']:+.2f} pp" if adam else ""
        d_state = f"{to_bytes(r['state']) / to_bytes(adam['state']) * 100:.0f} %" if adam else ""
        print(f"| {name} | `{r['optimizer']}` | {r['acc']:.2f} % | {d_acc} | {r['wall']} | "
              f"{r['optim']} | {r['state']} | {d_state} |")


if __name__ == "__main__":
    main()
