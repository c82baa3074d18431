#!/usr/bin/env bash
# matrix.sh OUT_DIR "N ..." "RATE ..." METHOD ...   (root; issue 5's step-time measurements)
# For every rank count N, link rate RATE (tc syntax, or none) and METHOD, trains the
# communication-bound wide-mlp (5.8 M parameters, Fashion-MNIST, batch 64 per rank) for a few
# steps under run.sh (one rank per shaped namespace) and writes OUT_DIR/N-RATE-METHOD.jsonl
# (--metrics: the per-step compute / compression / communication split) and .out/.err.
# The first SKIP steps (warm-up: MPI connections, 1-bit Adam's dense phase, PowerSGD's start)
# are run but not meant to be measured; then STEPS more (fewer at 100mbit, where a dense
# step takes seconds). scripts/slow-network-report.py turns the files into tables and plots.
# METHOD: dense | dgc | dgc-ar (Ok-Topk, water-filled) | dgc-arf (fixed quotas) | onebit |
# onebit-overlap (1-bit Adam with its worker error update under the all-to-all, as before 2026-11-24) |
# powersgd | ef21-topk (see method_args below).
# Env: TERSE (binary, default build/release/apps/terse/terse), THREADS (per rank, default
# cores / N), STEPS (default 20; STEPS_SLOW at 100mbit, default 8), SKIP (default 5), BATCH
# (default 64), RUN_TIMEOUT (seconds per run, default 150).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
die() {
  echo "matrix.sh: error: $*" >&2
  exit 2
}
(($# >= 4)) || die "usage: matrix.sh OUT_DIR \"N ...\" \"RATE ...\" METHOD ... (got '$*')"
out=$1 ns=$2 rates=$3
shift 3
terse=$(readlink -f "${TERSE:-build/release/apps/terse/terse}")
[[ -x $terse ]] || die "no terse binary at $terse; build it (scripts/build.sh release) or set TERSE"
skip=${SKIP:-5} batch=${BATCH:-64}
mkdir -p "$out"

method_args() { # METHOD SKIP
  local sgd=sgd:lr=0.1,momentum=0.9
  case $1 in
  dense) echo "--optimizer $sgd" ;;
  dgc) echo "--optimizer $sgd --compress dgc:density=0.001" ;;
  dgc-ar) echo "--optimizer $sgd --compress dgc:density=0.001,exchange=allreduce" ;;
  dgc-arf) echo "--optimizer $sgd --compress dgc:density=0.001,exchange=allreduce,quota=fixed" ;;
  onebit) echo "--optimizer onebit_adam:lr=0.001,eps=0.0001,freeze_step=$2" ;;
  onebit-overlap) echo "--optimizer onebit_adam:lr=0.001,eps=0.0001,freeze_step=$2,defer_worker_error=false" ;;
  powersgd) echo "--optimizer $sgd --compress powersgd:rank=4,start=$2" ;;
  ef21-topk) echo "--optimizer $sgd --compress topk:density=0.01 --feedback ef21" ;;
  *) die "unknown method '$1'; use dense, dgc, dgc-ar, dgc-arf, onebit, onebit-overlap, powersgd or ef21-topk" ;;
  esac
}
for m in "$@"; do method_args "$m" 1 >/dev/null; done

for n in $ns; do
  threads=${THREADS:-$(($(nproc) / n))}
  ((threads >= 1)) || threads=1
  for rate in $rates; do
    steps=${STEPS:-20}
    [[ $rate == 100mbit ]] && steps=${STEPS_SLOW:-8}
    for m in "$@"; do
      name=$n-$rate-$m
      limit=$(((skip + steps) * batch * n))
      # A launch through the rsh agent very rarely hangs before the first step (seen once in
      # ~40 runs, the orteds up and no rank started); a bounded run and one retry keep a
      # matrix from stalling on it.
      rc=1
      for attempt in 1 2; do
        # shellcheck disable=SC2046 # method_args is a word list on purpose
        timeout -k 10 "${RUN_TIMEOUT:-150}" "$here/run.sh" "$n" "$rate" -- "$terse" train \
          --model wide-mlp --epochs 1 --batch-size "$batch" --train-limit "$limit" \
          --test-limit 512 --threads "$threads" --lr-schedule constant --timeout 120 \
          $(method_args "$m" "$skip") --metrics "$out/$name.jsonl" --metrics-every-rank -q \
          >"$out/$name.out" 2>"$out/$name.err" && { rc=0; break; } || rc=$?
        echo "$name: attempt $attempt failed with status $rc; tail of $out/$name.err:"
        tail -3 "$out/$name.err"
        "$here/netns.sh" down >/dev/null 2>&1 || true
      done
      ((rc == 0)) || continue
      python3 - "$out/$name.jsonl" "$skip" "$name" <<'PY'
import json, statistics, sys
path, skip, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
steps = [json.loads(l) for l in open(path) if '"type":"step"' in l][skip:]
for s in steps: s.setdefault('time_wait_s', 0.0)
med = lambda k: statistics.median(s.get(k, 0.0) for s in steps)
print(f"{name}: {len(steps)} steps, step {med('time_step_s')*1e3:.1f} ms = compute "
      f"{med('time_compute_s')*1e3:.1f} + compress {med('time_compress_s')*1e3:.1f} + comm "
      f"{med('time_comm_s')*1e3:.1f} (wait {med('time_wait_s')*1e3:.1f}, transfer "
      f"{statistics.median((s['time_comm_s'] - s['time_wait_s']) for s in steps)*1e3:.1f}) + optim "
      f"{med('time_optim_s')*1e3:.1f}; "
      f"{med('bytes_sent')/1e6:.3f} MB sent/rank")
# Every rank's own file (--metrics-every-rank): its local work (compute + compress + optim) and
# its wait, medians over the same steps; the rank with the most work is the one the others wait
# for.
import glob, os, re
stem, ext = os.path.splitext(path)
files = {0: path}
for f in glob.glob(glob.escape(stem) + '.rank*' + ext):
    m = re.search(r'\.rank(\d+)' + re.escape(ext) + '$', f)
    if m: files[int(m.group(1))] = f
if len(files) > 1:
    cells = []
    for r in sorted(files):
        st = [json.loads(l) for l in open(files[r]) if '"type":"step"' in l][skip:]
        if not st: continue
        work = statistics.median(s['time_compute_s'] + s['time_compress_s'] + s['time_optim_s'] for s in st)
        wait = statistics.median(s.get('time_wait_s', 0.0) for s in st)
        cells.append(f"r{r} {work*1e3:.1f}/{wait*1e3:.1f}")
    print(f"{name}: per rank, local work / wait ms: " + ", ".join(cells))
PY
    done
  done
done
