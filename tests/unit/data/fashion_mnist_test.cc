#include "terse/data/fashion_mnist.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "terse/core/error.h"
#include "terse/data/gzip_reader.h"
#include "terse/data/idx_array.h"

namespace terse {
namespace {

namespace fs = std::filesystem;

class FashionMnistFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "terse_fmnist_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write_gz(const std::string& name, const std::vector<uint8_t>& raw) {
    const std::vector<uint8_t> z = gzip_compress(raw.data(), raw.size());
    std::ofstream(dir_ + "/" + name, std::ios::binary)
        .write(reinterpret_cast<const char*>(z.data()), static_cast<std::streamsize>(z.size()));
  }
  // A split of `n` images of rows x cols, labels given.
  void write_split(const std::string& prefix, uint32_t n, uint32_t rows, uint32_t cols,
                   const std::vector<uint8_t>& labels) {
    IdxArray img;
    img.magic = kIdxMagicImages;
    img.dims = {n, rows, cols};
    img.data.resize(size_t{n} * rows * cols);
    for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<uint8_t>(i % 251);
    write_gz(prefix + "-images-idx3-ubyte.gz", encode_idx(img));
    IdxArray lab;
    lab.magic = kIdxMagicLabels;
    lab.dims = {static_cast<uint32_t>(labels.size())};
    lab.data = labels;
    write_gz(prefix + "-labels-idx1-ubyte.gz", encode_idx(lab));
  }
  template <typename F>
  std::string corrupt_message(F&& f) {
    try {
      f();
    } catch (const CorruptData& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected CorruptData";
    return "";
  }

  std::string dir_;
};

TEST_F(FashionMnistFiles, LoadsSyntheticSplit) {
  write_split("train", 3, 28, 28, {9, 0, 4});
  const FashionMnistSplit s = FashionMnist::load_split(dir_, "train", 3);
  EXPECT_EQ(s.count, 3);
  EXPECT_EQ(s.rows, 28);
  EXPECT_EQ(s.cols, 28);
  EXPECT_EQ(s.images.size(), 3u * 784u);
  EXPECT_EQ(s.labels, (std::vector<uint8_t>{9, 0, 4}));
  EXPECT_EQ(s.image(1)[0], 784 % 251);
}

TEST_F(FashionMnistFiles, LabelOutOfRange) {
  write_split("train", 3, 28, 28, {9, 10, 4});
  const std::string m = corrupt_message([&] { FashionMnist::load_split(dir_, "train"); });
  EXPECT_NE(m.find("train-labels-idx1-ubyte.gz: label 1 is 10 (expected 0..9)"), std::string::npos)
      << m;
}

TEST_F(FashionMnistFiles, CountMismatch) {
  write_split("t10k", 3, 28, 28, {1, 2});
  const std::string m = corrupt_message([&] { FashionMnist::load_split(dir_, "t10k"); });
  EXPECT_NE(m.find("has 3 images but"), std::string::npos) << m;
  EXPECT_NE(m.find("has 2 labels"), std::string::npos) << m;
}

TEST_F(FashionMnistFiles, ExpectedCountEnforced) {
  write_split("t10k", 2, 28, 28, {1, 2});
  const std::string m = corrupt_message([&] { FashionMnist::load_split(dir_, "t10k", 10000); });
  EXPECT_NE(m.find("has 2 images (expected 10000)"), std::string::npos) << m;
}

TEST_F(FashionMnistFiles, WrongImageSize) {
  write_split("train", 2, 32, 32, {1, 2});
  const std::string m = corrupt_message([&] { FashionMnist::load_split(dir_, "train"); });
  EXPECT_NE(m.find("images are 32x32 (expected 28x28)"), std::string::npos) << m;
}

TEST_F(FashionMnistFiles, SwappedFiles) {
  write_split("train", 2, 28, 28, {1, 2});
  fs::rename(dir_ + "/train-images-idx3-ubyte.gz", dir_ + "/tmp.gz");
  fs::rename(dir_ + "/train-labels-idx1-ubyte.gz", dir_ + "/train-images-idx3-ubyte.gz");
  fs::rename(dir_ + "/tmp.gz", dir_ + "/train-labels-idx1-ubyte.gz");
  const std::string m = corrupt_message([&] { FashionMnist::load_split(dir_, "train"); });
  EXPECT_NE(m.find("expected 3-D images"), std::string::npos) << m;
}

TEST_F(FashionMnistFiles, CorruptGzipFile) {
  write_split("train", 2, 28, 28, {1, 2});
  std::ofstream(dir_ + "/train-labels-idx1-ubyte.gz", std::ios::binary) << "not gzip at all";
  const std::string m = corrupt_message([&] { FashionMnist::load_split(dir_, "train"); });
  EXPECT_NE(m.find("train-labels-idx1-ubyte.gz is corrupt"), std::string::npos) << m;
}

TEST_F(FashionMnistFiles, MissingDatasetSaysHowToInstall) {
  try {
    FashionMnist::load(dir_ + "/nowhere");
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    const std::string m = e.what();
    EXPECT_NE(
        m.find("Fashion-MNIST file " + dir_ + "/nowhere/train-images-idx3-ubyte.gz not found"),
        std::string::npos)
        << m;
    EXPECT_NE(m.find("apt-get install dataset-fashion-mnist"), std::string::npos) << m;
    EXPECT_NE(m.find("--data-dir"), std::string::npos) << m;
  }
}

TEST_F(FashionMnistFiles, CheckFilesNamesTheFirstMissingFile) {
  EXPECT_EQ(FashionMnist::file_paths(dir_).size(), 4u);
  write_split("train", 2, 28, 28, {1, 2});
  try {
    FashionMnist::check_files(dir_);  // train present, t10k missing
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(dir_ + "/t10k-images-idx3-ubyte.gz not found"), std::string::npos) << m;
    EXPECT_NE(m.find("apt-get install dataset-fashion-mnist"), std::string::npos) << m;
    EXPECT_NE(m.find("--data-dir"), std::string::npos) << m;
  }
  write_split("t10k", 2, 28, 28, {3, 4});
  EXPECT_NO_THROW(FashionMnist::check_files(dir_));
}

TEST_F(FashionMnistFiles, DirectoryInsteadOfFile) {
  write_split("train", 2, 28, 28, {1, 2});
  fs::remove(dir_ + "/train-images-idx3-ubyte.gz");
  fs::create_directory(dir_ + "/train-images-idx3-ubyte.gz");
  try {
    FashionMnist::load_split(dir_, "train");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("is not a regular file"), std::string::npos) << e.what();
  }
}

TEST(FashionMnist, ClassNames) {
  EXPECT_STREQ(FashionMnist::class_name(0), "T-shirt/top");
  EXPECT_STREQ(FashionMnist::class_name(9), "Ankle boot");
  EXPECT_THROW(FashionMnist::class_name(10), InvalidArgument);
}

// The real dataset (Debian package dataset-fashion-mnist). Known values computed independently
// with Python's gzip module: first train labels 9,0,0,3,0,2,7,2,5,5; first test labels
// 9,2,1,1,6; the first train image's pixels sum to 76247; 6000 (1000) examples per class.
TEST(FashionMnist, RealDataset) {
  const char* env = std::getenv("TERSE_FASHION_MNIST_DIR");
  const std::string dir = env ? env : FashionMnist::kDefaultDir;
  if (!std::filesystem::exists(dir + "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST not installed at " << dir
                 << " (apt-get install dataset-fashion-mnist)";
  }
  const FashionMnist ds = FashionMnist::load(dir);
  ASSERT_EQ(ds.train().count, 60000);
  ASSERT_EQ(ds.test().count, 10000);
  EXPECT_EQ(ds.train().images.size(), 60000u * 784u);
  EXPECT_EQ(ds.test().images.size(), 10000u * 784u);
  EXPECT_EQ(std::vector<uint8_t>(ds.train().labels.begin(), ds.train().labels.begin() + 10),
            (std::vector<uint8_t>{9, 0, 0, 3, 0, 2, 7, 2, 5, 5}));
  EXPECT_EQ(std::vector<uint8_t>(ds.test().labels.begin(), ds.test().labels.begin() + 5),
            (std::vector<uint8_t>{9, 2, 1, 1, 6}));
  int64_t sum = 0;
  for (int i = 0; i < 784; ++i) sum += ds.train().image(0)[i];
  EXPECT_EQ(sum, 76247);
  std::vector<int> per_class(10, 0);
  for (uint8_t l : ds.train().labels) ++per_class[l];
  EXPECT_EQ(per_class, std::vector<int>(10, 6000));
}

}  // namespace
}  // namespace terse
