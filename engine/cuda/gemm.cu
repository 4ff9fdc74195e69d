// The batch-invariant matrix product: out[n, m] = x[n, k] w[m, k]^T (+ bias), x and w both bf16
// (or both f16), float32 accumulation and result, on the tensor cores (mma.sync m16n8k16).
//
// Why it exists: the GEMV (n <= 2) and cuBLAS (larger n, which picks its algorithm and split of
// k by shape) add a row's products in different orders, so a sequence's logits depended on how
// many rows shared its step. Here k is cut into ranges by the weight's shape alone (Splits:
// enough parallel work for a decode step), each output element's range sum is one float32
// accumulator that takes the k16 slices in ascending order (one mma each), and the range sums
// are added in order, p0 + p1 first, then the bias. Steps of <= 64 rows run the ranges in
// separate blocks and sum them in a second kernel; larger steps run them one after the other
// in each block and sum in registers: the same additions in the same order. The tile shapes
// change with n (for speed), the arithmetic of a row does not, so a row's result is the same
// bits whatever else is in the step.
//
// Layout: w is the mma's A (rows = output features), x its B (columns = rows of x); both are
// row-major [rows][k], staged through shared memory by cp.async (STAGES tiles of BK columns in
// flight), rows padded to BK + 8 elements so that ldmatrix reads hit distinct banks.
#include <algorithm>

#include "engine/cuda/common.cuh"
#include "engine/cuda/kernels.h"

namespace lp::cuda {
namespace {

// A block computes BM output features x BN rows of x with WARPS_M x WARPS_N warps, each
// (BM / WARPS_M) x (BN / WARPS_N) as m16 x n8 tiles.
template <int BM_, int BN_, int WARPS_M_, int WARPS_N_, int BK_, int STAGES_>
struct Tiles {
  static constexpr int BM = BM_, BN = BN_, WARPS_M = WARPS_M_, WARPS_N = WARPS_N_, BK = BK_,
                       STAGES = STAGES_;
  static constexpr int kThreads = 32 * WARPS_M * WARPS_N;
  static constexpr int MT = BM / WARPS_M / 16, NT = BN / WARPS_N / 8;
  static constexpr int kRow = BK + 8;  // padded shared-memory row, elements
  static constexpr int kStageElems = (BM + BN) * kRow;
  static constexpr size_t kSmemBytes = size_t(kStageElems) * STAGES * 2;
};
// Up to kInvariantSplitRows rows a product is bound by reading w: small blocks, one per k range
// (blockIdx.z), partial sums summed by SumSplitsKernel. Above, by the tensor cores: large
// blocks that take the k ranges one after the other and sum them in registers.
using Rows8 = Tiles<16, 8, 1, 1, 64, 4>;
using Rows16 = Tiles<16, 16, 1, 1, 64, 4>;
using Rows32 = Tiles<16, 32, 1, 1, 64, 4>;
using Rows64 = Tiles<32, 64, 2, 1, 64, 3>;
using Wide = Tiles<128, 128, 2, 4, 64, 3>;
static_assert(Rows64::BN == kInvariantSplitRows);

// How many ranges k is cut into for a weight [m, k]: a function of the weight alone, never of
// n. Enough blocks for a decode step's product; ranges of >= 1024 columns, multiples of 128.
int Splits(int64_t m, int64_t k) {
  if (m >= 16384) return 1;
  for (int s : {8, 4, 2}) {
    if (k / s >= 1024 && k % (s * 128) == 0) return s;
  }
  return 1;
}

// acc += w[m0.., kbeg:kend] x[n0.., kbeg:kend]^T, the k16 slices in ascending order (a slice
// past kend is never multiplied, so every tile shape takes the same slices).
template <typename T, typename C>
__device__ __forceinline__ void MultiplyRange(const T* __restrict__ x, const T* __restrict__ w,
                                              int n, int m, int k, int m0, int n0, int kbeg,
                                              int kend, T* smem, float (&acc)[C::MT][C::NT][4]) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp % C::WARPS_M, wn = warp / C::WARPS_M;
  const int k_tiles = (kend - kbeg + C::BK - 1) / C::BK;
  // Tile kt of w rows [m0, m0 + BM) and x rows [n0, n0 + BN) into stage `stage`; zeros past the
  // edges (k % 8 == 0, so a 16-byte chunk is all in or all out).
  auto load = [&](int stage, int kt) {
    T* st = smem + stage * C::kStageElems;
    constexpr int kChunks = C::BK / 8;
    for (int i = threadIdx.x; i < (C::BM + C::BN) * kChunks; i += C::kThreads) {
      const int r = i / kChunks, c = (i % kChunks) * 8, kk = kbeg + kt * C::BK + c;
      const bool is_w = r < C::BM;
      const int src_row = is_w ? m0 + r : n0 + r - C::BM;
      const bool valid = kk < kend && src_row < (is_w ? m : n);
      const T* src = (is_w ? w : x) + (valid ? int64_t(src_row) * k + kk : 0);
      CopyAsync16(st + r * C::kRow + c, src, valid);
    }
  };
#pragma unroll
  for (int st = 0; st < C::STAGES - 1; ++st) {
    if (st < k_tiles) load(st, st);
    CopyAsyncCommit();
  }
  for (int kt = 0; kt < k_tiles; ++kt) {
    CopyAsyncWait<C::STAGES - 2>();
    __syncthreads();  // tile kt is here for everyone; stage (kt - 1) % STAGES is free
    if (kt + C::STAGES - 1 < k_tiles) load((kt + C::STAGES - 1) % C::STAGES, kt + C::STAGES - 1);
    CopyAsyncCommit();
    const T* sw = smem + (kt % C::STAGES) * C::kStageElems;
    const T* sx = sw + C::BM * C::kRow;
#pragma unroll
    for (int kk = 0; kk < C::BK; kk += 16) {
      if (kbeg + kt * C::BK + kk >= kend) break;
      uint32_t a[C::MT][4], b[C::NT][2];
#pragma unroll
      for (int i = 0; i < C::MT; ++i) {
        const int r = wm * C::MT * 16 + i * 16 + lane % 16;
        LdMatrixX4(a[i], sw + r * C::kRow + kk + (lane / 16) * 8);
      }
#pragma unroll
      for (int j = 0; j < C::NT; ++j) {
        const int r = wn * C::NT * 8 + j * 8 + lane % 8;
        LdMatrixX2(b[j], sx + r * C::kRow + kk + ((lane / 8) % 2) * 8);
      }
#pragma unroll
      for (int i = 0; i < C::MT; ++i)
#pragma unroll
        for (int j = 0; j < C::NT; ++j) Mma<T>(acc[i][j], a[i], b[j][0], b[j][1]);
    }
  }
  CopyAsyncWait<0>();
  __syncthreads();  // the stages may be refilled by the next range
}

// Calls f(row, feature, value) for each of the warp's accumulators inside [n, m].
template <typename C, typename F>
__device__ __forceinline__ void ForEachResult(const float (&acc)[C::MT][C::NT][4], int n, int m,
                                              int m0, int n0, F f) {
  // c0, c1: feature g, rows 2t and 2t + 1; c2, c3: feature g + 8, the same rows.
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp % C::WARPS_M, wn = warp / C::WARPS_M, g = lane / 4, t = lane % 4;
#pragma unroll
  for (int i = 0; i < C::MT; ++i) {
#pragma unroll
    for (int j = 0; j < C::NT; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = m0 + wm * C::MT * 16 + i * 16 + g + (e / 2) * 8;
        const int row = n0 + wn * C::NT * 8 + j * 8 + 2 * t + e % 2;
        if (col < m && row < n) f(row, col, acc[i][j][e]);
      }
    }
  }
}

template <typename C>
__device__ __forceinline__ void Zero(float (&acc)[C::MT][C::NT][4]) {
#pragma unroll
  for (int i = 0; i < C::MT; ++i)
#pragma unroll
    for (int j = 0; j < C::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;
}

// Few rows: block (m tile, n tile, k range z). One range: out = sum + bias; else the range's
// sum into partial[z][row][feature] (row < kInvariantSplitRows).
template <typename T, typename C>
__global__ void __launch_bounds__(C::kThreads)
    SplitGemmKernel(const T* __restrict__ x, const T* __restrict__ w,
                    const float* __restrict__ bias, float* __restrict__ out,
                    float* __restrict__ partial, int n, int m, int k, int splits) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int m0 = int(blockIdx.x) * C::BM, n0 = int(blockIdx.y) * C::BN, z = int(blockIdx.z);
  const int range = k / splits;
  float acc[C::MT][C::NT][4];
  Zero<C>(acc);
  MultiplyRange<T, C>(x, w, n, m, k, m0, n0, z * range, (z + 1) * range,
                      reinterpret_cast<T*>(smem_raw), acc);
  if (splits == 1) {
    ForEachResult<C>(acc, n, m, m0, n0, [&](int row, int col, float v) {
      out[int64_t(row) * m + col] = v + (bias != nullptr ? bias[col] : 0.0f);
    });
  } else {
    float* p = partial + int64_t(z) * kInvariantSplitRows * m;
    ForEachResult<C>(acc, n, m, m0, n0,
                     [&](int row, int col, float v) { p[int64_t(row) * m + col] = v; });
  }
}

// out = ((p0 + p1) + p2 ...) + bias: the order WideGemmKernel sums its ranges in.
__global__ void SumSplitsKernel(const float* __restrict__ partial, const float* __restrict__ bias,
                                float* __restrict__ out, int n, int m, int splits) {
  const int64_t total = int64_t(n) * m, stride = int64_t(kInvariantSplitRows) * m;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    float v = partial[i];
    for (int z = 1; z < splits; ++z) v = v + partial[z * stride + i];
    out[i] = v + (bias != nullptr ? bias[i % m] : 0.0f);
  }
}

// Many rows: block (m tile, n tile) takes the k ranges in turn, each from zero, summed in order.
template <typename T, typename C>
__global__ void __launch_bounds__(C::kThreads)
    WideGemmKernel(const T* __restrict__ x, const T* __restrict__ w, const float* __restrict__ bias,
                   float* __restrict__ out, int n, int m, int k, int splits) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int m0 = int(blockIdx.x) * C::BM, n0 = int(blockIdx.y) * C::BN;
  const int range = k / splits;
  float sum[C::MT][C::NT][4], acc[C::MT][C::NT][4];
  for (int z = 0; z < splits; ++z) {
    Zero<C>(acc);
    MultiplyRange<T, C>(x, w, n, m, k, m0, n0, z * range, (z + 1) * range,
                        reinterpret_cast<T*>(smem_raw), acc);
#pragma unroll
    for (int i = 0; i < C::MT; ++i)
#pragma unroll
      for (int j = 0; j < C::NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          sum[i][j][e] = z == 0 ? acc[i][j][e] : sum[i][j][e] + acc[i][j][e];
  }
  ForEachResult<C>(sum, n, m, m0, n0, [&](int row, int col, float v) {
    out[int64_t(row) * m + col] = v + (bias != nullptr ? bias[col] : 0.0f);
  });
}

template <typename K>
void AllowSmem(K kernel, size_t bytes) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

template <typename T, typename C>
void SplitGemm(const T* x, const T* w, const float* bias, float* out, float* partial, int n, int m,
               int k, int splits, cudaStream_t s) {
  const dim3 grid(unsigned((m + C::BM - 1) / C::BM), unsigned((n + C::BN - 1) / C::BN),
                  unsigned(splits));
  SplitGemmKernel<T, C>
      <<<grid, C::kThreads, C::kSmemBytes, s>>>(x, w, bias, out, partial, n, m, k, splits);
  LAUNCH_CHECK(SplitGemmKernel);
}

template <typename T>
void GemmFor(const void* xv, const void* wv, const float* bias, float* out, float* partial, int n,
             int m, int k, int splits, cudaStream_t s) {
  // Shared-memory limits are set once per kernel, before any launch (none while a graph records).
  static const bool configured = [] {
    AllowSmem(SplitGemmKernel<T, Rows8>, Rows8::kSmemBytes);
    AllowSmem(SplitGemmKernel<T, Rows16>, Rows16::kSmemBytes);
    AllowSmem(SplitGemmKernel<T, Rows32>, Rows32::kSmemBytes);
    AllowSmem(SplitGemmKernel<T, Rows64>, Rows64::kSmemBytes);
    AllowSmem(WideGemmKernel<T, Wide>, Wide::kSmemBytes);
    return true;
  }();
  (void)configured;
  const T* x = static_cast<const T*>(xv);
  const T* w = static_cast<const T*>(wv);
  if (n > kInvariantSplitRows) {
    const dim3 grid(unsigned((m + Wide::BM - 1) / Wide::BM),
                    unsigned((n + Wide::BN - 1) / Wide::BN));
    WideGemmKernel<T, Wide>
        <<<grid, Wide::kThreads, Wide::kSmemBytes, s>>>(x, w, bias, out, n, m, k, splits);
    LAUNCH_CHECK(WideGemmKernel);
    return;
  }
  if (n <= Rows8::BN) {
    SplitGemm<T, Rows8>(x, w, bias, out, partial, n, m, k, splits, s);
  } else if (n <= Rows16::BN) {
    SplitGemm<T, Rows16>(x, w, bias, out, partial, n, m, k, splits, s);
  } else if (n <= Rows32::BN) {
    SplitGemm<T, Rows32>(x, w, bias, out, partial, n, m, k, splits, s);
  } else {
    SplitGemm<T, Rows64>(x, w, bias, out, partial, n, m, k, splits, s);
  }
  if (splits > 1) {
    const int64_t total = int64_t(n) * m;
    const unsigned blocks = unsigned(std::min<int64_t>((total + 255) / 256, 4096));
    SumSplitsKernel<<<blocks, 256, 0, s>>>(partial, bias, out, n, m, splits);
    LAUNCH_CHECK(SumSplitsKernel);
  }
}

}  // namespace

bool InvariantGemmFits(int64_t n, int64_t k, int64_t m, const void* x, const void* w) {
  return n > 0 && m > 0 && k > 0 && k % 8 == 0 && n < (int64_t(1) << 31) &&
         m < (int64_t(1) << 31) && k < (int64_t(1) << 31) &&
         reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0;
}

int64_t InvariantGemmPartialFloats(int64_t m, int64_t k) {
  const int splits = Splits(m, k);
  return splits > 1 ? int64_t(splits) * kInvariantSplitRows * m : 0;
}

void LaunchInvariantGemm(const void* x_half, int64_t n, int64_t k, const void* w, bool half_weights,
                         int64_t m, const float* bias, float* out, float* partial,
                         int64_t partial_floats, cudaStream_t s) {
  LP_REQUIRE(InvariantGemmFits(n, k, m, x_half, w) && out != nullptr);
  const int splits = Splits(m, k);
  LP_REQUIRE(n > kInvariantSplitRows || splits == 1 ||
             (partial != nullptr && partial_floats >= InvariantGemmPartialFloats(m, k)));
  if (half_weights) {
    GemmFor<__half>(x_half, w, bias, out, partial, int(n), int(m), int(k), splits, s);
  } else {
    GemmFor<__nv_bfloat16>(x_half, w, bias, out, partial, int(n), int(m), int(k), splits, s);
  }
}

}  // namespace lp::cuda
