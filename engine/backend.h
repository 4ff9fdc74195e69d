// The small op interface the decoder is written against. A backend owns memory on its device
// (host RAM for the CPU backend, one GPU for the CUDA one) and implements each op there; the
// model code in slice.cc never touches data directly, so Qwen3 / Qwen2 are written once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "common/int4.h"
#include "common/safetensors.h"
#include "common/sampling_params.h"
#include "common/seq_chunk.h"

namespace lp {

// A dense row-major matrix in a backend's memory. Copies are cheap views of the same storage.
struct Tensor {
  std::shared_ptr<void> storage;  // keeps the memory alive
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;

  int64_t numel() const { return rows * cols; }
  // The first `n` rows, sharing storage (workspaces are sized for the largest step).
  Tensor Rows(int64_t n) const {
    Tensor t = *this;
    t.rows = n;
    return t;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

// The row count a step's matrix products are tuned for: n rounded up to a multiple of 16 up to
// 256 rows, above that to one of eight sizes per doubling (at most 1/8 more rows). The CUDA
// backend chooses a product's algorithm once per bucket (engine/cuda/lt_gemm.h); Slice::WarmUp
// runs a step of each.
int64_t RowBucket(int64_t n);

// The batch of one step: its sequences' chunks, whose tokens lie back to back in the
// activation rows, in this order.
struct StepLayout {
  std::vector<SeqChunk> seqs;
  int64_t total_tokens() const {
    int64_t n = 0;
    for (const auto& s : seqs) n += s.n_tokens;
    return n;
  }
};

// A linear layer's weight W[out, in] on a backend: a dense tensor [out, in], or 4-bit codes
// kept packed by a backend that multiplies them directly (MatMulInt4; its own layout behind
// `packed`).
struct Linear {
  Tensor dense;
  std::shared_ptr<const void> packed;  // backend-defined; null when dense
  int64_t rows = 0;                    // out
  int64_t cols = 0;                    // in
};

// The KV cache is paged: a pool of `num_blocks` blocks of `block_tokens` positions each (for
// every layer of the slice), and each sequence of a step names its blocks in SeqChunk::blocks,
// block i holding its positions [i * block_tokens, (i + 1) * block_tokens). Who allocates the
// blocks (the coordinator, common/kv_pages.h) keeps the cache in pages; the backends only follow
// the tables.
struct KvCacheShape {
  int64_t num_layers = 0;          // layers of this slice
  int64_t num_blocks = 0;          // blocks in the pool
  int64_t block_tokens = 16;       // positions per block (a power of two)
  int64_t max_blocks_per_seq = 0;  // blocks of a sequence at the context limit
  int64_t max_seqs = 0;            // sequences in one step
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
};

// Block `i` of sequence `s`'s table: SeqChunk::blocks[i], or for a chunk without a table (a
// caller that does not page: tests, benchmarks) the slot's own run of blocks,
// slot * max_blocks_per_seq + i.
inline int32_t KvBlockOf(const SeqChunk& s, int64_t i, int64_t max_blocks_per_seq) {
  return s.blocks.empty() ? int32_t(s.slot * max_blocks_per_seq + i) : s.blocks[size_t(i)];
}

// A backend's KV cache for the layers of one slice; opaque to the model code.
class KvCache {
 public:
  virtual ~KvCache() = default;
  const KvCacheShape& shape() const { return shape_; }
  virtual uint64_t bytes() const = 0;

 protected:
  explicit KvCache(const KvCacheShape& shape) : shape_(shape) {}
  KvCacheShape shape_;
};

// What a backend needs to pick one sequence's next token from its logits. The steps, the same on
// every backend (engine/sampling.cc, engine/cuda/sample.cu): the repetition penalty on the logits
// of the tokens in `seen`; then argmax when temperature is 0 (ties: lower id), else the logits
// divided by temperature cut to the top_k largest (ties at the k-th stay in), then to the smallest
// set of the largest whose probability reaches top_p, then to those at least min_p times as likely
// as the most likely, and one token drawn by a prefix sum in id order with
// SampleUniform(seed, position) (common/random.h), which nothing else changes.
struct SampleInput {
  SamplingParams params;  // params.logprobs: also the top-N log-probabilities (N <= kMaxLogprobs)
  int64_t position = 0;   // of the token being chosen
  // The tokens of the sequence so far, for the repetition penalty (a repeat is harmless: each
  // token is penalized once); read during Sample only.
  std::span<const int32_t> seen;
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0.0f;
};

// The chosen token, its log-probability under the model's distribution (log_softmax of the
// raw logits), and the top num_logprobs tokens by logit (ties: lower id first).
struct SampleResult {
  int32_t id = 0;
  float logprob = 0.0f;
  std::vector<TokenLogprob> top;
};

struct AttentionParams {
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  double rope_theta = 10000.0;
  float rms_norm_eps = 1e-6f;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // ---- memory
  // An activation buffer in the backend's compute type.
  virtual Tensor Alloc(int64_t rows, int64_t cols) = 0;
  // A weight from checkpoint bytes (BF16 / F16 / F32), converted to the backend's weight type.
  // 1-D weights (norms, biases) are given as rows = 1.
  virtual Tensor LoadWeight(const TensorView& src, int64_t rows, int64_t cols) = 0;
  // A 4-bit weight (common/int4.h). By default dequantized to float32 on the host and loaded
  // as a dense weight; a backend that keeps it packed overrides this and MatMulInt4.
  virtual absl::StatusOr<Linear> LoadInt4(const Int4Matrix& w);
  virtual std::unique_ptr<KvCache> CreateKvCache(const KvCacheShape& shape) = 0;
  // An error naming the value and what is supported when this backend's attention cannot run
  // `p`'s shape (a slice asks when it loads, so that no step fails on it).
  virtual absl::Status CheckAttention(const AttentionParams& p) const;
  // Host float32 <-> activation.
  virtual void Upload(std::span<const float> host, Tensor& dst) = 0;
  virtual void Download(const Tensor& src, std::span<float> host) = 0;

  // ---- ops (outputs never alias inputs unless the comment says so)
  // Activations are float32 tensors, but where ActivationsInWeightType allows it a slice gives
  // these ops the ones that only products and the residual add read in the weights' type (dtype
  // kBF16 or kF16; a slice does so for bf16 weights): the normalized input (RmsNorm's and
  // AddRmsNorm's out, the products' x), the attention's out, the o and down projections' out
  // (AddRmsNorm's x, Add's y) and the MLP's gate, up and SiluMul tensors. Never the residual
  // stream, q, k, v or logits, never with a bias. They then move half the bytes and are rounded
  // to that type once more, as Hugging Face keeps every activation.
  //
  // Sets the layout that the following ops of this step (RoPE, Attention) work on.
  virtual void BeginStep(const StepLayout& layout) = 0;
  // out[i] = table[ids[i]]
  virtual void Embed(const Tensor& table, std::span<const int32_t> ids, Tensor& out) = 0;
  // out = rmsnorm(x) * w
  virtual void RmsNorm(const Tensor& x, const Tensor& w, float eps, Tensor& out) = 0;
  // residual += x, then out = rmsnorm(residual) * w.
  virtual void AddRmsNorm(Tensor& residual, const Tensor& x, const Tensor& w, float eps,
                          Tensor& out) = 0;
  // out[n, m] = x[n, k] * w[m, k]^T (+ bias[m] when given; out then float32)
  virtual void MatMul(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) = 0;
  // The same for a packed weight from LoadInt4.
  virtual void MatMulInt4(const Tensor& x, const Linear& w, const Tensor* bias, Tensor& out);
  // In place: per-head RMSNorm of q and k when the norm weights are given (Qwen3), then RoPE
  // (rotate-half form) at each token's position from the step layout.
  virtual void QkNormRope(Tensor& q, Tensor& k, const Tensor* q_norm, const Tensor* k_norm,
                          const AttentionParams& p) = 0;
  // Stores k and v in `cache` at each token's position in its sequence's blocks, then computes
  // causal grouped-query attention of q over the cache for each sequence of the layout.
  virtual void Attention(const Tensor& q, const Tensor& k, const Tensor& v, KvCache& cache,
                         int64_t layer, const AttentionParams& p, Tensor& out) = 0;
  // out = silu(gate) * up
  virtual void SiluMul(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  // Whether a step of `rows` rows may hold activations of these widths (columns) in the
  // weights' type (bf16 or f16) instead of float32 (see "Activations" above).
  virtual bool ActivationsInWeightType(int64_t /*rows*/,
                                       std::span<const int64_t> /*widths*/) const {
    return false;
  }
  // x += y (in place)
  virtual void Add(Tensor& x, const Tensor& y) = 0;
  // out[i] = x[rows[i]]
  virtual void GatherRows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) = 0;
  // One token per row of `logits` ([sequences, vocab]) by rows[row] (see SampleInput). The
  // logits are unchanged afterwards.
  virtual void Sample(const Tensor& logits, std::span<const SampleInput> rows,
                      std::span<SampleResult> out) = 0;
  // Waits for queued work (a no-op on the CPU).
  virtual void Synchronize() {}

  // ---- step recording (optional; the CUDA backend records CUDA graphs)
  // The ops issued between BeginRecord(key) and EndRecord() may be recorded and replayed for a
  // later step of the same `key` by Replay(key), which returns false when nothing is recorded
  // (the caller then issues the ops). The caller guarantees that the recorded ops depend on the
  // step only through the layout of BeginStep (positions, block tables; called before each
  // replay) and
  // on host arguments (GatherRows rows, tensor sizes) that are equal for equal keys.
  virtual bool Replay(int64_t /*key*/) { return false; }
  virtual void BeginRecord(int64_t /*key*/) {}
  virtual void EndRecord() {}
};

}  // namespace lp
