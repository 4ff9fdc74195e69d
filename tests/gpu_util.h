// Shared by the GPU tests: skipping where no GPU is visible, random inputs loaded identically
// into the CPU backend (the oracle) and the CUDA backend, and the normalized MSE between them.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "common/safetensors.h"
#include "worker/backend.h"
#include "worker/cpu/cpu_backend.h"
#include "worker/cuda/cuda_backend.h"
#include "worker/cuda/device.h"

namespace lp::testing {

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device visible: GPU tests skipped";
    ASSERT_TRUE(cuda::PinDevice(0).ok());
    cpu_ = MakeCpuBackend();
    gpu_ = MakeCudaBackend(0);
  }

  std::vector<float> Random(size_t n, float scale = 1.0f) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng_);
    return v;
  }

  // The same activation in both backends.
  std::pair<Tensor, Tensor> Act(int64_t rows, int64_t cols, float scale = 1.0f) {
    auto host = Random(size_t(rows * cols), scale);
    Tensor c = cpu_->Alloc(rows, cols), g = gpu_->Alloc(rows, cols);
    cpu_->Upload(host, c);
    gpu_->Upload(host, g);
    return {c, g};
  }

  // The same bf16 weight in both backends (rows = 1: a 1-D weight).
  std::pair<Tensor, Tensor> Weight(int64_t rows, int64_t cols, float scale = 0.05f,
                                   float offset = 0.0f) {
    auto host = Random(size_t(rows * cols), scale);
    std::vector<uint16_t> bf(host.size());
    for (size_t i = 0; i < host.size(); ++i) bf[i] = F32ToBf16(host[i] + offset);
    TensorInfo info;
    info.name = "w";
    info.dtype = DType::kBF16;
    info.shape = rows == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{rows, cols};
    info.end = bf.size() * 2;
    TensorView view{&info, reinterpret_cast<const uint8_t*>(bf.data())};
    auto c = cpu_->LoadWeight(view, rows, cols);
    auto g = gpu_->LoadWeight(view, rows, cols);
    gpu_->Synchronize();
    return {c, g};
  }

  // Fills a CUDA output with NaN first, so an element the op does not write fails the check.
  void Poison(Tensor& g) {
    std::vector<float> nan(size_t(g.numel()), NAN);
    gpu_->Upload(nan, g);
  }

  std::vector<float> Get(Backend& b, const Tensor& t) {
    std::vector<float> v(size_t(t.numel()));
    b.Download(t, v);
    return v;
  }

  // sum (gpu - cpu)^2 / sum cpu^2 over the two backends' copies.
  double Nmse(const Tensor& c, const Tensor& g) {
    const auto a = Get(*cpu_, c), b = Get(*gpu_, g);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!std::isfinite(b[i])) return INFINITY;
      diff += (double(b[i]) - a[i]) * (double(b[i]) - a[i]);
      norm += double(a[i]) * a[i];
    }
    return norm > 0 ? diff / norm : diff;
  }

  std::mt19937 rng_{12345};
  std::unique_ptr<Backend> cpu_, gpu_;
};

}  // namespace lp::testing
