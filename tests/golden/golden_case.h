#pragma once

// Loading a golden trajectory (tests/golden/data/*.json, see its README) and replaying it through
// a terse optimizer.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "terse/core/device.h"
#include "terse/core/dtype.h"
#include "terse/optim/optimizer.h"

namespace terse::golden {

struct GoldenCase {
  std::string name;
  std::string reference;
  std::string optimizer;  // terse registry name; empty when terse has no such optimizer yet
  OptionMap options;      // the JSON's hyper-parameters as terse options
  std::vector<std::vector<int64_t>> shapes;
  std::vector<std::vector<double>> init;
  std::vector<std::vector<std::vector<double>>> grads;           // [step][tensor][element]
  std::map<int64_t, std::vector<std::vector<double>>> expected;  // step -> tensors
};

// Directory holding the JSON files: $TERSE_GOLDEN_DIR, else the repository copy.
std::string golden_dir();
std::vector<std::string> golden_files();
GoldenCase load_golden(const std::string& path);

// Relative error used by the golden tests, per element:
//   |a - b| / max(|b|, 1e-1 * max_j |b_j|)
// with b the reference tensor. The floor is there because f32 rounding in p - lr * d is relative
// to the operands, not to the result: an element that has shrunk to 1% of the tensor's scale
// carries an absolute error of about one f32 ulp of that scale (measured: 1.2e-5 relative with a
// 1e-2 floor on sgd_dampening, identical in a Python f32 emulation of torch's formula).
double relative_error(const std::vector<float>& actual, const std::vector<double>& expected);

// Norm-wise relative error ||a - b||_2 / ||b||_2 over one tensor (0 when both are zero).
double norm_error(const std::vector<float>& actual, const std::vector<double>& expected);

struct ReplayResult {
  double max_error = 0;       // over every recorded step and tensor
  double max_norm_error = 0;  // norm_error, worst over every recorded step and tensor
  int64_t worst_step = 0;
  size_t worst_tensor = 0;
};

// Runs case `c` with params and grads stored as `dtype` (f32 math), comparing after every
// recorded step; `options` replaces c.options when given (to perturb one hyper-parameter). On a
// CUDA `device` the params and grads live in that GPU's memory (grads copied in before each
// step, params copied out to compare), so the optimizer steps CUDA tensors.
ReplayResult replay(const GoldenCase& c, DType dtype, const OptionMap* options = nullptr,
                    Device device = Device::cpu());

}  // namespace terse::golden
