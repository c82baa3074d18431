#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace terse::torch_adapter {

// Everything `terse train` needs, filled by the CLI (apps/terse) and consumed by train().
struct TrainConfig {
  std::string model = "cnn";  // "mlp" | "wide-mlp" | "cnn" | "lm"
  // Where the model, the gradient buckets and the optimizer live: "cpu" or "cuda" (each rank on
  // GPU local_rank % device count). On "cuda" the gradient all-reduce runs over `backend`:
  // "mpi" (through host memory; the communicator given to train()) or "nccl" (GPU memory, one
  // rank per GPU). Control messages (the loss, evaluations, barriers) and compressed exchanges
  // always use the communicator given to train().
  std::string device = "cpu";
  std::string backend = "mpi";
  std::string optimizer = "sgd:lr=0.1,momentum=0.9";  // OptimizerSpec text
  // LrSchedule spec text. Cosine decay over the whole run by default: the standard recipe, and
  // with a constant lr the last epochs of SGD-M are noisy (docs/results.md measures both).
  std::string lr_schedule = "cosine";
  int epochs = 5;
  int batch_size = 64;  // per rank
  // The CLI's --batch-size for "lm" when none is given: windows per rank per step.
  static constexpr int kLmDefaultBatch = 16;
  uint64_t seed = 0;
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  // "lm" only: the text corpus (terse/data/text_corpus.h; .gz or plain) and the context in bytes
  // (a training example is a window of context + 1 bytes).
  std::string text_path = "/usr/share/doc/jargon-text/jargon.txt.gz";
  int context = 64;
  static constexpr int kMaxContext = 1024;
  std::string checkpoint_dir;       // empty: no checkpoints
  bool resume = false;              // continue from checkpoint_dir's latest checkpoint
  std::string metrics_path;         // JSON lines; empty: none
  bool metrics_every_rank = false;  // every rank writes MetricsWriter::rank_path(metrics_path, r)
  double bucket_mb = 25.0;          // gradient bucket size
  std::chrono::milliseconds timeout{60000};  // every collective wait
  // Use only the first N training / test images ("lm": training / validation windows); 0: all.
  int64_t train_limit = 0;
  int64_t test_limit = 0;
  int threads = 0;  // intra-op threads per rank; 0: cores / local ranks
  // Evaluate every N optimizer steps as well as after each epoch (for time-to-accuracy
  // curves); 0: after each epoch only. Evaluation time is not training time.
  int64_t eval_every = 0;
  // Gradient exchange (terse/train/gradient_compression.h): "none" (dense all-reduce), a
  // compressor spec ("topk:density=0.01"), "dgc:..." or "powersgd:...", and the error-feedback
  // policy around a compressor: none | ef14 | ef21 | ef21w.
  std::string compress = "none";
  std::string feedback = "none";
  // Parameter EMA (terse/optim/param_ema.h spec, e.g. "decay=0.999,warmup=true"), updated after
  // every step; each epoch also evaluates the test set with the EMA weights. Empty: none.
  std::string ema;
};

// One optimizer step, as reported to observers and written to the metrics file.
struct StepMetrics {
  int64_t step = 0;  // global, 1-based
  int epoch = 0;     // 1-based
  int64_t step_in_epoch = 0;
  int64_t steps_per_epoch = 0;
  double loss = 0;  // mean over ranks
  double lr = 0;
  uint64_t bytes_sent = 0;   // wire bytes sent by this rank in this step (comm_stats.h)
  uint64_t bytes_dense = 0;  // wire bytes a dense fp32 all-reduce would have sent, per rank
  uint64_t payload_bytes = 0, payload_dense_bytes = 0;  // this rank's message vs dense fp32
  double time_compute_s = 0, time_comm_s = 0, time_optim_s = 0, time_compress_s = 0;
  double time_step_s = 0;  // wall time of this step
  // Of time_comm_s: waiting for the slowest rank in the exchange's first collective
  // (CommStats::time_wait_s; 0 on the dense path).
  double time_wait_s = 0;
  // Wall time of all training steps so far (resumed runs included), without evaluations and
  // checkpoints: the clock of time-to-accuracy.
  double train_time_s = 0;
};

// An evaluation on the test (lm: validation) set, after `step` steps.
struct EvalMetrics {
  int64_t step = 0;
  int epoch = 0;
  double test_loss = 0;
  double test_accuracy = 0;
  double train_time_s = 0;  // as in StepMetrics, at this step
};

struct EpochMetrics {
  int epoch = 0;
  int64_t step = 0;
  double train_loss = 0;
  double test_loss = 0;
  double test_accuracy = 0;                  // in [0, 1]
  double wall_s = 0;                         // this epoch
  double train_time_s = 0;                   // as in StepMetrics, at the end of this epoch
  uint64_t bytes_sent = 0, bytes_dense = 0;  // this epoch, per rank
  uint64_t payload_bytes = 0, payload_dense_bytes = 0;
  // "lm" only (language_model): validation cross-entropy per byte in nats (= test_loss),
  // exp(val_loss) and val_loss / ln 2. test_accuracy is then the next-byte accuracy.
  bool language_model = false;
  double val_loss = 0, perplexity = 0, bits_per_byte = 0;
  // With an EMA (TrainConfig::ema): the test (lm: validation) set with the EMA weights.
  bool has_ema = false;
  double ema_test_loss = 0, ema_test_accuracy = 0;
};

struct TrainSummary {
  int world_size = 0;
  std::string device = "cpu";   // "cpu" or "cuda:i" (this rank's)
  std::string backend = "mpi";  // the gradient all-reduce's (TrainConfig::backend)
  int epochs_run = 0;
  int64_t steps = 0;
  double final_test_accuracy = 0, final_test_loss = 0, final_train_loss = 0;
  double wall_s = 0;
  uint64_t bytes_sent = 0, bytes_dense = 0;
  uint64_t payload_bytes = 0, payload_dense_bytes = 0;
  double time_compute_s = 0, time_comm_s = 0, time_optim_s = 0, time_compress_s = 0;
  size_t optimizer_state_bytes = 0;
  size_t compression_state_bytes = 0;
  std::string exchange = "dense fp32 all-reduce";  // GradientCompression::describe()
  int64_t parameters = 0;
  int resumed_from_epoch = 0;  // 0: fresh start
  // "lm" only, as in EpochMetrics, of the last epoch.
  bool language_model = false;
  double final_val_loss = 0, final_perplexity = 0, final_bits_per_byte = 0;
  // With an EMA, as in EpochMetrics, of the last epoch, and the EMA's memory.
  bool has_ema = false;
  double final_ema_test_loss = 0, final_ema_test_accuracy = 0;
  size_t ema_state_bytes = 0;
};

// Receives progress on every rank; the CLI prints on rank 0 only.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  virtual void on_start(const TrainConfig&, int64_t /*steps_per_epoch*/, int /*world_size*/) {}
  virtual void on_step(const StepMetrics&) {}
  virtual void on_eval(const EvalMetrics&) {}
  virtual void on_epoch(const EpochMetrics&) {}
};

}  // namespace terse::torch_adapter
