// The CUDA backend (see engine/cuda.h): memory, the step layout on the device, recorded decode
// steps (CUDA graphs), and the ops, each a launcher of kernels.h. Weight loading, random
// weights and the KV cache live in memory.cu.
//
// Why a device layout: RoPE and attention read each token's position and its sequence's KV
// block table from device memory that BeginStep fills (copies from pinned memory), so a decode
// step's kernels are the same for every position and table and a recorded CUDA graph replays
// them.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "common/kv_pages.h"
#include "engine/cuda/backend_impl.h"

namespace lp::cuda {

CudaBackend::CudaBackend(int device, const CudaBackendOptions& options)
    : device_(device), options_(options) {
  CUDA_CHECK(cudaSetDevice(device));
  SetChainedLaunches(options.chained_launches);
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, device));
  // A fixed workspace: cuBLASLt then allocates nothing while a graph is being recorded.
  CUDA_CHECK(cudaMalloc(&cublas_workspace_, kCublasWorkspace * (1 + kSideStreams)));
  lt_ = std::make_unique<LtGemm>(kCublasWorkspace);
  for (int i = 0; i < kSideStreams; ++i) {
    CUDA_CHECK(cudaStreamCreateWithFlags(&side_[i], cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&side_done_[i], cudaEventDisableTiming));
  }
  CUDA_CHECK(cudaEventCreateWithFlags(&forked_, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventCreateWithFlags(&staged_, cudaEventDisableTiming));
  CUDA_CHECK(cudaHostAlloc(&sample_host_, kMaxSampleRows * sizeof(DeviceSampleResult), 0));
  CUDA_CHECK(cudaHostAlloc(&sample_params_host_, kMaxSampleRows * sizeof(DeviceSampleParams), 0));
  CUDA_CHECK(cudaMalloc(&sample_dev_, kMaxSampleRows * sizeof(DeviceSampleResult)));
  CUDA_CHECK(cudaMalloc(&sample_params_dev_, kMaxSampleRows * sizeof(DeviceSampleParams)));
  ReserveSeen(int64_t(1) << 16);
  timeline_ = Timeline::FromEnvironment(stream_);
}

CudaBackend::~CudaBackend() {
  timeline_.reset();
  JoinSides();  // (a last product beside the first still uses its workspace)
  cudaStreamSynchronize(stream_);
  for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
  lt_.reset();
  cudaFree(cublas_workspace_);
  cudaFree(scratch_);
  cudaFree(layout_dev_);
  cudaFree(tables_dev_);
  cudaFree(attn_scratch_);
  cudaFree(gemm_partial_);
  cudaFree(int4_partial_);
  cudaFree(int4_dense_);
  cudaFree(int4_xperm_);
  cudaFree(sample_dev_);
  cudaFree(sample_params_dev_);
  cudaFree(seen_dev_);
  cudaFree(seen_raw_dev_);
  cudaFreeHost(seen_host_);
  cudaFreeHost(layout_host_);
  cudaFreeHost(tables_host_);
  cudaFreeHost(sample_host_);
  cudaFreeHost(sample_params_host_);
  for (void* p : staging_) cudaFreeHost(p);
  for (auto e : staging_done_) cudaEventDestroy(e);
  cudaEventDestroy(staged_);
  cudaEventDestroy(forked_);
  for (int i = 0; i < kSideStreams; ++i) {
    cudaEventDestroy(side_done_[i]);
    cudaStreamDestroy(side_[i]);
  }
  cudaStreamDestroy(stream_);
}

Tensor CudaBackend::DeviceTensor(int64_t rows, int64_t cols, DType dtype) {
  Flush();  // (a conversion of a freed tensor must not pass for one of this, at its address)
  void* p = nullptr;
  const size_t bytes = std::max<size_t>(16, size_t(rows * cols) * DTypeSize(dtype));
  CUDA_CHECK(cudaMalloc(&p, bytes));
  CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
  Tensor t;
  t.storage = std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
  t.data = p;
  t.dtype = dtype;
  t.rows = rows;
  t.cols = cols;
  return t;
}

Tensor CudaBackend::Alloc(int64_t rows, int64_t cols) {
  LP_REQUIRE(rows > 0 && cols > 0 && rows * cols < (int64_t(1) << 36));
  Flush();  // before scratch_ may move
  // Workspaces are allocated at load: size what the ops need from the largest of them.
  if (rows * cols > scratch_elems_) {
    cudaFree(scratch_);
    CUDA_CHECK(cudaMalloc(&scratch_, size_t(rows * cols) * 2));
    scratch_elems_ = rows * cols;
  }
  if (rows > layout_rows_) {
    cudaFree(layout_dev_);
    cudaFreeHost(layout_host_);
    layout_rows_ = rows;
    CUDA_CHECK(cudaMalloc(&layout_dev_, LayoutBytes()));
    CUDA_CHECK(cudaHostAlloc(&layout_host_, LayoutBytes(), 0));
  }
  max_alloc_rows_ = std::max(max_alloc_rows_, rows);
  EnsureInt4Scratch();
  return DeviceTensor(rows, cols, DType::kF32);
}

void CudaBackend::EnsureInt4Scratch() {
  if (int4_max_elems_ == 0) return;  // no packed weights
  auto grow = [](auto** p, int64_t& have, int64_t want, size_t elem) {
    if (want <= have) return;
    cudaFree(*p);
    CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(p), size_t(want) * elem));
    have = want;
  };
  if (max_alloc_rows_ > kInt4GemvMaxRows) {
    grow(&int4_partial_, int4_partial_floats_, Int4PartialFloats(sms_), sizeof(float));
  }
  if (max_alloc_rows_ > kInt4TiledMaxRows || options_.batch_invariant) {
    grow(&int4_dense_, int4_dense_elems_, int4_max_elems_, 2);
  }
  if (int4_perm_) grow(&int4_xperm_, int4_xperm_floats_, scratch_elems_, sizeof(float));
}

size_t CudaBackend::LayoutBytes() const {
  // pos, seq, ids: [rows] int32 each; tiles: up to 2 * rows.
  return size_t(layout_rows_) * (3 * sizeof(int32_t) + 2 * sizeof(AttnTile));
}

void CudaBackend::Upload(std::span<const float> host, Tensor& dst) {
  Flush();
  LP_REQUIRE(int64_t(host.size()) == dst.numel() && dst.dtype == DType::kF32);
  CUDA_CHECK(
      cudaMemcpyAsync(dst.data, host.data(), host.size_bytes(), cudaMemcpyHostToDevice, stream_));
}

void CudaBackend::Download(const Tensor& src, std::span<float> host) {
  Flush();
  LP_REQUIRE(int64_t(host.size()) == src.numel() && src.dtype == DType::kF32);
  CUDA_CHECK(
      cudaMemcpyAsync(host.data(), src.data, host.size_bytes(), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::BeginStep(const StepLayout& layout) {
  // The current device is per thread, and a worker's steps run on gRPC's threads.
  CUDA_CHECK(cudaSetDevice(device_));
  Flush();
  const int64_t tokens = layout.total_tokens();
  LP_REQUIRE(tokens > 0 && tokens <= layout_rows_);
  // The previous step's copy from the pinned buffer must be done before it is rewritten.
  CUDA_CHECK(cudaEventSynchronize(staged_));
  // Without a KV cache (tests of single operations) a step has positions but no block tables.
  const bool paged = tables_dev_ != nullptr;
  LP_REQUIRE(!paged || int64_t(layout.seqs.size()) <= kv_shape_.max_seqs);
  auto* pos = static_cast<int32_t*>(layout_host_);
  int32_t* seq = pos + layout_rows_;
  auto* tiles = reinterpret_cast<AttnTile*>(pos + 3 * layout_rows_);
  // The tables, [sequence][stride] after the stride itself: as long as the longest of them.
  int64_t stride = 1;
  if (paged) {
    for (const auto& s : layout.seqs) {
      stride =
          std::max(stride, KvBlocksFor(int64_t(s.start_pos) + s.n_tokens, kv_shape_.block_tokens));
    }
    LP_REQUIRE(stride <= kv_shape_.max_blocks_per_seq);
    tables_host_[0] = int32_t(stride);
  }
  int64_t row = 0, n_tiles = 0, table_rows = 0;
  int32_t max_pos = 0;
  for (const auto& s : layout.seqs) {
    max_pos = std::max(max_pos, s.start_pos + s.n_tokens - 1);
    for (int32_t i = 0; i < s.n_tokens; i += kAttnTileRows) {
      tiles[n_tiles++] = {int32_t(row + i), std::min(kAttnTileRows, s.n_tokens - i)};
    }
    for (int32_t i = 0; i < s.n_tokens; ++i, ++row) {
      pos[row] = s.start_pos + i;
      seq[row] = int32_t(table_rows);
    }
    if (paged) {  // the blocks this step reads: those up to its last position
      int32_t* table = tables_host_ + 1 + table_rows * stride;
      const int64_t used = KvBlocksFor(int64_t(s.start_pos) + s.n_tokens, kv_shape_.block_tokens);
      for (int64_t b = 0; b < used; ++b) table[b] = KvBlockOf(s, b, kv_shape_.max_blocks_per_seq);
    }
    ++table_rows;
  }
  LP_REQUIRE(n_tiles <= 2 * layout_rows_);
  auto* dpos = static_cast<int32_t*>(layout_dev_);
  // pos and seq (the ids in between are copied by Embed), the tiles, then the tables.
  CUDA_CHECK(cudaMemcpyAsync(dpos, pos, 2 * layout_rows_ * sizeof(int32_t), cudaMemcpyHostToDevice,
                             stream_));
  CUDA_CHECK(cudaMemcpyAsync(dpos + 3 * layout_rows_, tiles, n_tiles * sizeof(AttnTile),
                             cudaMemcpyHostToDevice, stream_));
  if (paged) {
    CUDA_CHECK(cudaMemcpyAsync(tables_dev_, tables_host_,
                               size_t(1 + table_rows * stride) * sizeof(int32_t),
                               cudaMemcpyHostToDevice, stream_));
  }
  CUDA_CHECK(cudaEventRecord(staged_, stream_));
  Note(Mark::kStepStart);
  dev_layout_.pos = dpos;
  dev_layout_.seq = dpos + layout_rows_;
  dev_layout_.pages = {paged ? tables_dev_ + 1 : nullptr, tables_dev_,
                       int32_t(__builtin_ctzll(uint64_t(kv_shape_.block_tokens)))};
  dev_layout_.tiles = reinterpret_cast<const AttnTile*>(dpos + 3 * layout_rows_);
  dev_layout_.num_tiles = int32_t(n_tiles);
  dev_layout_.tokens = int32_t(tokens);
  dev_layout_.max_pos = max_pos;
  decode_only_ = tokens == int64_t(layout.seqs.size());
}

void CudaBackend::Embed(const Tensor& table, std::span<const int32_t> ids, Tensor& out) {
  Flush();
  const int64_t n = int64_t(ids.size());
  LP_REQUIRE(n > 0 && n <= layout_rows_ && out.cols == table.cols && !recording_);
  // Written after BeginStep's copy was queued; that copy does not read the ids' part.
  int32_t* host = static_cast<int32_t*>(layout_host_) + 2 * layout_rows_;
  std::copy(ids.begin(), ids.end(), host);
  int32_t* dev = static_cast<int32_t*>(layout_dev_) + 2 * layout_rows_;
  CUDA_CHECK(cudaMemcpyAsync(dev, host, n * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaEventRecord(staged_, stream_));
  LaunchEmbed(table.data, table.dtype == DType::kF16, dev, n, table.cols, out.as<float>(), stream_);
}

void CudaBackend::RmsNorm(const Tensor& x, const Tensor& w, float eps, Tensor& out) {
  Flush();
  const auto [f32, copy] = OutputsFor(out);
  LaunchRmsNorm(nullptr, {x.data, x.dtype}, w.as<float>(), eps, x.rows, x.cols, f32, copy, stream_);
}

void CudaBackend::AddRmsNorm(Tensor& residual, const Tensor& x, const Tensor& w, float eps,
                             Tensor& out) {
  Flush();
  const auto [f32, copy] = OutputsFor(out);
  LaunchRmsNorm(residual.as<float>(), {x.data, x.dtype}, w.as<float>(), eps, x.rows, x.cols, f32,
                copy, stream_);
}

CudaBackend::OpOutputs CudaBackend::OutputsFor(const Tensor& out) {
  if (out.dtype == DType::kF32) return {out.as<float>(), CopyForNextProduct(out)};
  LP_REQUIRE(out.dtype == DType::kBF16 || out.dtype == DType::kF16);
  return {nullptr, {out.data, out.dtype == DType::kF16}};
}

HalfCopy CudaBackend::CopyForNextProduct(const Tensor& out) {
  // (4-bit products of up to kInt4GemvMaxRows rows read float32 x too.)
  const bool int4_gemv = int4_max_elems_ > 0 && out.rows <= kInt4GemvMaxRows;
  const bool converts =
      options_.batch_invariant || (!int4_gemv && (!options_.gemv || out.rows > kGemvMaxRows));
  if (!converts || converted_elems_ == 0 || out.numel() > scratch_elems_) return {};
  converted_x_ = out.data;  // made by the op about to launch
  converted_elems_ = out.numel();
  return {scratch_, converted_half_};
}

void CudaBackend::Flush() {
  FlushGemv();
  FlushInt4();
  JoinSides();
  converted_x_ = nullptr;
}

void CudaBackend::JoinSides() {
  for (int i = 0; i < sides_used_; ++i) {
    CUDA_CHECK(cudaEventRecord(side_done_[i], side_[i]));
    CUDA_CHECK(cudaStreamWaitEvent(stream_, side_done_[i], 0));
  }
  sides_used_ = 0;
  side_x_ = nullptr;
}

int CudaBackend::SideFor(const float* x, int64_t elems, bool half) {
  if (x == side_x_ && IsConverted(x, elems, half) && sides_used_ < kSideStreams) {
    CUDA_CHECK(cudaStreamWaitEvent(side_[sides_used_], forked_, 0));
    return sides_used_++;
  }
  JoinSides();
  return -1;
}

void CudaBackend::FlushInt4() {
  if (pending_int4_.empty()) return;
  LaunchInt4Gemv(pending_int4_x_, pending_int4_n_, pending_int4_k_, pending_int4_.data(),
                 int(pending_int4_.size()), stream_);
  pending_int4_.clear();
}

void CudaBackend::FlushGemv() {
  if (pending_.empty()) return;
  LaunchGemv(pending_x_, pending_n_, pending_k_, pending_half_, pending_.data(),
             int(pending_.size()), stream_);
  pending_.clear();
}

bool CudaBackend::ActivationsInWeightType(int64_t rows, std::span<const int64_t> widths) const {
  // Products of these rows go through cuBLASLt, which reads and writes either type, and their
  // activations are large enough for the bytes to matter (a prefill chunk, or a decode step of
  // more than 64 sequences).
  // Rows of a multiple of 8 elements keep every row 16-byte aligned, for cuBLASLt and SwiGLU's
  // loads.
  if (options_.batch_invariant || rows <= kSideMaxRows) return false;
  return std::all_of(widths.begin(), widths.end(), [](int64_t w) { return w % 8 == 0; });
}

void CudaBackend::MatMul(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  LP_REQUIRE(x.cols == w.cols && out.rows == x.rows && out.cols == w.rows);
  LP_REQUIRE(w.dtype == DType::kBF16 || w.dtype == DType::kF16);
  const bool half = w.dtype == DType::kF16;
  const bool out_f32 = out.dtype == DType::kF32;
  const float* bias_f32 = bias != nullptr ? bias->as<float>() : nullptr;
  // x or out in the weight type (ActivationsInWeightType): always cuBLASLt.
  LP_REQUIRE(x.dtype == DType::kF32 || (x.dtype == w.dtype && !options_.batch_invariant));
  LP_REQUIRE(out_f32 || (out.dtype == w.dtype && bias == nullptr && !options_.batch_invariant));
  FlushInt4();
  if (x.dtype != DType::kF32) {  // read as it is
    FlushGemv();
    JoinSides();
    if (out.data == converted_x_) converted_x_ = nullptr;
    LtMatMul(x.data, x.rows, x.cols, w.data, half, w.rows, bias_f32, out.data, out_f32);
    return;
  }
  if (options_.batch_invariant) {
    FlushGemv();
    InvariantMatMul(x.as<float>(), x.rows, x.cols, w.data, half, w.rows, bias_f32, out.as<float>(),
                    true);
    return;
  }
  if (out_f32 && options_.gemv && GemvFits(x.as<float>(), x.rows, x.cols, w.data)) {
    JoinSides();
    const bool joins = !pending_.empty() && pending_x_ == x.as<float>() && pending_n_ == x.rows &&
                       pending_k_ == x.cols && pending_half_ == half &&
                       int(pending_.size()) < kMaxGemvJobs;
    if (!joins) FlushGemv();
    if (out.data == converted_x_) converted_x_ = nullptr;
    pending_x_ = x.as<float>();
    pending_n_ = x.rows;
    pending_k_ = x.cols;
    pending_half_ = half;
    pending_.push_back({w.data, bias_f32, out.as<float>(), w.rows});
    return;
  }
  FlushGemv();
  const float* xf = x.as<float>();
  const int side = SideFor(xf, x.numel(), half);
  const void* xh = ConvertedX(xf, x.numel(), half, out.data, true);
  // The first product of x: later ones may go beside it, unless it fills the GPU alone.
  if (side < 0 && xf == converted_x_ && x.rows <= kSideMaxRows) {
    CUDA_CHECK(cudaEventRecord(forked_, stream_));
    side_x_ = xf;
  }
  LtMatMul(xh, x.rows, x.cols, w.data, half, w.rows, bias_f32, out.data, out_f32, side);
}

void CudaBackend::LtMatMul(const void* x_half, int64_t n, int64_t k, const void* w, bool half,
                           int64_t m, const float* bias, void* out, bool out_f32, int side) {
  LP_REQUIRE(out_f32 || bias == nullptr);
  cudaStream_t s = side < 0 ? stream_ : side_[side];
  lt_->Run(x_half, n, k, w, half, m, out, out_f32, s,
           static_cast<char*>(cublas_workspace_) + (side + 1) * kCublasWorkspace);
  if (bias != nullptr) LaunchAddBias(static_cast<float*>(out), bias, n, m, s);
}

const void* CudaBackend::ConvertedX(const float* x, int64_t elems, bool half, const void* out,
                                    bool keep) {
  LP_REQUIRE(scratch_elems_ >= elems);
  if (!IsConverted(x, elems, half)) {
    LaunchToHalf(x, elems, half, scratch_, stream_);
  }
  converted_x_ = keep && out != x ? x : nullptr;  // a product writing over x ends its reuse
  converted_elems_ = elems;
  converted_half_ = half;
  return scratch_;
}

void CudaBackend::InvariantMatMul(const float* x, int64_t n, int64_t k, const void* w, bool half,
                                  int64_t m, const float* bias, float* out, bool keep_x) {
  LaunchInvariantGemm(ConvertedX(x, n * k, half, out, keep_x), n, k, w, half, m, bias, out,
                      gemm_partial_, gemm_partial_floats_, stream_);
}
// Batch-invariant: W dequantized to f16, then the invariant GEMM (gathered x is not kept).
// Else, up to 16 rows: int4.cu's GEMV, products of one x waiting to share a launch as in MatMul; up
// to kInt4TiledMaxRows: the tiled kernel on x converted to f16; more: W dequantized to f16,
// then cuBLASLt. With act order, x is gathered through the perm first (into its own scratch, so
// neither shared nor remembered as converted).
void CudaBackend::MatMulInt4(const Tensor& x, const Linear& w, const Tensor* bias, Tensor& out) {
  const auto* p = static_cast<const Int4Packed*>(w.packed.get());
  LP_REQUIRE(p != nullptr && x.dtype == DType::kF32 && x.cols == p->dev.k);
  LP_REQUIRE(out.rows == x.rows && out.cols == p->dev.m && out.dtype == DType::kF32);
  FlushGemv();
  JoinSides();
  const int64_t n = x.rows, k = p->dev.k, m = p->dev.m;
  const float* xp = x.as<float>();
  if (p->dev.perm != nullptr) {
    FlushInt4();  // a waiting product may read the gathered x
    LP_REQUIRE(int4_xperm_ != nullptr && int4_xperm_floats_ >= n * k);
    LaunchGatherCols(xp, n, k, p->dev.perm, int4_xperm_, stream_);
    xp = int4_xperm_;
  }
  if (out.data == converted_x_) converted_x_ = nullptr;
  const Int4Job job{p->dev, bias != nullptr ? bias->as<float>() : nullptr, out.as<float>()};
  if (options_.batch_invariant) {
    LP_REQUIRE(int4_dense_ != nullptr && int4_dense_elems_ >= m * k);
    LaunchInt4Dequant(p->dev, int4_dense_, stream_);
    InvariantMatMul(xp, n, k, int4_dense_, true, m, job.bias, job.out, p->dev.perm == nullptr);
    return;
  }
  if (n <= kInt4GemvMaxRows) {
    const bool joins = !pending_int4_.empty() && pending_int4_x_ == xp && pending_int4_n_ == n &&
                       pending_int4_k_ == k && int(pending_int4_.size()) < kMaxInt4Jobs;
    if (!joins) FlushInt4();
    pending_int4_x_ = xp;
    pending_int4_n_ = n;
    pending_int4_k_ = k;
    pending_int4_.push_back(job);
    if (p->dev.perm != nullptr) FlushInt4();
    return;
  }
  FlushInt4();
  // Both larger paths take x in f16, converted once for the products of one x (q, k, v); a
  // gathered x is not kept (its buffer is rewritten by the next gather).
  const void* xh = ConvertedX(xp, n * k, true, out.data, p->dev.perm == nullptr);
  if (n <= kInt4TiledMaxRows) {
    LaunchInt4Tiled(xh, n, job, int4_partial_, int4_partial_floats_, sms_, stream_);
  } else {
    LP_REQUIRE(int4_dense_ != nullptr && int4_dense_elems_ >= m * k);
    LaunchInt4Dequant(p->dev, int4_dense_, stream_);
    LtMatMul(xh, n, k, int4_dense_, true, m, job.bias, job.out, true);
  }
}

void CudaBackend::QkNormRope(Tensor& q, Tensor& k, const Tensor* q_norm, const Tensor* k_norm,
                             const AttentionParams& p) {
  Flush();
  LP_REQUIRE(q.rows == dev_layout_.tokens && k.rows == q.rows);
  LaunchQkNormRope(q.as<float>(), k.as<float>(), q.rows, p.num_heads, p.num_kv_heads, p.head_dim,
                   q_norm ? q_norm->as<float>() : nullptr, k_norm ? k_norm->as<float>() : nullptr,
                   p.rms_norm_eps, p.rope_theta, dev_layout_.pos, stream_);
}

void CudaBackend::Attention(const Tensor& q, const Tensor& k, const Tensor& v, KvCache& cache,
                            int64_t layer, const AttentionParams& p, Tensor& out) {
  Flush();
  auto& c = static_cast<CudaKvCache&>(cache);
  LP_REQUIRE(q.rows == dev_layout_.tokens && layer >= 0 && layer < c.shape().num_layers);
  LP_REQUIRE(p.head_dim == c.shape().head_dim && p.num_kv_heads == c.shape().num_kv_heads);
  LP_REQUIRE(attn_scratch_ != nullptr && dev_layout_.pages.tables != nullptr);
  const auto [f32, copy] = OutputsFor(out);
  LaunchAttention(q.as<float>(), k.as<float>(), v.as<float>(), c.Layer(layer),
                  {p.num_heads, p.num_kv_heads, p.head_dim}, dev_layout_, decode_only_,
                  options_.batch_invariant, attn_scratch_, f32, copy, stream_);
}

void CudaBackend::SiluMul(const Tensor& gate, const Tensor& up, Tensor& out) {
  Flush();
  LP_REQUIRE(up.dtype == gate.dtype && out.dtype == gate.dtype);
  LP_REQUIRE(up.numel() == gate.numel() && out.numel() == gate.numel());
  if (gate.dtype != DType::kF32) {  // ActivationsInWeightType
    LaunchSiluMulHalf(gate.data, up.data, gate.numel(), gate.dtype == DType::kF16, out.data,
                      stream_);
    return;
  }
  const auto [f32, copy] = OutputsFor(out);
  LaunchSiluMul(gate.as<float>(), up.as<float>(), gate.numel(), f32, copy, stream_);
}

void CudaBackend::Add(Tensor& x, const Tensor& y) {
  Flush();
  LaunchAdd(x.as<float>(), {y.data, y.dtype}, x.numel(), stream_);
}

void CudaBackend::GatherRows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) {
  Flush();
  LaunchGatherRows(x.as<float>(), x.cols, rows.data(), int64_t(rows.size()), out.as<float>(),
                   stream_);
}

void CudaBackend::ReserveSeen(int64_t n) {
  if (n <= seen_capacity_) return;
  const int64_t capacity = std::max(n, 2 * seen_capacity_);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  cudaFree(seen_dev_);
  cudaFree(seen_raw_dev_);
  cudaFreeHost(seen_host_);
  CUDA_CHECK(cudaHostAlloc(&seen_host_, capacity * sizeof(int32_t), 0));
  CUDA_CHECK(cudaMalloc(&seen_dev_, capacity * sizeof(int32_t)));
  CUDA_CHECK(cudaMalloc(&seen_raw_dev_, capacity * sizeof(float)));
  seen_capacity_ = capacity;
}

void CudaBackend::Sample(const Tensor& logits, std::span<const SampleInput> in,
                         std::span<SampleResult> out) {
  Flush();
  const int64_t rows = logits.rows;
  LP_REQUIRE(int64_t(in.size()) == rows && out.size() == in.size());
  LP_REQUIRE(rows <= kMaxSampleRows && !recording_);
  int64_t seen_total = 0;
  for (const SampleInput& s : in) {
    if (PenaltyIsOn(s.params.repetition_penalty)) seen_total += int64_t(s.seen.size());
  }
  ReserveSeen(seen_total);
  auto* hp = static_cast<DeviceSampleParams*>(sample_params_host_);
  int64_t seen_offset = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const SampleInput& s = in[size_t(r)];
    const SamplingParams& p = s.params;
    const bool penalize = PenaltyIsOn(p.repetition_penalty);
    const int64_t n_seen = penalize ? int64_t(s.seen.size()) : 0;
    hp[r] = {p.temperature,
             p.top_k,
             p.top_p,
             p.min_p > 0.0f ? std::log(p.min_p) : 0.0f,
             p.min_p,
             penalize ? p.repetition_penalty : 1.0f,
             p.seed,
             s.position,
             seen_offset,
             int32_t(n_seen),
             std::clamp(p.logprobs, 0, kMaxLogprobs)};
    if (n_seen > 0) std::memcpy(seen_host_ + seen_offset, s.seen.data(), n_seen * sizeof(int32_t));
    seen_offset += n_seen;
  }
  auto* dp = static_cast<DeviceSampleParams*>(sample_params_dev_);
  auto* dr = static_cast<DeviceSampleResult*>(sample_dev_);
  Note(Mark::kSample);
  CUDA_CHECK(cudaMemcpyAsync(dp, hp, rows * sizeof(*hp), cudaMemcpyHostToDevice, stream_));
  if (seen_total > 0) {
    CUDA_CHECK(cudaMemcpyAsync(seen_dev_, seen_host_, seen_total * sizeof(int32_t),
                               cudaMemcpyHostToDevice, stream_));
  }
  LaunchSample(logits.as<float>(), rows, logits.cols, dp, seen_dev_, seen_raw_dev_, dr, stream_);
  Note(Mark::kSampled);
  auto* hr = static_cast<DeviceSampleResult*>(sample_host_);
  CUDA_CHECK(cudaMemcpyAsync(hr, dr, rows * sizeof(*hr), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (int64_t r = 0; r < rows; ++r) {
    SampleResult& o = out[size_t(r)];
    o.id = hr[r].id;
    o.logprob = hr[r].logprob;
    o.top.clear();
    const int n = std::min<int64_t>(hp[r].num_logprobs, logits.cols);
    for (int i = 0; i < n; ++i) o.top.push_back({hr[r].top_ids[i], hr[r].top_logprobs[i]});
  }
}

void CudaBackend::Synchronize() {
  Flush();
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

bool CudaBackend::Replay(int64_t key) {
  Flush();
  if (!options_.graphs) return false;
  auto it = graphs_.find(GraphKey(key));
  if (it == graphs_.end()) return false;
  Note(Mark::kLayers);
  CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
  return true;
}

void CudaBackend::BeginRecord(int64_t key) {
  Flush();
  if (!options_.graphs) return;
  LP_REQUIRE(!recording_);
  CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  recording_ = true;
  record_key_ = GraphKey(key);
}

void CudaBackend::EndRecord() {
  Flush();
  if (!options_.graphs) return;
  LP_REQUIRE(recording_);
  cudaGraph_t graph;
  CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  recording_ = false;
  cudaGraphExec_t exec;
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  CUDA_CHECK(cudaGraphDestroy(graph));
  graphs_[record_key_] = exec;
  // Recording ran nothing: run the step now.
  CUDA_CHECK(cudaGraphLaunch(exec, stream_));
}

}  // namespace lp::cuda
