// The CUDA backend's public face, for the programs that choose it themselves (the benchmark,
// the GPU tests; a worker goes through backend_factory.h): its devices, the backend, and
// weights filled on the GPU. One GPU, bf16 weights (f16 when the checkpoint is f16; GPTQ / AWQ
// 4-bit linears kept packed, cuda/int4.cu) with float32 accumulation, float32 activations, a
// bf16 KV cache. Matrix products through cuBLAS (GEMM) and our own GEMV for small steps; the
// other ops are our kernels (cuda/norm_rope.cu, attention.cu, sample.cu). A pure C++ header:
// code without CUDA may include it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/cuda/device.h"  // lp::cuda::DeviceCount, PinDevice, ...

namespace lp {

struct CudaBackendOptions {
  bool graphs = true;  // record and replay decode steps as CUDA graphs
  bool gemv = true;    // our GEMV for steps of <= 2 rows (false: cuBLASLt always, to compare)
  // A row's result does not depend on the other rows of its step: every product through the
  // batch-invariant GEMM (cuda/gemm.cu; 4-bit weights dequantized to f16 first), attention
  // through the flash kernel only. Off: the GEMV / cuBLAS / split-attention paths picked by
  // the step's size, faster but a sequence's tokens may change with what it is batched with.
  bool batch_invariant = false;
  // A step's kernels may each start while the one before finishes (programmatic dependent
  // launch, compute capability 9.0 and later; cuda/common.cuh). For the process: the last
  // backend created decides. False to compare.
  bool chained_launches = true;
  // Called after each weight is copied, with bytes loaded so far (progress for big models).
  std::function<void(uint64_t bytes)> on_weight_loaded;
};

// Pins `device` for the calling thread and creates the backend there. Aborts with the failing
// call, file and line on any CUDA error (a CUDA failure is not recoverable in a worker).
std::unique_ptr<Backend> MakeCudaBackend(int device, const CudaBackendOptions& options = {});

// A weight of the CUDA backend `b` filled on the GPU: uniform with standard deviation 0.02
// (or all ones when `ones`, as norm weights at initialization), in `dtype` (BF16 or F16; 1-D
// weights, rows == 1, are float32 like every 1-D weight of this backend).
Tensor CudaRandomWeight(Backend& b, int64_t rows, int64_t cols, DType dtype, uint64_t seed,
                        bool ones);

// A 4-bit linear W[rows, cols] of the CUDA backend `b` kept packed, filled on the GPU: random
// codes, zero 8 and one scale in every group of `group_size` (standard deviation 0.02, as
// CudaRandomWeight). An error for a shape the packed kernels do not take (rows % 16, cols % 64,
// group_size % 32 must be 0).
absl::StatusOr<Linear> CudaRandomInt4(Backend& b, int64_t rows, int64_t cols, int64_t group_size,
                                      uint64_t seed);

// Copy bandwidth of the current device: a device-to-device cudaMemcpy of `bytes`, timed with
// events (median of `reps`); bytes read plus bytes written per second.
double CudaCopyBandwidth(uint64_t bytes, int reps);

// ---- for a caller that queues its own device work in order with a CUDA backend's (the
// worker's CUDA IPC ring, worker/ipc_ring.h): the engine knows no transport.
// Submits what `b` has batched, makes its device current and returns its stream (a
// cudaStream_t); nullptr when `b` is not a CUDA backend.
void* CudaStream(Backend& b);
// Hand-over marks on b's GPU timeline (LP_GPU_TIMELINE, tools/gpu_timeline.py).
enum class HandoverMark {
  kInputReady = 1,   // the previous worker's activations are ready
  kOutputReady = 3,  // the slice's output is ready, before the copy to the next worker
  kSent = 4,         // the copy to the next worker is queued and its event recorded
};
void NoteHandover(Backend& b, HandoverMark mark);

}  // namespace lp
