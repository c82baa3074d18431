// Writes the seed corpora of the fuzz targets: small valid inputs, a few KB in all.
//   terse_fuzz_make_seeds <tests/fuzz/corpus>
// The files are checked in; rerun this after a format change.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

// The payload harness itself, for its spec list (kSpecs): seed i is selector byte i + a payload
// of kSpecs[i], so the two lists cannot drift apart.
#include "fuzz_payload.cc"
#include "terse/data/gzip_reader.h"
#include "terse/data/idx_array.h"
#include "terse/train/checkpoint.h"

namespace {

void put(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

terse::StateTensor tensor(terse::DType dtype, std::vector<int64_t> shape, size_t nbytes) {
  terse::StateTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes.resize(nbytes);
  for (size_t i = 0; i < nbytes; ++i) t.bytes[i] = static_cast<uint8_t>(i * 7 + 1);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  namespace fs = std::filesystem;
  const std::string root = argv[1];
  for (const char* d : {"idx", "idx_gz", "checkpoint", "payload"})
    fs::create_directories(root + "/" + d);

  terse::IdxArray images;
  images.magic = terse::kIdxMagicImages;
  images.dims = {2, 4, 4};
  for (int i = 0; i < 32; ++i) images.data.push_back(static_cast<uint8_t>(i * 8));
  terse::IdxArray labels;
  labels.magic = terse::kIdxMagicLabels;
  labels.dims = {6};
  labels.data = {9, 0, 0, 3, 0, 2};
  const auto img = terse::encode_idx(images), lab = terse::encode_idx(labels);
  put(root + "/idx/images-2x4x4", img);
  put(root + "/idx/labels-6", lab);
  put(root + "/idx_gz/images-2x4x4.gz", terse::gzip_compress(img.data(), img.size()));
  put(root + "/idx_gz/labels-6.gz", terse::gzip_compress(lab.data(), lab.size()));

  terse::Checkpoint c;
  c.meta = {{"model", "mlp"}, {"world_size", 2}, {"rank", 1},
            {"epoch", 3},     {"step", 42},      {"optimizer", "sgd:lr=0.1,momentum=0.9"}};
  c.sections["model"].tensors["w"] = tensor(terse::DType::kF32, {2, 3}, 24);
  c.sections["model"].tensors["b"] = tensor(terse::DType::kBF16, {3}, 6);
  c.sections["optimizer"].tensors["m"] = tensor(terse::DType::kF32, {6}, 24);
  c.sections["optimizer"].ints["step"] = 42;
  c.sections["optimizer"].floats["lr"] = 0.1;
  c.sections["optimizer"].strings["kind"] = "sgd";
  put(root + "/checkpoint/small.ckpt", terse::encode_checkpoint(c));
  terse::Checkpoint empty;
  empty.meta = {{"world_size", 1}};
  put(root + "/checkpoint/empty.ckpt", terse::encode_checkpoint(empty));

  // payload/<name>-<spec index>-n<numel>: x_i = (4i mod 11) - 5 (ties, zeros, both signs),
  // seed_step 7, numel 0, 1 and 37 (not a multiple of 8: padding bits).
  for (size_t s = 0; s < kNumSpecs; ++s) {
    const auto comp = terse::make_compressor(kSpecs[s]);
    for (const int64_t n : {0, 1, 37}) {
      std::vector<float> x(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        x[static_cast<size_t>(i)] = static_cast<float>(4 * i % 11 - 5);
      std::vector<uint8_t> b(1 + comp->max_encoded_bytes(n));
      b[0] = static_cast<uint8_t>(s);
      b.resize(1 + comp->encode(terse::TensorView::of(x.data(), n), 7, b.data() + 1, b.size() - 1));
      put(root + "/payload/" + comp->name() + "-" + std::to_string(s) + "-n" + std::to_string(n),
          b);
    }
  }
  return 0;
}
