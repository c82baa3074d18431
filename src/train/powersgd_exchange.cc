// PowerSGD in the data-parallel exchange: every gradient viewed as rows x (numel / rows) (1-D
// tensors as 1 x numel, which PowerSgd sends densely), two fused all-reduces per step after a
// verdict all-reduce, on the CPU or, for CUDA gradients, on their GPU. The algorithm and its
// state are terse::PowerSgd (docs/collectives.md, "PowerSGD").
#include <algorithm>
#include <sstream>

#include "exchange_methods.h"
#include "terse/comm/algorithms/power_sgd.h"
#include "terse/core/check.h"

namespace terse::exchange {
namespace {

std::string fmt(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

PowerSgd::Options parse(Spec spec, uint64_t seed) {
  PowerSgd::Options o;
  o.rank = static_cast<int>(take_int(spec, "rank", o.rank, 1, 1024));
  o.start_iter = take_int(spec, "start", o.start_iter, 0, int64_t{1} << 40);
  o.min_compression_rate = take_double(spec, "min_rate", o.min_compression_rate, 0.0, 1e9, true);
  o.error_feedback = take_bool(spec, "ef", o.error_feedback);
  o.warm_start = take_bool(spec, "warm_start", o.warm_start);
  o.seed = seed;
  reject_unknown(spec, {"rank", "start", "min_rate", "ef", "warm_start"});
  return o;
}

class PowerSgdExchange final : public GradientCompression {
 public:
  PowerSgdExchange(Communicator& comm, const std::vector<Param>& params, PowerSgd::Options o)
      : comm_(comm),
        algo_(comm, o),
        device_(params.empty() ? Device::cpu() : params[0].grad.device) {
    for (const Param& p : params) total_numel_ += p.value.numel;
  }

  Device device() const override { return device_; }

  std::string describe() const override {
    const PowerSgd::Options& o = algo_.options();
    return "powersgd:rank=" + std::to_string(o.rank) + ",start=" + std::to_string(o.start_iter) +
           ",min_rate=" + fmt(o.min_compression_rate) +
           ",ef=" + (o.error_feedback ? "true" : "false") +
           ",warm_start=" + (o.warm_start ? "true" : "false");
  }

  CommStats exchange(const std::vector<Param>& params) override {
    const auto t0 = Clock::now();
    matrices_.clear();
    for (const Param& p : params) {
      const int64_t rows = p.shape.size() > 1 && p.shape[0] > 0 ? p.shape[0] : 1;
      // CUDA gradients run PowerSgd's GPU passes in place (only P, Q and the dense tensors
      // cross to a host communicator).
      matrices_.push_back(
          MatrixView{static_cast<float*>(p.grad.data), rows, p.grad.numel / rows, p.grad.device});
    }
    const PowerSgdReport r = algo_.run(matrices_, step_);
    ++step_;
    CommStats s;
    s.payload_bytes = r.payload_bytes;
    s.payload_dense_bytes = 4 * static_cast<uint64_t>(total_numel_);
    s.bytes_sent = r.bytes_sent;
    s.bytes_dense = ring_bytes(s.payload_dense_bytes, comm_.size());
    // The local passes (products, Gram-Schmidt) are compression; the verdict all-reduce is the
    // wait for the slowest rank. Dense steps cannot be split: all communication.
    const double seconds = seconds_since(t0);
    s.time_compress_s = std::min(seconds, r.compress_s);
    s.time_comm_s = seconds - s.time_compress_s;
    s.time_wait_s = std::min(s.time_comm_s, r.wait_s);
    return s;
  }

  int64_t step() const override { return step_; }
  size_t state_bytes() const override { return algo_.state_bytes(); }

  StateDict state_dict() const override {
    StateDict sd = algo_.state_dict();
    sd.ints["exchange.step"] = step_;
    sd.strings["exchange.method"] = describe();
    return sd;
  }

  void load_state_dict(const StateDict& state) override {
    TERSE_CHECK(state.string_value("exchange.method") == describe(), CorruptData,
                "the checkpoint's gradient exchange is '", state.string_value("exchange.method"),
                "' but this run uses '", describe(), "'; resume with the same --compress");
    const int64_t step = state.int_value("exchange.step");
    TERSE_CHECK(step >= 0, CorruptData, "the checkpoint's exchange.step is ", step,
                " (expected >= 0)");
    StateDict own;  // PowerSgd rejects keys that are not its own
    for (const auto& [k, t] : state.tensors)
      if (k.rfind("powersgd.", 0) == 0) own.tensors[k] = t;
    for (const auto& [k, v] : state.ints)
      if (k.rfind("powersgd.", 0) == 0) own.ints[k] = v;
    for (const auto& [k, v] : state.floats)
      if (k.rfind("powersgd.", 0) == 0) own.floats[k] = v;
    for (const auto& [k, v] : state.strings)
      if (k.rfind("powersgd.", 0) == 0) own.strings[k] = v;
    algo_.load_state_dict(own);
    step_ = step;
  }

 private:
  Communicator& comm_;
  PowerSgd algo_;
  Device device_;  // of the gradients it was built over
  std::vector<MatrixView> matrices_;
  int64_t total_numel_ = 0;
  int64_t step_ = 0;
};

}  // namespace

std::unique_ptr<GradientCompression> make_powersgd_exchange(Communicator& comm,
                                                            const std::vector<Param>& params,
                                                            const CompressionOptions& options,
                                                            Spec spec) {
  return std::make_unique<PowerSgdExchange>(comm, params, parse(std::move(spec), options.seed));
}

}  // namespace terse::exchange
