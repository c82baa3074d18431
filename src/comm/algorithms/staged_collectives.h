#pragma once

// Collectives of one memory on a communicator of either memory, for the Algorithms that run on
// CUDA views (PowerSgd, SparseAllGather, SparseAllReduce): host arrays on a communicator of GPU
// memory (NCCL) go through copies in its GPU's memory; GPU arrays on a communicator of host
// memory (MPI, threads-as-ranks) go through host copies. Otherwise the verb runs on the arrays
// themselves. Each returns when the data is in place. Internal to src/comm/algorithms.

#include <cstdint>
#include <vector>

#include "terse/comm/communicator.h"
#include "terse/comm/reduce_op.h"
#include "terse/core/tensor_view.h"

namespace terse::algorithms_detail {

// Host arrays (TensorView::of) on any communicator.
void host_all_reduce(Communicator& c, TensorView host, ReduceOp op);
void host_all_gather(Communicator& c, TensorView in, TensorView out);
void host_all_gatherv(Communicator& c, TensorView in, TensorView out,
                      const std::vector<int64_t>& counts);
void host_all_to_all(Communicator& c, TensorView in, TensorView out);
void host_all_to_allv(Communicator& c, TensorView in, const std::vector<int64_t>& send_counts,
                      TensorView out, const std::vector<int64_t>& recv_counts);

// Arrays of one CUDA device (views on it) on any communicator; on a host communicator only
// these elements cross to the host and back.
void device_all_reduce(Communicator& c, TensorView dev, ReduceOp op);
void device_all_gatherv(Communicator& c, TensorView in, TensorView out,
                        const std::vector<int64_t>& counts);
void device_all_to_allv(Communicator& c, TensorView in, const std::vector<int64_t>& send_counts,
                        TensorView out, const std::vector<int64_t>& recv_counts);

}  // namespace terse::algorithms_detail
