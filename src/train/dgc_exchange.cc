// Deep Gradient Compression in the data-parallel exchange (Lin, Han, Mao, Wang, Dally, ICLR 2018;
// reference synxlin/deep-gradient-compression): per compressed tensor, local clipping (optional),
// momentum correction U = mU + g, V += U (Nesterov: U = m(U + g), V += U + g), sampled-threshold
// top-k of |V|, momentum factor masking (V and U zeroed where sent); payloads all-gathered and
// scatter-added, / N. 1-D tensors go dense and get momentum after the all-reduce, as in the
// reference. Sparsity warm-up runs over the first warmup_steps steps. See docs/dgc.md.
// On CUDA gradients (exchange=gather only) U, V, the correction, the selection and the masking
// run on the GPU (dgc_gpu_memory.h) with the CPU's bits; only the pairs and the biases cross to
// the host.
// exchange=allreduce replaces the all-gather by SparseAllReduce (Ok-Topk, Li & Hoefler, PPoPP
// 2022): the compressed tensors form one index space (tensor j offset by the earlier numels),
// the budget is the sum of the per-tensor k = ceil(density * numel) (DgcTopK::k_for), and every
// local pair that misses the global result goes back into V (V[i] += value: masking had zeroed
// it), so nothing is lost. U stays masked at every selected index, sent or dropped: the dropped
// value waits in V, as it would have had it not been selected.
#include <algorithm>
#include <cstring>
#include <map>
#include <sstream>
#include <string>

#include "dgc_gpu_memory.h"
#include "exchange_methods.h"
#include "terse/comm/algorithms/sparse_all_reduce.h"
#include "terse/compress/dgc/dgc_memory.h"
#include "terse/compress/dgc/dgc_warmup.h"
#include "terse/compress/dgc_top_k.h"
#include "terse/core/check.h"
#include "terse/core/finite.h"
#include "terse/kernels/cpu_threads.h"
#include "terse/kernels/cuda_multi_tensor.h"

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
  std::string exchange = "gather";  // gather | allreduce
  // exchange=allreduce only: SparseAllReduce's Quota (fixed: no per-peer control words).
  std::string quota = "waterfill";  // waterfill | fixed

  // exchange=gather prints as before, so checkpoints of earlier runs still load.
  std::string str() const {
    std::string s = "dgc:density=" + fmt(density) + ",values=" + values + ",sample=" + fmt(sample) +
                    ",warmup=" + warmup + ",warmup_steps=" + std::to_string(warmup_steps) +
                    ",clip=" + fmt(clip) + ",masking=" + (masking ? "true" : "false") +
                    ",dense_below=" + std::to_string(dense_below);
    if (exchange != "gather") s += ",exchange=" + exchange;
    if (quota != "waterfill") s += ",quota=" + quota;  // the default prints as before
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
  c.exchange = take_choice(spec, "exchange", c.exchange, {"gather", "allreduce"});
  c.quota = take_choice(spec, "quota", c.quota, {"waterfill", "fixed"});
  reject_unknown(spec, {"density", "values", "sample", "warmup", "warmup_steps", "clip", "masking",
                        "dense_below", "exchange", "quota"});
  TERSE_CHECK(c.quota == "waterfill" || c.exchange == "allreduce", InvalidArgument,
              "dgc quota= picks SparseAllReduce's budget split and needs exchange=allreduce; got "
              "quota=",
              c.quota, " with exchange=", c.exchange,
              ": add exchange=allreduce or drop the quota key");
  TERSE_CHECK(c.exchange == "gather" || c.values == "f32", InvalidArgument,
              "dgc exchange=allreduce sums the pairs as f32 on the range owners; got values=",
              c.values, ": use values=f32 (or exchange=gather for f16 payloads)");
  TERSE_CHECK((c.warmup == "none") == (c.warmup_steps == 0), InvalidArgument,
              "dgc warm-up needs both warmup=paper|code and warmup_steps=N > 0; got warmup=",
              c.warmup, ", warmup_steps=", c.warmup_steps);
  return c;
}

// x[i] *= s where x[i] != 0 (0 * s is 0 anyway). At density 0.001 almost every block of 32 is
// zero, so this reads the array once and writes back only the few blocks with an entry, where a
// plain x[i] *= s would write all of it: one memory stream instead of two.
void scale_nonzero(float* x, int64_t n, float s) {
  constexpr int64_t kBlock = 32;
  int64_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    int any = 0;
    for (int64_t j = 0; j < kBlock; ++j) any |= x[i + j] != 0.0f ? 1 : 0;
    if (any == 0) continue;
    for (int64_t j = 0; j < kBlock; ++j) x[i + j] *= s;
  }
  for (; i < n; ++i) x[i] *= s;
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
        gather_(comm, split_.compressed.size()),
        allreduce_(comm, SparseAllReduce::Options{SparseReduction::kAverage,
                                                  config_.quota == "fixed"
                                                      ? SparseAllReduce::Quota::kFixed
                                                      : SparseAllReduce::Quota::kWaterFill}) {
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
    const Device device = params.empty() ? Device::cpu() : params[0].grad.device;
    std::vector<int64_t> numels;
    for (size_t i : split_.compressed) {
      names_.push_back(param_label(params[i], i));
      numels.push_back(params[i].value.numel);
      if (device.is_cuda()) continue;  // U and V live on the GPU (gpu_)
      const size_t n = static_cast<size_t>(params[i].value.numel);
      u_[i].assign(n, 0.0f);
      v_[i].assign(n, 0.0f);
    }
    steps_.resize(split_.compressed.size());
    for (size_t i : split_.dense) u_[i].assign(static_cast<size_t>(params[i].value.numel), 0.0f);
    if (device.is_cuda()) {
      TERSE_CHECK(config_.exchange == "gather", InvalidArgument,
                  "dgc exchange=allreduce runs on host gradients; build it over host gradients "
                  "(DataParallel::exchange_params()) or use exchange=gather on the GPU");
      gpu_ = std::make_unique<DgcGpuMemory>(device, numels);
      params_device_ = device;
      // The dense tensors (biases) travel through host copies: they are small.
      host_params_ = params;
      for (size_t i : split_.dense) {
        host_dense_[i].assign(static_cast<size_t>(params[i].grad.numel), 0.0f);
        host_params_[i].grad = TensorView::of(host_dense_[i].data(), params[i].grad.numel);
      }
    }
    for (const Param& p : params) total_numel_ += p.value.numel;
    if (config_.exchange == "allreduce") {
      TERSE_CHECK(split_.compressed_numel < (int64_t{1} << 31), InvalidArgument,
                  "dgc exchange=allreduce indexes the compressed tensors as one int32 space, but "
                  "they hold ",
                  split_.compressed_numel,
                  " elements (limit 2^31 - 1); use exchange=gather or fewer parameters per model");
      int64_t offset = 0;
      for (size_t i : split_.compressed) {
        offsets_.push_back(offset);
        offset += params[i].value.numel;
      }
      allreduce_.set_boundaries(
          SparseAllReduce::equal_boundaries(split_.compressed_numel, comm.size()));
    }
  }

  Device device() const override { return gpu_ ? params_device_ : Device::cpu(); }

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
    if (config_.exchange == "allreduce") return exchange_allreduce(params);
    const auto t0 = Clock::now();
    double compress_s = 0;
    // On the GPU the dense tensors go through host copies; `dense` is the list they are read from.
    const std::vector<Param>& dense = gpu_ ? host_params_ : params;
    for (const auto& [i, h] : host_dense_)
      cuda_copy(host_params_[i].grad.data, params[i].grad.data, h.size() * sizeof(float));
    dense_.start(dense);
    auto tc = Clock::now();
    const DgcTopK& dgc = compressor_for(density_at(step_));
    select_.threads = std::max(1, cpu_threads());  // correction and selection; no bit depends on it
    blob_.clear();
    lengths_.assign(split_.compressed.size(), 0);
    for (size_t j = 0; j < split_.compressed.size(); ++j) {
      const size_t i = split_.compressed[j];
      const TensorView& g = params[i].grad;
      float* gp = static_cast<float*>(g.data);
      if (gpu_ ? !gpu_->finite(g) : !all_finite(gp, g.numel)) {  // before U and V change
        lengths_[j] = -1;  // every rank learns of it in the length exchange and stops
        continue;
      }
      const uint64_t seed = seed_step(options_.seed, step_, j, comm_.rank());
      const SparseSelection sel =
          gpu_ ? gpu_->step(j, gp, dgc.density(), seed, memory_, select_)
               : DgcMemory::step(u_[i].data(), v_[i].data(), gp, g.numel, dgc.density(), seed,
                                 memory_, select_, &steps_[j]);
      const size_t cap = dgc.max_encoded_bytes(g.numel);
      const size_t old = blob_.size();
      blob_.resize(old + cap);
      const size_t len = dgc.encode_selection(sel, g.numel, blob_.data() + old, cap);
      blob_.resize(old + len);
      lengths_[j] = static_cast<int64_t>(len);
    }
    std::vector<int64_t> sent = lengths_;
    compress_s += seconds_since(tc);
    const auto& views = run_gather(dense);
    tc = Clock::now();
    const float inv = 1.0f / static_cast<float>(comm_.size());
    for (size_t j = 0; j < split_.compressed.size(); ++j) {
      const TensorView& g = params[split_.compressed[j]].grad;
      if (gpu_) {
        std::vector<SparseSelection> lists;
        for (const PayloadView& pv : views[j])
          lists.push_back(dgc.decode_selection(pv.data, pv.len, g.numel));
        gpu_->aggregate(lists, g, inv);
        continue;
      }
      float* gp = static_cast<float*>(g.data);
      std::memset(gp, 0, static_cast<size_t>(g.numel) * sizeof(float));
      for (const PayloadView& pv : views[j]) dgc.decode(pv.data, pv.len, g, /*accumulate=*/true);
      scale_nonzero(gp, g.numel, inv);
    }
    compress_s += seconds_since(tc);
    dense_.finish(dense);
    tc = Clock::now();
    for (size_t i : split_.dense) {
      float* gp = static_cast<float*>(dense[i].grad.data);
      dgc_dense_momentum(u_[i].data(), gp, gp, dense[i].grad.numel, memory_);
    }
    for (const auto& [i, h] : host_dense_)
      cuda_copy(params[i].grad.data, host_params_[i].grad.data, h.size() * sizeof(float));
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
    s.time_wait_s = gather_.last_wait_s();
    return s;
  }

  int64_t step() const override { return step_; }

  size_t state_bytes() const override {
    size_t b = gpu_ ? gpu_->state_bytes() : 0;
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
    for (size_t j = 0; gpu_ && j < split_.compressed.size(); ++j) {  // host copies: same format
      const std::string i = std::to_string(split_.compressed[j]);
      std::vector<float> u = gpu_->u(j), v = gpu_->v(j);
      sd.tensors["dgc.u." + i] = StateTensor::copy_of(TensorView::of(u.data(), gpu_->numel(j)));
      sd.tensors["dgc.v." + i] = StateTensor::copy_of(TensorView::of(v.data(), gpu_->numel(j)));
    }
    if (config_.exchange == "allreduce") {
      const std::vector<int64_t>& b = allreduce_.boundaries();
      sd.tensors[kBoundariesKey] = StateTensor::copy_of(
          TensorView::of(const_cast<int64_t*>(b.data()), static_cast<int64_t>(b.size())));
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
    // On the GPU the compressed tensors' U and V: the same keys and sizes.
    std::map<size_t, std::vector<float>> gpu_u, gpu_v;
    for (size_t j = 0; gpu_ && j < split_.compressed.size(); ++j) {
      gpu_u[split_.compressed[j]].resize(static_cast<size_t>(gpu_->numel(j)));
      gpu_v[split_.compressed[j]].resize(static_cast<size_t>(gpu_->numel(j)));
    }
    check(gpu_u, "u");
    check(gpu_v, "v");
    std::vector<int64_t> bounds;
    if (config_.exchange == "allreduce") {
      const StateTensor& t = state.tensor(kBoundariesKey);
      const int64_t want = comm_.size() + 1;
      TERSE_CHECK(t.dtype == DType::kI64 && t.numel() == want, CorruptData, "checkpoint entry ",
                  kBoundariesKey, " holds ", t.numel(), " ", dtype_name(t.dtype),
                  " elements; this run of ", comm_.size(), " ranks needs ", want,
                  " i64 (resume with the world size that wrote it)");
      bounds.resize(static_cast<size_t>(want));
      t.copy_to(TensorView::of(bounds.data(), want), kBoundariesKey);
      TERSE_CHECK(bounds.back() == split_.compressed_numel, CorruptData, "checkpoint entry ",
                  kBoundariesKey, " ends at ", bounds.back(), " but the compressed tensors hold ",
                  split_.compressed_numel, " elements; the checkpoint is of another model");
      SparseAllReduce probe(comm_);
      probe.set_boundaries(bounds);  // CorruptData when not non-decreasing from 0
    }
    for (auto& [i, u] : u_) {
      state.tensor("dgc.u." + std::to_string(i))
          .copy_to(TensorView::of(u.data(), static_cast<int64_t>(u.size())), "dgc.u");
    }
    for (auto& [i, v] : v_) {
      state.tensor("dgc.v." + std::to_string(i))
          .copy_to(TensorView::of(v.data(), static_cast<int64_t>(v.size())), "dgc.v");
    }
    for (size_t j = 0; gpu_ && j < split_.compressed.size(); ++j) {
      const size_t i = split_.compressed[j];
      std::vector<float>& u = gpu_u[i];
      std::vector<float>& v = gpu_v[i];
      state.tensor("dgc.u." + std::to_string(i))
          .copy_to(TensorView::of(u.data(), static_cast<int64_t>(u.size())), "dgc.u");
      state.tensor("dgc.v." + std::to_string(i))
          .copy_to(TensorView::of(v.data(), static_cast<int64_t>(v.size())), "dgc.v");
      gpu_->load(j, u, v);
    }
    if (config_.exchange == "allreduce") allreduce_.set_boundaries(std::move(bounds));
    for (DgcStepState& st : steps_) st.hint = 0.0f;  // made for the V just replaced
    step_ = step;
  }

 private:
  static constexpr const char* kBoundariesKey = "dgc.boundaries";

  // exchange=allreduce: the compressed tensors' selections as one sparse vector through
  // SparseAllReduce; dropped pairs return to V.
  CommStats exchange_allreduce(const std::vector<Param>& params) {
    const auto t0 = Clock::now();
    double compress_s = 0;
    dense_.start(params);
    auto tc = Clock::now();
    const DgcTopK& dgc = compressor_for(density_at(step_));
    select_.threads = std::max(1, cpu_threads());
    const size_t count = split_.compressed.size();
    pair_idx_.clear();
    pair_val_.clear();
    int64_t budget = 0;
    int64_t bad_tensor = -1;
    for (size_t j = 0; j < count; ++j) {
      const size_t i = split_.compressed[j];
      const TensorView& g = params[i].grad;
      float* gp = static_cast<float*>(g.data);
      budget += dgc.k_for(g.numel);
      if (bad_tensor >= 0) continue;
      if (!all_finite(gp, g.numel)) {          // before U and V change
        bad_tensor = static_cast<int64_t>(j);  // every rank learns of it below and stops
        continue;
      }
      const SparseSelection sel = DgcMemory::step(
          u_[i].data(), v_[i].data(), gp, g.numel, dgc.density(),
          seed_step(options_.seed, step_, j, comm_.rank()), memory_, select_, &steps_[j]);
      for (size_t e = 0; e < sel.indices.size(); ++e) {
        pair_idx_.push_back(static_cast<int32_t>(offsets_[j] + sel.indices[e]));
        pair_val_.push_back(sel.values[e]);
      }
    }
    compress_s += seconds_since(tc);
    SparseAllReduceReport rep;
    double wait_s = 0;  // the flag all-gather: it returns when the slowest rank arrives
    flat_.resize(static_cast<size_t>(split_.compressed_numel));  // run() zero-fills it
    try {
      // The NaN flag: an all_reduce MAX of (tensor + 1) * N + rank from a rank that could not
      // compress (0 elsewhere), so every rank stops at the same step (as the gather path's
      // length -1 does) and names one culprit, in ceil(log2 N) small messages rather than an
      // all-gather whose bytes grow with N.
      const int64_t world = comm_.size();
      int64_t flag = bad_tensor >= 0 ? (bad_tensor + 1) * world + comm_.rank() : 0;
      const auto tw = Clock::now();
      comm_.all_reduce(TensorView::of(&flag, 1), ReduceOp::kMax);
      wait_s = seconds_since(tw);
      TERSE_CHECK(flag == 0, NumericalError, "rank ", flag % world,
                  " could not compress the gradient of ",
                  flag / world - 1 < static_cast<int64_t>(count)
                      ? names_[static_cast<size_t>(flag / world - 1)]
                      : std::string("a tensor"),
                  " (a NaN or Inf gradient); every rank stops at this step: lower the "
                  "learning rate or resume from the last checkpoint");
      rep = allreduce_.run(
          SparseVector{pair_idx_.data(), pair_val_.data(), static_cast<int64_t>(pair_idx_.size())},
          budget, TensorView::of(flat_.data(), split_.compressed_numel));
    } catch (...) {
      try {
        dense_.finish(params);
      } catch (...) {  // the exchange's error is the one to report
      }
      throw;
    }
    tc = Clock::now();
    // Error feedback for the pairs that missed the global top-k: back into V.
    size_t j = 0;
    for (size_t p = 0; p < pair_idx_.size(); ++p) {
      if (rep.kept[p]) continue;
      while (j + 1 < count && pair_idx_[p] >= offsets_[j + 1]) ++j;
      v_[split_.compressed[j]][static_cast<size_t>(pair_idx_[p] - offsets_[j])] += pair_val_[p];
    }
    for (size_t t = 0; t < count; ++t) {
      const TensorView& g = params[split_.compressed[t]].grad;
      std::memcpy(g.data, flat_.data() + offsets_[t], static_cast<size_t>(g.numel) * sizeof(float));
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
    const uint64_t flag_bytes = recursive_doubling_bytes(sizeof(int64_t), comm_.size());
    s.payload_bytes =
        8 * static_cast<uint64_t>(pair_idx_.size()) + 4 * static_cast<uint64_t>(split_.dense_numel);
    s.payload_dense_bytes = 4 * static_cast<uint64_t>(total_numel_);
    s.bytes_sent = rep.bytes_sent + flag_bytes +
                   ring_bytes(4 * static_cast<uint64_t>(split_.dense_numel), comm_.size());
    s.bytes_dense = ring_bytes(s.payload_dense_bytes, comm_.size());
    s.time_compress_s = compress_s;
    s.time_comm_s = std::max(0.0, seconds_since(t0) - compress_s);
    s.time_wait_s = wait_s;
    return s;
  }

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
  SparseAllReduce allreduce_;
  std::vector<int64_t> offsets_;  // exchange=allreduce: tensor j's first flat index
  std::vector<int32_t> pair_idx_;
  std::vector<float> pair_val_;
  std::vector<float> flat_;
  DgcMemoryOptions memory_;
  DgcSelectOptions select_;
  std::map<size_t, std::vector<float>> u_;  // by parameter index: compressed and dense tensors
  std::map<size_t, std::vector<float>> v_;  // compressed tensors only
  // By compressed tensor: what DgcMemory::step carries over to fuse its passes. No bit of the
  // result depends on it, so it is neither checkpointed nor restored.
  std::vector<DgcStepState> steps_;
  std::map<double, std::unique_ptr<Compressor>> compressors_;
  std::vector<std::string> names_;
  std::vector<uint8_t> blob_;
  std::vector<int64_t> lengths_;
  int64_t total_numel_ = 0;
  int64_t step_ = 0;
  // On the GPU (the gradients are CUDA views): U and V of the compressed tensors and their
  // selection there; the dense tensors' gradients through host copies (host_params_ lists them,
  // the compressed tensors' views unchanged).
  std::unique_ptr<DgcGpuMemory> gpu_;
  Device params_device_;
  std::map<size_t, std::vector<float>> host_dense_;
  std::vector<Param> host_params_;
};

}  // namespace

bool dgc_runs_on_gpu(Spec spec) { return parse(std::move(spec)).exchange == "gather"; }

std::unique_ptr<GradientCompression> make_dgc_exchange(Communicator& comm,
                                                       const std::vector<Param>& params,
                                                       const CompressionOptions& options,
                                                       Spec spec) {
  return std::make_unique<DgcExchange>(comm, params, options, parse(std::move(spec)));
}

}  // namespace terse::exchange
