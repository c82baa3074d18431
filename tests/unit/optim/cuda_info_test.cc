#include "terse/kernels/cuda_info.h"

#include <gtest/gtest.h>

namespace terse {
namespace {

TEST(CudaInfo, QueryNeverThrowsAndExplainsZeroDevices) {
  const CudaInfo info = CudaInfo::query();
#ifdef TERSE_HAVE_CUDA
  EXPECT_TRUE(info.compiled);
  EXPECT_GT(info.runtime_version, 0);
#else
  EXPECT_FALSE(info.compiled);
  EXPECT_TRUE(info.devices.empty());
#endif
  if (info.devices.empty()) {
    EXPECT_FALSE(info.status.empty());
    EXPECT_NE(info.status, "ok");
  } else {
    EXPECT_EQ(info.status, "ok");
    for (const auto& d : info.devices) {
      EXPECT_FALSE(d.name.empty());
      EXPECT_GE(d.major, 3);
      EXPECT_GT(d.total_memory_bytes, 0u);
    }
  }
}

}  // namespace
}  // namespace terse
