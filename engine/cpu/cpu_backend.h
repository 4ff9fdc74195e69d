// The CPU backend: float32 compute from BF16 / F16 / F32 weights (converted once at load),
// batch-invariant matrix products of our own (matmul.h), every op threaded with OpenMP.
// It is the reference the CUDA backend is tested against.
#pragma once

#include <memory>

#include "engine/backend.h"

namespace lp {

// `threads` > 0: OpenMP threads for this backend's loops (set on whichever thread runs a step).
std::unique_ptr<Backend> MakeCpuBackend(int threads = 0);
// Threads for OpenMP loops in this process.
void SetCpuThreads(int threads);
}  // namespace lp
