#include "optim/optim_entry.h"

namespace terse_bench {

// Adding an optimizer to terse's registry: add its row here, or optim_bench refuses to run.
// 8-bit codes: 1 B per state read and written, plus one f32 absmax per 256 elements read and
// written (2 * 4 / 256 B per state). Option strings use the official defaults or the values
// their READMEs recommend; sgd/adam/adamw match the libtorch comparison.
const std::vector<OptimEntry>& OptimEntry::table() {
  constexpr double kAbsmax = 2.0 * 4.0 / 256.0;
  // name, spec, param_streams, state_bytes, twin_states, twin_state_size, rows, steps_per_call,
  // note
  static const std::vector<OptimEntry> kTable = {
      {"sgd", "sgd:lr=0.01,momentum=0.9", 3, 8, 1, 4, 0, 1, ""},
      {"adam", "adam:lr=0.001", 3, 16, 2, 4, 0, 1, ""},
      {"adamw", "adamw:lr=0.001,weight_decay=0.01", 3, 16, 2, 4, 0, 1, ""},
      {"lion", "lion:lr=0.0001,betas=0.9/0.99,weight_decay=0.1", 3, 8, 1, 4, 0, 1, ""},
      {"adabelief", "adabelief:lr=0.001,eps=1e-16,weight_decay=0.01", 3, 16, 2, 4, 0, 1, ""},
      {"sgd_sai", "sgd_sai:lr=0.01,momentum=0.9,weight_decay=0.01", 3, 8, 1, 4, 0, 1,
       "+ a per-tensor scalar; the g-norm/std pass runs at step 1 only (not timed)"},
      {"adan", "adan:lr=0.001,betas=0.98/0.92/0.99,weight_decay=0.02", 3, 32, 4, 4, 0, 1,
       "states m, n, diff, prev g; +4 B if a clipped g is written back (max_grad_norm > 0)"},
      {"exadam", "exadam:lr=0.001", 3, 16, 2, 4, 0, 1, ""},
      {"diffgrad", "diffgrad:lr=0.001", 3, 24, 3, 4, 0, 1, "states m, v, prev g"},
      {"spam", "spam:lr=0.001", 3, 16, 2, 4, 0, 1, ""},
      // Projected tensors (ndim > 1) take two passes (cpu_projected_impl.h on the adamp
      // branch): the first reads p, g and the states and writes the states (advanced) while it
      // sums the per-row dot products; the second reads p and the states and writes p (g too
      // with nesterov=true, +4 B). AdamP 24 + 16 = 40 B, SGDP 16 + 12 = 28 B, against §19's
      // one-pass 28 / 20.
      {"adamp", "adamp:lr=0.001,weight_decay=0.01", 4, 24, 0, 4, 1024, 1,
       "2 passes: p, g, m, v read, m, v written (24 B), then p, m, v read, p written (16 B)"},
      {"sgdp", "sgdp:lr=0.1,momentum=0.9,weight_decay=0.0001", 4, 12, 0, 4, 1024, 1,
       "2 passes: p, g, b read, b written (16 B), then p, b read, p written (12 B)"},
      {"adam8bit", "adam8bit:lr=0.001", 3, 2 * (2 + kAbsmax), 2, 1, 0, 1,
       "2 uint8 codes + absmax per 256"},
      {"adamw8bit", "adamw8bit:lr=0.001,weight_decay=0.01", 3, 2 * (2 + kAbsmax), 2, 1, 0, 1,
       "2 uint8 codes + absmax per 256"},
      // f32 p and g alone are 12 B, so a one-state 8-bit optimizer moves ~14 B, not ~10.
      {"momentum8bit", "momentum8bit:lr=0.01,momentum=0.9", 3, 2 + kAbsmax, 1, 1, 0, 1,
       "1 uint8 code + absmax per 256"},
      {"lion8bit", "lion8bit:lr=0.0001,weight_decay=0.1", 3, 2 + kAbsmax, 1, 1, 0, 1,
       "1 uint8 code + absmax per 256"},
      // Newton-Schulz costs ~20 * rows flop/param (5 iterations on [rows, n/rows] matrices);
      // 64 rows keeps a 64M step to seconds on a CPU. Its time is compute, not traffic.
      {"muon", "muon:lr=0.02,momentum=0.95", 3, 8, 1, 4, 64, 1,
       "element-wise traffic only: the Newton-Schulz matmuls dominate the time"},
      {"auon", "auon:lr=0.24,momentum=0.95", 3, 24, 0, 4, 64, 1,
       "+ 2 reduction passes over 8 B (spec section 19)"},
      // FRUGAL, block mode, density 0.25: whole matrices (round(5 * 0.25) = 1 of the 5 here,
      // picked at random) take AdamW (28 B), the others signSGD (12 B), so the state traffic is
      // read from the optimizer's state_bytes().
      {"frugal", "frugal:lr=0.001,density=0.25", 3, kMeasuredState, 0, 4, 1024, 1,
       "AdamW on the state-full matrices, signSGD (12 B) on the rest"},
      // Lookahead over AdamW, k = 5: every 5th step reads p and the slow copy and writes both
      // (8 + 8 B), amortised over the 5 steps timed as one call. (Parameter EMA is a separate
      // class, not a registered optimizer, so it has no row.)
      {"lookahead", "lookahead:inner=adamw,k=5,alpha=0.5,lr=0.001,weight_decay=0.01", 3 + 2.0 / 5,
       16 + 8.0 / 5, 0, 4, 0, 5, "AdamW + every 5th step a pass over p and the slow copy"},
  };
  return kTable;
}

const OptimEntry* OptimEntry::find(const std::string& name) {
  for (const OptimEntry& e : table()) {
    if (name == e.name) return &e;
  }
  return nullptr;
}

}  // namespace terse_bench
