// Checks shared by the CUDA backend's host code (.cc, C++20) and kernels (.cu, C++17): a failed
// CUDA or cuBLAS call, a bad launch or a broken launcher precondition is fatal and reported
// with the call, file and line.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

namespace lp::cuda {

[[noreturn]] inline void Die(const char* what, const char* call, const char* file, int line) {
  std::fprintf(stderr, "fatal: %s failed: %s (%s:%d)\n", call, what, file, line);
  std::abort();
}

// Out of memory also says how much the device has free.
[[noreturn]] inline void DieCuda(cudaError_t err, const char* call, const char* file, int line) {
  if (err == cudaErrorMemoryAllocation) {
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    std::fprintf(stderr, "device memory: %.2f GiB free of %.2f GiB\n", double(free_b) / (1 << 30),
                 double(total_b) / (1 << 30));
  }
  Die(cudaGetErrorString(err), call, file, line);
}

#define CUDA_CHECK(call)                                                                 \
  do {                                                                                   \
    cudaError_t lp_err_ = (call);                                                        \
    if (lp_err_ != cudaSuccess) ::lp::cuda::DieCuda(lp_err_, #call, __FILE__, __LINE__); \
  } while (0)

#define CUBLAS_CHECK(call)                                                       \
  do {                                                                           \
    cublasStatus_t lp_st_ = (call);                                              \
    if (lp_st_ != CUBLAS_STATUS_SUCCESS)                                         \
      ::lp::cuda::Die(cublasGetStatusString(lp_st_), #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: a bad configuration shows here, not at the next call.
#define LAUNCH_CHECK(kernel)                                                                  \
  do {                                                                                        \
    cudaError_t lp_err_ = cudaGetLastError();                                                 \
    if (lp_err_ != cudaSuccess)                                                               \
      ::lp::cuda::Die(cudaGetErrorString(lp_err_), "launch of " #kernel, __FILE__, __LINE__); \
  } while (0)

// A precondition of a launcher (a programming error): fatal, with the condition's text.
#define LP_REQUIRE(cond)                                                     \
  do {                                                                       \
    if (!(cond)) ::lp::cuda::Die("precondition", #cond, __FILE__, __LINE__); \
  } while (0)

}  // namespace lp::cuda
