// What every .cu file of the CUDA backend shares: the checks (check.h), bf16 / f16 loads, warp
// and block reductions, asynchronous copies into shared memory, tensor-core products.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <utility>

#include "engine/cuda/check.h"
#include "engine/cuda/device.h"
#include "engine/cuda/kernels.h"

namespace lp::cuda {

// ---- chained launches (programmatic dependent launch, sm_90 and later)
//
// A kernel launched by LaunchChained may start while the kernel before it on the stream is still
// finishing: its blocks take the SMs that free up, and what they do before WaitForEarlierKernels()
// (a GEMV's first weight loads) overlaps the previous kernel's tail and the launch itself. Every
// block of a chained kernel must call WaitForEarlierKernels() before it reads anything that
// earlier kernels wrote or writes anything that they read: once it returns, the kernel before
// has finished and its writes are visible (and, as that one waited too, every kernel before
// it). LetLaterKernelsStart() lets the next chained kernel launch once every block of this one
// has called it. Both are no-ops on older GPUs and for a kernel launched the usual way.
__device__ __forceinline__ void WaitForEarlierKernels() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void LetLaterKernelsStart() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" :::);
#endif
}

template <typename... Params, typename... Args>
void LaunchChained(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                   Args&&... args) {
  cudaLaunchAttribute chained[1];
  chained[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  chained[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = s;
  config.attrs = chained;
  config.numAttrs = ChainedLaunches() ? 1 : 0;
  CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

// Several products of one input share a launch (q, k, v; gate, up): `Jobs` holds `count` of
// them in `job[]`, and the blocks of job i start at `first_block[i]`. This block's job, and in
// `first` its first block.
template <typename Jobs>
__device__ __forceinline__ auto JobOfBlock(const Jobs& jobs, int* first) {
  constexpr int kMax = int(sizeof(jobs.job) / sizeof(jobs.job[0]));
  auto job = jobs.job[0];
  *first = 0;
#pragma unroll
  for (int i = 1; i < kMax; ++i) {
    if (i < jobs.count && int(blockIdx.x) >= jobs.first_block[i]) {
      job = jobs.job[i];
      *first = jobs.first_block[i];
    }
  }
  return job;
}

__device__ __forceinline__ float ToF32(float v) { return v; }
__device__ __forceinline__ float ToF32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float ToF32(__half v) { return __half2float(v); }
template <typename T>
__device__ __forceinline__ T FromF32(float v);
template <>
__device__ __forceinline__ __nv_bfloat16 FromF32<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}
template <>
__device__ __forceinline__ __half FromF32<__half>(float v) {
  return __float2half(v);
}

// out[i] = v, and copy[i] = v in the copy's type where the op has a copy to write (HalfCopy,
// kernels.h). out null: only the copy (an output in the weight type).
__device__ __forceinline__ void StoreOut(float* out, HalfCopy copy, int64_t i, float v) {
  if (out != nullptr) out[i] = v;
  if (copy.data == nullptr) return;
  if (copy.half) {
    static_cast<__half*>(copy.data)[i] = FromF32<__half>(v);
  } else {
    static_cast<__nv_bfloat16*>(copy.data)[i] = FromF32<__nv_bfloat16>(v);
  }
}

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
__device__ __forceinline__ float BlockSum(float v, float* scratch /* [32] */) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = WarpSum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.0f;
  return WarpSum(v);
}

// 16 bytes of data read once (weights), past L1, which keeps what is read again (x); with a
// 256-byte L2 prefetch when kPrefetch (the decode GEMV, matmul.cu: H200, batch-1 decode
// Qwen3-8B 5.37 -> 5.30 ms, Qwen3-0.6B 1.22 -> 1.13 ms). asm volatile: the compiler keeps these
// loads in their order among the other volatile asm. The mma is not volatile (Mma): that the
// 4-bit GEMV's set loaded ahead still goes out before the previous set's products is up to the
// compiler's schedule, which lost nothing on an H100 (engine/cuda/NOTES.md, "Branch
// flash-split-keys-qknorm").
template <bool kPrefetch>
__device__ __forceinline__ uint4 LoadStreaming(const void* p) {
  uint4 v;
  if constexpr (kPrefetch) {
    asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
  } else {
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
  }
  return v;
}

// 16 bytes global -> shared without registers (cp.async); zeros when !valid.
__device__ __forceinline__ void CopyAsync16(void* smem, const void* gmem, bool valid) {
  const unsigned dst = unsigned(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void CopyAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most N committed groups are in flight.
template <int N>
__device__ __forceinline__ void CopyAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// c[16 x 8] += a[16 x 16] b[16 x 8] on the tensor cores (mma.sync m16n8k16), T bf16 or f16
// inputs, float32 accumulators; a and b in the mma's fragment layout. Not volatile: it only
// reads and writes registers, so the compiler may move it among independent ones.
template <typename T>
__device__ __forceinline__ void Mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void Mma<__nv_bfloat16>(float c[4], const uint32_t a[4], uint32_t b0,
                                                   uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void Mma<__half>(float c[4], const uint32_t a[4], uint32_t b0,
                                            uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 8 x 8 matrices of 16-bit elements from shared memory into mma fragments (ldmatrix); each
// lane gives the address of one matrix row.
__device__ __forceinline__ void LdMatrixX2(uint32_t r[2], const void* smem) {
  const unsigned a = unsigned(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(a));
}
__device__ __forceinline__ void LdMatrixX4(uint32_t r[4], const void* smem) {
  const unsigned a = unsigned(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
// The same, each matrix transposed.
__device__ __forceinline__ void LdMatrixX4Trans(uint32_t r[4], const void* smem) {
  const unsigned a = unsigned(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

}  // namespace lp::cuda
