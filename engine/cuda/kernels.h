// The launchers of the CUDA backend's kernels, one group per .cu file. Each checks its
// preconditions and its launch (common.cuh); all run on the given stream. Activations are
// float32; weights bf16 or f16 (`half_weights` true for f16); 1-D weights float32.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/dtype.h"

namespace lp::cuda {

// The step layout on the device (uploaded by BeginStep): per token row its position and its
// sequence (an index into the step's KV block tables), the tables, and the prefill attention
// tiles (query rows of one sequence).
struct AttnTile {
  int32_t row0;   // first query row of the tile
  int32_t count;  // rows in it (<= kAttnTileRows)
};
inline constexpr int kAttnTileRows = 32;
// Where the positions of a step's sequences lie in the paged KV cache: sequence i's position t
// in block tables[i * *stride + t / block_tokens], at t % block_tokens. The stride (the most
// blocks a sequence of the step reads) is in device memory, set with the tables at each step,
// so that a recorded step replays with tables of any length.
struct KvPages {
  const int32_t* tables = nullptr;  // [sequences][*stride]
  const int32_t* stride = nullptr;
  int32_t block_shift = 4;  // log2(block_tokens)
};
struct DeviceLayout {
  const int32_t* pos = nullptr;  // [tokens]
  const int32_t* seq = nullptr;  // [tokens]: the row's sequence in the step
  KvPages pages;
  const AttnTile* tiles = nullptr;
  int32_t num_tiles = 0;
  int32_t tokens = 0;
  int32_t max_pos = 0;  // the step's largest position (host side)
};
// Decode steps whose largest position is at least this read the cache with the tensor-core
// kernel in chunks (attention.cu); the recorded graph of a decode step depends on it.
inline constexpr int32_t kLongDecodePosition = 1024;

// A second output that an op (a norm, SwiGLU, attention) writes beside its float32 one: the same
// values in the weight type (f16 when `half`, else bf16), the input of the product that reads
// them next, so that no LaunchToHalf runs before it. data null: none. With a null float32
// output, the op's only output (one in the weight type: Backend::ActivationsInWeightType).
struct HalfCopy {
  void* data = nullptr;
  bool half = false;
};
// An activation an op reads: float32, or in the weight type (kBF16, kF16) where
// Backend::ActivationsInWeightType allowed it.
struct ActIn {
  const void* data = nullptr;
  DType type = DType::kF32;
};

// ---- norm_rope.cu
void LaunchEmbed(const void* table, bool half_weights, const int32_t* ids, int64_t n, int64_t cols,
                 float* out, cudaStream_t s);
// residual may be null (plain RMSNorm); else residual += x first, and the norm is of residual.
void LaunchRmsNorm(float* residual, ActIn x, const float* w, float eps, int64_t rows, int64_t cols,
                   float* out, HalfCopy copy, cudaStream_t s);
// q [rows, heads * head_dim] and k [rows, kv_heads * head_dim] in place; norms may be null.
void LaunchQkNormRope(float* q, float* k, int64_t rows, int64_t heads, int64_t kv_heads,
                      int64_t head_dim, const float* q_norm, const float* k_norm, float eps,
                      double theta, const int32_t* pos, cudaStream_t s);
void LaunchSiluMul(const float* gate, const float* up, int64_t n, float* out, HalfCopy copy,
                   cudaStream_t s);
// The same with gate, up and out in f16 (half) or bf16, 16-byte aligned, n a multiple of 8.
void LaunchSiluMulHalf(const void* gate, const void* up, int64_t n, bool half, void* out,
                       cudaStream_t s);
void LaunchAdd(float* x, ActIn y, int64_t n, cudaStream_t s);
void LaunchAddBias(float* x, const float* bias, int64_t rows, int64_t cols, cudaStream_t s);
void LaunchGatherRows(const float* x, int64_t cols, const int32_t* rows, int64_t n, float* out,
                      cudaStream_t s);
void LaunchToHalf(const float* x, int64_t n, bool half, void* out, cudaStream_t s);
void LaunchRandomFill(void* out, int64_t n, int kind /* 0 f32, 1 bf16, 2 f16 */, uint64_t seed,
                      float amplitude, bool ones, cudaStream_t s);

// ---- gemm.cu
// The batch-invariant product (CudaBackendOptions::batch_invariant): out[n, m] = x[n, k] w[m, k]^T
// (+ bias) with x already in the weight type (LaunchToHalf), on the tensor cores. A row's
// result does not depend on n or on the other rows. Needs k % 8 == 0 and 16-byte aligned x, w.
// Steps of up to kInvariantSplitRows rows cut k into ranges by the weight's shape and need
// `partial` of InvariantGemmPartialFloats(m, k) floats (0: none).
inline constexpr int kInvariantSplitRows = 64;
bool InvariantGemmFits(int64_t n, int64_t k, int64_t m, const void* x, const void* w);
int64_t InvariantGemmPartialFloats(int64_t m, int64_t k);
void LaunchInvariantGemm(const void* x_half, int64_t n, int64_t k, const void* w, bool half_weights,
                         int64_t m, const float* bias, float* out, float* partial,
                         int64_t partial_floats, cudaStream_t s);

// ---- matmul.cu
// Our GEMV, for up to kMaxGemvJobs products of the same x in one launch (x: n <= kGemvMaxRows
// rows; more go to cuBLASLt, x converted to the weight type first: matmul.cu says why).
inline constexpr int kMaxGemvJobs = 4;
inline constexpr int kGemvMaxRows = 2;
struct GemvOut {
  const void* w;
  const float* bias;
  float* out;
  int64_t m;
};
struct GemvJobs {
  GemvOut job[kMaxGemvJobs];
  int first_block[kMaxGemvJobs];
  int count;
};
bool GemvFits(const float* x, int64_t n, int64_t k, const void* w);
void LaunchGemv(const float* x, int64_t n, int64_t k, bool half_weights, const GemvOut* outs,
                int count, cudaStream_t s);

// ---- int4.cu
// A 4-bit weight W[m, k] on the device, in int4.cu's layout: `codes` uint4 [m / 16][k / 64][32],
// `sz` [m / 16][groups][8][2] (f16 scale | zero << 16 per row and group), `perm` [k] or null
// (x is gathered through it first: column j multiplies input perm[j]).
struct Int4Device {
  const uint4* codes = nullptr;
  const uint32_t* sz = nullptr;
  const int32_t* perm = nullptr;
  int64_t m = 0, k = 0, group_size = 0;
  int64_t groups = 0;  // k / group_size
};
inline constexpr int kInt4GemvMaxRows = 16;    // our GEMV up to here
inline constexpr int kInt4TiledMaxRows = 128;  // then the tiled kernel; above, cuBLAS
inline constexpr int kMaxInt4Jobs = 4;
struct Int4Job {
  Int4Device w;
  const float* bias;
  float* out;
};
struct Int4Jobs {
  Int4Job job[kMaxInt4Jobs];
  int first_block[kMaxInt4Jobs];
  int count;
};
// Whether the packed kernels take a weight of this shape (else it is loaded dense).
bool Int4Fits(int64_t m, int64_t k, int64_t group_size);
// Words of `sz`, and where row `row`, group `group` of `groups` lies in it.
int64_t Int4SzWords(int64_t m, int64_t k, int64_t group_size);
int64_t Int4SzIndex(int64_t row, int64_t group, int64_t groups);
// Floats of the tiled kernel's partial sums that any shape needs, on a GPU of `sms` SMs.
int64_t Int4PartialFloats(int sms);
// Codes in Int4Matrix's layout ([m][k / 8] words, on the device) -> `codes`.
void LaunchInt4Repack(const uint32_t* row_codes, int64_t m, int64_t k, uint4* codes,
                      cudaStream_t s);
// Random codes, one scale and zero everywhere (benchmarks).
void LaunchInt4Random(const Int4Device& w, float scale, int zero, uint64_t seed, cudaStream_t s);
// out = x W^T (+ bias) for up to kMaxInt4Jobs weights of the same k, x: n <= 16 rows.
void LaunchInt4Gemv(const float* x, int64_t n, int64_t k, const Int4Job* jobs, int count,
                    cudaStream_t s);
// The same for n <= kInt4TiledMaxRows, x given in f16 (LaunchToHalf); `partial` holds
// Int4PartialFloats(sms) floats.
void LaunchInt4Tiled(const void* x_half, int64_t n, const Int4Job& job, float* partial,
                     int64_t partial_floats, int sms, cudaStream_t s);
// W as f16 [m, k] into `out` (for cuBLAS).
void LaunchInt4Dequant(const Int4Device& w, void* out, cudaStream_t s);
// out[r, j] = x[r, perm[j]] for x [n, k].
void LaunchGatherCols(const float* x, int64_t n, int64_t k, const int32_t* perm, float* out,
                      cudaStream_t s);

// ---- attention.cu
// KV cache of one layer: [block][position in the block][kv_heads * head_dim], bf16.
struct KvLayer {
  void* k;
  void* v;
};
struct AttnShape {
  int64_t heads, kv_heads, head_dim;
};
// Null when LaunchAttention runs `a`; else what it supports (a static string).
const char* AttentionUnsupported(const AttnShape& a);
// Scratch for split attention: partial results of up to kSplitRows rows.
inline constexpr int kSplitRows = 64;
int64_t SplitAttentionScratchFloats(const AttnShape& a);
// `decode_only`: every sequence has one token in this step; the split kernel then stores the
// new keys and values itself (no other query of the step reads them). `batch_invariant`: every
// step through the flash kernel over query tiles, whose result for a row does not depend on the
// step's other rows (steps of <= kSplitRows rows otherwise cut each row's keys into chunks, by
// the row's position or its tile's, so a row's arithmetic would depend on the step's size).
void LaunchAttention(const float* q, const float* k, const float* v, const KvLayer& cache,
                     const AttnShape& a, const DeviceLayout& layout, bool decode_only,
                     bool batch_invariant, float* scratch, float* out, HalfCopy copy,
                     cudaStream_t s);

// ---- sample.cu
// A row's SampleInput (engine/backend.h) as the kernel reads it.
struct DeviceSampleParams {
  float temperature;
  int32_t top_k;
  float top_p;
  float log_min_p;  // log(min_p) by the host's std::log; used when min_p > 0
  float min_p;
  float repetition_penalty;  // 1: off
  uint64_t seed;
  int64_t position;
  int64_t seen_offset;  // the row's tokens for the penalty: seen[seen_offset, + seen_count)
  int32_t seen_count;   // 0 when the penalty is off
  int32_t num_logprobs;
};
struct DeviceSampleResult {
  int32_t id;
  float logprob;
  int32_t top_ids[20];
  float top_logprobs[20];
};
// `logits` are penalized in place while a row is sampled and restored (from `seen_raw`, one
// float per entry of `seen`) before the kernel ends.
void LaunchSample(float* logits, int64_t rows, int64_t vocab, const DeviceSampleParams* params,
                  const int32_t* seen, float* seen_raw, DeviceSampleResult* out, cudaStream_t s);

}  // namespace lp::cuda
