// Batch-invariant float32 matrix product (see matmul.h).
//
// Each element is a dot product over k kept in 8 lanes (lane l sums the products at k = l mod
// 8, in order), reduced in one fixed tree, then the tail k mod 8 in order. Tiles of up to 4 rows
// x 4 columns share their loads, but no element's arithmetic depends on the tile it is in.
// x86-64 machines with AVX2 + FMA get a clone built for them (chosen once at load): the same
// scheme with fused multiply-adds, on every row alike.
#include "engine/cpu/matmul.h"

#include <algorithm>

namespace lp {
namespace {

typedef float V8 __attribute__((vector_size(32)));

constexpr int kLanes = 8;
constexpr int kTileRows = 4;
constexpr int kTileCols = 4;
constexpr int64_t kBlockCols = 16;  // weight rows a thread keeps in cache for every row of x

inline V8 Load(const float* p) {
  V8 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

inline float Reduce(V8 a) {
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

// out[r, c] for R rows of x and C columns of w starting at the given pointers.
template <int R, int C>
inline __attribute__((always_inline)) void Tile(const float* x, int64_t k, const float* w,
                                                const float* bias, float* out, int64_t ld_out) {
  V8 acc[R][C] = {};
  const int64_t body = k - k % kLanes;
  for (int64_t kk = 0; kk < body; kk += kLanes) {
    V8 xv[R], wv[C];
    for (int r = 0; r < R; ++r) xv[r] = Load(x + r * k + kk);
    for (int c = 0; c < C; ++c) wv[c] = Load(w + c * k + kk);
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) acc[r][c] += xv[r] * wv[c];
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      float s = Reduce(acc[r][c]);
      for (int64_t kk = body; kk < k; ++kk) s += x[r * k + kk] * w[c * k + kk];
      out[r * ld_out + c] = bias != nullptr ? s + bias[c] : s;
    }
  }
}

template <int R>
inline __attribute__((always_inline)) void RowTile(const float* x, int64_t k, const float* w,
                                                   int64_t cols, const float* bias, float* out,
                                                   int64_t ld_out) {
  int64_t c = 0;
  for (; c + kTileCols <= cols; c += kTileCols) {
    Tile<R, kTileCols>(x, k, w + c * k, bias ? bias + c : nullptr, out + c, ld_out);
  }
  for (; c < cols; ++c) Tile<R, 1>(x, k, w + c * k, bias ? bias + c : nullptr, out + c, ld_out);
}

// Not under ThreadSanitizer: gcc 12 instruments the clones' resolver, which the dynamic loader
// runs before TSan's runtime is up, and every program linking this crashes at load (TSan
// builds, scripts/sanitize.sh, run the default clone).
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
void ColumnBlock(const float* x, int64_t n, int64_t k, const float* w, int64_t cols,
                 const float* bias, float* out, int64_t ld_out) {
  int64_t r = 0;
  for (; r + kTileRows <= n; r += kTileRows) {
    RowTile<kTileRows>(x + r * k, k, w, cols, bias, out + r * ld_out, ld_out);
  }
  for (; r < n; ++r) RowTile<1>(x + r * k, k, w, cols, bias, out + r * ld_out, ld_out);
}

}  // namespace

void MatMulF32(const float* x, int64_t n, int64_t k, const float* w, int64_t m, const float* bias,
               float* out) {
  const int64_t blocks = (m + kBlockCols - 1) / kBlockCols;
#pragma omp parallel for schedule(static) if (blocks > 1 && n * m * k > (1 << 16))
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t c0 = b * kBlockCols, cols = std::min(kBlockCols, m - c0);
    ColumnBlock(x, n, k, w + c0 * k, cols, bias != nullptr ? bias + c0 : nullptr, out + c0, m);
  }
}

}  // namespace lp
