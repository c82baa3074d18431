#include "one_bit_optimizer_util.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "../optim/option_values.h"
#include "terse/core/check.h"
#include "terse/kernels/cuda_flat_reduce.h"
#include "terse/kernels/fixed_order_sum.h"

namespace terse::train_detail {

using optim_detail::format_double;
using optim_detail::join;
using optim_detail::parse_double;
using optim_detail::parse_int;
using optim_detail::parse_pair;

namespace {

const std::set<std::string> kGroupOptions = {"lr", "betas", "eps", "weight_decay"};

}  // namespace

std::string param_label(const Param& p, size_t group, size_t index) {
  std::string s = "param " + std::to_string(index) + " of group " + std::to_string(group);
  if (!p.name.empty()) s += " ('" + p.name + "')";
  return s;
}

void check_known_options(const char* optimizer, const std::vector<OptionDefault>& known,
                         const OptionMap& given, const std::string& who) {
  for (const auto& [key, value] : given) {
    bool ok = false;
    for (const auto& o : known) ok = ok || key == o.first;
    if (ok) continue;
    std::vector<std::string> names;
    for (const auto& o : known) names.push_back(o.first);
    TERSE_THROW(InvalidArgument, who, ": unknown option '", key, "' (= '", value,
                "'); valid options for ", optimizer, " are: ", join(names, ", "));
  }
}

std::string option_value(const std::vector<OptionDefault>& known, const OptionMap& given,
                         const std::string& key) {
  const auto it = given.find(key);
  if (it != given.end()) return it->second;
  for (const auto& o : known) {
    if (key == o.first) return o.second;
  }
  return "";
}

int64_t int_option(const char* optimizer, const std::vector<OptionDefault>& known,
                   const OptionMap& given, const std::string& key, int64_t min, bool required,
                   const char* hint) {
  TERSE_CHECK(!required || given.count(key) == 1, InvalidArgument, optimizer, ": option '", key,
              "' is required (", hint, ")");
  const int64_t v =
      parse_int(std::string(optimizer) + " option '" + key + "'", option_value(known, given, key));
  TERSE_CHECK(v >= min, InvalidArgument, optimizer, ": option '", key,
              "' must be an integer >= ", min, ", got ", v, " (", hint, ")");
  return v;
}

std::vector<FlatGroup> make_flat_groups(const char* optimizer,
                                        const std::vector<OptionDefault>& known,
                                        const OptionMap& options, std::vector<ParamGroup> groups,
                                        int64_t* numel, Device* device) {
  TERSE_CHECK(!groups.empty(), InvalidArgument, optimizer,
              ": got no parameter groups; pass at least one parameter");
  std::vector<FlatGroup> out;
  std::set<const void*> seen;
  int64_t total = 0;
  bool have_device = false;
  Device where = Device::cpu();
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::string who = std::string(optimizer) + " (group " + std::to_string(g) + ")";
    check_known_options(optimizer, known, groups[g].overrides, who);
    for (const auto& [key, value] : groups[g].overrides) {
      TERSE_CHECK(kGroupOptions.count(key) == 1, InvalidArgument, who, ": option '", key, "' (= '",
                  value, "') cannot differ per group (every group shares one flat ",
                  "1-bit buffer and one schedule); set it in the optimizer spec, and override ",
                  "only lr, betas, eps or weight_decay per group");
    }
    OptionMap given = options;
    for (const auto& [k, v] : groups[g].overrides) given[k] = v;
    FlatGroup grp;
    grp.lr = parse_double(who + " option 'lr'", option_value(known, given, "lr"));
    std::tie(grp.beta1, grp.beta2) =
        parse_pair(who + " option 'betas'", option_value(known, given, "betas"));
    grp.eps = parse_double(who + " option 'eps'", option_value(known, given, "eps"));
    grp.weight_decay =
        parse_double(who + " option 'weight_decay'", option_value(known, given, "weight_decay"));
    TERSE_CHECK(std::isfinite(grp.lr) && grp.lr >= 0, InvalidArgument, who,
                ": option 'lr' must be a finite number >= 0, got ", grp.lr, "; pass e.g. lr=1e-3");
    TERSE_CHECK(grp.beta1 >= 0 && grp.beta1 < 1 && grp.beta2 >= 0 && grp.beta2 < 1, InvalidArgument,
                who, ": option 'betas' must each be in [0, 1), got ", grp.beta1, "/", grp.beta2,
                "; 0.9/0.999 is usual");
    TERSE_CHECK(std::isfinite(grp.eps) && grp.eps > 0, InvalidArgument, who,
                ": option 'eps' must be a finite number > 0, got ", grp.eps, "; 1e-8 is usual");
    TERSE_CHECK(std::isfinite(grp.weight_decay) && grp.weight_decay >= 0, InvalidArgument, who,
                ": option 'weight_decay' must be a finite number >= 0, got ", grp.weight_decay);
    grp.base_lr = grp.lr;
    for (size_t i = 0; i < groups[g].params.size(); ++i) {
      const Param& p = groups[g].params[i];
      const std::string label = param_label(p, g, i);
      TERSE_CHECK(p.value.dtype == DType::kF32 && p.grad.dtype == DType::kF32, InvalidArgument,
                  optimizer, ": ", label, " is ", dtype_name(p.value.dtype), " (grad ",
                  dtype_name(p.grad.dtype), "); it steps f32 parameters and gradients only ",
                  "(its flat momentum buffer is f32); keep f32 master weights");
      TERSE_CHECK(p.value.device == p.grad.device, InvalidArgument, optimizer, ": ", label,
                  " is on ", p.value.device.str(), " but its grad on ", p.grad.device.str(),
                  "; the gradient must be where the parameter is");
      TERSE_CHECK(!have_device || p.value.device == where, InvalidArgument, optimizer, ": ", label,
                  " is on ", p.value.device.str(), " but the parameters before it on ", where.str(),
                  "; one optimizer steps the parameters of one device (its flat ",
                  "state is there)");
      have_device = true;
      where = p.value.device;
      TERSE_CHECK(p.grad.numel == p.value.numel, InvalidArgument, optimizer, ": ", label, " has ",
                  p.value.numel, " elements but its grad has ", p.grad.numel,
                  "; the gradient must match the parameter");
      TERSE_CHECK(p.value.numel == 0 || (p.value.data != nullptr && p.grad.data != nullptr),
                  InvalidArgument, optimizer, ": ", label, " has ", p.value.numel,
                  " elements but a null value or grad pointer; allocate both first");
      TERSE_CHECK(p.value.numel == 0 || seen.insert(p.value.data).second, InvalidArgument,
                  optimizer, ": ", label, " appears more than once; pass every parameter once");
      grp.offsets.push_back(total);
      total += p.value.numel;
    }
    grp.params = std::move(groups[g].params);
    out.push_back(std::move(grp));
  }
  TERSE_CHECK(total > 0, InvalidArgument, optimizer, ": the parameters hold no elements; pass ",
              "at least one non-empty parameter");
  *numel = total;
  *device = where;
  return out;
}

void add_group_options(const FlatGroup& g, OptionMap* out) {
  (*out)["lr"] = format_double(g.lr);
  (*out)["betas"] = format_double(g.beta1) + "/" + format_double(g.beta2);
  (*out)["eps"] = format_double(g.eps);
  (*out)["weight_decay"] = format_double(g.weight_decay);
}

void save_groups(const char* optimizer, const std::vector<FlatGroup>& groups, StateDict* sd) {
  sd->strings["optimizer"] = optimizer;
  sd->ints["num_groups"] = static_cast<int64_t>(groups.size());
  size_t k = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::string gp = "group." + std::to_string(g) + ".";
    sd->ints[gp + "num_params"] = static_cast<int64_t>(groups[g].params.size());
    sd->floats[gp + "lr"] = groups[g].lr;
    for (const Param& p : groups[g].params) {
      if (!p.name.empty()) sd->strings["param." + std::to_string(k) + ".name"] = p.name;
      ++k;
    }
  }
}

std::vector<double> load_groups(const char* optimizer, const std::vector<FlatGroup>& groups,
                                const StateDict& sd) {
  const std::string& saved = sd.string_value("optimizer");
  TERSE_CHECK(saved == optimizer, InvalidArgument, "load_state_dict: the state dict is from ",
              "optimizer '", saved, "' but this optimizer is '", optimizer,
              "'; build the same optimizer that saved it");
  const int64_t ng = sd.int_value("num_groups");
  TERSE_CHECK(ng == static_cast<int64_t>(groups.size()), InvalidArgument,
              "load_state_dict: the state dict has ", ng, " parameter group(s), this ", optimizer,
              " has ", groups.size(), "; build it with the same groups");
  std::vector<double> lrs(groups.size());
  size_t k = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::string gp = "group." + std::to_string(g) + ".";
    const int64_t np = sd.int_value(gp + "num_params");
    TERSE_CHECK(np == static_cast<int64_t>(groups[g].params.size()), InvalidArgument,
                "load_state_dict: group ", g, " has ", np, " parameter(s) in the state dict but ",
                groups[g].params.size(), " here; build the optimizer over the same model");
    lrs[g] = sd.float_value(gp + "lr");
    TERSE_CHECK(std::isfinite(lrs[g]) && lrs[g] >= 0, CorruptData, "load_state_dict: group ", g,
                " has lr ", lrs[g], "; the state dict is damaged");
    for (const Param& p : groups[g].params) {
      const auto it = sd.strings.find("param." + std::to_string(k) + ".name");
      TERSE_CHECK(it == sd.strings.end() || p.name.empty() || it->second == p.name, InvalidArgument,
                  "load_state_dict: parameter ", k, " was saved as '",
                  it == sd.strings.end() ? "" : it->second, "' but here it is '", p.name,
                  "'; load into the same model");
      ++k;
    }
  }
  return lrs;
}

std::vector<float> load_flat(const StateDict& sd, const std::string& key, int64_t numel) {
  std::vector<float> v(static_cast<size_t>(numel));
  sd.tensor(key).copy_to(TensorView::of(v.data(), numel), key);
  return v;
}

void save_flat(const FlatBuffer& v, const std::string& key, StateDict* sd) {
  std::vector<float> host = v.to_host();
  sd->tensors[key] = StateTensor::copy_of(TensorView::of(host.data(), v.numel()));
}

void save_flat(const std::vector<float>& v, const std::string& key, StateDict* sd) {
  auto* data = const_cast<float*>(v.data());
  sd->tensors[key] = StateTensor::copy_of(TensorView::of(data, static_cast<int64_t>(v.size())));
}

namespace {

// Copies each parameter's values or gradients into its range of `flat`.
void copy_into(const std::vector<FlatGroup>& groups, FlatBuffer& flat, bool grads) {
  const auto of = [grads](const Param& p) -> const TensorView& { return grads ? p.grad : p.value; };
  if (flat.device().is_cpu()) {
    float* dst = flat.data();
    for_each_flat_piece(
        groups, [&](const FlatGroup&, const Param& p, size_t o, int64_t begin, int64_t end) {
          const float* src = of(p).as<float>();
          std::copy(src + begin, src + end, dst + o + begin);
        });
    return;
  }
  for (const FlatGroup& g : groups) {
    for (size_t i = 0; i < g.params.size(); ++i) {
      const TensorView& v = of(g.params[i]);
      if (v.numel > 0) cuda_copy(flat.data() + g.offsets[i], v.data, v.nbytes());
    }
  }
}

// Each tensor's range of `flat` (its values where flat is null), in group order.
std::vector<CudaF32Range> tensor_ranges(const std::vector<FlatGroup>& groups,
                                        const FlatBuffer* flat) {
  std::vector<CudaF32Range> out;
  for (const FlatGroup& g : groups) {
    for (size_t i = 0; i < g.params.size(); ++i) {
      const Param& p = g.params[i];
      const float* data = flat != nullptr ? flat->data() + g.offsets[i] : p.value.as<float>();
      out.push_back({data, p.value.numel});
    }
  }
  return out;
}

}  // namespace

void copy_params(const std::vector<FlatGroup>& groups, FlatBuffer& flat) {
  copy_into(groups, flat, false);
}

void copy_grads(const std::vector<FlatGroup>& groups, FlatBuffer& flat) {
  copy_into(groups, flat, true);
}

std::vector<double> tensor_sums_of_squares(const std::vector<FlatGroup>& groups, Device device,
                                           const FlatBuffer* flat) {
  const std::vector<CudaF32Range> ranges = tensor_ranges(groups, flat);
  if (device.is_cuda()) return cuda_fixed_sums(device.index, ranges, fixed_sum::Term::kSquare);
  std::vector<double> sums(ranges.size(), 0.0);
  for (size_t j = 0; j < ranges.size(); ++j) {
    if (ranges[j].n > 0) {
      sums[j] = fixed_sum::host_sum(ranges[j].data, ranges[j].n, fixed_sum::Term::kSquare);
    }
  }
  return sums;
}

std::vector<float> tensor_positive_max(const std::vector<FlatGroup>& groups,
                                       const FlatBuffer& flat) {
  const std::vector<CudaF32Range> ranges = tensor_ranges(groups, &flat);
  if (flat.device().is_cuda()) return cuda_positive_max(flat.device().index, ranges);
  std::vector<float> maxima(ranges.size(), 0.0f);
  for (size_t j = 0; j < ranges.size(); ++j) {
    maxima[j] = host_positive_max(ranges[j].data, ranges[j].n);
  }
  return maxima;
}

FlatBuffer::FlatBuffer(Device device, int64_t numel) : device_(device), numel_(numel) {
  if (device.is_cpu()) {
    host_.assign(static_cast<size_t>(numel), 0.0f);
  } else {
    gpu_ = CudaBuffer(device.index, sizeof(float) * static_cast<size_t>(numel));
  }
}

TensorView FlatBuffer::view(int64_t offset, int64_t count) {
  return TensorView(data() + offset, count, DType::kF32, device_);
}

std::vector<float> FlatBuffer::to_host() const {
  if (device_.is_cpu()) return host_;
  std::vector<float> v(static_cast<size_t>(numel_));
  cuda_copy(v.data(), gpu_.data(), sizeof(float) * v.size());
  return v;
}

void FlatBuffer::assign(const std::vector<float>& host) {
  TERSE_CHECK(static_cast<int64_t>(host.size()) == numel_, InvalidArgument,
              "FlatBuffer::assign: ", host.size(), " values for a buffer of ", numel_);
  if (device_.is_cpu()) {
    // Into the existing storage (same size): GCC 13 flags vector's copy assignment here with a
    // false -Wnull-dereference.
    std::copy(host.begin(), host.end(), host_.begin());
  } else {
    cuda_copy(gpu_.data(), host.data(), sizeof(float) * host.size());
  }
}

void FlatBuffer::zero() {
  if (device_.is_cpu()) {
    std::fill(host_.begin(), host_.end(), 0.0f);
  } else {
    cuda_zero(gpu_.data(), gpu_.bytes());
  }
}

void FlatBuffer::copy_from(const FlatBuffer& o) {
  TERSE_CHECK(o.device_ == device_ && o.numel_ == numel_, InvalidArgument,
              "FlatBuffer::copy_from: a buffer of ", o.numel_, " on ", o.device_.str(),
              " into one of ", numel_, " on ", device_.str());
  if (device_.is_cpu()) {
    std::copy(o.host_.begin(), o.host_.end(), host_.begin());
  } else {
    cuda_copy(gpu_.data(), o.gpu_.data(), sizeof(float) * static_cast<size_t>(numel_));
  }
}

void FlatBuffer::swap(FlatBuffer& o) noexcept {
  std::swap(device_, o.device_);
  std::swap(numel_, o.numel_);
  host_.swap(o.host_);
  std::swap(gpu_, o.gpu_);
}

void check_finite_grads(const char* optimizer, const std::vector<FlatGroup>& groups, int64_t t,
                        const char* phase, int rank) {
  for (size_t g = 0; g < groups.size(); ++g) {
    for (size_t i = 0; i < groups[g].params.size(); ++i) {
      const Param& p = groups[g].params[i];
      if (p.grad.numel == 0) continue;
      std::vector<float> copy;
      const float* grad = nullptr;
      if (p.grad.device.is_cpu()) {
        grad = p.grad.as<float>();
      } else {
        if (cuda_all_finite(p.grad)) continue;
        copy.resize(static_cast<size_t>(p.grad.numel));
        cuda_copy(copy.data(), p.grad.data, p.grad.nbytes());
        grad = copy.data();
      }
      for (int64_t k = 0; k < p.grad.numel; ++k) {
        TERSE_CHECK(std::isfinite(grad[k]), NumericalError, optimizer, " step ", t, " (", phase,
                    ") on rank ", rank, ": the gradient of ", param_label(p, g, i), " holds ",
                    grad[k], " at element ", k, "; lower the lr or clip gradients ",
                    "and resume from the last good checkpoint");
      }
    }
  }
}

std::unique_ptr<OneBitAllReduce> make_one_bit_all_reduce(const char* optimizer,
                                                         const std::vector<OptionDefault>& known,
                                                         const OptionMap& given, Communicator& comm,
                                                         int64_t numel) {
  OneBitAllReduce::Options o;
  o.threads = cpu_threads();
  o.defer_worker_error =
      optim_detail::parse_bool(std::string(optimizer) + " option 'defer_worker_error'",
                               option_value(known, given, "defer_worker_error"));
  return std::make_unique<OneBitAllReduce>(comm, numel, o);
}

CommStats one_bit_comm_stats(const OneBitAllReduceReport& report, int64_t numel, int world,
                             double seconds) {
  CommStats s;
  s.bytes_sent = report.bytes_sent;
  s.bytes_dense = ring_all_reduce_bytes(static_cast<uint64_t>(numel) * sizeof(float), world);
  s.payload_bytes = report.payload_bytes;
  s.payload_dense_bytes = static_cast<uint64_t>(numel) * sizeof(float);
  // The CPU passes outside the collectives are compression, as in the gradient exchanges.
  s.time_compress_s = std::min(seconds, report.compress_s);
  s.time_comm_s = seconds - s.time_compress_s;
  s.time_wait_s = std::min(s.time_comm_s, report.wait_s);
  return s;
}

}  // namespace terse::train_detail
