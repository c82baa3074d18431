#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace terse {

// One split of Fashion-MNIST: `count` images of rows x cols u8 pixels (row-major, image after
// image) and their labels in 0..9.
struct FashionMnistSplit {
  int64_t count = 0;
  int rows = 0, cols = 0;
  std::vector<uint8_t> images;
  std::vector<uint8_t> labels;

  int64_t image_size() const { return int64_t{rows} * cols; }
  const uint8_t* image(int64_t i) const { return images.data() + i * image_size(); }
};

// Fashion-MNIST (Xiao, Rasul, Vollgraf 2017) read from its four gzip IDX files, as shipped by
// the Debian package dataset-fashion-mnist in /usr/share/datasets/fashion-mnist.
class FashionMnist {
 public:
  static constexpr const char* kDefaultDir = "/usr/share/datasets/fashion-mnist";
  static constexpr int kRows = 28, kCols = 28, kClasses = 10;
  static constexpr int64_t kTrainCount = 60000, kTestCount = 10000;

  // Loads train (60000) and test (10000). A missing file throws InvalidArgument saying how to
  // install the dataset; a damaged one throws CorruptData naming the file and field.
  static FashionMnist load(const std::string& dir = kDefaultDir);

  // The four files load() reads, in that order: train images, train labels, test images, test
  // labels.
  static std::vector<std::string> file_paths(const std::string& dir = kDefaultDir);
  // Throws InvalidArgument, naming the file and how to install the dataset, unless all four
  // files exist as regular files. Cheap: a launcher checks this before starting any rank.
  static void check_files(const std::string& dir = kDefaultDir);

  // Loads `<dir>/<prefix>-images-idx3-ubyte.gz` and `<dir>/<prefix>-labels-idx1-ubyte.gz`
  // (prefix "train" or "t10k"). Images must be 28x28, labels 0..9 and the counts must agree;
  // when `expected_count` > 0 the count must equal it.
  static FashionMnistSplit load_split(const std::string& dir, const std::string& prefix,
                                      int64_t expected_count = 0);

  // "T-shirt/top", "Trouser", ... for labels 0..9; throws InvalidArgument otherwise.
  static const char* class_name(int label);

  const FashionMnistSplit& train() const { return train_; }
  const FashionMnistSplit& test() const { return test_; }

 private:
  FashionMnistSplit train_, test_;
};

}  // namespace terse
