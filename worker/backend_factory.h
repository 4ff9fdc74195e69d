// Choosing a worker's backend from its device: "cpu:N" runs on the CPU backend, "cuda:N" on
// the CUDA backend pinned to GPU N (an error in a build without CUDA, or when N is missing).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/backend.h"

namespace lp {

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& device, int cpu_threads);

// A CPU worker's default threads: every core of this machine. A host's CPU workers count as one
// device for the micro-batches in flight (Pipeline::depth), so they mostly run in turn; in a
// pipeline with other devices two of them may run at once and share the cores (--threads).
int DefaultCpuThreads();

}  // namespace lp
