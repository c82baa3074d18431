#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "terse/core/dtype.h"
#include "terse/core/tensor_view.h"

namespace terse {

// A named, owning copy of one buffer (an optimizer moment, a parameter, a residual).
struct StateTensor {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  int64_t numel() const;
  static StateTensor copy_of(const TensorView& view, std::vector<int64_t> shape = {});
  // Copies into `dst`; throws InvalidArgument on a dtype or size mismatch (naming `what`).
  void copy_to(const TensorView& dst, const std::string& what) const;
};

// What an Optimizer (or anything else with state) saves and restores: plain data, no torch, so
// checkpoints are written by the train layer without knowing who produced them.
struct StateDict {
  std::map<std::string, StateTensor> tensors;
  std::map<std::string, int64_t> ints;
  std::map<std::string, double> floats;
  std::map<std::string, std::string> strings;

  // Accessors that throw CorruptData naming the missing key and what holds the keys.
  const StateTensor& tensor(const std::string& key) const;
  int64_t int_value(const std::string& key) const;
  double float_value(const std::string& key) const;
  const std::string& string_value(const std::string& key) const;
  bool operator==(const StateDict& o) const;
};

}  // namespace terse
