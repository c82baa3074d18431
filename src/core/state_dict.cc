#include "terse/core/state_dict.h"

#include <cstring>

#include "terse/core/check.h"

namespace terse {

int64_t StateTensor::numel() const {
  return static_cast<int64_t>(bytes.size() / dtype_size(dtype));
}

StateTensor StateTensor::copy_of(const TensorView& view, std::vector<int64_t> shape) {
  TERSE_CHECK(view.device.is_cpu(), InvalidArgument, "StateTensor::copy_of needs a CPU view, got ",
              view.str(), "; copy it to the host first");
  StateTensor t;
  t.dtype = view.dtype;
  t.shape = shape.empty() ? std::vector<int64_t>{view.numel} : std::move(shape);
  t.bytes.resize(view.nbytes());
  if (view.nbytes() > 0) std::memcpy(t.bytes.data(), view.data, view.nbytes());
  return t;
}

void StateTensor::copy_to(const TensorView& dst, const std::string& what) const {
  TERSE_CHECK(dst.device.is_cpu(), InvalidArgument, "cannot restore '", what, "' into ",
              dst.str(), " directly; restore on the host");
  TERSE_CHECK(dst.dtype == dtype && dst.nbytes() == bytes.size(), InvalidArgument,
              "state '", what, "' holds ", numel(), " x ", dtype_name(dtype),
              " but the destination is ", dst.numel, " x ", dtype_name(dst.dtype),
              "; was it saved from a different model or optimizer?");
  if (!bytes.empty()) std::memcpy(dst.data, bytes.data(), bytes.size());
}

namespace {
template <typename Map>
const typename Map::mapped_type& find_or_throw(const Map& m, const std::string& key,
                                               const char* kind) {
  auto it = m.find(key);
  TERSE_CHECK(it != m.end(), CorruptData, "state dict has no ", kind, " '", key, "' (it has ",
              m.size(), " ", kind, "s); it was saved by a different optimizer or version");
  return it->second;
}
}  // namespace

const StateTensor& StateDict::tensor(const std::string& key) const {
  return find_or_throw(tensors, key, "tensor");
}
int64_t StateDict::int_value(const std::string& key) const {
  return find_or_throw(ints, key, "int");
}
double StateDict::float_value(const std::string& key) const {
  return find_or_throw(floats, key, "float");
}
const std::string& StateDict::string_value(const std::string& key) const {
  return find_or_throw(strings, key, "string");
}

bool StateDict::operator==(const StateDict& o) const {
  if (ints != o.ints || floats != o.floats || strings != o.strings) return false;
  if (tensors.size() != o.tensors.size()) return false;
  for (const auto& [k, t] : tensors) {
    auto it = o.tensors.find(k);
    if (it == o.tensors.end() || it->second.dtype != t.dtype || it->second.shape != t.shape ||
        it->second.bytes != t.bytes)
      return false;
  }
  return true;
}

}  // namespace terse
