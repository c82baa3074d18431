#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "logreg_problem.h"

namespace terse {

// One run of a distributed method on a LogRegProblem, with every worker simulated in-process:
// worker i computes grad f_i(x_t) (f64, sent as f32), calls its own ErrorFeedback::encode, and
// every rank calls decode_and_aggregate on all n payloads' bytes, as training does; the ranks'
// update directions must agree bit for bit (NumericalError otherwise). Then x_{t+1} = x_t -
// gamma * direction. Methods: "gd" (no compression: dense f32 through ErrorFeedback "none"),
// "topk" (Top-k, no error feedback), "ef14", "ef21", "ef21w" (Top-k under that policy; ef21w is
// given the workers' L_i). For EF21 this is g^0 = mean_i C(grad f_i(x^0)) and then the iteration
// of spec §3.2; EF14 accumulates e_i += grad f_i and steps by gamma * mean_i C(e_i).
struct RunConfig {
  std::string method = "ef21";
  int64_t k = 1;                   // Top-k k (ignored by "gd")
  double gamma = 1.0;              // step size
  int64_t iterations = 1000;       // communication rounds at most
  double tol = 0.0;                // stop once ||grad f(x_t)||^2 <= tol
  double divergence_factor = 1e8;  // diverged once ||grad f||^2 > factor * ||grad f(x_0)||^2
  int64_t log_every = 1;           // keep every log_every-th point (plus the first 200, last)
  bool all_ranks_decode = true;    // false: only rank 0 decodes (faster, no agreement check)
  std::vector<double> smoothness;  // L_i, used by "ef21w"
};

struct TrajectoryPoint {
  int64_t iteration = 0;
  double bits_measured = 0;  // mean over workers of 8 x payload bytes sent before x_t
  double bits_ideal = 0;     // t * k * (32 value + 32 index) bits; gd: t * 32 d
  double grad_norm_sq = 0;   // ||grad f(x_t)||^2
  double f = 0;              // f(x_t)
};

struct RunResult {
  std::vector<TrajectoryPoint> points;
  bool diverged = false;
  bool reached_tol = false;
  int64_t iterations_done = 0;
  double bits_at_end = 0;  // measured bits per worker when the run stopped
  double final_grad_norm_sq = 0;
  double final_f = 0;
  std::vector<double> x;  // last iterate
};

// The compressor spec a method uses for Top-k with this k in dimension d (checks k_for(d) == k).
std::string method_compressor_spec(const std::string& method, int64_t k, int64_t d);

RunResult run_method(const LogRegProblem& problem, const RunConfig& config,
                     const std::vector<double>& x0);

}  // namespace terse
