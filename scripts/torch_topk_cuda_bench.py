#!/usr/bin/env python3
"""torch.topk on CUDA, the reference for cuda_dgc_bench's selection: the k = ceil(density * n)
largest |x| of --n floats (default 25.6M at density 0.001), as DGC's reference implementation
selects (torch.topk(tensor.abs(), k)), sorted and unsorted; median of --reps calls timed with
CUDA events after a warm-up, each including the abs. Prints a JSON object.
usage: torch_topk_cuda_bench.py [--n 25600000] [--density 0.001] [--reps 20]"""
import argparse
import json
import math

import torch

from cuda_event_timing import time_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=25600000)
    ap.add_argument("--density", type=float, default=0.001)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    k = math.ceil(a.n * a.density)
    x = torch.randn(a.n, device="cuda") * 1e-3
    res = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "n": a.n,
           "density": a.density, "k": k}
    res["topk_sorted_ms"] = time_ms(lambda: torch.topk(x.abs(), k), a.reps)
    res["topk_unsorted_ms"] = time_ms(lambda: torch.topk(x.abs(), k, sorted=False), a.reps)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
