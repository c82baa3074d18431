#pragma once

#include <cstdint>

namespace terse {

// What one step's gradient exchange cost this rank. Two byte measures, because they answer
// different questions (docs/training.md, "Bytes and compression ratio"):
//  - wire bytes (bytes_sent / bytes_dense): what this rank transmits under the collective's
//    cost model (a ring all-reduce sends 2 (N-1)/N of the buffer, a ring all-gather (N-1)/N of
//    all ranks' payloads together), so an all-gather's growth with N shows;
//  - payload bytes (payload_bytes / payload_dense_bytes): the message this rank contributes,
//    headers, indices and densely sent tensors included, against the gradient as dense fp32.
//    Their quotient is the compression ratio as the DGC paper (and this project) reports it.
struct CommStats {
  // Wire bytes this rank sent (see above).
  uint64_t bytes_sent = 0;
  // Wire bytes a dense fp32 ring all-reduce of every gradient would send: 2 (N-1)/N * 4 * numel.
  uint64_t bytes_dense = 0;
  // Bytes of this rank's message: payloads of the compressed tensors plus the densely
  // exchanged tensors at 4 bytes per element (4 * numel when nothing is compressed).
  uint64_t payload_bytes = 0;
  // The gradient as dense fp32: 4 * numel.
  uint64_t payload_dense_bytes = 0;
  // Seconds this thread spent inside the communicator (starting collectives, driving them,
  // waiting in finish()): the communication that backward did not hide.
  double time_comm_s = 0;
  // Seconds spent encoding, decoding and updating error-feedback / DGC memory (0 when dense).
  double time_compress_s = 0;
  // Of time_comm_s: seconds in the exchange's first collective, a few bytes that every rank
  // sends once it has compressed, so it returns when the slowest rank arrives. That is waiting
  // for stragglers (compute and compression imbalance), not moving data; time_comm_s - this is
  // the transfer. 0 where the exchange has no such collective (the dense all-reduce).
  double time_wait_s = 0;
};

}  // namespace terse
