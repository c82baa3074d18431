#pragma once

// A Communicator that hands every verb to another one: the base of the tests' communicators that
// corrupt, delay or count one kind of message and pass the rest through unchanged (they override
// only the verbs they touch).

#include <memory>
#include <vector>

#include "terse/comm/communicator.h"

namespace terse::test_support {

class ForwardingCommunicator : public Communicator {
 public:
  explicit ForwardingCommunicator(Communicator& inner) : inner_(&inner) {}
  explicit ForwardingCommunicator(std::unique_ptr<Communicator> owned)
      : owned_(std::move(owned)), inner_(owned_.get()) {}

  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  const char* backend() const override { return inner_->backend(); }
  Device device() const override { return inner_->device(); }
  std::unique_ptr<Work> all_reduce_async(TensorView inout, ReduceOp op) override {
    return inner_->all_reduce_async(inout, op);
  }
  std::unique_ptr<Work> all_gather_async(TensorView in, TensorView out) override {
    return inner_->all_gather_async(in, out);
  }
  std::unique_ptr<Work> all_gatherv_async(TensorView in, TensorView out,
                                          const std::vector<int64_t>& counts) override {
    return inner_->all_gatherv_async(in, out, counts);
  }
  std::unique_ptr<Work> all_to_all_async(TensorView in, TensorView out) override {
    return inner_->all_to_all_async(in, out);
  }
  std::unique_ptr<Work> all_to_allv_async(TensorView in, const std::vector<int64_t>& send_counts,
                                          TensorView out,
                                          const std::vector<int64_t>& recv_counts) override {
    return inner_->all_to_allv_async(in, send_counts, out, recv_counts);
  }
  std::unique_ptr<Work> broadcast_async(TensorView inout, int root) override {
    return inner_->broadcast_async(inout, root);
  }
  std::unique_ptr<Work> barrier_async() override { return inner_->barrier_async(); }

 protected:
  Communicator& inner() const { return *inner_; }

 private:
  std::unique_ptr<Communicator> owned_;
  Communicator* inner_;
};

}  // namespace terse::test_support
