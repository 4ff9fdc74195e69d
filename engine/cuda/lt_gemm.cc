// cuBLASLt products with an algorithm per weight shape and row bucket (see lt_gemm.h).
#include "engine/cuda/lt_gemm.h"

#include "engine/backend.h"
#include "engine/cuda/check.h"

namespace lp::cuda {
namespace {

// The column-major views of out^T [m, n] = W [k, m]^T x^T [k, n] (W and x row-major): W, x and
// out for n rows.
struct Layouts {
  Layouts(int64_t n, int64_t k, int64_t m, bool half, bool out_f32) {
    const cudaDataType_t t = half ? CUDA_R_16F : CUDA_R_16BF;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&w, t, uint64_t(k), uint64_t(m), k));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&x, t, uint64_t(k), uint64_t(n), k));
    CUBLAS_CHECK(
        cublasLtMatrixLayoutCreate(&out, out_f32 ? CUDA_R_32F : t, uint64_t(m), uint64_t(n), m));
  }
  ~Layouts() {
    cublasLtMatrixLayoutDestroy(w);
    cublasLtMatrixLayoutDestroy(x);
    cublasLtMatrixLayoutDestroy(out);
  }
  cublasLtMatrixLayout_t w = nullptr, x = nullptr, out = nullptr;
};

}  // namespace

LtGemm::LtGemm(size_t workspace_bytes) : workspace_bytes_(workspace_bytes) {
  CUBLAS_CHECK(cublasLtCreate(&handle_));
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&op_, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t transposed = CUBLAS_OP_T;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSA, &transposed,
                                              sizeof(transposed)));
}

LtGemm::~LtGemm() {
  cublasLtMatmulDescDestroy(op_);
  cublasLtDestroy(handle_);
}

const cublasLtMatmulAlgo_t& LtGemm::Algo(const Key& key) {
  auto it = algos_.find(key);
  if (it != algos_.end()) return it->second;
  const auto [m, k, half, out_f32, rows] = key;
  const Layouts l(rows, k, m, half, out_f32);
  cublasLtMatmulPreference_t pref;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &workspace_bytes_, sizeof(workspace_bytes_)));
  // Any 16-byte aligned buffers (an output may be a view into a larger one).
  const uint32_t align = 16;
  for (auto attr :
       {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES}) {
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof(align)));
  }
  cublasLtMatmulHeuristicResult_t result = {};
  int found = 0;
  CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle_, op_, l.w, l.x, l.out, l.out, pref, 1,
                                              &result, &found));
  cublasLtMatmulPreferenceDestroy(pref);
  if (found < 1) Die("no algorithm", "cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__);
  return algos_.emplace(key, result.algo).first->second;
}

bool LtGemm::Try(const cublasLtMatmulAlgo_t& algo, const void* x, int64_t n, int64_t k,
                 const void* w, bool half, int64_t m, void* out, bool out_f32, cudaStream_t s,
                 void* workspace) {
  const Layouts l(n, k, m, half, out_f32);
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t st = cublasLtMatmul(handle_, op_, &alpha, w, l.w, x, l.x, &beta, out, l.out,
                                           out, l.out, &algo, workspace, workspace_bytes_, s);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE) return false;
  CUBLAS_CHECK(st);
  return true;
}

void LtGemm::Run(const void* x, int64_t n, int64_t k, const void* w, bool half, int64_t m,
                 void* out, bool out_f32, cudaStream_t s, void* workspace) {
  if (Try(Algo({m, k, half, out_f32, RowBucket(n)}), x, n, k, w, half, m, out, out_f32, s,
          workspace)) {
    return;
  }
  // The bucket's algorithm does not take this row count: one chosen for exactly n rows.
  if (!Try(Algo({m, k, half, out_f32, n}), x, n, k, w, half, m, out, out_f32, s, workspace)) {
    Die("the chosen algorithm refused its own shape", "cublasLtMatmul", __FILE__, __LINE__);
  }
}

}  // namespace lp::cuda
