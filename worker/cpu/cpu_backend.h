// The CPU backend: float32 compute from BF16 / F16 / F32 weights (converted once at load),
// batch-invariant matrix products of our own (matmul.h), every op threaded with OpenMP.
// It is the reference the CUDA backend is tested against.
#pragma once

#include <memory>

#include "worker/backend.h"

namespace lp {

// `threads` > 0: OpenMP threads for this backend's loops (set on whichever thread runs a step).
std::unique_ptr<Backend> MakeCpuBackend(int threads = 0);
// Threads for OpenMP loops in this process.
void SetCpuThreads(int threads);

// OpenMP threads that spin while they wait fight the other workers of a host for the cores: measured on 2 cores under load, decode ran 3.4x slower. The wait policy
// is read when the OpenMP runtime loads, before main, so a program that has none set re-runs
// itself once with OMP_WAIT_POLICY=passive. Call first thing in main; returns when set.
void EnsurePassiveOpenMpWait(char** argv);

}  // namespace lp
