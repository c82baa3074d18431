#pragma once

// The compressed exchanges behind make_gradient_compression (internal to the train layer).

#include <chrono>
#include <memory>
#include <vector>

#include "exchange_util.h"
#include "terse/train/gradient_compression.h"

namespace terse::exchange {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Any Compressor spec with an error-feedback policy around it (gradient_compression.cc).
std::unique_ptr<GradientCompression> make_payload_exchange(Communicator& comm,
                                                           const std::vector<Param>& params,
                                                           const CompressionOptions& options);
// Deep Gradient Compression (dgc_exchange.cc).
// Whether a DGC spec runs on CUDA gradients (exchange=gather; InvalidArgument for a bad spec).
bool dgc_runs_on_gpu(Spec spec);
std::unique_ptr<GradientCompression> make_dgc_exchange(Communicator& comm,
                                                       const std::vector<Param>& params,
                                                       const CompressionOptions& options,
                                                       Spec spec);
// PowerSGD (powersgd_exchange.cc).
std::unique_ptr<GradientCompression> make_powersgd_exchange(Communicator& comm,
                                                            const std::vector<Param>& params,
                                                            const CompressionOptions& options,
                                                            Spec spec);

}  // namespace terse::exchange
