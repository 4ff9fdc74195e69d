// CUDA device discovery and self-test (see engine/cuda.h).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <atomic>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/cuda/device.h"

namespace lp::cuda {
namespace {

absl::Status CudaError(cudaError_t err, const char* call) {
  return absl::InternalError(absl::StrCat(call, ": ", cudaGetErrorString(err)));
}

__global__ void FillIota(float* x, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] = float(i);
}

// -1: not decided yet (the first call to ChainedLaunches asks the current device).
std::atomic<int> chained_launches{-1};

bool DeviceChains() {
  int device = 0, major = 0;
  return cudaGetDevice(&device) == cudaSuccess &&
         cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
         major >= 9;
}

}  // namespace

bool ChainedLaunches() {
  int on = chained_launches.load(std::memory_order_relaxed);
  if (on < 0) {
    on = DeviceChains() ? 1 : 0;
    chained_launches.store(on, std::memory_order_relaxed);
  }
  return on == 1;
}

void SetChainedLaunches(bool on) {
  chained_launches.store(on && DeviceChains() ? 1 : 0, std::memory_order_relaxed);
}

int DeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

absl::StatusOr<std::string> DeviceDescription(int index) {
  cudaDeviceProp prop;
  if (auto err = cudaGetDeviceProperties(&prop, index); err != cudaSuccess) {
    return CudaError(err, "cudaGetDeviceProperties");
  }
  return absl::StrFormat("%s, %.1f GiB, sm_%d%d", prop.name,
                         double(prop.totalGlobalMem) / (1ull << 30), prop.major, prop.minor);
}

absl::Status PinDevice(int index) {
  const int n = DeviceCount();
  if (index < 0 || index >= n) {
    return absl::NotFoundError(absl::StrCat("cuda:", index, " does not exist (", n, " visible)"));
  }
  if (auto err = cudaSetDevice(index); err != cudaSuccess) return CudaError(err, "cudaSetDevice");
  return absl::OkStatus();
}

std::string MemoryInfo() {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return "memory unknown";
  return absl::StrFormat("%.2f GiB free of %.2f GiB", double(free_b) / (1ull << 30),
                         double(total_b) / (1ull << 30));
}

size_t FreeMemory() {
  size_t free_b = 0, total_b = 0;
  return cudaMemGetInfo(&free_b, &total_b) == cudaSuccess ? free_b : 0;
}

absl::Status SelfTest() {
  constexpr int n = 1000;
  float* x = nullptr;
  if (auto err = cudaMalloc(&x, n * sizeof(float)); err != cudaSuccess) {
    return CudaError(err, "cudaMalloc");
  }
  FillIota<<<(n + 255) / 256, 256>>>(x, n);
  absl::Status status = absl::OkStatus();
  cublasHandle_t handle = nullptr;
  float dot = 0.0f;
  if (auto err = cudaGetLastError(); err != cudaSuccess) {
    status = CudaError(err, "FillIota launch");
  } else if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) {
    status = absl::InternalError("cublasCreate failed");
  } else if (cublasSdot(handle, n, x, 1, x, 1, &dot) != CUBLAS_STATUS_SUCCESS) {
    status = absl::InternalError("cublasSdot failed");
  } else {
    const double expected = double(n - 1) * n * (2 * n - 1) / 6;  // sum of i^2
    if (std::abs(dot - expected) > 1e-4 * expected) {
      status = absl::InternalError(absl::StrCat("self-test dot product ", dot, " != ", expected));
    }
  }
  if (handle != nullptr) cublasDestroy(handle);
  cudaFree(x);
  return status;
}

}  // namespace lp::cuda
