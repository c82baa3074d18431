// Deep Gradient Compression in the data-parallel exchange (Lin, Han, Mao, Wang, Dally, ICLR 2018;
// reference synxlin/deep-gradient-compression): per compressed tensor, local clipping (optional),
// momentum correction U = mU + g, V += U (Nesterov: U = m(U + g), V += U + g), sampled-threshold
// top-k of |V|, momentum factor masking (V and U zeroed where sent); payloads all-gathered and
// scatter-added, / N. 1-D tensors go dense and get momentum after the all-reduce, as in the
// reference. Sparsity warm-up runs over the first warmup_steps steps. See docs/dgc.md.
#include <cstring>
#include <map>
#include <sstream>
#include <string>

#include "exchange_methods.h"
#include "terse/compress/dgc/dgc_memory.h"
#include "terse/compress/dgc/dgc_warmup.h"
#include "terse/compress/dgc_top_k.h"
#include "terse/core/check.h"

namespace terse::exchange {
namespace {

struct DgcConfig {
  double density = 0.001;
  std::string values = "f32";
  double sample = 0.01;
  std::string warmup = "none";  // none | paper | code
  int64_t warmup_steps = 0;
  double clip = 0.0;
  bool masking = true;
  int64_t dense_below = 0;

  std::string str() const {
    std::string s = "dgc:density=" + fmt(density) + ",values=" + values + ",sample=" + fmt(sample) +
                    ",warmup=" + warmup + ",warmup_steps=" + std::to_string(warmup_steps) +
                    ",clip=" + fmt(clip) + ",masking=" + (masking ? "true" : "false") +
                    ",dense_below=" + std::to_string(dense_below);
    return s;
  }
  static std::string fmt(double v) {
    std::ostringstream os;
    os << v;
    return os.str();
  }
};

DgcConfig parse(Spec spec) {
  DgcConfig c;
  c.density = take_double(spec, "density", c.density, 0.0, 1.0, true);
  c.values = take_choice(spec, "values", c.values, {"f32", "f16"});
  c.sample = take_double(spec, "sample", c.sample, 0.01, 1.0, false);  // DgcTopK's range
  c.warmup = take_choice(spec, "warmup", c.warmup, {"none", "paper", "code"});
  c.warmup_steps = take_int(spec, "warmup_steps", c.warmup_steps, 0, int64_t{1} << 40);
  c.clip = take_double(spec, "clip", c.clip, 0.0, 1e30, false);
  c.masking = take_bool(spec, "masking", c.masking);
  c.dense_below = take_int(spec, "dense_below", c.dense_below, 0, int64_t{1} << 40);
  reject_unknown(spec, {"density", "values", "sample", "warmup", "warmup_steps", "clip", "masking",
                        "dense_below"});
  TERSE_CHECK((c.warmup == "none") == (c.warmup_steps == 0), InvalidArgument,
              "dgc warm-up needs both warmup=paper|code and warmup_steps=N > 0; got warmup=",
              c.warmup, ", warmup_steps=", c.warmup_steps);
  return c;
}

class DgcExchange final : public GradientCompression {
 public:
  DgcExchange(Communicator& comm, const std::vector<Param>& params,
              const CompressionOptions& options, DgcConfig config)
      : comm_(comm),
        options_(options),
        config_(std::move(config)),
        split_(split_params(params, config_.dense_below)),
        dense_(comm, split_.dense, params),
        gather_(comm, split_.compressed.size()) {
    TERSE_CHECK(options.momentum >= 0 && options.momentum < 1, InvalidArgument,
                "dgc's momentum correction needs the optimizer's momentum in [0, 1), got ",
                options.momentum);
    memory_.momentum = options.momentum;
    memory_.nesterov = options.nesterov;
    memory_.momentum_masking = config_.masking;
    memory_.clip_max_norm = config_.clip;
    memory_.num_workers = comm.size();
    select_.sample_ratio = config_.sample;
    select_.seed = options.seed;
    for (size_t i : split_.compressed) {
      names_.push_back(param_label(params[i], i));
      const size_t n = static_cast<size_t>(params[i].value.numel);
      u_[i].assign(n, 0.0f);
      v_[i].assign(n, 0.0f);
    }
    for (size_t i : split_.dense) u_[i].assign(static_cast<size_t>(params[i].value.numel), 0.0f);
    for (const Param& p : params) total_numel_ += p.value.numel;
  }

  std::string describe() const override {
    return config_.str() + ",momentum=" + DgcConfig::fmt(memory_.momentum) +
           ",nesterov=" + (memory_.nesterov ? "true" : "false") + "; " + split_.str();
  }

  // The density of a 0-based step: the warm-up stages split warmup_steps evenly (paper: 4
  // stages of coeff 0.25; code: 5 stages of density^(1/6)), then the final density.
  double density_at(int64_t step) const {
    if (config_.warmup == "none" || step >= config_.warmup_steps) return config_.density;
    const int stages = config_.warmup == "paper" ? 4 : 5;
    const int stage = static_cast<int>(step * stages / config_.warmup_steps);
    const DgcWarmup w = config_.warmup == "paper" ? DgcWarmup::paper(config_.density)
                                                  : DgcWarmup::reference(config_.density, stages);
    return dgc_density(stage, w);
  }

  CommStats exchange(const std::vector<Param>& params) override {
    const auto t0 = Clock::now();
    double compress_s = 0;
    dense_.start(params);
    auto tc = Clock::now();
    const DgcTopK& dgc = compressor_for(density_at(step_));
    blob_.clear();
    lengths_.assign(split_.compressed.size(), 0);
    for (size_t j = 0; j < split_.compressed.size(); ++j) {
      const size_t i = split_.compressed[j];
      const TensorView& g = params[i].grad;
      float* gp = static_cast<float*>(g.data);
      if (!all_finite(gp, g.numel)) {
        lengths_[j] = -1;  // every rank learns of it in the length exchange and stops
        continue;
      }
      const SparseSelection sel =
          DgcMemory::step(u_[i].data(), v_[i].data(), gp, g.numel, dgc.density(),
                          seed_step(options_.seed, step_, j, comm_.rank()), memory_, select_);
      const size_t cap = dgc.max_encoded_bytes(g.numel);
      const size_t old = blob_.size();
      blob_.resize(old + cap);
      const size_t len = dgc.encode_selection(sel, g.numel, blob_.data() + old, cap);
      blob_.resize(old + len);
      lengths_[j] = static_cast<int64_t>(len);
    }
    std::vector<int64_t> sent = lengths_;
    compress_s += seconds_since(tc);
    const auto& views = run_gather(params);
    tc = Clock::now();
    const float inv = 1.0f / static_cast<float>(comm_.size());
    for (size_t j = 0; j < split_.compressed.size(); ++j) {
      const TensorView& g = params[split_.compressed[j]].grad;
      float* gp = static_cast<float*>(g.data);
      std::memset(gp, 0, static_cast<size_t>(g.numel) * sizeof(float));
      for (const PayloadView& pv : views[j]) dgc.decode(pv.data, pv.len, g, /*accumulate=*/true);
      for (int64_t k = 0; k < g.numel; ++k) gp[k] *= inv;
    }
    compress_s += seconds_since(tc);
    dense_.finish(params);
    tc = Clock::now();
    for (size_t i : split_.dense) {
      float* gp = static_cast<float*>(params[i].grad.data);
      dgc_dense_momentum(u_[i].data(), gp, gp, params[i].grad.numel, memory_);
    }
    compress_s += seconds_since(tc);
    ++step_;

    CommStats s;
    uint64_t payload = 0;
    for (int64_t l : sent) payload += static_cast<uint64_t>(l) + sizeof(int64_t);
    s.payload_bytes = payload + 4 * static_cast<uint64_t>(split_.dense_numel);
    s.payload_dense_bytes = 4 * static_cast<uint64_t>(total_numel_);
    s.bytes_sent = gather_.last_wire_bytes() +
                   ring_bytes(4 * static_cast<uint64_t>(split_.dense_numel), comm_.size());
    s.bytes_dense = ring_bytes(s.payload_dense_bytes, comm_.size());
    s.time_compress_s = compress_s;
    s.time_comm_s = std::max(0.0, seconds_since(t0) - compress_s);
    return s;
  }

  int64_t step() const override { return step_; }

  size_t state_bytes() const override {
    size_t b = 0;
    for (const auto& [i, u] : u_) b += u.size() * sizeof(float);
    for (const auto& [i, v] : v_) b += v.size() * sizeof(float);
    return b;
  }

  StateDict state_dict() const override {
    StateDict sd;
    sd.ints["exchange.step"] = step_;
    sd.strings["exchange.method"] = describe();
    for (const auto& [i, u] : u_) {
      sd.tensors["dgc.u." + std::to_string(i)] = StateTensor::copy_of(
          TensorView::of(const_cast<float*>(u.data()), static_cast<int64_t>(u.size())));
    }
    for (const auto& [i, v] : v_) {
      sd.tensors["dgc.v." + std::to_string(i)] = StateTensor::copy_of(
          TensorView::of(const_cast<float*>(v.data()), static_cast<int64_t>(v.size())));
    }
    return sd;
  }

  void load_state_dict(const StateDict& state) override {
    TERSE_CHECK(state.string_value("exchange.method") == describe(), CorruptData,
                "the checkpoint's gradient exchange is '", state.string_value("exchange.method"),
                "' but this run uses '", describe(),
                "'; resume with the same --compress and optimizer momentum");
    const int64_t step = state.int_value("exchange.step");
    TERSE_CHECK(step >= 0, CorruptData, "the checkpoint's exchange.step is ", step,
                " (expected >= 0)");
    // Validate every buffer before replacing any.
    auto check = [&](const std::map<size_t, std::vector<float>>& bufs, const char* kind) {
      for (const auto& [i, b] : bufs) {
        const std::string key = std::string("dgc.") + kind + "." + std::to_string(i);
        const StateTensor& t = state.tensor(key);
        TERSE_CHECK(t.dtype == DType::kF32 && t.numel() == static_cast<int64_t>(b.size()),
                    CorruptData, "checkpoint entry ", key, " holds ", t.numel(), " ",
                    dtype_name(t.dtype), " elements; this run needs ", b.size(), " f32");
      }
    };
    check(u_, "u");
    check(v_, "v");
    for (auto& [i, u] : u_) {
      state.tensor("dgc.u." + std::to_string(i))
          .copy_to(TensorView::of(u.data(), static_cast<int64_t>(u.size())), "dgc.u");
    }
    for (auto& [i, v] : v_) {
      state.tensor("dgc.v." + std::to_string(i))
          .copy_to(TensorView::of(v.data(), static_cast<int64_t>(v.size())), "dgc.v");
    }
    step_ = step;
  }

 private:
  const DgcTopK& compressor_for(double density) {
    auto it = compressors_.find(density);
    if (it == compressors_.end()) {
      std::unique_ptr<Compressor> c =
          make_compressor("dgc:density=" + DgcConfig::fmt(density) + ",values=" + config_.values +
                          ",sample=" + DgcConfig::fmt(config_.sample));
      it = compressors_.emplace(density, std::move(c)).first;
    }
    return dynamic_cast<const DgcTopK&>(*it->second);
  }

  const std::vector<std::vector<PayloadView>>& run_gather(const std::vector<Param>& params) {
    try {
      return gather_.run(blob_, lengths_, names_);
    } catch (...) {
      try {
        dense_.finish(params);
      } catch (...) {  // the gather's error is the one to report
      }
      throw;
    }
  }

  Communicator& comm_;
  CompressionOptions options_;
  DgcConfig config_;
  Split split_;
  DenseAllReduce dense_;
  PayloadAllGather gather_;
  DgcMemoryOptions memory_;
  DgcSelectOptions select_;
  std::map<size_t, std::vector<float>> u_;  // by parameter index: compressed and dense tensors
  std::map<size_t, std::vector<float>> v_;  // compressed tensors only
  std::map<double, std::unique_ptr<Compressor>> compressors_;
  std::vector<std::string> names_;
  std::vector<uint8_t> blob_;
  std::vector<int64_t> lengths_;
  int64_t total_numel_ = 0;
  int64_t step_ = 0;
};

}  // namespace

std::unique_ptr<GradientCompression> make_dgc_exchange(Communicator& comm,
                                                       const std::vector<Param>& params,
                                                       const CompressionOptions& options,
                                                       Spec spec) {
  return std::make_unique<DgcExchange>(comm, params, options, parse(std::move(spec)));
}

}  // namespace terse::exchange
