// The CUDA backend's class, shared by backend.cc (ops, steps, graphs, sampling) and memory.cc
// (weights, KV cache, the engine/cuda.h functions). Host C++20 only: the kernels (.cu, C++17)
// are reached through kernels.h. Nothing outside engine/cuda/ includes it.
#pragma once

#include <algorithm>
#include <map>

#include "engine/cuda.h"
#include "engine/cuda/check.h"
#include "engine/cuda/kernels.h"
#include "engine/cuda/lt_gemm.h"
#include "engine/cuda/timeline.h"
#include "engine/sample_steps.h"

namespace lp::cuda {

// K and V of every layer of a slice: [layer][block][position in block][kv_heads * head_dim]
// bf16.
class CudaKvCache : public KvCache {
 public:
  explicit CudaKvCache(const KvCacheShape& s, cudaStream_t stream);
  ~CudaKvCache() override;
  uint64_t bytes() const override { return 2 * LayerBytes() * uint64_t(shape_.num_layers); }
  KvLayer Layer(int64_t layer) const {
    const uint64_t off = LayerBytes() * uint64_t(layer);
    return {static_cast<char*>(k_) + off, static_cast<char*>(v_) + off};
  }

 private:
  uint64_t LayerBytes() const {
    return uint64_t(shape_.num_blocks * shape_.block_tokens * shape_.num_kv_heads *
                    shape_.head_dim) *
           2;
  }
  void* k_ = nullptr;
  void* v_ = nullptr;
};

// What Linear::packed points to for a weight kept in 4 bits: its device layout (int4.cu), in
// one allocation.
struct Int4Packed {
  Int4Device dev;
  void* memory = nullptr;
  uint64_t bytes = 0;
  ~Int4Packed() { cudaFree(memory); }
};

class CudaBackend : public Backend {
 public:
  CudaBackend(int device, const CudaBackendOptions& options);
  ~CudaBackend() override;
  std::string name() const override { return "cuda"; }

  Tensor Alloc(int64_t rows, int64_t cols) override;
  Tensor LoadWeight(const TensorView& src, int64_t rows, int64_t cols) override;
  // Packed on the device (int4.cu) when the shape fits its kernels, else dense.
  absl::StatusOr<Linear> LoadInt4(const Int4Matrix& w) override;
  std::unique_ptr<KvCache> CreateKvCache(const KvCacheShape& shape) override;
  absl::Status CheckAttention(const AttentionParams& p) const override;
  void Upload(std::span<const float> host, Tensor& dst) override;
  void Download(const Tensor& src, std::span<float> host) override;

  void BeginStep(const StepLayout& layout) override;
  void Embed(const Tensor& table, std::span<const int32_t> ids, Tensor& out) override;
  void RmsNorm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override;
  void AddRmsNorm(Tensor& residual, const Tensor& x, const Tensor& w, float eps,
                  Tensor& out) override;
  void MatMul(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) override;
  void MatMulInt4(const Tensor& x, const Linear& w, const Tensor* bias, Tensor& out) override;
  void QkNormRope(Tensor& q, Tensor& k, const Tensor* q_norm, const Tensor* k_norm,
                  const AttentionParams& p) override;
  void Attention(const Tensor& q, const Tensor& k, const Tensor& v, KvCache& cache, int64_t layer,
                 const AttentionParams& p, Tensor& out) override;
  void SiluMul(const Tensor& gate, const Tensor& up, Tensor& out) override;
  bool ActivationsInWeightType(int64_t rows, std::span<const int64_t> widths) const override;
  void Add(Tensor& x, const Tensor& y) override;
  void GatherRows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) override;
  void Sample(const Tensor& logits, std::span<const SampleInput> rows,
              std::span<SampleResult> out) override;
  void Synchronize() override;

  bool Replay(int64_t key) override;
  void BeginRecord(int64_t key) override;
  void EndRecord() override;

  // A device tensor of `dtype`, zeroed.
  Tensor DeviceTensor(int64_t rows, int64_t cols, DType dtype);
  // Sizes what products with a weight of this shape need (the batch-invariant GEMM's partial
  // sums); called for every weight loaded or filled.
  void NoteWeightShape(int64_t rows, int64_t cols);
  // An uninitialized packed 4-bit weight (codes, scales and zeros, and `perm` when asked), with
  // the scratch its products need.
  std::shared_ptr<Int4Packed> NewInt4(int64_t rows, int64_t cols, int64_t group_size, bool perm);
  cudaStream_t stream() const { return stream_; }
  // For work that callers queue on stream() in order with this backend's (see CudaStream).
  cudaStream_t Submit() {
    CUDA_CHECK(cudaSetDevice(device_));
    Flush();
    return stream_;
  }
  void Note(Mark mark) {
    if (timeline_) timeline_->Add(mark);
  }

 private:
  static constexpr size_t kCublasWorkspace = 32u << 20;
  static constexpr int64_t kMaxSampleRows = 1024;
  static constexpr size_t kStagingBytes = 32u << 20;
  size_t LayoutBytes() const;
  // Products of the same x issued back to back (q, k, v; gate, up) wait here and go out as one
  // GEMV launch before any other work.
  void Flush();
  void FlushGemv();
  void FlushInt4();
  // x converted to the weight type (f16 when `half`, else bf16) in scratch_, once for the
  // products of one input (q, k, v; gate, up): the conversion is kept for the next product
  // unless `keep` is false or `out` (this product's output) is x.
  const void* ConvertedX(const float* x, int64_t elems, bool half, const void* out, bool keep);
  bool IsConverted(const float* x, int64_t elems, bool half) const {
    return converted_x_ == x && converted_elems_ == elems && converted_half_ == half;
  }
  // out = x w^T (+ bias) through cuBLASLt, x already in the weight type (ConvertedX), on stream_
  // or on side stream `side` (>= 0; see side_); out float32, or in the weight type (no bias)
  // where `out_f32` is false.
  void LtMatMul(const void* x_half, int64_t n, int64_t k, const void* w, bool half, int64_t m,
                const float* bias, void* out, bool out_f32, int side = -1);
  // Where the next cuBLASLt product of x goes: a side stream's index, or -1 for stream_. Joins
  // the side streams first when x is not the input of the products they run (side_x_, set by
  // MatMul's first product of an x of up to kSideMaxRows rows).
  int SideFor(const float* x, int64_t elems, bool half);
  // stream_ waits for the side streams' products.
  void JoinSides();
  // out = x w^T (+ bias) through the batch-invariant GEMM (x converted as ConvertedX).
  void InvariantMatMul(const float* x, int64_t n, int64_t k, const void* w, bool half, int64_t m,
                       const float* bias, float* out, bool keep_x);
  // Sizes the 4-bit products' scratch from the largest Alloc and the largest packed weight.
  void EnsureInt4Scratch();
  // For an op (a norm, SwiGLU, attention) writing `out` that the next product will read
  // converted (more rows than the GEMV takes): the copy in the weight type that the op writes too,
  // into scratch_, which ConvertedX then finds made. Its type is that of the last conversion (a
  // model's products read one type; a wrong guess only costs the conversion). None before the first
  // conversion.
  HalfCopy CopyForNextProduct(const Tensor& out);
  // What an op writes for `out`: float32, and the copy of CopyForNextProduct; for an out in the
  // weight type (Backend::ActivationsInWeightType), only that type (no float32).
  struct OpOutputs {
    float* f32;
    HalfCopy copy;
  };
  OpOutputs OutputsFor(const Tensor& out);
  // What scratch_ holds: ConvertedX's last conversion, or the copy an op writes
  // (CopyForNextProduct); any other op forgets it (Flush).
  const void* converted_x_ = nullptr;
  int64_t converted_elems_ = 0;
  bool converted_half_ = false;
  void CopyToDevice(const void* host, size_t bytes, void* dst);

  int device_;
  CudaBackendOptions options_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<LtGemm> lt_;
  void* cublas_workspace_ = nullptr;  // kCublasWorkspace for stream_, then one per side stream
  // cuBLASLt products of one x after its first (k and v beside q, up beside gate) run on side
  // streams, concurrently with it: alone, a product of few rows and a small weight (a decode
  // step's k or v, 8 MB) leaves most of the GPU idle. They read x's conversion in scratch_, so
  // every other op and any product of another x joins them first (Flush, SideFor). Products
  // that run together must not share an output (Slice's q, k, v, gate and up never do). Each
  // side stream costs a cuBLASLt workspace (kCublasWorkspace) more.
  // Only for x of up to kSideMaxRows rows (decode steps, short chunks): at 512 rows and more the
  // products fill the GPU alone, and beside one another they were slower (H100, 512-token prefill
  // 16.7 -> 17.5 ms).
  static constexpr int kSideStreams = 2;
  static constexpr int64_t kSideMaxRows = 64;
  cudaStream_t side_[kSideStreams] = {};
  cudaEvent_t side_done_[kSideStreams] = {};
  cudaEvent_t forked_ = nullptr;   // stream_ before the first product of side_x_
  const float* side_x_ = nullptr;  // the input of the products since the last join
  int sides_used_ = 0;
  void* scratch_ = nullptr;  // x in the weight type for the products, 2-byte elements
  int64_t scratch_elems_ = 0;
  float* attn_scratch_ = nullptr;  // split attention partials
  int64_t attn_scratch_floats_ = 0;
  float* gemm_partial_ = nullptr;  // the batch-invariant GEMM's partial sums
  int64_t gemm_partial_floats_ = 0;
  // The step layout: pinned host copy and device copy (pos, seq, ids, tiles), and the step's
  // KV block tables (the stride, then [sequences][stride]; sized by CreateKvCache for the most
  // sequences at the context limit).
  void* layout_host_ = nullptr;
  void* layout_dev_ = nullptr;
  int64_t layout_rows_ = 0;
  int32_t* tables_host_ = nullptr;
  int32_t* tables_dev_ = nullptr;
  KvCacheShape kv_shape_;
  cudaEvent_t staged_ = nullptr;  // the last copy out of layout_host_
  DeviceLayout dev_layout_;
  bool decode_only_ = false;  // every sequence of the step has one token
  std::vector<GemvOut> pending_;
  const float* pending_x_ = nullptr;
  int64_t pending_n_ = 0, pending_k_ = 0;
  bool pending_half_ = false;
  // The same for 4-bit products (int4.cu's GEMV).
  std::vector<Int4Job> pending_int4_;
  const float* pending_int4_x_ = nullptr;
  int64_t pending_int4_n_ = 0, pending_int4_k_ = 0;
  // 4-bit products: the largest Alloc's rows and packed weight's elements seen so far, whether
  // a weight has an act-order perm; the tiled kernel's partial sums, the f16 weight for cuBLAS
  // (only when a step may exceed kInt4TiledMaxRows), x gathered through a perm.
  int sms_ = 0;
  int64_t max_alloc_rows_ = 0;
  int64_t int4_max_elems_ = 0;
  bool int4_perm_ = false;
  float* int4_partial_ = nullptr;
  int64_t int4_partial_floats_ = 0;
  void* int4_dense_ = nullptr;
  int64_t int4_dense_elems_ = 0;
  float* int4_xperm_ = nullptr;
  int64_t int4_xperm_floats_ = 0;
  // Weight loading: pinned staging buffers used in turn, each with its copy's event.
  std::vector<void*> staging_;
  std::vector<cudaEvent_t> staging_done_;
  int next_staging_ = 0;
  uint64_t weight_bytes_ = 0;
  // Sampling parameters and results.
  void* sample_host_ = nullptr;
  void* sample_params_host_ = nullptr;
  void* sample_dev_ = nullptr;
  void* sample_params_dev_ = nullptr;
  // The step's seen tokens for the repetition penalty (ids, pinned and on the device) and their
  // raw logits while penalized; grown when a step needs more (rare: it holds distinct tokens).
  int32_t* seen_host_ = nullptr;
  int32_t* seen_dev_ = nullptr;
  float* seen_raw_dev_ = nullptr;
  int64_t seen_capacity_ = 0;
  void ReserveSeen(int64_t n);
  // A recorded step's key: the Slice's, and whether its attention takes the long-decode path.
  int64_t GraphKey(int64_t key) const {
    return 2 * key + (dev_layout_.max_pos >= kLongDecodePosition ? 1 : 0);
  }
  // Recorded decode steps by GraphKey.
  std::map<int64_t, cudaGraphExec_t> graphs_;
  bool recording_ = false;
  int64_t record_key_ = 0;
  std::unique_ptr<Timeline> timeline_;  // LP_GPU_TIMELINE only
};

}  // namespace lp::cuda
