#include "train_command.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>

#include "exit_codes.h"
#include "fault_injection.h"
#include "mpi_launcher.h"
#include "progress_observer.h"
#include "terse/comm/communicator.h"
#include "terse/comm/local_communicator.h"
#include "terse/core/check.h"
#include "terse/data/fashion_mnist.h"
#include "terse/data/text_corpus.h"
#include "terse/optim/lr_schedule.h"
#include "terse/optim/optimizer.h"
#include "terse/optim/param_ema.h"
#include "terse/torch/trainer.h"
#include "terse/train/communicating_optimizer.h"
#include "terse/train/gradient_compression.h"

namespace terse::cli {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxRanks = 4096;
constexpr const char* kProgressTtyEnv = "TERSE_PROGRESS_TTY";

// CLI11 would read "-1" as 2^64 - 1 for an unsigned option; a seed is digits only, in range.
const CLI::Validator kUnsignedInteger(
    [](std::string& text) {
      errno = 0;
      char* end = nullptr;
      const bool digits =
          !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
      if (digits) std::strtoull(text.c_str(), &end, 10);
      if (digits && errno == 0 && end != nullptr && *end == '\0') return std::string();
      return "must be an unsigned integer from 0 to 18446744073709551615, got '" + text + "'";
    },
    "UINT64");

// The --batch-size option of the last add_train_command: its default (64) is for images, and
// --model lm without --batch-size takes TrainConfig::kLmDefaultBatch windows instead.
CLI::Option* batch_size_option = nullptr;

// Surfaces unknown names, unknown options and out-of-range values of --optimizer here, once,
// rather than in every rank after the launch.
void validate_optimizer(const std::string& text) {
  const OptimizerSpec spec = OptimizerSpec::parse(text);
  if (is_communicating_optimizer(spec.name)) {
    std::vector<float> value(4, 0.0f), grad(4, 0.0f);
    std::vector<ParamGroup> groups(1);
    groups[0].params.push_back(Param{
        TensorView::of(value.data(), 4), TensorView::of(grad.data(), 4), {2, 2}, "validation"});
    std::vector<std::unique_ptr<Communicator>> comms = make_local_communicators(1);
    make_communicating_optimizer(*comms[0], spec, std::move(groups));
    return;
  }
  const std::vector<std::string> known = optimizer_names();
  if (std::find(known.begin(), known.end(), spec.name) == known.end()) {
    std::string names;
    for (const std::string& n : known) names += n + ", ";
    TERSE_THROW(InvalidArgument, "unknown optimizer '", spec.name, "'; known: ", names,
                "onebit_adam, zero_one_adam, onebit_lamb (these three compress their own "
                "communication)");
  }
  // A 2x2 matrix: optimizers with matrix math (Muon, AdamP) accept it as well as element-wise ones.
  float value[4] = {0, 0, 0, 0};
  float grad[4] = {0, 0, 0, 0};
  Param param{TensorView::of(value, 4), TensorView::of(grad, 4), {2, 2}, "validation"};
  std::vector<ParamGroup> groups(1);
  groups[0].params.push_back(param);
  make_optimizer(spec, std::move(groups));
}

// Surfaces bad --compress / --feedback specs before the launch: builds the exchange once on a
// one-rank communicator over a small matrix and a bias.
void validate_compression(const std::string& compress, const std::string& feedback,
                          const std::string& optimizer) {
  const std::string optimizer_name = OptimizerSpec::parse(optimizer).name;
  TERSE_CHECK(
      !is_communicating_optimizer(optimizer_name) || (compress == "none" && feedback == "none"),
      InvalidArgument, "--optimizer ", optimizer_name,
      " compresses its own communication (1-bit momentum); it cannot be combined with "
      "--compress ",
      compress, " --feedback ", feedback, "; drop --compress/--feedback or use another optimizer");
  if (compression_is_dgc(compress)) {
    TERSE_CHECK(OptimizerSpec::parse(optimizer).name == "sgd", InvalidArgument,
                "--compress dgc needs --optimizer sgd:... (its momentum moves into DGC's "
                "momentum correction); got --optimizer ",
                optimizer);
  }
  std::vector<float> value(64 * 65, 0.0f), grad(64 * 65, 0.0f);
  std::vector<Param> params = {Param{TensorView::of(value.data(), 64 * 64),
                                     TensorView::of(grad.data(), 64 * 64),
                                     {64, 64},
                                     "validation.weight"},
                               Param{TensorView::of(value.data() + 64 * 64, 64),
                                     TensorView::of(grad.data() + 64 * 64, 64),
                                     {64},
                                     "validation.bias"}};
  std::vector<std::unique_ptr<Communicator>> comms = make_local_communicators(1);
  CompressionOptions options;
  options.compress = compress;
  options.feedback = feedback;
  options.momentum = 0.9;
  make_gradient_compression(*comms[0], params, options);
}

void validate_paths(const torch_adapter::TrainConfig& config) {
  std::error_code ec;
  if (!config.checkpoint_dir.empty() && fs::exists(config.checkpoint_dir, ec)) {
    TERSE_CHECK(fs::is_directory(config.checkpoint_dir, ec), InvalidArgument, "--checkpoint-dir '",
                config.checkpoint_dir, "' exists but is not a directory; pass a directory path");
  }
  if (config.resume) {
    TERSE_CHECK(fs::is_directory(config.checkpoint_dir, ec), InvalidArgument,
                "--resume: checkpoint directory '", config.checkpoint_dir,
                "' does not exist; pass the --checkpoint-dir of an earlier run or drop --resume");
  }
  if (!config.metrics_path.empty()) {
    const fs::path path(config.metrics_path);
    TERSE_CHECK(!fs::is_directory(path, ec), InvalidArgument, "--metrics '", config.metrics_path,
                "' is a directory; pass a file path such as run/metrics.jsonl");
    const fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
    TERSE_CHECK(fs::is_directory(parent, ec), InvalidArgument, "--metrics '", config.metrics_path,
                "': directory '", parent.string(), "' does not exist; create it first");
  }
}

// Whether rank 0 draws a bar redrawn with \r: TERSE_PROGRESS_TTY=1 or 0 when set, else whether
// stderr is a terminal. Under mpirun stderr is always a pipe, so `--np N` passes its own answer.
bool progress_on_tty() {
  const char* env = std::getenv(kProgressTtyEnv);
  if (env != nullptr && (std::string(env) == "1" || std::string(env) == "0")) {
    return std::string(env) == "1";
  }
  return ::isatty(STDERR_FILENO) == 1;
}

// One write per message: ranks share mpirun's stderr, and pieces written separately interleave.
void print_rank_error(const std::exception& error, int rank, int world_size) {
  std::string line = "terse: error: ";
  if (world_size > 1) line += "rank " + std::to_string(rank) + ": ";
  line += error.what();
  line += '\n';
  std::cerr << line << std::flush;
}

}  // namespace

CLI::App* add_train_command(CLI::App& app, TrainFlags& flags) {
  auto& c = flags.config;
  CLI::App* train = app.add_subcommand(
      "train",
      "Train a model on Fashion-MNIST (mlp, wide-mlp, cnn) or a byte-level language "
      "model on a text (lm), data-parallel over N ranks");
  // A repeated flag takes its last value, so scripts can append overrides to a base command.
  train->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  train
      ->add_option("--np", flags.np,
                   "Number of ranks; outside mpirun, N > 1 starts mpirun -n N itself")
      ->check(CLI::Range(1, kMaxRanks))
      ->capture_default_str();
  train
      ->add_option("--model", c.model,
                   "Model: mlp, wide-mlp (5.8 M parameters, communication-bound) or cnn on "
                   "Fashion-MNIST, lm (byte-level Transformer) on --text")
      ->check(CLI::IsMember({"mlp", "wide-mlp", "cnn", "lm"}))
      ->capture_default_str();
  train
      ->add_option("--device", c.device,
                   "Where the model, gradients and optimizer live: cpu, or cuda (rank r on GPU "
                   "local rank % GPUs; docs/training.md \"On the GPU\")")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  train
      ->add_option("--backend", c.backend,
                   "Gradient all-reduce: mpi (host memory; GPU gradients go through the host) or "
                   "nccl (GPU memory, one rank per GPU; needs --device cuda)")
      ->check(CLI::IsMember({"mpi", "nccl"}))
      ->capture_default_str();
  train
      ->add_option("--optimizer", c.optimizer,
                   "Optimizer spec NAME[:key=value,...], torch.optim option names "
                   "(e.g. adamw:lr=1e-3,weight_decay=0.01)")
      ->capture_default_str();
  train
      ->add_option("--ema", c.ema,
                   "Also keep an EMA of the weights and evaluate the test set with it each epoch: "
                   "decay=D[,warmup=true,warmup_power=P,...] (timm ModelEmaV3; docs/optimizers.md)")
      ->capture_default_str();
  train->add_option("--lr-schedule", c.lr_schedule, "Learning-rate schedule spec")
      ->capture_default_str();
  train->add_option("--epochs", c.epochs, "Epochs to train (in total, counting resumed ones)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  batch_size_option =
      train
          ->add_option("--batch-size", c.batch_size,
                       "Batch size per rank: images, or for --model lm windows (default 16)")
          ->check(CLI::Range(1, 1 << 20))
          ->capture_default_str();
  train->add_option("--seed", c.seed, "Seed of initialisation, shuffling and compression")
      ->check(kUnsignedInteger)
      ->capture_default_str();
  train->add_option("--data-dir", c.data_dir, "Directory with the Fashion-MNIST IDX files")
      ->capture_default_str();
  train
      ->add_option("--text", c.text_path,
                   "--model lm: text corpus, .gz or plain (default: the Jargon File, Debian "
                   "package jargon-text)")
      ->capture_default_str();
  train
      ->add_option("--context", c.context,
                   "--model lm: context in bytes; an example is a window of context + 1 bytes")
      ->check(CLI::Range(1, torch_adapter::TrainConfig::kMaxContext))
      ->capture_default_str();
  CLI::Option* checkpoint_dir = train->add_option("--checkpoint-dir", c.checkpoint_dir,
                                                  "Write a checkpoint here after every epoch");
  train->add_flag("--resume", c.resume, "Continue from the latest checkpoint in --checkpoint-dir")
      ->needs(checkpoint_dir);
  CLI::Option* metrics = train->add_option("--metrics", c.metrics_path,
                                           "Write JSON-lines metrics (every step, epoch)");
  train
      ->add_flag("--metrics-every-rank", c.metrics_every_rank,
                 "Every rank r > 0 also writes its own metrics, to FILE with .rank<r> before the "
                 "extension (find the rank that makes the others wait)")
      ->needs(metrics);
  train
      ->add_option("--compress", c.compress,
                   "Gradient compression: none, a compressor NAME[:key=value,...] (topk, randk, "
                   "sign, onebit, qsgd, terngrad, fp16, bf16), dgc[:...] or powersgd[:...]")
      ->capture_default_str();
  train
      ->add_option("--feedback", c.feedback,
                   "Error feedback around --compress: none, ef14, ef21 or ef21w")
      ->capture_default_str();
  train->add_option("--bucket-mb", c.bucket_mb, "Gradient bucket size in MB")
      ->check(CLI::Range(0.001, 65536.0))
      ->capture_default_str();
  train->add_option("--timeout", flags.timeout_s, "Deadline of every collective wait, seconds")
      ->check(CLI::Range(0.001, 604800.0))
      ->capture_default_str();
  train->add_option("--threads", c.threads, "Intra-op threads per rank; 0: cores / local ranks")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  train
      ->add_option("--train-limit", c.train_limit,
                   "Use only the first N training images (lm: windows); 0: all")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  train
      ->add_option("--test-limit", c.test_limit,
                   "Use only the first N test images (lm: validation windows); 0: all")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  train
      ->add_option("--eval-every", c.eval_every,
                   "Also evaluate every N steps (time-to-accuracy curves; evaluation time is not "
                   "counted as training time); 0: after each epoch only")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  train->add_flag("--quiet,-q", flags.quiet, "No progress output (the summary is still printed)");
  train->footer(
      "Exit status: 0 ok, 1 other error, 2 invalid argument, 3 corrupt data, 4 loss became "
      "NaN/Inf, 5 timeout or communication error. Details and examples: docs/cli.md");
  return train;
}

void validate_train_flags(TrainFlags& flags) {
  auto& c = flags.config;
  TERSE_CHECK(!flags.np_given || flags.np == 1 || launched_under_mpi() || mpi_available(),
              InvalidArgument, "--np ", flags.np,
              " needs MPI, but this terse was built without it; install libopenmpi-dev and "
              "rebuild, or pass --np 1");
  c.timeout = std::chrono::milliseconds(std::llround(flags.timeout_s * 1000.0));

  const bool lm = c.model == "lm";
  if (lm && batch_size_option != nullptr && batch_size_option->count() == 0) {
    c.batch_size = torch_adapter::TrainConfig::kLmDefaultBatch;
  }
  int64_t available = FashionMnist::kTrainCount;
  if (lm) {
    // Reads and checks the whole corpus (~20 ms for the Jargon File), so a missing, corrupt or
    // too short text stops here, before any rank starts.
    const TextCorpus corpus = TextCorpus::load(c.text_path, int64_t{c.context} + 1);
    available = static_cast<int64_t>(corpus.train().size()) / (int64_t{c.context} + 1);
  }
  const int64_t images = c.train_limit > 0 ? std::min(c.train_limit, available) : available;
  const int64_t global_batch = static_cast<int64_t>(c.batch_size) * flags.np;
  const char* noun = lm ? " windows" : " images";
  TERSE_CHECK(images >= global_batch, InvalidArgument, "--batch-size ", c.batch_size, " x ",
              flags.np, (flags.np == 1 ? " rank" : " ranks"), " = ", global_batch, noun,
              " per step, but only ", images, " training", noun,
              " are used: not one step per epoch; lower --batch-size", (lm ? " or --context" : ""),
              " or raise --train-limit");
  validate_optimizer(c.optimizer);
  if (!c.ema.empty()) {
    float value = 0;
    ParamEma::from_spec(c.ema, {Param{TensorView::of(&value, 1), TensorView{}, {1}, "validation"}});
  }
  validate_compression(c.compress, c.feedback, c.optimizer);
  make_lr_schedule(c.lr_schedule, static_cast<int64_t>(c.epochs) * (images / global_batch));
  if (!lm) FashionMnist::check_files(c.data_dir);
  validate_paths(c);
  torch_adapter::check_device(c);
  FaultInjection::from_env();
}

int run_train(TrainFlags& flags, const std::vector<std::string>& args) {
  const bool under_mpi = launched_under_mpi();
  if (!under_mpi) {
    // One process: errors go to main() once; nothing was launched yet.
    validate_train_flags(flags);
    if (flags.np > 1) {
      // mpirun hands the ranks a pipe for stderr; tell them whether the user sees a terminal.
      ::setenv(kProgressTtyEnv, progress_on_tty() ? "1" : "0", 1);
      prepare_rank_environment();
      const auto command = mpirun_command(flags.np, self_executable(), "train", strip_np_flag(args),
                                          ::geteuid() == 0);
      return run_and_wait(command,
                          "install Open MPI's launcher with apt-get install openmpi-bin, or pass "
                          "--np 1");
    }
  }

  std::unique_ptr<Communicator> comm = make_communicator(under_mpi ? "mpi" : "local");
  const int rank = comm->rank();
  const int world_size = comm->size();
  if (flags.np_given && flags.np != world_size) {
    // Every rank sees the same mismatch and stops here, so no rank waits for another.
    if (rank == 0) {
      std::cerr << "terse: error: --np " << flags.np << " but mpirun started " << world_size
                << " ranks; drop --np when launching with mpirun yourself" << std::endl;
    }
    return kExitInvalidArgument;
  }
  flags.np = world_size;  // validation sizes the global batch with it
  try {
    // Under mpirun each rank validates: a dataset missing on one node must end the job too.
    if (under_mpi) validate_train_flags(flags);
    comm->set_timeout(flags.config.timeout);
    ProgressObserver observer(rank, flags.quiet, progress_on_tty(), std::cerr,
                              FaultInjection::from_env());
    const torch_adapter::TrainSummary summary =
        torch_adapter::train(flags.config, *comm, &observer);
    if (rank == 0) print_summary(std::cout, flags.config, summary);
    return kExitOk;
  } catch (const std::exception& error) {
    const int code = exit_code_for(error);
    print_rank_error(error, rank, world_size);
    // The other ranks may be blocked in a collective with this one: end the whole job.
    if (world_size > 1) abort_job(code);
    return code;
  }
}

}  // namespace terse::cli
