// Unit tests of the command line's pieces; the executable itself is driven by cli_test.sh.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "exit_codes.h"
#include "fault_injection.h"
#include "mpi_launcher.h"
#include "progress_observer.h"
#include "terse/core/error.h"
#include "train_command.h"

namespace terse::cli {
namespace {

using torch_adapter::EpochMetrics;
using torch_adapter::StepMetrics;
using torch_adapter::TrainConfig;
using torch_adapter::TrainSummary;

TEST(CliFormat, Bytes) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(uint64_t{3} << 30), "3.00 GiB");
}

TEST(CliFormat, Duration) {
  EXPECT_EQ(format_duration(0.4242), "0.42 s");
  EXPECT_EQ(format_duration(12.34), "12.3 s");
  EXPECT_EQ(format_duration(125), "2:05");
  EXPECT_EQ(format_duration(3723), "1:02:03");
  EXPECT_EQ(format_duration(-1), "?");
}

TEST(CliExitCodes, ByErrorType) {
  EXPECT_EQ(exit_code_for(InvalidArgument("x")), 2);
  EXPECT_EQ(exit_code_for(CorruptData("x")), 3);
  EXPECT_EQ(exit_code_for(NumericalError("x")), 4);
  EXPECT_EQ(exit_code_for(Timeout("x")), 5);
  EXPECT_EQ(exit_code_for(CommError("x")), 5);
  EXPECT_EQ(exit_code_for(CudaError("x")), 1);
  EXPECT_EQ(exit_code_for(std::runtime_error("x")), 1);
}

TEST(CliLauncher, StripsNpInBothSpellings) {
  const std::vector<std::string> args = {"--np", "4", "--epochs", "2", "--np=8", "--quiet"};
  EXPECT_EQ(strip_np_flag(args), (std::vector<std::string>{"--epochs", "2", "--quiet"}));
  // After "--" nothing is a flag.
  EXPECT_EQ(strip_np_flag({"--", "--np", "2"}), (std::vector<std::string>{"--", "--np", "2"}));
}

TEST(CliLauncher, MpirunCommand) {
  EXPECT_EQ(mpirun_command(4, "/opt/terse", "train", {"--epochs", "2"}, false),
            (std::vector<std::string>{"mpirun", "-n", "4", "--oversubscribe", "--bind-to", "none",
                                      "/opt/terse", "train", "--epochs", "2"}));
  const auto as_root = mpirun_command(2, "/opt/terse", "train", {}, true);
  EXPECT_EQ(as_root[6], "--allow-run-as-root");
  EXPECT_EQ(as_root[7], "/opt/terse");
}

TEST(CliLauncher, RanksGetPassiveOpenMpUnlessTheUserChose) {
  ::unsetenv("OMP_WAIT_POLICY");
  prepare_rank_environment();
  ASSERT_NE(std::getenv("OMP_WAIT_POLICY"), nullptr);
  EXPECT_STREQ(std::getenv("OMP_WAIT_POLICY"), "PASSIVE");
  ::setenv("OMP_WAIT_POLICY", "ACTIVE", 1);
  prepare_rank_environment();
  EXPECT_STREQ(std::getenv("OMP_WAIT_POLICY"), "ACTIVE");
  ::unsetenv("OMP_WAIT_POLICY");
}

TEST(CliLauncher, RunAndWaitReturnsStatusAndNamesHint) {
  EXPECT_EQ(run_and_wait({"sh", "-c", "exit 7"}, "hint"), 7);
  EXPECT_EQ(run_and_wait({"sh", "-c", "kill -9 $$"}, "hint"), 128 + 9);
  try {
    run_and_wait({"/nonexistent/mpirun"}, "apt-get install openmpi-bin");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("apt-get install openmpi-bin"), std::string::npos);
  }
}

TEST(CliLauncher, ForwardsTerminationToTheChild) {
  // A SIGTERM to terse (e.g. from a batch scheduler) must reach mpirun, not orphan it.
  std::thread killer([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    ::kill(::getpid(), SIGTERM);
  });
  const auto start = std::chrono::steady_clock::now();
  const int status = run_and_wait({"sleep", "30"}, "hint");
  killer.join();
  EXPECT_EQ(status, 128 + SIGTERM);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

class CliFaultInjection : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv("TERSE_TEST_KILL_RANK");
    unsetenv("TERSE_TEST_KILL_STEP");
    unsetenv("TERSE_TEST_KILL_MODE");
  }
};

TEST_F(CliFaultInjection, FromEnv) {
  EXPECT_FALSE(FaultInjection::from_env().has_value());
  setenv("TERSE_TEST_KILL_RANK", "1", 1);
  EXPECT_THROW(FaultInjection::from_env(), InvalidArgument);  // step missing
  setenv("TERSE_TEST_KILL_STEP", "17", 1);
  const auto fault = FaultInjection::from_env();
  ASSERT_TRUE(fault.has_value());
  EXPECT_EQ(fault->rank, 1);
  EXPECT_EQ(fault->step, 17);
  EXPECT_EQ(fault->mode, FaultInjection::Mode::kKill);
  setenv("TERSE_TEST_KILL_MODE", "stall", 1);
  EXPECT_EQ(FaultInjection::from_env()->mode, FaultInjection::Mode::kStall);
  setenv("TERSE_TEST_KILL_MODE", "explode", 1);
  EXPECT_THROW(FaultInjection::from_env(), InvalidArgument);
  unsetenv("TERSE_TEST_KILL_MODE");
  setenv("TERSE_TEST_KILL_STEP", "0", 1);
  EXPECT_THROW(FaultInjection::from_env(), InvalidArgument);
  setenv("TERSE_TEST_KILL_STEP", "3x", 1);
  EXPECT_THROW(FaultInjection::from_env(), InvalidArgument);
}

TEST_F(CliFaultInjection, KillsOnlyTheMatchingRankAndStep) {
  const FaultInjection fault{1, 3, FaultInjection::Mode::kKill};
  fault.apply(0, 3);  // other rank: returns
  fault.apply(1, 2);  // other step: returns
  EXPECT_EXIT(fault.apply(1, 3), ::testing::KilledBySignal(9), "rank 1 .* step 3");
}

StepMetrics step_of(int epoch, int64_t in_epoch, int64_t per_epoch) {
  StepMetrics s;
  s.epoch = epoch;
  s.step_in_epoch = in_epoch;
  s.steps_per_epoch = per_epoch;
  s.step = (epoch - 1) * per_epoch + in_epoch;
  s.loss = 0.5;
  return s;
}

TEST(CliProgress, NonTtyPrintsALinePerTenthAndEpochLines) {
  std::ostringstream out;
  ProgressObserver observer(0, false, false, out, std::nullopt);
  TrainConfig config;
  config.epochs = 2;
  observer.on_start(config, 20, 2);
  for (int e = 1; e <= 2; ++e) {
    for (int64_t i = 1; i <= 20; ++i) observer.on_step(step_of(e, i, 20));
    EpochMetrics epoch;
    epoch.epoch = e;
    epoch.test_accuracy = 0.75;
    observer.on_epoch(epoch);
  }
  const std::string text = out.str();
  size_t progress_lines = 0, pos = 0;
  while ((pos = text.find("step ", pos)) != std::string::npos) ++progress_lines, ++pos;
  EXPECT_EQ(progress_lines, 20u) << text;  // 10 marks per epoch
  EXPECT_NE(text.find("epoch 1/2 step 2/20  loss 0.5000"), std::string::npos) << text;
  EXPECT_NE(text.find("epoch 2/2 done: "), std::string::npos) << text;
  EXPECT_NE(text.find("test accuracy 0.7500"), std::string::npos) << text;
  EXPECT_EQ(text.find('\r'), std::string::npos);
}

TEST(CliProgress, TtyRedrawsInPlace) {
  std::ostringstream out;
  ProgressObserver observer(0, false, true, out, std::nullopt);
  TrainConfig config;
  config.epochs = 1;
  observer.on_start(config, 4, 1);
  for (int64_t i = 1; i <= 4; ++i) observer.on_step(step_of(1, i, 4));
  observer.on_epoch(EpochMetrics{});
  const std::string text = out.str();
  EXPECT_NE(text.find("\repoch 1/1 [" + std::string(24, '=') + "] step 4/4"), std::string::npos)
      << text;
  EXPECT_NE(text.find("\nepoch 0/1 done"), std::string::npos) << text;  // bar line ended first
}

TEST(CliProgress, QuietAndOtherRanksPrintNothing) {
  for (const auto& [rank, quiet] : {std::pair{0, true}, std::pair{1, false}}) {
    std::ostringstream out;
    ProgressObserver observer(rank, quiet, false, out, std::nullopt);
    observer.on_start(TrainConfig{}, 10, 2);
    for (int64_t i = 1; i <= 10; ++i) observer.on_step(step_of(1, i, 10));
    observer.on_epoch(EpochMetrics{});
    EXPECT_EQ(out.str(), "");
  }
}

TEST(CliProgress, SummaryRows) {
  TrainConfig config;
  config.model = "mlp";
  TrainSummary summary;
  summary.world_size = 4;
  summary.epochs_run = 2;
  summary.steps = 100;
  summary.final_test_accuracy = 0.8125;
  summary.bytes_sent = 7 * 1024;
  summary.bytes_dense = 56 * 1024;
  summary.payload_bytes = 1024;
  summary.payload_dense_bytes = 32 * 1024;
  summary.exchange = "topk:density=0.01,values=f32 + ef14; 2 compressed tensors";
  summary.compression_state_bytes = 4096;
  summary.resumed_from_epoch = 1;
  std::ostringstream out;
  print_summary(out, config, summary);
  const std::string text = out.str();
  const auto row = [](const std::string& key, const std::string& value) {
    return "  " + key + std::string(33 - key.size(), ' ') + value + "\n";
  };
  EXPECT_NE(text.find(row("model", "mlp")), std::string::npos) << text;
  EXPECT_NE(text.find(row("ranks", "4")), std::string::npos) << text;
  EXPECT_NE(text.find(row("epochs", "2 (resumed after epoch 1)")), std::string::npos) << text;
  EXPECT_NE(text.find("0.8125 (81.25%)"), std::string::npos) << text;
  // The ratio is the message's (payload) ratio, not the wire bytes' (8x here).
  EXPECT_NE(text.find(row("compression ratio", "32.00x")), std::string::npos) << text;
  EXPECT_NE(text.find(row("gradient exchange", summary.exchange)), std::string::npos) << text;
  EXPECT_NE(text.find(row("compression state memory", "4.00 KiB")), std::string::npos) << text;
  summary.payload_bytes = 0;
  std::ostringstream none;
  print_summary(none, config, summary);
  EXPECT_NE(none.str().find(row("compression ratio", "n/a")), std::string::npos) << none.str();
}

// Parses `terse train <args>` the way main() does.
TrainFlags parse_train(std::vector<std::string> args) {
  CLI::App app{"test", "terse"};
  app.require_subcommand(1);
  TrainFlags flags;
  add_train_command(app, flags);
  args.insert(args.begin(), "train");
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed vector
  app.parse(args);
  return flags;
}

TEST(CliTrainFlags, FillTheConfig) {
  const TrainFlags flags = parse_train(
      {"--np",          "3",        "--model",      "mlp",    "--optimizer", "adam:lr=1e-3",
       "--epochs",      "4",        "--batch-size", "32",     "--seed",      "9",
       "--bucket-mb",   "1.5",      "--timeout",    "2.5",    "--threads",   "2",
       "--train-limit", "100",      "--test-limit", "50",     "--quiet",     "--checkpoint-dir",
       "/tmp/c",        "--resume", "--metrics",    "m.jsonl"});
  EXPECT_EQ(flags.np, 3);
  EXPECT_EQ(flags.config.model, "mlp");
  EXPECT_EQ(flags.config.optimizer, "adam:lr=1e-3");
  EXPECT_EQ(flags.config.epochs, 4);
  EXPECT_EQ(flags.config.batch_size, 32);
  EXPECT_EQ(flags.config.seed, 9u);
  EXPECT_DOUBLE_EQ(flags.config.bucket_mb, 1.5);
  EXPECT_DOUBLE_EQ(flags.timeout_s, 2.5);
  EXPECT_EQ(flags.config.threads, 2);
  EXPECT_EQ(flags.config.train_limit, 100);
  EXPECT_EQ(flags.config.test_limit, 50);
  EXPECT_TRUE(flags.quiet);
  EXPECT_TRUE(flags.config.resume);
  EXPECT_EQ(flags.config.checkpoint_dir, "/tmp/c");
  EXPECT_EQ(flags.config.metrics_path, "m.jsonl");
  EXPECT_FALSE(flags.config.metrics_every_rank);
  EXPECT_TRUE(
      parse_train({"--metrics", "m.jsonl", "--metrics-every-rank"}).config.metrics_every_rank);
}

TEST(CliTrainFlags, RepeatedFlagTakesTheLastValue) {
  EXPECT_EQ(parse_train({"--epochs", "2", "--epochs", "4"}).config.epochs, 4);
  EXPECT_EQ(parse_train({"--np", "2", "--np=3"}).np, 3);
}

TEST(CliTrainFlags, RejectsOutOfRange) {
  EXPECT_THROW(parse_train({"--epochs", "0"}), CLI::ValidationError);
  EXPECT_THROW(parse_train({"--np", "-2"}), CLI::ValidationError);
  EXPECT_THROW(parse_train({"--batch-size", "x"}), CLI::ParseError);
  EXPECT_THROW(parse_train({"--resume"}), CLI::RequiresError);
  EXPECT_THROW(parse_train({"--metrics-every-rank"}), CLI::RequiresError);
  EXPECT_THROW(parse_train({"--model", "vgg"}), CLI::ValidationError);
  EXPECT_THROW(parse_train({"--wat"}), CLI::ExtrasError);
}

TEST(CliTrainFlags, ValidationNamesTheProblem) {
  auto message_of = [](std::vector<std::string> args) {
    TrainFlags flags = parse_train(std::move(args));
    try {
      validate_train_flags(flags);
    } catch (const InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message_of({"--data-dir", "/nonexistent"}).find("dataset-fashion-mnist"),
            std::string::npos);
  EXPECT_NE(message_of({"--optimizer", "nosuch"}).find("nosuch"), std::string::npos);
  EXPECT_NE(message_of({"--lr-schedule", "zigzag"}).find("zigzag"), std::string::npos);
  EXPECT_NE(message_of({"--train-limit", "100", "--batch-size", "64", "--np", "2"})
                .find("not one step per epoch"),
            std::string::npos);
  // Validation only checks that the four files exist: empty ones do, on any machine.
  const std::string data_dir = ::testing::TempDir() + "/terse_cli_fake_data";
  std::filesystem::create_directories(data_dir);
  for (const char* name : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}) {
    std::ofstream(data_dir + "/" + name + ".gz");
  }
  TrainFlags ok = parse_train({"--timeout", "2.5", "--data-dir", data_dir});
  validate_train_flags(ok);
  EXPECT_EQ(ok.config.timeout.count(), 2500);
}

}  // namespace
}  // namespace terse::cli
