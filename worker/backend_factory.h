// Choosing a worker's backend from its device: "cpu:N" runs on the CPU backend, "cuda:N" on
// the CUDA backend pinned to GPU N (an error in a build without CUDA, or when N is missing).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/cluster_config.h"
#include "worker/backend.h"

namespace lp {

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& device, int cpu_threads);

// A CPU worker's default threads: this machine's cores shared among the cluster's workers on
// the same host (so three demo workers on two cores do not fight over them), at least 1.
int DefaultCpuThreads(const ClusterConfig& cluster, const std::string& worker_name);

}  // namespace lp
