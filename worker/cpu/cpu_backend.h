// The CPU backend: float32 compute from BF16 / F16 / F32 weights (converted once at load),
// matrix products through OpenBLAS's cblas_sgemm, the other ops threaded with OpenMP.
// It is the reference the CUDA backend is tested against.
#pragma once

#include <memory>

#include "worker/backend.h"

namespace lp {

std::unique_ptr<Backend> MakeCpuBackend();
// Threads for OpenMP loops and OpenBLAS in this process.
void SetCpuThreads(int threads);

}  // namespace lp
