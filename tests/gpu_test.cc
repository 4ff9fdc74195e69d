// GPU tests: run on the GPU machine (see the README's developer section). Where no GPU is
// visible (CI), every test skips with a message saying so.
#include <gtest/gtest.h>

#include "worker/cuda/device.h"

namespace lp {
namespace {

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device visible: GPU tests skipped";
    ASSERT_TRUE(cuda::PinDevice(0).ok());
  }
};

TEST_F(GpuTest, DeviceAnswersAndSelfTestPasses) {
  auto desc = cuda::DeviceDescription(0);
  ASSERT_TRUE(desc.ok()) << desc.status();
  std::printf("device 0: %s\n", desc->c_str());
  EXPECT_TRUE(cuda::SelfTest().ok());
}

TEST(GpuDevice, PinningAMissingDeviceIsAnError) {
  EXPECT_FALSE(cuda::PinDevice(cuda::DeviceCount()).ok());
}

}  // namespace
}  // namespace lp
