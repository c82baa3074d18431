#include "terse/comm/local_communicator.h"

#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "../comm_util.h"
#include "../reduce_kernels.h"
#include "terse/core/check.h"

namespace terse {

namespace {

enum class Verb {
  kAllReduce,
  kAllGather,
  kAllGatherv,
  kAllToAll,
  kAllToAllv,
  kBroadcast,
  kBarrier
};

const char* verb_name(Verb v) {
  switch (v) {
    case Verb::kAllReduce:
      return "all_reduce";
    case Verb::kAllGather:
      return "all_gather";
    case Verb::kAllGatherv:
      return "all_gatherv";
    case Verb::kAllToAll:
      return "all_to_all";
    case Verb::kAllToAllv:
      return "all_to_allv";
    case Verb::kBroadcast:
      return "broadcast";
    case Verb::kBarrier:
      return "barrier";
  }
  return "unknown";
}

// One rank's arguments to a collective.
struct Part {
  Verb verb = Verb::kBarrier;
  TensorView in, out;
  std::vector<int64_t> counts, send_counts, recv_counts;
  ReduceOp op = ReduceOp::kSum;
  int root = 0;
};

enum class State { kGathering, kRunning, kDone, kAbandoned };

// The n-th collective of every rank.
struct Op {
  uint64_t seq = 0;
  std::vector<Part> parts;
  std::vector<bool> arrived;
  int n_arrived = 0;
  State state = State::kGathering;
  std::string error;           // with kDone: the ranks disagreed or the copy failed
  std::string abandon_reason;  // with kAbandoned: who gave up and why

  std::vector<int> ranks(bool present) const {
    std::vector<int> r;
    for (size_t i = 0; i < arrived.size(); ++i) {
      if (arrived[i] == present) r.push_back(static_cast<int>(i));
    }
    return r;
  }
};

// The rendezvous shared by the ranks of one local world.
struct Hub {
  explicit Hub(int n) : size(n) {}
  const int size;
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, std::shared_ptr<Op>> ops;  // ops still gathering (or abandoned)
  std::string failure;                          // set once a rank has failed

  // Called when a rank's thread threw: every op still gathering can never complete.
  void fail(const std::string& why) {
    std::lock_guard<std::mutex> lk(mu);
    if (failure.empty()) failure = why;
    for (auto& kv : ops) {
      if (kv.second->state == State::kGathering) {
        kv.second->state = State::kAbandoned;
        kv.second->abandon_reason = why;
      }
    }
    cv.notify_all();
  }
};

std::string describe_part(const Part& p) {
  std::ostringstream os;
  os << verb_name(p.verb);
  switch (p.verb) {
    case Verb::kAllReduce:
      os << " of " << p.in.numel << " " << dtype_name(p.in.dtype) << " (" << reduce_op_name(p.op)
         << ")";
      break;
    case Verb::kAllGather:
    case Verb::kAllToAll:
      os << " of " << p.in.numel << " " << dtype_name(p.in.dtype);
      break;
    case Verb::kAllGatherv:
      os << " of " << dtype_name(p.in.dtype) << " with counts [";
      for (size_t i = 0; i < p.counts.size(); ++i) os << (i ? ", " : "") << p.counts[i];
      os << "]";
      break;
    case Verb::kAllToAllv:
      os << " of " << dtype_name(p.in.dtype);
      break;
    case Verb::kBroadcast:
      os << " of " << p.in.numel << " " << dtype_name(p.in.dtype) << " from root " << p.root;
      break;
    case Verb::kBarrier:
      break;
  }
  return os.str();
}

// "" when all ranks called the same verb with matching arguments, else what differs.
std::string find_mismatch(const Op& op) {
  const auto& ps = op.parts;
  const int n = static_cast<int>(ps.size());
  for (int r = 1; r < n; ++r) {
    const Part& a = ps[0];
    const Part& b = ps[static_cast<size_t>(r)];
    bool same = a.verb == b.verb && a.in.dtype == b.in.dtype;
    if (same) {
      switch (a.verb) {
        case Verb::kAllReduce:
          same = a.in.numel == b.in.numel && a.op == b.op;
          break;
        case Verb::kAllGather:
        case Verb::kAllToAll:
          same = a.in.numel == b.in.numel;
          break;
        case Verb::kAllGatherv:
          same = a.counts == b.counts;
          break;
        case Verb::kBroadcast:
          same = a.in.numel == b.in.numel && a.root == b.root;
          break;
        case Verb::kAllToAllv:
        case Verb::kBarrier:
          break;
      }
    }
    if (!same) {
      return "rank 0 called " + describe_part(a) + " but rank " + std::to_string(r) + " called " +
             describe_part(b);
    }
  }
  if (ps[0].verb == Verb::kAllToAllv) {
    for (int s = 0; s < n; ++s) {
      for (int d = 0; d < n; ++d) {
        const int64_t sent = ps[static_cast<size_t>(s)].send_counts[static_cast<size_t>(d)];
        const int64_t expected = ps[static_cast<size_t>(d)].recv_counts[static_cast<size_t>(s)];
        if (sent != expected) {
          return "rank " + std::to_string(s) + " sends " + std::to_string(sent) +
                 " elements to rank " + std::to_string(d) + " but rank " + std::to_string(d) +
                 " expects " + std::to_string(expected) + " from it";
        }
      }
    }
  }
  return "";
}

uint8_t* bytes_at(const TensorView& v, int64_t offset) {
  return static_cast<uint8_t*>(v.data) + static_cast<size_t>(offset) * dtype_size(v.dtype);
}

// Does the data movement for every rank; the caller has checked that the ranks agree.
void execute(const Op& op) {
  const auto& ps = op.parts;
  const size_t n = ps.size();
  const Part& p0 = ps[0];
  const size_t esize = dtype_size(p0.in.dtype);
  switch (p0.verb) {
    case Verb::kAllReduce: {
      std::vector<const void*> in(n);
      for (size_t r = 0; r < n; ++r) in[r] = ps[r].in.data;
      // Reduce into rank 0's buffer (the kernel allows aliasing), then copy it to the others.
      detail::reduce_in_order(in, p0.in.data, p0.in.numel, p0.in.dtype, p0.op);
      for (size_t r = 1; r < n; ++r) {
        if (p0.in.numel > 0) std::memcpy(ps[r].in.data, p0.in.data, p0.in.nbytes());
      }
      break;
    }
    case Verb::kAllGather:
    case Verb::kAllGatherv: {
      // Rank r's input may be its own chunk of `out` (in-place gather): memmove, and each
      // destination chunk r is written only from rank r's input.
      for (size_t d = 0; d < n; ++d) {
        int64_t offset = 0;
        for (size_t r = 0; r < n; ++r) {
          const int64_t count = ps[r].in.numel;
          if (count > 0) std::memmove(bytes_at(ps[d].out, offset), ps[r].in.data, count * esize);
          offset += count;
        }
      }
      break;
    }
    case Verb::kAllToAll:
    case Verb::kAllToAllv: {
      // Stage every input first: a rank may pass the same buffer as in and out.
      std::vector<std::vector<uint8_t>> staged(n);
      for (size_t r = 0; r < n; ++r) {
        staged[r].assign(static_cast<uint8_t*>(ps[r].in.data),
                         static_cast<uint8_t*>(ps[r].in.data) + ps[r].in.nbytes());
      }
      auto send_count = [&](size_t s, size_t d) -> int64_t {
        return p0.verb == Verb::kAllToAll ? ps[s].in.numel / static_cast<int64_t>(n)
                                          : ps[s].send_counts[d];
      };
      for (size_t d = 0; d < n; ++d) {
        int64_t out_offset = 0;
        for (size_t s = 0; s < n; ++s) {
          int64_t in_offset = 0;
          for (size_t j = 0; j < d; ++j) in_offset += send_count(s, j);
          const int64_t count = send_count(s, d);
          if (count > 0) {
            std::memcpy(bytes_at(ps[d].out, out_offset),
                        staged[s].data() + static_cast<size_t>(in_offset) * esize, count * esize);
          }
          out_offset += count;
        }
      }
      break;
    }
    case Verb::kBroadcast: {
      const Part& root = ps[static_cast<size_t>(p0.root)];
      for (size_t r = 0; r < n; ++r) {
        if (static_cast<int>(r) != p0.root && root.in.numel > 0) {
          std::memcpy(ps[r].in.data, root.in.data, root.in.nbytes());
        }
      }
      break;
    }
    case Verb::kBarrier:
      break;
  }
}

class LocalWork : public Work {
 public:
  LocalWork(std::shared_ptr<Hub> hub, std::shared_ptr<Op> op, int rank,
            std::chrono::milliseconds default_timeout, std::string what)
      : hub_(std::move(hub)),
        op_(std::move(op)),
        rank_(rank),
        default_timeout_(default_timeout),
        what_(std::move(what)) {}

  bool test() override {
    std::lock_guard<std::mutex> lk(hub_->mu);
    return finished_locked();
  }

  void wait(std::chrono::milliseconds timeout) override {
    TERSE_CHECK(timeout.count() > 0, InvalidArgument, "wait timeout must be > 0 ms, got ",
                timeout.count(), " ms; pass a positive duration");
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock<std::mutex> lk(hub_->mu);
    while (!finished_locked()) {
      if (op_->state == State::kRunning) {
        // The last rank is copying; that is bounded work, so it is waited for past the deadline.
        hub_->cv.wait(lk);
        continue;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        const std::string msg = timeout_message(timeout);
        op_->state = State::kAbandoned;
        op_->abandon_reason = "rank " + std::to_string(rank_) + " gave up on it: " + msg;
        hub_->cv.notify_all();
        TERSE_THROW(Timeout, msg);
      }
      hub_->cv.wait_until(lk, deadline);
    }
  }

  void wait() override { wait(default_timeout_); }

 private:
  // Requires hub_->mu. True when done; throws when the op can no longer complete.
  bool finished_locked() {
    switch (op_->state) {
      case State::kDone:
        TERSE_CHECK(op_->error.empty(), CommError, what_, " on rank ", rank_, " of ", hub_->size,
                    " (local) failed: ", op_->error,
                    "; every rank must call the same collectives in the same order with matching "
                    "dtypes, sizes and roots");
        return true;
      case State::kAbandoned:
        TERSE_THROW(Timeout, what_, " on rank ", rank_, " of ", hub_->size,
                    " (local) cannot complete: ", op_->abandon_reason, " (ranks ",
                    detail::format_ranks(op_->ranks(true)), " arrived, ",
                    detail::format_ranks(op_->ranks(false)), " did not)");
      case State::kGathering:
      case State::kRunning:
        return false;
    }
    return false;
  }

  std::string timeout_message(std::chrono::milliseconds timeout) const {
    const std::vector<int> missing = op_->ranks(false);
    std::ostringstream os;
    os << what_ << " on rank " << rank_ << " of " << hub_->size
       << " (local) did not complete within "
       << detail::format_seconds(static_cast<double>(timeout.count()) / 1000.0) << ": rank"
       << (op_->n_arrived == 1 ? " " : "s ") << detail::format_ranks(op_->ranks(true))
       << " arrived, rank" << (missing.size() == 1 ? " " : "s ") << detail::format_ranks(missing)
       << " did not; a rank may have died or hung, or the ranks called collectives in different "
          "orders: check that rank, or raise the timeout (Communicator::set_timeout or "
          "TERSE_TIMEOUT_S)";
    return os.str();
  }

  std::shared_ptr<Hub> hub_;
  std::shared_ptr<Op> op_;
  int rank_;
  std::chrono::milliseconds default_timeout_;
  std::string what_;
};

class LocalCommunicator : public Communicator {
 public:
  LocalCommunicator(std::shared_ptr<Hub> hub, int rank) : hub_(std::move(hub)), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return hub_->size; }
  const char* backend() const override { return "local"; }

  std::unique_ptr<Work> all_reduce_async(TensorView inout, ReduceOp op) override {
    detail::check_all_reduce(inout, op, rank_);
    Part p;
    p.verb = Verb::kAllReduce;
    p.in = p.out = inout;
    p.op = op;
    return arrive(std::move(p), inout.nbytes(), inout.dtype);
  }

  std::unique_ptr<Work> all_gather_async(TensorView in, TensorView out) override {
    detail::check_all_gather(in, out, rank_, size());
    Part p;
    p.verb = Verb::kAllGather;
    p.in = in;
    p.out = out;
    return arrive(std::move(p), out.nbytes(), in.dtype);
  }

  std::unique_ptr<Work> all_gatherv_async(TensorView in, TensorView out,
                                          const std::vector<int64_t>& counts) override {
    detail::check_all_gatherv(in, out, counts, rank_, size());
    Part p;
    p.verb = Verb::kAllGatherv;
    p.in = in;
    p.out = out;
    p.counts = counts;
    return arrive(std::move(p), out.nbytes(), in.dtype);
  }

  std::unique_ptr<Work> all_to_all_async(TensorView in, TensorView out) override {
    detail::check_all_to_all(in, out, rank_, size());
    Part p;
    p.verb = Verb::kAllToAll;
    p.in = in;
    p.out = out;
    return arrive(std::move(p), in.nbytes(), in.dtype);
  }

  std::unique_ptr<Work> all_to_allv_async(TensorView in, const std::vector<int64_t>& send_counts,
                                          TensorView out,
                                          const std::vector<int64_t>& recv_counts) override {
    detail::check_all_to_allv(in, send_counts, out, recv_counts, rank_, size());
    Part p;
    p.verb = Verb::kAllToAllv;
    p.in = in;
    p.out = out;
    p.send_counts = send_counts;
    p.recv_counts = recv_counts;
    return arrive(std::move(p), in.nbytes(), in.dtype);
  }

  std::unique_ptr<Work> broadcast_async(TensorView inout, int root) override {
    detail::check_broadcast(inout, root, rank_, size());
    Part p;
    p.verb = Verb::kBroadcast;
    p.in = p.out = inout;
    p.root = root;
    return arrive(std::move(p), inout.nbytes(), inout.dtype);
  }

  std::unique_ptr<Work> barrier_async() override {
    Part p;
    p.verb = Verb::kBarrier;
    p.in.dtype = DType::kU8;
    return arrive(std::move(p), 0, DType::kU8);
  }

  void fail(const std::string& why) { hub_->fail(why); }

 private:
  std::unique_ptr<Work> arrive(Part part, size_t nbytes, DType dtype) {
    const uint64_t seq = next_seq_++;
    std::string what = std::string(verb_name(part.verb)) + " #" + std::to_string(seq);
    if (part.verb != Verb::kBarrier) {
      what += " of " + detail::format_bytes(nbytes) + " (" + dtype_name(dtype) + ")";
    }
    std::shared_ptr<Op> op;
    {
      std::unique_lock<std::mutex> lk(hub_->mu);
      TERSE_CHECK(hub_->failure.empty(), CommError, what, " on rank ", rank_, " of ", hub_->size,
                  " (local) cannot start: ", hub_->failure);
      std::shared_ptr<Op>& slot = hub_->ops[seq];
      if (!slot) {
        slot = std::make_shared<Op>();
        slot->seq = seq;
        slot->parts.resize(static_cast<size_t>(hub_->size));
        slot->arrived.assign(static_cast<size_t>(hub_->size), false);
      }
      op = slot;
      TERSE_CHECK(op->state == State::kGathering, CommError, what, " on rank ", rank_, " of ",
                  hub_->size, " (local) arrived too late: ", op->abandon_reason,
                  "; the world is out of step, restart it");
      op->parts[static_cast<size_t>(rank_)] = std::move(part);
      op->arrived[static_cast<size_t>(rank_)] = true;
      ++op->n_arrived;
      if (op->n_arrived == hub_->size) {
        op->state = State::kRunning;
        hub_->ops.erase(seq);
        lk.unlock();
        // The last rank to arrive moves everyone's data, outside the lock; waiters keep
        // waiting while the state is kRunning.
        std::string error = find_mismatch(*op);
        if (error.empty()) {
          try {
            execute(*op);
          } catch (const std::exception& e) {
            error = e.what();
          }
        }
        lk.lock();
        op->error = std::move(error);
        op->state = State::kDone;
        hub_->cv.notify_all();
      }
    }
    return std::make_unique<LocalWork>(hub_, std::move(op), rank_, timeout(), std::move(what));
  }

  std::shared_ptr<Hub> hub_;
  int rank_;
  uint64_t next_seq_ = 0;
};

// Rethrows a copy of the exception with its type kept and `prefix` before its message.
[[noreturn]] void rethrow_with_prefix(const std::exception_ptr& ep, const std::string& prefix) {
  try {
    std::rethrow_exception(ep);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(prefix + e.what());
  } catch (const CommError& e) {
    throw CommError(prefix + e.what());
  } catch (const CudaError& e) {
    throw CudaError(prefix + e.what());
  } catch (const Timeout& e) {
    throw Timeout(prefix + e.what());
  } catch (const CorruptData& e) {
    throw CorruptData(prefix + e.what());
  } catch (const NumericalError& e) {
    throw NumericalError(prefix + e.what());
  } catch (const Error& e) {
    throw Error(prefix + e.what());
  } catch (const std::exception& e) {
    throw std::runtime_error(prefix + e.what());
  } catch (...) {
    throw std::runtime_error(prefix + "threw an exception that is not a std::exception");
  }
}

}  // namespace

std::vector<std::unique_ptr<Communicator>> make_local_communicators(int world_size) {
  TERSE_CHECK(world_size >= 1 && world_size <= 4096, InvalidArgument,
              "local world size must be in [1, 4096], got ", world_size,
              "; pass the number of thread ranks to simulate");
  auto hub = std::make_shared<Hub>(world_size);
  std::vector<std::unique_ptr<Communicator>> comms;
  comms.reserve(static_cast<size_t>(world_size));
  for (int r = 0; r < world_size; ++r) comms.push_back(std::make_unique<LocalCommunicator>(hub, r));
  return comms;
}

void run_local_ranks(int world_size, const std::function<void(Communicator&)>& fn) {
  auto comms = make_local_communicators(world_size);
  std::mutex mu;
  std::exception_ptr first;
  int first_rank = -1;
  std::vector<std::thread> threads;
  threads.reserve(comms.size());
  for (int r = 0; r < world_size; ++r) {
    threads.emplace_back([&, r] {
      Communicator& comm = *comms[static_cast<size_t>(r)];
      try {
        fn(comm);
      } catch (const std::exception& e) {
        {
          std::lock_guard<std::mutex> lk(mu);
          if (!first) {
            first = std::current_exception();
            first_rank = r;
          }
        }
        static_cast<LocalCommunicator&>(comm).fail("rank " + std::to_string(r) +
                                                   " failed: " + e.what());
      } catch (...) {
        {
          std::lock_guard<std::mutex> lk(mu);
          if (!first) {
            first = std::current_exception();
            first_rank = r;
          }
        }
        static_cast<LocalCommunicator&>(comm).fail("rank " + std::to_string(r) +
                                                   " failed with a non-standard exception");
      }
    });
  }
  for (auto& t : threads) t.join();
  if (first) rethrow_with_prefix(first, "rank " + std::to_string(first_rank) + ": ");
}

}  // namespace terse
