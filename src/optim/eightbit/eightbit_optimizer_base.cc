#include "eightbit_optimizer_base.h"

#include <cmath>
#include <utility>

#include "../group_options.h"
#include "terse/core/check.h"
#include "terse/kernels/blockwise_quant.h"

namespace terse::optim_detail {
namespace {

// Elements per work item: 64 blocks, so threads share big tensors and small ones stay whole.
constexpr int64_t kItemElements = 64 * kQuantBlockSize;

std::string state_key(size_t k, const char* what, int s) {
  return "state." + std::to_string(k) + "." + what + std::to_string(s + 1);
}

// numel as a buffer length. The bound is always met (parameters are validated when added); it
// also tells GCC 13 that the length is no cast negative number, for which its
// -Wstringop-overflow flags the zero fill of the buffers.
size_t buffer_length(int64_t numel) {
  TERSE_CHECK(numel >= 0 && numel <= (int64_t{1} << 48), InvalidArgument,
              "8-bit optimizer state for a tensor of ", numel, " elements");
  return static_cast<size_t>(numel);
}

}  // namespace

int64_t parse_min_8bit_size(const GroupOptions& o) {
  const double v = o.number("min_8bit_size");
  TERSE_CHECK(std::isfinite(v) && v == std::floor(v) && v >= 4096 && v <= 4.0e18, InvalidArgument,
              o.who(), ": min_8bit_size must be an integer >= 4096, got ", v,
              "; bitsandbytes keeps 32-bit states below 4096 elements whatever it says (4096 is ",
              "its default; a larger value keeps more tensors in 32 bits)");
  return static_cast<int64_t>(v);
}

void EightBitOptimizerBase::init_states() {
  qstates_.resize(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) qstates_[g].resize(groups_[g].params.size());
}

const CudaQuantMaps& EightBitOptimizerBase::cuda_state_maps() {
  static const CudaQuantMaps maps = [] {
    CudaQuantMaps m{};
    for (int k = 0; k < 2; ++k) m.state[k] = cuda_quant_map(state_map(k));
    return m;
  }();
  return maps;
}

void EightBitOptimizerBase::allocate_states() {
  const Device dev = device();
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      ParamState& st = qstates_[g][i];
      if (!st.buffers.empty()) continue;
      const Param& p = groups_[g].params[i];
      const size_t n = buffer_length(p.value.numel);
      const bool eight_bit = uses_8bit(g, p);
      std::vector<StateBuffer> buffers(static_cast<size_t>(num_states_));
      for (int s = 0; s < num_states_; ++s) {
        StateBuffer& b = buffers[static_cast<size_t>(s)];
        if (eight_bit) {
          b.codes = StateArray<uint8_t>(dev, std::vector<uint8_t>(n, state_map(s).zero_code()));
          b.absmax = StateArray<float>(
              dev, std::vector<float>(buffer_length(quant_num_blocks(p.value.numel)), 0.0f));
        } else {
          b.values = StateArray<float>(dev, std::vector<float>(n, 0.0f));
        }
      }
      // Set only once every buffer exists: a failed GPU allocation leaves this parameter
      // without state, to be allocated again by the next step.
      st.eight_bit = eight_bit;
      st.buffers = std::move(buffers);
    }
  }
}

std::vector<EightBitOptimizerBase::WorkItem> EightBitOptimizerBase::work_items() const {
  std::vector<WorkItem> items;
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const int64_t n = groups_[g].params[i].value.numel;
      for (int64_t lo = 0; lo < n; lo += kItemElements) {
        items.push_back({g, i, lo, n - lo < kItemElements ? n : lo + kItemElements});
      }
    }
  }
  return items;
}

size_t EightBitOptimizerBase::state_bytes() const {
  size_t bytes = 0;
  for (const auto& group : qstates_) {
    for (const auto& st : group) {
      for (const auto& b : st.buffers) {
        bytes += b.codes.size() + (b.absmax.size() + b.values.size()) * sizeof(float);
      }
    }
  }
  return bytes;
}

StateDict EightBitOptimizerBase::state_dict() const {
  StateDict sd = FusedOptimizerBase::state_dict();
  size_t k = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t i = 0; i < groups_[g].params.size(); ++i, ++k) {
      const Param& p = groups_[g].params[i];
      const ParamState& st = qstates_[g][i];
      for (size_t s = 0; s < st.buffers.size(); ++s) {
        const StateBuffer& b = st.buffers[s];
        const int si = static_cast<int>(s);
        if (st.eight_bit) {
          std::vector<uint8_t> codes_scratch;  // host copies of a GPU's state
          std::vector<float> absmax_scratch;
          auto* codes = const_cast<uint8_t*>(b.codes.host_data(codes_scratch));
          auto* absmax = const_cast<float*>(b.absmax.host_data(absmax_scratch));
          sd.tensors[state_key(k, "state", si)] = StateTensor::copy_of(
              TensorView::of(codes, static_cast<int64_t>(b.codes.size())), p.shape);
          sd.tensors[state_key(k, "absmax", si)] =
              StateTensor::copy_of(TensorView::of(absmax, static_cast<int64_t>(b.absmax.size())));
        } else {
          std::vector<float> scratch;
          auto* values = const_cast<float*>(b.values.host_data(scratch));
          sd.tensors[state_key(k, "state", si)] = StateTensor::copy_of(
              TensorView::of(values, static_cast<int64_t>(b.values.size())), p.shape);
        }
      }
    }
  }
  return sd;
}

void EightBitOptimizerBase::load_state_dict(const StateDict& sd) {
  // The base checks the optimizer name, group and parameter counts, names and lrs with its own
  // messages and takes step_count and lr; it sees no state tensors (it holds none). If our
  // tensors then fail, its part is put back, so an error leaves *this unchanged.
  StateDict header;
  header.ints = sd.ints;
  header.floats = sd.floats;
  header.strings = sd.strings;
  for (const auto& [key, t] : sd.tensors) {
    if (key.rfind("state.", 0) != 0) header.tensors.emplace(key, t);
  }
  const StateDict before = FusedOptimizerBase::state_dict();
  FusedOptimizerBase::load_state_dict(header);
  try {
    std::vector<std::vector<ParamState>> fresh(groups_.size());
    size_t used = 0;
    size_t k = 0;
    const bool has_state = sd.int_value("step_count") > 0;
    for (size_t g = 0; g < groups_.size(); ++g) {
      fresh[g].resize(groups_[g].params.size());
      for (size_t i = 0; i < groups_[g].params.size(); ++i, ++k) {
        if (!has_state) continue;  // no state before the first step, as in torch
        const Param& p = groups_[g].params[i];
        const int64_t n = p.value.numel;
        ParamState& st = fresh[g][i];
        st.eight_bit = uses_8bit(g, p);
        st.buffers.resize(static_cast<size_t>(num_states_));
        for (int s = 0; s < num_states_; ++s) {
          StateBuffer& b = st.buffers[static_cast<size_t>(s)];
          const std::string key = state_key(k, "state", s);
          if (!st.eight_bit) {
            std::vector<float> values(buffer_length(n));
            sd.tensor(key).copy_to(TensorView::of(values.data(), n), key);
            b.values = StateArray<float>(device(), std::move(values));
            ++used;
            continue;
          }
          std::vector<uint8_t> codes(buffer_length(n));
          sd.tensor(key).copy_to(TensorView::of(codes.data(), n), key);
          const std::string akey = state_key(k, "absmax", s);
          const int64_t blocks = quant_num_blocks(n);
          std::vector<float> absmax(buffer_length(blocks));
          sd.tensor(akey).copy_to(TensorView::of(absmax.data(), blocks), akey);
          for (int64_t j = 0; j < blocks; ++j) {
            // NaN and inf are legitimate (a block poisoned by a non-finite state); < 0 is not.
            TERSE_CHECK(!(absmax[static_cast<size_t>(j)] < 0.0f), CorruptData, "load_state_dict: '",
                        akey, "' block ", j, " has absmax ", absmax[static_cast<size_t>(j)],
                        " < 0; the state dict is damaged");
          }
          b.codes = StateArray<uint8_t>(device(), std::move(codes));
          b.absmax = StateArray<float>(device(), std::move(absmax));
          used += 2;
        }
      }
    }
    size_t state_tensors = 0;
    for (const auto& [key, t] : sd.tensors) state_tensors += key.rfind("state.", 0) == 0 ? 1 : 0;
    TERSE_CHECK(state_tensors == used, InvalidArgument, "load_state_dict: the state dict holds ",
                state_tensors, " state tensor(s) but this ", name(), " uses ", used,
                " (8-bit tensors save codes and absmax, smaller ones f32 values: was it saved ",
                "with another min_8bit_size?); load with the options it was saved with");
    qstates_ = std::move(fresh);
  } catch (...) {
    FusedOptimizerBase::load_state_dict(before);
    throw;
  }
}

}  // namespace terse::optim_detail
