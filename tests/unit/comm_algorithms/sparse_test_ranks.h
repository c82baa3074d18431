#pragma once

// The rank runner of tests/support/rank_outcomes.h, and a communicator that corrupts data on the
// wire: shared by the sparse collectives' unit tests and their GPU parity tests; one that patches
// what SparseAllReduce's phases receive.

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "forwarding_communicator.h"
#include "rank_outcomes.h"
#include "terse/comm/communicator.h"
#include "terse/comm/local_communicator.h"
#include "terse/core/error.h"

namespace terse::testing {

using test_support::Outcome;
using test_support::run_each;
using test_support::run_on;

// Forwards every verb to a local communicator; after each i32 all_gatherv (the indices),
// overwrites rank `victim_`'s index at `position` in this rank's received copy with `value`
// (by default its first, with 2^31 - 1), or, with header mode,
// rank `victim_`'s count in the first i64 all_gather: corruption on the wire, which the
// receivers must catch.
class CorruptingCommunicator : public test_support::ForwardingCommunicator {
 public:
  enum class Mode { kIndex, kCount };
  CorruptingCommunicator(std::unique_ptr<Communicator> inner, int victim, Mode mode,
                         int64_t position = 0, int32_t value = std::numeric_limits<int32_t>::max())
      : ForwardingCommunicator(std::move(inner)),
        victim_(victim),
        mode_(mode),
        position_(position),
        value_(value) {}

  std::unique_ptr<Work> all_gather_async(TensorView in, TensorView out) override {
    auto w = inner().all_gather_async(in, out);
    if (mode_ != Mode::kCount || out.dtype != DType::kI64) return w;
    // Header word 0 of the victim: its count.
    return std::make_unique<Patch>(std::move(w),
                                   [out, this] { out.as<int64_t>()[4 * victim_] = 1000000; });
  }
  std::unique_ptr<Work> all_gatherv_async(TensorView in, TensorView out,
                                          const std::vector<int64_t>& counts) override {
    auto w = inner().all_gatherv_async(in, out, counts);
    if (mode_ != Mode::kIndex || out.dtype != DType::kI32) return w;
    int64_t offset = position_;
    for (int r = 0; r < victim_; ++r) offset += counts[static_cast<size_t>(r)];
    const int32_t value = value_;
    return std::make_unique<Patch>(std::move(w),
                                   [out, offset, value] { out.as<int32_t>()[offset] = value; });
  }

 private:
  // Runs `patch` once, after the wrapped operation completes.
  class Patch : public Work {
   public:
    Patch(std::unique_ptr<Work> w, std::function<void()> patch)
        : w_(std::move(w)), patch_(std::move(patch)) {}
    bool test() override {
      if (!w_->test()) return false;
      apply();
      return true;
    }
    void wait(std::chrono::milliseconds timeout) override {
      w_->wait(timeout);
      apply();
    }
    void wait() override {
      w_->wait();
      apply();
    }

   private:
    void apply() {
      if (patch_) patch_();
      patch_ = nullptr;
    }
    std::unique_ptr<Work> w_;
    std::function<void()> patch_;
  };

  int victim_;
  Mode mode_;
  int64_t position_;
  int32_t value_;
};

// Forwards every verb to a local communicator; after the phase-1 all_to_allv (i32 indices or
// f32 values) or the phase-3 all_gatherv, lets `patch` change this rank's received copy.
class PatchingCommunicator : public test_support::ForwardingCommunicator {
 public:
  // (phase 1 or 3, received buffer, counts per source rank)
  using Patch = std::function<void(int, TensorView, const std::vector<int64_t>&)>;
  PatchingCommunicator(std::unique_ptr<Communicator> inner, Patch patch)
      : ForwardingCommunicator(std::move(inner)), patch_(std::move(patch)) {}
  std::unique_ptr<Work> all_gatherv_async(TensorView in, TensorView out,
                                          const std::vector<int64_t>& counts) override {
    inner().all_gatherv_async(in, out, counts)->wait(timeout());
    patch_(3, out, counts);
    return std::make_unique<Done>();
  }
  std::unique_ptr<Work> all_to_allv_async(TensorView in, const std::vector<int64_t>& sc,
                                          TensorView out, const std::vector<int64_t>& rc) override {
    inner().all_to_allv_async(in, sc, out, rc)->wait(timeout());
    patch_(1, out, rc);
    return std::make_unique<Done>();
  }

 private:
  class Done : public Work {
   public:
    bool test() override { return true; }
    void wait(std::chrono::milliseconds) override {}
    void wait() override {}
  };
  Patch patch_;
};

// A threads-as-ranks world whose ranks, in what they receive from rank `victim` in
// SparseAllReduce's `phase` (1 or 3), hand the arrays of `dtype` (i32 indices or f32 values) to
// `patch`: corruption on the wire at a chosen place.
inline std::vector<std::unique_ptr<Communicator>> patched_world(
    int world, int victim, int phase, DType dtype,
    const std::function<void(int32_t*, float*)>& patch, std::chrono::milliseconds timeout) {
  auto locals = make_local_communicators(world);
  std::vector<std::unique_ptr<Communicator>> comms;
  for (auto& l : locals) {
    l->set_timeout(timeout);
    comms.push_back(std::make_unique<PatchingCommunicator>(
        std::move(l), [=](int ph, TensorView out, const std::vector<int64_t>& counts) {
          if (ph != phase || out.dtype != dtype) return;
          int64_t offset = 0;
          for (int r = 0; r < victim; ++r) offset += counts[static_cast<size_t>(r)];
          if (dtype == DType::kI32) patch(out.as<int32_t>() + offset, nullptr);
          if (dtype == DType::kF32) patch(nullptr, out.as<float>() + offset);
        }));
  }
  return comms;
}

}  // namespace terse::testing
