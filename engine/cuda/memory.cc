// The CUDA backend's memory: weights copied from the checkpoint through pinned staging buffers
// (the host copy into one buffer overlaps the DMA out of the other), converted to bf16 (f16
// kept as f16; 1-D weights to float32); 4-bit weights kept packed (int4.cu's layout: codes
// repacked on the GPU, scales and zeros here); the bf16 KV cache; random weights filled on the GPU;
// the copy-bandwidth probe; and MakeCudaBackend.
#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/cuda.h"
#include "engine/cuda/backend_impl.h"

namespace lp::cuda {

CudaKvCache::CudaKvCache(const KvCacheShape& s, cudaStream_t stream) : KvCache(s) {
  const size_t bytes = LayerBytes() * size_t(s.num_layers);
  CUDA_CHECK(cudaMalloc(&k_, std::max<size_t>(bytes, 16)));
  CUDA_CHECK(cudaMalloc(&v_, std::max<size_t>(bytes, 16)));
  CUDA_CHECK(cudaMemsetAsync(k_, 0, bytes, stream));
  CUDA_CHECK(cudaMemsetAsync(v_, 0, bytes, stream));
}

CudaKvCache::~CudaKvCache() {
  cudaFree(k_);
  cudaFree(v_);
}

absl::Status CudaBackend::CheckAttention(const AttentionParams& p) const {
  RETURN_IF_ERROR(Backend::CheckAttention(p));
  if (const char* supported = AttentionUnsupported({p.num_heads, p.num_kv_heads, p.head_dim})) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cuda backend: attention with head_dim ", p.head_dim, ", ", p.num_heads, " heads over ",
        p.num_kv_heads, " KV heads is not supported (the kernels take ", supported, ")"));
  }
  return absl::OkStatus();
}

std::unique_ptr<KvCache> CudaBackend::CreateKvCache(const KvCacheShape& shape) {
  // Split attention's partials, for the most query heads a KV head may serve (8).
  const AttnShape a{8 * shape.num_kv_heads, shape.num_kv_heads, shape.head_dim};
  const int64_t floats = SplitAttentionScratchFloats(a);
  if (floats > attn_scratch_floats_) {
    cudaFree(attn_scratch_);
    CUDA_CHECK(cudaMalloc(&attn_scratch_, size_t(floats) * sizeof(float)));
    attn_scratch_floats_ = floats;
  }
  // One slice per backend, one cache per slice: its block tables' buffers are made once, so
  // that recorded steps keep pointing at them.
  LP_REQUIRE(tables_dev_ == nullptr && shape.max_seqs > 0 && shape.max_blocks_per_seq > 0);
  LP_REQUIRE(shape.block_tokens >= 16 && (shape.block_tokens & (shape.block_tokens - 1)) == 0);
  const size_t table_bytes =
      size_t(1 + shape.max_seqs * shape.max_blocks_per_seq) * sizeof(int32_t);  // stride, tables
  CUDA_CHECK(cudaMalloc(&tables_dev_, table_bytes));
  CUDA_CHECK(cudaHostAlloc(&tables_host_, table_bytes, 0));
  kv_shape_ = shape;
  return std::make_unique<CudaKvCache>(shape, stream_);
}

void CudaBackend::CopyToDevice(const void* host, size_t bytes, void* dst) {
  if (staging_.empty()) {
    for (int i = 0; i < 2; ++i) {
      void* p = nullptr;
      CUDA_CHECK(cudaHostAlloc(&p, kStagingBytes, 0));
      cudaEvent_t e;
      CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
      staging_.push_back(p);
      staging_done_.push_back(e);
    }
  }
  for (size_t off = 0; off < bytes; off += kStagingBytes) {
    const size_t n = std::min(kStagingBytes, bytes - off);
    const int b = next_staging_;
    next_staging_ = 1 - next_staging_;
    CUDA_CHECK(cudaEventSynchronize(staging_done_[b]));  // its last copy has left
    std::memcpy(staging_[b], static_cast<const char*>(host) + off, n);
    CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + off, staging_[b], n,
                               cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaEventRecord(staging_done_[b], stream_));
  }
}

Tensor CudaBackend::LoadWeight(const TensorView& src, int64_t rows, int64_t cols) {
  const DType from = src.info->dtype;
  LP_REQUIRE(IsFloatWeightType(from));
  const size_t n = size_t(rows * cols);
  const DType to = rows == 1 ? DType::kF32 : from == DType::kF16 ? DType::kF16 : DType::kBF16;
  Tensor t = DeviceTensor(rows, cols, to);
  if (from == to) {
    CopyToDevice(src.data, n * DTypeSize(to), t.data);
  } else {
    std::vector<float> f32(n);
    ConvertToF32(from, src.data, f32.data(), n);
    if (to == DType::kF32) {
      CopyToDevice(f32.data(), n * 4, t.data);
    } else {
      std::vector<uint16_t> bf(n);
      for (size_t i = 0; i < n; ++i) bf[i] = F32ToBf16(f32[i]);
      CopyToDevice(bf.data(), n * 2, t.data);
    }
    // The host vectors die here: wait for the copies out of the staging buffers they fed.
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  weight_bytes_ += n * DTypeSize(to);
  if (options_.on_weight_loaded) options_.on_weight_loaded(weight_bytes_);
  NoteWeightShape(rows, cols);
  return t;
}

void CudaBackend::NoteWeightShape(int64_t rows, int64_t cols) {
  if (!options_.batch_invariant || rows == 1) return;
  const int64_t want = InvariantGemmPartialFloats(rows, cols);
  if (want <= gemm_partial_floats_) return;
  cudaFree(gemm_partial_);
  CUDA_CHECK(cudaMalloc(&gemm_partial_, size_t(want) * sizeof(float)));
  gemm_partial_floats_ = want;
}

std::shared_ptr<Int4Packed> CudaBackend::NewInt4(int64_t rows, int64_t cols, int64_t group_size,
                                                 bool perm) {
  LP_REQUIRE(Int4Fits(rows, cols, group_size));
  const uint64_t codes = uint64_t(rows * cols / 2);
  const uint64_t sz = uint64_t(Int4SzWords(rows, cols, group_size)) * 4;
  auto p = std::make_shared<Int4Packed>();
  p->bytes = codes + sz + (perm ? uint64_t(cols) * 4 : 0);
  CUDA_CHECK(cudaMalloc(&p->memory, p->bytes));
  char* base = static_cast<char*>(p->memory);
  p->dev.codes = reinterpret_cast<const uint4*>(base);
  p->dev.sz = reinterpret_cast<const uint32_t*>(base + codes);  // codes: a multiple of 512 bytes
  p->dev.perm = perm ? reinterpret_cast<const int32_t*>(base + codes + sz) : nullptr;
  p->dev.m = rows;
  p->dev.k = cols;
  p->dev.group_size = group_size;
  p->dev.groups = cols / group_size;
  int4_max_elems_ = std::max(int4_max_elems_, rows * cols);
  int4_perm_ = int4_perm_ || perm;
  EnsureInt4Scratch();
  NoteWeightShape(rows, cols);  // multiplied dense when batch-invariant
  weight_bytes_ += p->bytes;
  return p;
}

absl::StatusOr<Linear> CudaBackend::LoadInt4(const Int4Matrix& w) {
  if (!Int4Fits(w.rows, w.cols, w.group_size)) return Backend::LoadInt4(w);  // dense
  LP_REQUIRE(int64_t(w.codes.size()) == w.rows * w.cols / 8 &&
             int64_t(w.scales.size()) == w.rows * w.groups() &&
             int64_t(w.zeros.size()) == w.rows * w.groups() &&
             (w.perm.empty() || int64_t(w.perm.size()) == w.cols));
  auto p = NewInt4(w.rows, w.cols, w.group_size, !w.perm.empty());
  // Codes: through a temporary device buffer in the host layout, repacked there.
  void* row_codes = nullptr;
  CUDA_CHECK(cudaMalloc(&row_codes, w.codes.size() * 4));
  CopyToDevice(w.codes.data(), w.codes.size() * 4, row_codes);
  LaunchInt4Repack(static_cast<const uint32_t*>(row_codes), w.rows, w.cols,
                   const_cast<uint4*>(p->dev.codes), stream_);
  const int64_t groups = w.groups();
  std::vector<uint32_t> sz(size_t(w.rows * groups));
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const size_t i = size_t(r * groups + g);
      sz[size_t(Int4SzIndex(r, g, groups))] = uint32_t(w.scales[i]) | uint32_t(w.zeros[i]) << 16;
    }
  }
  CopyToDevice(sz.data(), sz.size() * 4, const_cast<uint32_t*>(p->dev.sz));
  if (!w.perm.empty()) {
    CopyToDevice(w.perm.data(), w.perm.size() * 4, const_cast<int32_t*>(p->dev.perm));
  }
  // `sz` dies here, and the temporary buffer with it.
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  CUDA_CHECK(cudaFree(row_codes));
  if (options_.on_weight_loaded) options_.on_weight_loaded(weight_bytes_);
  return Linear{Tensor{}, p, w.rows, w.cols};
}

}  // namespace lp::cuda

namespace lp {

std::unique_ptr<Backend> MakeCudaBackend(int device, const CudaBackendOptions& options) {
  if (auto s = cuda::PinDevice(device); !s.ok()) {
    std::fprintf(stderr, "fatal: %s\n", std::string(s.message()).c_str());
    std::abort();
  }
  return std::make_unique<cuda::CudaBackend>(device, options);
}

void* CudaStream(Backend& b) {
  auto* cb = dynamic_cast<cuda::CudaBackend*>(&b);
  return cb != nullptr ? cb->Submit() : nullptr;
}

void NoteHandover(Backend& b, HandoverMark mark) {
  static_assert(int(HandoverMark::kInputReady) == int(cuda::Mark::kInputReady) &&
                int(HandoverMark::kOutputReady) == int(cuda::Mark::kLayersDone) &&
                int(HandoverMark::kSent) == int(cuda::Mark::kSent));
  if (auto* cb = dynamic_cast<cuda::CudaBackend*>(&b)) cb->Note(cuda::Mark(int(mark)));
}

Tensor CudaRandomWeight(Backend& b, int64_t rows, int64_t cols, DType dtype, uint64_t seed,
                        bool ones) {
  auto* cb = dynamic_cast<cuda::CudaBackend*>(&b);
  LP_REQUIRE(cb != nullptr && (dtype == DType::kBF16 || dtype == DType::kF16));
  const DType to = rows == 1 ? DType::kF32 : dtype;
  Tensor t = cb->DeviceTensor(rows, cols, to);
  const int kind = to == DType::kF32 ? 0 : to == DType::kBF16 ? 1 : 2;
  cuda::LaunchRandomFill(t.data, rows * cols, kind, seed, 0.02f * 1.7320508f, ones, cb->stream());
  cb->NoteWeightShape(rows, cols);
  return t;
}

absl::StatusOr<Linear> CudaRandomInt4(Backend& b, int64_t rows, int64_t cols, int64_t group_size,
                                      uint64_t seed) {
  auto* cb = dynamic_cast<cuda::CudaBackend*>(&b);
  LP_REQUIRE(cb != nullptr);
  if (!cuda::Int4Fits(rows, cols, group_size)) {
    return absl::InvalidArgumentError(
        absl::StrCat("a packed 4-bit weight needs rows % 16, cols % 64 and group % 32 == 0; got ",
                     rows, " x ", cols, ", group ", group_size));
  }
  auto p = cb->NewInt4(rows, cols, group_size, false);
  // (code - 8) is uniform on -8 .. 7 (standard deviation 4.6): scaled to 0.02, as
  // CudaRandomWeight.
  cuda::LaunchInt4Random(p->dev, 0.02f / 4.61f, 8, seed, cb->stream());
  return Linear{Tensor{}, p, rows, cols};
}

double CudaCopyBandwidth(uint64_t bytes, int reps) {
  void *a = nullptr, *b = nullptr;
  CUDA_CHECK(cudaMalloc(&a, bytes));
  CUDA_CHECK(cudaMalloc(&b, bytes));
  CUDA_CHECK(cudaMemset(a, 1, bytes));
  cudaEvent_t e0, e1;
  CUDA_CHECK(cudaEventCreate(&e0));
  CUDA_CHECK(cudaEventCreate(&e1));
  CUDA_CHECK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));  // warm-up
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    CUDA_CHECK(cudaEventRecord(e0));
    CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaEventRecord(e1));
    CUDA_CHECK(cudaEventSynchronize(e1));
    float t = 0;
    CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(bytes) / (double(ms[ms.size() / 2]) * 1e-3);
}

}  // namespace lp
