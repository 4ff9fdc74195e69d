// Products of more rows than the GEMV takes, through cuBLASLt, with one algorithm per weight
// shape and row bucket.
//
// Why: cuBLAS chooses its algorithm (and loads its kernel) at the first product of every new
// shape, and a step's row count is a new shape for each prompt length: the first prefill of
// each length cost 8-11 ms more on an H100 (Qwen3-8B, `bench --prefill`'s first run), so a
// cluster's first request of a length was twice as slow as the next. Here the rows are cut into
// buckets (lp::RowBucket); the algorithm is chosen once per weight shape and bucket, for the
// bucket's largest row count, and serves every row count in it. Slice::WarmUp runs one step per
// bucket, so no request meets a choice or a kernel load. Buckets of powers of two were tried
// first: the algorithm chosen for 2048 rows took 42.6 ms for a 1100-token prefill against
// cuBLAS's 36.0 (Qwen3-8B, H100), hence eight buckets per doubling.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <tuple>

namespace lp::cuda {

class LtGemm {
 public:
  // Every product is given a workspace of `workspace_bytes` (one per stream that runs products).
  explicit LtGemm(size_t workspace_bytes);
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // out[n, m] = x[n, k] w[m, k]^T: x and w f16 (half) or bf16, float32 accumulation; out
  // float32, or in the weights' type where `out_f32` is false.
  void Run(const void* x, int64_t n, int64_t k, const void* w, bool half, int64_t m, void* out,
           bool out_f32, cudaStream_t s, void* workspace);

 private:
  // (m, k, half, out_f32, rows): the algorithm chosen for `rows` rows of that product.
  using Key = std::tuple<int64_t, int64_t, bool, bool, int64_t>;
  const cublasLtMatmulAlgo_t& Algo(const Key& key);
  // False where the algorithm does not take this shape.
  bool Try(const cublasLtMatmulAlgo_t& algo, const void* x, int64_t n, int64_t k, const void* w,
           bool half, int64_t m, void* out, bool out_f32, cudaStream_t s, void* workspace);

  cublasLtHandle_t handle_ = nullptr;
  cublasLtMatmulDesc_t op_ = nullptr;
  size_t workspace_bytes_;
  std::map<Key, cublasLtMatmulAlgo_t> algos_;
};

}  // namespace lp::cuda
