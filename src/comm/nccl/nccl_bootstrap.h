#pragma once

#include <nccl.h>

#include <chrono>

namespace terse::nccl {

// What a rank needs for ncclCommInitRank, agreed over MPI_COMM_WORLD.
struct NcclBootstrap {
  int rank = 0;
  int size = 1;
  int device = 0;
  ncclUniqueId id{};
};

// Collective over MPI_COMM_WORLD (MPI is initialised if needed), every MPI wait bounded by
// `timeout`. Each rank picks its device (`requested`, or its local rank modulo the visible
// devices), makes it current, and all ranks exchange what they found (host, PCI bus id, any
// problem) before rank 0's ncclUniqueId is broadcast: so a rank without a usable GPU, or two
// ranks on one GPU, make every rank throw the same InvalidArgument before NCCL is touched,
// instead of NCCL's "duplicate GPU" on some ranks and a hang on the others.
NcclBootstrap bootstrap_nccl(int requested, std::chrono::milliseconds timeout);

}  // namespace terse::nccl
