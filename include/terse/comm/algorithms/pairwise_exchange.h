#pragma once

#include <memory>

#include "terse/comm/communicator.h"
#include "terse/comm/work.h"
#include "terse/core/tensor_view.h"

namespace terse {

// All-to-all and all-gather as W - 1 pairwise rounds: in round r (1 <= r < W) rank i sends to
// rank (i + r) mod W and receives from rank (i - r) mod W, and only then does round r + 1 start.
// Each rank has one message in flight each way per round, so no receiver is the target of W - 1
// senders at once (the incast of a linear all-to-all, which on shaped or oversubscribed links
// queues and delays the small control messages every message's rendezvous waits for). Same
// bytes as the one-call forms, W - 1 round trips of latency more. Built on all_to_allv with one
// non-zero count per rank, so it runs on every Communicator. The own chunk is copied when the
// call starts. The Work advances a round whenever test() or wait() finds the current one done:
// callers that overlap it with computation call test() between blocks of work, as for any Work.
//
// pairwise_all_to_all_async: `in` and `out` hold W equal chunks (as all_to_all_async).
std::unique_ptr<Work> pairwise_all_to_all_async(Communicator& comm, TensorView in, TensorView out);
// pairwise_all_gather_async: out.numel == W * in.numel (as all_gather_async).
std::unique_ptr<Work> pairwise_all_gather_async(Communicator& comm, TensorView in, TensorView out);

}  // namespace terse
