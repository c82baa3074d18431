// `terse train --device cuda` through the library: the model, the buckets, the optimizer and the
// parameter EMA on the GPU, against the same run on the CPU (expect_close_runs); a GPU run
// against itself (resume) is exact; the communicating optimizers (onebit_adam, zero_one_adam,
// onebit_lamb) too. The language model's GPU run is in lm_test.cc. Skipped, saying so, without a
// GPU; the refusals run everywhere.
#include <gtest/gtest.h>

#include <string>

#include "../parity/gpu_skip.h"
#include "terse/core/error.h"
#include "terse/torch/trainer.h"
#include "trainer_test_util.h"

namespace terse::torch_adapter {
namespace {

using namespace trainer_test;  // NOLINT(build/namespaces): the helpers of trainer_test_util.h

TEST(CudaTrainer, DenseMlpMatchesTheCpuRun) {
  TERSE_SKIP_WITHOUT_GPU();
  expect_close_runs(small_config(), 2);
  EXPECT_GT(run(on_cuda(small_config()), 2).summary.final_test_accuracy, 0.6);
}

TEST(CudaTrainer, CnnWithAdamWMatchesTheCpuRun) {
  TERSE_SKIP_WITHOUT_GPU();
  TrainConfig c = small_config("cnn");
  c.optimizer = "adamw:lr=0.002,weight_decay=0.01";
  expect_close_runs(c, 2);
}

// Two GPU runs of one seed give the same metrics, convolutions included.
TEST(CudaTrainer, CnnRunsAreDeterministic) {
  TERSE_SKIP_WITHOUT_GPU();
  TrainConfig a = on_cuda(small_config("cnn"));
  a.epochs = 1;
  TrainConfig b = a;
  a.metrics_path = scratch("cuda_det_a") + "/m.jsonl";
  b.metrics_path = scratch("cuda_det_b") + "/m.jsonl";
  run(a, 2);
  run(b, 2);
  EXPECT_EQ(deterministic(a.metrics_path), deterministic(b.metrics_path));
}

TEST(CudaTrainer, TopkWithFeedbackMatchesTheCpuRun) {
  TERSE_SKIP_WITHOUT_GPU();
  TrainConfig c = small_config();
  c.compress = "topk:density=0.05";
  c.feedback = "ef14";
  expect_close_runs(c, 2);
}

// PowerSGD's passes on the GPU (one process: the ranks are threads sharing its context)
TEST(CudaTrainer, PowerSgdMatchesTheCpuRun) {
  TERSE_SKIP_WITHOUT_GPU();
  TrainConfig c = small_config();
  c.compress = "powersgd:rank=2,start=4";
  expect_close_runs(c, 2);
}

TEST(CudaTrainer, DgcTrainsOnTheGpu) {
  TERSE_SKIP_WITHOUT_GPU();
  TrainConfig c = on_cuda(small_config());
  c.epochs = 3;
  c.compress = "dgc:density=0.01,warmup=none";
  const RunResult r = run(c, 2);
  EXPECT_GT(r.summary.final_test_accuracy, 0.6);
  EXPECT_GT(static_cast<double>(r.summary.payload_dense_bytes) /
                static_cast<double>(r.summary.payload_bytes),
            20.0);
}

// DGC's U and V live on the GPU (its memory and selection run there): a run resumed from the
// checkpoint, which holds their host copies, equals the uninterrupted one.
TEST(CudaTrainer, DgcOnTheGpuResumesExactly) {
  TERSE_SKIP_WITHOUT_GPU();
  TrainConfig c = on_cuda(small_config());
  c.compress = "dgc:density=0.01,values=f16";
  c.lr_schedule = "step:step_size=10,gamma=0.5";
  const ResumePair p = run_straight_and_resumed(c, "cuda_dgc", 2);
  expect_resumed_as_straight(p, {"compression", "model"});
}

// A GPU run resumed from its checkpoint equals the uninterrupted GPU run (the same kernels in
// the same order), and a CPU checkpoint continues on the GPU.
TEST(CudaTrainer, ResumeIsExactAndCheckpointsMoveBetweenDevices) {
  TERSE_SKIP_WITHOUT_GPU();
  TrainConfig c = on_cuda(small_config());
  c.optimizer = "adamw:lr=0.002,weight_decay=0.01";
  c.lr_schedule = "step:step_size=10,gamma=0.5";
  const ResumePair p = run_straight_and_resumed(c, "cuda", 2);
  const TrainConfig& straight = p.straight;
  const RunResult& full = p.full;
  EXPECT_EQ(p.resumed.summary.resumed_from_epoch, 1);
  EXPECT_EQ(p.resumed.summary.final_test_accuracy, full.summary.final_test_accuracy);
  expect_resumed_as_straight(p, {"model", "optimizer"});

  TrainConfig cpu_first = straight;
  cpu_first.device = "cpu";
  cpu_first.epochs = 1;
  cpu_first.metrics_path.clear();
  cpu_first.checkpoint_dir = scratch("cpu_to_cuda") + "/ckpt";
  run(cpu_first, 2);
  TrainConfig gpu_second = on_cuda(cpu_first);
  gpu_second.epochs = 2;
  gpu_second.resume = true;
  const RunResult moved = run(gpu_second, 2);
  EXPECT_EQ(moved.summary.resumed_from_epoch, 1);
  EXPECT_NEAR(moved.summary.final_test_accuracy, full.summary.final_test_accuracy, 0.03);
}

// --ema on the GPU: the EMA is kept, updated and loaded for the evaluations there, and the run
// and its EMA evaluations agree with the CPU run's (as closely as the runs themselves).
TEST(CudaTrainer, EmaMatchesTheCpuRun) {
  TERSE_SKIP_WITHOUT_GPU();
  TrainConfig c = small_config();
  c.ema = "decay=0.9,warmup=true";
  RunResult cpu, gpu;
  expect_close_runs(c, 2, &cpu, &gpu);
  ASSERT_TRUE(cpu.summary.has_ema);
  ASSERT_TRUE(gpu.summary.has_ema);
  EXPECT_EQ(cpu.summary.ema_state_bytes, gpu.summary.ema_state_bytes);
  EXPECT_GT(gpu.summary.ema_state_bytes, 0u);
  ASSERT_EQ(cpu.rank0.epochs.size(), gpu.rank0.epochs.size());
  for (size_t e = 0; e < cpu.rank0.epochs.size(); ++e) {
    const EpochMetrics &a = cpu.rank0.epochs[e], &b = gpu.rank0.epochs[e];
    ASSERT_TRUE(b.has_ema) << "epoch " << e;
    EXPECT_NEAR(a.ema_test_loss, b.ema_test_loss, 0.05 * a.ema_test_loss) << "epoch " << e;
  }
  EXPECT_NEAR(cpu.summary.final_ema_test_accuracy, gpu.summary.final_ema_test_accuracy, 0.02);
  // The EMA weights were evaluated, not the raw ones.
  EXPECT_NE(gpu.summary.final_ema_test_loss, gpu.summary.final_test_loss);
}

// The EMA lives on the GPU; the checkpoint holds its host copy: a GPU run resumed from it equals
// the uninterrupted one, EMA evaluations included, and a CPU checkpoint's EMA continues on the
// GPU.
TEST(CudaTrainer, EmaResumesExactlyAndMovesBetweenDevices) {
  TERSE_SKIP_WITHOUT_GPU();
  TrainConfig c = on_cuda(small_config());
  c.ema = "decay=0.9";
  c.lr_schedule = "step:step_size=10,gamma=0.5";
  const ResumePair p = run_straight_and_resumed(c, "cuda_ema", 2);
  EXPECT_EQ(p.resumed.summary.resumed_from_epoch, 1);
  EXPECT_EQ(p.resumed.summary.final_ema_test_loss, p.full.summary.final_ema_test_loss);
  expect_resumed_as_straight(p, {"ema", "model"});

  TrainConfig cpu_first = p.straight;
  cpu_first.device = "cpu";
  cpu_first.epochs = 1;
  cpu_first.metrics_path.clear();
  cpu_first.checkpoint_dir = scratch("cpu_to_cuda_ema") + "/ckpt";
  run(cpu_first, 2);
  TrainConfig gpu_second = on_cuda(cpu_first);
  gpu_second.epochs = 2;
  gpu_second.resume = true;
  const RunResult moved = run(gpu_second, 2);
  EXPECT_EQ(moved.summary.resumed_from_epoch, 1);
  EXPECT_TRUE(moved.summary.has_ema);
  EXPECT_NEAR(moved.summary.final_ema_test_accuracy, p.full.summary.final_ema_test_accuracy, 0.03);
}

// 1-bit Adam on the GPU: the dense warm-up, then its 1-bit momentum all-reduce on the GPU (the
// ranks are threads: the sign bytes go through the host), as the CPU run, the same bytes on the
// wire every step.
TEST(CudaTrainer, OneBitAdamMatchesTheCpuRun) {
  TERSE_SKIP_WITHOUT_GPU();
  TrainConfig c = small_config();
  // The CPU trainer test's settings: without bias correction and with eps 1e-8, this model
  // diverges (on the CPU as on the GPU) a few steps after an 8-step warm-up.
  c.optimizer = "onebit_adam:lr=0.001,freeze_step=16,bias_correction=true,eps=1e-6";
  c.lr_schedule = "step:step_size=10,gamma=0.5";
  expect_close_runs(c, 2);
}

// Its state (m, v and the all-reduce's errors on the GPU) goes through the checkpoint: the resumed
// GPU run equals the uninterrupted one.
TEST(CudaTrainer, OneBitAdamOnTheGpuResumesExactly) {
  TERSE_SKIP_WITHOUT_GPU();
  TrainConfig c = on_cuda(small_config());
  c.optimizer = "onebit_adam:lr=0.001,freeze_step=16,bias_correction=true,eps=1e-6";
  c.lr_schedule = "step:step_size=10,gamma=0.5";
  c.epochs = 3;  // resumed after epoch 1, in the warm-up; epochs 2 and 3 compress
  const ResumePair p = run_straight_and_resumed(c, "cuda_onebit", 2);
  expect_resumed_as_straight(p, {"optimizer"});
  EXPECT_EQ(p.resumed.summary.final_test_accuracy, p.full.summary.final_test_accuracy);
}

// 0/1 Adam on the GPU across all its phases: variance steps (dense) and 1-bit steps, the freeze
// at step 8, then local steps and syncs with a growing interval (local_step_scaler=4), as the
// CPU run, the same bytes on the wire every step.
const char* const kZeroOneAdam =
    "zero_one_adam:lr=0.001,var_freeze_step=8,var_update_scaler=2,local_step_scaler=4,"
    "local_step_clipper=4,eps=1e-3";

TEST(CudaTrainer, ZeroOneAdamMatchesTheCpuRun) {
  TERSE_SKIP_WITHOUT_GPU();
  TrainConfig c = small_config();
  c.optimizer = kZeroOneAdam;
  expect_close_runs(c, 2);
}

// Its state (m, v, p_sync, the errors and the counters) goes through the checkpoint, which falls
// in its local phase: the resumed GPU run equals the uninterrupted one.
TEST(CudaTrainer, ZeroOneAdamOnTheGpuResumesExactly) {
  TERSE_SKIP_WITHOUT_GPU();
  TrainConfig c = on_cuda(small_config());
  c.optimizer = kZeroOneAdam;
  c.lr_schedule = "step:step_size=10,gamma=0.5";
  const ResumePair p = run_straight_and_resumed(c, "cuda_zero_one", 2);
  expect_resumed_as_straight(p, {"optimizer"});
  EXPECT_EQ(p.resumed.summary.final_test_accuracy, p.full.summary.final_test_accuracy);
}

// 1-bit LAMB on the GPU: the LAMB warm-up (per-tensor trust ratios from GPU norms), then the
// compression phase (scaling coefficients, 1-bit momenta, fresh variance, the factor), as the CPU
// run.
TEST(CudaTrainer, OneBitLambMatchesTheCpuRun) {
  TERSE_SKIP_WITHOUT_GPU();
  TrainConfig c = small_config();
  c.optimizer = "onebit_lamb:lr=0.01,freeze_step=8,weight_decay=0.01";
  expect_close_runs(c, 2);
}

void expect_refused(const TrainConfig& c, const std::string& needle) {
  try {
    run(c, 1);
    FAIL() << "expected InvalidArgument containing: " << needle;
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// Every optimizer runs on the GPU now; what is still refused: NCCL without --device cuda, an
// unknown device.
TEST(CudaTrainer, RefusesWhatDoesNotRunOnTheGpu) {
  TrainConfig c = small_config();
  c.backend = "nccl";
  expect_refused(c, "pass --device cuda with it");
  c.optimizer = "zero_one_adam:var_freeze_step=4";
  expect_refused(c, "pass --device cuda with it");
  c = small_config();
  c.device = "tpu";
  expect_refused(c, "unknown device 'tpu'");
}

TEST(CudaTrainer, CudaWithoutAGpuSaysSo) {
  std::string why;
  if (parity::have_gpu(&why))
    GTEST_SKIP() << "a GPU is present; this checks the message without one";
  expect_refused(on_cuda(small_config()), "--device cuda");
}

}  // namespace
}  // namespace terse::torch_adapter
