// Matrix products out[n, m] = x[n, k] W[m, k]^T with W in 4 bits (GPTQ / AWQ, common/int4.h),
// kept packed on the GPU (4.25 bits a weight at group 128).
//
// Why this layout: every product multiplies on the tensor cores (mma.sync m16n8k16, f16 inputs,
// float32 accumulation; sm_80 and later), and each thread's share of a 16 x 16 weight tile (8
// weights) is one 32-bit word, so the codes go from global memory straight into registers in
// 16-byte loads and are dequantized there with a few bit operations (no shared memory, no
// shuffles). (The GEMV uses the same layout and mma, only without the scale in the fragment.)
// On the device:
//
//   codes  uint4 [m / 16][k / 64][32 lanes]: lane (g = lane / 4, t = lane % 4) of m-tile i,
//          chunk c holds, in word j, the codes of rows 16i + g and 16i + g + 8 at columns
//          64c + 16j + 4t + {0, 1, 2, 3}, nibble p = (row g + 8 if p odd) (column
//          ((p >> 1) & 1) * 2 + (p >> 2)): the order in which the f16 magic-number trick
//          (code | 0x6400 = 1024 + code) yields the mma A fragment's pairs.
//   sz     uint32 [m / 16][groups][8][2]: per (row, group) f16 scale | zero << 16, rows g and
//          g + 8 of an m-tile side by side (one 8-byte load per lane).
//   perm   int32 [k] or absent (GPTQ act order): x is gathered through it once per product.
//
// Inside a 16-column k-tile the mma's k index is a free summation index: lane t takes the four
// columns 4t .. 4t + 3, so its x fragment is one float4. Weights are dequantized exactly to
// (code - zero) and rounded once, times the f16 scale, to f16 (2^-11 relative); x is rounded to
// f16 (as the dense path does for f16 checkpoints, which GPTQ / AWQ releases are).
//
// Three paths by the number of rows n:
//   n <= 16   decode GEMV: a block is 16 or 32 rows of W (32 only when that still gives >= 4
//             blocks an SM), its 8 warps split k and sum through shared memory. Weights enter
//             the mma as the exact integers code - zero (9 instructions a word); each row's
//             scale multiplies the float32 partial sum once a group. Codes, loaded past L1 (read
//             once), are double-buffered in registers (the next set is out while this one is
//             multiplied); x (float32) is read through L1, where it stays. Products of one x
//             (q, k, v; gate, up) share a launch.
//   n <= 128  tiled: x converted to f16 once (matmul.cu's conversion, shared by q, k, v); a block
//             is 128 rows of W x 64 rows of x over a share of k; x is copied into shared memory
//             in fragment order by cp.async, two stages in turn (the next one lands while this
//             one is multiplied), each warp multiplies 32 rows. k is split over blocks until the
//             GPU has two waves; the shares are summed by a second kernel.
//   larger    prefill: W dequantized into an f16 scratch matrix, then cuBLAS (matmul.cu).
#include <algorithm>

#include "common/random.h"
#include "engine/cuda/common.cuh"
#include "engine/cuda/kernels.h"

namespace lp::cuda {
namespace {

constexpr int kGemvWarps = 8;
constexpr int kTiledWarps = 4;
constexpr int kTiledWM = 2;  // m-tiles per warp
constexpr int kTiledRows = kTiledWarps * kTiledWM * 16;
constexpr int kTiledN = 64;      // rows of x per block
constexpr int kStageChunks = 2;  // 64-column chunks of x a stage (16 KB of f16; two stages)
constexpr int kMaxSplits = 16;

__device__ __forceinline__ __half2 AsHalf2(uint32_t u) { return *reinterpret_cast<__half2*>(&u); }
__device__ __forceinline__ uint32_t AsU32(__half2 h) { return *reinterpret_cast<uint32_t*>(&h); }

// A thread's 8 codes of a 16 x 16 weight tile -> its mma A fragment as the exact f16 integers
// code - zero. `z0` holds row g's zero, `z1` row g + 8's, as f16 pairs 1024 + zero and
// -(64 + zero). (v & 0x000f000f) | 0x64006400 is the f16 pair 1024 + code for nibbles 0 and 4;
// the 0x00f000f0 mask gives 1024 + 16 code for nibbles 1 and 5; both subtractions are exact.
// The GEMV uses it as is (the scale multiplies the group's float32 partial sum).
struct ZeroConst {
  uint32_t z1024, nz64;
};
__device__ __forceinline__ ZeroConst MakeZero(uint32_t sz) {
  const uint32_t z = sz >> 16;
  return {0x64006400u + z * 0x00010001u, 0xd400d400u + z * 0x00100010u};
}
__device__ __forceinline__ void DequantExact(uint32_t v, const ZeroConst& z0, const ZeroConst& z1,
                                             uint32_t a[4]) {
  const uint32_t lo0 = (v & 0x000f000fu) | 0x64006400u;
  const uint32_t hi0 = (v & 0x00f000f0u) | 0x64006400u;
  v >>= 8;
  const uint32_t lo1 = (v & 0x000f000fu) | 0x64006400u;
  const uint32_t hi1 = (v & 0x00f000f0u) | 0x64006400u;
  const __half2 sixteenth = AsHalf2(0x2c002c00u);  // 1 / 16
  a[0] = AsU32(__hsub2(AsHalf2(lo0), AsHalf2(z0.z1024)));
  a[1] = AsU32(__hfma2(AsHalf2(hi0), sixteenth, AsHalf2(z1.nz64)));
  a[2] = AsU32(__hsub2(AsHalf2(lo1), AsHalf2(z0.z1024)));
  a[3] = AsU32(__hfma2(AsHalf2(hi1), sixteenth, AsHalf2(z1.nz64)));
}

// The tiled kernel's and the cuBLAS path's dequantization: (code - zero) x scale in f16.
struct RowConst {
  uint32_t scale;  // f16 pair
  ZeroConst zero;
};
__device__ __forceinline__ RowConst MakeConst(uint32_t sz) {
  return {__byte_perm(sz, 0, 0x1010), MakeZero(sz)};
}
__device__ __forceinline__ void Dequant(uint32_t v, const RowConst& r0, const RowConst& r1,
                                        uint32_t a[4]) {
  DequantExact(v, r0.zero, r1.zero, a);
  a[0] = AsU32(__hmul2(AsHalf2(a[0]), AsHalf2(r0.scale)));
  a[1] = AsU32(__hmul2(AsHalf2(a[1]), AsHalf2(r1.scale)));
  a[2] = AsU32(__hmul2(AsHalf2(a[2]), AsHalf2(r0.scale)));
  a[3] = AsU32(__hmul2(AsHalf2(a[3]), AsHalf2(r1.scale)));
}

// A row's f16 scale (low half of its sz word) in float32.
__device__ __forceinline__ float ScaleOf(uint32_t sz) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(sz & 0xffffu)));
}

__device__ __forceinline__ uint32_t HalfPair(float a, float b) {
  return AsU32(__floats2half2_rn(a, b));
}

// The group of consecutive units of k (32 or 64 columns), visited in order (no division per
// step).
struct GroupCursor {
  int units_per_group, group, next;
  __device__ GroupCursor(int first_unit, int units) {
    units_per_group = units;
    group = first_unit / units_per_group;
    next = (group + 1) * units_per_group;
  }
  // `unit` is one more than at the last call.
  __device__ __forceinline__ int Step(int unit) {
    if (unit >= next) {
      ++group;
      next += units_per_group;
    }
    return group;
  }
};

// Rows g and g + 8 of each group of m-tile `tile`: index by group * 8.
__device__ __forceinline__ const uint2* SzRow(const Int4Device& w, int64_t tile, int g) {
  return reinterpret_cast<const uint2*>(w.sz) + tile * w.groups * 8 + g;
}

// Codes are read once: past L1, which keeps x.
__device__ __forceinline__ uint4 LoadStream(const uint4* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

// ---- kernels

// Decode GEMV (n <= 8 NT = 1, n <= 16 NT = 2; WM m-tiles a block). Warp w takes chunks
// [w C / 8, (w + 1) C / 8) of the C = k / 64; the block sums its warps in shared memory.
// Weights enter the mma as the exact integers code - zero (the zero folded into the
// magic-number subtraction: 9 instructions a word); each row's scale multiplies the float32
// partial sum of a group once, when the group ends (a "unit" is a chunk, or half a chunk when
// kHalves: the group size is an odd multiple of 32). Codes are double-buffered in registers:
// the next set of U chunks is loaded before this one is multiplied, so each warp keeps 2-4 KB
// in flight while it computes.
template <int NT, int WM, bool kHalves>
__global__ void __launch_bounds__(kGemvWarps * 32, NT* WM == 1 ? 3 : 2)
    Int4GemvKernel(const float* __restrict__ x, int n, int k, Int4Jobs jobs) {
  int first;
  const Int4Job job = JobOfBlock(jobs, &first);
  const Int4Device& w = job.w;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int tiles = int(w.m / 16);
  const int mt0 = (int(blockIdx.x) - first) * WM;
  const int chunks = k / 64;
  const int c_begin = warp * chunks / kGemvWarps, c_end = (warp + 1) * chunks / kGemvWarps;
  constexpr int U = NT * WM >= 4 ? 1 : 2;  // chunks a set (1 or 2 KB of codes a warp), two sets
  constexpr int S = kHalves ? 2 : 1;       // units (scale loads) a chunk
  constexpr int JU = 4 / S;                // k-tiles a unit
  // Per-warp bases; in the loop only 32-bit offsets. A tile past the end (odd tile count,
  // WM = 2) reads the last one again and is not written.
  const uint4* cp[WM];
  const uint2* sp[WM];
#pragma unroll
  for (int mt = 0; mt < WM; ++mt) {
    const int64_t tile = min(mt0 + mt, tiles - 1);
    cp[mt] = w.codes + tile * chunks * 32 + lane;
    sp[mt] = SzRow(w, tile, g);
  }
  const float* xp[NT];
  bool xok[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    xok[nt] = nt * 8 + g < n;
    xp[nt] = x + int64_t(xok[nt] ? nt * 8 + g : 0) * k + 4 * t;
  }
  float tot[WM][NT][4] = {}, part[WM][NT][4] = {};
  const int units_per_group = int(w.group_size) / (64 / S);
  GroupCursor cursor(S * c_begin, units_per_group);  // the loads'
  int fold_next = cursor.next;                       // first unit of the next group (folds)

  auto load_set = [&](int c0, uint4(&code)[U][WM], uint2(&sz)[U][WM][S]) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + u;
      const bool ok = c < c_end;
      int grp[S];
#pragma unroll
      for (int h = 0; h < S; ++h) grp[h] = cursor.Step(S * c + h);
#pragma unroll
      for (int mt = 0; mt < WM; ++mt) {
        code[u][mt] = ok ? LoadStreaming<false>(cp[mt] + c * 32) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int h = 0; h < S; ++h) {
          sz[u][mt][h] = ok ? __ldg(sp[mt] + grp[h] * 8) : make_uint2(0, 0);
        }
      }
    }
  };
  auto compute_set = [&](int c0, const uint4(&code)[U][WM], const uint2(&sz)[U][WM][S]) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + u;
      if (c >= c_end) break;
#pragma unroll
      for (int h = 0; h < S; ++h) {
        ZeroConst z0[WM], z1[WM];
#pragma unroll
        for (int mt = 0; mt < WM; ++mt) {
          z0[mt] = MakeZero(sz[u][mt][h].x);
          z1[mt] = MakeZero(sz[u][mt][h].y);
        }
#pragma unroll
        for (int jj = 0; jj < JU; ++jj) {
          const int j = h * JU + jj;
          uint32_t b[NT][2];
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) {
            const float4 v = xok[nt]
                                 ? __ldg(reinterpret_cast<const float4*>(xp[nt] + c * 64 + j * 16))
                                 : make_float4(0, 0, 0, 0);
            b[nt][0] = HalfPair(v.x, v.y);
            b[nt][1] = HalfPair(v.z, v.w);
          }
#pragma unroll
          for (int mt = 0; mt < WM; ++mt) {
            const uint32_t words[4] = {code[u][mt].x, code[u][mt].y, code[u][mt].z, code[u][mt].w};
            uint32_t a[4];
            DequantExact(words[j], z0[mt], z1[mt], a);
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) Mma<__half>(part[mt][nt], a, b[nt][0], b[nt][1]);
          }
        }
        // The group ends with this unit (or the warp's share does): scale and add.
        const int unit = S * c + h;
        if (unit + 1 == fold_next || (h == S - 1 && c + 1 == c_end)) {
          fold_next += units_per_group;
#pragma unroll
          for (int mt = 0; mt < WM; ++mt) {
            const float s0 = ScaleOf(sz[u][mt][h].x), s1 = ScaleOf(sz[u][mt][h].y);
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) {
              tot[mt][nt][0] = fmaf(part[mt][nt][0], s0, tot[mt][nt][0]);
              tot[mt][nt][1] = fmaf(part[mt][nt][1], s0, tot[mt][nt][1]);
              tot[mt][nt][2] = fmaf(part[mt][nt][2], s1, tot[mt][nt][2]);
              tot[mt][nt][3] = fmaf(part[mt][nt][3], s1, tot[mt][nt][3]);
#pragma unroll
              for (int e = 0; e < 4; ++e) part[mt][nt][e] = 0.0f;
            }
          }
        }
      }
    }
  };

  uint4 code_a[U][WM], code_b[U][WM];
  uint2 sz_a[U][WM][S], sz_b[U][WM][S];
  load_set(c_begin, code_a, sz_a);
  for (int c0 = c_begin; c0 < c_end; c0 += 2 * U) {
    load_set(c0 + U, code_b, sz_b);
    compute_set(c0, code_a, sz_a);
    load_set(c0 + 2 * U, code_a, sz_a);
    compute_set(c0 + U, code_b, sz_b);
  }
  // Sum the warps' shares: c0, c1 are row g, columns (rows of x) 2t, 2t + 1; c2, c3 row g + 8.
  constexpr int kValues = WM * NT * 4;
  __shared__ float red[kGemvWarps][kValues][32];
#pragma unroll
  for (int mt = 0; mt < WM; ++mt) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) red[warp][(mt * NT + nt) * 4 + e][lane] = tot[mt][nt][e];
    }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < kValues * 32; idx += blockDim.x) {
    const int i = idx / 32, l = idx % 32;
    float sum = 0.0f;
#pragma unroll
    for (int v = 0; v < kGemvWarps; ++v) sum += red[v][i][l];
    const int mt = i / (NT * 4), nt = (i / 4) % NT, e = i % 4;
    const int64_t row = int64_t(mt0 + mt) * 16 + l / 4 + (e >= 2 ? 8 : 0);
    const int xrow = nt * 8 + (l % 4) * 2 + (e & 1);
    if (mt0 + mt < tiles && xrow < n) {
      job.out[int64_t(xrow) * w.m + row] = sum + (job.bias != nullptr ? job.bias[row] : 0.0f);
    }
  }
}

// Tiled product for 16 < n <= 128: block (x: 128 rows of W, y: 64 rows of x, z: a share of k of
// `chunks_per_split` chunks); `xh` is x in f16 [n, k]. Writes out (+ bias) when there is one
// share, else share z's partial sums into `partial` [z][n][m].
__global__ void __launch_bounds__(kTiledWarps * 32)
    Int4TiledKernel(const __half* __restrict__ xh, int n, Int4Job job, int chunks_per_split,
                    float* partial) {
  // Two stages of x in f16, fragment order: [stage][k-tile][n8 tile][lane] -> (b0, b1).
  __shared__ __align__(16) uint2 xs[2][kStageChunks * 4][kTiledN / 8][32];
  const Int4Device& w = job.w;
  const int k = int(w.k);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int tiles = int(w.m / 16);
  const int mt0 = int(blockIdx.x) * (kTiledRows / 16) + warp * kTiledWM;
  const int n0 = int(blockIdx.y) * kTiledN;
  const int ntiles = min(kTiledN / 8, (n - n0 + 7) / 8);
  const int chunks = k / 64;
  const int c_begin = int(blockIdx.z) * chunks_per_split;
  const int c_end = min(chunks, c_begin + chunks_per_split);
  const int stages = (c_end - c_begin + kStageChunks - 1) / kStageChunks;
  const uint4* cp[kTiledWM];
  const uint2* sp[kTiledWM];
#pragma unroll
  for (int mt = 0; mt < kTiledWM; ++mt) {
    const int64_t tile = min(mt0 + mt, tiles - 1);  // past the end: read again, not written
    cp[mt] = w.codes + tile * chunks * 32 + lane;
    sp[mt] = SzRow(w, tile, g);
  }
  // Stage `st` of x into buffer `buf`: 16-byte pieces, 8 columns each; piece q of a row is
  // columns 8q .. 8q + 7 of the stage = lanes (g, 2 (q % 2)) and (g, 2 (q % 2) + 1) of k-tile
  // q / 2, side by side in xs.
  auto stage_x = [&](int st, int buf) {
    const int s0 = c_begin + st * kStageChunks;
    for (int p = threadIdx.x; p < kTiledN * kStageChunks * 8; p += blockDim.x) {
      const int row = p / (kStageChunks * 8), q = p % (kStageChunks * 8);
      const int col = s0 * 64 + q * 8;
      const bool ok = n0 + row < n && col < c_end * 64;
      const __half* src = ok ? xh + int64_t(n0 + row) * k + col : xh;
      CopyAsync16(&xs[buf][q / 2][row / 8][(row % 8) * 4 + 2 * (q % 2)], src, ok);
    }
    CopyAsyncCommit();
  };
  float acc[kTiledWM][kTiledN / 8][4] = {};
  GroupCursor cursor(2 * c_begin, int(w.group_size) / 32);
  if (stages > 0) stage_x(0, 0);
  for (int st = 0; st < stages; ++st) {
    const int s0 = c_begin + st * kStageChunks, buf = st % 2;
    uint4 code[kStageChunks][kTiledWM];
    uint2 sz[kStageChunks][kTiledWM][2];
#pragma unroll
    for (int u = 0; u < kStageChunks; ++u) {
      const int c = s0 + u;
      const bool ok = c < c_end;
      const int g0 = cursor.Step(2 * c), g1 = cursor.Step(2 * c + 1);
#pragma unroll
      for (int mt = 0; mt < kTiledWM; ++mt) {
        code[u][mt] = ok ? LoadStream(cp[mt] + c * 32) : make_uint4(0, 0, 0, 0);
        sz[u][mt][0] = ok ? __ldg(sp[mt] + g0 * 8) : make_uint2(0, 0);
        sz[u][mt][1] = ok ? __ldg(sp[mt] + g1 * 8) : make_uint2(0, 0);
      }
    }
    // The next stage's copies go out (into the buffer the previous stage used: every warp left
    // it at the barrier that ended that stage); then this stage's must have landed.
    if (st + 1 < stages) {
      stage_x(st + 1, 1 - buf);
    } else {
      CopyAsyncCommit();  // an empty group keeps the count
    }
    CopyAsyncWait<1>();
    __syncthreads();
#pragma unroll
    for (int u = 0; u < kStageChunks; ++u) {
      if (s0 + u >= c_end) break;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        uint32_t a[kTiledWM][4];
#pragma unroll
        for (int mt = 0; mt < kTiledWM; ++mt) {
          const uint2 s = sz[u][mt][j / 2];
          const uint32_t words[4] = {code[u][mt].x, code[u][mt].y, code[u][mt].z, code[u][mt].w};
          Dequant(words[j], MakeConst(s.x), MakeConst(s.y), a[mt]);
        }
#pragma unroll
        for (int nt = 0; nt < kTiledN / 8; ++nt) {
          if (nt < ntiles) {
            const uint2 b = xs[buf][u * 4 + j][nt][lane];
#pragma unroll
            for (int mt = 0; mt < kTiledWM; ++mt) Mma<__half>(acc[mt][nt], a[mt], b.x, b.y);
          }
        }
      }
    }
    __syncthreads();  // every warp is done with `buf` before stage st + 2 is copied into it
  }
  float* dst = partial != nullptr ? partial + int64_t(blockIdx.z) * n * w.m : job.out;
  const float* bias = partial != nullptr ? nullptr : job.bias;
#pragma unroll
  for (int mt = 0; mt < kTiledWM; ++mt) {
    if (mt0 + mt >= tiles) continue;
#pragma unroll
    for (int nt = 0; nt < kTiledN / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t row = int64_t(mt0 + mt) * 16 + g + (e >= 2 ? 8 : 0);
        const int xrow = n0 + nt * 8 + 2 * t + (e & 1);
        if (xrow < n) {
          dst[int64_t(xrow) * w.m + row] = acc[mt][nt][e] + (bias != nullptr ? bias[row] : 0.0f);
        }
      }
    }
  }
}

// out[i] = sum of the shares' partial[s][i] (+ bias).
__global__ void Int4ReduceKernel(const float* __restrict__ partial, int splits, int64_t nm,
                                 int64_t m, const float* __restrict__ bias, float* out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < nm;
       i += int64_t(gridDim.x) * blockDim.x) {
    float sum = bias != nullptr ? bias[i % m] : 0.0f;
    for (int s = 0; s < splits; ++s) sum += partial[s * nm + i];
    out[i] = sum;
  }
}

// W in f16, [m, k] row-major (input order of the codes' columns), for cuBLAS. Thread: one word.
__global__ void Int4DequantKernel(Int4Device w, __half* out) {
  const int64_t words = w.m * w.k / 8;
  const int64_t chunks = w.k / 64;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < words;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int j = int(i % 4), lane = int((i / 4) % 32);
    const int64_t c = (i / 128) % chunks, tile = i / 128 / chunks;
    const int g = lane / 4, t = lane % 4;
    const int64_t col = c * 64 + j * 16 + 4 * t;
    const uint2 s = SzRow(w, tile, g)[col / w.group_size * 8];
    uint32_t a[4];
    Dequant(reinterpret_cast<const uint32_t*>(w.codes)[i], MakeConst(s.x), MakeConst(s.y), a);
    const int64_t r0 = tile * 16 + g;
    *reinterpret_cast<uint2*>(out + r0 * w.k + col) = make_uint2(a[0], a[2]);
    *reinterpret_cast<uint2*>(out + (r0 + 8) * w.k + col) = make_uint2(a[1], a[3]);
  }
}

// Host codes [m][k / 8] (column 8w + q of word w in bits 4q) -> the device layout above.
__global__ void Int4RepackKernel(const uint32_t* __restrict__ src, int64_t m, int64_t k,
                                 uint32_t* dst) {
  const int64_t words = m * k / 8, chunks = k / 64, row_words = k / 8;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < words;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int j = int(i % 4), lane = int((i / 4) % 32);
    const int64_t c = (i / 128) % chunks, tile = i / 128 / chunks;
    const int g = lane / 4, t = lane % 4;
    const int64_t col = c * 64 + j * 16 + 4 * t;  // a multiple of 4: half a source word
    const int64_t r0 = tile * 16 + g;
    const uint32_t shift = uint32_t(col % 8) * 4;
    const uint32_t h[2] = {(src[r0 * row_words + col / 8] >> shift) & 0xffffu,
                           (src[(r0 + 8) * row_words + col / 8] >> shift) & 0xffffu};
    uint32_t v = 0;
#pragma unroll
    for (int p = 0; p < 8; ++p) {
      const int dc = ((p >> 1) & 1) * 2 + (p >> 2);
      v |= ((h[p & 1] >> (4 * dc)) & 15u) << (4 * p);
    }
    dst[i] = v;
  }
}

// Random codes (uniform 0..15) and one scale and zero everywhere, for benchmarks.
__global__ void Int4RandomKernel(uint32_t* codes, int64_t words, uint32_t* sz, int64_t sz_words,
                                 uint32_t sz_value, uint64_t seed) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < words;
       i += int64_t(gridDim.x) * blockDim.x) {
    codes[i] = uint32_t(Mix64(seed + uint64_t(i) * kSplitMixGamma));
    if (i < sz_words) sz[i] = sz_value;
  }
}

// out[r, j] = x[r, perm[j]]
__global__ void GatherColsKernel(const float* __restrict__ x, int64_t n, int64_t k,
                                 const int32_t* __restrict__ perm, float* out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n * k;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / k, j = i % k;
    out[i] = x[r * k + perm[j]];
  }
}

unsigned GridFor(int64_t n, int threads) {
  return unsigned(std::min<int64_t>((n + threads - 1) / threads, 132 * 16));
}

template <int NT, int WM>
void Gemv(const float* x, int64_t n, int64_t k, const Int4Job* jobs, int count, cudaStream_t s) {
  bool halves = false;
  Int4Jobs all{};
  all.count = count;
  int64_t blocks = 0;
  for (int i = 0; i < count; ++i) {
    all.job[i] = jobs[i];
    all.first_block[i] = int(blocks);
    blocks += (jobs[i].w.m / 16 + WM - 1) / WM;
    halves = halves || jobs[i].w.group_size % 64 != 0;
  }
  LP_REQUIRE(blocks < (int64_t(1) << 31));
  if (halves) {
    Int4GemvKernel<NT, WM, true>
        <<<unsigned(blocks), kGemvWarps * 32, 0, s>>>(x, int(n), int(k), all);
  } else {
    Int4GemvKernel<NT, WM, false>
        <<<unsigned(blocks), kGemvWarps * 32, 0, s>>>(x, int(n), int(k), all);
  }
  LAUNCH_CHECK(Int4GemvKernel);
}

}  // namespace

// ---- launchers

bool Int4Fits(int64_t m, int64_t k, int64_t group_size) {
  return m > 0 && k > 0 && group_size > 0 && m % 16 == 0 && k % 64 == 0 && group_size % 32 == 0 &&
         k % group_size == 0 && k < (int64_t(1) << 30) && m * k < (int64_t(1) << 40);
}

int64_t Int4SzWords(int64_t m, int64_t k, int64_t group_size) { return m * (k / group_size); }

int64_t Int4SzIndex(int64_t row, int64_t group, int64_t groups) {
  return ((row / 16 * groups + group) * 8 + row % 8) * 2 + (row % 16 >= 8 ? 1 : 0);
}

int64_t Int4PartialFloats(int sms) { return int64_t(32768) * sms; }

void LaunchInt4Repack(const uint32_t* row_codes, int64_t m, int64_t k, uint4* codes,
                      cudaStream_t s) {
  LP_REQUIRE(m > 0 && m % 16 == 0 && k > 0 && k % 64 == 0);
  LP_REQUIRE(row_codes != nullptr && codes != nullptr);
  Int4RepackKernel<<<GridFor(m * k / 8, 256), 256, 0, s>>>(row_codes, m, k,
                                                           reinterpret_cast<uint32_t*>(codes));
  LAUNCH_CHECK(Int4RepackKernel);
}

void LaunchInt4Random(const Int4Device& w, float scale, int zero, uint64_t seed, cudaStream_t s) {
  LP_REQUIRE(Int4Fits(w.m, w.k, w.group_size) && zero >= 0 && zero <= 16);
  const int64_t words = w.m * w.k / 8, sz_words = Int4SzWords(w.m, w.k, w.group_size);
  LP_REQUIRE(sz_words <= words);
  const __half_raw bits = __float2half(scale);
  const uint32_t value = uint32_t(bits.x) | (uint32_t(zero) << 16);
  Int4RandomKernel<<<GridFor(words, 256), 256, 0, s>>>(
      reinterpret_cast<uint32_t*>(const_cast<uint4*>(w.codes)), words, const_cast<uint32_t*>(w.sz),
      sz_words, value, seed);
  LAUNCH_CHECK(Int4RandomKernel);
}

void LaunchInt4Gemv(const float* x, int64_t n, int64_t k, const Int4Job* jobs, int count,
                    cudaStream_t s) {
  LP_REQUIRE(count >= 1 && count <= kMaxInt4Jobs && x != nullptr && n >= 1 &&
             n <= kInt4GemvMaxRows && reinterpret_cast<uintptr_t>(x) % 16 == 0);
  for (int i = 0; i < count; ++i) {
    const Int4Device& w = jobs[i].w;
    LP_REQUIRE(Int4Fits(w.m, w.k, w.group_size) && w.k == k && jobs[i].out != nullptr);
  }
  // Two m-tiles a block (x converted once for both) only while that still leaves >= 4 blocks
  // an SM; else one (the 4096-row products would leave SMs idle).
  int64_t tiles = 0;
  for (int i = 0; i < count; ++i) tiles += jobs[i].w.m / 16;
  int device = 0, sms = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const bool wide = tiles / 2 >= 4 * int64_t(sms);
  if (n <= 8) {
    if (wide) {
      Gemv<1, 2>(x, n, k, jobs, count, s);
    } else {
      Gemv<1, 1>(x, n, k, jobs, count, s);
    }
  } else if (wide) {
    Gemv<2, 2>(x, n, k, jobs, count, s);
  } else {
    Gemv<2, 1>(x, n, k, jobs, count, s);
  }
}

void LaunchInt4Tiled(const void* x_half, int64_t n, const Int4Job& job, float* partial,
                     int64_t partial_floats, int sms, cudaStream_t s) {
  const auto* x = static_cast<const __half*>(x_half);
  const Int4Device& w = job.w;
  LP_REQUIRE(Int4Fits(w.m, w.k, w.group_size) && x != nullptr && job.out != nullptr);
  LP_REQUIRE(n >= 1 && n <= kInt4TiledMaxRows && reinterpret_cast<uintptr_t>(x) % 16 == 0);
  const int64_t mblocks = (w.m + kTiledRows - 1) / kTiledRows;
  const int64_t nblocks = (n + kTiledN - 1) / kTiledN;
  const int64_t chunks = w.k / 64;
  // Split k until there are two waves, each share at least one stage.
  int64_t splits =
      std::min<int64_t>({(2 * int64_t(sms) + mblocks * nblocks - 1) / (mblocks * nblocks),
                         (chunks + kStageChunks - 1) / kStageChunks, kMaxSplits});
  while (splits > 1 && (partial == nullptr || splits * n * w.m > partial_floats)) --splits;
  splits = std::max<int64_t>(splits, 1);
  const int64_t per_split = (chunks + splits - 1) / splits;
  splits = (chunks + per_split - 1) / per_split;
  const dim3 grid{unsigned(mblocks), unsigned(nblocks), unsigned(splits)};
  Int4TiledKernel<<<grid, kTiledWarps * 32, 0, s>>>(x, int(n), job, int(per_split),
                                                    splits > 1 ? partial : nullptr);
  LAUNCH_CHECK(Int4TiledKernel);
  if (splits > 1) {
    Int4ReduceKernel<<<GridFor(n * w.m, 256), 256, 0, s>>>(partial, int(splits), n * w.m, w.m,
                                                           job.bias, job.out);
    LAUNCH_CHECK(Int4ReduceKernel);
  }
}

void LaunchInt4Dequant(const Int4Device& w, void* out, cudaStream_t s) {
  LP_REQUIRE(Int4Fits(w.m, w.k, w.group_size) && out != nullptr);
  Int4DequantKernel<<<GridFor(w.m * w.k / 8, 256), 256, 0, s>>>(w, static_cast<__half*>(out));
  LAUNCH_CHECK(Int4DequantKernel);
}

void LaunchGatherCols(const float* x, int64_t n, int64_t k, const int32_t* perm, float* out,
                      cudaStream_t s) {
  LP_REQUIRE(x != nullptr && perm != nullptr && out != nullptr && n > 0 && k > 0);
  GatherColsKernel<<<GridFor(n * k, 256), 256, 0, s>>>(x, n, k, perm, out);
  LAUNCH_CHECK(GatherColsKernel);
}

}  // namespace lp::cuda
