#include "terse/compress/error_feedback.h"

#include <cmath>
#include <utility>

#include "terse/core/check.h"
#include "terse/core/error.h"

namespace terse {
namespace {

const char* kind_name(ErrorFeedbackKind kind) {
  switch (kind) {
    case ErrorFeedbackKind::kNone:
      return "none";
    case ErrorFeedbackKind::kEF14:
      return "ef14";
    case ErrorFeedbackKind::kEF21:
      return "ef21";
    case ErrorFeedbackKind::kEF21W:
      return "ef21w";
  }
  return "unknown";
}

bool keeps_residual(ErrorFeedbackKind kind) { return kind != ErrorFeedbackKind::kNone; }
bool keeps_aggregate(ErrorFeedbackKind kind) {
  return kind == ErrorFeedbackKind::kEF21 || kind == ErrorFeedbackKind::kEF21W;
}

void check_cpu_f32(const TensorView& t, const char* what) {
  TERSE_CHECK(t.dtype == DType::kF32, InvalidArgument, "error feedback: ", what,
              " must be f32 but is ", dtype_name(t.dtype), "; cast it before compressing");
  TERSE_CHECK(t.device.is_cpu(), InvalidArgument, "error feedback: ", what,
              " must be on the CPU but is on ", t.device.str(), "; copy it to the host first");
  TERSE_CHECK(t.numel == 0 || t.data != nullptr, InvalidArgument, "error feedback: ", what,
              " has numel ", t.numel, " but a null data pointer");
}

std::string residual_key(int bucket) { return "ef.residual." + std::to_string(bucket); }
std::string aggregate_key(int bucket) { return "ef.aggregate." + std::to_string(bucket); }

}  // namespace

ErrorFeedback::ErrorFeedback(ErrorFeedbackKind kind, std::shared_ptr<const Compressor> compressor,
                             ErrorFeedbackOptions options)
    : kind_(kind), compressor_(std::move(compressor)), options_(std::move(options)) {
  TERSE_CHECK(compressor_ != nullptr, InvalidArgument,
              "error feedback: compressor is null; pass make_compressor(\"topk\") or similar");
  TERSE_CHECK(options_.world_size >= 1, InvalidArgument, "error feedback: world_size is ",
              options_.world_size, "; it must be at least 1");
  TERSE_CHECK(options_.rank >= 0 && options_.rank < options_.world_size, InvalidArgument,
              "error feedback: rank is ", options_.rank, " but must be in [0, ",
              options_.world_size, ")");
  const size_t n = static_cast<size_t>(options_.world_size);
  weights_.assign(n, 1.0 / static_cast<double>(n));
  if (!options_.smoothness.empty()) {
    TERSE_CHECK(kind_ == ErrorFeedbackKind::kEF21W, InvalidArgument,
                "error feedback: smoothness constants are only used by ef21w but the policy is ",
                kind_name(kind_), "; leave ErrorFeedbackOptions::smoothness empty");
    TERSE_CHECK(options_.smoothness.size() == n, InvalidArgument, "error feedback: smoothness has ",
                options_.smoothness.size(), " entries but world_size is ", n,
                "; give one L_i per worker");
    double total = 0.0;
    for (size_t i = 0; i < n; ++i) {
      const double li = options_.smoothness[i];
      TERSE_CHECK(std::isfinite(li) && li > 0.0, InvalidArgument, "error feedback: smoothness[", i,
                  "] is ", li, "; every L_i must be finite and > 0");
      total += li;
    }
    for (size_t i = 0; i < n; ++i) weights_[i] = options_.smoothness[i] / total;
  }
}

std::string ErrorFeedback::name() const { return kind_name(kind_); }

std::vector<float>& ErrorFeedback::residual_for(int bucket, int64_t numel) {
  auto it = residuals_.find(bucket);
  if (it == residuals_.end()) {
    it = residuals_.emplace(bucket, std::vector<float>(static_cast<size_t>(numel), 0.0f)).first;
  }
  TERSE_CHECK(static_cast<int64_t>(it->second.size()) == numel, InvalidArgument,
              "error feedback: bucket ", bucket, " holds state of ", it->second.size(),
              " elements but the gradient has ", numel,
              "; keep bucket sizes fixed or call reset() after rebucketing");
  return it->second;
}

size_t ErrorFeedback::encode(int bucket, TensorView grad, uint64_t seed_step, uint8_t* out,
                             size_t cap) {
  check_cpu_f32(grad, "gradient");
  const float* g = grad.as<float>();
  const size_t n = static_cast<size_t>(grad.numel);
  if (!keeps_residual(kind_)) return compressor_->encode(grad, seed_step, out, cap);

  std::vector<float>& r = residual_for(bucket, grad.numel);
  scratch_.resize(n);
  if (kind_ == ErrorFeedbackKind::kEF14) {
    // e <- e + g; w = C(e); e <- e - decode(w).
    for (size_t j = 0; j < n; ++j) r[j] += g[j];
    const TensorView rv = TensorView::of(r.data(), grad.numel);
    const size_t bytes = compressor_->encode(rv, seed_step, out, cap);
    compressor_->decode(out, bytes, TensorView::of(scratch_.data(), grad.numel), false);
    for (size_t j = 0; j < n; ++j) r[j] -= scratch_[j];
    return bytes;
  }
  // EF21 / EF21-W: c = C(grad / (n w_i) - g_i); g_i <- g_i + decode(c). EF21 has n w_i = 1.
  const double nw =
      static_cast<double>(options_.world_size) * weights_[static_cast<size_t>(options_.rank)];
  const float scale = static_cast<float>(1.0 / nw);
  if (kind_ == ErrorFeedbackKind::kEF21) {
    for (size_t j = 0; j < n; ++j) scratch_[j] = g[j] - r[j];
  } else {
    for (size_t j = 0; j < n; ++j) scratch_[j] = g[j] * scale - r[j];
  }
  const size_t bytes =
      compressor_->encode(TensorView::of(scratch_.data(), grad.numel), seed_step, out, cap);
  compressor_->decode(out, bytes, TensorView::of(r.data(), grad.numel), true);
  return bytes;
}

void ErrorFeedback::decode_and_aggregate(int bucket, const std::vector<PayloadView>& payloads,
                                         TensorView out) {
  check_cpu_f32(out, "aggregate output");
  TERSE_CHECK(payloads.size() == static_cast<size_t>(options_.world_size), InvalidArgument,
              "error feedback: got ", payloads.size(), " payloads for bucket ", bucket,
              " but world_size is ", options_.world_size, "; pass one payload per worker");
  float* o = out.as<float>();
  const size_t n = static_cast<size_t>(out.numel);
  sum_.assign(n, 0.0f);
  const TensorView sv = TensorView::of(sum_.data(), out.numel);
  if (!keeps_aggregate(kind_)) {
    // Decode everything first so a CorruptData payload leaves out untouched.
    for (const PayloadView& p : payloads) compressor_->decode(p.data, p.len, sv, true);
    const float inv = static_cast<float>(1.0 / static_cast<double>(options_.world_size));
    for (size_t j = 0; j < n; ++j) o[j] = sum_[j] * inv;
    return;
  }
  auto it = aggregates_.find(bucket);
  TERSE_CHECK(it == aggregates_.end() || it->second.size() == n, InvalidArgument,
              "error feedback: bucket ", bucket, " keeps an aggregate of ",
              it == aggregates_.end() ? 0 : it->second.size(), " elements but out has ", n,
              "; keep bucket sizes fixed or call reset() after rebucketing");
  // sum = sum_i w_i decode(c_i), each payload decoded onto sum with its weight: a sparse one
  // touches only its entries, so this costs O(n + entries), not O(N n). sum is scratch: a
  // CorruptData payload throws before the kept g or out change. The bits equal those of adding
  // w_i times a zero-filled dense decode: the terms skipped are +0, and sum never holds -0 (it
  // starts at +0 and a round-to-nearest sum is -0 only if both terms are), so they add nothing.
  for (size_t i = 0; i < payloads.size(); ++i) {
    compressor_->decode(payloads[i].data, payloads[i].len, sv, /*accumulate=*/true,
                        static_cast<float>(weights_[i]));
  }
  if (it == aggregates_.end()) {
    it = aggregates_.emplace(bucket, std::vector<float>(n, 0.0f)).first;
  }
  std::vector<float>& agg = it->second;
  for (size_t j = 0; j < n; ++j) {
    agg[j] += sum_[j];
    o[j] = agg[j];
  }
}

size_t ErrorFeedback::state_bytes() const {
  size_t total = 0;
  for (const auto& kv : residuals_) total += kv.second.size() * sizeof(float);
  for (const auto& kv : aggregates_) total += kv.second.size() * sizeof(float);
  return total;
}

void ErrorFeedback::reset() {
  residuals_.clear();
  aggregates_.clear();
}

StateDict ErrorFeedback::state_dict() const {
  StateDict sd;
  sd.strings["ef.kind"] = name();
  sd.ints["ef.world_size"] = options_.world_size;
  sd.ints["ef.rank"] = options_.rank;
  for (const auto& kv : residuals_) {
    std::vector<float>& v = const_cast<std::vector<float>&>(kv.second);
    const int64_t numel = static_cast<int64_t>(v.size());
    sd.tensors[residual_key(kv.first)] =
        StateTensor::copy_of(TensorView::of(v.data(), numel), {numel});
  }
  for (const auto& kv : aggregates_) {
    std::vector<float>& v = const_cast<std::vector<float>&>(kv.second);
    const int64_t numel = static_cast<int64_t>(v.size());
    sd.tensors[aggregate_key(kv.first)] =
        StateTensor::copy_of(TensorView::of(v.data(), numel), {numel});
  }
  return sd;
}

void ErrorFeedback::load_state_dict(const StateDict& state) {
  const std::string& kind = state.string_value("ef.kind");
  TERSE_CHECK(kind == name(), CorruptData, "error feedback: checkpoint holds ", kind,
              " state but this policy is ", name(), "; load it into a ", kind, " policy");
  const int64_t ws = state.int_value("ef.world_size");
  TERSE_CHECK(ws == options_.world_size, CorruptData, "error feedback: checkpoint has world_size ",
              ws, " but this run has ", options_.world_size,
              "; residuals are per rank and cannot be resharded");
  const int64_t rk = state.int_value("ef.rank");
  TERSE_CHECK(rk == options_.rank, CorruptData, "error feedback: checkpoint is of rank ", rk,
              " but this is rank ", options_.rank, "; load each rank's own checkpoint");

  std::map<int, std::vector<float>> residuals;
  std::map<int, std::vector<float>> aggregates;
  const std::string kRes = "ef.residual.";
  const std::string kAgg = "ef.aggregate.";
  for (const auto& kv : state.tensors) {
    const std::string& key = kv.first;
    const bool is_res = key.compare(0, kRes.size(), kRes) == 0;
    const bool is_agg = key.compare(0, kAgg.size(), kAgg) == 0;
    if (!is_res && !is_agg) continue;
    const std::string id = key.substr(is_res ? kRes.size() : kAgg.size());
    int bucket = 0;
    size_t used = 0;
    try {
      bucket = std::stoi(id, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    TERSE_CHECK(!id.empty() && used == id.size() && std::to_string(bucket) == id, CorruptData,
                "error feedback: state key '", key, "' does not end in a bucket id",
                "; the checkpoint is damaged");
    TERSE_CHECK(is_res ? keeps_residual(kind_) : keeps_aggregate(kind_), CorruptData,
                "error feedback: state key '", key, "' is not used by ", name(),
                "; the checkpoint is damaged");
    const StateTensor& t = kv.second;
    TERSE_CHECK(t.dtype == DType::kF32, CorruptData, "error feedback: ", key, " is ",
                dtype_name(t.dtype), " but must be f32; the checkpoint is damaged");
    const int64_t numel = t.numel();
    TERSE_CHECK(numel >= 0 && t.bytes.size() == static_cast<size_t>(numel) * sizeof(float),
                CorruptData, "error feedback: ", key, " has ", t.bytes.size(), " bytes for numel ",
                numel, "; the checkpoint is damaged");
    const auto& mine = is_res ? residuals_ : aggregates_;
    auto present = mine.find(bucket);
    TERSE_CHECK(present == mine.end() || static_cast<int64_t>(present->second.size()) == numel,
                CorruptData, "error feedback: ", key, " has ", numel, " elements but bucket ",
                bucket, " here has ", present == mine.end() ? 0 : present->second.size(),
                "; the checkpoint is of another model or bucketing");
    std::vector<float> v(static_cast<size_t>(numel));
    t.copy_to(TensorView::of(v.data(), numel), key);
    (is_res ? residuals : aggregates)[bucket] = std::move(v);
  }
  for (const auto& kv : aggregates) {
    auto r = residuals.find(kv.first);
    TERSE_CHECK(r != residuals.end() && r->second.size() == kv.second.size(), CorruptData,
                "error feedback: aggregate of bucket ", kv.first, " has ", kv.second.size(),
                " elements but its residual has ", r == residuals.end() ? 0 : r->second.size(),
                "; the checkpoint is damaged");
  }
  residuals_ = std::move(residuals);
  aggregates_ = std::move(aggregates);
}

double ef21_step_size(ErrorFeedbackKind kind, double alpha, double l,
                      const std::vector<double>& smoothness) {
  TERSE_CHECK(kind == ErrorFeedbackKind::kEF21 || kind == ErrorFeedbackKind::kEF21W,
              InvalidArgument, "ef21_step_size: kind is ", kind_name(kind),
              " but the formula is for ef21 or ef21w");
  TERSE_CHECK(alpha > 0.0 && alpha <= 1.0, InvalidArgument, "ef21_step_size: alpha is ", alpha,
              "; it must be in (0, 1] (Top-k: k/d)");
  TERSE_CHECK(std::isfinite(l) && l > 0.0, InvalidArgument, "ef21_step_size: L is ", l,
              "; it must be finite and > 0");
  TERSE_CHECK(!smoothness.empty(), InvalidArgument,
              "ef21_step_size: smoothness is empty; give one L_i per worker");
  double sum = 0.0;
  double sum_sq = 0.0;
  for (size_t i = 0; i < smoothness.size(); ++i) {
    const double li = smoothness[i];
    TERSE_CHECK(std::isfinite(li) && li > 0.0, InvalidArgument, "ef21_step_size: smoothness[", i,
                "] is ", li, "; every L_i must be finite and > 0");
    sum += li;
    sum_sq += li * li;
  }
  const double n = static_cast<double>(smoothness.size());
  const double l_tilde = kind == ErrorFeedbackKind::kEF21 ? std::sqrt(sum_sq / n) : sum / n;
  if (alpha == 1.0) return 1.0 / l;  // exact compressor: beta = 0, plain gradient descent
  const double theta = 1.0 - std::sqrt(1.0 - alpha);
  const double beta = (1.0 - alpha) / theta;
  return 1.0 / (l + l_tilde * std::sqrt(beta / theta));
}

std::vector<std::string> error_feedback_names() { return {"none", "ef14", "ef21", "ef21w"}; }

std::unique_ptr<ErrorFeedback> make_error_feedback(const std::string& name,
                                                   std::shared_ptr<const Compressor> compressor,
                                                   ErrorFeedbackOptions options) {
  ErrorFeedbackKind kind;
  if (name == "none") {
    kind = ErrorFeedbackKind::kNone;
  } else if (name == "ef14") {
    kind = ErrorFeedbackKind::kEF14;
  } else if (name == "ef21") {
    kind = ErrorFeedbackKind::kEF21;
  } else if (name == "ef21w") {
    kind = ErrorFeedbackKind::kEF21W;
  } else {
    TERSE_THROW(InvalidArgument, "unknown error feedback '", name,
                "'; valid names are none, ef14, ef21, ef21w");
  }
  return std::make_unique<ErrorFeedback>(kind, std::move(compressor), std::move(options));
}

}  // namespace terse
