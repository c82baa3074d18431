#pragma once

// Pieces shared by the compressed gradient exchanges (gradient_compression.cc, dgc_exchange.cc,
// powersgd_exchange.cc): spec parsing, the dense/compressed split, the fused dense all-reduce,
// the payload all-gather and the start-up agreement check.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "terse/comm/communicator.h"
#include "terse/comm/work.h"
#include "terse/compress/error_feedback.h"
#include "terse/optim/param.h"

namespace terse::exchange {

// "name:key=value,key=value" split into the name and its options; InvalidArgument on an empty
// name, a missing '=', an empty key or a repeated key (`what` names the flag in messages).
struct Spec {
  std::string name;
  std::map<std::string, std::string> options;
};
Spec parse_spec(const std::string& text, const char* what);

// Reads and removes one option; InvalidArgument names the key, the value seen and the range.
double take_double(Spec& spec, const std::string& key, double fallback, double lo, double hi,
                   bool lo_open);
int64_t take_int(Spec& spec, const std::string& key, int64_t fallback, int64_t lo, int64_t hi);
bool take_bool(Spec& spec, const std::string& key, bool fallback);
std::string take_choice(Spec& spec, const std::string& key, const std::string& fallback,
                        const std::vector<std::string>& choices);
// InvalidArgument naming the first option left over and listing `known`.
void reject_unknown(const Spec& spec, const std::vector<std::string>& known);

std::string param_label(const Param& p, size_t index);

// Which parameters travel compressed: more than one dimension and at least `dense_below`
// elements (the reference DGC sparsifies every dim() > 1 tensor). The rest go dense.
struct Split {
  std::vector<size_t> compressed;
  std::vector<size_t> dense;
  int64_t compressed_numel = 0;
  int64_t dense_numel = 0;
  std::string str() const;  // "3 compressed tensors (421120 elements), 5 dense (522)"
};
Split split_params(const std::vector<Param>& params, int64_t dense_below);

// Checks every gradient is a CPU f32 view of its parameter's size (InvalidArgument otherwise).
// cuda_ok: the method also runs on CUDA gradients (all on one device).
void check_f32_grads(const std::vector<Param>& params, const char* method, bool cuda_ok = false);

// Start-up agreement: all_gathers a hash of `signature` (the spec text and every shape) and
// throws InvalidArgument on every rank when any rank differs, naming the first such rank and
// both signatures' summaries. Collective.
void check_agreement(Communicator& comm, const std::string& signature);
std::string shapes_signature(const std::vector<Param>& params);

// One fused f32 all-reduce (sum) of the dense parameters' gradients, started by start() and
// averaged back into the gradients by finish().
class DenseAllReduce {
 public:
  DenseAllReduce(Communicator& comm, std::vector<size_t> dense, const std::vector<Param>& params);
  void start(const std::vector<Param>& params);
  void finish(const std::vector<Param>& params);
  int64_t numel() const { return static_cast<int64_t>(buffer_.size()); }

 private:
  Communicator& comm_;
  std::vector<size_t> dense_;
  std::vector<float> buffer_;
  std::unique_ptr<Work> work_;
};

// The payload exchange of the compressed tensors: every rank contributes one byte blob made of
// `count` payloads (lengths[i] bytes each, in tensor order); all_gathers the lengths, then
// all_gathervs the blobs. A negative length is an error flag: every rank then throws
// NumericalError naming the rank and tensor. Lengths and blob sizes from peers are validated
// (CorruptData naming the rank) before any byte is read.
class PayloadAllGather {
 public:
  PayloadAllGather(Communicator& comm, size_t count) : comm_(comm), count_(count) {}
  // Returns, per tensor, the payloads of every rank in rank order (views into this object).
  const std::vector<std::vector<PayloadView>>& run(const std::vector<uint8_t>& blob,
                                                   const std::vector<int64_t>& lengths,
                                                   const std::vector<std::string>& tensor_names);
  // Wire bytes this rank sent in the last run under the ring model: (N-1)/N of all blobs plus
  // the lengths.
  uint64_t last_wire_bytes() const { return last_wire_bytes_; }
  // Seconds the last run spent in its lengths all-gather: waiting for the slowest rank
  // (CommStats::time_wait_s).
  double last_wait_s() const { return last_wait_s_; }

 private:
  Communicator& comm_;
  size_t count_;
  std::vector<int64_t> all_lengths_;
  std::vector<uint8_t> gathered_;
  std::vector<std::vector<PayloadView>> views_;
  uint64_t last_wire_bytes_ = 0;
  double last_wait_s_ = 0;
};

// seed_step for tensor `tensor` of rank `rank` at `step`: every choice is reproducible, and
// ranks draw independently so their rounding and sampling noise averages out.
uint64_t seed_step(uint64_t seed, int64_t step, size_t tensor, int rank);

// Ring all-reduce wire bytes, 2 (N-1)/N * nbytes.
uint64_t ring_bytes(uint64_t nbytes, int world);

}  // namespace terse::exchange
