// frugal: Zmushko et al. 2024/25, FRUGAL's `BlockAdamW` and `CoordAdamW` (spec optimizers.md §13;
// read from a copy of the official frugal/proj_optimizer_templates.py and frugal/adamw.py).
// In a group with is_proj_params=true, each matrix (ndim >= 2) is split into a state-full
// subspace, updated by AdamW, and a state-free rest, updated by signSGD:
//   every update_gap steps (steps 1, T+1, 2T+1, ...): choose the subspace
//     subspace=block: round(n_matrices * density) whole matrices (block_order random,
//       ascending, descending or mirror); the others hold no state
//     subspace=coord: int(cols * density) columns (coord_choice=columns), int(rows * density)
//       rows (rows, the matrix viewed as (shape[0], -1)) or int(numel * density) entries (random)
//     moments are zeroed (block: always; coord: when reset_statistics)
//   p *= 1 - lr * weight_decay                                    (every parameter)
//   subspace:  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//              p += -(lr_a / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)   lr_a = lr *
//              proj_params_lr_scale
//   the rest:  p += -lr_a * inactive_lr_scale * sign(g)    (inactive_update_rule sign_sgd; sgd: g)
// bc1, bc2 count the steps since the moments were last zeroed, as the reference's state["step"].
// Other parameters (1-D, or every parameter of an is_proj_params=false group) take plain AdamW
// with lr. The random choices come from Philox(seed) streams keyed by (group, refresh, tensor),
// so the subspace is a function of (seed, step): it is not saved, a load recomputes it.
// The element-wise formulas are the Rules FrugalAdamRule and FrugalInactiveRule; CUDA parameters
// step on their GPU through the multi-tensor executor (coord mode: one masked kernel per
// matrix, the mask uploaded at each refresh), with the CPU's bits.

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "cuda/matrix_kernels.h"
#include "device_bytes.h"
#include "matrix_optimizer_base.h"
#include "option_values.h"
#include "terse/core/check.h"
#include "terse/core/dispatch.h"
#include "terse/core/philox.h"
#include "terse/kernels/cuda_multi_tensor.h"
#include "terse/kernels/frugal_adam_rule.h"
#include "terse/kernels/frugal_inactive_rule.h"

namespace terse::optim_detail {
namespace {

enum class Subspace { kBlock, kCoord };
enum class BlockOrder { kRandom, kAscending, kDescending, kMirror };
enum class CoordChoice { kColumns, kRows, kRandom };
using Inactive = FrugalInactiveRule::Kind;

struct FrugalHyper {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
  bool correct_bias = true, reset_statistics = true, is_proj_params = true;
  double density = 0.25, inactive_lr_scale = 1, proj_params_lr_scale = 1;
  int64_t update_gap = 200;
  uint64_t seed = 0;
  Subspace subspace = Subspace::kBlock;
  BlockOrder block_order = BlockOrder::kRandom;
  CoordChoice coord_choice = CoordChoice::kColumns;
  Inactive inactive = FrugalInactiveRule::kSignSgd;
};

std::vector<OptionDef> frugal_options() {
  return {{"lr", OptionType::kDouble, "0.001"},
          {"betas", OptionType::kPair, "0.9/0.999"},
          {"eps", OptionType::kDouble, "1e-08"},
          {"weight_decay", OptionType::kDouble, "0.01"},
          {"correct_bias", OptionType::kBool, "true"},
          {"density", OptionType::kDouble, "0.25"},
          {"update_gap", OptionType::kDouble, "200"},
          {"reset_statistics", OptionType::kBool, "true"},
          {"inactive_lr_scale", OptionType::kDouble, "1"},
          {"proj_params_lr_scale", OptionType::kDouble, "1"},
          {"is_proj_params", OptionType::kBool, "true"},
          {"seed", OptionType::kDouble, "0"}};
}

std::vector<WordOptionDef> frugal_words() {
  return {{"subspace", "block", {"block", "coord"}},
          {"block_order", "random", {"random", "ascending", "descending", "mirror"}},
          {"coord_choice", "columns", {"columns", "rows", "random"}},
          {"inactive_update_rule", "sign_sgd", {"sign_sgd", "sgd", "no"}}};
}

double whole(const GroupOptions& o, const char* name, double lo, double hi, const char* usual) {
  const double v = o.number(name);
  TERSE_CHECK(v >= lo && v <= hi && std::floor(v) == v, InvalidArgument, o.who(), ": ", name,
              " must be a whole number in [", lo, ", ", hi, "], got ", v, "; ", usual);
  return v;
}

double scale(const GroupOptions& o, const char* name) {
  const double v = o.number(name);
  TERSE_CHECK(std::isfinite(v) && v >= 0, InvalidArgument, o.who(), ": ", name,
              " must be a finite number >= 0, got ", v);
  return v;
}

FrugalHyper parse_frugal(const GroupOptions& o, const WordOptions& w) {
  FrugalHyper h;
  const std::string& who = o.who();
  h.weight_decay = o.weight_decay();
  std::tie(h.beta1, h.beta2) = o.betas();
  h.eps = o.number("eps");
  TERSE_CHECK(std::isfinite(h.eps) && h.eps >= 0, InvalidArgument, who,
              ": eps must be a finite number >= 0, got ", h.eps, "; 1e-8 is usual");
  h.correct_bias = o.flag("correct_bias");
  h.density = o.number("density");
  TERSE_CHECK(h.density >= 0 && h.density <= 1, InvalidArgument, who,
              ": density must be in [0, 1], got ", h.density, "; 0.25 is the default");
  h.update_gap = static_cast<int64_t>(whole(o, "update_gap", 1, 1e15, "200 is the default"));
  h.reset_statistics = o.flag("reset_statistics");
  h.inactive_lr_scale = scale(o, "inactive_lr_scale");
  h.proj_params_lr_scale = scale(o, "proj_params_lr_scale");
  h.is_proj_params = o.flag("is_proj_params");
  h.seed = static_cast<uint64_t>(whole(o, "seed", 0, 9007199254740992.0, "e.g. seed=0"));
  h.subspace = w.at("subspace") == "block" ? Subspace::kBlock : Subspace::kCoord;
  const std::string& bo = w.at("block_order");
  h.block_order = bo == "random"       ? BlockOrder::kRandom
                  : bo == "ascending"  ? BlockOrder::kAscending
                  : bo == "descending" ? BlockOrder::kDescending
                                       : BlockOrder::kMirror;
  const std::string& cc = w.at("coord_choice");
  h.coord_choice = cc == "columns" ? CoordChoice::kColumns
                   : cc == "rows"  ? CoordChoice::kRows
                                   : CoordChoice::kRandom;
  const std::string& ir = w.at("inactive_update_rule");
  h.inactive = ir == "sign_sgd" ? FrugalInactiveRule::kSignSgd
               : ir == "sgd"    ? FrugalInactiveRule::kSgd
                                : FrugalInactiveRule::kNo;
  return h;
}

// Marks k of [0, n) chosen uniformly without replacement (Floyd's algorithm: k draws).
std::vector<bool> choose(PhiloxStream& rng, int64_t n, int64_t k) {
  std::vector<bool> chosen(static_cast<size_t>(n));
  for (int64_t j = n - k; j < n; ++j) {
    const auto t = static_cast<int64_t>(rng.below(static_cast<uint64_t>(j + 1)));
    chosen[static_cast<size_t>(chosen[static_cast<size_t>(t)] ? j : t)] = true;
  }
  return chosen;
}

class Frugal final : public MatrixOptimizerBase {
 public:
  Frugal(const OptionMap& options, std::vector<ParamGroup> groups)
      : MatrixOptimizerBase("frugal", frugal_options(), frugal_words()) {
    add_groups(options, std::move(groups), [this](const GroupOptions& o, const WordOptions& w) {
      hypers_.push_back(parse_frugal(o, w));
    });
    sub_.resize(groups_.size());
    for (size_t g = 0; g < groups_.size(); ++g) {
      const FrugalHyper& h = hypers_[g];
      Sub& s = sub_[g];
      s.active.assign(groups_[g].params.size(), false);
      s.masks.resize(groups_[g].params.size());
      s.device_masks.resize(groups_[g].params.size());
      for (size_t i = 0; i < groups_[g].params.size(); ++i) {
        if (projected(g, i)) s.blocks.push_back(i);
      }
      s.num_active = static_cast<int64_t>(
          std::nearbyint(static_cast<double>(s.blocks.size()) * h.density));  // half to even
      TERSE_CHECK(h.subspace != Subspace::kBlock || h.block_order != BlockOrder::kMirror ||
                      s.num_active % 2 == 0,
                  InvalidArgument, "frugal (group ", g, "): block_order=mirror activates pairs ",
                  "but round(", s.blocks.size(), " matrices * density ", h.density,
                  ") = ", s.num_active, " is odd; change density");
    }
  }

 private:
  struct Sub {
    std::vector<size_t> blocks;                // indices of the projected matrices
    int64_t num_active = 0;                    // block mode
    std::vector<bool> active;                  // block mode, per param
    std::vector<std::vector<uint64_t>> masks;  // coord mode, per param: bit k = entry k active
    // coord mode on CUDA, per param: masks[i]'s words, then per word the number of set bits in
    // the words before it (cuda_frugal_coord_step), in GPU memory.
    std::vector<DeviceBytes> device_masks;
  };

  bool projected(size_t g, size_t i) const {
    return hypers_[g].is_proj_params && ndim(groups_[g].params[i]) >= 2;
  }

  // The Philox stream of one draw: `slot` 0 is the block choice, i + 1 tensor i's coordinates.
  static uint64_t stream(size_t g, int64_t refresh, uint64_t slot) {
    uint64_t x = splitmix(splitmix(g) ^ static_cast<uint64_t>(refresh));
    return splitmix(x ^ slot);
  }
  static uint64_t splitmix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
  }

  // Block mode: which params are active after refresh `r` (0-based).
  std::vector<bool> active_blocks(size_t g, int64_t r) const {
    const FrugalHyper& h = hypers_[g];
    const Sub& s = sub_[g];
    std::vector<bool> act(groups_[g].params.size());
    const auto n = static_cast<int64_t>(s.blocks.size());
    const int64_t k = s.num_active;
    if (n == 0 || k == 0) return act;
    auto on = [&](int64_t b) { act[s.blocks[static_cast<size_t>(((b % n) + n) % n)]] = true; };
    if (h.block_order == BlockOrder::kRandom) {
      PhiloxStream rng(h.seed, stream(g, r, 0));
      const auto chosen = choose(rng, n, k);
      for (int64_t b = 0; b < n; ++b) {
        if (chosen[static_cast<size_t>(b)]) on(b);
      }
    } else if (h.block_order == BlockOrder::kAscending) {
      const int64_t start = (r % n) * k % n;
      for (int64_t j = 0; j < k; ++j) on(start + j);
    } else if (h.block_order == BlockOrder::kDescending) {
      const int64_t start = n - 1 - (r % n) * k % n;
      for (int64_t j = 0; j < k; ++j) on(start - j);
    } else {
      const int64_t half = n / 2;
      const int64_t start = (r % half) * (k / 2) % half;
      for (int64_t j = 0; j < k / 2; ++j) {
        on((start + j) % half);
        on(n - 1 - (start + j) % half);
      }
    }
    return act;
  }

  // Coord mode: the (rows, cols) view and how many of each dimension the subspace takes.
  struct CoordShape {
    int64_t rows, cols, size;  // size: number of active entries
  };
  CoordShape coord_shape(size_t g, size_t i) const {
    const FrugalHyper& h = hypers_[g];
    const Param& p = groups_[g].params[i];
    const int64_t n = p.value.numel;
    const int64_t rows = p.shape[0], cols = rows == 0 ? 0 : n / rows;
    auto part = [&](int64_t total) {
      return static_cast<int64_t>(static_cast<double>(total) * h.density);  // Python int()
    };
    if (h.coord_choice == CoordChoice::kColumns) return {rows, cols, rows * part(cols)};
    if (h.coord_choice == CoordChoice::kRows) return {rows, cols, part(rows) * cols};
    return {rows, cols, part(n)};
  }

  std::vector<uint64_t> coord_mask(size_t g, size_t i, int64_t r) const {
    const FrugalHyper& h = hypers_[g];
    const CoordShape cs = coord_shape(g, i);
    const int64_t n = groups_[g].params[i].value.numel;
    std::vector<uint64_t> mask(static_cast<size_t>((n + 63) / 64));
    auto set = [&](int64_t k) { mask[static_cast<size_t>(k >> 6)] |= uint64_t{1} << (k & 63); };
    PhiloxStream rng(h.seed, stream(g, r, i + 1));
    if (h.coord_choice == CoordChoice::kColumns) {
      const auto chosen = choose(rng, cs.cols, cs.size / std::max<int64_t>(cs.rows, 1));
      for (int64_t row = 0; row < cs.rows; ++row) {
        for (int64_t c = 0; c < cs.cols; ++c) {
          if (chosen[static_cast<size_t>(c)]) set(row * cs.cols + c);
        }
      }
    } else if (h.coord_choice == CoordChoice::kRows) {
      const auto chosen = choose(rng, cs.rows, cs.size / std::max<int64_t>(cs.cols, 1));
      for (int64_t row = 0; row < cs.rows; ++row) {
        if (!chosen[static_cast<size_t>(row)]) continue;
        for (int64_t c = 0; c < cs.cols; ++c) set(row * cs.cols + c);
      }
    } else {
      const auto chosen = choose(rng, n, cs.size);
      for (int64_t k = 0; k < n; ++k) {
        if (chosen[static_cast<size_t>(k)]) set(k);
      }
    }
    return mask;
  }

  Layout state_layout(size_t g, size_t i, int64_t steps) const override {
    const auto numel = static_cast<size_t>(groups_[g].params[i].value.numel);
    if (!projected(g, i)) return {{"exp_avg", numel}, {"exp_avg_sq", numel}};
    if (hypers_[g].subspace == Subspace::kBlock) {
      if (!active_blocks(g, (steps - 1) / hypers_[g].update_gap)[i]) return {};
      return {{"exp_avg", numel}, {"exp_avg_sq", numel}};
    }
    const auto k = static_cast<size_t>(coord_shape(g, i).size);
    return {{"exp_avg", k}, {"exp_avg_sq", k}};
  }

  // Sets the subspace of refresh `r` in every projected matrix; `reset` zeroes the moments.
  void choose_subspace(size_t g, int64_t r, bool reset) {
    const FrugalHyper& h = hypers_[g];
    Sub& s = sub_[g];
    Group& grp = groups_[g];
    if (h.subspace == Subspace::kBlock) s.active = active_blocks(g, r);
    for (size_t i : s.blocks) {
      if (h.subspace == Subspace::kCoord) {
        s.masks[i] = coord_mask(g, i, r);
        if (device().is_cuda()) s.device_masks[i] = upload_mask(s.masks[i]);
      }
      if (!reset) continue;
      grp.states[i].clear();
      grp.states[i].shrink_to_fit();
      for (const auto& [name, size] : state_layout(g, i, r * h.update_gap + 1)) {
        grp.states[i].push_back(make_buffer(name, size));
      }
    }
  }

  // The mask's words and their running counts of set bits, on the parameters' GPU.
  DeviceBytes upload_mask(const std::vector<uint64_t>& mask) const {
    std::vector<uint64_t> both(2 * mask.size());
    int64_t count = 0;
    for (size_t w = 0; w < mask.size(); ++w) {
      both[w] = mask[w];
      both[mask.size() + w] = static_cast<uint64_t>(count);
      count += __builtin_popcountll(mask[w]);
    }
    return DeviceBytes(device().index, both.data(), both.size() * sizeof(uint64_t));
  }

  void after_load(int64_t steps) override {
    for (size_t g = 0; g < groups_.size(); ++g) {
      if (steps > 0) choose_subspace(g, (steps - 1) / hypers_[g].update_gap, false);
    }
  }

  size_t extra_state_bytes() const override {
    size_t bytes = 0;
    for (const auto& s : sub_) {
      for (const auto& m : s.masks) bytes += m.size() * sizeof(uint64_t);
    }
    return bytes;
  }

  void describe(size_t g, OptionMap& out) const override {
    const FrugalHyper& h = hypers_[g];
    out["betas"] = format_double(h.beta1) + "/" + format_double(h.beta2);
    out["eps"] = format_double(h.eps);
    out["weight_decay"] = format_double(h.weight_decay);
    out["density"] = format_double(h.density);
    out["update_gap"] = std::to_string(h.update_gap);
    out["inactive_lr_scale"] = format_double(h.inactive_lr_scale);
    out["proj_params_lr_scale"] = format_double(h.proj_params_lr_scale);
    out["seed"] = std::to_string(h.seed);
  }

  // One group's Rules for this step.
  struct GroupRules {
    FrugalAdamRule full;  // parameters FRUGAL does not project: AdamW with lr, step t
    FrugalAdamRule sub;   // the subspace: lr_a, steps since the moments were zeroed
    FrugalInactiveRule rest;
  };

  void run_step(int64_t t) override {
    std::vector<GroupRules> rules;
    for (size_t g = 0; g < groups_.size(); ++g) {
      const FrugalHyper& h = hypers_[g];
      Group& grp = groups_[g];
      const int64_t r = (t - 1) / h.update_gap;
      const bool refresh = (t - 1) % h.update_gap == 0;
      // Block mode always starts the chosen blocks afresh; coord mode keeps the moments across
      // refreshes unless reset_statistics (the first refresh creates them).
      if (refresh) {
        choose_subspace(g, r, h.subspace == Subspace::kBlock || h.reset_statistics || t == 1);
      }
      const bool restarted = h.subspace == Subspace::kBlock || h.reset_statistics;
      const int64_t sub_step = restarted ? (t - 1) % h.update_gap + 1 : t;
      const double lr_a = grp.lr * h.proj_params_lr_scale;
      const auto decay = static_cast<float>(1.0 - grp.lr * h.weight_decay);
      GroupRules gr;
      gr.full = FrugalAdamRule::for_step(grp.lr, h.beta1, h.beta2, h.eps, h.correct_bias, decay, t);
      gr.sub =
          FrugalAdamRule::for_step(lr_a, h.beta1, h.beta2, h.eps, h.correct_bias, decay, sub_step);
      gr.rest.kind = h.inactive;
      gr.rest.neg_lr = static_cast<float>(-lr_a * h.inactive_lr_scale);
      gr.rest.decay = decay;
      rules.push_back(gr);
      for (size_t i = 0; i < grp.params.size(); ++i) {
        auto& st = grp.states[i];
        if (!projected(g, i) && st.empty()) {
          for (const auto& [name, size] : state_layout(g, i, t))
            st.push_back(make_buffer(name, size));
        }
      }
    }
    if (device().is_cuda()) {
      cuda_step(rules);
      return;
    }
    for (size_t g = 0; g < groups_.size(); ++g) {
      const FrugalHyper& h = hypers_[g];
      Group& grp = groups_[g];
      const GroupRules& gr = rules[g];
      for (size_t i = 0; i < grp.params.size(); ++i) {
        auto& st = grp.states[i];
        const Param& p = grp.params[i];
        dispatch_floating(p.value.dtype, [&](auto tag) {
          using T = decltype(tag);
          T* pp = static_cast<T*>(p.value.data);
          const T* gp = static_cast<const T*>(p.grad.data);
          const int64_t n = p.value.numel;
          if (!projected(g, i)) {
            adam_range(gr.full, pp, gp, st[0].data.data(), st[1].data.data(), 0, n);
          } else if (h.subspace == Subspace::kBlock) {
            if (sub_[g].active[i]) {
              adam_range(gr.sub, pp, gp, st[0].data.data(), st[1].data.data(), 0, n);
            } else {
              inactive_range(gr.rest, pp, gp, 0, n);
            }
          } else {
            coord_step(gr.sub, gr.rest, sub_[g].masks[i], pp, gp, st[0].data.data(),
                       st[1].data.data(), n);
          }
        });
      }
    }
  }

  // The step on CUDA tensors, on the legacy default stream: every AdamW tensor (unprojected, or
  // an active block) in one multi-tensor launch, every inactive block in another, one masked
  // kernel per coord-mode matrix. The same Rules as the CPU loops: the CPU's bits.
  void cuda_step(const std::vector<GroupRules>& rules) {
    std::vector<CudaTensorTask<FrugalAdamRule>> adam;
    std::vector<CudaTensorTask<FrugalInactiveRule>> rest;
    for (size_t g = 0; g < groups_.size(); ++g) {
      const FrugalHyper& h = hypers_[g];
      Group& grp = groups_[g];
      const GroupRules& gr = rules[g];
      for (size_t i = 0; i < grp.params.size(); ++i) {
        auto& st = grp.states[i];
        const Param& p = grp.params[i];
        const bool coord = projected(g, i) && h.subspace == Subspace::kCoord;
        if (coord) {
          const auto* words = static_cast<const uint64_t*>(sub_[g].device_masks[i].data());
          const size_t count = sub_[g].masks[i].size();
          cuda_frugal_coord_step(gr.sub, gr.rest, words,
                                 reinterpret_cast<const int64_t*>(words + count), p.value, p.grad,
                                 st[0].data.data(), st[1].data.data());
        } else if (!projected(g, i) || sub_[g].active[i]) {
          CudaTensorTask<FrugalAdamRule> task;
          task.rule = projected(g, i) ? gr.sub : gr.full;
          task.param = p.value;
          task.grad = p.grad;
          task.states[0] = st[0].data.data();
          task.states[1] = st[1].data.data();
          adam.push_back(task);
        } else {
          CudaTensorTask<FrugalInactiveRule> task;
          task.rule = gr.rest;
          task.param = p.value;
          task.grad = p.grad;
          rest.push_back(task);
        }
      }
    }
    if (!adam.empty()) cuda_multi_tensor_apply(adam);
    if (!rest.empty()) cuda_multi_tensor_apply(rest);
  }

  // AdamW on entries [begin, end) of p, moments from m[0], v[0] on (reference frugal/adamw.py).
  template <typename T>
  static void adam_range(const FrugalAdamRule& a, T* p, const T* grad, float* m, float* v,
                         int64_t begin, int64_t end) {
    float unused = 0;
    for (int64_t k = begin; k < end; ++k, ++m, ++v) {
      float pv = load_as_float(p, k);
      a(pv, load_as_float(grad, k), *m, *v, unused);
      store_from_float(p, k, pv);
    }
  }

  template <typename T>
  static void inactive_range(const FrugalInactiveRule& rule, T* p, const T* grad, int64_t begin,
                             int64_t end) {
    float unused = 0;
    for (int64_t k = begin; k < end; ++k) {
      float pv = load_as_float(p, k);
      rule(pv, load_as_float(grad, k), unused, unused, unused);
      store_from_float(p, k, pv);
    }
  }

  // One pass over the matrix: 64 entries per mask word, whole-word runs take the plain loops.
  template <typename T>
  static void coord_step(const FrugalAdamRule& a, const FrugalInactiveRule& rule,
                         const std::vector<uint64_t>& mask, T* p, const T* grad, float* m, float* v,
                         int64_t n) {
    int64_t slot = 0;
    for (size_t w = 0; w < mask.size(); ++w) {
      const int64_t begin = static_cast<int64_t>(w) * 64;
      const int64_t end = std::min<int64_t>(begin + 64, n);
      const uint64_t bits = mask[w];
      const uint64_t full = end - begin == 64 ? ~uint64_t{0} : (uint64_t{1} << (end - begin)) - 1;
      if (bits == 0) {
        inactive_range(rule, p, grad, begin, end);
      } else if (bits == full) {
        adam_range(a, p, grad, m + slot, v + slot, begin, end);
        slot += end - begin;
      } else {
        for (int64_t k = begin; k < end; ++k) {
          if ((bits >> (k - begin)) & 1) {
            adam_range(a, p, grad, m + slot, v + slot, k, k + 1);
            ++slot;
          } else {
            inactive_range(rule, p, grad, k, k + 1);
          }
        }
      }
    }
  }

  std::vector<FrugalHyper> hypers_;
  std::vector<Sub> sub_;
};

}  // namespace

std::unique_ptr<Optimizer> make_frugal(const OptionMap& options, std::vector<ParamGroup> groups) {
  return std::make_unique<Frugal>(options, std::move(groups));
}

}  // namespace terse::optim_detail
