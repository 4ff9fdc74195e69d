// The CUDA backend's memory: weights copied from the checkpoint through pinned staging buffers
// (the host copy into one buffer overlaps the DMA out of the other), converted to bf16 (f16
// kept as f16; 1-D weights to float32); the bf16 KV cache; random weights filled on the GPU;
// the copy-bandwidth probe; and MakeCudaBackend.
#include <algorithm>
#include <cstring>
#include <vector>

#include "worker/cuda/backend_impl.h"
#include "worker/cuda/device.h"

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

std::unique_ptr<KvCache> CudaBackend::CreateKvCache(const KvCacheShape& shape) {
  // Split attention's partials, for the most query heads a KV head may serve (8).
  const AttnShape a{8 * shape.num_kv_heads, shape.num_kv_heads, shape.head_dim};
  const int64_t floats = SplitAttentionScratchFloats(a, shape.max_context);
  if (floats > attn_scratch_floats_) {
    cudaFree(attn_scratch_);
    CUDA_CHECK(cudaMalloc(&attn_scratch_, size_t(floats) * sizeof(float)));
    attn_scratch_floats_ = floats;
  }
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
  return t;
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

Tensor CudaRandomWeight(Backend& b, int64_t rows, int64_t cols, DType dtype, uint64_t seed,
                        bool ones) {
  auto* cb = dynamic_cast<cuda::CudaBackend*>(&b);
  LP_REQUIRE(cb != nullptr && (dtype == DType::kBF16 || dtype == DType::kF16));
  const DType to = rows == 1 ? DType::kF32 : dtype;
  Tensor t = cb->DeviceTensor(rows, cols, to);
  const int kind = to == DType::kF32 ? 0 : to == DType::kBF16 ? 1 : 2;
  cuda::LaunchRandomFill(t.data, rows * cols, kind, seed, 0.02f * 1.7320508f, ones, cb->stream());
  return t;
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
