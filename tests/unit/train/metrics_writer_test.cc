#include "terse/train/metrics_writer.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "terse/core/error.h"

namespace terse {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class MetricsFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "terse_metrics_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/metrics.jsonl";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string contents() const {
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string dir_, path_;
};

TEST_F(MetricsFile, OneObjectPerLineFlushedImmediately) {
  MetricsWriter w(path_);
  w.write({{"step", 1}, {"loss", 2.5}});
  // Visible before the writer is closed: flushed per line.
  EXPECT_EQ(contents(), "{\"loss\":2.5,\"step\":1}\n");
  w.write({{"step", 2}, {"loss", std::numeric_limits<double>::quiet_NaN()}});
  EXPECT_EQ(contents(), "{\"loss\":2.5,\"step\":1}\n{\"loss\":null,\"step\":2}\n");
  EXPECT_EQ(w.lines_written(), 2);
  const auto lines = MetricsWriter::read(path_);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["step"], 2);
}

TEST_F(MetricsFile, TruncateByDefaultAppendOnResume) {
  { MetricsWriter(path_).write({{"run", 1}}); }
  { MetricsWriter(path_).write({{"run", 2}}); }
  EXPECT_EQ(contents(), "{\"run\":2}\n");
  { MetricsWriter(path_, /*append=*/true).write({{"run", 3}}); }
  EXPECT_EQ(contents(), "{\"run\":2}\n{\"run\":3}\n");
}

TEST_F(MetricsFile, AppendAfterACrashMidLineStartsANewLine) {
  std::ofstream(path_) << "{\"step\":1}\n{\"step\":2,\"lo";
  { MetricsWriter(path_, true).write({{"step", 3}}); }
  EXPECT_EQ(contents(), "{\"step\":1}\n{\"step\":2,\"lo\n{\"step\":3}\n");
  try {
    MetricsWriter::read(path_);
    FAIL();
  } catch (const CorruptData& e) {
    EXPECT_NE(std::string(e.what()).find("line 2 is not a JSON object"), std::string::npos);
  }
}

TEST_F(MetricsFile, OpenErrorNamesPathAndErrno) {
  const std::string bad = dir_ + "/missing/dir/m.jsonl";
  try {
    MetricsWriter w(bad);
    FAIL();
  } catch (const InvalidArgument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cannot open metrics file " + bad), std::string::npos) << m;
    EXPECT_NE(m.find("No such file or directory"), std::string::npos) << m;
  }
  EXPECT_THROW(MetricsWriter(bad, true), InvalidArgument);
}

TEST_F(MetricsFile, WriteErrorNamesPathAndErrno) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full on this system";
  MetricsWriter w("/dev/full");
  try {
    w.write({{"step", 1}});
    FAIL() << "writing to /dev/full must fail";
  } catch (const InvalidArgument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("writing metrics to /dev/full failed: No space left on device"),
              std::string::npos)
        << m;
  }
  EXPECT_EQ(w.lines_written(), 0);
}

TEST_F(MetricsFile, RejectsNonObjects) {
  MetricsWriter w(path_);
  EXPECT_THROW(w.write(json::array({1, 2})), InvalidArgument);
  EXPECT_THROW(w.write(3), InvalidArgument);
  EXPECT_EQ(w.lines_written(), 0);
  EXPECT_EQ(contents(), "");
}

TEST_F(MetricsFile, MoveKeepsWriting) {
  MetricsWriter a(path_);
  a.write({{"i", 1}});
  MetricsWriter b(std::move(a));
  b.write({{"i", 2}});
  EXPECT_THROW(a.write({{"i", 3}}), InvalidArgument);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(MetricsWriter::read(path_).size(), 2u);
}

TEST(MetricsRankPath, RankZeroKeepsThePathOthersGetASuffix) {
  EXPECT_EQ(MetricsWriter::rank_path("run/m.jsonl", 0), "run/m.jsonl");
  EXPECT_EQ(MetricsWriter::rank_path("run/m.jsonl", 3), "run/m.rank3.jsonl");
  EXPECT_EQ(MetricsWriter::rank_path("m.jsonl", 12), "m.rank12.jsonl");
  EXPECT_EQ(MetricsWriter::rank_path("/tmp/x/metrics", 1), "/tmp/x/metrics.rank1");
  EXPECT_EQ(MetricsWriter::rank_path("a.b/m.json.l", 2), "a.b/m.json.rank2.l");
  EXPECT_THROW(MetricsWriter::rank_path("m.jsonl", -1), InvalidArgument);
}

}  // namespace
}  // namespace terse
