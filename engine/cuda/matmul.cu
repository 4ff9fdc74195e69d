// Matrix products out[n, m] = x[n, k] w[m, k]^T with float32 x and out, bf16 / f16 weights.
//
// Why two paths: a decode step multiplies a few rows by every weight, so it is a GEMV bound by
// reading the weights once; our GEMV kernel gives each warp one output column and streams its
// weight row with 16-byte loads, several in flight, all rows of x at once (x stays in L1).
// Larger steps are matrix-bound: x is converted to the weight type and cuBLASLt multiplies with
// float32 accumulation and a float32 result (lt_gemm.h).
#include "engine/cuda/common.cuh"
#include "engine/cuda/kernels.h"

namespace lp::cuda {
namespace {

constexpr int kGemvWarps = 8;
// kGemvMaxRows (kernels.h): up to 2 rows the GEMV beats cuBLASLt. With more, each warp loads
// every row of x from L1 for its one weight row and L1 bounds it (Qwen3-8B decode on an H100: 9.6
// ms at batch 3, 12.3 at 4, 20.9 at 8 by this GEMV; cuBLASLt's tensor-core kernels 7.6 to 7.8 ms
// at 4 to 8 and 8.2 at 16, the GEMV 7.1 at 2; engine/cuda/NOTES.md, "Decode at 3 to 8 rows").
constexpr int kGemvUnroll = 4;

__device__ __forceinline__ void Unpack8(const uint4& u, const __nv_bfloat16*, float* f) {
  const uint32_t v[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(v[i] << 16);
    f[2 * i + 1] = __uint_as_float(v[i] & 0xffff0000u);
  }
}
__device__ __forceinline__ void Unpack8(const uint4& u, const __half*, float* f) {
  const uint32_t v[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 p = __half22float2(*reinterpret_cast<const __half2*>(&v[i]));
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}

// ---- kernels

// One warp per output column; lane l reads weights [8l, 8l + 8) of each 256-wide chunk. Several
// products with the same x (q, k, v; gate, up) share one launch: block ranges select the job.
template <int R, typename W>
__global__ void __launch_bounds__(kGemvWarps * 32)
    GemvKernel(const float* __restrict__ x, int64_t k, GemvJobs jobs) {
  int first;
  const GemvOut job = JobOfBlock(jobs, &first);
  const int lane = threadIdx.x % 32;
  const int64_t col = int64_t(int(blockIdx.x) - first) * kGemvWarps + threadIdx.x / 32;
  const bool live = col < job.m;
  const W* wr = static_cast<const W*>(job.w) + (live ? col : 0) * k;
  // The weights are not written by any kernel: the first loads go out before the wait for the
  // kernel that produces x (chained launches, common.cuh).
  uint4 wv[kGemvUnroll];
  const auto load = [&](int64_t k0) {
#pragma unroll
    for (int u = 0; u < kGemvUnroll; ++u) {
      const int64_t kk = k0 + u * 256;
      wv[u] = kk < k ? LoadStreaming<true>(wr + kk) : make_uint4(0, 0, 0, 0);
    }
  };
  if (live) load(int64_t(lane) * 8);
  WaitForEarlierKernels();
  LetLaterKernelsStart();
  if (!live) return;
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.0f;
  for (int64_t k0 = int64_t(lane) * 8; k0 < k; k0 += 256 * kGemvUnroll) {
    if (k0 != int64_t(lane) * 8) load(k0);
#pragma unroll
    for (int u = 0; u < kGemvUnroll; ++u) {
      const int64_t kk = k0 + u * 256;
      if (kk >= k) break;
      float wf[8];
      Unpack8(wv[u], static_cast<const W*>(nullptr), wf);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float4 a = *reinterpret_cast<const float4*>(x + r * k + kk);
        const float4 b = *reinterpret_cast<const float4*>(x + r * k + kk + 4);
        acc[r] += a.x * wf[0] + a.y * wf[1] + a.z * wf[2] + a.w * wf[3] + b.x * wf[4] +
                  b.y * wf[5] + b.z * wf[6] + b.w * wf[7];
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const float v = WarpSum(acc[r]);
    if (lane == 0) job.out[r * job.m + col] = v + (job.bias != nullptr ? job.bias[col] : 0.0f);
  }
}

template <typename W>
void Gemv(const float* x, int64_t n, int64_t k, const GemvJobs& jobs, unsigned blocks,
          cudaStream_t s) {
  const int threads = kGemvWarps * 32;
  // The macro's cases confuse clang-format.
  // clang-format off
  switch (n) {
#define LP_GEMV_CASE(R) \
  case R: LaunchChained(GemvKernel<R, W>, blocks, threads, 0, s, x, k, jobs); break;
    LP_GEMV_CASE(1) LP_GEMV_CASE(2)
#undef LP_GEMV_CASE
    default: LP_REQUIRE(n >= 1 && n <= kGemvMaxRows);
  }
  // clang-format on
}

}  // namespace

// ---- launchers

bool GemvFits(const float* x, int64_t n, int64_t k, const void* w) {
  return n >= 1 && n <= kGemvMaxRows && k % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(w) % 16 == 0;
}

void LaunchGemv(const float* x, int64_t n, int64_t k, bool half_weights, const GemvOut* outs,
                int count, cudaStream_t s) {
  LP_REQUIRE(count >= 1 && count <= kMaxGemvJobs && x != nullptr);
  GemvJobs jobs{};
  jobs.count = count;
  int64_t blocks = 0;
  for (int i = 0; i < count; ++i) {
    LP_REQUIRE(GemvFits(x, n, k, outs[i].w) && outs[i].m > 0 && outs[i].out != nullptr);
    jobs.job[i] = outs[i];
    jobs.first_block[i] = int(blocks);
    blocks += (outs[i].m + kGemvWarps - 1) / kGemvWarps;
  }
  LP_REQUIRE(blocks < (int64_t(1) << 31));
  if (half_weights) {
    Gemv<__half>(x, n, k, jobs, unsigned(blocks), s);
  } else {
    Gemv<__nv_bfloat16>(x, n, k, jobs, unsigned(blocks), s);
  }
}

}  // namespace lp::cuda
