#!/usr/bin/env python3
"""Alpha-beta cost model of terse's collective algorithms (issue 5, docs/results.md "Slow network").

usage: cost_model.py [--plot IMG_DIR] [--max-error E] [--check all|collectives|training]
                     [--holdout] MEASURED...
  --max-error E: exit with status 1, naming them, when checked predictions are off by more than
      E (0.25 = 25 %); --check says which: the collectives points, the training transfers, or
      both (all, the default). CTest runs it on the host data.
  --holdout: also refit on part of the collectives points and predict the rest (printed last).
  --plot IMG_DIR: the projection (16..1024 workers at 1, 10, 100 Gbit/s) as a table and
      IMG_DIR/cost_model_projection.png.
  MEASURED: collectives_bench --json files (coll-N-RATE.json), one_bit_all_reduce_bench --json
  files (ob-N-RATE-*.json: its dense and 1-bit rows), the console output of
  scripts/slow-network-device.sh (slow-network-*.txt), or a results folder
  (h100-host-YYYY-MM-DD[x]/), which stands for every such file under it and every training run
  N-RATE-METHOD.jsonl under it (folders named sweep* and tta* left out; N-RATE-METHOD.rank<r>.jsonl, written by
  --metrics-every-rank, is read as rank r's view of the same run, not as another run). The rate
  comes from the file name (100mbit, 1gbit, 10gbit; none = unshaped veth).

One parameter set per host (h100-host, dev-vm), fitted on all of that host's collectives points
at once (Levenberg-Marquardt on log(model / measured)). Every parameter is shared by all points
and is a physical quantity:
  alpha     seconds per message round (MPI software and the veth/bridge hop)
  goodput   not fitted: 0.957 of the rate, a lone TCP flow through tbf (shaped-network.md)
  pace      seconds tbf adds per byte it paces (a byte that waits for tokens; bytes on bucket
            credit leave at once): its dequeue timer's slack, amortised over a GSO packet;
            10 Gbit/s links run at ~60 % of their rate, 1 Gbit/s at ~95 %
  kappa     TCP loss recovery: bytes a call puts on its link beyond tbf's queue (rate x 50 ms +
            bucket, netns.sh's `latency 50ms`) go (1 + kappa f) times slower, f the flows sharing
            the link (1 for the dense all-reduce's pairwise rounds, N-1 for the linear
            all-to-all and all-gather of the sparse and 1-bit algorithms): only at 100 Mbit/s
            does a call outgrow the queue
  rank_cap  bit/s one rank's TCP stack pushes through an unshaped veth
  bw1, bw   memory, as copy bandwidth (read + write bytes, as optim_bench counts it): one
            thread alone streams bw1, the ranks of one host share bw; a pass over n f32 on T
            threads costs 8 n max(1 / (T bw1), N / bw) from memory
  bw_l3, l3 the L3: a benchmark reuses its buffers call after call, and the share l3 of the
            host's L3 keeps a fraction min(1, l3 / (N ws)) of the N ranks' working sets ws (an
            adaptive last-level cache keeps about that much of a cyclic working set larger
            than itself); that fraction of a pass runs at bw_l3 per thread. This is why the
            small all-gather costs twice as much at 8 ranks as at 4 (4 x 23 MB of output
            buffers fit, 8 x 23 MB do not), which one shared-bandwidth term could not fit.
            Training steps stream far more than the L3 between two exchanges: cold, except
            the dense all-reduce's gradient bucket (4 n bytes a rank), which backward has just
            written: the L3 holds min(1, l3 / (N 4 n)) of it (all of it at 4 ranks, half at 8)
  c_*       passes over the dense vector each algorithm makes locally (fill, scale, copy,
            reduce); c_gather = 2 by its code (zero the output, scale it), not fitted: it fixes
            the scale that a pass count and a bandwidth would otherwise trade one for one
  s_*       seconds per pair: the all-gather's scatter of the N k received pairs (random
            read-modify-write), the sparse all-reduces' per-pair selection, sort and checks
  q_<code>, ov_<code>  the 1-bit all-reduce's passes, per implementation: v1 (the console run
            of 2026-11-23, one thread, no overlap), v2 (the rewrite, T = 16 / N threads, a share
            ov of its passes, the error updates, run while its collectives are in flight)
Inputs, not parameters: each row's measured bytes per rank, its ranks, link rate and tbf bucket
(netns.sh's max(32 KiB, rate x 4 ms) unless the run set BURST: SHAPING below, or a shaping.json
{"burst": BYTES} in the run's folder), the 1-bit implementation and threads (CONFIG), the eager
and cache sizes. tbf lets the bucket's tokens through at once and refills the bucket at the link
rate while the link is idle; every benchmark run is replayed call by call in its file's order
(one warm-up, then the timed calls: their median).

Time of one call on N ranks, n f32 elements, k pairs, link rate R, L = ceil(log2 N), pass(n) as
above, B the measured bytes per rank:
  wire(B, f)  = max((B - credit) (8 / (goodput R) + pace)
                    + kappa f max(0, B - queue) 8 / (goodput R),   8 B / rank_cap)
  all_reduce, >= 64 KiB, N >= 4 (libnbc Rabenseifner from a copy):
                2 L alpha + wire(B, 1) + c_dense pass(n)
  all_reduce, small (binomial, in place): 2 L alpha + wire(2 L 4n, 1)
  sparse_all_gather: 3 (N-1) alpha + wire(B, N-1) + c_gather pass(n) + s_gather N k
  sparse_all_reduce: 7 (N-1) alpha + wire(B, N-1) + c_sparse_ar pass(n) + s_sparse_ar k
  sparse_all_reduce_fixed: (L + 4 (N-1)) alpha + wire(B, N-1) + c_fixed pass(n) + s_fixed k
  one_bit_all_reduce: 2 (N-1) alpha + (1 - ov) Q + max(wire(B, N-1), ov Q),  Q = q pass(n, T)
  ring all_reduce (projection only): 2 (N-1) alpha + wire(B, 1) + c_dense pass(n)

Training transfers (time_comm_s - time_wait_s of a step, rank 0; predicted from the collectives
fit): the exchange's collectives as above with cold passes (the dense all-reduce's on a
freshly written bucket, see bw_l3) and a full bucket (the step's compute refills it), the step's mean-loss all_reduce (2 L rounds), and the wait in that all_reduce for
the slowest rank's local work since the exchange last synchronised the ranks (DGC's decode; the
copy of the sparse all-reduce's result; the dense all-reduce's scaling): straggle = sigma m(N)
T_local, m(N) the expected maximum of N standard normals (1.03 at 4, 1.42 at 8). Predicted
with no parameter of their own, not checked (CHECKED_METHODS): PowerSGD as its P and Q
all-reduces and the straggle of the passes after its verdicts (Q = M^T P, then P Q^T and e, on
the rank's threads); EF21 + Top-k as DGC with its k; 1-bit Adam as the sign all-to-all and
server all-gather (wire, N-1 flows) and the straggle of the server sum, the worker scales and
the loss all-reduce being its wait. sigma, the
ranks' spread of one memory-bound pass, is the one parameter fitted on training transfers: on
those with netns.sh's default bucket; the 16 KB and 64 KB bucket runs are predicted with it.

Noise is data. A training run's value is the 10 %-trimmed mean of its steps' transfers after 5
warm-up steps (the model predicts an expected time; a step's straggler wait is zero when rank 0
is itself the slowest, so a run's steps mix two modes and their median jumps between them: 0.51
and 0.95 ms for the same 4-rank DGC inputs; the table prints the median too). Identical runs of
the same point (same host, ranks, rate, bucket, method, in any results folder) are repeats; the
point checked is the median over the repeats, and the table prints every repeat beside it.
Nothing is dropped to pass: a point outside the bound stays in the table and in the exit status.
"""
import functools
import json
import math
import re
import statistics
import sys
from pathlib import Path

GOODPUT_ONE_FLOW = 0.957  # a lone one-way TCP flow through tbf (shaped-network.md): the ceiling
TBF_LATENCY_S = 0.050     # netns.sh: tbf ... latency 50ms, so the queue holds rate x 50 ms + burst
WARMUP_STEPS = 5          # training steps left out of each run's median
BENCH_CALLS = 6           # collectives_bench / one_bit_all_reduce_bench: warm-up + timed calls

# How runs were shaped, where the bucket was not netns.sh's default (the folders' READMEs):
# (results folder, sub-folder prefix or "" for all of it) -> tbf bucket in bytes.
SHAPING = {
    ("h100-host-2026-11-24", "burst16k"): 16384,
    ("h100-host-2026-11-24", "burst64k"): 65536,
    ("h100-host-2026-11-24c", ""): 65536,
    ("h100-host-2026-11-24e", ""): 65536,
}

# Per data set: CPU cores (collectives_bench --threads is cores / N for the 1-bit all-reduce,
# scripts/slow-network-device.sh) and the 1-bit implementation it ran. Unlisted: one thread and
# the data set's own implementation key.
CONFIG = {
    "h100-host-2026-11-23 console": {"cores": 8, "one_bit": "v1"},  # commit 36cbf9a, 1 thread
    "h100-host-2026-11-23": {"cores": 16, "one_bit": "v2"},          # the rewrite (00729bf)
    "h100-host-2026-11-24c": {"one_bit": "v2"},                      # same passes (ae0387b)
}

# Results folders from before bd0ca89: there the trainer counted a communicating optimizer's
# loss all-reduce wait (for the slowest rank's backward) as transfer, not as time_wait_s.
LOSS_WAIT_IN_TRANSFER = {f"h100-host-2026-11-{d}" for d in
                         ("23", "24", "24c", "24d", "24e", "24f", "24g", "24h")}

# Results folders from before 2ab4a0d: PowerSGD's passes over M ran on one thread, not on the
# rank's threads (cores / N) as the model and the code since have them, so its ranks' straggle
# was that of one thread's passes: not repeats of later runs, not modelled.
POWERSGD_ONE_THREAD = {f"h100-host-2026-11-{d}" for d in
                       ("23", "24", "24c", "24d", "24e", "24f", "24g", "24h", "24i")}

# Points measured but neither fitted nor checked, with the reason (printed in the table).
EXCLUDED = {
    ("h100-host-2026-11-23", 8, 1e9, "all_reduce", 256):
        "outlier: 5.95 ms for 1 KiB; the same call took 0.079 ms in the 2026-11-23 console run "
        "of the same host and link, and 0.084 ms at 10 Gbit/s; no alpha-beta term makes 256 "
        "floats take longer than 64 Ki floats (3.67 ms)",
}


def rate_bits(name):
    """Link rate in bit/s from a file name (100mbit, 1gbit, ...); None for unshaped (none)."""
    m = re.search(r"(\d+)(mbit|gbit)", name)
    if m:
        return float(m.group(1)) * (1e6 if m.group(2) == "mbit" else 1e9)
    if re.search(r"(^|[-_])none([-_.]|$)", name):
        return None
    return 1e9


def default_bucket(rate):
    """netns.sh's tbf bucket: rate/8/250 bytes, at least 32 KiB (50 KB at 100 Mbit/s, 500 KB at
    1 Gbit/s, 5 MB at 10 Gbit/s)."""
    return max(32768.0, rate / 8 / 250) if rate else 0.0


def log2c(n):
    return max(1, math.ceil(math.log2(n)))


# ---------------------------------------------------------------------------------------------
# The model. P: the host's parameters; link: {"rate", "bucket", "level"} (level None: a full
# bucket, else the replayed token count, updated by every call).

def wire(nbytes, N, link, idle, flows, P):
    """Seconds to push nbytes per rank through the rank's shaped link (see the docstring).
    idle: link-idle seconds before the call, during which the bucket refills."""
    rate = link["rate"]
    t = 0.0
    if rate:
        bucket = link["bucket"]
        byte_rate = P["goodput"] * rate / 8
        if link.get("level") is None:
            credit = min(nbytes, bucket, rate / 8 * idle)
        else:
            level = min(bucket, link["level"] + rate / 8 * idle)
            credit = min(level, nbytes)
            link["level"] = level - credit
        queue = rate / 8 * TBF_LATENCY_S + bucket
        t = ((nbytes - credit) * (1 / byte_rate + P["pace"])
             + P["kappa"] * flows * max(0.0, nbytes - queue) / byte_rate)
    return max(t, nbytes * 8 / P["rank_cap"])


def pass_time(P, N, threads=1, ws=None):
    """Seconds per f32 element of one pass (it reads and writes each element: 8 bytes, counted
    as optim_bench's copy bandwidth counts them). From memory: one rank's `threads` threads at
    bw1 each, or the host's bandwidth bw shared by the N ranks that stream at once. ws: the
    bytes each rank's call touches when the call reuses them call after call (a benchmark):
    the L3 share l3 then holds a fraction min(1, l3 / (N ws)) of the ranks' buffers (an
    adaptive, thrash-resistant last-level cache keeps about that much of a cyclic working set
    larger than itself), and that fraction of the pass runs at bw_l3 per thread. In training
    the step's compute streams far more than the L3 between two exchanges: ws None, cold."""
    cold = 8.0 * max(1.0 / (threads * P["bw1"]), N / P["bw"])
    if ws is None:
        return cold
    hit = min(1.0, P["l3"] / (N * ws))
    return hit * 8.0 / (threads * P["bw_l3"]) + (1 - hit) * cold


# Bytes a rank's call touches (its working set; from the code): the dense all-reduce's send
# copy, result and libnbc's temporary; the all-gather's output and the N k received pairs; the
# sparse all-reduces' output and range sums (4 + 1 bytes per element of the n / N range); the
# 1-bit all-reduce's vector, worker and server errors and sign words.
def ws_dense(N, n):
    return 12.0 * n


def ws_gather(N, n, k):
    return 4.0 * n + 8.0 * N * k


def ws_sparse(N, n, k):
    return 4.0 * n + 5.0 * n / N + 16.0 * k


def ws_one_bit(N, n):
    return 8.0 * n + 4.0 * n / N + n / 4


def gap(N, a):
    """Link-idle seconds between two timed benchmark calls: the barrier and the all_reduce MAX
    of the timings (binomial, 2 L rounds each)."""
    return 4 * log2c(N) * a


def mem(P, N, ctx, ws, threads=1):
    """Pass time in a context: "bench" (collectives_bench: the N ranks of one host stream at
    once and reuse their buffers, so ws may sit in the L3), "train" (the same ranks, buffers
    cold), "fresh" (training's dense all-reduce: it starts as backward finishes writing the
    gradient bucket, so the bucket, 4 n bytes a rank, not ws, is what the L3 may hold) or
    "cluster" (the projection: one worker per host, cold)."""
    if ctx == "cluster":
        return pass_time(P, 1, threads)
    return pass_time(P, N, threads, ws if ctx in ("bench", "fresh") else None)


def t_all_reduce(N, n, link, P, ring=False, nbytes=None, ctx="bench", idle=None):
    """Rabenseifner (libnbc, from a copy): the copy, L rounds of recursive halving each followed
    by its reduction, L rounds of recursive doubling. idle: link-idle seconds before the call
    (default: the benchmark's barrier and timing all_reduce)."""
    a, L = P["alpha"], log2c(N)
    idle = gap(N, a) if idle is None else idle
    if ring or (4 * n >= 65536 and N >= 4):
        p = mem(P, N, ctx, 4.0 * n if ctx == "fresh" else ws_dense(N, n))
        b = 2 * (N - 1) / N * 4 * n if nbytes is None else nbytes
        rounds = 2 * (N - 1) if ring else 2 * L
        local = P["c_dense"] * n * p
        return rounds * a + wire(b, N, link, idle, 1, P) + local
    return 2 * L * a + wire(2 * L * 4 * n, N, link, idle, 1, P)


def gather_local(N, n, k, P, ctx="bench"):
    """The all-gather's local work: validation, zeroing the output, scattering the N k received
    pairs, the averaging pass (DGC's decode does the same: zero, scatter, scale)."""
    p = mem(P, N, ctx, ws_gather(N, n, k))
    return P["c_gather"] * n * p + P["s_gather"] * N * k


def t_sparse_all_gather(N, n, k, link, P, nbytes=None, ctx="bench"):
    """Header all_gather, then indices and values all_gatherv (linear: N-1 flows per link)."""
    a = P["alpha"]
    local = gather_local(N, n, k, P, ctx)
    b = (N - 1) * (8 * k + 32) if nbytes is None else nbytes
    return 3 * (N - 1) * a + wire(b, N, link, local + gap(N, a), N - 1, P) + local


def sparse_local(N, n, k, P, c, s, ctx):
    return c * n * mem(P, N, ctx, ws_sparse(N, n, k)) + s * k


def t_sparse_all_reduce(N, n, k, link, P, nbytes=None, ctx="bench"):
    """Header all_gather, count all_to_all, all_to_allv of indices and values, candidate count
    all_gather, all_gatherv of indices and values: 7 (N-1) rounds; 72 (N-1) control bytes."""
    a = P["alpha"]
    local = sparse_local(N, n, k, P, P["c_sparse_ar"], P["s_sparse_ar"], ctx)
    b = 2 * (N - 1) / N * 8 * k + 72 * (N - 1) if nbytes is None else nbytes
    return 7 * (N - 1) * a + wire(b, N, link, local + gap(N, a), N - 1, P) + local


# Control bytes of the fixed-quota sparse all-reduce's validation all_reduce MAX, per recursive-
# doubling round: the collectives points of 2026-11-23 ran with 10 x i64 = 80 B, the code since
# 5285c88 sends 3 x i64 = 24 B (projection, bytes table).
MEASURED_FIXED_CONTROL_BYTES = 80
FIXED_CONTROL_BYTES = 24


def fixed_bytes(N, k, control=FIXED_CONTROL_BYTES):
    """Bytes per rank of SparseAllReduce's fixed quotas (fixed_bytes_per_rank)."""
    return 16 * (k - k // N) + control * log2c(N) if N > 1 else 0


def t_sparse_all_reduce_fixed(N, n, k, link, P, nbytes=None, control=FIXED_CONTROL_BYTES,
                              ctx="bench"):
    """Validation all_reduce MAX (recursive doubling, L rounds of `control` bytes), all_to_allv
    and all_gatherv of fixed blocks, indices then values (2 (N-1) rounds each)."""
    a = P["alpha"]
    local = sparse_local(N, n, k, P, P["c_fixed"], P["s_fixed"], ctx)
    b = fixed_bytes(N, k, control) if nbytes is None else nbytes
    return (log2c(N) + 4 * (N - 1)) * a + wire(b, N, link, local + gap(N, a), N - 1, P) + local


def t_one_bit(N, n, link, P, q, threads=1, nbytes=None, ctx="bench", overlap=0.0):
    """Sign all-to-all and server all-gather (N-1 flows per link each); q passes over n on the
    rank's threads. The rewrite (v2) runs the error updates, a share `overlap` of its passes,
    while its collectives are in flight (driving them between blocks); the rest (signs, norms,
    server sums, the result) must precede or follow them. v1 overlapped nothing."""
    a = P["alpha"]
    local = q * n * mem(P, N, ctx, ws_one_bit(N, n), threads)
    b = 2 * (N - 1) / N * n / 8 if nbytes is None else nbytes
    w = wire(b, N, link, gap(N, a) + (1 - overlap) * local, N - 1, P)
    return 2 * (N - 1) * a + (1 - overlap) * local + max(w, overlap * local)


def predict(pt, P, link):
    """Seconds of one benchmark call of the collectives point pt."""
    N, n, k, b = pt["N"], pt["n"], pt["k"], pt.get("bytes")
    algo = pt["algo"]
    if algo == "all_reduce":
        return t_all_reduce(N, n, link, P, nbytes=b)
    if algo == "sparse_all_gather":
        return t_sparse_all_gather(N, n, k, link, P, b)
    if algo == "sparse_all_reduce":
        return t_sparse_all_reduce(N, n, k, link, P, b)
    if algo == "sparse_all_reduce_fixed":
        return t_sparse_all_reduce_fixed(N, n, k, link, P, b, MEASURED_FIXED_CONTROL_BYTES)
    if algo == "one_bit_all_reduce":
        code = pt["one_bit"]
        return t_one_bit(N, n, link, P, P["q_" + code], pt["threads"], b,
                         overlap=P.get("ov_" + code, 0.0))
    raise ValueError(algo)


def predict_runs(points, P):
    """{id(point): seconds}: every benchmark run replayed in its file's order with tbf's bucket
    carried from call to call: full at the launch, drained by what a call sends, refilled while
    the link is idle. Each row is one warm-up and five (or --reps) timed calls: the median."""
    out, runs = {}, {}
    for pt in points:
        runs.setdefault(pt["file"], []).append(pt)
    for run in runs.values():
        link = {"rate": run[0]["rate"], "bucket": run[0]["bucket"], "level": run[0]["bucket"]}
        for pt in run:
            calls = pt.get("calls", BENCH_CALLS)
            times = [predict(pt, P, link) for _ in range(calls)][1:]
            out[id(pt)] = statistics.median(times)
    return out


# ---------------------------------------------------------------------------------------------
# Training steps (wide-mlp, 5.8 M parameters): which collectives one step's transfer holds.
WIDE_MLP = 784 * 2048 + 2048 + 2048 * 2048 + 2048 + 2048 * 10 + 10  # 5 824 522 (the runs' .out)
DGC_K = sum(round(0.001 * m) for m in (784 * 2048, 2048 * 2048, 2048 * 10))  # 5820, per tensor
EF21_K = sum(round(0.01 * m) for m in (784 * 2048, 2048 * 2048, 2048 * 10))  # topk:density=0.01
# PowerSGD rank 4 (matrix.sh): P holds rows x 4 of each weight matrix (2048, 2048, 10 rows), Q
# cols x 4 (784, 2048, 2048 columns) and the 1-D tensors (2048 + 2048 + 10 biases).
POWERSGD_P = (2048 + 2048 + 10) * 4
POWERSGD_Q = (784 + 2048 + 2048) * 4 + 2048 + 2048 + 10
HOST_CORES = 16  # the GPU machine's host; matrix.sh gives each rank cores / N threads


@functools.lru_cache(maxsize=None)
def expected_max_normal(N):
    """E[max of N independent standard normals] (numerical integration)."""
    if N <= 1:
        return 0.0
    total, h = 0.0, 0.001
    x = -8.0
    while x < 8.0:
        cdf = 0.5 * (1 + math.erf(x / math.sqrt(2)))
        pdf = math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
        total += x * N * cdf ** (N - 1) * pdf * h
        x += h
    return total


def t_step(method, N, rate, bucket, P, nbytes):
    """The transfer (time_comm_s - time_wait_s, rank 0) of one step; nbytes = the step's
    measured bytes_sent. The step's compute (>= 11 ms) leaves tbf's bucket full when its
    exchange starts. Returns None for methods the model does not cover."""
    link = {"rate": rate, "bucket": bucket, "level": None}
    a, L = P["alpha"], log2c(N)
    n = WIDE_MLP
    full = math.inf
    loss = 2 * L * a  # the mean-loss all_reduce of every step (one element, binomial)
    straggle = P["sigma"] * expected_max_normal(N)
    if method == "dense":  # bucketed all_reduces (Rabenseifner), then the scaling pass
        return (t_all_reduce(N, n, link, P, nbytes=nbytes, ctx="fresh", idle=full) + loss
                + straggle * n * pass_time(P, N))
    if method == "dgc":
        # 1-D tensors dense (binomial, started before compression), the payload all_gatherv
        # (linear), then the decode (counted as compression) before the loss all_reduce
        return ((2 * L + 2 * (N - 1)) * a + wire(nbytes, N, link, full, N - 1, P) + loss
                + straggle * gather_local(N, n, DGC_K, P, "train"))
    # NaN flag all_reduce (the wait), SparseAllReduce, 1-D dense; the copy of the result into
    # the gradients and the residual updates are compression, before the loss all_reduce
    k = DGC_K
    copy = n * pass_time(P, N)
    if method == "dgc-ar":
        local = sparse_local(N, n, k, P, P["c_sparse_ar"], P["s_sparse_ar"], "train")
        return ((7 * (N - 1) + 2 * L) * a + wire(nbytes, N, link, full, N - 1, P) + local
                + loss + straggle * copy)
    if method == "dgc-arf":
        local = sparse_local(N, n, k, P, P["c_fixed"], P["s_fixed"], "train")
        return (((L + 4 * (N - 1)) + 2 * L) * a + wire(nbytes, N, link, full, N - 1, P) + local
                + loss + straggle * copy)
    if method == "ef21-topk":
        # As DGC: lengths all_gather (the wait), 1-D tensors dense, the payload all_gatherv
        # (linear), then the decode (compression) before the loss all_reduce
        return ((2 * L + 2 * (N - 1)) * a + wire(nbytes, N, link, full, N - 1, P) + loss
                + straggle * gather_local(N, n, EF21_K, P, "train"))
    threads = max(1, HOST_CORES // N)  # matrix.sh: --threads = cores / N
    cold = n * pass_time(P, N, threads)  # one pass over the gradient, cold
    if method in ("onebit", "onebit-overlap"):
        # The worker scales all_gather and the loss all_reduce are the wait; the sign all_to_all
        # and the server all_gather (N-1 flows each) the transfer, with the server sum between
        # them (compression: n / N elements, whose spread the all_gather waits for). The
        # overlapped form runs the worker error update (a pass over m and e, writing e) while
        # the all_to_all is in flight: the transfer is the longer of the two.
        server = straggle * 2 * cold / N
        w = wire(nbytes, N, link, full, N - 1, P)
        if method == "onebit-overlap":
            w = max(w, 1.5 * cold)
        return 2 * (N - 1) * a + w + server
    if method == "powersgd":
        # Verdict all_reduce (the wait), P all_reduce, Gram-Schmidt and Q = M^T P (M + e read,
        # M written: 1.5 passes), Q all_reduce, then P Q^T and e (1.5 passes, compression)
        # before the loss all_reduce: Rabenseifner from a copy for each buffer of >= 64 KiB
        pq = [4 * POWERSGD_P, 4 * POWERSGD_Q]
        total = sum(pq)
        t = 0.0
        for b in pq:
            t += t_all_reduce(N, b / 4, link, P, nbytes=nbytes * b / total, ctx="train",
                              idle=full)
        return t + loss + straggle * 3 * cold
    return None


# ---------------------------------------------------------------------------------------------
# Loading.

def dataset_of(path):
    """The data set a file belongs to: the dated results folder it sits in (any depth), else
    the console run (slow-network-<host>-DATE.txt)."""
    for d in path.parents:
        if re.match(r"(h100-host|dev-vm)-\d{4}-\d\d-\d\d[a-z]?$", d.name):
            return d
    return None


def host_of(name):
    return "dev-vm" if name.startswith("dev-vm") else "h100-host"


def run_file(path, ds, name):
    """The file `name` that describes the run that wrote `path`: in its folder or the nearest
    parent up to the results folder `ds` (shaping.json, mpirun_args.txt), else None."""
    if ds is None:
        return None
    for d in [path.parent] + list(path.parent.parents):
        if (d / name).exists():
            return d / name
        if d == ds:
            break
    return None


def bucket_for(path, ds, rate):
    """tbf bucket of the run that wrote `path`: a shaping.json {"burst": B} in its folder or a
    parent up to the results folder, else SHAPING, else netns.sh's default."""
    if rate is None:
        return 0.0
    if ds is not None:
        f = run_file(path, ds, "shaping.json")
        if f is not None:
            return float(json.loads(f.read_text())["burst"])
        rel = path.relative_to(ds).parts
        for (folder, prefix), burst in SHAPING.items():
            if folder == ds.name and (not prefix or (len(rel) > 1 and rel[0].startswith(prefix))):
                return float(burst)
    return default_bucket(rate)


def expand(paths):
    """A folder stands for the benchmark files and training runs under it."""
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted(path.rglob("*.json")) + sorted(path.rglob("*.jsonl"))
            for f in files:
                rel = f.relative_to(path).parts
                if any(p.startswith(("sweep", "tta")) for p in rel[:-1]):  # tta, tta4, tta10
                    continue
                yield f
        else:
            yield path


RUN_NAME = re.compile(r"(\d+)-(\d+(?:mbit|gbit))-([a-z0-9-]+?)(?:\.rank(\d+))?$")


def trimmed_mean(xs, cut=0.1):
    """Mean of xs without its lowest and highest 10 % (int(0.1 len) values at each end)."""
    xs = sorted(xs)
    c = int(len(xs) * cut)
    return statistics.mean(xs[c:len(xs) - c])


def run_statistic(xs):
    """One run's transfer: the 10 %-trimmed mean over its steps. The model predicts an expected
    time (its straggler term is the expected wait for the slowest rank); a step's wait is zero
    when rank 0 is itself the slowest (1 step in N), so a run's steps mix two modes and their
    median jumps between them (0.51 and 0.95 ms for the same 4-rank DGC inputs); trimming keeps
    the rare retransmission stall (a 232 ms step among 30 ms ones) out."""
    return trimmed_mean(xs)


def step_stats(path):
    steps = [r for r in map(json.loads, path.read_text().splitlines())
             if r.get("type") == "step" and r["step"] > WARMUP_STEPS]
    return steps


def load(paths):
    """{host: {"coll": [point], "runs": [run]}}; a run is one training file (rank 0's) with its
    per-rank companions."""
    data = {}
    rank_files = {}
    for path in expand(paths):
        ds = dataset_of(path)
        dsname = ds.name if ds else None
        if path.suffix == ".jsonl":
            m = RUN_NAME.match(path.stem)
            if not m:
                continue
            if m.group(4):  # N-RATE-METHOD.rank<r>.jsonl: another rank's view of the same run
                rank_files.setdefault(path.with_name(path.name.replace(f".rank{m.group(4)}", "")),
                                      {})[int(m.group(4))] = path
                continue
            steps = step_stats(path)
            if not steps:
                continue
            rate = rate_bits(m.group(2))
            d = data.setdefault(host_of(dsname), {"coll": [], "runs": []})
            method = m.group(3)
            # Runs from before the trainer split a method's wait (or the 1-bit optimizer's
            # compression) out of comm measure something else: not repeats of later runs.
            if method == "powersgd" and all(r.get("time_compress_s", 0.0) == 0.0 for r in steps):
                method += " (comm holds the products and the wait)"
            elif method not in ("dense", "powersgd") and all(
                    r.get("time_wait_s", 0.0) == 0.0 for r in steps):
                method += (" (comm holds compression and the wait)"
                           if all(r.get("time_compress_s", 0.0) == 0.0 for r in steps)
                           else " (comm holds the wait)")
            elif method.startswith("onebit") and dsname in LOSS_WAIT_IN_TRANSFER:
                method += " (transfer holds the loss wait)"
            elif method == "powersgd" and dsname in POWERSGD_ONE_THREAD:
                method += " (passes on one thread)"
            # Runs launched with extra mpirun flags (an mpirun_args.txt beside them, e.g. a
            # raised eager limit) measure another transport: their own point, not modelled.
            extra = run_file(path, ds, "mpirun_args.txt")
            if extra is not None:
                method += f" (mpirun {extra.read_text().strip()})"
            d["runs"].append({
                "ds": dsname, "N": int(m.group(1)), "rate": rate, "method": method,
                "bucket": bucket_for(path, ds, rate), "path": path,
                "src": str(path.relative_to(ds)) if ds else path.name,
                "transfer": run_statistic([r["time_comm_s"] - r.get("time_wait_s", 0.0)
                                           for r in steps]),
                "step_median": statistics.median(r["time_comm_s"] - r.get("time_wait_s", 0.0)
                                                 for r in steps),
                "bytes": statistics.median(r["bytes_sent"] for r in steps),
                "checked": True})
            continue
        if path.suffix == ".json":
            j = json.loads(path.read_text())
            rate = rate_bits(path.name)
            cfg = CONFIG.get(dsname, {})
            d = data.setdefault(host_of(dsname or path.name), {"coll": [], "runs": []})
            base = {"ds": dsname or path.parent.name, "rate": rate, "file": str(path),
                    "bucket": bucket_for(path, ds, rate) if ds else default_bucket(rate),
                    "one_bit": cfg.get("one_bit", dsname or "x")}
            if j.get("benchmark") == "one_bit_all_reduce":  # dense, then 1-bit, then pairwise
                for row in j["rows"]:
                    N = row["ranks"]
                    calls = j.get("reps", 5) + 1
                    for algo, ms, b in (("all_reduce", row["dense_ms"], row["bytes_dense"]),
                                        ("one_bit_all_reduce", row["onebit_ms"],
                                         row["bytes_onebit"])):
                        d["coll"].append(dict(base, N=N, algo=algo, n=row["numel"],
                                              k=row["numel"], bytes=b, ms=ms, calls=calls,
                                              threads=row.get("threads", 1)))
                continue
            if j.get("benchmark", "collectives") != "collectives" or not j.get("rows") or not all(
                    "algo" in row for row in j.get("rows", [])):
                continue
            for row in j["rows"]:
                N = row.get("ranks", j.get("ranks"))
                d["coll"].append(dict(base, N=N, algo=row["algo"], n=row["numel"], k=row["k"],
                                      bytes=row.get("bytes_sent"), ms=row["ms"],
                                      calls=j.get("reps", 5) + 1,
                                      threads=max(1, cfg.get("cores", N) // N)))
            continue
        # the console output of slow-network-device.sh
        text = path.read_text()
        rate = rate_bits(path.name) if re.search(r"\d+(mbit|gbit)", path.name) else 1e9
        m = re.search(r"slow-network-(.*?)-(\d{4}-\d\d-\d\d)", path.name)
        dsname = f"{m.group(1)}-{m.group(2)} console" if m else path.name
        cfg = CONFIG.get(dsname, {})
        d = data.setdefault(host_of(dsname), {"coll": [], "runs": []})
        N = int(re.search(r"collectives on (\d+) ranks", text).group(1))
        for m in re.finditer(r"^(\w+)\s+(\d+)\s+([\d.]+)\s+(\d+)\s+([\d.]+) ms\s+(\d+) B/rank",
                             text, re.M):
            d["coll"].append({"ds": dsname, "rate": rate, "file": str(path),
                              "bucket": default_bucket(rate), "N": N, "algo": m.group(1),
                              "n": int(m.group(2)), "k": int(m.group(4)),
                              "ms": float(m.group(5)), "bytes": int(m.group(6)),
                              "one_bit": cfg.get("one_bit", dsname),
                              "threads": max(1, cfg.get("cores", N) // N)})
        for m in re.finditer(r"^(\d+)-(\d+\w+)-([\w-]+): \d+ steps, step [\d.]+ ms = compute [\d.]+"
                             r" \+ compress [\d.]+ \+ comm ([\d.]+) \+ optim [\d.]+; ([\d.]+) MB",
                             text, re.M):
            r = rate_bits(m.group(2))
            d["runs"].append({"ds": dsname, "N": int(m.group(1)), "rate": r, "method": m.group(3),
                              "bucket": default_bucket(r), "path": path, "src": path.name,
                              "transfer": float(m.group(4)) / 1e3,
                              "step_median": float(m.group(4)) / 1e3,
                              "bytes": float(m.group(5)) * 1e6, "checked": False})
    for d in data.values():
        for run in d["runs"]:
            run["ranks"] = rank_files.get(run["path"], {})
    return data


def rank_transfers(run):
    """Each other rank's median transfer (its own file, --metrics-every-rank), if written."""
    out = {}
    for r, f in sorted(run["ranks"].items()):
        steps = step_stats(f)
        if steps:
            out[r] = statistics.median(s["time_comm_s"] - s.get("time_wait_s", 0.0) for s in steps)
    return out


def step_points(runs):
    """Repeats grouped: runs of the host with the model's inputs equal (ranks, rate, bucket,
    method; their bytes agree within 1 %), whichever results folder holds them. The point is
    the median over the repeats."""
    groups = {}
    for run in runs:
        key = (run["N"], run["rate"], run["bucket"], run["method"], run["checked"])
        groups.setdefault(key, []).append(run)
    pts = []
    for (N, rate, bucket, method, checked), rs in groups.items():
        rs.sort(key=lambda r: (r["ds"], r["src"]))
        ds = " + ".join(sorted({r["ds"] for r in rs}))
        pts.append({"ds": ds, "N": N, "rate": rate, "bucket": bucket, "method": method,
                    "checked": checked, "runs": rs,
                    "transfer": statistics.median(r["transfer"] for r in rs),
                    "bytes": statistics.median(r["bytes"] for r in rs)})
    return pts


# ---------------------------------------------------------------------------------------------
# Fitting.

def excluded(pt):
    return EXCLUDED.get((pt["ds"], pt["N"], pt["rate"], pt["algo"], pt["n"]))


# c_gather is not fitted: the all-gather's local passes are two by its code (zeroing the output,
# writing each element once with its read-for-ownership, and the averaging pass, reading and
# writing each element once), which sets the scale of the passes and the bandwidths (a pass
# count and a bandwidth trade off one for one otherwise).
FIT_NAMES = ("alpha", "kappa", "pace", "rank_cap", "bw1", "bw", "bw_l3", "l3", "c_dense",
             "s_gather", "c_sparse_ar", "s_sparse_ar", "c_fixed", "s_fixed")
START = dict(alpha=15e-6, goodput=GOODPUT_ONE_FLOW, kappa=0.05, pace=0.3e-9, rank_cap=10e9,
             bw1=15e9, bw=100e9, bw_l3=30e9, l3=150e6, c_dense=2.0, c_gather=2.0, s_gather=1e-8,
             c_sparse_ar=1.0, s_sparse_ar=5e-8, c_fixed=1.0, s_fixed=5e-8, sigma=0.15)
OVERLAPPED = {"v2"}  # 1-bit implementations that run error updates while collectives fly
L3_NOMINAL = 314572800  # the host's L3 (lscpu, optim-64M.json l3_bytes): the share's upper bound
UPPER = {"l3": L3_NOMINAL}


def log_errors(points, preds):
    return [math.log(preds[id(pt)] / (pt["ms"] / 1e3)) for pt in points]


def solve(A, g):
    """x with A x = g (Gaussian elimination with partial pivoting; A small and dense)."""
    m = len(g)
    M = [row[:] + [g[i]] for i, row in enumerate(A)]
    for c in range(m):
        piv = max(range(c, m), key=lambda r: abs(M[r][c]))
        M[c], M[piv] = M[piv], M[c]
        if abs(M[c][c]) < 1e-300:
            continue
        for r in range(c + 1, m):
            f = M[r][c] / M[c][c]
            if f:
                for j in range(c, m + 1):
                    M[r][j] -= f * M[c][j]
    x = [0.0] * m
    for c in range(m - 1, -1, -1):
        if abs(M[c][c]) < 1e-300:
            continue
        x[c] = (M[c][m] - sum(M[c][j] * x[j] for j in range(c + 1, m))) / M[c][c]
    return x


def levenberg_marquardt(points, every, P, names, iters):
    """Least squares on log(model / measured) over the log of the named parameters."""
    if not names:
        return P, sum(e * e for e in log_errors(points, predict_runs(every, P)))

    def with_x(x):
        Q = dict(P)
        for name, v in zip(names, x):
            Q[name] = min(math.exp(v), UPPER.get(name, 1.0 if name.startswith("ov_") else math.inf))
        return Q

    def resid(x):
        return log_errors(points, predict_runs(every, with_x(x)))
    x = [math.log(P[name]) for name in names]
    r = resid(x)
    cost = sum(e * e for e in r)
    lam, h = 1e-2, 1e-3
    for _ in range(iters):
        cols = []
        for j in range(len(x)):
            x2 = list(x)
            x2[j] += h
            r2 = resid(x2)
            cols.append([(b - a) / h for a, b in zip(r, r2)])
        m = len(x)
        A = [[sum(cols[i][t] * cols[j][t] for t in range(len(r))) for j in range(m)]
             for i in range(m)]
        g = [-sum(cols[i][t] * r[t] for t in range(len(r))) for i in range(m)]
        improved = False
        while lam < 1e8:
            B = [[A[i][j] + (lam * (A[i][i] + 1e-9) if i == j else 0.0) for j in range(m)]
                 for i in range(m)]
            d = solve(B, g)
            big = max(abs(v) for v in d)
            if big > 2.0:
                d = [v * 2.0 / big for v in d]
            xn = [a + b for a, b in zip(x, d)]
            rn = resid(xn)
            cn = sum(e * e for e in rn)
            if cn < cost:
                gain = cost - cn
                x, r, cost = xn, rn, cn
                lam = max(lam / 3, 1e-9)
                improved = True
                break
            lam *= 4
        if not improved or gain < 1e-7 * max(cost, 1e-12):
            break
    return with_x(x), cost


def fit(points, every=None, start=None):
    """All of the host's parameters at once (Levenberg-Marquardt on their logarithms)."""
    every = points if every is None else every
    P = dict(START if start is None else start)
    for pt in every:
        if pt["algo"] == "one_bit_all_reduce":
            P.setdefault("q_" + pt["one_bit"], 6.0)
            if pt["one_bit"] in OVERLAPPED:
                P.setdefault("ov_" + pt["one_bit"], 0.5)
    used = set(pt["algo"] for pt in points)
    names = [x for x in FIT_NAMES if not (
        (x in ("c_gather", "s_gather") and "sparse_all_gather" not in used)
        or (x in ("c_sparse_ar", "s_sparse_ar") and "sparse_all_reduce" not in used)
        or (x in ("c_fixed", "s_fixed") and "sparse_all_reduce_fixed" not in used))]
    names += sorted({"q_" + pt["one_bit"] for pt in points if pt["algo"] == "one_bit_all_reduce"})
    names += sorted({"ov_" + pt["one_bit"] for pt in points
                     if pt["algo"] == "one_bit_all_reduce" and pt["one_bit"] in OVERLAPPED})
    P, cost = levenberg_marquardt(points, every, P, names, 80)
    return P


def fit_sigma(P, steps):
    """The ranks' spread sigma, least squares on log(model / measured) over `steps`."""
    best = None
    for i in range(0, 201):
        s = i * 0.005
        Q = dict(P, sigma=s)
        v = 0.0
        for pt in steps:
            pred = t_step(pt["method"], pt["N"], pt["rate"], pt["bucket"], Q, pt["bytes"])
            if pred is not None:
                v += math.log(pred / pt["transfer"]) ** 2
        if best is None or v < best[0]:
            best = (v, s)
    return best[1]


# ---------------------------------------------------------------------------------------------
# Output.

def rate_name(rate):
    if not rate:
        return "unshaped"
    return f"{rate / 1e9:g} Gbit/s" if rate >= 1e9 else f"{rate / 1e6:g} Mbit/s"


def bucket_name(b):
    return f"{b / 1000:g} KB" if b < 1e6 else f"{b / 1e6:g} MB"


def describe(P):
    q = ", ".join(f"{k[2:]} {v:.2f}" for k, v in sorted(P.items()) if k.startswith("q_"))
    ms = lambda t: f"{t * WIDE_MLP * 1e3:.2f} ms"  # noqa: E731
    return (f"alpha = {P['alpha'] * 1e6:.1f} us/round; goodput {P['goodput']:.3f} of the rate "
            f"(measured, not fitted); kappa = {P['kappa']:.3f} per flow beyond tbf's queue; TCP "
            f"cap {P['rank_cap'] / 1e9:.1f} Gbit/s per rank; tbf pacing {P['pace'] * 1e9:.2f} ns per "
            f"paced byte; memory (copy bandwidth, read + write bytes): {P['bw1'] / 1e9:.1f} GB/s "
            f"one thread alone, {P['bw'] / 1e9:.1f} GB/s shared by the host's ranks, "
            f"{P['bw_l3'] / 1e9:.1f} GB/s per thread from the L3, whose share holds "
            f"{P['l3'] / 1e6:.0f} MB of the ranks' buffers (a pass over 5.8 M f32 from memory: "
            f"{ms(pass_time(P, 1))} alone, {ms(pass_time(P, 4))} at 4 ranks, "
            f"{ms(pass_time(P, 8))} at 8; from the L3 {ms(8.0 / P['bw_l3'])}); passes: dense "
            f"all_reduce {P['c_dense']:.2f}, sparse all-gather {P['c_gather']:.2f} + "
            f"{P['s_gather'] * 1e9:.1f} ns per received pair, sparse all-reduce "
            f"{P['c_sparse_ar']:.2f} + {P['s_sparse_ar'] * 1e9:.0f} ns/pair, fixed quotas "
            f"{P['c_fixed']:.2f} + {P['s_fixed'] * 1e9:.0f} ns/pair, 1-bit all-reduce ({q}); "
            f"training: the ranks' spread sigma = {P.get('sigma', 0):.3f} of their local work")


def coll_table(points, preds):
    """Prints the collectives table; returns [(data set, error, what)] of the checked points."""
    print("| data set | ranks | link | bucket | algorithm | elements | k | measured ms | model ms "
          "| error |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    out = []
    for pt in sorted(points, key=lambda x: (x["ds"], x["N"], x["rate"] or 1e30, x["file"])):
        pred = preds[id(pt)] * 1e3
        err = pred / pt["ms"] - 1
        why = excluded(pt)
        note = f"{err:+.0%}" + (f" (excluded, {why})" if why else "")
        if not why:
            out.append((pt["ds"], err, f"{pt['ds']}: {pt['algo']} N={pt['N']} "
                                       f"{rate_name(pt['rate'])} k={pt['k']}"))
        print(f"| {pt['ds']} | {pt['N']} | {rate_name(pt['rate'])} | {bucket_name(pt['bucket'])} | "
              f"{pt['algo']} | {pt['n']} | {pt['k']} | {pt['ms']:.3f} | {pred:.3f} | {note} |")
    return out


def run_label(r):
    """A run's folder, short: 2026-11-23/matrix-call3, 2026-11-24e/call2/p1."""
    parent = str(Path(r["src"]).parent)
    ds = re.sub(r"^(h100-host|dev-vm)-", "", r["ds"] or "")
    return ds + ("/" + parent if parent not in ("", ".") else "")


def step_table(pts, P):
    """Prints the training table; returns [(data sets, error, what)] of the checked points."""
    print("| ranks | link | bucket | method | bytes/rank | measured ms: median of the repeats | "
          "repeats: run = trimmed mean of its steps [their median] | model ms | error |")
    print("|---|---|---|---|---|---|---|---|---|")
    out = []
    for pt in sorted(pts, key=lambda x: (not x["checked"], x["method"], -x["N"],
                                         x["rate"] or 1e30, x["bucket"])):
        pred = t_step(pt["method"], pt["N"], pt["rate"], pt["bucket"], P, pt["bytes"])
        reps = ", ".join(f"{run_label(r)} {r['transfer'] * 1e3:.2f} [{r['step_median'] * 1e3:.2f}]"
                         for r in pt["runs"])
        if len(pt["runs"]) > 1:
            vals = [r["transfer"] * 1e3 for r in pt["runs"]]
            reps += f"; spread {min(vals):.2f}-{max(vals):.2f} over {len(vals)} runs"
        for r in pt["runs"]:
            rt = rank_transfers(r)
            if rt:
                reps += (f"; {run_label(r)} other ranks' own medians: "
                         + " ".join(f"r{k} {v * 1e3:.2f}" for k, v in rt.items()))
        head = (f"| {pt['N']} | {rate_name(pt['rate'])} | {bucket_name(pt['bucket'])} | "
                f"{pt['method']} | {pt['bytes']:.0f} | {pt['transfer'] * 1e3:.2f} | {reps} |")
        if pred is None:
            print(f"{head} not modelled | |")
            continue
        err = pred / pt["transfer"] - 1
        note = f"{err:+.0%}"
        if not pt["checked"]:
            note += " (console: comm includes the wait for the slowest rank; not checked)"
        elif pt["method"] not in CHECKED_METHODS:
            note += " (predicted; not checked)"
        else:
            note += " (sigma fitted on these)" if sigma_fits(pt) else " (predicted)"
            out.append(({r["ds"] for r in pt["runs"]}, err,
                        f"training transfer {pt['method']} N={pt['N']} {rate_name(pt['rate'])} "
                        f"bucket {bucket_name(pt['bucket'])} ({len(pt['runs'])} runs)"))
        print(f"{head} {pred * 1e3:.2f} | {note} |")
    return out


# Methods whose training transfers sigma is fitted on (their default-bucket runs), and those the
# model is checked on (CTest's --check training): the same. 1-bit Adam, PowerSGD and EF21 +
# Top-k (modelled since 2026-11-24i) are predicted with no parameter of their own and printed,
# not yet checked: 6 of their 19 cells are outside 25 % (docs/results.md; PowerSGD's one, at 4
# ranks and 10 Gbit/s, has runs of 1.07 and 1.88 ms against the model's 0.83).
SIGMA_METHODS = {"dense", "dgc", "dgc-ar", "dgc-arf"}
CHECKED_METHODS = set(SIGMA_METHODS)


def sigma_fits(pt):
    """The training points sigma is fitted on: netns.sh's default bucket, SIGMA_METHODS. The
    16 KB and 64 KB bucket runs (2026-11-24, -24e) are predicted with it."""
    return (pt["checked"] and pt["method"] in SIGMA_METHODS
            and pt["bucket"] == default_bucket(pt["rate"]))


def fit_host(d):
    kept = [pt for pt in d["coll"] if not excluded(pt)]
    P = fit(kept, d["coll"])
    steps = [pt for pt in step_points(d["runs"]) if sigma_fits(pt)]
    P["sigma"] = fit_sigma(P, steps) if steps else 0.0
    return P


def holdout(d):
    """Refit on part of the collectives points (from the start values, not the full fit) and
    predict the rest: each link rate, each rank count and each data set left out in turn, and a
    6-fold cross-validation. Parameters the remaining points do not constrain keep their start
    values; the table names them."""
    kept = [pt for pt in d["coll"] if not excluded(pt)]
    cases = []
    for r in sorted({pt["rate"] or math.inf for pt in kept}):
        r = None if r == math.inf else r
        cases.append((f"the {rate_name(r)} points", lambda pt, r=r: pt["rate"] == r))
    for N in sorted({pt["N"] for pt in kept}):
        cases.append((f"the {N}-rank points", lambda pt, N=N: pt["N"] == N))
    for ds in sorted({pt["ds"] for pt in kept}):
        cases.append((f"the {ds} points", lambda pt, ds=ds: pt["ds"] == ds))
    order = sorted(kept, key=lambda pt: (pt["ds"], pt["N"], pt["rate"] or 0, pt["algo"], pt["k"]))
    fold = {id(pt): i % 6 for i, pt in enumerate(order)}
    print("\n### Hold-out: refit without some collectives points, predict them\n")
    print("| left out | points | within 25 % | median error | largest error | worst point | "
          "parameters the rest leaves unconstrained (start values kept) |")
    print("|---|---|---|---|---|---|---|")
    results = []

    def run(what, outs):
        errs, free = [], set()
        for out in outs:
            test = [pt for pt in kept if out(pt)]
            train = [pt for pt in kept if not out(pt)]
            if not test or not train:
                return
            P = fit(train, d["coll"])
            base = sum(e * e for e in log_errors(train, predict_runs(d["coll"], P)))
            for name in P:
                if name in ("goodput", "sigma"):
                    continue
                Q = dict(P)
                Q[name] *= 1.5
                if abs(sum(e * e for e in log_errors(train, predict_runs(d["coll"], Q))) - base) < 1e-9:
                    free.add(name)
            preds = predict_runs(d["coll"], P)
            errs += [(preds[id(pt)] / (pt["ms"] / 1e3) - 1, pt) for pt in test]
        worst = max(errs, key=lambda e: abs(e[0]))
        ok = sum(abs(e) <= 0.25 for e, _ in errs)
        med = statistics.median(abs(e) for e, _ in errs)
        w = worst[1]
        print(f"| {what} | {len(errs)} | {ok} | {med:.0%} | {worst[0]:+.0%} | {w['ds']} {w['algo']} "
              f"N={w['N']} {rate_name(w['rate'])} k={w['k']} | {', '.join(sorted(free)) or '-'} |")
        results.append((what, len(errs), ok, med, worst[0]))
    for what, out in cases:
        run(what, [out])
    run("each sixth in turn (6-fold cross-validation)",
        [lambda pt, f=f: fold[id(pt)] == f for f in range(6)])
    return results


def main(argv):
    plot_dir = None
    max_error = None
    check = "all"
    do_holdout = False
    while argv and argv[0] in ("--plot", "--max-error", "--holdout", "--check"):
        if argv[0] == "--holdout":
            do_holdout = True
            argv = argv[1:]
            continue
        if len(argv) < 2:
            sys.exit(__doc__)
        if argv[0] == "--plot":
            plot_dir = Path(argv[1])
        elif argv[0] == "--check":
            check = argv[1]
            if check not in ("all", "collectives", "training"):
                sys.exit(f"--check takes all, collectives or training, not {check!r}")
        else:
            max_error = float(argv[1])
        argv = argv[2:]
    if not argv:
        sys.exit(__doc__)
    misses, others = [], []
    data = load(argv)
    fitted = {}
    for host, d in sorted(data.items()):
        P = fit_host(d)
        fitted[host] = P
        preds = predict_runs(d["coll"], P)
        print(f"\n### {host}: {describe(P)}\n")
        print(f"Fitted on the {sum(1 for pt in d['coll'] if not excluded(pt))} collectives points "
              f"below at once; the training transfers are predicted from them (sigma alone is "
              f"fitted on training transfers: those with netns.sh's default bucket).\n")
        coll = coll_table(d["coll"], preds) if d["coll"] else []
        pts = step_points(d["runs"])
        steps = []
        if pts:
            print("\nTraining transfers (time_comm_s - time_wait_s, rank 0). A run's value is the "
                  f"10 %-trimmed mean of its steps after {WARMUP_STEPS} warm-up steps (their median "
                  "in brackets); runs with the same inputs (ranks, rate, bucket, method) are "
                  "repeats, whichever folder holds them, and the measured point is the median over "
                  "the repeats, their spread beside it. Nothing is dropped.\n")
            steps = step_table(pts, P)
        print(f"\n{host}: largest error per data set (checked points)\n")
        print("| data set | collectives points | within 25 % | largest error | training points "
              "with runs here | within 25 % | largest error |")
        print("|---|---|---|---|---|---|---|")
        for ds in sorted({x[0] for x in coll} | {y for x in steps for y in x[0]}):
            c = [e for x, e, _ in coll if x == ds]
            t = [e for x, e, _ in steps if ds in x]

            def cell(es):
                if not es:
                    return "0 | | "
                return (f"{len(es)} | {sum(abs(e) <= 0.25 for e in es)} | "
                        f"{max(es, key=abs):+.0%}")
            print(f"| {ds} | {cell(c)} | {cell(t)} |")
        if max_error is not None:
            for kind, recs in (("collectives", coll), ("training", steps)):
                for _, e, what in recs:
                    if abs(e) > max_error:
                        (misses if check in ("all", kind) else others).append(f"{what}: {e:+.0%}")
        if do_holdout and d["coll"]:
            holdout(d)
            steps_holdout(pts, P)
    if plot_dir:
        best = "h100-host" if "h100-host" in fitted else next(iter(fitted))
        project(fitted[best], best, plot_dir)
    if others:
        print(f"\nNot checked (--check {check}), off by more than {max_error:.0%}:\n  "
              + "\n  ".join(others))
    if misses:
        print(f"\n{len(misses)} predictions off by more than {max_error:.0%}:\n  " +
              "\n  ".join(misses), file=sys.stderr)
        sys.exit(1)


def steps_holdout(pts, P):
    """The training transfers sigma was not fitted on: the small-bucket runs."""
    rows = [pt for pt in pts
            if pt["checked"] and pt["method"] in SIGMA_METHODS and not sigma_fits(pt)]
    if not rows:
        return
    errs = []
    for pt in rows:
        pred = t_step(pt["method"], pt["N"], pt["rate"], pt["bucket"], P, pt["bytes"])
        if pred is not None:
            errs.append(pred / pt["transfer"] - 1)
    print(f"\nTraining transfers with a bucket other than netns.sh's default (sigma not fitted on "
          f"them): {len(errs)} points, {sum(abs(e) <= 0.25 for e in errs)} within 25 %, largest "
          f"error {max(errs, key=abs):+.0%}.")


RESNET50 = 25_557_032  # ResNet-50's gradient, as in the DGC paper


def bytes_table():
    """Bytes per rank of the sparse exchanges against the dense ring all-reduce."""
    print("\n### Bytes per rank: fixed-quota sparse all-reduce vs 2 k 8 (water-filled's payload "
          "bound), DGC's all-gather and the dense ring all-reduce\n")
    for n, k, what in ((RESNET50, round(0.001 * RESNET50), "ResNet-50 at 0.1 %"),
                       (5_800_000, 5800, "wide-mlp at 0.1 %")):
        print(f"k = {k} ({what}, n = {n}); fixed = 16 (k - floor(k/N)) + {FIXED_CONTROL_BYTES} "
              f"ceil(log2 N); "
              f"bound 2 k 8 = {16 * k} B, guaranteed where k >= 5 N ceil(log2 N)\n")
        print("| N | 5 N ceil(log2 N) | k >= it | fixed quotas B | <= 2 k 8 | all-gather (N-1) 8 k B "
              "| dense ring 2 (N-1)/N 4 n B | all-gather / dense |")
        print("|---|---|---|---|---|---|---|---|")
        for N in (2 ** i for i in range(4, 11)):
            kmin = 5 * N * log2c(N)
            fb = fixed_bytes(N, k)
            ag = (N - 1) * 8 * k
            dense = 2 * (N - 1) / N * 4 * n
            assert k < kmin or fb <= 16 * k, (N, k)
            print(f"| {N} | {kmin} | {'yes' if k >= kmin else 'no'} | {fb} | "
                  f"{'yes' if fb <= 16 * k else 'NO'} | {ag} | {dense:.0f} | {ag / dense:.2f} |")
        print(f"\nbytes: the all-gather sends more than the dense ring all-reduce from N = "
              f"{next(N for N in range(2, 100000) if (N - 1) * 8 * k > 2 * (N - 1) / N * 4 * n)} "
              f"(N > n / k)\n")


def cluster(P):
    """The host's parameters for a real cluster: one worker per host (its memory to itself,
    one thread), no tbf bucket or queue, no veth caps; goodput and alpha as fitted."""
    return dict(P, rank_cap=1e15, kappa=0.0, pace=0.0)


def project(P, machine, plot_dir):
    """Communication time per step for 16..1024 workers at 1, 10, 100 Gbit/s."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    C = cluster(P)
    ns = [2 ** i for i in range(2, 11)]
    n = RESNET50
    k = round(0.001 * n)
    q = P.get("q_v2", next(v for kk, v in P.items() if kk.startswith("q_")))

    def link(r):
        return {"rate": r, "bucket": 0.0, "level": None}
    algos = {
        "dense ring all-reduce": lambda N, r: t_all_reduce(N, n, link(r), C, ring=True, ctx="cluster"),
        "dense Rabenseifner": lambda N, r: t_all_reduce(N, n, link(r), C, ctx="cluster"),
        "DGC sparse all-gather (0.1 %)":
            lambda N, r: t_sparse_all_gather(N, n, k, link(r), C, ctx="cluster"),
        "Ok-Topk sparse all-reduce (0.1 %)":
            lambda N, r: t_sparse_all_reduce(N, n, k, link(r), C, ctx="cluster"),
        "fixed-quota sparse all-reduce (0.1 %)":
            lambda N, r: t_sparse_all_reduce_fixed(N, n, k, link(r), C, ctx="cluster"),
        "1-bit all-reduce (1 thread)": lambda N, r: t_one_bit(N, n, link(r), C, q, 1, ctx="cluster"),
    }
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
    print(f"\n### Projection: ResNet-50 gradient ({n} f32), density 0.001, parameters fitted on "
          f"{machine}; one worker per host (its memory bandwidth to itself: a pass over 5.8 M f32 "
          f"= {pass_time(C, 1) * WIDE_MLP * 1e3:.2f} ms), goodput {C['goodput']:.3f}, no tbf, "
          f"no veth caps\n")
    print(f"Fixed quotas: the projection and the bytes table use FIXED_CONTROL_BYTES = "
          f"{FIXED_CONTROL_BYTES} B of control per recursive-doubling round; the measured points "
          f"were taken with {MEASURED_FIXED_CONTROL_BYTES} B (10 x i64), fitted as such (the "
          f"difference is under 2 us per round at 1 Gbit/s).\n")
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
    fig.suptitle(f"terse cost model: ResNet-50 gradient (25.6 M f32), alpha-beta fitted on "
                 f"shaped-link measurements ({machine})")
    fig.tight_layout()
    plot_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(plot_dir / "cost_model_projection.png", dpi=110)
    print()
    # Where the all-gather stops paying against the dense ring all-reduce, and what takes over.
    for kk, nn, what in ((k, n, "ResNet-50, k = 0.1 %"), (5800, 5_800_000, "wide-mlp, k = 5800")):
        for rate in (1e9, 10e9, 100e9):
            def first(f):
                return next((N for N in range(2, 1 << 16)
                             if f(N) > t_all_reduce(N, nn, link(rate), C, ring=True, ctx="cluster")),
                            None)
            cross = first(lambda N: t_sparse_all_gather(N, nn, kk, link(rate), C, ctx="cluster"))
            fx = first(lambda N: t_sparse_all_reduce_fixed(N, nn, kk, link(rate), C, ctx="cluster"))
            over = next((N for N in range(2, 1 << 16)
                         if t_sparse_all_gather(N, nn, kk, link(rate), C, ctx="cluster")
                         > t_sparse_all_reduce_fixed(N, nn, kk, link(rate), C, ctx="cluster")), None)
            fixed_first = "at every N" if over == 2 else f"from N = {over}"
            print(f"{what}, {rate_name(rate)}: the sparse all-gather costs more than the dense ring "
                  f"all-reduce from N = {cross} workers (more than the fixed-quota all-reduce "
                  f"{fixed_first}); the fixed-quota all-reduce costs more than the dense ring "
                  f"from N = {fx or 'none below 65536'}")
    bytes_table()


if __name__ == "__main__":
    main(sys.argv[1:])
