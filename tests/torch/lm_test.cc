// The byte-level language-model workload ("lm"): the ByteTransformer itself, and training it
// through train() on a generated text over threads-as-ranks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "../parity/gpu_skip.h"
#include "terse/comm/local_communicator.h"
#include "terse/core/error.h"
#include "terse/core/remove_tree.h"
#include "terse/torch/byte_transformer.h"
#include "terse/torch/language_model_workload.h"
#include "terse/torch/trainer.h"
#include "terse/train/checkpoint_store.h"
#include "terse/train/metrics_writer.h"
#include "trainer_test_util.h"

namespace terse::torch_adapter {
namespace {

using namespace trainer_test;  // NOLINT(build/namespaces): the helpers of trainer_test_util.h

std::string scratch(const std::string& name) { return trainer_test::scratch(name, "lm"); }

// ~30 KB of sentences drawn from a small vocabulary by a fixed LCG: structure a model can learn
// quickly (words, spaces, full stops), with real entropy (the word order is random).
std::string generated_text() {
  const char* words[] = {"the", "hacker", "wrote", "a",   "kludge", "for",  "fun",
                         "and", "then",   "it",    "ran", "on",     "unix", "machine"};
  uint32_t state = 12345;
  std::string text;
  while (text.size() < 30000) {
    const int n = 4 + static_cast<int>((state >> 16) % 5);
    for (int i = 0; i < n; ++i) {
      state = state * 1664525u + 1013904223u;
      text += words[(state >> 16) % 14];
      text += i + 1 < n ? " " : ". ";
    }
  }
  return text;
}

std::string text_file() {
  static const std::string path = [] {
    // One file per test process: ctest runs the cases as parallel processes, and scratch()
    // clears its directory, so a shared file could be truncated while another case reads it.
    const std::string p = scratch("text-" + std::to_string(::getpid())) + "/text.txt";
    std::ofstream(p) << generated_text();
    return p;
  }();
  return path;
}

// Entropy (nats) of the byte frequencies of `text`: what a unigram model achieves at best.
double unigram_entropy(const std::string& text) {
  double counts[256] = {};
  for (const char ch : text) counts[static_cast<uint8_t>(ch)] += 1;
  double h = 0;
  for (const double c : counts) {
    if (c > 0)
      h -= c / static_cast<double>(text.size()) * std::log(c / static_cast<double>(text.size()));
  }
  return h;
}

TrainConfig lm_config() {
  TrainConfig c;
  c.model = "lm";
  c.text_path = text_file();
  c.context = 16;
  c.optimizer = "adam:lr=0.003";
  c.lr_schedule = "step:step_size=100,gamma=0.5";  // cosine would depend on the epochs
  c.epochs = 2;
  c.batch_size = 32;
  c.seed = 3;
  c.threads = 1;
  c.bucket_mb = 0.25;
  return c;
}

TEST(ByteTransformer, ShapesParametersAndCausality) {
  torch::manual_seed(1);
  ByteTransformerOptions o;
  o.d_model = 32;
  o.heads = 4;
  o.layers = 2;
  o.context = 8;
  ByteTransformer m(o);
  const int64_t d = 32;
  const int64_t per_block =
      2 * (2 * d) + (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d);
  int64_t n = 0;
  for (const auto& p : m->parameters()) n += p.numel();
  EXPECT_EQ(n, 256 * d + 8 * d + 2 * per_block + 2 * d + (d * 256 + 256));

  at::Tensor x = at::randint(0, 256, {3, 8}, at::kLong);
  const at::Tensor y = m->forward(x);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{3, 8, 256}));
  // Changing byte 5 changes no logits before position 5, and does change position 5's.
  at::Tensor x2 = x.clone();
  x2.index_put_({0, 5}, (x.index({0, 5}).item<int64_t>() + 1) % 256);
  const at::Tensor y2 = m->forward(x2);
  EXPECT_TRUE(y2.slice(1, 0, 5).equal(y.slice(1, 0, 5)));
  EXPECT_FALSE(y2.slice(1, 5, 6).equal(y.slice(1, 5, 6)));
  // Shorter inputs use the first rows of the position table: a prefix gives the same logits.
  EXPECT_TRUE(at::allclose(m->forward(x.slice(1, 0, 4)), y.slice(1, 0, 4), 1e-5, 1e-6));
  EXPECT_THROW(m->forward(at::zeros({1, 9}, at::kLong)), InvalidArgument);
  o.heads = 5;
  EXPECT_THROW(ByteTransformer{o}, InvalidArgument);
}

TEST(LanguageModelWorkload, WindowsAndLimits) {
  TrainConfig c = lm_config();
  const LanguageModelWorkload w(c);
  const int64_t size = static_cast<int64_t>(generated_text().size());
  EXPECT_EQ(w.num_examples(), size * 9 / 10 / 17);
  EXPECT_EQ(w.validation_windows(), (size - size * 9 / 10) / 17);
  c.train_limit = 100000;
  EXPECT_THROW(LanguageModelWorkload{c}, InvalidArgument);
  c.train_limit = 0;
  c.text_path = "/nonexistent/text.gz";
  EXPECT_THROW(LanguageModelWorkload{c}, InvalidArgument);
  // The CLI's default --text is the data layer's default corpus.
  EXPECT_EQ(TrainConfig{}.text_path, std::string(TextCorpus::kDefaultPath));
}

TEST(LmTrainer, LearnsOnTwoRanks) {
  TrainConfig c = lm_config();
  c.metrics_path = scratch("learns") + "/m.jsonl";
  const RunResult r = run(c, 2);
  const int64_t windows = static_cast<int64_t>(generated_text().size()) * 9 / 10 / 17;
  ASSERT_EQ(r.rank0.steps_per_epoch, (windows / 2 + 31) / 32);
  ASSERT_EQ(r.rank0.epochs.size(), 2u);
  double last = 0;
  for (size_t i = 0; i < 4; ++i) last += r.rank0.steps[r.rank0.steps.size() - 1 - i].loss / 4;
  const double first = r.rank0.steps[0].loss;
  EXPECT_NEAR(first, std::log(256.0), 0.3);  // uniform next-byte guesses at the start
  EXPECT_LT(last, 0.5 * first) << first << " -> " << last;
  // Better than the best model without context (the byte frequencies).
  const double unigram = unigram_entropy(generated_text());
  EXPECT_LT(r.summary.final_val_loss, unigram - 0.3) << "unigram entropy " << unigram;
  EXPECT_TRUE(r.summary.language_model);
  EXPECT_DOUBLE_EQ(r.summary.final_val_loss, r.summary.final_test_loss);
  EXPECT_DOUBLE_EQ(r.summary.final_perplexity, std::exp(r.summary.final_val_loss));
  EXPECT_DOUBLE_EQ(r.summary.final_bits_per_byte, r.summary.final_val_loss / std::log(2.0));
  EXPECT_GT(r.summary.final_test_accuracy, 0.3);  // next-byte accuracy

  const std::vector<nlohmann::json> lines = MetricsWriter::read(c.metrics_path);
  const nlohmann::json& epoch = lines.back();
  ASSERT_EQ(epoch["type"], "epoch");
  EXPECT_DOUBLE_EQ(epoch["val_loss"].get<double>(), r.summary.final_val_loss);
  EXPECT_DOUBLE_EQ(epoch["perplexity"].get<double>(), r.summary.final_perplexity);
  EXPECT_DOUBLE_EQ(epoch["bits_per_byte"].get<double>(), r.summary.final_bits_per_byte);
  EXPECT_DOUBLE_EQ(epoch["test_loss"].get<double>(), r.summary.final_val_loss);
}

TEST(LmTrainer, GpuRunMatchesTheCpuRun) {
  TERSE_SKIP_WITHOUT_GPU();
  expect_close_runs(lm_config(), 2);
}

TEST(LmTrainer, ResumeIsExact) {
  TrainConfig c = lm_config();
  c.train_limit = 320;  // 5 steps per epoch: exactness needs no long run
  c.test_limit = 64;
  const ResumePair p = run_straight_and_resumed(c, "lm", 2, "lm");
  const TrainConfig& straight = p.straight;
  const TrainConfig& first = p.first;
  const RunResult& full = p.full;
  const RunResult& resumed = p.resumed;

  EXPECT_EQ(resumed.summary.resumed_from_epoch, 1);
  EXPECT_EQ(deterministic(first.metrics_path), deterministic(straight.metrics_path));
  EXPECT_EQ(resumed.summary.final_val_loss, full.summary.final_val_loss);
  EXPECT_EQ(resumed.summary.final_train_loss, full.summary.final_train_loss);
  CheckpointStore a(straight.checkpoint_dir), b(first.checkpoint_dir);
  const Checkpoint ca = a.load_rank(a.latest().value(), 1), cb = b.load_rank(b.latest().value(), 1);
  EXPECT_EQ(ca.meta["context"], 16);
  EXPECT_TRUE(ca.sections.at("model") == cb.sections.at("model"));
  EXPECT_TRUE(ca.sections.at("optimizer") == cb.sections.at("optimizer"));

  // Another context is another run: refused, naming the field.
  TrainConfig other = first;
  other.resume = true;
  other.epochs = 3;
  other.context = 8;
  try {
    run(other, 2);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("context"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace terse::torch_adapter
