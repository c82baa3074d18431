#!/usr/bin/env python3
"""torch.optim.AdamW (fused=True and foreach=True) on CUDA, the reference for cuda_optim_bench:
the same sizes (--params split into --tensors equal tensors), median of --reps steps timed with
CUDA events after a warm-up; also torch's device copy of the same bytes. Prints a JSON object.
usage: torch_optim_cuda_bench.py [--params 268435456] [--tensors 256] [--reps 20]"""
import argparse
import json

import torch

from cuda_event_timing import time_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", type=int, default=1 << 28)
    ap.add_argument("--tensors", type=int, default=256)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    each = a.params // a.tensors
    sizes = [each] * (a.tensors - 1) + [a.params - each * (a.tensors - 1)]
    res = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0),
           "params": a.params, "tensors": a.tensors}
    src = torch.empty(a.params, device="cuda")
    dst = torch.empty_like(src)
    res["copy_ms"] = time_ms(lambda: dst.copy_(src), a.reps)
    res["copy_gbps"] = 2 * 4 * a.params / (res["copy_ms"] * 1e6)
    del src, dst
    for mode in ("fused", "foreach"):
        ps = [torch.full((n,), 0.5, device="cuda", requires_grad=True) for n in sizes]
        for p in ps:
            p.grad = torch.full_like(p, 0.01)
        opt = torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, **{mode: True})
        opt.step()  # creates the states
        res[f"adamw_{mode}_ms"] = time_ms(opt.step, a.reps)
        res[f"adamw_{mode}_gbps"] = 28 * a.params / (res[f"adamw_{mode}_ms"] * 1e6)
        del opt, ps
        torch.cuda.empty_cache()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
