#include "terse/compress/dgc/dgc_warmup.h"

#include <algorithm>
#include <cmath>

#include "terse/core/check.h"

namespace terse {

DgcWarmup DgcWarmup::paper(double density) { return DgcWarmup{density, 4, 0.25}; }

DgcWarmup DgcWarmup::reference(double density, int warmup_epochs) {
  return DgcWarmup{density, warmup_epochs, 0.0};
}

double dgc_density(int epoch, const DgcWarmup& w) {
  TERSE_CHECK(epoch >= 0, InvalidArgument, "dgc_density needs epoch >= 0, got ", epoch,
              "; epochs count from 0");
  TERSE_CHECK(w.density > 0.0 && w.density <= 1.0, InvalidArgument,
              "DGC warm-up density must be in (0, 1], got ", w.density,
              "; pass the final fraction kept (e.g. 0.001)");
  TERSE_CHECK(w.warmup_epochs >= 0, InvalidArgument, "DGC warmup_epochs must be >= 0, got ",
              w.warmup_epochs, "; pass 0 for no warm-up");
  TERSE_CHECK(w.coeff >= 0.0 && w.coeff <= 1.0, InvalidArgument,
              "DGC warm-up coeff must be in [0, 1] (0 = the reference default), got ", w.coeff,
              "; the paper uses 0.25");
  if (epoch >= w.warmup_epochs) return w.density;
  const double coeff = w.coeff > 0.0 ? w.coeff : std::pow(w.density, 1.0 / (w.warmup_epochs + 1.0));
  return std::max(std::pow(coeff, epoch + 1.0), w.density);
}

}  // namespace terse
