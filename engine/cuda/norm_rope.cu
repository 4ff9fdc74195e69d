// Element-wise and per-row kernels: embedding gather, RMSNorm fused with the residual add,
// per-head q/k RMSNorm fused with RoPE, SwiGLU, adds, row gathers, the float32 -> bf16/f16
// conversion before cuBLAS, and random weights filled on the GPU.
//
// Why these shapes: each is one pass over its rows (memory-bound), one block per row where a
// reduction is needed, one warp per head for RoPE. RoPE computes inv_freq and the angles in
// float32 exactly as Hugging Face (and the CPU backend) do, with accurate sinf / cosf: at
// positions in the thousands fast intrinsics would lose the angle.
#include <cmath>
#include <type_traits>

#include "common/random.h"
#include "engine/cuda/common.cuh"
#include "engine/cuda/kernels.h"

namespace lp::cuda {
namespace {

// ---- kernels

template <typename W>
__global__ void EmbedKernel(const W* table, const int32_t* ids, int64_t cols, float* out) {
  WaitForEarlierKernels();
  LetLaterKernelsStart();
  const W* src = table + int64_t(ids[blockIdx.x]) * cols;
  float* dst = out + int64_t(blockIdx.x) * cols;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) dst[i] = ToF32(src[i]);
}

// X: the input's type (ActIn); with a residual, the normalized rows are the residual's (float32).
template <typename X>
__global__ void RmsNormKernel(float* residual, const X* x, const float* w, float eps, int64_t cols,
                              float* out, HalfCopy copy) {
  WaitForEarlierKernels();
  LetLaterKernelsStart();
  __shared__ float scratch[32];
  const int64_t off = int64_t(blockIdx.x) * cols;
  float* r = residual != nullptr ? residual + off : nullptr;
  const X* in = x + off;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    float v = ToF32(in[i]);
    if (r != nullptr) {
      v += r[i];
      r[i] = v;
    }
    ss += v * v;
  }
  ss = BlockSum(ss, scratch);
  const float scale = rsqrtf(ss / float(cols) + eps);
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    StoreOut(out, copy, off + i, w[i] * ((r != nullptr ? r[i] : ToF32(in[i])) * scale));
  }
}

// One warp per (row, head) of q, then of k (one launch for both): optional RMSNorm over the
// head, then rotate-half RoPE. With J > 0 (head_dim = 32 J, J even) the head stays in registers,
// read once and written once: lane l holds elements l + 32 j, so that element i and its RoPE
// partner i + head_dim / 2 are in the same lane. J = 0: any head_dim, through memory. Both do the
// same operations in the same order.
struct QkArgs {
  float* t[2];
  const float* norm[2];
  int64_t heads[2];
};
template <int J>
__global__ void QkNormRopeKernel(QkArgs a, int64_t rows, int64_t hd, float eps, float theta,
                                 const int32_t* pos) {
  WaitForEarlierKernels();
  LetLaterKernelsStart();
  int64_t item = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int which = item < rows * a.heads[0] ? 0 : 1;
  if (which == 1) item -= rows * a.heads[0];
  if (item >= rows * a.heads[which]) return;
  const int64_t row = item / a.heads[which];
  float* x = a.t[which] + item * hd;  // rows are [heads * hd] back to back
  const float* norm = a.norm[which];
  const float p = float(pos[row]);
  const auto rotate = [&](int64_t i, float& u, float& v) {
    const float inv_freq = 1.0f / powf(theta, float(2 * i) / float(hd));
    const float angle = inv_freq * p;
    const float c = cosf(angle), s = sinf(angle);
    const float u0 = u;
    u = u0 * c - v * s;
    v = v * c + u0 * s;
  };
  if constexpr (J > 0) {
    static_assert(J % 2 == 0);
    float v[J];
#pragma unroll
    for (int j = 0; j < J; ++j) v[j] = x[lane + 32 * j];
    if (norm != nullptr) {
      float ss = 0.0f;
#pragma unroll
      for (int j = 0; j < J; ++j) ss += v[j] * v[j];
      ss = WarpSum(ss);
      const float scale = rsqrtf(ss / float(hd) + eps);
#pragma unroll
      for (int j = 0; j < J; ++j) v[j] = norm[lane + 32 * j] * (v[j] * scale);
    }
#pragma unroll
    for (int j = 0; j < J / 2; ++j) rotate(lane + 32 * j, v[j], v[j + J / 2]);
#pragma unroll
    for (int j = 0; j < J; ++j) x[lane + 32 * j] = v[j];
  } else {
    if (norm != nullptr) {
      float ss = 0.0f;
      for (int64_t i = lane; i < hd; i += 32) ss += x[i] * x[i];
      ss = WarpSum(ss);
      const float scale = rsqrtf(ss / float(hd) + eps);
      __syncwarp();
      for (int64_t i = lane; i < hd; i += 32) x[i] = norm[i] * (x[i] * scale);
      __syncwarp();
    }
    const int64_t half = hd / 2;
    for (int64_t i = lane; i < half; i += 32) rotate(i, x[i], x[i + half]);
  }
}

__device__ __forceinline__ float SiluMul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

__global__ void SiluMulKernel(const float* g, const float* u, int64_t n, float* out,
                              HalfCopy copy) {
  WaitForEarlierKernels();
  LetLaterKernelsStart();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    StoreOut(out, copy, i, SiluMul(g[i], u[i]));
  }
}

// The same in the weights' type T (Backend::ActivationsInWeightType), 8 elements (16 bytes) a
// thread at a time: n / 8 of them.
template <typename T>
__global__ void SiluMulHalfKernel(const T* g, const T* u, int64_t n, T* out) {
  WaitForEarlierKernels();
  LetLaterKernelsStart();
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < n / 8;
       c += int64_t(gridDim.x) * blockDim.x) {
    const uint4 gv = reinterpret_cast<const uint4*>(g)[c];
    const uint4 uv = reinterpret_cast<const uint4*>(u)[c];
    uint4 ov;
    const T* gs = reinterpret_cast<const T*>(&gv);
    const T* us = reinterpret_cast<const T*>(&uv);
    T* os = reinterpret_cast<T*>(&ov);
#pragma unroll
    for (int e = 0; e < 8; ++e) os[e] = FromF32<T>(SiluMul(ToF32(gs[e]), ToF32(us[e])));
    reinterpret_cast<uint4*>(out)[c] = ov;
  }
}

template <typename Y>
__global__ void AddKernel(float* x, const Y* y, int64_t n) {
  WaitForEarlierKernels();
  LetLaterKernelsStart();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    x[i] += ToF32(y[i]);
  }
}

__global__ void AddBiasKernel(float* x, const float* bias, int64_t rows, int64_t cols) {
  WaitForEarlierKernels();
  LetLaterKernelsStart();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < rows * cols;
       i += int64_t(gridDim.x) * blockDim.x) {
    x[i] += bias[i % cols];
  }
}

// Rows travel as a kernel parameter: a recorded graph then holds them (see Backend::Replay).
struct RowList {
  int32_t r[64];
};
__global__ void GatherRowsKernel(const float* x, int64_t cols, RowList rows, float* out) {
  WaitForEarlierKernels();
  LetLaterKernelsStart();
  const float* src = x + int64_t(rows.r[blockIdx.x]) * cols;
  float* dst = out + int64_t(blockIdx.x) * cols;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) dst[i] = src[i];
}

template <typename W>
__global__ void ToHalfKernel(const float* x, int64_t n, W* out) {
  WaitForEarlierKernels();
  LetLaterKernelsStart();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = FromF32<W>(x[i]);
  }
}

__global__ void RandomFillKernel(void* out, int64_t n, int kind, uint64_t seed, float amp,
                                 bool ones) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float u = UniformFloat(SplitMix64(seed + uint64_t(i) * kSplitMixGamma));
    const float v = ones ? 1.0f : (2.0f * u - 1.0f) * amp;
    if (kind == 0) static_cast<float*>(out)[i] = v;
    if (kind == 1) static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16(v);
    if (kind == 2) static_cast<__half*>(out)[i] = __float2half(v);
  }
}

int GridFor(int64_t n, int threads) {
  return int(std::min<int64_t>((n + threads - 1) / threads, 132 * 16));
}

// f(p), p the activation's data as a pointer to its element type, Pointee<decltype(p)>.
template <typename P>
using Pointee = std::remove_cv_t<std::remove_pointer_t<P>>;
template <typename F>
void WithElementType(ActIn a, F f) {
  switch (a.type) {
    case DType::kBF16:
      f(static_cast<const __nv_bfloat16*>(a.data));
      break;
    case DType::kF16:
      f(static_cast<const __half*>(a.data));
      break;
    default:
      LP_REQUIRE(a.type == DType::kF32);
      f(static_cast<const float*>(a.data));
  }
}

}  // namespace

// ---- launchers

void LaunchEmbed(const void* table, bool half_weights, const int32_t* ids, int64_t n, int64_t cols,
                 float* out, cudaStream_t s) {
  LP_REQUIRE(n > 0 && cols > 0 && table != nullptr);
  if (half_weights) {
    LaunchChained(EmbedKernel<__half>, unsigned(n), 256, 0, s, static_cast<const __half*>(table),
                  ids, cols, out);
  } else {
    LaunchChained(EmbedKernel<__nv_bfloat16>, unsigned(n), 256, 0, s,
                  static_cast<const __nv_bfloat16*>(table), ids, cols, out);
  }
}

void LaunchRmsNorm(float* residual, ActIn x, const float* w, float eps, int64_t rows, int64_t cols,
                   float* out, HalfCopy copy, cudaStream_t s) {
  LP_REQUIRE(rows > 0 && cols > 0 && w != nullptr && (out != nullptr || copy.data != nullptr));
  LP_REQUIRE(out != x.data && copy.data != x.data);
  const int threads = cols >= 1024 ? 1024 : int((cols + 31) / 32 * 32);
  WithElementType(x, [&](const auto* in) {
    LaunchChained(RmsNormKernel<Pointee<decltype(in)>>, unsigned(rows), threads, 0, s, residual, in,
                  w, eps, cols, out, copy);
  });
}

void LaunchQkNormRope(float* q, float* k, int64_t rows, int64_t heads, int64_t kv_heads,
                      int64_t head_dim, const float* q_norm, const float* k_norm, float eps,
                      double theta, const int32_t* pos, cudaStream_t s) {
  LP_REQUIRE(rows > 0 && heads > 0 && kv_heads > 0 && head_dim % 2 == 0 && pos != nullptr);
  const int64_t items = rows * (heads + kv_heads);
  const int warps = 8;
  QkArgs a{{q, k}, {q_norm, k_norm}, {heads, kv_heads}};
  const auto launch = [&](auto kernel) {
    LaunchChained(kernel, unsigned((items + warps - 1) / warps), warps * 32, 0, s, a, rows,
                  head_dim, eps, float(theta), pos);
  };
  switch (head_dim) {  // a head in registers where head_dim is 32 J with J even
    case 64:
      launch(QkNormRopeKernel<2>);
      break;
    case 128:
      launch(QkNormRopeKernel<4>);
      break;
    case 256:
      launch(QkNormRopeKernel<8>);
      break;
    default:
      launch(QkNormRopeKernel<0>);
  }
}

void LaunchSiluMul(const float* gate, const float* up, int64_t n, float* out, HalfCopy copy,
                   cudaStream_t s) {
  LP_REQUIRE(n > 0);
  LaunchChained(SiluMulKernel, GridFor(n, 256), 256, 0, s, gate, up, n, out, copy);
}

void LaunchSiluMulHalf(const void* gate, const void* up, int64_t n, bool half, void* out,
                       cudaStream_t s) {
  LP_REQUIRE(n > 0 && n % 8 == 0);
  for (const void* p : {gate, up, static_cast<const void*>(out)}) {
    LP_REQUIRE(reinterpret_cast<uintptr_t>(p) % 16 == 0);
  }
  const unsigned grid = GridFor(n / 8, 256);
  if (half) {
    LaunchChained(SiluMulHalfKernel<__half>, grid, 256, 0, s, static_cast<const __half*>(gate),
                  static_cast<const __half*>(up), n, static_cast<__half*>(out));
  } else {
    LaunchChained(SiluMulHalfKernel<__nv_bfloat16>, grid, 256, 0, s,
                  static_cast<const __nv_bfloat16*>(gate), static_cast<const __nv_bfloat16*>(up), n,
                  static_cast<__nv_bfloat16*>(out));
  }
}

void LaunchAdd(float* x, ActIn y, int64_t n, cudaStream_t s) {
  LP_REQUIRE(n > 0);
  WithElementType(y, [&](const auto* in) {
    LaunchChained(AddKernel<Pointee<decltype(in)>>, GridFor(n, 256), 256, 0, s, x, in, n);
  });
}

void LaunchAddBias(float* x, const float* bias, int64_t rows, int64_t cols, cudaStream_t s) {
  LP_REQUIRE(rows > 0 && cols > 0 && bias != nullptr);
  LaunchChained(AddBiasKernel, GridFor(rows * cols, 256), 256, 0, s, x, bias, rows, cols);
}

void LaunchGatherRows(const float* x, int64_t cols, const int32_t* rows, int64_t n, float* out,
                      cudaStream_t s) {
  LP_REQUIRE(n >= 0 && cols > 0);
  for (int64_t first = 0; first < n; first += 64) {
    RowList list{};
    const int64_t count = std::min<int64_t>(64, n - first);
    for (int64_t i = 0; i < count; ++i) list.r[i] = rows[first + i];
    LaunchChained(GatherRowsKernel, unsigned(count), 256, 0, s, x, cols, list, out + first * cols);
  }
}

void LaunchToHalf(const float* x, int64_t n, bool half, void* out, cudaStream_t s) {
  LP_REQUIRE(n > 0 && out != nullptr);
  if (half) {
    LaunchChained(ToHalfKernel<__half>, GridFor(n, 256), 256, 0, s, x, n,
                  static_cast<__half*>(out));
  } else {
    LaunchChained(ToHalfKernel<__nv_bfloat16>, GridFor(n, 256), 256, 0, s, x, n,
                  static_cast<__nv_bfloat16*>(out));
  }
}

void LaunchRandomFill(void* out, int64_t n, int kind, uint64_t seed, float amplitude, bool ones,
                      cudaStream_t s) {
  LP_REQUIRE(n > 0 && kind >= 0 && kind <= 2);
  RandomFillKernel<<<GridFor(n, 256), 256, 0, s>>>(out, n, kind, seed, amplitude, ones);
  LAUNCH_CHECK(RandomFillKernel);
}

}  // namespace lp::cuda
