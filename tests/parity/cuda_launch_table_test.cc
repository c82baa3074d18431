// The launch tables of the multi-tensor launches (src/kernels/cuda/launch_table.cuh): the byte
// layout the kernels read at fixed offsets (every array from a 16-byte boundary, zero padding
// between) and the chunking, which run without a GPU; on a GPU, the upload. The executors'
// parity tests check the launches that read these tables.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "gpu_skip.h"
#include "launch_table.cuh"
#include "terse/core/error.h"

namespace terse {
namespace {

using cuda_launch::ChunkRef;
using cuda_launch::HostTable;

struct Odd {  // 12 bytes, 4-byte aligned: the next array needs padding after an odd count
  int32_t a, b, c;
};
struct Wide {  // 16-byte aligned, as a Desc holding a Pack4 could be
  alignas(16) float v[4];
};

// The bytes of v from `at` in t.
template <typename V>
bool holds(const HostTable& t, size_t at, const std::vector<V>& v) {
  if (at + v.size() * sizeof(V) > t.size()) return false;
  return v.empty() || std::memcmp(t.data() + at, v.data(), v.size() * sizeof(V)) == 0;
}

TEST(CudaLaunchTable, ArraysStartOnSixteenByteBoundariesAfterZeroPadding) {
  const std::vector<Odd> odd = {{1, 2, 3}, {4, 5, 6}, {7, 8, 9}};  // 36 bytes
  const std::vector<ChunkRef> chunks = {{0, 0}, {0, 1}, {2, 7}};   // 24 bytes
  const std::vector<int64_t> starts = {0, 5};                      // 16 bytes
  const std::vector<Wide> wide = {{{1.5f, 2.5f, 3.5f, 4.5f}}};     // 16 bytes
  const std::vector<uint8_t> bytes = {0xab};                       // 1 byte
  HostTable t;
  EXPECT_EQ(t.append(odd), 0u);
  EXPECT_EQ(t.size(), 36u);
  EXPECT_EQ(t.append(chunks), 48u);
  EXPECT_EQ(t.size(), 72u);
  EXPECT_EQ(t.append(bytes), 80u);
  EXPECT_EQ(t.append(starts), 96u);
  EXPECT_EQ(t.append(wide), 112u);
  ASSERT_EQ(t.size(), 128u);
  EXPECT_TRUE(holds(t, 0, odd));
  EXPECT_TRUE(holds(t, 48, chunks));
  EXPECT_TRUE(holds(t, 80, bytes));
  EXPECT_TRUE(holds(t, 96, starts));
  EXPECT_TRUE(holds(t, 112, wide));
  // The padding is zero: [36, 48), [72, 80), [81, 96).
  for (size_t i : {36u, 47u, 72u, 79u, 81u, 95u}) EXPECT_EQ(t.data()[i], 0) << "byte " << i;
}

TEST(CudaLaunchTable, EmptyArraysTakeNoBytesButStillAlign) {
  HostTable t;
  const std::vector<ChunkRef> none;
  EXPECT_EQ(t.append(none), 0u);
  EXPECT_TRUE(t.empty());  // what cuda_param_state_apply's "every tensor is empty" relies on
  const std::vector<uint8_t> three = {1, 2, 3};
  EXPECT_EQ(t.append(three), 0u);
  // An empty array after 3 bytes starts at 16 and pads the table to 16 bytes: the old layout
  // of the executors, whose offsets the kernels get.
  EXPECT_EQ(t.append(none), 16u);
  EXPECT_EQ(t.size(), 16u);
  EXPECT_EQ(t.append(three), 16u);
  EXPECT_EQ(t.size(), 19u);
  // A pointer and a count, as the 8-bit step appends its two maps.
  const uint8_t two[2] = {7, 9};
  EXPECT_EQ(t.append(two, 2), 32u);
  EXPECT_EQ(t.size(), 34u);
  EXPECT_EQ(t.data()[32], 7);
  EXPECT_EQ(t.data()[33], 9);
}

TEST(CudaLaunchTable, SizeWithIsTheSizeAppendGives) {
  // cuda_projected_apply sizes its second table before building it.
  HostTable t;
  size_t planned = 0;
  for (size_t count : {0u, 1u, 3u, 0u, 5u, 2u}) {
    planned = HostTable::size_with<Odd>(planned, count);
    t.append(std::vector<Odd>(count, Odd{1, 2, 3}));
    EXPECT_EQ(t.size(), planned) << "after " << count << " records";
    planned = HostTable::size_with<ChunkRef>(planned, count);
    t.append(std::vector<ChunkRef>(count, ChunkRef{4, 5}));
    EXPECT_EQ(t.size(), planned) << "after " << count << " chunk references";
  }
}

TEST(CudaLaunchTable, AddChunksCoversTheTensorInOrder) {
  std::vector<ChunkRef> c;
  cuda_launch::add_chunks(c, 3, 0, 65536);
  EXPECT_TRUE(c.empty());
  cuda_launch::add_chunks(c, 3, 1, 65536);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].task, 3);
  EXPECT_EQ(c[0].chunk, 0);
  c.clear();
  cuda_launch::add_chunks(c, 0, 65536, 65536);
  EXPECT_EQ(c.size(), 1u);
  cuda_launch::add_chunks(c, 1, 2 * 65536 + 1, 65536);
  ASSERT_EQ(c.size(), 4u);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(c[1 + k].task, 1);
    EXPECT_EQ(c[1 + k].chunk, k);
  }
}

TEST(CudaLaunchTable, EightBitChunksAreWholeBlocksOfTheStep) {
  // The 8-bit step cuts a tensor into chunks of 32 blocks of 256: ceil(ceil(n / 256) / 32)
  // chunks, which add_chunks gives with chunks of 8192 elements.
  for (int64_t n = 1; n < 3 * 8192 + 600; n += (n < 9000 ? 1 : 37)) {
    std::vector<ChunkRef> c;
    cuda_launch::add_chunks(c, 0, n, 32 * 256);
    const int64_t blocks = (n + 255) / 256;
    ASSERT_EQ(static_cast<int64_t>(c.size()), (blocks + 31) / 32) << "n = " << n;
  }
}

TEST(CudaLaunchTable, UploadPutsTheTableOnTheDevice) {
  TERSE_SKIP_WITHOUT_GPU();
  int device = -1;
  ASSERT_EQ(cudaGetDevice(&device), cudaSuccess);
  HostTable t;
  const std::vector<ChunkRef> chunks = {{0, 0}, {1, 2}, {3, 4}};
  const std::vector<Odd> odd = {{1, 2, 3}};
  t.append(odd);
  t.append(chunks);
  std::vector<unsigned char> back(t.size(), 0xff);
  bool ran = false;
  cuda_launch::with_device(device, [&] {
    unsigned char* dev =
        cuda_launch::upload(t, cuda_codec::Scratch::kLaunchTable, "the test's upload");
    EXPECT_EQ(reinterpret_cast<uintptr_t>(dev) % HostTable::kAlign, 0u);
    // Synchronous, on the legacy default stream: after the upload.
    ASSERT_EQ(cudaMemcpy(back.data(), dev, back.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    ran = true;
  });
  EXPECT_TRUE(ran);
  EXPECT_EQ(std::memcmp(back.data(), t.data(), t.size()), 0);
  // An empty table uploads nothing and fails nothing (a call whose tensors are all empty).
  cuda_launch::with_device(device, [&] {
    cuda_launch::upload(HostTable{}, cuda_codec::Scratch::kLaunchTable, "the empty upload");
  });
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

TEST(CudaLaunchTable, PerTypeTableLaunchesEachTypePresentWithItsArrays) {
  cuda_launch::PerTypeTable<Odd> table;
  EXPECT_TRUE(table.empty());
  // f32: two tensors (3 and 1 chunks of 4 elements); bf16: none; f16: one (1 chunk).
  table.add(0, Odd{1, 2, 3}, 9, 4);
  table.add(2, Odd{7, 8, 9}, 4, 4);
  table.add(0, Odd{4, 5, 6}, 1, 4);
  EXPECT_FALSE(table.empty());
  TERSE_SKIP_WITHOUT_GPU();
  int device = -1;
  ASSERT_EQ(cudaGetDevice(&device), cudaSuccess);
  struct Seen {
    DType type;
    std::vector<Odd> descs;
    std::vector<ChunkRef> chunks;
  };
  std::vector<Seen> seen;
  cuda_launch::with_device(device, [&] {
    table.launch(cuda_codec::Scratch::kLaunchTable, "the test's upload",
                 [&](DType type, const Odd* d, const ChunkRef* c, unsigned blocks) {
                   EXPECT_EQ(reinterpret_cast<uintptr_t>(d) % HostTable::kAlign, 0u);
                   EXPECT_EQ(reinterpret_cast<uintptr_t>(c) % HostTable::kAlign, 0u);
                   Seen s{type, std::vector<Odd>(type == DType::kF32 ? 2 : 1), {}};
                   s.chunks.resize(blocks);
                   // Synchronous, on the legacy default stream: after the upload.
                   ASSERT_EQ(cudaMemcpy(s.descs.data(), d, s.descs.size() * sizeof(Odd),
                                        cudaMemcpyDeviceToHost),
                             cudaSuccess);
                   ASSERT_EQ(cudaMemcpy(s.chunks.data(), c, blocks * sizeof(ChunkRef),
                                        cudaMemcpyDeviceToHost),
                             cudaSuccess);
                   seen.push_back(s);
                 });
  });
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].type, DType::kF32);
  ASSERT_EQ(seen[0].chunks.size(), 4u);
  EXPECT_EQ(seen[0].descs[0].a, 1);
  EXPECT_EQ(seen[0].descs[1].c, 6);
  const int want[4][2] = {{0, 0}, {0, 1}, {0, 2}, {1, 0}};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(seen[0].chunks[static_cast<size_t>(i)].task, want[i][0]) << "chunk " << i;
    EXPECT_EQ(seen[0].chunks[static_cast<size_t>(i)].chunk, want[i][1]) << "chunk " << i;
  }
  EXPECT_EQ(seen[1].type, DType::kF16);
  ASSERT_EQ(seen[1].chunks.size(), 1u);
  EXPECT_EQ(seen[1].descs[0].b, 8);
  EXPECT_EQ(seen[1].chunks[0].task, 0);
  EXPECT_EQ(seen[1].chunks[0].chunk, 0);
}

TEST(CudaLaunchTable, WithDevicePassesTheWorksErrorOn) {
  TERSE_SKIP_WITHOUT_GPU();
  int device = -1;
  ASSERT_EQ(cudaGetDevice(&device), cudaSuccess);
  EXPECT_THROW(cuda_launch::with_device(device, [] { TERSE_THROW(InvalidArgument, "stop"); }),
               InvalidArgument);
  int after = -1;
  ASSERT_EQ(cudaGetDevice(&after), cudaSuccess);
  EXPECT_EQ(after, device);
}

}  // namespace
}  // namespace terse
