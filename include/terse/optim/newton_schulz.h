#pragma once

#include <cstdint>
#include <vector>

namespace terse {

// Muon's orthogonalisation (KellerJordan/Muon muon.py `zeropower_via_newtonschulz5`): maps a
// matrix G = U S V^T to about U S' V^T with S' in roughly [0.7, 1.2] (not exactly I: the quintic's
// coefficients maximise the slope at 0 instead of converging):
//   X = G (transposed when rows > cols, so X X^T is the smaller Gram matrix)
//   X /= ||X||_F + eps
//   repeat steps: A = X X^T;  B = b A + c A A;  X = a X + B X       (a, b, c) = (3.4445,
//   -4.775, 2.0315)
// Matrix products go through CBLAS sgemm (f32 accumulation).
struct NewtonSchulzOptions {
  int steps = 5;
  float a = 3.4445f, b = -4.7750f, c = 2.0315f;
  float eps = 1e-7f;
  // Round like the reference, which runs in bfloat16: G, the norm, and every matmul, scalar
  // product and sum are rounded to bf16 (products accumulate in f32, as torch's CPU and GPU
  // bf16 matmuls do). false: f32 throughout (more accurate, not the reference's numbers).
  bool bf16 = true;
};

// Reuses its work buffers across calls; one per thread.
class NewtonSchulz {
 public:
  // Orthogonalises, in place, `batch` row-major rows x cols matrices stored one after another.
  void run(float* x, int64_t batch, int64_t rows, int64_t cols, const NewtonSchulzOptions& o);

 private:
  void run_one(float* x, int64_t rows, int64_t cols, const NewtonSchulzOptions& o);
  std::vector<float> x_, y_, a_, b_;
};

}  // namespace terse
