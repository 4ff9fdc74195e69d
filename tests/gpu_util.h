// Shared by the GPU tests: skipping where no GPU is visible, random inputs (activations, bf16
// and 4-bit weights) loaded identically into the CPU backend (the oracle) and the CUDA backend,
// and the normalized MSE between them.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "common/int4.h"
#include "common/safetensors.h"
#include "engine/backend.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/cuda.h"

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

  // The same bf16 (or f16) weight in both backends (rows = 1: a 1-D weight).
  std::pair<Tensor, Tensor> Weight(int64_t rows, int64_t cols, float scale = 0.05f,
                                   float offset = 0.0f, DType dtype = DType::kBF16) {
    auto host = Random(size_t(rows * cols), scale);
    std::vector<uint16_t> bf(host.size());
    for (size_t i = 0; i < host.size(); ++i) {
      bf[i] = dtype == DType::kF16 ? F32ToF16(host[i] + offset) : F32ToBf16(host[i] + offset);
    }
    TensorInfo info;
    info.name = "w";
    info.dtype = dtype;
    info.shape = rows == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{rows, cols};
    info.end = bf.size() * 2;
    TensorView view{&info, reinterpret_cast<const uint8_t*>(bf.data())};
    auto c = cpu_->LoadWeight(view, rows, cols);
    auto g = gpu_->LoadWeight(view, rows, cols);
    gpu_->Synchronize();
    return {c, g};
  }

  // A random 4-bit weight [rows, cols]: codes uniform, f16 scales around 0.01, zeros 0 .. 16
  // (16: a v1 GPTQ's stored 15), and with `act_order` a random column order (perm).
  Int4Matrix RandomInt4(int64_t rows, int64_t cols, int64_t group_size, bool act_order) {
    Int4Matrix m;
    m.rows = rows;
    m.cols = cols;
    m.group_size = group_size;
    std::uniform_int_distribution<uint32_t> word;
    std::uniform_real_distribution<float> scale(0.004f, 0.016f);
    std::uniform_int_distribution<int> zero(0, 16);
    m.codes.resize(size_t(rows * cols / 8));
    for (auto& c : m.codes) c = word(rng_);
    m.scales.resize(size_t(rows * m.groups()));
    for (auto& s : m.scales) s = F32ToF16(scale(rng_));
    m.zeros.resize(m.scales.size());
    for (auto& z : m.zeros) z = uint8_t(zero(rng_));
    if (act_order) {
      m.perm.resize(size_t(cols));
      std::iota(m.perm.begin(), m.perm.end(), 0);
      std::shuffle(m.perm.begin(), m.perm.end(), rng_);
    }
    return m;
  }

  // The same 4-bit weight in both backends (the CPU dequantizes it; the GPU keeps it packed
  // where the shape fits its kernels).
  std::pair<Linear, Linear> Int4Weight(const Int4Matrix& m) {
    auto c = cpu_->LoadInt4(m);
    auto g = gpu_->LoadInt4(m);
    EXPECT_TRUE(c.ok() && g.ok());
    gpu_->Synchronize();
    return {*c, *g};
  }

  // out = x w^T (+ bias) on `b`, as the Slice does it.
  static void Project(Backend& b, const Tensor& x, const Linear& w, const Tensor* bias,
                      Tensor& out) {
    if (w.packed) {
      b.MatMulInt4(x, w, bias, out);
    } else {
      b.MatMul(x, w.dense, bias, out);
    }
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
