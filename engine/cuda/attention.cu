// Causal grouped-query attention over the bf16 KV cache, for any step layout (prefill chunks
// and decode tokens of many sequences, each at its own positions in its own KV blocks).
//
// Why three kernels. A decode step has one query per sequence: the work is reading the cache, so
// `SplitAttnKernel` cuts each sequence's keys into chunks (one block per row, KV head and
// chunk, the query heads of the group sharing every key read) and `CombineKernel` merges the
// chunks' softmax partials. A prefill step has many queries per sequence: `FlashAttnKernel`
// loads 64 keys and values at a time into shared memory and lets 64 query vectors (query rows
// times the heads of one KV group) use them on the tensor cores, with an online softmax
// (head_dim <= 128; `TiledAttnKernel` does the same on the CUDA cores in float32 for 256).
// In a short step (up to kSplitRows rows: long decode rows, or a prompt's last chunk after a long
// cached prefix) the flash kernel also cuts the keys into chunks, so that a few query tiles over
// thousands of keys still fill the GPU. Positions and block tables come from the device layout,
// so a recorded decode step replays for any positions and blocks; a row's chunks depend only on
// its own position (its tile's last, for the flash kernel). Every kernel finds a key through its
// sequence's block table (CacheRow): blocks of 16 or more keys keep the reads as wide as in a
// contiguous cache.
//
// Batch invariance: which kernel serves a step depends on its size (chunks of keys up to
// kSplitRows rows), so a row's arithmetic would depend on what shares its step; with
// `batch_invariant` every step goes through the flash (or tiled) kernel over query tiles, whose
// result for a query vector depends only on that vector and the keys (key tiles past its
// position are exact no-ops).
#include <climits>
#include <cmath>

#include "engine/cuda/common.cuh"
#include "engine/cuda/kernels.h"

namespace lp::cuda {
namespace {

using bf16 = __nv_bfloat16;
constexpr int kMaxGroup = 8;  // query heads per KV head
constexpr int kSplitWarps = 4;
constexpr int kTileKeys = 32;
constexpr int kTileQueries = 64;  // query vectors per pass of a tiled block
constexpr int kTileWarps = 4;     // each warp owns kTileQueries / kTileWarps query vectors
constexpr int kQPerWarp = kTileQueries / kTileWarps;

// A row at position p reads keys [0, p] in at most kSplitChunks chunks of >= 32 keys: the chunk
// depends on the row's own position, not on the cache's size, so short contexts get many chunks
// whatever max_context is (and a recorded step's grid is the same at every position).
constexpr int kSplitChunks = 64;
__device__ __forceinline__ int SplitChunk(int p) {
  return max(32, (p + kSplitChunks) / kSplitChunks);
}

// The tensor-core kernel reads keys in tiles of kFlashKeys. Over chunks (short steps: decode
// rows from kLongDecodePosition on, prefill chunks), a query tile of `rows` rows whose last
// position is p reads keys [0, p] in at most kSplitChunks chunks of whole key tiles; a tile of
// more rows takes more key tiles a chunk, as a block's fixed cost (loading its queries, writing
// their partials) grows with its rows.
constexpr int kFlashKeys = 64;  // keys a shared-memory tile (of K and of V)
__device__ __forceinline__ int FlashChunkKeys(int p, int rows) {
  constexpr int kSpan = kFlashKeys * kSplitChunks;
  return kFlashKeys * max((p + kSpan) / kSpan, (rows + 15) / 16);
}

// The block table of the sequence of token row `row`.
__device__ __forceinline__ const int32_t* TableOf(const KvPages& pages, const int32_t* seq,
                                                  int row) {
  return pages.tables + int64_t(seq[row]) * *pages.stride;
}

// The index of this block's query tile, over all keys: the last tiles (the latest rows) read the
// most keys, so they start first, and the short ones fill the end of the grid instead of the long
// ones running alone.
__device__ __forceinline__ unsigned LongestTileFirst() { return gridDim.x - 1 - blockIdx.x; }

// The cache row (block * block_tokens + offset) that holds position t.
__device__ __forceinline__ int64_t CacheRow(const int32_t* table, int shift, int t) {
  return (int64_t(table[t >> shift]) << shift) | (t & ((1 << shift) - 1));
}

// ---- kernels

__global__ void StoreKvKernel(const float* k, const float* v, int64_t kvd, const int32_t* pos,
                              const int32_t* seq, KvPages pages, bf16* kc, bf16* vc) {
  const int64_t row = blockIdx.x;
  const int64_t dst = CacheRow(TableOf(pages, seq, int(row)), pages.block_shift, pos[row]) * kvd;
  for (int64_t i = threadIdx.x; i < kvd; i += blockDim.x) {
    kc[dst + i] = __float2bfloat16(k[row * kvd + i]);
    vc[dst + i] = __float2bfloat16(v[row * kvd + i]);
  }
}

// Block (row, kv head, chunk); warp w takes keys w, w + 4, ... of the chunk. Writes the chunk's
// unnormalized output, running max and sum per query head to `part`. With `k_new` (a decode
// step: one row per sequence), the row's own key and value come from k_new / v_new, and the
// block whose chunk holds them also stores them in the cache (saving the store kernel).
template <int D>
__global__ void __launch_bounds__(kSplitWarps * 32)
    SplitAttnKernel(const float* q, bf16* kc, bf16* vc, KvPages pages, int heads, int kv_heads,
                    const int32_t* pos, const int32_t* seq, float scale, const float* k_new,
                    const float* v_new, float* part) {
  WaitForEarlierKernels();
  LetLaterKernelsStart();
  constexpr int E = D >= 32 ? D / 32 : 1;
  __shared__ float sm_acc[kSplitWarps][kMaxGroup][D];
  __shared__ float sm_ml[kSplitWarps][kMaxGroup][2];
  const int row = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = heads / kv_heads;
  const int p = pos[row], chunk = SplitChunk(p), splits = kSplitChunks;
  const int key0 = split * chunk, key1 = min(key0 + chunk, p + 1);
  if (key0 > p) return;  // CombineKernel reads only chunks that hold keys
  const int d0 = lane * E;
  const bool owns = d0 < D;
  float qr[kMaxGroup][E], acc[kMaxGroup][E], m[kMaxGroup], l[kMaxGroup];
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const bool ok = g < group && owns;
      qr[g][e] = ok ? q[(int64_t(row) * heads + kvh * group + g) * D + d0 + e] * scale : 0.0f;
      acc[g][e] = 0.0f;
    }
  }
  const int64_t kvd = int64_t(kv_heads) * D;
  const int32_t* table = TableOf(pages, seq, row);
  const int shift = pages.block_shift;
  const int64_t base = int64_t(kvh) * D + d0;
  const int64_t fresh = int64_t(row) * kvd + int64_t(kvh) * D + d0;  // in k_new / v_new
  if (k_new != nullptr && key1 == p + 1 && warp == 0) {
    const int64_t at = CacheRow(table, shift, p) * kvd + base;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      if (owns) {
        kc[at + e] = __float2bfloat16(k_new[fresh + e]);
        vc[at + e] = __float2bfloat16(v_new[fresh + e]);
      }
    }
  }
  // The block table is read once per block of keys, not per key (a dependent load before each
  // key's own).
  int block = -1;
  int64_t block_row = 0;
  for (int t = key0 + warp; t < key1; t += kSplitWarps) {
    float kf[E], vf[E];
    const bool own_key = k_new != nullptr && t == p;
    if ((t >> shift) != block) {
      block = t >> shift;
      block_row = int64_t(table[block]) << shift;
    }
    const int64_t at = (block_row | (t & ((1 << shift) - 1))) * kvd + base;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      if (own_key) {  // rounded as the cache holds it
        kf[e] = owns ? __bfloat162float(__float2bfloat16(k_new[fresh + e])) : 0.0f;
        vf[e] = owns ? __bfloat162float(__float2bfloat16(v_new[fresh + e])) : 0.0f;
      } else {
        kf[e] = owns ? __bfloat162float(kc[at + e]) : 0.0f;
        vf[e] = owns ? __bfloat162float(vc[at + e]) : 0.0f;
      }
    }
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      if (g >= group) break;
      float s = 0.0f;
#pragma unroll
      for (int e = 0; e < E; ++e) s += qr[g][e] * kf[e];
      s = WarpSum(s);
      const float m_new = fmaxf(m[g], s);
      const float corr = __expf(m[g] - m_new), pr = __expf(s - m_new);
      l[g] = l[g] * corr + pr;
#pragma unroll
      for (int e = 0; e < E; ++e) acc[g][e] = acc[g][e] * corr + pr * vf[e];
      m[g] = m_new;
    }
  }
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    if (g >= group) break;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      if (owns) sm_acc[warp][g][d0 + e] = acc[g][e];
    }
    if (lane == 0) {
      sm_ml[warp][g][0] = m[g];
      sm_ml[warp][g][1] = l[g];
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < group * D; i += blockDim.x) {
    const int g = i / D, d = i % D;
    float mx = -INFINITY;
    for (int w = 0; w < kSplitWarps; ++w) mx = fmaxf(mx, sm_ml[w][g][0]);
    float o = 0.0f, sum = 0.0f;
    for (int w = 0; w < kSplitWarps; ++w) {
      const float f = sm_ml[w][g][1] > 0.0f ? __expf(sm_ml[w][g][0] - mx) : 0.0f;
      o += sm_acc[w][g][d] * f;
      sum += sm_ml[w][g][1] * f;
    }
    float* dst = part + ((int64_t(row) * heads + kvh * group + g) * splits + split) * (D + 2);
    dst[d] = o;
    if (d == 0) {
      dst[D] = mx;
      dst[D + 1] = sum;
    }
  }
}

// Block (row, query head). Without `tiles` the row's keys were cut as SplitAttnKernel cuts them
// (by its own position); with them, as FlashAttnKernel cuts its tile's (by the tile's rows and
// the position of its last row).
template <int D>
__global__ void CombineKernel(const float* part, int heads, const int32_t* pos,
                              const AttnTile* tiles, int num_tiles, float* out, HalfCopy copy) {
  WaitForEarlierKernels();
  LetLaterKernelsStart();
  const int row = blockIdx.x, h = blockIdx.y, d = threadIdx.x;
  if (d >= D) return;
  const int splits = kSplitChunks;
  int used = min(splits, pos[row] / SplitChunk(pos[row]) + 1);
  if (tiles != nullptr) {  // the last tile starting at or before the row (tiles are in row order)
    int lo = 0, hi = num_tiles - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (tiles[mid].row0 <= row)
        lo = mid;
      else
        hi = mid - 1;
    }
    const int p = pos[tiles[lo].row0 + tiles[lo].count - 1];
    used = p / FlashChunkKeys(p, tiles[lo].count) + 1;  // <= kSplitChunks
  }
  const float* src = part + (int64_t(row) * heads + h) * splits * (D + 2);
  float mx = -INFINITY;
  for (int s = 0; s < used; ++s) mx = fmaxf(mx, src[s * (D + 2) + D]);
  float o = 0.0f, sum = 0.0f;
  for (int s = 0; s < used; ++s) {
    const float* ps = src + s * (D + 2);
    const float f = ps[D + 1] > 0.0f ? __expf(ps[D] - mx) : 0.0f;
    o += ps[d] * f;
    sum += ps[D + 1] * f;
  }
  StoreOut(out, copy, (int64_t(row) * heads + h) * D + d, o / sum);
}

// Keys and values [kt, kt + 32) of one KV head (at cache0 in a row) into shared memory as
// float32 (zeros past max_pos); ks rows padded to D + 4.
template <int D>
__device__ __forceinline__ void LoadKvTile(const bf16* kc, const bf16* vc, const int32_t* table,
                                           int shift, int64_t cache0, int64_t kvd, int kt,
                                           int max_pos, float* ks, float* vs) {
  for (int i = threadIdx.x; i < kTileKeys * D / 8; i += blockDim.x) {
    const int key = i / (D / 8), d = (i % (D / 8)) * 8;
    uint4 ku = make_uint4(0, 0, 0, 0), vu = ku;
    if (kt + key <= max_pos) {
      const int64_t at = CacheRow(table, shift, kt + key) * kvd + cache0 + d;
      ku = *reinterpret_cast<const uint4*>(kc + at);
      vu = *reinterpret_cast<const uint4*>(vc + at);
    }
    const bf16* kb = reinterpret_cast<const bf16*>(&ku);
    const bf16* vb = reinterpret_cast<const bf16*>(&vu);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      ks[key * (D + 4) + d + e] = __bfloat162float(kb[e]);
      vs[key * D + d + e] = __bfloat162float(vb[e]);
    }
  }
}

// Block (tile of query rows of one sequence, kv head, group of 64 query vectors (row, head of
// the KV group)); keys in shared-memory tiles of 32, lane = key for the scores, lane = dimension
// for the output. Scores in log2 units (exp2f).
template <int D>
__global__ void __launch_bounds__(kTileWarps * 32)
    TiledAttnKernel(const float* q, const bf16* kc, const bf16* vc, KvPages pages, int heads,
                    int kv_heads, const int32_t* pos, const int32_t* seq, const AttnTile* tiles,
                    float scale_log2, float* out, HalfCopy copy) {
  constexpr int E = D >= 32 ? D / 32 : 1;
  constexpr int KS = D + 4;  // padded: lane-per-key float4 reads hit distinct banks
  extern __shared__ float smem[];
  float* qs = smem;                   // [kTileQueries][D]
  float* ks = qs + kTileQueries * D;  // [kTileKeys][KS]
  float* vs = ks + kTileKeys * KS;    // [kTileKeys][D]
  const AttnTile tile = tiles[LongestTileFirst()];
  const int kvh = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = heads / kv_heads, n_qv = tile.count * group;
  const int64_t kvd = int64_t(kv_heads) * D;
  const int32_t* table = TableOf(pages, seq, tile.row0);
  const int64_t cache0 = int64_t(kvh) * D;
  const int max_pos = pos[tile.row0 + tile.count - 1];
  // blockIdx.z: which 64 of the tile's query vectors (rows x heads of the group).
  {
    const int qv0 = int(blockIdx.z) * kTileQueries;
    if (qv0 >= n_qv) return;
    for (int i = threadIdx.x; i < kTileQueries * D; i += blockDim.x) {
      const int v = qv0 + i / D, d = i % D;
      const int r = v / group, g = v % group;
      qs[i] = v < n_qv ? q[(int64_t(tile.row0 + r) * heads + kvh * group + g) * D + d] * scale_log2
                       : 0.0f;
    }
    int qpos[kQPerWarp];
    float acc[kQPerWarp][E], m[kQPerWarp], l[kQPerWarp];
#pragma unroll
    for (int j = 0; j < kQPerWarp; ++j) {
      const int v = qv0 + warp * kQPerWarp + j;
      qpos[j] = v < n_qv ? pos[tile.row0 + v / group] : -1;
      m[j] = -INFINITY;
      l[j] = 0.0f;
#pragma unroll
      for (int e = 0; e < E; ++e) acc[j][e] = 0.0f;
    }
    for (int kt = 0; kt <= max_pos; kt += kTileKeys) {
      __syncthreads();
      LoadKvTile<D>(kc, vc, table, pages.block_shift, cache0, kvd, kt, max_pos, ks, vs);
      __syncthreads();
      float s[kQPerWarp];
#pragma unroll
      for (int j = 0; j < kQPerWarp; ++j) s[j] = 0.0f;
      const float* qw = qs + warp * kQPerWarp * D;
#pragma unroll 4
      for (int d = 0; d < D; d += 4) {
        const float4 kf = *reinterpret_cast<const float4*>(ks + lane * KS + d);
#pragma unroll
        for (int j = 0; j < kQPerWarp; ++j) {
          const float4 qf = *reinterpret_cast<const float4*>(qw + j * D + d);
          s[j] += qf.x * kf.x + qf.y * kf.y + qf.z * kf.z + qf.w * kf.w;
        }
      }
#pragma unroll
      for (int j = 0; j < kQPerWarp; ++j) {
        if (qpos[j] < 0) {  // warp-uniform: no query here
          s[j] = 0.0f;
          continue;
        }
        const float sj = kt + lane <= qpos[j] ? s[j] : -INFINITY;
        const float m_new = fmaxf(m[j], WarpMax(sj));
        const float corr = exp2f(m[j] - m_new);
        s[j] = exp2f(sj - m_new);
        l[j] = l[j] * corr + s[j];  // per-lane partial sum, reduced at the end
#pragma unroll
        for (int e = 0; e < E; ++e) acc[j][e] *= corr;
        m[j] = m_new;
      }
      for (int key = 0; key < kTileKeys; ++key) {
        float vf[E];
#pragma unroll
        for (int e = 0; e < E; ++e)
          vf[e] = (lane + 32 * e < D) ? vs[key * D + lane + 32 * e] : 0.0f;
#pragma unroll
        for (int j = 0; j < kQPerWarp; ++j) {
          const float pj = __shfl_sync(0xffffffffu, s[j], key);
#pragma unroll
          for (int e = 0; e < E; ++e) acc[j][e] += pj * vf[e];
        }
      }
    }
#pragma unroll
    for (int j = 0; j < kQPerWarp; ++j) {
      const float sum = WarpSum(l[j]);
      if (qpos[j] < 0) continue;
      const int v = qv0 + warp * kQPerWarp + j, r = v / group, g = v % group;
      const int64_t o = (int64_t(tile.row0 + r) * heads + kvh * group + g) * D;
#pragma unroll
      for (int e = 0; e < E; ++e) {
        if (lane + 32 * e < D) StoreOut(out, copy, o + lane + 32 * e, acc[j][e] / sum);
      }
    }
  }
}

// ---- tensor-core attention (head_dim <= 128)

template <int D>
constexpr size_t FlashSmemBytes() {
  return size_t(2 /* stages */) * 2 /* K, V */ * kFlashKeys * (D + 8) * sizeof(bf16);
}

__device__ __forceinline__ uint32_t Bf16Pair(float a, float b) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// One warp's part of a K/V tile: its 16 query vectors (A fragments qf; positions qpos, -1 for
// none; the first of them first_pos) against the NJ x 8 keys from key0 (shared-memory rows ks and
// vs; keys from kend are masked), folded into its online softmax (o, m, l, in log2 units).
template <int D, int NJ>
__device__ __forceinline__ void FlashKeys(const bf16* ks, const bf16* vs, int key0, int kend,
                                          const int (&qpos)[2], int first_pos,
                                          const uint32_t (&qf)[D / 16][4], float (&o)[D / 8][4],
                                          float (&m)[2], float (&l)[2]) {
  constexpr int KR = D + 8, DC = D / 16, DT = D / 8;
  const int lane = threadIdx.x % 32, t = lane % 4;
  // S = Q K^T: NJ tiles of 8 keys; s[j][e]: row e / 2 (g or g + 8), key 8 j + 2 t + e % 2.
  // Columns outer, key tiles inner: the NJ products of one column chunk are independent (each
  // s[j] still sums its chunks in order). It measured the same as key tiles outer (NOTES):
  // ptxas interleaved those already.
  // One ldmatrix loads two key tiles' B fragments: matrix lane / 8 = (tile j + mat / 2, half
  // mat % 2).
  float s[NJ][4];
#pragma unroll
  for (int j = 0; j < NJ; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) s[j][e] = 0.0f;
  }
#pragma unroll
  for (int c = 0; c < DC; ++c) {
#pragma unroll
    for (int j = 0; j < NJ; j += 2) {
      uint32_t b[4];
      const int mat = lane / 8;
      LdMatrixX4(b, ks + ((j + mat / 2) * 8 + lane % 8) * KR + c * 16 + (mat % 2) * 8);
      Mma<bf16>(s[j], qf[c], b[0], b[1]);
      Mma<bf16>(s[j + 1], qf[c], b[2], b[3]);
    }
  }
  const int last_key = key0 + NJ * 8 - 1;
  if (last_key > first_pos || last_key >= kend) {  // (the warp takes the same branch)
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = key0 + j * 8 + 2 * t + e % 2;
        if (key > qpos[e / 2] || key >= kend) s[j][e] = -INFINITY;
      }
    }
  }
  float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int j = 0; j < NJ; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) mx[e / 2] = fmaxf(mx[e / 2], s[j][e]);
  }
  float corr[2], rs[2] = {0.0f, 0.0f};
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
    const float m_new = fmaxf(m[h], mx[h]);
    corr[h] = m_new == -INFINITY ? 1.0f : exp2f(m[h] - m_new);
    m[h] = m_new;
  }
#pragma unroll
  for (int j = 0; j < NJ; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int h = e / 2;
      s[j][e] = m[h] == -INFINITY ? 0.0f : exp2f(s[j][e] - m[h]);
      rs[h] += s[j][e];
    }
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) l[h] = l[h] * corr[h] + rs[h];  // this lane's keys
#pragma unroll
  for (int i = 0; i < DT; ++i) {
    o[i][0] *= corr[0];
    o[i][1] *= corr[0];
    o[i][2] *= corr[1];
    o[i][3] *= corr[1];
  }
  // O += P V, keys in chunks of 16: the S tiles 2c and 2c + 1 are P's A fragment.
#pragma unroll
  for (int c = 0; c < NJ / 2; ++c) {
    const uint32_t a[4] = {Bf16Pair(s[2 * c][0], s[2 * c][1]), Bf16Pair(s[2 * c][2], s[2 * c][3]),
                           Bf16Pair(s[2 * c + 1][0], s[2 * c + 1][1]),
                           Bf16Pair(s[2 * c + 1][2], s[2 * c + 1][3])};
#pragma unroll
    for (int i = 0; i < DT; i += 2) {
      uint32_t b[4];
      LdMatrixX4Trans(b,
                      vs + (c * 16 + lane % 8 + ((lane / 8) % 2) * 8) * KR + (i + lane / 16) * 8);
      Mma<bf16>(o[i], a, b[0], b[1]);
      Mma<bf16>(o[i + 1], a, b[2], b[3]);
    }
  }
}

// Block (tile of query rows of one sequence, kv head, group of 64 query vectors), as
// TiledAttnKernel; warp w owns query vectors [16 w, 16 w + 16) as the rows of its mma tiles
// (over chunks, a block of at most 16 query vectors splits each key tile among its warps instead).
// Keys and values in tiles of 64 (cp.async, two stages); S = Q K^T and O += P V on the tensor
// cores (bf16 inputs, float32 accumulators), online softmax in float32 in log2 units. Over all
// keys (no `part`), a query vector's arithmetic depends only on its own row and the keys: tiles
// past its position are masked to exact no-ops, so its result does not depend on the tile it is
// in. Over chunks (`part`), the chunks depend on the tile.
template <int D>
__global__ void __launch_bounds__(kTileWarps * 32)
    FlashAttnKernel(const float* q, const bf16* kc, const bf16* vc, KvPages pages, int heads,
                    int kv_heads, const int32_t* pos, const int32_t* seq, const AttnTile* tiles,
                    float scale_log2, float* out, HalfCopy copy, float* part) {
  WaitForEarlierKernels();
  LetLaterKernelsStart();
  constexpr int KR = D + 8;  // padded shared-memory row: ldmatrix reads hit distinct banks
  constexpr int DC = D / 16, DT = D / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* sm = reinterpret_cast<bf16*>(smem_raw);  // [stage][K, V][key][KR]
  const AttnTile tile = tiles[part != nullptr ? blockIdx.x : LongestTileFirst()];
  const int kvh = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int group = heads / kv_heads, n_qv = tile.count * group;
  const int max_pos = pos[tile.row0 + tile.count - 1];
  // Keys [kbeg, kend): all up to the tile's last position; or with `part`, chunk `chunk` of
  // them as FlashChunkKeys cuts them (blockIdx.z = chunk x query groups + query group).
  const int query_groups = part != nullptr ? int(gridDim.z) / kSplitChunks : int(gridDim.z);
  const int chunk = int(blockIdx.z) / query_groups;
  const int qv0 = int(blockIdx.z) % query_groups * kTileQueries;
  int kbeg = 0, kend = max_pos + 1;
  if (part != nullptr) {
    kbeg = chunk * FlashChunkKeys(max_pos, tile.count);
    kend = min(kbeg + FlashChunkKeys(max_pos, tile.count), max_pos + 1);
    if (kbeg > max_pos) return;
  }
  if (qv0 >= n_qv) return;
  const int64_t kvd = int64_t(kv_heads) * D;
  const int32_t* table = TableOf(pages, seq, tile.row0);
  const int64_t cache0 = int64_t(kvh) * D;

  // Over chunks, a block whose query vectors fit one warp's 16 (a decode row's heads of one KV
  // group) would leave three warps idle: with split_keys every warp takes all of them against its
  // own quarter of each key tile, and the warps' softmax partials are merged at the end.
  const bool split_keys = part != nullptr && n_qv - qv0 <= 16;
  static_assert(kFlashKeys == 16 * kTileWarps);
  // This lane's query vectors: rows g (h = 0) and g + 8 (h = 1) of the warp's 16.
  int qpos[2];
  int64_t qoff[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int v = qv0 + (split_keys ? 0 : warp * 16) + g + 8 * h;
    qpos[h] = -1;
    qoff[h] = -1;
    if (v < n_qv) {
      const int r = v / group;
      qpos[h] = pos[tile.row0 + r];
      qoff[h] = (int64_t(tile.row0 + r) * heads + kvh * group + v % group) * D;
    }
  }
  // The warp's first query position: key tiles up to it need no mask (none past a row, or kend).
  int first_pos = qpos[0] >= 0 ? qpos[0] : INT_MAX;
  first_pos = min(first_pos, qpos[1] >= 0 ? qpos[1] : INT_MAX);
#pragma unroll
  for (int step = 16; step > 0; step >>= 1) {
    first_pos = min(first_pos, __shfl_xor_sync(0xffffffffu, first_pos, step));
  }
  uint32_t qf[DC][4];  // A fragments: a[h + 2 * half] = row h, columns 16 c + 2 t + 8 half
#pragma unroll
  for (int c = 0; c < DC; ++c) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int h = i % 2, d = c * 16 + 2 * t + 8 * (i / 2);
      const float2 v = qoff[h] >= 0 ? *reinterpret_cast<const float2*>(q + qoff[h] + d)
                                    : make_float2(0.0f, 0.0f);
      qf[c][i] = Bf16Pair(v.x * scale_log2, v.y * scale_log2);
    }
  }
  float o[DT][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
  for (int i = 0; i < DT; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[i][e] = 0.0f;

  // A thread copies kLoads 16-byte pieces of each tile. The table entries of their keys are read
  // first, all together, so that their latencies overlap instead of each one preceding its copy.
  constexpr int kChunks = D / 8, kLoads = kFlashKeys * kChunks / (kTileWarps * 32);
  static_assert(kLoads >= 1 && kFlashKeys * kChunks % (kTileWarps * 32) == 0);
  auto load = [&](int stage, int kb) {
    bf16* ks = sm + stage * 2 * kFlashKeys * KR;
    bf16* vs = ks + kFlashKeys * KR;
    const int key0 = kbeg + kb * kFlashKeys;
    int64_t off[kLoads];
#pragma unroll
    for (int j = 0; j < kLoads; ++j) {
      const int i = threadIdx.x + j * kTileWarps * 32;
      const int kk = key0 + i / kChunks;
      off[j] = cache0 + (kk < kend ? CacheRow(table, pages.block_shift, kk) * kvd : 0) +
               (i % kChunks) * 8;
    }
#pragma unroll
    for (int j = 0; j < kLoads; ++j) {
      const int i = threadIdx.x + j * kTileWarps * 32;
      const int key = i / kChunks, d = (i % kChunks) * 8;
      const bool valid = key0 + key < kend;
      CopyAsync16(ks + key * KR + d, kc + off[j], valid);
      CopyAsync16(vs + key * KR + d, vc + off[j], valid);
    }
  };
  const int n_blocks = (kend - kbeg + kFlashKeys - 1) / kFlashKeys;
  load(0, 0);
  CopyAsyncCommit();
  for (int kb = 0; kb < n_blocks; ++kb) {
    if (kb + 1 < n_blocks) load((kb + 1) % 2, kb + 1);
    CopyAsyncCommit();
    CopyAsyncWait<1>();
    __syncthreads();
    const bf16* ks = sm + (kb % 2) * 2 * kFlashKeys * KR;
    const bf16* vs = ks + kFlashKeys * KR;
    // A warp without query vectors (the last tile of a prompt) only loads. The condition is the
    // same in all of the warp, which meets the block at one barrier on either path.
    if (first_pos == INT_MAX) {
      __syncthreads();
      continue;
    }
    const int key0 = kbeg + kb * kFlashKeys;
    if (split_keys) {
      FlashKeys<D, 2>(ks + warp * 16 * KR, vs + warp * 16 * KR, key0 + warp * 16, kend, qpos,
                      first_pos, qf, o, m, l);
    } else {
      FlashKeys<D, kFlashKeys / 8>(ks, vs, key0, kend, qpos, first_pos, qf, o, m, l);
    }
    __syncthreads();  // every warp is done with this stage before it is refilled
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
  }
  if (split_keys) {
    // Warps 1 to 3 leave their partials in shared memory (the loop ended at a barrier: the K/V
    // stages are free, and no copy is pending); warp 0 merges them into its own, in warp order.
    constexpr int OR = D + 8;                        // padded row of an output
    float* ms = reinterpret_cast<float*>(smem_raw);  // [warp][16 query vectors]: max
    float* ls = ms + kTileWarps * 16;                // [warp][16]: sum
    float* os = ls + kTileWarps * 16;                // [warp][16][OR]: unnormalized output
    static_assert(sizeof(float) * kTileWarps * 16 * (OR + 2) <= FlashSmemBytes<D>());
    if (warp > 0) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = warp * 16 + g + 8 * h;
        if (t == 0) {
          ms[r] = m[h];
          ls[r] = l[h];
        }
#pragma unroll
        for (int i = 0; i < DT; ++i) {
          *reinterpret_cast<float2*>(os + r * OR + i * 8 + 2 * t) =
              make_float2(o[i][2 * h], o[i][2 * h + 1]);
        }
      }
    }
    __syncthreads();
    if (warp > 0) return;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = g + 8 * h;
      float mx = m[h];
#pragma unroll
      for (int w = 1; w < kTileWarps; ++w) mx = fmaxf(mx, ms[w * 16 + r]);
      const float own = mx == -INFINITY ? 0.0f : exp2f(m[h] - mx);
      l[h] *= own;
#pragma unroll
      for (int i = 0; i < DT; ++i) {
        o[i][2 * h] *= own;
        o[i][2 * h + 1] *= own;
      }
#pragma unroll
      for (int w = 1; w < kTileWarps; ++w) {
        const int rw = w * 16 + r;
        const float sc = mx == -INFINITY ? 0.0f : exp2f(ms[rw] - mx);
        l[h] += ls[rw] * sc;
#pragma unroll
        for (int i = 0; i < DT; ++i) {
          const float2 v = *reinterpret_cast<const float2*>(os + rw * OR + i * 8 + 2 * t);
          o[i][2 * h] += v.x * sc;
          o[i][2 * h + 1] += v.y * sc;
        }
      }
      m[h] = mx;
    }
  }
  if (part != nullptr) {  // unnormalized, with max (natural log units) and sum, as SplitAttnKernel
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      if (qoff[h] < 0) continue;
      float* dst = part + (qoff[h] / D * kSplitChunks + chunk) * (D + 2);
#pragma unroll
      for (int i = 0; i < DT; ++i) {
        dst[i * 8 + 2 * t] = o[i][2 * h];
        dst[i * 8 + 2 * t + 1] = o[i][2 * h + 1];
      }
      if (t == 0) {
        dst[D] = m[h] * 0.6931471805599453f;
        dst[D + 1] = l[h];
      }
    }
    return;
  }
#pragma unroll
  for (int i = 0; i < DT; ++i) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int h = e / 2;
      if (qoff[h] >= 0) StoreOut(out, copy, qoff[h] + i * 8 + 2 * t + e % 2, o[i][e] / l[h]);
    }
  }
}

// Which kernels serve a step (LaunchAttention picks): the split kernel over each decode row's
// chunks (short decode steps), the flash kernel over chunks of each query tile's keys (long
// decode rows, other steps of <= kSplitRows rows), or over query tiles (larger steps).
enum class AttnPath { kSplit, kFlashChunks, kTiles };

// Merges the chunks' partials in `scratch` into `out` (chunks of query tiles: `by_tile`).
template <int D>
void Combine(const float* scratch, const AttnShape& a, const DeviceLayout& L, bool by_tile,
             float* out, HalfCopy copy, cudaStream_t s) {
  const unsigned threads = D < 32 ? 32 : D;
  LaunchChained(CombineKernel<D>, dim3(unsigned(L.tokens), unsigned(a.heads)), threads, 0, s,
                scratch, int(a.heads), L.pos, by_tile ? L.tiles : nullptr, int(L.num_tiles), out,
                copy);
}

template <int D>
void Attend(const KvLayer& c, const float* q, const float* k_new, const float* v_new,
            const AttnShape& a, const DeviceLayout& L, AttnPath path, float* scratch, float* out,
            HalfCopy copy, cudaStream_t s) {
  auto* kc = static_cast<bf16*>(c.k);
  auto* vc = static_cast<bf16*>(c.v);
  const float scale = 1.0f / sqrtf(float(D));
  if (path == AttnPath::kSplit) {
    const dim3 chunks(unsigned(L.tokens), unsigned(a.kv_heads), unsigned(kSplitChunks));
    LaunchChained(SplitAttnKernel<D>, chunks, kSplitWarps * 32, 0, s, q, kc, vc, L.pages,
                  int(a.heads), int(a.kv_heads), L.pos, L.seq, scale, k_new, v_new, scratch);
    Combine<D>(scratch, a, L, /*by_tile=*/false, out, copy, s);
    return;
  }
  const int64_t groups = (kAttnTileRows * (a.heads / a.kv_heads) + kTileQueries - 1) / kTileQueries;
  const dim3 grid(unsigned(L.num_tiles), unsigned(a.kv_heads), unsigned(groups));
  const float scale_log2 = scale * 1.4426950408889634f;
  if constexpr (D <= 128) {
    static const bool configured = [] {  // the attribute is per kernel: set once, before use
      CUDA_CHECK(cudaFuncSetAttribute(FlashAttnKernel<D>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      int(FlashSmemBytes<D>())));
      return true;
    }();
    (void)configured;
    if (path == AttnPath::kFlashChunks) {
      // A decode-only step's tiles are single rows: one group of query vectors each.
      const unsigned query_groups = L.tokens == L.num_tiles ? 1 : unsigned(groups);
      const dim3 tile_chunks(unsigned(L.num_tiles), unsigned(a.kv_heads),
                             unsigned(kSplitChunks) * query_groups);
      LaunchChained(FlashAttnKernel<D>, tile_chunks, kTileWarps * 32, FlashSmemBytes<D>(), s, q, kc,
                    vc, L.pages, int(a.heads), int(a.kv_heads), L.pos, L.seq, L.tiles, scale_log2,
                    out, HalfCopy{}, scratch);
      Combine<D>(scratch, a, L, /*by_tile=*/true, out, copy, s);
      return;
    }
    LaunchChained(FlashAttnKernel<D>, grid, kTileWarps * 32, FlashSmemBytes<D>(), s, q, kc, vc,
                  L.pages, int(a.heads), int(a.kv_heads), L.pos, L.seq, L.tiles, scale_log2, out,
                  copy, static_cast<float*>(nullptr));
    return;
  }
  const size_t smem = sizeof(float) * (kTileQueries * D + kTileKeys * (D + 4) + kTileKeys * D);
  static const bool configured = [smem] {
    CUDA_CHECK(cudaFuncSetAttribute(TiledAttnKernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    int(smem)));
    return true;
  }();
  (void)configured;
  TiledAttnKernel<D><<<grid, kTileWarps * 32, smem, s>>>(q, kc, vc, L.pages, int(a.heads),
                                                         int(a.kv_heads), L.pos, L.seq, L.tiles,
                                                         scale_log2, out, copy);
  LAUNCH_CHECK(TiledAttnKernel);
}

}  // namespace

// ---- launchers

int64_t SplitAttentionScratchFloats(const AttnShape& a) {
  return int64_t(kSplitRows) * a.heads * kSplitChunks * (a.head_dim + 2);
}

const char* AttentionUnsupported(const AttnShape& a) {
  const bool dim = a.head_dim == 16 || a.head_dim == 32 || a.head_dim == 64 || a.head_dim == 128 ||
                   a.head_dim == 256;
  if (!dim) return "head_dim 16, 32, 64, 128 or 256";
  if (a.kv_heads <= 0 || a.heads % a.kv_heads != 0 || a.heads / a.kv_heads > kMaxGroup) {
    return "up to 8 query heads per KV head";
  }
  return nullptr;
}

void LaunchAttention(const float* q, const float* k, const float* v, const KvLayer& cache,
                     const AttnShape& a, const DeviceLayout& layout, bool decode_only,
                     bool batch_invariant, float* scratch, float* out, HalfCopy copy,
                     cudaStream_t s) {
  LP_REQUIRE(layout.tokens > 0 && a.kv_heads > 0 && a.heads % a.kv_heads == 0);
  LP_REQUIRE(a.heads / a.kv_heads <= kMaxGroup);
  const int64_t kvd = a.kv_heads * a.head_dim;
  // Steps of up to kSplitRows rows cut the keys into chunks. Short decode rows: the split
  // kernel. Long decode rows and prefill chunks: the flash kernel over chunks (its mma reads keys
  // faster than the split kernel's warp per key, and a prefill tile's rows share every key it
  // reads); it does not store keys, so the store kernel runs first.
  AttnPath path = AttnPath::kTiles;
  if (layout.tokens <= kSplitRows && !batch_invariant) {
    const bool flash = a.head_dim <= 128 && (!decode_only || layout.max_pos >= kLongDecodePosition);
    path = flash ? AttnPath::kFlashChunks : AttnPath::kSplit;
  }
  const bool fused_store = decode_only && path == AttnPath::kSplit;
  if (!fused_store) {
    StoreKvKernel<<<unsigned(layout.tokens), 128, 0, s>>>(k, v, kvd, layout.pos, layout.seq,
                                                          layout.pages, static_cast<bf16*>(cache.k),
                                                          static_cast<bf16*>(cache.v));
    LAUNCH_CHECK(StoreKvKernel);
  }
  const float* kn = fused_store ? k : nullptr;
  const float* vn = fused_store ? v : nullptr;
  switch (a.head_dim) {
    case 16:
      Attend<16>(cache, q, kn, vn, a, layout, path, scratch, out, copy, s);
      break;
    case 32:
      Attend<32>(cache, q, kn, vn, a, layout, path, scratch, out, copy, s);
      break;
    case 64:
      Attend<64>(cache, q, kn, vn, a, layout, path, scratch, out, copy, s);
      break;
    case 128:
      Attend<128>(cache, q, kn, vn, a, layout, path, scratch, out, copy, s);
      break;
    case 256:
      Attend<256>(cache, q, kn, vn, a, layout, path, scratch, out, copy, s);
      break;
    default:
      LP_REQUIRE(a.head_dim == 16 || a.head_dim == 32 || a.head_dim == 64 || a.head_dim == 128 ||
                 a.head_dim == 256);
  }
}

}  // namespace lp::cuda
