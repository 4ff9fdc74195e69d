// Choosing a worker's backend from its device: "cpu:N" runs on the CPU backend, "cuda:N" on
// the CUDA backend pinned to GPU N (an error in a build without CUDA, or when N is missing).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/backend.h"

namespace lp {

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& device, int cpu_threads);

// A CPU worker's default threads: every core of this machine (a host's CPU workers run one at a
// time, see Pipeline::depth).
int DefaultCpuThreads();

}  // namespace lp
