#!/bin/bash
# Before/after runs of dgc_step_bench (fused off = the unfused path, on = DgcStepState), steps
# interleaved; from the repository root. Two copies at once show contention on the 2 cores.
B=${B:-build/x/bench/dgc_step_bench}
O=${O:-bench/results/dev-vm-2026-11-24-dgc-step}
for rep in 1 2 3; do
  for t in 1 2; do
    $B --steps 30 --threads $t --json $O/single_t${t}_r${rep}.json > $O/single_t${t}_r${rep}.txt
  done
  for t in 1 2; do
    $B --steps 30 --threads $t --seed 1 --json $O/pair_t${t}_r${rep}_a.json > $O/pair_t${t}_r${rep}_a.txt &
    $B --steps 30 --threads $t --seed 2 --json $O/pair_t${t}_r${rep}_b.json > $O/pair_t${t}_r${rep}_b.txt &
    wait
  done
done
