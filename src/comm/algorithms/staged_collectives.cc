#include "staged_collectives.h"

#include "terse/kernels/cuda_buffer.h"
#include "terse/kernels/cuda_power_sgd.h"

namespace terse::algorithms_detail {

namespace {

// Runs `fn` on device copies of the host arrays `in` and `out` when `c` moves GPU memory, else
// on the arrays themselves; `out` is copied back.
template <typename Fn>
void staged(Communicator& c, TensorView in, TensorView out, Fn fn) {
  if (c.device().is_cpu()) {
    fn(in, out);
    return;
  }
  const int device = c.device().index;
  const CudaCurrentDevice current(device);
  CudaBuffer din(device, in.nbytes()), dout(device, out.nbytes());
  cuda_copy(din.data(), in.data, in.nbytes());
  const TensorView vin(din.data(), in.numel, in.dtype, c.device());
  const TensorView vout(dout.data(), out.numel, out.dtype, c.device());
  fn(vin, vout);
  cuda_copy(out.data, dout.data(), out.nbytes());
}

}  // namespace

void host_all_reduce(Communicator& c, TensorView host, ReduceOp op) {
  if (c.device().is_cpu()) {
    c.all_reduce(host, op);
    return;
  }
  const int device = c.device().index;
  const CudaCurrentDevice current(device);
  CudaBuffer d(device, host.nbytes());
  cuda_copy(d.data(), host.data, host.nbytes());
  c.all_reduce(TensorView(d.data(), host.numel, host.dtype, c.device()), op);
  cuda_copy(host.data, d.data(), host.nbytes());
}

void host_all_gather(Communicator& c, TensorView in, TensorView out) {
  staged(c, in, out, [&](TensorView i, TensorView o) { c.all_gather(i, o); });
}

void host_all_gatherv(Communicator& c, TensorView in, TensorView out,
                      const std::vector<int64_t>& counts) {
  staged(c, in, out, [&](TensorView i, TensorView o) { c.all_gatherv(i, o, counts); });
}

void host_all_to_all(Communicator& c, TensorView in, TensorView out) {
  staged(c, in, out, [&](TensorView i, TensorView o) { c.all_to_all(i, o); });
}

void host_all_to_allv(Communicator& c, TensorView in, const std::vector<int64_t>& send_counts,
                      TensorView out, const std::vector<int64_t>& recv_counts) {
  staged(c, in, out,
         [&](TensorView i, TensorView o) { c.all_to_allv(i, send_counts, o, recv_counts); });
}

void device_all_reduce(Communicator& c, TensorView dev, ReduceOp op) {
  if (c.device().is_cuda()) {
    c.all_reduce(dev, op);
    return;
  }
  std::vector<uint8_t> host(dev.nbytes());
  cuda_copy(host.data(), dev.data, host.size());
  c.all_reduce(TensorView(host.data(), dev.numel, dev.dtype), op);
  cuda_copy(dev.data, host.data(), host.size());
}

void device_all_gatherv(Communicator& c, TensorView in, TensorView out,
                        const std::vector<int64_t>& counts) {
  if (c.device().is_cuda()) {
    c.all_gatherv(in, out, counts);
    return;
  }
  std::vector<uint8_t> hin(in.nbytes()), hout(out.nbytes());
  cuda_copy(hin.data(), in.data, hin.size());
  c.all_gatherv(TensorView(hin.data(), in.numel, in.dtype),
                TensorView(hout.data(), out.numel, out.dtype), counts);
  cuda_copy(out.data, hout.data(), hout.size());
}

void device_all_to_allv(Communicator& c, TensorView in, const std::vector<int64_t>& send_counts,
                        TensorView out, const std::vector<int64_t>& recv_counts) {
  if (c.device().is_cuda()) {
    c.all_to_allv(in, send_counts, out, recv_counts);
    return;
  }
  std::vector<uint8_t> hin(in.nbytes()), hout(out.nbytes());
  cuda_copy(hin.data(), in.data, hin.size());
  c.all_to_allv(TensorView(hin.data(), in.numel, in.dtype), send_counts,
                TensorView(hout.data(), out.numel, out.dtype), recv_counts);
  cuda_copy(out.data, hout.data(), hout.size());
}

}  // namespace terse::algorithms_detail
