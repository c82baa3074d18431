"""Shared by the torch GPU reference benchmarks (torch_optim_cuda_bench.py,
torch_topk_cuda_bench.py): the median of timed calls with CUDA events, as terse's
bench/cuda_timing.h times its own."""
import statistics

import torch


def time_ms(f, reps):
    """Median of `reps` timings (ms) of f after one warm-up, with CUDA events."""
    f()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        f()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b))
    return statistics.median(out)
