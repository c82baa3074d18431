#pragma once

// Shared by the optimizers that reduce all momenta in one flat 1-bit buffer (OneBitAdam,
// ZeroOneAdam): option parsing and validation, parameter checks, the flat layout. Internal to
// terse_train.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "terse/comm/algorithms/one_bit_all_reduce.h"
#include "terse/core/state_dict.h"
#include "terse/kernels/cpu_chunks.h"
#include "terse/kernels/cpu_threads.h"
#include "terse/optim/optimizer.h"
#include "terse/train/comm_stats.h"

namespace terse::train_detail {

// An option and its default ("" = required).
using OptionDefault = std::pair<const char*, const char*>;

// One parameter group over the flat buffer: Adam hyper-parameters, which groups may override.
struct FlatGroup {
  double lr = 1e-3, base_lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  std::vector<Param> params;
  std::vector<int64_t> offsets;  // of each param in the flat buffers
  double lrs = 0;                // ZeroOneAdam: sum of lr since the last sync
};

// Rejects names not in `known` (InvalidArgument listing the valid ones).
void check_known_options(const char* optimizer, const std::vector<OptionDefault>& known,
                         const OptionMap& given, const std::string& who);
// The value given, else the default of `key`.
std::string option_value(const std::vector<OptionDefault>& known, const OptionMap& given,
                         const std::string& key);
// An integer option >= `min`; `required` options must be given.
int64_t int_option(const char* optimizer, const std::vector<OptionDefault>& known,
                   const OptionMap& given, const std::string& key, int64_t min, bool required,
                   const char* hint);
// Validates every group (overrides only of lr, betas, eps, weight_decay) and every parameter
// (f32, CPU, matching grad, unique, non-null) and lays them out flat; `numel` gets the total
// (> 0, else InvalidArgument).
std::vector<FlatGroup> make_flat_groups(const char* optimizer,
                                        const std::vector<OptionDefault>& known,
                                        const OptionMap& options, std::vector<ParamGroup> groups,
                                        int64_t* numel);
// "param I of group G ('name')".
std::string param_label(const Param& p, size_t group, size_t index);
// The lr, betas, eps, weight_decay of a group as options() prints them.
void add_group_options(const FlatGroup& g, OptionMap* out);
// Common state-dict checks and the per-group lr: the saved optimizer name, num_groups,
// group.G.num_params / lr and param names; returns the lrs, throws InvalidArgument or
// CorruptData. Writes the same keys in save_groups.
std::vector<double> load_groups(const char* optimizer, const std::vector<FlatGroup>& groups,
                                const StateDict& sd);
void save_groups(const char* optimizer, const std::vector<FlatGroup>& groups, StateDict* sd);
// Copies a flat f32 tensor of `numel` elements out of `sd`.
std::vector<float> load_flat(const StateDict& sd, const std::string& key, int64_t numel);
void save_flat(const std::vector<float>& v, const std::string& key, StateDict* sd);

// The optimizer's all-reduce of a flat buffer of `numel` elements: cpu_threads() threads (no bit
// depends on the count) and the option "defer_worker_error" (a bool; its default is in
// `known`), which sets OneBitAllReduce::Options::defer_worker_error.
std::unique_ptr<OneBitAllReduce> make_one_bit_all_reduce(const char* optimizer,
                                                         const std::vector<OptionDefault>& known,
                                                         const OptionMap& given, Communicator& comm,
                                                         int64_t numel);

// What one 1-bit all-reduce of a flat buffer of `numel` f32 cost, for last_step_comm(): the
// report's bytes, against a dense fp32 ring all-reduce of the same buffer over `world` ranks.
CommStats one_bit_comm_stats(const OneBitAllReduceReport& report, int64_t numel, int world,
                             double seconds);

// Calls fn(group, param, offset, begin, end) for pieces [begin, end) of every parameter (offset:
// the parameter's start in the flat buffers), in the fixed chunks of cpu_for_each_chunk_piece
// on cpu_threads() threads: for element-wise passes only, whose results then do not depend on
// the thread count.
template <typename Fn>
void for_each_flat_piece(const std::vector<FlatGroup>& groups, const Fn& fn) {
  std::vector<std::pair<const FlatGroup*, size_t>> refs;
  std::vector<int64_t> bounds = {0};
  for (const auto& g : groups) {
    for (size_t i = 0; i < g.params.size(); ++i) {
      refs.emplace_back(&g, i);
      bounds.push_back(g.offsets[i] + g.params[i].value.numel);
    }
  }
  cpu_for_each_chunk_piece(bounds, cpu_threads(), [&](size_t t, int64_t begin, int64_t end) {
    const FlatGroup& g = *refs[t].first;
    const size_t i = refs[t].second;
    fn(g, g.params[i], static_cast<size_t>(g.offsets[i]), begin, end);
  });
}

}  // namespace terse::train_detail
