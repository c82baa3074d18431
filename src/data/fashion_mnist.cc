#include "terse/data/fashion_mnist.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>

#include "terse/core/check.h"
#include "terse/data/idx_array.h"

namespace terse {
namespace {

// Largest compressed file accepted; Fashion-MNIST's largest is 26 MB.
constexpr long kMaxCompressedBytes = 256L << 20;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

std::string images_path(const std::string& dir, const std::string& prefix) {
  return dir + "/" + prefix + "-images-idx3-ubyte.gz";
}

std::string labels_path(const std::string& dir, const std::string& prefix) {
  return dir + "/" + prefix + "-labels-idx1-ubyte.gz";
}

[[noreturn]] void throw_missing(const std::string& path) {
  TERSE_THROW(InvalidArgument, "Fashion-MNIST file ", path,
              " not found: install the Debian package dataset-fashion-mnist (apt-get install "
              "dataset-fashion-mnist) or pass --data-dir DIR with the four IDX files "
              "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
              "t10k-labels-idx1-ubyte.gz");
}

std::vector<uint8_t> read_dataset_file(const std::string& path) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) throw_missing(path);
    TERSE_THROW(InvalidArgument, "cannot open Fashion-MNIST file ", path, ": ", std::strerror(err),
                "; check its permissions or pass --data-dir");
  }
  std::error_code ec;
  TERSE_CHECK(std::filesystem::is_regular_file(path, ec), InvalidArgument, "Fashion-MNIST path ",
              path,
              " is not a regular file; pass --data-dir with the directory of the four .gz "
              "files");
  TERSE_CHECK(std::fseek(f.get(), 0, SEEK_END) == 0, InvalidArgument, "cannot seek in ", path, ": ",
              std::strerror(errno), "; it must be a regular file");
  const long size = std::ftell(f.get());
  TERSE_CHECK(size >= 0 && size <= kMaxCompressedBytes, CorruptData, "Fashion-MNIST file ", path,
              " is ", size, " bytes (expected at most ", kMaxCompressedBytes,
              "); it is not a dataset file: download it again");
  std::rewind(f.get());
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  const size_t got = std::fread(bytes.data(), 1, bytes.size(), f.get());
  TERSE_CHECK(got == bytes.size(), InvalidArgument, "reading ", path, " gave ", got, " of ",
              bytes.size(), " bytes: ", std::strerror(errno), "; check the disk");
  return bytes;
}

}  // namespace

FashionMnistSplit FashionMnist::load_split(const std::string& dir, const std::string& prefix,
                                           int64_t expected_count) {
  const std::string images_path = terse::images_path(dir, prefix);
  const std::string labels_path = terse::labels_path(dir, prefix);
  const std::vector<uint8_t> images_gz = read_dataset_file(images_path);
  const std::vector<uint8_t> labels_gz = read_dataset_file(labels_path);
  IdxArray images = decode_idx_gz(images_gz.data(), images_gz.size(), images_path);
  IdxArray labels = decode_idx_gz(labels_gz.data(), labels_gz.size(), labels_path);
  TERSE_CHECK(images.magic == kIdxMagicImages, CorruptData, "Fashion-MNIST file ", images_path,
              " holds a ", images.dims.size(), "-D array (expected 3-D images: magic 0x00000803)",
              "; the image and label files may be swapped: download them again");
  TERSE_CHECK(labels.magic == kIdxMagicLabels, CorruptData, "Fashion-MNIST file ", labels_path,
              " holds a ", labels.dims.size(), "-D array (expected 1-D labels: magic 0x00000801)",
              "; the image and label files may be swapped: download them again");
  TERSE_CHECK(images.dims[1] == kRows && images.dims[2] == kCols, CorruptData,
              "Fashion-MNIST file ", images_path, ": images are ", images.dims[1], "x",
              images.dims[2], " (expected ", kRows, "x", kCols, "); download it again");
  TERSE_CHECK(images.dims[0] == labels.dims[0], CorruptData,
              "Fashion-MNIST count mismatch: ", images_path, " has ", images.dims[0],
              " images but ", labels_path, " has ", labels.dims[0],
              " labels (expected equal); download both again");
  TERSE_CHECK(expected_count <= 0 || images.dims[0] == expected_count, CorruptData,
              "Fashion-MNIST file ", images_path, " has ", images.dims[0], " images (expected ",
              expected_count, "); download it again");
  for (size_t i = 0; i < labels.data.size(); ++i) {
    TERSE_CHECK(labels.data[i] < kClasses, CorruptData, "Fashion-MNIST file ", labels_path,
                ": label ", i, " is ", int{labels.data[i]}, " (expected 0..", kClasses - 1,
                "); download it again");
  }
  FashionMnistSplit split;
  split.count = images.dims[0];
  split.rows = kRows;
  split.cols = kCols;
  split.images = std::move(images.data);
  split.labels = std::move(labels.data);
  return split;
}

std::vector<std::string> FashionMnist::file_paths(const std::string& dir) {
  return {images_path(dir, "train"), labels_path(dir, "train"), images_path(dir, "t10k"),
          labels_path(dir, "t10k")};
}

void FashionMnist::check_files(const std::string& dir) {
  std::error_code ec;
  for (const std::string& path : file_paths(dir)) {
    if (!std::filesystem::is_regular_file(path, ec)) throw_missing(path);
  }
}

FashionMnist FashionMnist::load(const std::string& dir) {
  FashionMnist ds;
  ds.train_ = load_split(dir, "train", kTrainCount);
  ds.test_ = load_split(dir, "t10k", kTestCount);
  return ds;
}

const char* FashionMnist::class_name(int label) {
  static const char* const kNames[kClasses] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                               "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                               "Bag",         "Ankle boot"};
  TERSE_CHECK(label >= 0 && label < kClasses, InvalidArgument, "Fashion-MNIST label ", label,
              " is out of range (expected 0..", kClasses - 1, ")");
  return kNames[label];
}

}  // namespace terse
