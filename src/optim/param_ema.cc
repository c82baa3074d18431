#include "terse/optim/param_ema.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "option_values.h"
#include "state_buffer.h"
#include "terse/core/check.h"
#include "terse/kernels/param_state_apply.h"

namespace terse {

using optim_detail::format_double;
using optim_detail::join;
using optim_detail::parse_bool;
using optim_detail::parse_double;
using optim_detail::parse_int;
using optim_detail::trim;

using optim_detail::StateArray;
using optim_detail::StateBuffer;

namespace {

constexpr const char* kWho = "ema";
const std::vector<std::string> kOptionNames = {"decay",        "warmup",    "warmup_gamma",
                                               "warmup_power", "min_decay", "update_after_step"};

// One param-state pass over every parameter with its EMA array.
template <typename Rule>
void apply(const Rule& rule, const std::vector<Param>& params, std::vector<StateBuffer>& ema) {
  std::vector<ParamStateTask> tasks(params.size());
  for (size_t i = 0; i < params.size(); ++i) tasks[i] = {params[i].value, ema[i].data()};
  param_state_apply(rule, tasks);
}

// `bytes` from src to dst, both in host memory or both in one GPU's (device order kept).
void copy_bytes(Device device, void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  if (device.is_cuda()) {
    cuda_copy(dst, src, bytes);
  } else {
    std::memcpy(dst, src, bytes);
  }
}

}  // namespace

ParamEma::ParamEma(std::vector<Param> params, const OptionMap& options)
    : params_(std::move(params)) {
  for (const auto& [key, value] : options) {
    bool known = false;
    for (const auto& n : kOptionNames) known = known || key == n;
    TERSE_CHECK(known, InvalidArgument, kWho, ": unknown option '", key, "' (= '", value,
                "'); valid options are: ", join(kOptionNames, ", "));
  }
  const auto text = [&](const char* key) -> const std::string* {
    const auto it = options.find(key);
    return it == options.end() ? nullptr : &it->second;
  };
  const auto what = [](const char* key) { return std::string("ema option '") + key + "'"; };
  if (const auto* t = text("decay")) decay_ = parse_double(what("decay"), *t);
  if (const auto* t = text("warmup")) warmup_ = parse_bool(what("warmup"), *t);
  if (const auto* t = text("warmup_gamma")) warmup_gamma_ = parse_double(what("warmup_gamma"), *t);
  if (const auto* t = text("warmup_power")) warmup_power_ = parse_double(what("warmup_power"), *t);
  if (const auto* t = text("min_decay")) min_decay_ = parse_double(what("min_decay"), *t);
  if (const auto* t = text("update_after_step"))
    update_after_step_ = parse_int(what("update_after_step"), *t);
  TERSE_CHECK(decay_ >= 0 && decay_ < 1, InvalidArgument, kWho, ": decay must be in [0, 1), got ",
              decay_, "; 0.999 or 0.9999 is usual (0 copies the weights)");
  TERSE_CHECK(std::isfinite(warmup_gamma_) && warmup_gamma_ > 0, InvalidArgument, kWho,
              ": warmup_gamma must be a finite number > 0, got ", warmup_gamma_, "; 1 is usual");
  TERSE_CHECK(std::isfinite(warmup_power_) && warmup_power_ > 0, InvalidArgument, kWho,
              ": warmup_power must be a finite number > 0, got ", warmup_power_,
              "; 2/3 for long runs, 3/4 for shorter ones");
  TERSE_CHECK(min_decay_ >= 0 && min_decay_ <= decay_, InvalidArgument, kWho,
              ": min_decay must be in [0, decay = ", decay_, "], got ", min_decay_);
  TERSE_CHECK(update_after_step_ >= 0, InvalidArgument, kWho,
              ": update_after_step must be >= 0, got ", update_after_step_);
  for (size_t i = 0; i < params_.size(); ++i) {
    const Param& p = params_[i];
    const std::string label =
        "param " + std::to_string(i) + (p.name.empty() ? "" : " ('" + p.name + "')");
    TERSE_CHECK(p.value.dtype == DType::kF32 || p.value.dtype == DType::kBF16 ||
                    p.value.dtype == DType::kF16,
                InvalidArgument, kWho, ": ", label, " has dtype ", dtype_name(p.value.dtype),
                "; parameters must be f32, bf16 or f16");
    if (i == 0) device_ = p.value.device;
    TERSE_CHECK(p.value.device == device_, InvalidArgument, kWho, ": ", label, " is on ",
                p.value.device.str(), " but param 0 on ", device_.str(),
                "; the EMA averages the parameters of one device");
    TERSE_CHECK(p.value.numel == 0 || p.value.data != nullptr, InvalidArgument, kWho, ": ", label,
                " has ", p.value.numel, " elements but a null pointer");
  }
}

ParamEma::~ParamEma() = default;
ParamEma::ParamEma(ParamEma&&) noexcept = default;
ParamEma& ParamEma::operator=(ParamEma&&) noexcept = default;

ParamEma ParamEma::from_spec(const std::string& spec, std::vector<Param> params) {
  OptionMap options;
  size_t pos = 0;
  while (!trim(spec).empty() && pos <= spec.size()) {
    const auto comma = spec.find(',', pos);
    const std::string item = spec.substr(pos, comma == std::string::npos ? comma : comma - pos);
    const auto eq = item.find('=');
    TERSE_CHECK(eq != std::string::npos && !trim(item.substr(0, eq)).empty() &&
                    !trim(item.substr(eq + 1)).empty(),
                InvalidArgument, kWho, " spec '", spec, "': option '", item,
                "' is not key=value; write e.g. decay=0.999,warmup=true");
    TERSE_CHECK(options.emplace(trim(item.substr(0, eq)), trim(item.substr(eq + 1))).second,
                InvalidArgument, kWho, " spec '", spec, "' sets '", trim(item.substr(0, eq)),
                "' twice; give each option once");
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return ParamEma(std::move(params), options);
}

double ParamEma::decay_at(int64_t t) const {
  const int64_t s = t - update_after_step_ - 1;
  if (s <= 0) return 0.0;
  if (!warmup_) return decay_;
  const double d = 1.0 - std::pow(1.0 + static_cast<double>(s) / warmup_gamma_, -warmup_power_);
  return std::max(std::min(d, decay_), min_decay_);
}

void ParamEma::update() {
  TERSE_CHECK(saved_.empty(), InvalidArgument, kWho,
              ": update() while the EMA weights are loaded; call restore_params() first");
  const int64_t t = num_updates_ + 1;
  const double d = decay_at(t);
  if (ema_.empty()) {
    std::vector<StateBuffer> fresh;
    for (const Param& p : params_) fresh.emplace_back(device_, static_cast<size_t>(p.value.numel));
    ema_ = std::move(fresh);
  }
  // torch's lerp(e, x, w) with w = 1 - d in f32, as torch._foreach_lerp_ computes it; d = 0
  // copies.
  apply(EmaRule::make(d), params_, ema_);
  num_updates_ = t;
}

void ParamEma::load_into_params() {
  TERSE_CHECK(!ema_.empty(), InvalidArgument, kWho,
              ": no EMA yet (no update() since it was built); update before evaluating with it");
  TERSE_CHECK(saved_.empty(), InvalidArgument, kWho,
              ": the EMA weights are loaded already; call restore_params() first");
  std::vector<StateArray<uint8_t>> saved;
  for (const Param& p : params_) {
    saved.emplace_back(device_, p.value.nbytes());
    copy_bytes(device_, saved.back().data(), p.value.data, p.value.nbytes());
  }
  saved_ = std::move(saved);
  apply(StoreStateRule{}, params_, ema_);
}

void ParamEma::restore_params() {
  TERSE_CHECK(!saved_.empty() || params_.empty(), InvalidArgument, kWho,
              ": restore_params() without load_into_params()");
  for (size_t i = 0; i < saved_.size(); ++i) {
    copy_bytes(device_, params_[i].value.data, saved_[i].data(), saved_[i].size());
  }
  saved_.clear();
}

std::vector<float> ParamEma::average(size_t i) const {
  TERSE_CHECK(i < params_.size(), InvalidArgument, kWho, ": average(", i, ") but there are ",
              params_.size(), " parameter(s)");
  if (ema_.empty()) return {};
  std::vector<float> out;
  const float* data = ema_[i].host_data(out);
  if (data != out.data()) out.assign(data, data + ema_[i].size());
  return out;
}

OptionMap ParamEma::options() const {
  return {{"decay", format_double(decay_)},
          {"warmup", warmup_ ? "true" : "false"},
          {"warmup_gamma", format_double(warmup_gamma_)},
          {"warmup_power", format_double(warmup_power_)},
          {"min_decay", format_double(min_decay_)},
          {"update_after_step", std::to_string(update_after_step_)}};
}

StateDict ParamEma::state_dict() const {
  StateDict sd;
  sd.strings["ema"] = "param_ema";
  sd.ints["num_updates"] = num_updates_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string k = std::to_string(i);
    if (!params_[i].name.empty()) sd.strings["param." + k + ".name"] = params_[i].name;
    if (ema_.empty()) continue;
    std::vector<float> scratch;  // a CUDA EMA's host copy
    sd.tensors["ema." + k] = StateTensor::copy_of(ema_[i].host_view(scratch), params_[i].shape);
  }
  return sd;
}

void ParamEma::load_state_dict(const StateDict& sd) {
  TERSE_CHECK(sd.string_value("ema") == "param_ema", InvalidArgument,
              "load_state_dict: the state dict is not a parameter EMA's (ema = '",
              sd.string_value("ema"), "')");
  const int64_t updates = sd.int_value("num_updates");
  TERSE_CHECK(updates >= 0, CorruptData, "load_state_dict: ema num_updates is ", updates,
              "; the state dict is damaged");
  const size_t expected = updates > 0 ? params_.size() : 0;
  TERSE_CHECK(sd.tensors.size() == expected, InvalidArgument, "load_state_dict: the EMA state ",
              "holds ", sd.tensors.size(), " tensor(s) after ", updates, " update(s), but ",
              expected, " are needed for these ", params_.size(),
              " parameter(s); load into the same model");
  std::vector<StateBuffer> fresh;
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string k = std::to_string(i);
    const auto name_it = sd.strings.find("param." + k + ".name");
    TERSE_CHECK(name_it == sd.strings.end() || params_[i].name.empty() ||
                    name_it->second == params_[i].name,
                InvalidArgument, "load_state_dict: EMA parameter ", i, " was saved as '",
                name_it == sd.strings.end() ? "" : name_it->second, "' but here it is '",
                params_[i].name, "'; load into the same model");
    if (expected == 0) continue;
    std::vector<float> buf(static_cast<size_t>(params_[i].value.numel));
    sd.tensor("ema." + k).copy_to(TensorView::of(buf.data(), params_[i].value.numel), "ema." + k);
    fresh.emplace_back(device_, std::move(buf));
  }
  ema_ = std::move(fresh);
  num_updates_ = updates;
}

size_t ParamEma::state_bytes() const {
  size_t bytes = 0;
  for (const auto& e : ema_) bytes += e.size() * sizeof(float);
  for (const auto& s : saved_) bytes += s.size();
  return bytes;
}

}  // namespace terse
