#include "terse/torch/trainer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "terse/comm/algorithms/algorithm.h"
#include "terse/comm/nccl_communicator.h"
#include "terse/core/check.h"
#include "terse/data/sharded_sampler.h"
#include "terse/kernels/cpu_threads.h"
#include "terse/kernels/cuda_info.h"
#include "terse/optim/lr_schedule.h"
#include "terse/optim/optimizer.h"
#include "terse/optim/param_ema.h"
#include "terse/torch/grad_hooks.h"
#include "terse/torch/image_classification_workload.h"
#include "terse/torch/language_model_workload.h"
#include "terse/torch/view_of.h"
#include "terse/torch/workload.h"
#include "terse/train/checkpoint_store.h"
#include "terse/train/communicating_optimizer.h"
#include "terse/train/data_parallel.h"
#include "terse/train/gradient_compression.h"
#include "terse/train/metrics_writer.h"

namespace terse::torch_adapter {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double ratio(uint64_t dense, uint64_t sent) {
  return sent == 0 ? 1.0 : static_cast<double>(dense) / static_cast<double>(sent);
}

void validate(const TrainConfig& c) {
  TERSE_CHECK(c.epochs >= 1, InvalidArgument, "epochs must be >= 1, got ", c.epochs);
  TERSE_CHECK(c.batch_size >= 1, InvalidArgument, "batch size must be >= 1, got ", c.batch_size);
  TERSE_CHECK(std::isfinite(c.bucket_mb) && c.bucket_mb > 0, InvalidArgument,
              "bucket size must be a positive number of MB, got ", c.bucket_mb);
  TERSE_CHECK(c.train_limit >= 0 && c.test_limit >= 0, InvalidArgument,
              "train/test limits must be >= 0 (0: all), got ", c.train_limit, " and ",
              c.test_limit);
  TERSE_CHECK(c.eval_every >= 0, InvalidArgument,
              "eval_every must be >= 0 steps (0: after each epoch only), got ", c.eval_every);
  TERSE_CHECK(c.threads >= 0, InvalidArgument, "threads must be >= 0 (0: automatic), got ",
              c.threads);
  TERSE_CHECK(c.timeout.count() > 0, InvalidArgument, "timeout must be positive, got ",
              c.timeout.count(), " ms");
  TERSE_CHECK(!c.resume || !c.checkpoint_dir.empty(), InvalidArgument,
              "resume needs a checkpoint directory; pass --checkpoint-dir");
  TERSE_CHECK(c.device == "cpu" || c.device == "cuda", InvalidArgument, "unknown device '",
              c.device, "'; pass cpu or cuda");
  TERSE_CHECK(c.backend == "mpi" || c.backend == "nccl", InvalidArgument, "unknown backend '",
              c.backend, "'; pass mpi or nccl");
  TERSE_CHECK(c.backend != "nccl" || c.device == "cuda", InvalidArgument,
              "the nccl backend all-reduces GPU memory; pass --device cuda with it, or use "
              "--backend mpi on the CPU");
}

// The GPU of this rank for --device cuda: its local rank modulo the GPUs it sees (ranks that
// are threads of one process share GPU 0). Throws InvalidArgument when there is none.
c10::Device cuda_device() {
  TERSE_CHECK(CudaInfo::query().compiled, InvalidArgument,
              "--device cuda: this terse was built without CUDA (nvcc was not found or "
              "TERSE_CUDA=OFF); rebuild with nvcc on the PATH, or pass --device cpu");
  const bool torch_cuda = torch::cuda::is_available();
  const int64_t count = torch_cuda ? static_cast<int64_t>(torch::cuda::device_count()) : 0;
  TERSE_CHECK(count > 0, InvalidArgument, "--device cuda: libtorch sees no CUDA device (",
              torch_cuda ? "0 devices" : "no CUDA runtime or driver, or a CPU-only libtorch",
              "; CUDA_VISIBLE_DEVICES ",
              std::getenv("CUDA_VISIBLE_DEVICES") ? std::getenv("CUDA_VISIBLE_DEVICES") : "unset",
              "); run on a machine with an NVIDIA GPU and a CUDA libtorch, or pass --device cpu");
  const int node_rank = std::max(0, local_rank());
  return c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(node_rank % count));
}

// How many ranks of this node use each GPU (ranks that are threads of one process count once:
// they share one CUDA context).
int64_t ranks_per_gpu(const c10::Device& device) {
  if (!device.is_cuda()) return 0;
  const int64_t gpus = std::max<int64_t>(1, static_cast<int64_t>(torch::cuda::device_count()));
  return (local_rank_count() + gpus - 1) / gpus;
}

// A host copy of a parameter's values (the view of the tensor itself on the CPU); `keep` holds
// the copy alive while the view is used.
TensorView host_view_of(const at::Tensor& p, at::Tensor& keep) {
  keep = p.device().is_cpu() ? p : p.detach().cpu();
  return view_of(keep);
}

int threads_for(const TrainConfig& c) {
  if (c.threads > 0) return c.threads;
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, local_rank_count()));
}

// The parameters of a model as the engine sees them, named as in named_parameters().
std::vector<Param> params_of(torch::nn::Module& model) {
  std::vector<Param> params;
  for (const auto& item : model.named_parameters()) {
    const at::Tensor& p = item.value();
    params.push_back(Param{view_of(p), TensorView{},
                           std::vector<int64_t>(p.sizes().begin(), p.sizes().end()), item.key()});
  }
  return params;
}

json step_record(const StepMetrics& m) {
  return json{{"type", "step"},
              {"step", m.step},
              {"epoch", m.epoch},
              {"loss", m.loss},
              {"lr", m.lr},
              {"bytes_sent", m.bytes_sent},
              {"bytes_dense", m.bytes_dense},
              {"payload_bytes", m.payload_bytes},
              {"payload_dense_bytes", m.payload_dense_bytes},
              {"compression_ratio", ratio(m.payload_dense_bytes, m.payload_bytes)},
              {"wire_ratio", ratio(m.bytes_dense, m.bytes_sent)},
              {"time_compute_s", m.time_compute_s},
              {"time_comm_s", m.time_comm_s},
              {"time_wait_s", m.time_wait_s},
              {"time_compress_s", m.time_compress_s},
              {"time_optim_s", m.time_optim_s},
              {"time_step_s", m.time_step_s},
              {"train_time_s", m.train_time_s}};
}

json eval_record(const EvalMetrics& m) {
  return json{{"type", "eval"},
              {"step", m.step},
              {"epoch", m.epoch},
              {"test_loss", m.test_loss},
              {"test_accuracy", m.test_accuracy},
              {"train_time_s", m.train_time_s}};
}

json epoch_record(const EpochMetrics& m) {
  json j{{"type", "epoch"},
         {"epoch", m.epoch},
         {"step", m.step},
         {"loss", m.train_loss},
         {"test_loss", m.test_loss},
         {"test_accuracy", m.test_accuracy},
         {"bytes_sent", m.bytes_sent},
         {"bytes_dense", m.bytes_dense},
         {"payload_bytes", m.payload_bytes},
         {"payload_dense_bytes", m.payload_dense_bytes},
         {"compression_ratio", ratio(m.payload_dense_bytes, m.payload_bytes)},
         {"wire_ratio", ratio(m.bytes_dense, m.bytes_sent)},
         {"wall_s", m.wall_s},
         {"train_time_s", m.train_time_s}};
  if (m.has_ema) {
    j["ema_test_loss"] = m.ema_test_loss;
    j["ema_test_accuracy"] = m.ema_test_accuracy;
  }
  if (m.language_model) {
    j["val_loss"] = m.val_loss;
    j["perplexity"] = m.perplexity;
    j["bits_per_byte"] = m.bits_per_byte;
  }
  return j;
}

}  // namespace

std::unique_ptr<Workload> make_workload(const TrainConfig& config) {
  if (config.model == "lm") return std::make_unique<LanguageModelWorkload>(config);
  if (config.model == "mlp" || config.model == "wide-mlp" || config.model == "cnn")
    return std::make_unique<ImageClassificationWorkload>(config);
  TERSE_THROW(
      InvalidArgument, "unknown model '", config.model,
      "'; known models: mlp, wide-mlp, cnn (Fashion-MNIST), lm (byte-level language model)");
}

void check_device(const TrainConfig& config) {
  validate(config);
  if (config.device == "cuda") (void)cuda_device();
}

TrainSummary train(const TrainConfig& config, Communicator& comm, TrainObserver* observer) {
  validate(config);
  const auto t_start = Clock::now();
  const int rank = comm.rank();
  const int world = comm.size();
  comm.set_timeout(config.timeout);

  const int threads = threads_for(config);
  {
    // Process-wide in torch (it may rebuild its thread pools): ranks that are threads of one
    // process (tests) must not call it at once, and need not call it again with the same value.
    static std::mutex threads_mutex;
    const std::lock_guard<std::mutex> lock(threads_mutex);
    if (at::get_num_threads() != threads) at::set_num_threads(threads);
  }
  set_cpu_threads(threads);

  const std::unique_ptr<Workload> workload = make_workload(config);
  {
    // Seeding and initialising use torch's process-wide generator; ranks that are threads of
    // one process (tests) must not interleave there, or rank 0's initial weights would depend
    // on thread timing.
    static std::mutex init_mutex;
    std::lock_guard<std::mutex> lock(init_mutex);
    torch::manual_seed(config.seed);
    workload->build_model();
  }
  // The same initial weights as on the CPU (built there from the seed), then moved.
  const bool on_cuda = config.device == "cuda";
  const c10::Device device = on_cuda ? cuda_device() : c10::Device(c10::kCPU);
  if (on_cuda) {
    // Deterministic convolutions, so a seed gives one run and a resumed run equals the
    // uninterrupted one, as on the CPU: cuDNN's default algorithms accumulate the weight
    // gradient with atomics, and two runs of one seed ended 0.66 pp apart (docs/results.md).
    at::globalContext().setDeterministicCuDNN(true);
    at::globalContext().setBenchmarkCuDNN(false);
    workload->to(device);
  }
  torch::nn::Module& model = workload->model();
  std::vector<at::Tensor> tensors = model.parameters();

  // The gradient all-reduce's communicator: `comm`, or NCCL on this rank's GPU.
  std::unique_ptr<Communicator> nccl;
  if (config.backend == "nccl") {
    NcclOptions nccl_options;
    nccl_options.device = device.index();
    nccl = make_nccl_communicator(nccl_options);
    nccl->set_timeout(config.timeout);
  }
  DataParallel dp(nccl ? *nccl : comm, params_of(model), config.bucket_mb);
  GradHooks hooks(tensors, dp);
  OptimizerSpec spec = OptimizerSpec::parse(config.optimizer);
  std::unique_ptr<Optimizer> optimizer;
  // 1-bit Adam and its kin average their momentum themselves, compressed, inside step(); on
  // those steps the gradients stay local (DataParallel's exchange is off). With --device cuda
  // they step the GPU parameters there, over NCCL in GPU memory or over MPI staged through the
  // host.
  CommunicatingOptimizer* communicating = nullptr;
  if (is_communicating_optimizer(spec.name)) {
    TERSE_CHECK(config.compress == "none" && config.feedback == "none", InvalidArgument,
                "--optimizer ", spec.name,
                " compresses its own communication (1-bit momentum); it cannot be combined with "
                "--compress ",
                config.compress, " --feedback ", config.feedback,
                "; drop --compress/--feedback or use another optimizer");
    std::unique_ptr<CommunicatingOptimizer> built =
        make_communicating_optimizer(nccl ? *nccl : comm, spec, {ParamGroup{dp.params(), {}}});
    communicating = built.get();
    optimizer = std::move(built);
  } else {
    optimizer = make_optimizer(spec, {ParamGroup{dp.params(), {}}});
  }
  CompressionOptions compression;
  compression.compress = config.compress;
  compression.feedback = config.feedback;
  compression.seed = config.seed;
  if (compression_is_dgc(config.compress)) {
    // DGC accumulates the gradient's momentum in its own memory (momentum correction), so the
    // optimizer steps with momentum 0, as the reference's DGCSGD does for the gradient.
    TERSE_CHECK(spec.name == "sgd", InvalidArgument, "--compress dgc needs --optimizer sgd:... ",
                "(its momentum moves into DGC's momentum correction); got --optimizer ",
                config.optimizer);
    const OptionMap resolved = optimizer->options(0);
    compression.momentum = std::stod(resolved.at("momentum"));
    compression.nesterov = resolved.at("nesterov") == "true";
    spec.options["momentum"] = "0";
    spec.options["nesterov"] = "false";
    spec.options.erase("dampening");
    optimizer = make_optimizer(spec, {ParamGroup{dp.params(), {}}});
  }
  // Updated after every step on every rank alike (the parameters are the same everywhere), where
  // the parameters are: on the GPU its passes follow the step on the default stream.
  std::optional<ParamEma> ema;
  if (!config.ema.empty()) ema.emplace(ParamEma::from_spec(config.ema, dp.params()));
  // Collective: every rank checks here that all built the same exchange.
  // DGC and PowerSGD run where the gradients are (on the GPU: their memory and passes there) when
  // this rank has its GPU to itself; the other methods, and these when ranks share a GPU, on the
  // host mirror of the buckets. Ranks that share a GPU wait for each other's time slices at every
  // one of the GPU path's small synchronous calls: at 8 ranks on one H100 it took 37.6 ms per step
  // against 4.0 ms on the host (docs/results.md, "Training on one GPU").
  const bool exchange_on_gpu =
      on_cuda && gradient_compression_on_gpu(compression) && ranks_per_gpu(device) == 1;
  dp.set_compression(make_gradient_compression(
      comm, exchange_on_gpu ? dp.params() : dp.exchange_params(), compression));
  GradientCompression* const exchange = dp.compression();
  uint64_t dense_payload_bytes = 0;  // what a dense fp32 all-reduce of all gradients hands over
  for (const Param& p : dp.params())
    dense_payload_bytes += 4 * static_cast<uint64_t>(p.value.numel);
  const uint64_t dense_wire_bytes = ring_all_reduce_bytes(dense_payload_bytes, world);

  const ShardedSampler sampler(workload->num_examples(), rank, world, config.seed);
  const int64_t steps_per_epoch = sampler.num_batches(config.batch_size);
  TERSE_CHECK(steps_per_epoch >= 1, InvalidArgument,
              "no training step per epoch: ", workload->num_examples(), " ",
              workload->example_noun(), " over ", world,
              " ranks leave none for some rank; use more ", workload->example_noun(),
              " or fewer ranks");
  const LrSchedule schedule = make_lr_schedule(config.lr_schedule, steps_per_epoch * config.epochs);

  TrainSummary summary;
  summary.world_size = world;
  summary.device = device.str();
  summary.backend = config.backend;
  for (const Param& p : dp.params()) summary.parameters += p.value.numel;

  // What must match for a checkpoint to continue this run: the identity of the run first (so
  // its error comes first), then what fixes the step numbering.
  json identity = {{"model", config.model},
                   {"world_size", world},
                   {"optimizer", optimizer->name()},
                   {"exchange", exchange ? exchange->describe() : "dense"}};
  for (const auto& [key, value] : workload->identity()) identity[key] = value;
  const json numbering = {{"batch_size", config.batch_size}, {"steps_per_epoch", steps_per_epoch}};
  std::optional<CheckpointStore> store;
  if (!config.checkpoint_dir.empty()) store.emplace(config.checkpoint_dir);

  int start_epoch = 0;      // epochs already done
  int64_t step = 0;         // optimizer steps already done
  double train_time_s = 0;  // wall time of those steps
  if (config.resume) {
    const std::optional<std::string> latest = store->latest();
    TERSE_CHECK(latest.has_value(), InvalidArgument, "nothing to resume: ", config.checkpoint_dir,
                " holds no committed checkpoint; start without --resume");
    // Rank 0's file exists whatever the rank count was, so every rank checks the run's identity
    // against it first and a different --np is reported as such, not as a missing file.
    check_compatible(store->load_rank_meta(*latest, 0), identity);
    const json meta = store->load_rank_meta(*latest, rank);
    check_compatible(meta, identity);
    check_compatible(meta, numbering);
    const Checkpoint ckpt = store->load_rank(*latest, rank);
    check_compatible(ckpt.meta, identity);
    check_compatible(ckpt.meta, numbering);
    const auto section = [&](const char* name) -> const StateDict& {
      const auto it = ckpt.sections.find(name);
      TERSE_CHECK(it != ckpt.sections.end(), CorruptData, "checkpoint ", *latest, " of rank ", rank,
                  " has no '", name, "' section; it was not written by terse train");
      return it->second;
    };
    const StateDict& model_state = section("model");
    for (size_t i = 0; i < dp.params().size(); ++i) {
      const Param& p = dp.params()[i];
      at::Tensor host;
      model_state.tensor(p.name).copy_to(host_view_of(tensors[i], host), p.name);
      if (on_cuda) tensors[i].detach().copy_(host);
    }
    optimizer->load_state_dict(section("optimizer"));
    if (exchange) exchange->load_state_dict(section("compression"));
    if (ema) {
      TERSE_CHECK(ckpt.sections.count("ema") == 1, InvalidArgument, "checkpoint ", *latest,
                  " was written without --ema; resume without --ema or start without --resume");
      ema->load_state_dict(section("ema"));
    }
    const StateDict& trainer_state = section("trainer");
    start_epoch = static_cast<int>(trainer_state.int_value("epoch"));
    step = trainer_state.int_value("step");
    summary.bytes_sent = static_cast<uint64_t>(trainer_state.int_value("bytes_sent"));
    summary.bytes_dense = static_cast<uint64_t>(trainer_state.int_value("bytes_dense"));
    summary.payload_bytes = static_cast<uint64_t>(trainer_state.int_value("payload_bytes"));
    summary.payload_dense_bytes =
        static_cast<uint64_t>(trainer_state.int_value("payload_dense_bytes"));
    summary.final_train_loss = trainer_state.float_value("train_loss");
    summary.final_test_loss = trainer_state.float_value("test_loss");
    summary.final_test_accuracy = trainer_state.float_value("test_accuracy");
    // Absent from checkpoints written before time-to-accuracy was tracked: count from 0 then.
    if (ema) {
      summary.final_ema_test_loss = trainer_state.float_value("ema_test_loss");
      summary.final_ema_test_accuracy = trainer_state.float_value("ema_test_accuracy");
    }
    const auto tt = trainer_state.floats.find("train_time_s");
    if (tt != trainer_state.floats.end()) train_time_s = tt->second;
    summary.resumed_from_epoch = start_epoch;
    TERSE_CHECK(step == int64_t{start_epoch} * steps_per_epoch, CorruptData, "checkpoint ", *latest,
                " records step ", step, " at the end of epoch ", start_epoch,
                ", which does not fit ", steps_per_epoch, " steps per epoch");
  }
  // From rank 0, so ranks agree exactly even if they started differently.
  dp.broadcast_parameters();

  // The step's loss all-reduce writes into `value` while backward and the exchange run. An error
  // that unwinds while it is pending leaves the double allocated: MPI may still complete the
  // request while the job aborts, and must not write into freed memory.
  struct LossSum {
    std::unique_ptr<double> value = std::make_unique<double>(0.0);
    std::unique_ptr<Work> pending;
    LossSum() = default;
    LossSum(const LossSum&) = delete;
    LossSum& operator=(const LossSum&) = delete;
    ~LossSum() {
      if (pending) (void)value.release();
    }
  } step_loss;
  std::optional<MetricsWriter> metrics;
  // Rank 0's file holds the run; with metrics_every_rank the others write theirs, so a
  // straggler shows in its own step times (rank 0's wait says only that some rank was late).
  if (!config.metrics_path.empty() && (rank == 0 || config.metrics_every_rank))
    metrics.emplace(MetricsWriter::rank_path(config.metrics_path, rank), config.resume);
  if (observer) observer->on_start(config, steps_per_epoch, world);

  for (int epoch = start_epoch + 1; epoch <= config.epochs; ++epoch) {
    const auto t_epoch = Clock::now();
    const std::vector<int64_t> order = sampler.epoch_indices(epoch - 1);
    EpochMetrics em;
    em.epoch = epoch;
    double loss_sum = 0;
    for (int64_t b = 0; b < steps_per_epoch; ++b) {
      const auto t0 = Clock::now();
      const auto [begin, end] = sampler.batch_range(b, config.batch_size);
      const bool exchange_on = !communicating || communicating->wants_averaged_gradients();
      if (communicating) dp.set_exchange_enabled(exchange_on);
      hooks.clear_torch_grads();
      const at::Tensor loss = workload->loss(order.data() + begin, end - begin);
      // The mean loss over ranks; a NaN or Inf on any rank reaches all, so all stop together
      // (checked below, before the optimizer step). Its all-reduce starts before backward and is
      // driven by the exchange's own MPI calls: waited for after the exchange, it no longer adds
      // a synchronisation of its own to every step (a blocking one here cost its rounds of
      // latency plus the spread of the ranks' decode times, ~0.5-1 ms of DGC's 5-10 ms comm at
      // 8 ranks on 1 Gbit/s). Its wait still counts as communication.
      *step_loss.value = loss.item<double>() / world;
      step_loss.pending =
          comm.all_reduce_async(TensorView::of(step_loss.value.get(), 1), ReduceOp::kSum);
      loss.backward();  // hooks fill the buckets; their all-reduces start as they fill
      CommStats cs = dp.finish();
      const double t_forward_backward = seconds_since(t0);
      const auto t_loss = Clock::now();
      step_loss.pending->wait(comm.timeout());
      step_loss.pending.reset();
      const double loss_value = *step_loss.value;
      const double loss_comm_s = seconds_since(t_loss);
      if (!std::isfinite(loss_value)) {
        std::string kept = "no checkpoint was written (pass a checkpoint directory to keep one)";
        if (store) {
          const std::optional<std::string> last = store->latest();
          kept = last ? "the last good checkpoint (" + *last + " in " + config.checkpoint_dir +
                            ") is kept and was not overwritten"
                      : "no checkpoint was committed yet";
        }
        TERSE_THROW(NumericalError, "training diverged: the loss is ", loss_value, " at step ",
                    step + 1, " (epoch ", epoch, ", lr ", optimizer->lr(0), "); ", kept,
                    "; lower the learning rate or add a warm-up and resume or restart");
      }

      const auto t_optim = Clock::now();
      optimizer->scale_lr(schedule.factor(step));
      optimizer->step();
      // The step is enqueued on the GPU: wait for it, so its time is counted as optimizer time.
      if (on_cuda) torch::cuda::synchronize(device.index());
      if (ema) ema->update();
      ++step;
      double optim_comm_s = 0;      // a communicating optimizer's collective inside step()
      double optim_compress_s = 0;  // and its compression work
      double optim_wait_s = 0;      // and, of its communication, the wait for the slowest rank
      if (communicating) {
        const CommStats oc = communicating->last_step_comm();
        cs.bytes_sent += oc.bytes_sent;
        cs.payload_bytes += oc.payload_bytes;
        optim_comm_s = oc.time_comm_s;
        optim_compress_s = oc.time_compress_s;
        optim_wait_s = oc.time_wait_s;
        // The reference is a dense fp32 all-reduce on every step, also on 0/1 Adam's local
        // steps that send nothing (the optimizer reports zeros there).
        cs.bytes_dense = dense_wire_bytes;
        cs.payload_dense_bytes = dense_payload_bytes;
      }

      StepMetrics sm;
      sm.step = step;
      sm.epoch = epoch;
      sm.step_in_epoch = b + 1;
      sm.steps_per_epoch = steps_per_epoch;
      sm.loss = loss_value;
      sm.lr = optimizer->lr(0);
      sm.bytes_sent = cs.bytes_sent;
      sm.bytes_dense = cs.bytes_dense;
      sm.payload_bytes = cs.payload_bytes;
      sm.payload_dense_bytes = cs.payload_dense_bytes;
      sm.time_comm_s = cs.time_comm_s + optim_comm_s + loss_comm_s;
      sm.time_compress_s = cs.time_compress_s + optim_compress_s;
      // Without a gradient exchange (a communicating optimizer's compressed step) the loss
      // all-reduce is the step's first synchronisation: it returns when the slowest rank has
      // finished backward, so its time is waiting, not transfer. After an exchange the ranks
      // were just synchronised and it stays transfer.
      sm.time_wait_s = cs.time_wait_s + optim_wait_s + (exchange_on ? 0.0 : loss_comm_s);
      sm.time_compute_s = std::max(0.0, t_forward_backward - cs.time_comm_s - cs.time_compress_s);
      sm.time_optim_s = std::max(0.0, seconds_since(t_optim) - optim_comm_s - optim_compress_s);
      sm.time_step_s = seconds_since(t0);
      train_time_s += sm.time_step_s;
      sm.train_time_s = train_time_s;
      loss_sum += loss_value;
      em.bytes_sent += cs.bytes_sent;
      em.bytes_dense += cs.bytes_dense;
      em.payload_bytes += cs.payload_bytes;
      em.payload_dense_bytes += cs.payload_dense_bytes;
      summary.time_compute_s += sm.time_compute_s;
      summary.time_compress_s += sm.time_compress_s;
      summary.time_comm_s += sm.time_comm_s;
      summary.time_optim_s += sm.time_optim_s;
      if (metrics) metrics->write(step_record(sm));
      if (observer) observer->on_step(sm);
      if (config.eval_every > 0 && step % config.eval_every == 0 && b + 1 < steps_per_epoch) {
        const Evaluation mid = workload->evaluate(comm);
        const EvalMetrics evm{step, epoch, mid.loss, mid.accuracy, train_time_s};
        if (metrics) metrics->write(eval_record(evm));
        if (observer) observer->on_eval(evm);
      }
    }
    const Evaluation ev = workload->evaluate(comm);
    if (config.eval_every > 0) {  // the curve's point at the epoch's end
      const EvalMetrics evm{step, epoch, ev.loss, ev.accuracy, train_time_s};
      if (metrics) metrics->write(eval_record(evm));
      if (observer) observer->on_eval(evm);
    }
    if (ema) {  // the same test set with the EMA weights, then the raw weights back
      ema->load_into_params();
      const Evaluation ev_ema = workload->evaluate(comm);
      ema->restore_params();
      em.has_ema = true;
      em.ema_test_loss = ev_ema.loss;
      em.ema_test_accuracy = ev_ema.accuracy;
      summary.final_ema_test_loss = ev_ema.loss;
      summary.final_ema_test_accuracy = ev_ema.accuracy;
    }
    em.step = step;
    em.train_loss = loss_sum / static_cast<double>(steps_per_epoch);
    em.test_loss = ev.loss;
    em.test_accuracy = ev.accuracy;
    if (workload->is_language_model()) {
      em.language_model = true;
      em.val_loss = ev.loss;
      em.perplexity = std::exp(ev.loss);
      em.bits_per_byte = ev.loss / std::log(2.0);
    }
    summary.bytes_sent += em.bytes_sent;
    summary.bytes_dense += em.bytes_dense;
    summary.payload_bytes += em.payload_bytes;
    summary.payload_dense_bytes += em.payload_dense_bytes;
    summary.final_train_loss = em.train_loss;
    summary.final_test_loss = em.test_loss;
    summary.final_test_accuracy = em.test_accuracy;

    if (store) {
      Checkpoint ckpt;
      ckpt.meta = identity;
      ckpt.meta.update(numbering);
      ckpt.meta["rank"] = rank;
      ckpt.meta["epoch"] = epoch;
      ckpt.meta["step"] = step;
      ckpt.meta["seed"] = config.seed;
      ckpt.meta["optimizer_spec"] = config.optimizer;
      ckpt.meta["lr_schedule"] = config.lr_schedule;
      ckpt.meta["compress"] = config.compress;
      ckpt.meta["feedback"] = config.feedback;
      StateDict& model_state = ckpt.sections["model"];
      for (size_t i = 0; i < dp.params().size(); ++i) {
        const Param& p = dp.params()[i];
        at::Tensor host;
        model_state.tensors[p.name] = StateTensor::copy_of(host_view_of(tensors[i], host), p.shape);
      }
      ckpt.sections["optimizer"] = optimizer->state_dict();
      if (exchange) ckpt.sections["compression"] = exchange->state_dict();
      if (ema) {
        ckpt.meta["ema"] = config.ema;
        ckpt.sections["ema"] = ema->state_dict();
      }
      StateDict& trainer_state = ckpt.sections["trainer"];
      trainer_state.ints["epoch"] = epoch;
      trainer_state.ints["step"] = step;
      trainer_state.ints["bytes_sent"] = static_cast<int64_t>(summary.bytes_sent);
      trainer_state.ints["bytes_dense"] = static_cast<int64_t>(summary.bytes_dense);
      trainer_state.ints["payload_bytes"] = static_cast<int64_t>(summary.payload_bytes);
      trainer_state.ints["payload_dense_bytes"] = static_cast<int64_t>(summary.payload_dense_bytes);
      trainer_state.floats["train_loss"] = em.train_loss;
      trainer_state.floats["test_loss"] = em.test_loss;
      trainer_state.floats["test_accuracy"] = em.test_accuracy;
      trainer_state.floats["train_time_s"] = train_time_s;
      if (ema) {
        trainer_state.floats["ema_test_loss"] = em.ema_test_loss;
        trainer_state.floats["ema_test_accuracy"] = em.ema_test_accuracy;
      }
      store->save_rank(epoch, rank, ckpt);
      comm.barrier();  // every rank's file is on disk before LATEST names the epoch
      if (rank == 0) store->commit(epoch);
    }
    em.wall_s = seconds_since(t_epoch);
    em.train_time_s = train_time_s;
    if (metrics) metrics->write(epoch_record(em));
    if (observer) observer->on_epoch(em);
  }

  if (workload->is_language_model()) {
    // From the last test loss, so a run resumed after its last epoch reports it too.
    summary.language_model = true;
    summary.final_val_loss = summary.final_test_loss;
    summary.final_perplexity = std::exp(summary.final_test_loss);
    summary.final_bits_per_byte = summary.final_test_loss / std::log(2.0);
  }
  summary.epochs_run = std::max(start_epoch, config.epochs);
  summary.steps = step;
  summary.optimizer_state_bytes = optimizer->state_bytes();
  if (ema) {
    summary.has_ema = true;
    summary.ema_state_bytes = ema->state_bytes();
  }
  if (exchange) {
    summary.compression_state_bytes = exchange->state_bytes();
    summary.exchange = exchange->describe();
  }
  summary.wall_s = seconds_since(t_start);
  return summary;
}

}  // namespace terse::torch_adapter
