#include "terse/train/checkpoint.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "terse/core/error.h"
#include "terse/train/checkpoint_store.h"

namespace terse {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

StateTensor f32_tensor(std::vector<int64_t> shape, float start) {
  StateTensor t;
  t.dtype = DType::kF32;
  t.shape = std::move(shape);
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  t.bytes.resize(static_cast<size_t>(n) * 4);
  for (int64_t i = 0; i < n; ++i) {
    const float v = start + static_cast<float>(i) * 0.5f;
    std::memcpy(t.bytes.data() + i * 4, &v, 4);
  }
  return t;
}

Checkpoint sample(int rank = 0, int world = 2, int epoch = 3) {
  Checkpoint c;
  c.meta = {{"model", "cnn"},
            {"world_size", world},
            {"rank", rank},
            {"epoch", epoch},
            {"step", 2811},
            {"seed", 42},
            {"optimizer", "sgd:lr=0.1,momentum=0.9"}};
  StateDict& model = c.sections["model"];
  model.tensors["fc.weight"] = f32_tensor({3, 5}, 1.0f);
  model.tensors["fc.bias"] = f32_tensor({3}, -2.0f);
  StateTensor h;
  h.dtype = DType::kBF16;
  h.shape = {2, 2};
  h.bytes = {1, 2, 3, 4, 5, 6, 7, 8};
  model.tensors["half"] = h;
  StateTensor empty;
  empty.dtype = DType::kI64;
  empty.shape = {0};
  model.tensors["empty"] = empty;
  StateDict& opt = c.sections["optimizer"];
  opt.tensors["momentum_buffer.0"] = f32_tensor({3, 5}, 0.25f);
  opt.ints["step"] = 2811;
  opt.ints["big"] = std::numeric_limits<int64_t>::min();
  opt.floats["lr"] = 0.1;
  opt.floats["third"] = 1.0 / 3.0;
  opt.floats["neg_zero"] = -0.0;
  opt.floats["inf"] = std::numeric_limits<double>::infinity();
  opt.floats["nan"] = std::numeric_limits<double>::quiet_NaN();
  opt.strings["name"] = "sgd";
  c.sections["trainer"].ints["rng_offset"] = 123456789012345;
  c.sections["empty_section"];
  return c;
}

template <typename F>
std::string corrupt_message(F&& f) {
  try {
    f();
  } catch (const CorruptData& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected CorruptData, got: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected CorruptData, nothing was thrown";
  return "";
}

std::string decode_msg(const std::vector<uint8_t>& b) {
  return corrupt_message([&] { decode_checkpoint(b.data(), b.size(), "ck.ckpt"); });
}

// Rewrites the JSON header of an encoded checkpoint (keeping the payload) and fixes the CRC, so
// the decoder's structural checks are reached.
std::vector<uint8_t> with_header(const std::vector<uint8_t>& b, const std::string& text) {
  uint64_t h = 0;
  for (int i = 0; i < 8; ++i) h |= uint64_t{b[16 + i]} << (8 * i);
  const size_t rest = b.size() - 24 - h - 4;  // payload bytes
  std::vector<uint8_t> out(24 + text.size() + rest + 4);
  std::memcpy(out.data(), b.data(), 24);
  for (int i = 0; i < 8; ++i) out[16 + i] = static_cast<uint8_t>(text.size() >> (8 * i));
  std::memcpy(out.data() + 24, text.data(), text.size());
  std::memcpy(out.data() + 24 + text.size(), b.data() + 24 + h, rest);
  const size_t body = out.size() - 4;
  const uint32_t crc = static_cast<uint32_t>(crc32(0, out.data(), static_cast<uInt>(body)));
  for (int i = 0; i < 4; ++i)
    out[body + static_cast<size_t>(i)] = static_cast<uint8_t>(crc >> (8 * i));
  return out;
}

json header_of(const std::vector<uint8_t>& b) {
  uint64_t h = 0;
  for (int i = 0; i < 8; ++i) h |= uint64_t{b[16 + i]} << (8 * i);
  return json::parse(b.begin() + 24, b.begin() + 24 + static_cast<std::ptrdiff_t>(h));
}

TEST(Checkpoint, RoundTrip) {
  const Checkpoint c = sample();
  const std::vector<uint8_t> b = encode_checkpoint(c);
  EXPECT_EQ(std::string(b.begin(), b.begin() + 8), "TERSECKP");
  EXPECT_EQ(b[8], 1);  // version, little-endian
  const Checkpoint d = decode_checkpoint(b.data(), b.size(), "mem");
  json expected_meta = c.meta;
  expected_meta["terse_version"] = kTerseVersion;
  EXPECT_EQ(d.meta, expected_meta);
  ASSERT_EQ(d.sections.size(), 4u);
  EXPECT_TRUE(d.sections.at("model") == c.sections.at("model"));
  EXPECT_TRUE(d.sections.at("trainer") == c.sections.at("trainer"));
  EXPECT_TRUE(d.sections.at("empty_section") == StateDict{});
  const StateDict& o = d.sections.at("optimizer");
  EXPECT_TRUE(o.tensors.at("momentum_buffer.0").bytes ==
              c.sections.at("optimizer").tensors.at("momentum_buffer.0").bytes);
  EXPECT_EQ(o.ints, c.sections.at("optimizer").ints);
  EXPECT_EQ(o.strings.at("name"), "sgd");
  EXPECT_EQ(o.floats.at("lr"), 0.1);
  EXPECT_EQ(o.floats.at("third"), 1.0 / 3.0);  // bit-exact
  EXPECT_TRUE(std::signbit(o.floats.at("neg_zero")));
  EXPECT_TRUE(std::isinf(o.floats.at("inf")));
  EXPECT_TRUE(std::isnan(o.floats.at("nan")));
  EXPECT_EQ(d.sections.at("model").tensors.at("half").shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(d.sections.at("model").tensors.at("half").dtype, DType::kBF16);
}

TEST(Checkpoint, HeaderIsSelfDescribingAndPayloadAligned) {
  const std::vector<uint8_t> b = encode_checkpoint(sample());
  const json h = header_of(b);
  EXPECT_EQ(h["format"], "terse-checkpoint");
  EXPECT_EQ(h["meta"]["world_size"], 2);
  ASSERT_EQ(h["entries"].size(), 5u);
  size_t payload = 0;
  for (const json& e : h["entries"]) {
    EXPECT_EQ(e["offset"].get<size_t>() % kCheckpointAlign, 0u) << e.dump();
    payload = std::max(payload, e["offset"].get<size_t>() + e["nbytes"].get<size_t>());
  }
  EXPECT_EQ(h["payload_bytes"].get<size_t>(), payload);
  const json& first = h["entries"][0];
  EXPECT_EQ(first["section"], "model");
  EXPECT_EQ(first["name"], "empty");  // std::map order
  EXPECT_EQ(first["dtype"], "i64");
}

TEST(Checkpoint, TerseVersionMatchesProject) { EXPECT_STREQ(kTerseVersion, TERSE_PROJECT_VERSION); }

TEST(Checkpoint, EveryFlippedByteIsDetected) {
  const std::vector<uint8_t> b = encode_checkpoint(sample());
  for (size_t i = 0; i < b.size(); ++i) {
    for (uint8_t bit : {0x01, 0x10, 0x80}) {
      std::vector<uint8_t> bad = b;
      bad[i] ^= bit;
      const std::string m = decode_msg(bad);
      ASSERT_FALSE(m.empty()) << "flip at byte " << i << " went undetected";
      // Past the fixed prefix (magic, version, flags, header length) the CRC catches it.
      if (i >= 24) {
        ASSERT_NE(m.find("CRC-32 mismatch"), std::string::npos) << i << ": " << m;
      }
    }
  }
}

TEST(Checkpoint, Truncated) {
  const std::vector<uint8_t> b = encode_checkpoint(sample());
  for (size_t n : {size_t{0}, size_t{7}, size_t{23}, size_t{24}, size_t{100}, b.size() - 1}) {
    const std::string m = decode_msg({b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n)});
    EXPECT_FALSE(m.empty()) << n;
  }
  EXPECT_NE(decode_msg({b.begin(), b.begin() + 10}).find("truncated: 10 bytes"), std::string::npos);
  EXPECT_NE(decode_msg({b.begin(), b.end() - 1}).find("CRC-32 mismatch"), std::string::npos);
  EXPECT_NE(decode_msg({b.begin(), b.begin() + 30}).find("does not fit in the 30-byte file"),
            std::string::npos);
}

TEST(Checkpoint, WrongMagicVersionFlags) {
  std::vector<uint8_t> b = encode_checkpoint(sample());
  std::vector<uint8_t> bad = b;
  bad[0] = 'X';
  EXPECT_NE(decode_msg(bad).find("bad magic 'XERSECKP' (expected 'TERSECKP')"), std::string::npos);
  bad = b;
  bad[8] = 2;
  std::string m = decode_msg(bad);
  EXPECT_NE(m.find("format version 2 (expected 1)"), std::string::npos) << m;
  EXPECT_NE(m.find("newer terse"), std::string::npos) << m;
  bad = b;
  bad[13] = 1;
  EXPECT_NE(decode_msg(bad).find("flags 256 (expected 0)"), std::string::npos);
}

TEST(Checkpoint, BadJson) {
  const std::vector<uint8_t> b = encode_checkpoint(sample());
  std::string text = header_of(b).dump();
  text[text.size() / 2] = '\x01';
  std::string m = decode_msg(with_header(b, text));
  EXPECT_NE(m.find("JSON header does not parse"), std::string::npos) << m;
  m = decode_msg(with_header(b, "[1,2]"));
  EXPECT_NE(m.find("JSON header is a array (expected an object)"), std::string::npos) << m;
  json h = header_of(b);
  h.erase("meta");
  EXPECT_NE(decode_msg(with_header(b, h.dump())).find("no object 'meta'"), std::string::npos);
  h = header_of(b);
  h["sections"]["optimizer"]["floats"]["lr"] = "fast";
  m = decode_msg(with_header(b, h.dump()));
  EXPECT_NE(m.find("field 'lr' is \"fast\""), std::string::npos) << m;
  h = header_of(b);
  h["sections"]["optimizer"]["ints"]["step"] = 18446744073709551615ull;
  m = decode_msg(with_header(b, h.dump()));
  EXPECT_NE(m.find("a 64-bit signed integer"), std::string::npos) << m;
}

TEST(Checkpoint, EntryOutOfBoundsAndInconsistent) {
  const std::vector<uint8_t> b = encode_checkpoint(sample());
  const json h0 = header_of(b);
  const size_t payload = h0["payload_bytes"].get<size_t>();
  auto mutate = [&](auto&& f) {
    json h = h0;
    f(h);
    return decode_msg(with_header(b, h.dump()));
  };
  std::string m = mutate([&](json& h) { h["entries"][1]["offset"] = payload; });
  EXPECT_NE(m.find("outside the " + std::to_string(payload) + "-byte payload"), std::string::npos)
      << m;
  m = mutate([&](json& h) { h["entries"][1]["offset"] = 18446744073709551615ull; });
  EXPECT_NE(m.find("outside the"), std::string::npos) << m;
  m = mutate([&](json& h) { h["entries"][1]["nbytes"] = 18446744073709551615ull; });
  EXPECT_NE(m.find("outside the"), std::string::npos) << m;
  m = mutate([&](json& h) { h["entries"][1]["offset"] = -64; });
  EXPECT_NE(m.find("field 'offset' is -64 (expected an unsigned integer)"), std::string::npos) << m;
  m = mutate([&](json& h) { h["entries"][2]["shape"] = {3, 6}; });
  EXPECT_NE(m.find("has shape [3,6] of f32 but 60 bytes"), std::string::npos) << m;
  m = mutate([&](json& h) { h["entries"][2]["shape"] = {4294967296ll, 4294967296ll, 16}; });
  EXPECT_NE(m.find("has shape"), std::string::npos) << m;
  m = mutate([&](json& h) { h["entries"][2]["dtype"] = "f128"; });
  EXPECT_NE(m.find("field 'dtype' is \"f128\""), std::string::npos) << m;
  m = mutate([&](json& h) { h["entries"][2]["offset"] = h0["entries"][1]["offset"]; });
  EXPECT_NE(m.find("overlap"), std::string::npos) << m;
  m = mutate([&](json& h) { h["entries"].push_back(h0["entries"][2]); });
  EXPECT_NE(m.find("appears twice"), std::string::npos) << m;
  m = mutate([&](json& h) { h["entries"][0]["section"] = "nope"; });
  EXPECT_NE(m.find("names section 'nope'"), std::string::npos) << m;
  m = mutate([&](json& h) { h["payload_bytes"] = payload + 1; });
  EXPECT_NE(m.find("declares " + std::to_string(payload + 1) + " payload bytes"), std::string::npos)
      << m;
  m = mutate([&](json& h) { h["entries"][0].erase("nbytes"); });
  EXPECT_NE(m.find("has no field 'nbytes'"), std::string::npos) << m;
}

TEST(Checkpoint, EncodeRejectsInconsistentTensor) {
  Checkpoint c = sample();
  c.sections["model"].tensors["fc.bias"].shape = {4};
  EXPECT_THROW(encode_checkpoint(c), InvalidArgument);
  c = sample();
  c.sections["model"].tensors[""] = f32_tensor({1}, 0);
  EXPECT_THROW(encode_checkpoint(c), InvalidArgument);
  c = sample();
  c.meta["bad"] = std::string("\xff\xfe");
  EXPECT_THROW(encode_checkpoint(c), InvalidArgument);
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "terse_ckpt_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

using AtomicWrite = TempDir;

TEST_F(AtomicWrite, SaveLoadAndMeta) {
  const std::string path = dir_ + "/a.ckpt";
  save_checkpoint(path, sample());
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_TRUE(load_checkpoint(path).sections.at("model") == sample().sections.at("model"));
  EXPECT_EQ(read_checkpoint_meta(path)["step"], 2811);
}

TEST_F(AtomicWrite, CrashMidWriteKeepsPreviousFile) {
  const std::string path = dir_ + "/a.ckpt";
  save_checkpoint(path, sample(0, 2, 1));
  const auto before = read_file(path);
  // A child process writes a larger checkpoint under a 1 KiB file-size limit; the kernel kills
  // it with SIGXFSZ in the middle of write(): a real crash mid-write.
  Checkpoint big = sample(0, 2, 2);
  big.sections["model"].tensors["large"] = f32_tensor({4096}, 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    rlimit lim{1024, 1024};
    setrlimit(RLIMIT_FSIZE, &lim);
    save_checkpoint(path, big);
    _exit(0);  // not reached
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child was expected to die mid-write";
  EXPECT_EQ(WTERMSIG(status), SIGXFSZ);
  EXPECT_TRUE(fs::exists(path + ".tmp"));  // the partial file the crash left
  EXPECT_EQ(fs::file_size(path + ".tmp"), 1024u);
  EXPECT_EQ(read_file(path), before);
  EXPECT_EQ(load_checkpoint(path).meta["epoch"], 1);
  // The next save replaces both the stale .tmp and the file.
  save_checkpoint(path, big);
  EXPECT_EQ(load_checkpoint(path).meta["epoch"], 2);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(AtomicWrite, FailedWriteThrowsAndKeepsPreviousFile) {
  const std::string path = dir_ + "/a.ckpt";
  save_checkpoint(path, sample(0, 2, 1));
  const auto before = read_file(path);
  Checkpoint big = sample(0, 2, 2);
  big.sections["model"].tensors["large"] = f32_tensor({4096}, 0);
  // Same limit, but SIGXFSZ ignored: write() fails with EFBIG and the writer must report it.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    rlimit lim{1024, 1024};
    setrlimit(RLIMIT_FSIZE, &lim);
    try {
      save_checkpoint(path, big);
    } catch (const InvalidArgument& e) {
      const std::string m = e.what();
      const bool named = m.find(path) != std::string::npos &&
                         m.find("failed at write") != std::string::npos &&
                         m.find("previous file") != std::string::npos;
      _exit(named && !fs::exists(path + ".tmp") ? 42 : 1);
    }
    _exit(2);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 42);
  EXPECT_EQ(read_file(path), before);
}

TEST_F(AtomicWrite, MissingFileAndDirectory) {
  try {
    load_checkpoint(dir_ + "/none.ckpt");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("none.ckpt: No such file"), std::string::npos);
  }
  EXPECT_THROW(save_checkpoint(dir_ + "/no/such/dir/a.ckpt", sample()), InvalidArgument);
}

using Store = TempDir;

void save_all(CheckpointStore& s, int epoch, int world) {
  for (int r = 0; r < world; ++r) s.save_rank(epoch, r, sample(r, world, epoch));
}

TEST_F(Store, LayoutLatestAndRetention) {
  CheckpointStore s(dir_ + "/ck");
  EXPECT_EQ(s.latest(), std::nullopt);
  save_all(s, 1, 2);
  EXPECT_TRUE(fs::exists(dir_ + "/ck/epoch-1/rank-0.ckpt"));
  EXPECT_TRUE(fs::exists(dir_ + "/ck/epoch-1/rank-1.ckpt"));
  EXPECT_EQ(s.latest(), std::nullopt);  // saved but not committed
  s.commit(1);
  EXPECT_EQ(s.latest(), "epoch-1");
  const std::vector<uint8_t> latest = read_file(dir_ + "/ck/LATEST");
  EXPECT_EQ(std::string(latest.begin(), latest.end()), "epoch-1\n");
  for (int e = 2; e <= 4; ++e) {
    save_all(s, e, 2);
    s.commit(e);
    EXPECT_EQ(s.latest(), "epoch-" + std::to_string(e));
  }
  EXPECT_EQ(s.complete(), (std::vector<std::string>{"epoch-3", "epoch-4"}));
  EXPECT_FALSE(fs::exists(dir_ + "/ck/epoch-1"));
  EXPECT_FALSE(fs::exists(dir_ + "/ck/epoch-2"));
  const Checkpoint c = s.load_rank("epoch-4", 1);
  EXPECT_EQ(c.meta["rank"], 1);
  EXPECT_EQ(c.meta["epoch"], 4);
  EXPECT_EQ(s.load_rank_meta("epoch-3", 0)["epoch"], 3);
}

TEST_F(Store, IncompleteEpochIsNotLatestAndIsPrunedLater) {
  CheckpointStore s(dir_);
  save_all(s, 1, 2);
  s.commit(1);
  s.save_rank(2, 0, sample(0, 2, 2));  // rank 1 never saved epoch 2 (crash)
  try {
    s.commit(2);
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("epoch-2/rank-1.ckpt is missing (2 ranks expected)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(s.latest(), "epoch-1");
  EXPECT_EQ(s.complete(), (std::vector<std::string>{"epoch-1"}));
  save_all(s, 3, 2);
  s.commit(3);
  EXPECT_FALSE(fs::exists(dir_ + "/epoch-2"));  // older and incomplete
  EXPECT_EQ(s.complete(), (std::vector<std::string>{"epoch-1", "epoch-3"}));
}

TEST_F(Store, CommitRemovesStrayRanksFromABiggerRun) {
  CheckpointStore s(dir_);
  save_all(s, 1, 4);
  save_all(s, 1, 2);  // a new run with 2 ranks reuses the directory
  s.commit(1);
  EXPECT_TRUE(fs::exists(dir_ + "/epoch-1/rank-1.ckpt"));
  EXPECT_FALSE(fs::exists(dir_ + "/epoch-1/rank-2.ckpt"));
  EXPECT_FALSE(fs::exists(dir_ + "/epoch-1/rank-3.ckpt"));
}

TEST_F(Store, ClearErrors) {
  CheckpointStore s(dir_);
  try {
    s.load_rank("epoch-7", 0);
    FAIL();
  } catch (const InvalidArgument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(dir_ + "/epoch-7/rank-0.ckpt not found"), std::string::npos) << m;
    EXPECT_NE(m.find("start without --resume"), std::string::npos) << m;
  }
  EXPECT_THROW(s.load_rank("latest", 0), InvalidArgument);
  EXPECT_THROW(s.save_rank(1, 1, sample(0, 2, 1)), InvalidArgument);  // meta says rank 0
  std::ofstream(dir_ + "/LATEST") << std::string(5000, 'x');
  EXPECT_THROW(s.latest(), CorruptData);
  std::ofstream(dir_ + "/LATEST") << "garbage\n";
  try {
    s.latest();
    FAIL();
  } catch (const CorruptData& e) {
    EXPECT_NE(std::string(e.what()).find("holds 'garbage' (expected epoch-<E>)"),
              std::string::npos);
  }
  // A damaged rank file is CorruptData, naming the file.
  save_all(s, 1, 2);
  const std::string p = dir_ + "/epoch-1/rank-1.ckpt";
  std::vector<uint8_t> b = read_file(p);
  b[b.size() / 2] ^= 1;
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  const std::string m = corrupt_message([&] { s.load_rank("epoch-1", 1); });
  EXPECT_NE(m.find(p + ": CRC-32 mismatch"), std::string::npos) << m;
  // Files swapped between ranks are caught by the meta rank.
  fs::copy_file(dir_ + "/epoch-1/rank-0.ckpt", p, fs::copy_options::overwrite_existing);
  EXPECT_NE(corrupt_message([&] { s.load_rank("epoch-1", 1); }).find("written by rank 0"),
            std::string::npos);
}

TEST(CheckCompatible, Errors) {
  const json meta = {{"model", "cnn"}, {"world_size", 4}, {"optimizer", "adamw:lr=0.001"}};
  EXPECT_NO_THROW(check_compatible(meta, {{"model", "cnn"}, {"world_size", 4}}));
  auto msg = [&](const json& expected) {
    try {
      check_compatible(meta, expected);
    } catch (const InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg({{"world_size", 2}})
                .find("checkpoint was written by 4 ranks, this run has 2: resume with the same "
                      "--np"),
            std::string::npos);
  EXPECT_NE(msg({{"model", "mlp"}}).find("checkpoint holds model \"cnn\", this run trains \"mlp\""),
            std::string::npos);
  EXPECT_NE(msg({{"optimizer", "sgd"}}).find("optimizer \"adamw:lr=0.001\", this run uses \"sgd\""),
            std::string::npos);
  EXPECT_NE(msg({{"seed", 1}}).find("checkpoint has no 'seed'"), std::string::npos);
  EXPECT_EQ(msg({{"model", "cnn"}, {"world_size", 4}, {"optimizer", "adamw:lr=0.001"}}),
            "no error");
}

}  // namespace
}  // namespace terse
