// The launch tables of the multi-tensor launches (launch_table.cuh).
#include "launch_table.cuh"

namespace terse::cuda_launch {

void add_chunks(std::vector<ChunkRef>& chunks, size_t task, int64_t n, int64_t chunk_elements) {
  const int64_t count = (n + chunk_elements - 1) / chunk_elements;
  for (int64_t c = 0; c < count; ++c) {
    chunks.push_back({static_cast<int32_t>(task), static_cast<int32_t>(c)});
  }
}

unsigned char* upload(const HostTable& table, cuda_codec::Scratch slot, const char* what) {
  auto* dev = static_cast<unsigned char*>(cuda_codec::scratch(slot, table.size()));
  upload_to(dev, table, what);
  return dev;
}

void upload_to(unsigned char* dev, const HostTable& table, const char* what) {
  cuda_codec::cuda_check(
      cudaMemcpyAsync(dev, table.data(), table.size(), cudaMemcpyHostToDevice, cudaStreamLegacy),
      what);
}

}  // namespace terse::cuda_launch
