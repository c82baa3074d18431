#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include "terse/compress/cast.h"
#include "terse/compress/compressor.h"
#include "terse/compress/dgc_top_k.h"
#include "terse/compress/one_bit.h"
#include "terse/compress/qsgd.h"
#include "terse/compress/rand_k.h"
#include "terse/compress/scaled_sign.h"
#include "terse/compress/tern_grad.h"
#include "terse/compress/top_k.h"
#include "terse/core/check.h"

namespace terse {
namespace {

using Options = std::map<std::string, std::string>;

// Takes key out of opts (so leftovers can be reported as unknown).
bool take(Options& opts, const std::string& key, std::string* value) {
  const auto it = opts.find(key);
  if (it == opts.end()) return false;
  *value = it->second;
  opts.erase(it);
  return true;
}

double take_double(Options& opts, const std::string& name, const std::string& key, double def) {
  std::string v;
  if (!take(opts, key, &v)) return def;
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  TERSE_CHECK(!v.empty() && end == v.c_str() + v.size(), InvalidArgument, name, ": ", key, "=", v,
              " is not a number; expected e.g. ", key, "=0.01");
  return d;
}

bool take_bool(Options& opts, const std::string& name, const std::string& key, bool def) {
  std::string v;
  if (!take(opts, key, &v)) return def;
  TERSE_CHECK(v == "true" || v == "false", InvalidArgument, name, ": ", key, "=", v,
              " is not a boolean; expected true or false");
  return v == "true";
}

ValueCoding take_values(Options& opts, const std::string& name) {
  std::string v;
  if (!take(opts, "values", &v)) return ValueCoding::kF32;
  TERSE_CHECK(v == "f32" || v == "f16", InvalidArgument, name, ": values=", v,
              " is not supported; expected f32 or f16");
  return v == "f32" ? ValueCoding::kF32 : ValueCoding::kF16;
}

void reject_rest(const Options& opts, const std::string& name, const char* valid) {
  if (opts.empty()) return;
  TERSE_THROW(InvalidArgument, name, ": unknown option '", opts.begin()->first, "' (value '",
              opts.begin()->second, "'); valid options: ", valid);
}

}  // namespace

std::vector<std::string> compressor_names() {
  return {"topk", "randk", "sign", "qsgd", "terngrad", "fp16", "bf16", "onebit", "dgc"};
}

std::unique_ptr<Compressor> make_compressor(const std::string& spec) {
  const size_t colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  Options opts;
  if (colon != std::string::npos) {
    const std::string rest = spec.substr(colon + 1);
    size_t pos = 0;
    while (pos <= rest.size()) {
      const size_t comma = std::min(rest.find(',', pos), rest.size());
      const std::string item = rest.substr(pos, comma - pos);
      const size_t eq = item.find('=');
      TERSE_CHECK(eq != std::string::npos && eq > 0, InvalidArgument, "compressor spec '", spec,
                  "': option '", item, "' is not key=value; write e.g. topk:density=0.01");
      const std::string key = item.substr(0, eq);
      TERSE_CHECK(opts.count(key) == 0, InvalidArgument, "compressor spec '", spec, "': option '",
                  key, "' is given twice; give it once");
      opts[key] = item.substr(eq + 1);
      pos = comma + 1;
    }
  }
  if (name == "topk") {
    const bool has_k = opts.count("k") != 0;
    TERSE_CHECK(!has_k || opts.count("density") == 0, InvalidArgument, "topk: both k=", opts["k"],
                " and density=", opts["density"],
                " are given; give one (k: entries per tensor, density: fraction)");
    const double k = take_double(opts, name, "k", 0);
    const double density = take_double(opts, name, "density", 0.01);
    const ValueCoding values = take_values(opts, name);
    reject_rest(opts, name, "density | k, values");
    if (has_k) {
      TERSE_CHECK(k >= 1 && k <= 281474976710656.0 && k == std::floor(k), InvalidArgument,
                  "topk: k=", k, " is out of range; expected an integer 1 <= k <= 2^48");
      return std::make_unique<TopK>(TopK::with_k(static_cast<int64_t>(k), values));
    }
    return std::make_unique<TopK>(density, values);
  }
  if (name == "dgc") {
    const double density = take_double(opts, name, "density", 0.001);
    const ValueCoding values = take_values(opts, name);
    const double sample = take_double(opts, name, "sample", 0.01);
    reject_rest(opts, name, "density, values, sample");
    return std::make_unique<DgcTopK>(density, values, sample);
  }
  if (name == "randk") {
    const double density = take_double(opts, name, "density", 0.01);
    const ValueCoding values = take_values(opts, name);
    const bool scale = take_bool(opts, name, "scale", true);
    const bool send = take_bool(opts, name, "send_indices", false);
    reject_rest(opts, name, "density, values, scale, send_indices");
    return std::make_unique<RandK>(density, values, scale, send);
  }
  if (name == "qsgd") {
    const double levels = take_double(opts, name, "levels", 127);
    reject_rest(opts, name, "levels");
    TERSE_CHECK(levels >= 1 && levels <= 32767 && levels == std::floor(levels), InvalidArgument,
                "qsgd: levels=", levels, " is out of range; expected an integer in [1, 32767]");
    return std::make_unique<Qsgd>(static_cast<uint32_t>(levels));
  }
  if (name == "sign" || name == "terngrad" || name == "fp16" || name == "bf16" ||
      name == "onebit") {
    reject_rest(opts, name, "none");
    if (name == "sign") return std::make_unique<ScaledSign>();
    if (name == "onebit") return std::make_unique<OneBit>();
    if (name == "terngrad") return std::make_unique<TernGrad>();
    return std::make_unique<Cast>(name == "fp16" ? ValueCoding::kF16 : ValueCoding::kBF16);
  }
  TERSE_THROW(InvalidArgument, "unknown compressor '", name, "' in spec '", spec,
              "'; valid: topk, randk, sign, qsgd, terngrad, fp16, bf16, onebit, dgc");
}

}  // namespace terse
