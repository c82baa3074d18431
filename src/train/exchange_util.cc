#include "exchange_util.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>

#include "terse/core/check.h"

namespace terse::exchange {

Spec parse_spec(const std::string& text, const char* what) {
  Spec spec;
  const size_t colon = text.find(':');
  spec.name = text.substr(0, colon);
  TERSE_CHECK(!spec.name.empty(), InvalidArgument, what, " '", text,
              "' has no method name; write NAME or NAME:key=value,...");
  if (colon == std::string::npos) return spec;
  std::stringstream rest(text.substr(colon + 1));
  std::string item;
  while (std::getline(rest, item, ',')) {
    const size_t eq = item.find('=');
    TERSE_CHECK(eq != std::string::npos && eq > 0, InvalidArgument, what, " '", text, "': option '",
                item, "' is not key=value");
    const std::string key = item.substr(0, eq);
    TERSE_CHECK(spec.options.count(key) == 0, InvalidArgument, what, " '", text, "': option '", key,
                "' is given twice; give it once");
    spec.options[key] = item.substr(eq + 1);
  }
  return spec;
}

namespace {

std::string take_raw(Spec& spec, const std::string& key, bool* found) {
  const auto it = spec.options.find(key);
  *found = it != spec.options.end();
  if (!*found) return "";
  std::string v = it->second;
  spec.options.erase(it);
  return v;
}

}  // namespace

double take_double(Spec& spec, const std::string& key, double fallback, double lo, double hi,
                   bool lo_open) {
  bool found = false;
  const std::string raw = take_raw(spec, key, &found);
  if (!found) return fallback;
  double v = 0;
  size_t used = 0;
  try {
    v = std::stod(raw, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  TERSE_CHECK(used == raw.size() && !raw.empty() && std::isfinite(v), InvalidArgument, spec.name,
              " option ", key, "='", raw, "' is not a finite number");
  const bool low_ok = lo_open ? v > lo : v >= lo;
  TERSE_CHECK(low_ok && v <= hi, InvalidArgument, spec.name, " option ", key, "=", raw,
              " is out of range; use a value in ", lo_open ? "(" : "[", lo, ", ", hi, "]");
  return v;
}

int64_t take_int(Spec& spec, const std::string& key, int64_t fallback, int64_t lo, int64_t hi) {
  bool found = false;
  const std::string raw = take_raw(spec, key, &found);
  if (!found) return fallback;
  long long v = 0;
  size_t used = 0;
  try {
    v = std::stoll(raw, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  TERSE_CHECK(used == raw.size() && !raw.empty(), InvalidArgument, spec.name, " option ", key, "='",
              raw, "' is not an integer");
  TERSE_CHECK(v >= lo && v <= hi, InvalidArgument, spec.name, " option ", key, "=", raw,
              " is out of range; use an integer in [", lo, ", ", hi, "]");
  return v;
}

bool take_bool(Spec& spec, const std::string& key, bool fallback) {
  bool found = false;
  const std::string raw = take_raw(spec, key, &found);
  if (!found) return fallback;
  if (raw == "true" || raw == "1") return true;
  if (raw == "false" || raw == "0") return false;
  TERSE_THROW(InvalidArgument, spec.name, " option ", key, "='", raw,
              "' is not a boolean; use true or false");
}

std::string take_choice(Spec& spec, const std::string& key, const std::string& fallback,
                        const std::vector<std::string>& choices) {
  bool found = false;
  const std::string raw = take_raw(spec, key, &found);
  if (!found) return fallback;
  if (std::find(choices.begin(), choices.end(), raw) != choices.end()) return raw;
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  TERSE_THROW(InvalidArgument, spec.name, " option ", key, "='", raw, "' is not one of ", list);
}

void reject_unknown(const Spec& spec, const std::vector<std::string>& known) {
  if (spec.options.empty()) return;
  std::string list;
  for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
  TERSE_THROW(InvalidArgument, spec.name, " has no option '", spec.options.begin()->first,
              "'; its options are: ", list);
}

std::string param_label(const Param& p, size_t index) {
  return p.name.empty() ? "#" + std::to_string(index)
                        : "'" + p.name + "' (#" + std::to_string(index) + ")";
}

std::string Split::str() const {
  std::ostringstream os;
  os << compressed.size() << " compressed tensors (" << compressed_numel << " elements), "
     << dense.size() << " dense (" << dense_numel << ")";
  return os.str();
}

Split split_params(const std::vector<Param>& params, int64_t dense_below) {
  Split s;
  for (size_t i = 0; i < params.size(); ++i) {
    const Param& p = params[i];
    const bool matrix = p.shape.size() > 1;
    if (matrix && p.value.numel >= dense_below && p.value.numel > 0) {
      s.compressed.push_back(i);
      s.compressed_numel += p.value.numel;
    } else {
      s.dense.push_back(i);
      s.dense_numel += p.value.numel;
    }
  }
  return s;
}

void check_f32_grads(const std::vector<Param>& params, const char* method, bool cuda_ok) {
  for (size_t i = 0; i < params.size(); ++i) {
    const Param& p = params[i];
    TERSE_CHECK(p.grad.dtype == DType::kF32, InvalidArgument, method,
                " compresses f32 gradients; parameter ", param_label(p, i), " has a ",
                dtype_name(p.grad.dtype), " gradient; train in f32 or use --compress none");
    TERSE_CHECK(p.grad.device.is_cpu() || (cuda_ok && p.grad.device == params[0].grad.device),
                InvalidArgument, method, " compresses ",
                cuda_ok ? "gradients of one device" : "host gradients", "; parameter ",
                param_label(p, i), " has its gradient on ", p.grad.device.str(),
                cuda_ok ? " but the first on " + params[0].grad.device.str() : std::string(),
                "; build the exchange over host copies (DataParallel::exchange_params())");
    TERSE_CHECK(p.grad.numel == p.value.numel && (p.grad.numel == 0 || p.grad.data != nullptr),
                InvalidArgument, "parameter ", param_label(p, i), " has a gradient view of ",
                p.grad.numel, " elements for a value of ", p.value.numel);
  }
}

std::string shapes_signature(const std::vector<Param>& params) {
  std::ostringstream os;
  os << params.size() << " tensors:";
  for (const Param& p : params) {
    os << " [";
    for (size_t d = 0; d < p.shape.size(); ++d) os << (d ? "x" : "") << p.shape[d];
    if (p.shape.empty()) os << p.value.numel;
    os << "]";
  }
  return os.str();
}

namespace {

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

void check_agreement(Communicator& comm, const std::string& signature) {
  const int world = comm.size();
  uint64_t mine = fnv1a(signature);
  std::vector<uint64_t> all(static_cast<size_t>(world));
  comm.all_gather(TensorView(&mine, 1, DType::kI64), TensorView(all.data(), world, DType::kI64));
  for (int r = 0; r < world; ++r) {
    if (all[static_cast<size_t>(r)] == all[0]) continue;
    // Someone differs: show rank 0's signature next to this rank's.
    std::vector<char> text(signature.begin(), signature.end());
    int64_t len = static_cast<int64_t>(text.size());
    comm.broadcast(TensorView(&len, 1, DType::kI64), 0);
    std::vector<char> root(static_cast<size_t>(len));
    if (comm.rank() == 0) root = text;
    if (len > 0) comm.broadcast(TensorView(root.data(), len, DType::kU8), 0);
    const std::string root_sig(root.begin(), root.end());
    std::string shown = root_sig.substr(0, 300);
    TERSE_THROW(InvalidArgument, "rank ", r, " set up a different gradient exchange than rank 0",
                " (compression spec or parameter shapes differ); rank 0 has: ", shown,
                "; this rank (", comm.rank(), ") has: ", signature.substr(0, 300),
                "; start every rank with the same --compress, --feedback and model");
  }
}

DenseAllReduce::DenseAllReduce(Communicator& comm, std::vector<size_t> dense,
                               const std::vector<Param>& params)
    : comm_(comm), dense_(std::move(dense)) {
  size_t n = 0;
  for (size_t i : dense_) n += static_cast<size_t>(params[i].grad.numel);
  buffer_.resize(n);
}

void DenseAllReduce::start(const std::vector<Param>& params) {
  if (buffer_.empty()) return;
  size_t off = 0;
  for (size_t i : dense_) {
    const TensorView& g = params[i].grad;
    std::memcpy(buffer_.data() + off, g.data, static_cast<size_t>(g.numel) * sizeof(float));
    off += static_cast<size_t>(g.numel);
  }
  work_ = comm_.all_reduce_async(TensorView::of(buffer_.data(), numel()), ReduceOp::kSum);
}

void DenseAllReduce::finish(const std::vector<Param>& params) {
  if (buffer_.empty()) return;
  work_->wait(comm_.timeout());
  work_.reset();
  const float inv = 1.0f / static_cast<float>(comm_.size());
  size_t off = 0;
  for (size_t i : dense_) {
    const TensorView& g = params[i].grad;
    float* out = static_cast<float*>(g.data);
    for (int64_t j = 0; j < g.numel; ++j) out[j] = buffer_[off + static_cast<size_t>(j)] * inv;
    off += static_cast<size_t>(g.numel);
  }
}

const std::vector<std::vector<PayloadView>>& PayloadAllGather::run(
    const std::vector<uint8_t>& blob, const std::vector<int64_t>& lengths,
    const std::vector<std::string>& tensor_names) {
  const int world = comm_.size();
  const size_t w = static_cast<size_t>(world);
  TERSE_CHECK(lengths.size() == count_, InvalidArgument, "payload exchange of ", count_,
              " tensors was given ", lengths.size(), " lengths");
  all_lengths_.assign(count_ * w, 0);
  last_wait_s_ = 0;
  if (count_ > 0) {
    const auto t0 = std::chrono::steady_clock::now();
    comm_.all_gather(
        TensorView(const_cast<int64_t*>(lengths.data()), static_cast<int64_t>(count_), DType::kI64),
        TensorView(all_lengths_.data(), static_cast<int64_t>(count_ * w), DType::kI64));
    last_wait_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  std::vector<int64_t> blob_sizes(w, 0);
  int64_t total = 0;
  for (size_t r = 0; r < w; ++r) {
    for (size_t i = 0; i < count_; ++i) {
      const int64_t len = all_lengths_[r * count_ + i];
      const std::string& name = i < tensor_names.size() ? tensor_names[i] : std::to_string(i);
      TERSE_CHECK(len != -1, NumericalError, "rank ", r, " could not compress the gradient of ",
                  name,
                  " (a NaN or Inf gradient); every rank stops at this step: lower the "
                  "learning rate or resume from the last checkpoint");
      TERSE_CHECK(len >= 0 && len <= (int64_t{1} << 40), CorruptData, "rank ", r,
                  " announced a payload of ", len, " bytes for ", name,
                  "; a peer sent a corrupt length: check that every rank runs the same terse");
      blob_sizes[r] += len;
    }
    total += blob_sizes[r];
  }
  TERSE_CHECK(blob_sizes[static_cast<size_t>(comm_.rank())] == static_cast<int64_t>(blob.size()),
              InvalidArgument, "payload exchange: this rank's blob holds ", blob.size(),
              " bytes but its lengths add up to ", blob_sizes[static_cast<size_t>(comm_.rank())]);
  gathered_.assign(static_cast<size_t>(total), 0);
  if (total > 0) {
    comm_.all_gatherv(TensorView(const_cast<uint8_t*>(blob.data()),
                                 static_cast<int64_t>(blob.size()), DType::kU8),
                      TensorView(gathered_.data(), total, DType::kU8), blob_sizes);
  }
  views_.assign(count_, std::vector<PayloadView>(w));
  size_t off = 0;
  for (size_t r = 0; r < w; ++r) {
    for (size_t i = 0; i < count_; ++i) {
      const size_t len = static_cast<size_t>(all_lengths_[r * count_ + i]);
      views_[i][r] = PayloadView{gathered_.data() + off, len};
      off += len;
    }
  }
  last_wire_bytes_ =
      world > 1 ? (w - 1) * static_cast<uint64_t>(total) / w + (w - 1) * count_ * sizeof(int64_t)
                : 0;
  return views_;
}

uint64_t seed_step(uint64_t seed, int64_t step, size_t tensor, int rank) {
  // splitmix64 finaliser over the packed inputs: distinct, well-mixed keys for Philox.
  uint64_t z = seed ^ (static_cast<uint64_t>(step) * 0x9E3779B97F4A7C15ull) ^
               (static_cast<uint64_t>(tensor) << 40) ^ (static_cast<uint64_t>(rank) << 20);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t ring_bytes(uint64_t nbytes, int world) {
  if (world <= 1) return 0;
  const uint64_t n = static_cast<uint64_t>(world);
  return 2 * (n - 1) * nbytes / n;
}

}  // namespace terse::exchange
