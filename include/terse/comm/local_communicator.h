#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "terse/comm/communicator.h"

namespace terse {

// Threads-as-ranks backend, for tests (as Gloo's tests do): `world_size` communicators that
// share one in-process rendezvous; give each to its own thread. The n-th collective of every
// rank forms one operation, computed by the last rank to arrive, in rank order, so results are
// bit-identical run to run and equal to a single-process reference that reduces rank 0, 1, ...
// in turn (bf16/f16 sums in f32, rounded once). Mismatched calls (verb, dtype, sizes, root)
// give CommError on every rank; a rank that does not arrive before the deadline gives Timeout
// naming the ranks that did and did not arrive. backend() is "local".
std::vector<std::unique_ptr<Communicator>> make_local_communicators(int world_size);

// Runs fn(comm) for every rank of a fresh local world, one thread per rank, and joins them.
// When a rank throws, the others' pending and later collectives fail fast with CommError, and
// the first exception is rethrown with its type kept and "rank r: " prepended to its message.
void run_local_ranks(int world_size, const std::function<void(Communicator&)>& fn);

}  // namespace terse
