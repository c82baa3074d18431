#include "golden_case.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "terse/kernels/cuda_multi_tensor.h"

namespace terse::golden {
namespace {

std::string number_text(const nlohmann::json& v) {
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  std::ostringstream os;
  os.precision(17);
  os << v.get<double>();
  return os.str();
}

// Which terse optimizer reproduces a reference implementation.
std::string terse_name(const std::string& reference) {
  if (reference.rfind("torch.optim.SGD ", 0) == 0) return "sgd";
  if (reference.rfind("torch.optim.AdamW ", 0) == 0) return "adamw";
  if (reference.rfind("torch.optim.Adam ", 0) == 0) return "adam";
  if (reference.rfind("lucidrains/lion-pytorch ", 0) == 0) return "lion";
  if (reference.rfind("juntang-zhuang/Adabelief-Optimizer adabelief_pytorch 0.2", 0) == 0) {
    return "adabelief";
  }
  if (reference.rfind("AnonymousAlethiometer/SGD_SaI ", 0) == 0) return "sgd_sai";
  if (reference.rfind("sail-sg/Adan ", 0) == 0) return "adan";
  if (reference.rfind("AhmedMostafa16/EXAdam exadam.py EXAdam", 0) == 0) return "exadam";
  if (reference.rfind("shivram1987/diffGrad diffGrad_v2.py ", 0) == 0) return "diffgrad";
  if (reference.rfind("TianjinYellow/SPAM-Optimizer galore_torch/SPAM.py ", 0) == 0) return "spam";
  if (reference.rfind("KellerJordan/Muon ", 0) == 0) return "muon";
  if (reference.rfind("clovaai/AdamP adamp/adamp.py AdamP", 0) == 0) return "adamp";
  if (reference.rfind("clovaai/AdamP adamp/sgdp.py SGDP", 0) == 0) return "sgdp";
  return "";
}

}  // namespace

std::string golden_dir() {
  const char* env = std::getenv("TERSE_GOLDEN_DIR");
  if (env != nullptr && *env != '\0') return env;
  return std::string(TERSE_SOURCE_DIR) + "/tests/golden/data";
}

std::vector<std::string> golden_files() {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(golden_dir(), ec)) {
    if (e.path().extension() == ".json") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

GoldenCase load_golden(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open golden file " + path);
  const auto j = nlohmann::json::parse(in);
  GoldenCase c;
  c.name = j.at("name").get<std::string>();
  c.reference = j.at("reference").get<std::string>();
  c.optimizer = terse_name(c.reference);
  for (const auto& [key, value] : j.at("hyperparameters").items()) {
    if (key == "betas") {
      c.options["betas"] = number_text(value.at(0));  // "a/b", or "a/b/c" for Adan
      for (size_t i = 1; i < value.size(); ++i)
        c.options["betas"] += "/" + number_text(value.at(i));
    } else if (value.is_number() || value.is_boolean()) {
      c.options[key] = number_text(value);
    }
  }
  c.shapes = j.at("shapes").get<std::vector<std::vector<int64_t>>>();
  c.init = j.at("init").get<std::vector<std::vector<double>>>();
  c.grads = j.at("grads").get<std::vector<std::vector<std::vector<double>>>>();
  for (const auto& [key, value] : j.at("params_after_step").items()) {
    c.expected[std::stoll(key)] = value.get<std::vector<std::vector<double>>>();
  }
  return c;
}

double relative_error(const std::vector<float>& actual, const std::vector<double>& expected) {
  if (actual.size() != expected.size()) return INFINITY;
  double scale = 0;
  for (double b : expected) scale = std::max(scale, std::fabs(b));
  double worst = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double b = expected[i];
    const double floor = std::max(std::fabs(b), 1e-1 * scale);
    const double err = std::fabs(static_cast<double>(actual[i]) - b) / (floor > 0 ? floor : 1.0);
    if (!(err <= worst)) worst = err;  // NaN counts as the worst
  }
  return worst;
}

double norm_error(const std::vector<float>& actual, const std::vector<double>& expected) {
  if (actual.size() != expected.size()) return INFINITY;
  double diff = 0, ref = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double d = static_cast<double>(actual[i]) - expected[i];
    diff += d * d;
    ref += expected[i] * expected[i];
  }
  if (ref == 0) return diff == 0 ? 0 : INFINITY;
  const double r = std::sqrt(diff / ref);
  return r == r ? r : INFINITY;
}

namespace {

// GPU memory for one replay, freed when it ends.
struct DeviceArrays {
  std::vector<void*> ptrs;
  DeviceArrays() = default;
  DeviceArrays(const DeviceArrays&) = delete;
  DeviceArrays& operator=(const DeviceArrays&) = delete;
  ~DeviceArrays() {
    for (void* p : ptrs) cuda_free(p);
  }
  void* copy_of(int device, const void* host, size_t bytes) {
    ptrs.push_back(cuda_alloc_zeroed(device, bytes));
    cuda_copy(ptrs.back(), host, bytes);
    return ptrs.back();
  }
};

template <typename T>
ReplayResult replay_typed(const GoldenCase& c, const OptionMap& options, Device device) {
  const size_t n = c.init.size();
  std::vector<std::vector<T>> values(n), grads(n);
  std::vector<Param> params(n);
  DeviceArrays gpu;
  std::vector<void*> gpu_values(n), gpu_grads(n);
  for (size_t i = 0; i < n; ++i) {
    values[i].resize(c.init[i].size());
    grads[i].resize(c.init[i].size());
    for (size_t e = 0; e < values[i].size(); ++e) {
      store_from_float(values[i].data(), static_cast<int64_t>(e), static_cast<float>(c.init[i][e]));
    }
    const auto numel = static_cast<int64_t>(values[i].size());
    params[i].value = TensorView::of(values[i].data(), numel);
    params[i].grad = TensorView::of(grads[i].data(), numel);
    if (device.is_cuda()) {
      const size_t bytes = values[i].size() * sizeof(T);
      gpu_values[i] = gpu.copy_of(device.index, values[i].data(), bytes);
      gpu_grads[i] = gpu.copy_of(device.index, grads[i].data(), bytes);
      params[i].value = TensorView(gpu_values[i], numel, params[i].value.dtype, device);
      params[i].grad = TensorView(gpu_grads[i], numel, params[i].grad.dtype, device);
    }
    params[i].shape = c.shapes[i];
    params[i].name = "tensor" + std::to_string(i);
  }
  OptimizerSpec spec{c.optimizer, options};
  std::vector<ParamGroup> groups(1);
  groups[0].params = params;
  auto opt = make_optimizer(spec, std::move(groups));
  ReplayResult r;
  r.max_error = 0;
  const int64_t last = c.expected.empty() ? 0 : c.expected.rbegin()->first;
  for (int64_t step = 1; step <= last; ++step) {
    const auto& g = c.grads.at(static_cast<size_t>(step - 1));
    for (size_t i = 0; i < n; ++i) {
      for (size_t e = 0; e < grads[i].size(); ++e) {
        store_from_float(grads[i].data(), static_cast<int64_t>(e), static_cast<float>(g[i][e]));
      }
    }
    if (device.is_cuda()) {
      for (size_t i = 0; i < n; ++i) {
        cuda_copy(gpu_grads[i], grads[i].data(), grads[i].size() * sizeof(T));
      }
    }
    opt->step();
    const auto it = c.expected.find(step);
    if (it == c.expected.end()) continue;
    if (device.is_cuda()) {
      for (size_t i = 0; i < n; ++i) {
        cuda_copy(values[i].data(), gpu_values[i], values[i].size() * sizeof(T));
      }
    }
    for (size_t i = 0; i < n; ++i) {
      std::vector<float> actual(values[i].size());
      for (size_t e = 0; e < actual.size(); ++e) {
        actual[e] = load_as_float(values[i].data(), static_cast<int64_t>(e));
      }
      const double err = relative_error(actual, it->second[i]);
      r.max_norm_error = std::max(r.max_norm_error, norm_error(actual, it->second[i]));
      if (!(err <= r.max_error)) {
        r.max_error = err;
        r.worst_step = step;
        r.worst_tensor = i;
      }
    }
  }
  return r;
}

}  // namespace

ReplayResult replay(const GoldenCase& c, DType dtype, const OptionMap* options, Device device) {
  const OptionMap& opts = options != nullptr ? *options : c.options;
  switch (dtype) {
    case DType::kBF16:
      return replay_typed<BFloat16>(c, opts, device);
    case DType::kF16:
      return replay_typed<Half>(c, opts, device);
    default:
      return replay_typed<float>(c, opts, device);
  }
}

}  // namespace terse::golden
