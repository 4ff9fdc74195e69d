// Choosing a backend from a device: "cpu:N" runs on the CPU backend, "cuda:N" on the CUDA
// backend pinned to GPU N. The one way a program outside engine/ makes a backend.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/backend.h"

namespace lp {

struct BackendOptions {
  // OpenMP threads of a CPU backend; 0: OpenMP's default (OMP_NUM_THREADS, the CPU affinity).
  int cpu_threads = 0;
  // Names the device in the progress lines on stderr (once per GiB of weights loaded).
  std::string log_name;
  // CUDA only (the CPU backend always is): a row's result does not depend on the other rows
  // of its step (CudaBackendOptions::batch_invariant).
  bool batch_invariant = false;
};

// An error for an unknown device, for "cuda:N" in a build without CUDA (see HasCudaBackend) or
// when GPU N does not exist.
absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& device,
                                                     const BackendOptions& options = {});

// Whether this program was linked with the CUDA backend (lp_engine in a CUDA build, not
// lp_engine_cpu).
bool HasCudaBackend();

// A CPU worker's default threads: every core of this machine. A host's CPU workers count as one
// device for the micro-batches in flight (Pipeline::depth), so they mostly run in turn; in a
// pipeline with other devices two of them may run at once and share the cores (--threads).
int DefaultCpuThreads();

// OpenMP threads that spin while they wait fight the other workers of a host for the cores
// (measured on 2 cores under load, decode ran 3.4x slower). The wait policy is read when the
// OpenMP runtime loads, before main, so a program that has none set re-runs itself once with
// OMP_WAIT_POLICY=passive. Call first thing in the main of a program that computes on the CPU.
void EnsurePassiveOpenMpWait(char** argv);

}  // namespace lp
