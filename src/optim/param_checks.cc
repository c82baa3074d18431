#include "param_checks.h"

#include <string>

#include "terse/core/check.h"
#include "terse/core/dtype.h"

namespace terse::optim_detail {

void check_param(const char* who, const Param& p, size_t group, size_t index,
                 std::set<const void*>& seen, bool allow_cuda) {
  std::string label = "param " + std::to_string(index) + " of group " + std::to_string(group);
  if (!p.name.empty()) label += " ('" + p.name + "')";
  TERSE_CHECK(
      p.value.dtype == DType::kF32 || p.value.dtype == DType::kBF16 || p.value.dtype == DType::kF16,
      InvalidArgument, who, ": ", label, " has dtype ", dtype_name(p.value.dtype),
      "; parameters must be f32, bf16 or f16");
  const bool placed = allow_cuda ? p.grad.device == p.value.device
                                 : p.value.device.is_cpu() && p.grad.device.is_cpu();
  TERSE_CHECK(placed, InvalidArgument, who, ": ", label, " is on ", p.value.device.str(),
              " (grad on ", p.grad.device.str(), "); ",
              allow_cuda ? "the gradient must be on the parameter's device"
                         : "this optimizer runs on CPU tensors only so far (docs/optimizers.md, "
                           "'On the GPU'); move the parameters to the CPU");
  TERSE_CHECK(p.grad.numel == p.value.numel && p.grad.dtype == p.value.dtype, InvalidArgument, who,
              ": ", label, " is ", p.value.numel, " x ", dtype_name(p.value.dtype),
              " but its grad is ", p.grad.numel, " x ", dtype_name(p.grad.dtype),
              "; the gradient must match the parameter");
  TERSE_CHECK(p.value.numel == 0 || (p.value.data != nullptr && p.grad.data != nullptr),
              InvalidArgument, who, ": ", label, " has ", p.value.numel,
              " elements but a null value or grad pointer; allocate both first");
  TERSE_CHECK(p.value.numel == 0 || seen.insert(p.value.data).second, InvalidArgument, who, ": ",
              label, " appears more than once; pass every parameter once");
  if (!p.shape.empty()) {
    int64_t n = 1;
    for (int64_t d : p.shape) {
      TERSE_CHECK(d >= 0, InvalidArgument, who, ": ", label, " has a negative dimension ", d,
                  "; fix the shape");
      n *= d;
    }
    TERSE_CHECK(n == p.value.numel, InvalidArgument, who, ": ", label, " has a shape with ", n,
                " elements but numel ", p.value.numel, "; fix the shape");
  }
}

Device one_device(const char* who, const std::vector<ParamGroup>& groups) {
  Device device = Device::cpu();
  bool first = true;
  for (const ParamGroup& pg : groups) {
    for (const Param& p : pg.params) {
      if (first) device = p.value.device;
      first = false;
      TERSE_CHECK(p.value.device == device && p.grad.device == device, InvalidArgument, who,
                  ": parameter '", p.name, "' is on ", p.value.device.str(), " (grad on ",
                  p.grad.device.str(), ") but the first one on ", device.str(),
                  "; one optimizer steps the parameters of one device");
    }
  }
  return device;
}

}  // namespace terse::optim_detail
