#include "ef21_simulation.h"

#include <cmath>
#include <cstring>
#include <iomanip>
#include <memory>
#include <sstream>

#include "terse/compress/compressor.h"
#include "terse/compress/error_feedback.h"
#include "terse/compress/top_k.h"
#include "terse/core/check.h"
#include "terse/core/error.h"
#include "terse/core/tensor_view.h"

namespace terse {
namespace {

bool is_method(const std::string& m) {
  return m == "gd" || m == "topk" || m == "ef14" || m == "ef21" || m == "ef21w";
}

std::string policy_for(const std::string& method) {
  if (method == "gd" || method == "topk") return "none";
  return method;
}

}  // namespace

std::string method_compressor_spec(const std::string& method, int64_t k, int64_t d) {
  TERSE_CHECK(is_method(method), InvalidArgument, "ef21 experiment: unknown method '", method,
              "'; valid methods are gd, topk, ef14, ef21, ef21w");
  // Dense f32 for GD: Rand-k at density 1 keeps all d values, unscaled, with no indices sent.
  if (method == "gd") return "randk:density=1,scale=false,send_indices=false";
  TERSE_CHECK(k >= 1 && k <= d, InvalidArgument, "ef21 experiment: k is ", k,
              " but must be in [1, ", d, "] (the dimension)");
  // k = floor(density * d) for density = (k + 0.5) / d, capped at 1 (k = d).
  const double density = std::min(1.0, (static_cast<double>(k) + 0.5) / static_cast<double>(d));
  std::ostringstream os;
  os << "topk:density=" << std::setprecision(17) << density;
  const std::unique_ptr<Compressor> c = make_compressor(os.str());
  const auto* top = dynamic_cast<const TopK*>(c.get());
  TERSE_CHECK(top != nullptr && top->k_for(d) == k, InvalidArgument, "ef21 experiment: ", os.str(),
              " selects ", top != nullptr ? top->k_for(d) : -1, " of ", d, " entries, not k = ", k,
              "; this is a bug in the density formula");
  return os.str();
}

RunResult run_method(const LogRegProblem& problem, const RunConfig& cfg,
                     const std::vector<double>& x0) {
  const int64_t d = problem.dim();
  const int n = problem.num_workers();
  TERSE_CHECK(static_cast<int64_t>(x0.size()) == d, InvalidArgument, "ef21 experiment: x0 has ",
              x0.size(), " entries but the dimension is ", d);
  TERSE_CHECK(std::isfinite(cfg.gamma) && cfg.gamma > 0.0, InvalidArgument,
              "ef21 experiment: gamma is ", cfg.gamma, "; it must be finite and > 0");
  TERSE_CHECK(cfg.iterations >= 0 && cfg.log_every >= 1, InvalidArgument,
              "ef21 experiment: iterations ", cfg.iterations, " and log_every ", cfg.log_every,
              " must be >= 0 and >= 1");
  const std::string spec = method_compressor_spec(cfg.method, cfg.k, d);
  const std::shared_ptr<const Compressor> compressor = make_compressor(spec);
  std::vector<std::unique_ptr<ErrorFeedback>> ranks;
  for (int r = 0; r < n; ++r) {
    ErrorFeedbackOptions opt;
    opt.world_size = n;
    opt.rank = r;
    if (cfg.method == "ef21w") opt.smoothness = cfg.smoothness;
    ranks.push_back(make_error_feedback(policy_for(cfg.method), compressor, opt));
  }
  const size_t cap = compressor->max_encoded_bytes(d);
  const size_t du = static_cast<size_t>(d);
  std::vector<std::vector<uint8_t>> buffers(static_cast<size_t>(n), std::vector<uint8_t>(cap));
  std::vector<PayloadView> payloads(static_cast<size_t>(n));
  std::vector<std::vector<float>> grads(static_cast<size_t>(n), std::vector<float>(du));
  std::vector<float> dir(du), other(du);
  std::vector<double> x = x0, gi(du), full(du);
  const double ideal_per_round =
      cfg.method == "gd" ? 32.0 * static_cast<double>(d) : 64.0 * static_cast<double>(cfg.k);

  RunResult res;
  double bits = 0.0;
  double g0 = 0.0;
  for (int64_t t = 0;; ++t) {
    std::fill(full.begin(), full.end(), 0.0);
    double f = 0.0;
    for (int i = 0; i < n; ++i) {
      f += problem.loss_and_grad(i, x.data(), gi.data());
      std::vector<float>& g32 = grads[static_cast<size_t>(i)];
      for (size_t k = 0; k < du; ++k) {
        full[k] += gi[k];
        g32[k] = static_cast<float>(gi[k]);
      }
    }
    f /= n;
    double gn2 = 0.0;
    for (size_t k = 0; k < du; ++k) {
      full[k] /= n;
      gn2 += full[k] * full[k];
    }
    if (t == 0) g0 = gn2;
    const bool diverged =
        !std::isfinite(gn2) || !std::isfinite(f) || gn2 > cfg.divergence_factor * g0;
    const bool reached = !diverged && gn2 <= cfg.tol;
    const bool last = diverged || reached || t == cfg.iterations;
    if (t < 200 || t % cfg.log_every == 0 || last)
      res.points.push_back({t, bits, ideal_per_round * static_cast<double>(t), gn2, f});
    if (last) {
      res.diverged = diverged;
      res.reached_tol = reached;
      res.iterations_done = t;
      res.bits_at_end = bits;
      res.final_grad_norm_sq = gn2;
      res.final_f = f;
      res.x = x;
      return res;
    }
    // Workers: encode this round's gradient (the seed only matters to randomised compressors).
    size_t total_bytes = 0;
    for (int i = 0; i < n; ++i) {
      std::vector<uint8_t>& buf = buffers[static_cast<size_t>(i)];
      const size_t len = ranks[static_cast<size_t>(i)]->encode(
          0, TensorView::of(grads[static_cast<size_t>(i)].data(), d), static_cast<uint64_t>(t),
          buf.data(), buf.size());
      payloads[static_cast<size_t>(i)] = PayloadView{buf.data(), len};
      total_bytes += len;
    }
    bits += 8.0 * static_cast<double>(total_bytes) / n;
    // Every rank aggregates all payloads (allgather semantics) and must reach the same direction.
    ranks[0]->decode_and_aggregate(0, payloads, TensorView::of(dir.data(), d));
    if (cfg.all_ranks_decode) {
      for (int r = 1; r < n; ++r) {
        ranks[static_cast<size_t>(r)]->decode_and_aggregate(0, payloads,
                                                            TensorView::of(other.data(), d));
        TERSE_CHECK(std::memcmp(other.data(), dir.data(), du * sizeof(float)) == 0, NumericalError,
                    "ef21 experiment: rank ", r, " aggregated a different direction than rank 0 at",
                    " iteration ", t, " of ", cfg.method, "; the ranks' error-feedback states",
                    " diverged, which is a bug in decode_and_aggregate");
      }
    }
    for (size_t k = 0; k < du; ++k) x[k] -= cfg.gamma * static_cast<double>(dir[k]);
  }
}

}  // namespace terse
