// The compressed gradient exchange on threads-as-ranks: results against the equations, byte
// accounting, DGC's momentum correction and warm-up, checkpoint round trips and errors.
#include "terse/train/gradient_compression.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "terse/comm/local_communicator.h"
#include "terse/core/error.h"
#include "terse/core/philox.h"
#include "terse/kernels/cpu_threads.h"
#include "terse/train/data_parallel.h"

namespace terse {
namespace {

// A model of one matrix (rows x cols) and one bias (cols), gradients owned here.
struct Model {
  std::vector<float> value, grad;
  int64_t rows, cols;
  Model(int64_t r, int64_t c) : value(r * c + c, 0.0f), grad(r * c + c, 0.0f), rows(r), cols(c) {}
  std::vector<Param> params() {
    const int64_t n = rows * cols;
    return {
        Param{TensorView::of(value.data(), n), TensorView::of(grad.data(), n), {rows, cols}, "w"},
        Param{TensorView::of(value.data() + n, cols),
              TensorView::of(grad.data() + n, cols),
              {cols},
              "b"}};
  }
};

// Gradient of rank r at step t: deterministic, different per rank and step.
float grad_value(int rank, int step, size_t i) {
  PhiloxStream rng(1234u + static_cast<uint64_t>(step), static_cast<uint64_t>(rank) * 100000u + i);
  return rng.uniform() * 2.0f - 1.0f;
}

void fill(Model& m, int rank, int step) {
  for (size_t i = 0; i < m.grad.size(); ++i) m.grad[i] = grad_value(rank, step, i);
}

std::vector<float> mean_grad(int world, int step, size_t n) {
  std::vector<float> out(n, 0.0f);
  for (int r = 0; r < world; ++r)
    for (size_t i = 0; i < n; ++i) out[i] += grad_value(r, step, i);
  for (auto& v : out) v /= static_cast<float>(world);
  return out;
}

CompressionOptions opts(const std::string& compress, const std::string& feedback = "none") {
  CompressionOptions o;
  o.compress = compress;
  o.feedback = feedback;
  o.seed = 7;
  return o;
}

// Which methods run on CUDA gradients, and a clear refusal for the others (no GPU needed: the
// check comes before any memory is touched).
TEST(GradientCompression, OnlyDgcGatherAndPowerSgdRunOnGpuGradients) {
  auto opts = [](const std::string& compress) {
    CompressionOptions o;
    o.compress = compress;
    return o;
  };
  EXPECT_TRUE(gradient_compression_on_gpu(opts("dgc:density=0.01")));
  EXPECT_TRUE(gradient_compression_on_gpu(opts("dgc")));
  EXPECT_FALSE(gradient_compression_on_gpu(opts("dgc:density=0.01,exchange=allreduce")));
  EXPECT_FALSE(gradient_compression_on_gpu(opts("topk:density=0.01")));
  EXPECT_TRUE(gradient_compression_on_gpu(opts("powersgd")));
  EXPECT_TRUE(gradient_compression_on_gpu(opts("powersgd:rank=4")));
  EXPECT_FALSE(gradient_compression_on_gpu(opts("none")));
  EXPECT_THROW(gradient_compression_on_gpu(opts("dgc:density=2")), InvalidArgument);

  float value[64] = {}, grad[64] = {};
  std::vector<Param> params = {Param{
      TensorView::of(value, 64), TensorView(grad, 64, DType::kF32, Device::cuda(0)), {8, 8}, "w"}};
  auto comms = make_local_communicators(1);
  try {
    make_gradient_compression(*comms[0], params, opts("topk:density=0.1"));
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("exchange_params()"), std::string::npos) << e.what();
  }
}

TEST(GradientCompression, NoneIsTheDensePath) {
  run_local_ranks(1, [](Communicator& comm) {
    Model m(4, 4);
    EXPECT_EQ(make_gradient_compression(comm, m.params(), opts("none")), nullptr);
    EXPECT_THROW(make_gradient_compression(comm, m.params(), opts("none", "ef14")),
                 InvalidArgument);
  });
}

TEST(GradientCompression, LosslessCompressorGivesTheMeanAtFourRanks) {
  const int world = 4;
  std::mutex mu;
  std::vector<std::vector<float>> results(world);
  run_local_ranks(world, [&](Communicator& comm) {
    Model m(32, 48);
    auto ex = make_gradient_compression(comm, m.params(), opts("topk:density=1"));
    for (int step = 0; step < 2; ++step) {
      fill(m, comm.rank(), step);
      const CommStats s = ex->exchange(m.params());
      const std::vector<float> want = mean_grad(world, step, m.grad.size());
      for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(m.grad[i], want[i], 1e-6) << i;
      EXPECT_EQ(s.payload_dense_bytes, 4u * m.grad.size());
      // The matrix travels as a top-k payload: values, delta-varint indices, header; the bias
      // as 4 bytes per element; plus one 8-byte length.
      EXPECT_GT(s.payload_bytes, 4u * m.grad.size());
      EXPECT_LT(s.payload_bytes, 5u * 32 * 48 + 4u * 48 + 64);
    }
    std::lock_guard<std::mutex> lock(mu);
    results[static_cast<size_t>(comm.rank())] = m.grad;
    EXPECT_EQ(ex->step(), 2);
  });
  for (int r = 1; r < world; ++r) EXPECT_EQ(results[static_cast<size_t>(r)], results[0]);
}

TEST(GradientCompression, TopKRatioCountsIndicesHeadersAndDenseTensors) {
  run_local_ranks(2, [](Communicator& comm) {
    Model m(100, 100);
    auto ex = make_gradient_compression(comm, m.params(), opts("topk:density=0.01", "ef14"));
    fill(m, comm.rank(), 0);
    const CommStats s = ex->exchange(m.params());
    // 100 values (4 B) + 100 varint gaps (1-2 B) + 32-byte header + 8-byte length + 400 B bias.
    EXPECT_GE(s.payload_bytes, 100u * 5 + 32 + 8 + 400);
    EXPECT_LE(s.payload_bytes, 100u * 6 + 32 + 8 + 400);
    EXPECT_EQ(s.payload_dense_bytes, 4u * 10100);
    EXPECT_GT(s.bytes_sent, 0u);
    EXPECT_EQ(s.bytes_dense, 4u * 10100);  // ring all-reduce at N = 2: 2 (N-1)/N = 1
    EXPECT_GT(ex->state_bytes(), 0u);      // the EF14 residual
  });
}

TEST(GradientCompression, EveryRankAgreesAndBiasIsExactMean) {
  const int world = 3;
  run_local_ranks(world, [&](Communicator& comm) {
    Model m(16, 64);
    auto ex = make_gradient_compression(comm, m.params(), opts("qsgd:levels=127", "ef21"));
    fill(m, comm.rank(), 0);
    ex->exchange(m.params());
    const std::vector<float> want = mean_grad(world, 0, m.grad.size());
    for (size_t i = 16 * 64; i < m.grad.size(); ++i) EXPECT_NEAR(m.grad[i], want[i], 1e-6);
  });
}

// sample=1 makes the threshold the least |V| of all, so density 1 selects every element (with
// the default 1% sample, density 1 means "about everything", as in the reference).
// DGC at density 1 without masking is momentum SGD on the mean gradient: with U_r = m U_r + g_r
// per rank, V += U, all of V sent and zeroed, the exchange returns mean_r U_r.
TEST(GradientCompression, DgcAtFullDensityWithoutMaskingIsMomentumOnTheMean) {
  const int world = 2;
  const double momentum = 0.9;
  run_local_ranks(world, [&](Communicator& comm) {
    Model m(40, 40);
    CompressionOptions o = opts("dgc:density=1,sample=1,masking=false");
    o.momentum = momentum;
    auto ex = make_gradient_compression(comm, m.params(), o);
    std::vector<float> u(m.grad.size(), 0.0f);
    for (int step = 0; step < 4; ++step) {
      fill(m, comm.rank(), step);
      ex->exchange(m.params());
      const std::vector<float> g = mean_grad(world, step, m.grad.size());
      for (size_t i = 0; i < u.size(); ++i) u[i] = static_cast<float>(momentum) * u[i] + g[i];
      for (size_t i = 0; i < u.size(); ++i) ASSERT_NEAR(m.grad[i], u[i], 2e-5) << step << " " << i;
    }
  });
}

TEST(GradientCompression, DgcMasksMomentumWhereItSent) {
  run_local_ranks(1, [](Communicator& comm) {
    Model m(40, 40);
    CompressionOptions o = opts("dgc:density=1,sample=1");
    o.momentum = 0.9;
    auto ex = make_gradient_compression(comm, m.params(), o);
    for (int step = 0; step < 3; ++step) {
      fill(m, 0, step);
      const std::vector<float> g = m.grad;
      ex->exchange(m.params());
      // Everything was sent each step and U was masked: the matrix part is this step's g.
      for (size_t i = 0; i < 1600; ++i) ASSERT_NEAR(m.grad[i], g[i], 1e-6);
    }
  });
}

// The momentum correction and the selection run on cpu_threads() threads; the result must not
// depend on how many (1.1M elements: 17 chunks of the correction, 2 selection threads).
TEST(GradientCompression, DgcResultDoesNotDependOnTheThreadCount) {
  auto run = [](int threads) {
    set_cpu_threads(threads);
    std::vector<std::vector<float>> out(2);
    run_local_ranks(2, [&](Communicator& comm) {
      Model m(1100, 1000);
      CompressionOptions o = opts("dgc:density=0.001");
      o.momentum = 0.9;
      auto ex = make_gradient_compression(comm, m.params(), o);
      std::vector<float>& mine = out[static_cast<size_t>(comm.rank())];
      for (int step = 0; step < 4; ++step) {
        fill(m, comm.rank(), step);
        ex->exchange(m.params());
        mine.insert(mine.end(), m.grad.begin(), m.grad.end());
      }
      const StateDict sd = ex->state_dict();
      for (const auto& [key, t] : sd.tensors) {
        for (size_t b = 0; b + 4 <= t.bytes.size(); b += 4) {
          float f;
          std::memcpy(&f, t.bytes.data() + b, 4);
          mine.push_back(f);
        }
      }
    });
    set_cpu_threads(0);
    return out;
  };
  const auto one = run(1);
  const auto three = run(3);
  for (size_t r = 0; r < 2; ++r) {
    ASSERT_EQ(one[r].size(), three[r].size());
    EXPECT_EQ(std::memcmp(one[r].data(), three[r].data(), one[r].size() * sizeof(float)), 0)
        << "rank " << r;
  }
}

// A rank that arrives late shows up on the others as time_wait_s, part of time_comm_s, for the
// gather, for the all-reduce exchange and for PowerSGD's verdicts; the late rank itself hardly
// waits.
TEST(GradientCompression, WaitForTheSlowestRankIsReportedApart) {
  for (const std::string spec : {"dgc:density=0.01", "dgc:density=0.01,exchange=allreduce",
                                 "topk:density=0.01", "powersgd:rank=2,start=0"}) {
    std::vector<CommStats> stats(2);
    run_local_ranks(2, [&](Communicator& comm) {
      Model m(100, 100);
      CompressionOptions o = opts(spec);
      o.momentum = spec.rfind("dgc", 0) == 0 ? 0.9 : 0.0;
      auto ex = make_gradient_compression(comm, m.params(), o);
      fill(m, comm.rank(), 0);
      if (comm.rank() == 1) std::this_thread::sleep_for(std::chrono::milliseconds(300));
      stats[static_cast<size_t>(comm.rank())] = ex->exchange(m.params());
    });
    EXPECT_GE(stats[0].time_wait_s, 0.2) << spec;
    EXPECT_LE(stats[0].time_wait_s, stats[0].time_comm_s) << spec;
    EXPECT_LT(stats[1].time_wait_s, 0.1) << spec;
    EXPECT_GT(stats[0].time_compress_s, 0.0) << spec;
  }
}

TEST(GradientCompression, DgcSendsAboutDensityAndWarmsUp) {
  run_local_ranks(2, [](Communicator& comm) {
    Model m(200, 500);  // 100000 elements
    CompressionOptions o = opts("dgc:density=0.001,values=f16,warmup=paper,warmup_steps=8");
    o.momentum = 0.9;
    auto ex = make_gradient_compression(comm, m.params(), o);
    std::vector<uint64_t> bytes;
    for (int step = 0; step < 10; ++step) {
      fill(m, comm.rank(), step);
      bytes.push_back(ex->exchange(m.params()).payload_bytes);
    }
    // Paper warm-up: 4 stages of 2 steps at densities 0.25, 0.0625, 0.0156, 0.0039, then 0.001.
    EXPECT_GT(bytes[0], bytes[2]);
    EXPECT_GT(bytes[2], bytes[4]);
    EXPECT_GT(bytes[4], bytes[6]);
    EXPECT_GT(bytes[6], bytes[8]);
    // Same stage, same count: only the varint gap lengths differ.
    EXPECT_NEAR(static_cast<double>(bytes[0]), static_cast<double>(bytes[1]), 0.1 * bytes[0]);
    // After warm-up: 100 selected, f16 values + varint gaps (~2 B), header, length, bias (2 KB).
    EXPECT_LE(bytes[9], 100u * 4 + 32 + 8 + 2000);
    EXPECT_GE(bytes[9], 100u * 3 + 32 + 8 + 2000);
  });
}

TEST(GradientCompression, StateDictRoundTripContinuesExactly) {
  for (const char* spec : {"dgc:density=0.01", "topk:density=0.05", "powersgd:rank=2,start=1",
                           "dgc:density=0.01,exchange=allreduce"}) {
    const std::string feedback = std::string(spec).rfind("topk", 0) == 0 ? "ef21" : "none";
    run_local_ranks(2, [&](Communicator& comm) {
      Model a(30, 50), b(30, 50);
      CompressionOptions o = opts(spec, feedback);
      o.momentum = 0.9;
      auto ea = make_gradient_compression(comm, a.params(), o);
      for (int step = 0; step < 3; ++step) {
        fill(a, comm.rank(), step);
        ea->exchange(a.params());
      }
      auto eb = make_gradient_compression(comm, b.params(), o);
      eb->load_state_dict(ea->state_dict());
      EXPECT_EQ(eb->step(), 3);
      for (int step = 3; step < 6; ++step) {
        fill(a, comm.rank(), step);
        fill(b, comm.rank(), step);
        ea->exchange(a.params());
        eb->exchange(b.params());
        ASSERT_EQ(a.grad, b.grad) << spec << " step " << step;
      }
    });
  }
}

TEST(GradientCompression, StateFromAnotherMethodIsRejected) {
  run_local_ranks(1, [](Communicator& comm) {
    Model m(30, 50);
    CompressionOptions o = opts("dgc:density=0.01");
    o.momentum = 0.9;
    auto dgc = make_gradient_compression(comm, m.params(), o);
    auto topk = make_gradient_compression(comm, m.params(), opts("topk:density=0.01", "ef14"));
    EXPECT_THROW(topk->load_state_dict(dgc->state_dict()), CorruptData);
  });
}

TEST(GradientCompression, BadSpecsAreRejectedWithTheirName) {
  run_local_ranks(1, [](Communicator& comm) {
    Model m(8, 8);
    const auto expect_bad = [&](const std::string& spec, const std::string& feedback,
                                const std::string& needle) {
      try {
        make_gradient_compression(comm, m.params(), opts(spec, feedback));
        ADD_FAILURE() << spec << " was accepted";
      } catch (const InvalidArgument& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      }
    };
    expect_bad("dgc:density=0", "none", "density");
    expect_bad("dgc:density=0.01,bogus=1", "none", "bogus");
    expect_bad("dgc:sample=0.001", "none", "sample");
    expect_bad("dgc:warmup=paper", "none", "warmup_steps");
    expect_bad("dgc:values=f16,exchange=allreduce", "none", "use values=f32");
    expect_bad("dgc:exchange=ring", "none", "exchange");
    expect_bad("dgc", "ef14", "--feedback");
    expect_bad("powersgd:rank=0", "none", "rank");
    expect_bad("topk:density=2", "none", "density");
    expect_bad("nosuch", "none", "nosuch");
    expect_bad("topk:density=0.1", "ef99", "ef99");
  });
}

TEST(GradientCompression, DifferentSpecsAcrossRanksFailOnEveryRank) {
  std::mutex mu;
  int failures = 0;
  EXPECT_THROW(
      run_local_ranks(3,
                      [&](Communicator& comm) {
                        Model m(8, 8);
                        const std::string spec =
                            comm.rank() == 2 ? "topk:density=0.5" : "topk:density=0.25";
                        try {
                          make_gradient_compression(comm, m.params(), opts(spec));
                        } catch (const InvalidArgument& e) {
                          EXPECT_NE(std::string(e.what()).find("rank 2"), std::string::npos)
                              << e.what();
                          std::lock_guard<std::mutex> lock(mu);
                          ++failures;
                          throw;
                        }
                      }),
      InvalidArgument);
  EXPECT_EQ(failures, 3);
}

TEST(GradientCompression, NanGradientOnOneRankStopsEveryRank) {
  for (const char* spec :
       {"topk:density=0.1", "dgc:density=0.1", "dgc:density=0.1,exchange=allreduce"}) {
    std::mutex mu;
    int failures = 0;
    EXPECT_THROW(
        run_local_ranks(3,
                        [&](Communicator& comm) {
                          Model m(20, 20);
                          CompressionOptions o = opts(spec);
                          o.momentum = 0.9;
                          auto ex = make_gradient_compression(comm, m.params(), o);
                          fill(m, comm.rank(), 0);
                          if (comm.rank() == 1) m.grad[5] = std::nanf("");
                          try {
                            ex->exchange(m.params());
                          } catch (const NumericalError& e) {
                            EXPECT_NE(std::string(e.what()).find("rank 1"), std::string::npos)
                                << e.what();
                            std::lock_guard<std::mutex> lock(mu);
                            ++failures;
                            throw;
                          }
                        }),
        NumericalError);
    EXPECT_EQ(failures, 3) << spec;
  }
}

// A NaN or Inf gradient is found before the momentum correction touches its tensor: the rank
// that saw it keeps that tensor's U and V as the last good step left them, on the threaded
// check and the fused selection too (1.1M elements on 2 threads), and the exchange stops.
TEST(GradientCompression, DgcNonFiniteGradientLeavesUAndVUntouched) {
  set_cpu_threads(2);
  for (const char* spec : {"dgc:density=0.001", "dgc:density=0.001,exchange=allreduce"}) {
    for (const float bad : {std::nanf(""), INFINITY, -INFINITY}) {
      run_local_ranks(2, [&](Communicator& comm) {
        Model m(1100, 1000);
        CompressionOptions o = opts(spec);
        o.momentum = 0.9;
        auto ex = make_gradient_compression(comm, m.params(), o);
        for (int step = 0; step < 3; ++step) {
          fill(m, comm.rank(), step);
          ex->exchange(m.params());
        }
        const StateDict before = ex->state_dict();
        fill(m, comm.rank(), 3);
        if (comm.rank() == 1) m.grad[777'777] = bad;
        EXPECT_THROW(ex->exchange(m.params()), NumericalError) << spec;
        if (comm.rank() != 1) return;
        const StateDict after = ex->state_dict();
        for (const char* key : {"dgc.u.0", "dgc.v.0"}) {
          EXPECT_EQ(before.tensors.at(key).bytes, after.tensors.at(key).bytes)
              << spec << " " << key << " after " << bad;
        }
      });
    }
  }
  set_cpu_threads(0);
}

// exchange=allreduce (SparseAllReduce, Ok-Topk) against the all-gather.

std::vector<float> floats_of(const StateTensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  t.copy_to(TensorView::of(out.data(), t.numel()), "test");
  return out;
}

// Large entries at i % 10 == 0 on every rank, small noise elsewhere: at density 0.1 with an
// exact threshold (sample=1) every rank selects the same 200 indices, so the budget (200)
// covers the union and nothing is dropped.
void fill_structured(Model& m, int rank, int step) {
  for (size_t i = 0; i < m.grad.size(); ++i) {
    m.grad[i] = i % 10 == 0 ? 10.0f + 0.5f * static_cast<float>(rank + 1) +
                                  static_cast<float>(step) - static_cast<float>(i % 7)
                            : 0.01f * grad_value(rank, step, i);
  }
}

TEST(GradientCompression, DgcAllReduceEqualsTheGatherWhenTheBudgetCoversTheUnion) {
  run_local_ranks(4, [](Communicator& comm) {
    Model a(40, 50), b(40, 50);
    CompressionOptions og = opts("dgc:density=0.1,sample=1");
    og.momentum = 0.9;
    CompressionOptions oa = opts("dgc:density=0.1,sample=1,exchange=allreduce");
    oa.momentum = 0.9;
    auto gather = make_gradient_compression(comm, a.params(), og);
    auto allreduce = make_gradient_compression(comm, b.params(), oa);
    EXPECT_EQ(gather->describe().find("exchange"), std::string::npos) << gather->describe();
    EXPECT_NE(allreduce->describe().find(",exchange=allreduce"), std::string::npos);
    for (int step = 0; step < 4; ++step) {
      fill_structured(a, comm.rank(), step);
      fill_structured(b, comm.rank(), step);
      const CommStats sg = gather->exchange(a.params());
      const CommStats sa = allreduce->exchange(b.params());
      // Sums in rank order on both paths; / 4 and * 0.25 are the same bits.
      for (size_t i = 0; i < a.grad.size(); ++i) {
        ASSERT_EQ(float_to_bits(a.grad[i]), float_to_bits(b.grad[i]))
            << "step " << step << " element " << i << ": " << a.grad[i] << " vs " << b.grad[i];
      }
      // Nothing dropped: V and U the same as the gather's.
      const StateDict dg = gather->state_dict(), da = allreduce->state_dict();
      EXPECT_EQ(floats_of(dg.tensor("dgc.v.0")), floats_of(da.tensor("dgc.v.0"))) << step;
      EXPECT_EQ(floats_of(dg.tensor("dgc.u.0")), floats_of(da.tensor("dgc.u.0"))) << step;
      // 200 pairs: phase 1 sends the 3/4 outside this rank's range, phase 3 the other
      // ranges' selections; both at most k = 200 pairs of 8 bytes, + control and the bias.
      EXPECT_EQ(sa.payload_bytes, 8u * 200 + 4u * 50);
      EXPECT_LE(sa.bytes_sent, 2u * 200 * 8 + 3u * (72 + 8) + sa.bytes_dense);
      EXPECT_LT(sa.bytes_sent, sg.bytes_sent);
    }
  });
}

// One exchange=allreduce step of DGC on a 40 x 50 matrix (+ bias) over 4 ranks from zero state:
// every rank's V afterwards, its result and its gradient (the matrix part), and its CommStats.
struct FirstStep {
  static constexpr int kWorld = 4;
  std::vector<std::vector<float>> v_after, out, g;
  std::vector<CommStats> stats;
  std::vector<std::string> describe;
};

FirstStep dgc_first_step(const std::string& spec) {
  FirstStep f;
  f.v_after.resize(FirstStep::kWorld);
  f.out.resize(FirstStep::kWorld);
  f.g.resize(FirstStep::kWorld);
  f.stats.resize(FirstStep::kWorld);
  f.describe.resize(FirstStep::kWorld);
  std::mutex mu;
  run_local_ranks(FirstStep::kWorld, [&](Communicator& comm) {
    Model m(40, 50);
    CompressionOptions o = opts(spec);
    o.momentum = 0.9;
    auto ex = make_gradient_compression(comm, m.params(), o);
    fill(m, comm.rank(), 0);
    const std::vector<float> grad(m.grad.begin(), m.grad.begin() + 2000);
    const CommStats s = ex->exchange(m.params());
    const std::vector<float> v = floats_of(ex->state_dict().tensor("dgc.v.0"));
    std::lock_guard<std::mutex> lock(mu);
    const size_t r = static_cast<size_t>(comm.rank());
    f.v_after[r] = v;
    f.out[r].assign(m.grad.begin(), m.grad.begin() + 2000);
    f.g[r] = grad;
    f.stats[r] = s;
    f.describe[r] = ex->describe();
  });
  return f;
}

// Every rank has the same result, and the dropped pairs went back into V: over all ranks
// sum_r V_r(after) + N * result = sum_r (V_r(before) + U_r) = sum_r g_r at the first step.
// Returns the result's non-zeros, and (dropped_somewhere) the (element, rank) pairs where the
// result is 0 but V holds g: sent and dropped, or never sent.
int64_t expect_mass_conserved(const FirstStep& f, int64_t* dropped_somewhere) {
  int64_t nonzero = 0;
  *dropped_somewhere = 0;
  for (size_t i = 0; i < 2000; ++i) {
    double lhs = FirstStep::kWorld * static_cast<double>(f.out[0][i]), rhs = 0.0;
    for (size_t r = 0; r < FirstStep::kWorld; ++r) {
      EXPECT_EQ(f.out[r][i], f.out[0][i]) << "rank " << r << " element " << i;
      lhs += f.v_after[r][i];
      rhs += f.g[r][i];
      if (f.out[0][i] == 0.0f && f.v_after[r][i] == f.g[r][i]) ++*dropped_somewhere;
    }
    EXPECT_NEAR(lhs, rhs, 1e-5) << "element " << i;
    nonzero += f.out[0][i] != 0.0f;
  }
  return nonzero;
}

// Budget below the union: the dropped pairs go back into V (mass conserved).
TEST(GradientCompression, DgcAllReduceReturnsDroppedPairsToV) {
  const FirstStep f = dgc_first_step("dgc:density=0.05,sample=1,exchange=allreduce");
  int64_t dropped_somewhere = 0;
  // Budget ceil(0.05 * 2000) = 100 of a union of about 4 x 100 local selections.
  EXPECT_EQ(expect_mass_conserved(f, &dropped_somewhere), 100);
  // A rank's V is zero where it sent and the pair was kept, g where it did not send, and g
  // again where it sent but the pair was dropped.
  EXPECT_GT(dropped_somewhere, 0);
}

// quota=fixed (SparseAllReduce::Quota::kFixed): parsed and printed only when not the default,
// only with exchange=allreduce; every pair cut in phase 1 or dropped in phase 2 goes back into
// V, so mass is conserved as with the water-filling quota.
TEST(GradientCompression, DgcAllReduceFixedQuota) {
  run_local_ranks(1, [](Communicator& comm) {
    Model m(8, 8);
    try {
      make_gradient_compression(comm, m.params(), opts("dgc:density=0.1,quota=fixed"));
      ADD_FAILURE() << "quota=fixed without exchange=allreduce was accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("needs exchange=allreduce"), std::string::npos)
          << e.what();
    }
    EXPECT_THROW(make_gradient_compression(comm, m.params(),
                                           opts("dgc:density=0.1,exchange=allreduce,quota=tight")),
                 InvalidArgument);
    CompressionOptions o = opts("dgc:density=0.1,exchange=allreduce,quota=waterfill");
    o.momentum = 0.9;
    EXPECT_EQ(make_gradient_compression(comm, m.params(), o)->describe().find("quota"),
              std::string::npos);
  });
  const FirstStep f = dgc_first_step("dgc:density=0.05,sample=1,exchange=allreduce,quota=fixed");
  for (size_t r = 0; r < FirstStep::kWorld; ++r) {
    EXPECT_NE(f.describe[r].find(",exchange=allreduce,quota=fixed"), std::string::npos)
        << f.describe[r];
    // Budget 100 over 4 ranges: 75 pairs per phase, the 24-byte validation x 2 rounds, the NaN
    // flag (8 B x 2 rounds), the bias.
    EXPECT_EQ(f.stats[r].bytes_sent, 16u * 75 + 2u * 24 + 2u * 8 + 2u * 3 * 4 * 50 / 4) << r;
  }
  int64_t dropped_somewhere = 0;
  const int64_t nonzero = expect_mass_conserved(f, &dropped_somewhere);
  EXPECT_GT(nonzero, 0);
  EXPECT_LE(nonzero, 100);
}

TEST(GradientCompression, DgcAllReduceCheckpointsTheBoundaries) {
  run_local_ranks(3, [](Communicator& comm) {
    Model a(30, 50), b(30, 50);
    CompressionOptions o = opts("dgc:density=0.02,exchange=allreduce");
    o.momentum = 0.9;
    auto ea = make_gradient_compression(comm, a.params(), o);
    const StateDict fresh = ea->state_dict();
    std::vector<int64_t> bounds(4);
    fresh.tensor("dgc.boundaries").copy_to(TensorView::of(bounds.data(), 4), "test");
    EXPECT_EQ(bounds, (std::vector<int64_t>{0, 500, 1000, 1500}));
    // Gradients concentrated in the first 150 elements move the ranges there.
    for (int step = 0; step < 2; ++step) {
      fill(a, comm.rank(), step);
      for (size_t i = 150; i < 1500; ++i) a.grad[i] *= 1e-3f;
      ea->exchange(a.params());
    }
    const StateDict saved = ea->state_dict();
    saved.tensor("dgc.boundaries").copy_to(TensorView::of(bounds.data(), 4), "test");
    EXPECT_LT(bounds[2], 200) << bounds[1] << " " << bounds[2];
    auto eb = make_gradient_compression(comm, b.params(), o);
    eb->load_state_dict(saved);
    EXPECT_EQ(eb->state_dict().tensor("dgc.boundaries").bytes,
              saved.tensor("dgc.boundaries").bytes);
    // Corrupt entries are rejected: decreasing, wrong size, another vector length.
    auto with_bounds = [&](std::vector<int64_t> bad) {
      StateDict sd = saved;
      sd.tensors["dgc.boundaries"] =
          StateTensor::copy_of(TensorView::of(bad.data(), static_cast<int64_t>(bad.size())));
      return sd;
    };
    EXPECT_THROW(eb->load_state_dict(with_bounds({0, 900, 800, 1500})), CorruptData);
    EXPECT_THROW(eb->load_state_dict(with_bounds({0, 750, 1500})), CorruptData);
    EXPECT_THROW(eb->load_state_dict(with_bounds({0, 10, 20, 1400})), CorruptData);
    StateDict missing = saved;
    missing.tensors.erase("dgc.boundaries");
    EXPECT_THROW(eb->load_state_dict(missing), CorruptData);
    // A failed load left the restored state alone: both continue identically.
    for (int step = 2; step < 4; ++step) {
      fill(a, comm.rank(), step);
      fill(b, comm.rank(), step);
      ea->exchange(a.params());
      eb->exchange(b.params());
      ASSERT_EQ(a.grad, b.grad) << "step " << step;
    }
  });
}

TEST(GradientCompression, DataParallelRunsTheExchangeInFinish) {
  run_local_ranks(2, [](Communicator& comm) {
    Model m(16, 16);
    std::vector<Param> params = m.params();
    DataParallel dp(comm, params, 25.0);
    dp.set_compression(make_gradient_compression(comm, dp.params(), opts("fp16")));
    for (size_t i = 0; i < dp.params().size(); ++i) {
      const TensorView& g = dp.params()[i].grad;
      float* p = static_cast<float*>(g.data);
      for (int64_t k = 0; k < g.numel; ++k) p[k] = static_cast<float>(comm.rank() + 1);
      dp.mark_ready(i);
    }
    const CommStats s = dp.finish();
    const float* w = static_cast<const float*>(dp.params()[0].grad.data);
    EXPECT_FLOAT_EQ(w[0], 1.5f);
    // fp16 payload: 2 B per element of the matrix + header + length, the bias at 4 B.
    EXPECT_EQ(s.payload_bytes, 2u * 256 + 32 + 8 + 4u * 16);
  });
}

}  // namespace
}  // namespace terse
