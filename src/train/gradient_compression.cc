#include "terse/train/gradient_compression.h"

#include <cmath>
#include <string>

#include "exchange_methods.h"
#include "terse/compress/compressor.h"
#include "terse/compress/error_feedback.h"
#include "terse/core/check.h"
#include "terse/core/finite.h"

namespace terse {

bool compression_is_dense(const std::string& compress) {
  return compress.empty() || compress == "none";
}

bool compression_is_dgc(const std::string& compress) {
  return compress.substr(0, compress.find(':')) == "dgc";
}

bool gradient_compression_on_gpu(const CompressionOptions& options) {
  if (options.compress.substr(0, options.compress.find(':')) == "powersgd") return true;
  if (!compression_is_dgc(options.compress)) return false;
  return exchange::dgc_runs_on_gpu(exchange::parse_spec(options.compress, "--compress"));
}

namespace exchange {
namespace {

// A pure Compressor applied per tensor to every compressed gradient, with an ErrorFeedback
// policy (none / EF14 / EF21 / EF21-W) keeping each tensor's residual or estimate. Payloads of
// all tensors travel in one all-gather; every rank decodes every rank's payloads.
class PayloadExchange final : public GradientCompression {
 public:
  PayloadExchange(Communicator& comm, const std::vector<Param>& params,
                  const CompressionOptions& options)
      : comm_(comm),
        options_(options),
        split_(split_params(params, 0)),
        dense_(comm, split_.dense, params),
        gather_(comm, split_.compressed.size()) {
    std::shared_ptr<const Compressor> compressor = make_compressor(options.compress);
    ErrorFeedbackOptions eo;
    eo.world_size = comm.size();
    eo.rank = comm.rank();
    feedback_ = make_error_feedback(options.feedback, compressor, eo);
    for (size_t i : split_.compressed) names_.push_back(param_label(params[i], i));
    for (const Param& p : params) total_numel_ += p.value.numel;
  }

  std::string describe() const override {
    return feedback_->compressor().spec() + " + " + feedback_->name() + "; " + split_.str();
  }

  CommStats exchange(const std::vector<Param>& params) override {
    const auto t0 = Clock::now();
    double compress_s = 0;
    dense_.start(params);
    auto tc = Clock::now();
    blob_.clear();
    lengths_.assign(split_.compressed.size(), 0);
    for (size_t j = 0; j < split_.compressed.size(); ++j) {
      const TensorView& g = params[split_.compressed[j]].grad;
      if (!all_finite(static_cast<const float*>(g.data), g.numel)) {
        lengths_[j] = -1;  // every rank learns of it in the length exchange and stops
        continue;
      }
      const size_t cap = feedback_->max_encoded_bytes(g.numel);
      const size_t old = blob_.size();
      blob_.resize(old + cap);
      const size_t len = feedback_->encode(static_cast<int>(j), g,
                                           seed_step(options_.seed, step_, j, comm_.rank()),
                                           blob_.data() + old, cap);
      blob_.resize(old + len);
      lengths_[j] = static_cast<int64_t>(len);
    }
    std::vector<int64_t> sent = lengths_;
    for (auto& l : sent) l = std::max<int64_t>(l, 0);
    compress_s += seconds_since(tc);
    const auto& views = run_gather(params);
    tc = Clock::now();
    for (size_t j = 0; j < split_.compressed.size(); ++j) {
      feedback_->decode_and_aggregate(static_cast<int>(j), views[j],
                                      params[split_.compressed[j]].grad);
    }
    compress_s += seconds_since(tc);
    dense_.finish(params);
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
  size_t state_bytes() const override { return feedback_->state_bytes(); }

  StateDict state_dict() const override {
    StateDict sd = feedback_->state_dict();
    sd.ints["exchange.step"] = step_;
    sd.strings["exchange.method"] = describe();
    return sd;
  }

  void load_state_dict(const StateDict& state) override {
    TERSE_CHECK(state.string_value("exchange.method") == describe(), CorruptData,
                "the checkpoint's gradient exchange is '", state.string_value("exchange.method"),
                "' but this run uses '", describe(),
                "'; resume with the same --compress and "
                "--feedback");
    const int64_t step = state.int_value("exchange.step");
    TERSE_CHECK(step >= 0, CorruptData, "the checkpoint's exchange.step is ", step,
                " (expected >= 0)");
    feedback_->load_state_dict(state);
    step_ = step;
  }

 private:
  // The dense all-reduce is in flight: finish it before an error leaves this step.
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
  Split split_;
  DenseAllReduce dense_;
  PayloadAllGather gather_;
  std::unique_ptr<ErrorFeedback> feedback_;
  std::vector<std::string> names_;
  std::vector<uint8_t> blob_;
  std::vector<int64_t> lengths_;
  int64_t total_numel_ = 0;
  int64_t step_ = 0;
};

}  // namespace

std::unique_ptr<GradientCompression> make_payload_exchange(Communicator& comm,
                                                           const std::vector<Param>& params,
                                                           const CompressionOptions& options) {
  return std::make_unique<PayloadExchange>(comm, params, options);
}

}  // namespace exchange

std::unique_ptr<GradientCompression> make_gradient_compression(Communicator& comm,
                                                               const std::vector<Param>& params,
                                                               const CompressionOptions& options) {
  if (compression_is_dense(options.compress)) {
    TERSE_CHECK(options.feedback.empty() || options.feedback == "none", InvalidArgument,
                "--feedback ", options.feedback,
                " needs a compressor; pass --compress NAME (e.g. topk:density=0.01) or drop "
                "--feedback");
    return nullptr;
  }
  exchange::Spec spec = exchange::parse_spec(options.compress, "--compress");
  exchange::check_f32_grads(params, spec.name.c_str(), gradient_compression_on_gpu(options));
  std::unique_ptr<GradientCompression> out;
  if (spec.name == "dgc" || spec.name == "powersgd") {
    TERSE_CHECK(options.feedback.empty() || options.feedback == "none", InvalidArgument, spec.name,
                " keeps its own error memory; --feedback ", options.feedback,
                " cannot wrap it: drop --feedback");
    out = spec.name == "dgc" ? exchange::make_dgc_exchange(comm, params, options, spec)
                             : exchange::make_powersgd_exchange(comm, params, options, spec);
  } else {
    out = exchange::make_payload_exchange(comm, params, options);
  }
  // Every rank must have built the same thing before the first step's collectives.
  exchange::check_agreement(comm, out->describe() + " | " + exchange::shapes_signature(params));
  return out;
}

}  // namespace terse
