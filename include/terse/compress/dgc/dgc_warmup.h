#pragma once

// DGC sparsity warm-up: the density for an epoch. One rule covers the paper and the code:
// epoch < warmup_epochs -> max(coeff^(epoch + 1), density), else density.
//  - paper (Lin et al. 2018): coeff 0.25 over 4 epochs: densities 0.25, 0.0625, 0.015625,
//    0.00390625, then the final density (sparsity 75%, 93.75%, 98.4375%, 99.6%, 99.9%).
//  - reference code default: coeff = density^(1/(warmup_epochs + 1)); with 0.001 and 5 epochs:
//    0.316, 0.1, 0.0316, 0.01, 0.00316, then 0.001.

namespace terse {

struct DgcWarmup {
  double density = 0.001;  // final density rho, in (0, 1]
  int warmup_epochs = 0;   // 0: no warm-up
  double coeff = 0.0;      // in (0, 1]; 0 means the reference default density^(1/(warmup_epochs+1))

  static DgcWarmup paper(double density);                         // coeff 0.25, 4 epochs
  static DgcWarmup reference(double density, int warmup_epochs);  // code default coeff
};

// Density for a 0-based epoch. Throws InvalidArgument for epoch < 0 or a bad DgcWarmup.
double dgc_density(int epoch, const DgcWarmup& warmup);

}  // namespace terse
