#include "fused_optimizer_base.h"

#include <cmath>
#include <set>
#include <utility>

#include "option_values.h"
#include "terse/core/check.h"
#include "terse/core/dtype.h"
#include "terse/kernels/cpu_chunks.h"
#include "terse/kernels/cpu_threads.h"

namespace terse::optim_detail {
void FusedOptimizerBase::add_groups(const OptionMap& options, std::vector<ParamGroup> groups,
                                    const std::function<void(const GroupOptions&)>& parse,
                                    bool cuda_capable) {
  TERSE_CHECK(!groups.empty(), InvalidArgument, name(),
              ": got no parameter groups; pass at least one parameter");
  // One device for all parameters: the first one's. CUDA only where the step runs there.
  device_ = one_device(name(), groups);
  TERSE_CHECK(device_.is_cpu() || cuda_capable, InvalidArgument, name(), ": the parameters are on ",
              device_.str(), " but ", name(),
              " runs on CPU tensors only so far (docs/optimizers.md, 'On the GPU'); move them "
              "to the CPU or use an optimizer that runs on CUDA (sgd, sgd_sai, adam, adamw, adamp, "
              "sgdp, lion, adan, adabelief, diffgrad, exadam, spam, adam8bit, adamw8bit, "
              "momentum8bit, lion8bit, muon, auon, frugal)");
  std::set<const void*> seen;
  for (size_t g = 0; g < groups.size(); ++g) {
    Group grp;
    grp.given = options;
    for (const auto& [k, v] : groups[g].overrides) grp.given[k] = v;
    const GroupOptions parsed(name(), option_defs(), grp.given, g);
    parse(parsed);
    grp.lr = parsed.number("lr");
    grp.base_lr = grp.lr;
    add_group(std::move(grp), std::move(groups[g].params), seen, device_.is_cuda());
  }
}

void FusedOptimizerBase::step() {
  const int64_t t = step_count_ + 1;
  for (size_t g = 0; g < groups_.size(); ++g) {
    Group& grp = groups_[g];
    const size_t num_states = state_names(g).size();
    for (size_t i = 0; i < grp.params.size(); ++i) {
      auto& st = grp.states[i];
      if (st.size() != num_states) {
        // First step: allocate zeroed buffers, as torch creates its state lazily.
        st.clear();
        for (size_t k = 0; k < num_states; ++k) {
          st.emplace_back(device_, static_cast<size_t>(grp.params[i].value.numel));
        }
      }
    }
  }
  if (const char* scalar_name = tensor_scalar_name(); scalar_name != nullptr) {
    for (size_t g = 0; g < groups_.size(); ++g) {
      Group& grp = groups_[g];
      if (grp.tensor_scalars.size() == grp.params.size()) continue;
      // First step: from the first gradient, before any update (SGD-SaI's warmup_step).
      std::vector<float> scalars = tensor_scalars(g);
      TERSE_CHECK(scalars.size() == grp.params.size(), Error, name(), ": computed ", scalars.size(),
                  " ", scalar_name, " values for the ", grp.params.size(), " params of group ", g,
                  "; this is a bug in terse, please report it");
      grp.tensor_scalars = std::move(scalars);
    }
  }
  run_step(t);
  step_count_ = t;
}

namespace {

// Sum of g^2 over [begin, end) in double, in 8 fixed lanes so the order (and the bits) do not
// depend on the vector width the compiler picks.
template <typename T>
double sum_squares(const T* g, int64_t begin, int64_t end) {
  constexpr int kLanes = 8;
  double lane[kLanes] = {};
  int64_t i = begin;
  for (; i + kLanes <= end; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const double v = load_as_float(g, i + l);
      lane[l] += v * v;
    }
  }
  for (int l = 0; i < end; ++i, ++l) {
    const double v = load_as_float(g, i);
    lane[l] += v * v;
  }
  double s = 0;
  for (double v : lane) s += v;
  return s;
}

}  // namespace

double FusedOptimizerBase::global_grad_norm() const {
  std::vector<const TensorView*> grads;
  std::vector<int64_t> offsets{0};
  for (const auto& grp : groups_) {
    for (const auto& p : grp.params) {
      grads.push_back(&p.grad);
      offsets.push_back(offsets.back() + p.grad.numel);
    }
  }
  if (device_.is_cuda()) {
    // The same pieces and order as below; the GPU sums each piece's lanes, the host adds them
    // up in the CPU's order, so both give the same bits.
    std::vector<CudaSumPiece> pieces;
    std::vector<size_t> chunk_of;
    cpu_for_each_chunk_piece(offsets, 1, [&](size_t i, int64_t begin, int64_t end) {
      pieces.push_back({grads[i]->data, grads[i]->dtype, begin, end});
      chunk_of.push_back(static_cast<size_t>((offsets[i] + begin) / kCpuChunkElements));
    });
    const std::vector<double> sums = cuda_piece_sum_squares(device_.index, pieces);
    std::vector<double> partial(chunk_of.empty() ? 0 : chunk_of.back() + 1, 0.0);
    for (size_t k = 0; k < sums.size(); ++k) partial[chunk_of[k]] += sums[k];
    double total = 0;
    for (double v : partial) total += v;
    return std::sqrt(total);
  }
  // One partial sum per fixed chunk (a chunk runs on one thread), added up in chunk order.
  std::vector<double> partial(
      static_cast<size_t>((offsets.back() + kCpuChunkElements - 1) / kCpuChunkElements), 0.0);
  cpu_for_each_chunk_piece(offsets, cpu_threads(), [&](size_t i, int64_t begin, int64_t end) {
    const TensorView& g = *grads[i];
    double s = 0;
    switch (g.dtype) {
      case DType::kBF16:
        s = sum_squares(static_cast<const BFloat16*>(g.data), begin, end);
        break;
      case DType::kF16:
        s = sum_squares(static_cast<const Half*>(g.data), begin, end);
        break;
      default:  // f32: add_groups admits nothing else
        s = sum_squares(static_cast<const float*>(g.data), begin, end);
        break;
    }
    partial[static_cast<size_t>((offsets[i] + begin) / kCpuChunkElements)] += s;
  });
  double total = 0;
  for (double s : partial) total += s;
  return std::sqrt(total);
}

size_t FusedOptimizerBase::state_bytes() const {
  size_t bytes = 0;
  for (const auto& grp : groups_) {
    for (const auto& st : grp.states) {
      for (const auto& buf : st) bytes += buf.size() * sizeof(float);
    }
    bytes += grp.tensor_scalars.size() * sizeof(float);
  }
  return bytes;
}

// Layout: strings "optimizer"; ints "step_count", "num_groups", "group.G.num_params";
// floats "group.G.lr"; strings "param.K.name" (named params); tensors "state.K.<torch name>"
// with K the parameter's index over all groups, as in torch's state_dict; a per-tensor scalar is
// the 1-element tensor "state.K.<tensor_scalar_name()>".
StateDict FusedOptimizerBase::state_dict() const {
  StateDict sd;
  save_header(sd);
  size_t k = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const Group& grp = groups_[g];
    const auto names = state_names(g);
    for (size_t i = 0; i < grp.params.size(); ++i, ++k) {
      const Param& p = grp.params[i];
      const std::string kp = std::to_string(k);
      std::vector<float> scratch;  // a CUDA state's host copy
      for (size_t s = 0; s < grp.states[i].size(); ++s) {
        sd.tensors["state." + kp + "." + names[s]] =
            StateTensor::copy_of(grp.states[i][s].host_view(scratch), p.shape);
      }
      if (i < grp.tensor_scalars.size()) {
        TensorView view(const_cast<float*>(&grp.tensor_scalars[i]), 1, DType::kF32);
        sd.tensors["state." + kp + "." + tensor_scalar_name()] = StateTensor::copy_of(view);
      }
    }
  }
  return sd;
}

void FusedOptimizerBase::load_state_dict(const StateDict& sd) {
  const Header header = load_header(sd);
  // Everything is checked and copied into `fresh` first, so an error leaves *this unchanged.
  std::vector<std::vector<std::vector<StateBuffer>>> fresh(groups_.size());
  std::vector<std::vector<float>> fresh_scalars(groups_.size());
  const char* scalar_name = tensor_scalar_name();
  size_t used = 0;
  size_t k = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const Group& grp = groups_[g];
    const auto names = state_names(g);
    fresh[g].resize(grp.params.size());
    for (size_t i = 0; i < grp.params.size(); ++i, ++k) {
      if (header.steps == 0) continue;  // no state before the first step, as in torch
      const Param& p = grp.params[i];
      const std::string kp = std::to_string(k);
      for (const auto& n : names) {
        const std::string key = "state." + kp + "." + n;
        const StateTensor& t = sd.tensor(key);
        std::vector<float> buf(static_cast<size_t>(p.value.numel));
        t.copy_to(TensorView::of(buf.data(), p.value.numel), key);
        fresh[g][i].emplace_back(device_, std::move(buf));
        ++used;
      }
      if (scalar_name != nullptr) {
        const std::string key = "state." + kp + "." + scalar_name;
        float v = 0;
        sd.tensor(key).copy_to(TensorView::of(&v, 1), key);
        TERSE_CHECK(std::isfinite(v) && v >= 0, CorruptData, "load_state_dict: ", key, " is ", v,
                    "; it must be a finite number >= 0, the state dict is damaged");
        fresh_scalars[g].push_back(v);
        ++used;
      }
    }
  }
  check_state_count(sd, used, " (e.g. momentum or amsgrad differ)");
  for (size_t g = 0; g < groups_.size(); ++g) {
    groups_[g].states = std::move(fresh[g]);
    groups_[g].tensor_scalars = std::move(fresh_scalars[g]);
  }
  apply_header(header);
}

}  // namespace terse::optim_detail
