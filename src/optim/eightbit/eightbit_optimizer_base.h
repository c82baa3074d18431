#pragma once

// What the bitsandbytes-style 8-bit optimizers share (adam8bit, adamw8bit, momentum8bit,
// lion8bit; spec optimizers.md §10): their state is not f32 buffers but, per state, one uint8
// code per element plus one f32 absmax per block of kQuantBlockSize elements; tensors with fewer
// than min_8bit_size elements keep f32 states, as in bnb. This class owns that state (allocation,
// state_dict, state_bytes) and the work list the step runs over; EightBitOptimizer<Def> adds the
// typed hyper-parameters and the step. Groups, lr and options() come from FusedOptimizerBase,
// which holds no f32 state for these optimizers (state_names() is empty). The parameters may be
// on the CPU or on one GPU; the state lives where they are (StateArray), and state_dict() holds
// host copies, so a checkpoint moves between devices.

#include <cstdint>
#include <string>
#include <vector>

#include "../fused_optimizer_base.h"
#include "../state_array.h"
#include "terse/kernels/cuda_eightbit_step.h"
#include "terse/kernels/dynamic_map.h"

namespace terse::optim_detail {

class EightBitOptimizerBase : public FusedOptimizerBase {
 public:
  // Layout: FusedOptimizerBase's (optimizer, step_count, groups, lr, parameter names) plus, per
  // parameter K after the first step, bnb's names: "state.K.state1" (and "state.K.state2" for
  // Adam) as u8 codes with "state.K.absmax1" ("absmax2") f32 per block, or as f32 values for a
  // tensor below min_8bit_size. The maps are constants and not saved.
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;
  // Codes + absmax (+ f32 states of small tensors): what is allocated.
  size_t state_bytes() const override;

 protected:
  // One state of one parameter: codes + absmax (8-bit) or values (f32), on the params' device.
  struct StateBuffer {
    StateArray<uint8_t> codes;
    StateArray<float> absmax;
    StateArray<float> values;
  };
  struct ParamState {
    bool eight_bit = false;
    std::vector<StateBuffer> buffers;  // empty until the first step
  };
  // Elements [begin, end) of parameter `param` of group `group`; begin is block-aligned.
  struct WorkItem {
    size_t group, param;
    int64_t begin, end;
  };

  EightBitOptimizerBase(const char* name, const std::vector<OptionDef>& defs, int num_states)
      : FusedOptimizerBase(name, defs), num_states_(num_states) {}

  // State 1 (m, momentum) uses bnb's signed map, Adam's state 2 (v) the unsigned one.
  static const DynamicMap& state_map(int k) {
    return k == 0 ? DynamicMap::signed_map() : DynamicMap::unsigned_map();
  }
  // The same maps as the CUDA step reads them.
  static const CudaQuantMaps& cuda_state_maps();

  virtual int64_t min_8bit_size(size_t group) const = 0;

  // Sizes qstates_ after add_groups().
  void init_states();
  // First step (or after loading a step-0 state dict): zero states, all codes the zero code.
  void allocate_states();
  // Runs of at most kItemElements elements of one tensor, for the threads to share.
  std::vector<WorkItem> work_items() const;

  std::vector<std::vector<ParamState>> qstates_;  // [group][param]

 private:
  std::vector<std::string> state_names(size_t) const final { return {}; }
  bool uses_8bit(size_t group, const Param& p) const {
    return p.value.numel >= min_8bit_size(group);
  }

  int num_states_;
};

// The min_8bit_size option: an integer >= 4096 (bnb keeps f32 states below 4096 elements whatever
// min_8bit_size says, so a smaller value is rejected rather than silently ignored).
int64_t parse_min_8bit_size(const GroupOptions& o);

}  // namespace terse::optim_detail
