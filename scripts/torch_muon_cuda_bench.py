#!/usr/bin/env python3
"""The official Muon update on CUDA (KellerJordan/Muon muon.py: `muon_update` with
`zeropower_via_newtonschulz5`, bf16 iteration), the reference for cuda_muon_bench: the same
shapes, ms per update of one matrix and of the iteration alone, and the iteration's product
TFLOP/s (4 m^2 n + 2 m^3 flop per iteration, m <= n), median of --reps calls timed with CUDA
events after a warm-up; torch.optim.Muon (torch >= 2.9) too where it exists. Prints a JSON
object. usage: torch_muon_cuda_bench.py [--shapes 4096x4096,4096x11008,11008x4096] [--reps 10]"""
import argparse
import json

import torch

from cuda_event_timing import time_ms


def zeropower_via_newtonschulz5(G, steps):
    a, b, c = (3.4445, -4.7750, 2.0315)
    X = G.bfloat16()
    if G.size(-2) > G.size(-1):
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    if G.size(-2) > G.size(-1):
        X = X.mT
    return X


def muon_update(grad, momentum, beta=0.95, ns_steps=5):
    momentum.lerp_(grad, 1 - beta)
    update = grad.lerp_(momentum, beta)
    update = zeropower_via_newtonschulz5(update, steps=ns_steps)
    update *= max(1, grad.size(-2) / grad.size(-1)) ** 0.5
    return update


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="4096x4096,4096x11008,11008x4096")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--ns-steps", type=int, default=5)
    a = ap.parse_args()
    res = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0),
           "ns_steps": a.ns_steps, "rows": []}
    for s in a.shapes.split(","):
        rows, cols = (int(v) for v in s.split("x"))
        m, n = min(rows, cols), max(rows, cols)
        flops = a.ns_steps * (4.0 * m * m * n + 2.0 * m * m * m)
        p = torch.full((rows, cols), 0.02, device="cuda")
        g = torch.randn(rows, cols, device="cuda") * 0.01
        mom = torch.zeros_like(p)

        def step():  # the reference writes into the gradient: a clone per call, timed too
            u = muon_update(g.clone(), mom, ns_steps=a.ns_steps)
            p.add_(u.reshape(p.shape), alpha=-0.02)

        row = {"shape": s, "step_ms": time_ms(step, a.reps)}
        x = torch.randn(rows, cols, device="cuda") * 0.01
        row["ns_ms"] = time_ms(lambda: zeropower_via_newtonschulz5(x, a.ns_steps), a.reps)
        row["ns_tflops"] = flops / (row["ns_ms"] * 1e9)
        if hasattr(torch.optim, "Muon"):
            q = torch.nn.Parameter(torch.full((rows, cols), 0.02, device="cuda"))
            q.grad = g.clone()
            try:
                opt = torch.optim.Muon([q], lr=0.02, weight_decay=0, ns_steps=a.ns_steps)
                opt.step()
                row["torch_optim_muon_step_ms"] = time_ms(opt.step, a.reps)
                del opt
            except (TypeError, RuntimeError) as e:
                row["torch_optim_muon_error"] = str(e)
            del q
        res["rows"].append(row)
        del p, g, mom, x
        torch.cuda.empty_cache()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
