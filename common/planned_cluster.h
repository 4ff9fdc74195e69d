// The cluster file read and planned: what the coordinator, every worker and `layerpipe serve`
// start from, so all of them derive the same slices from the same file.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/cluster_config.h"
#include "common/model_config.h"
#include "common/placement.h"

namespace lp {

struct PlannedCluster {
  ClusterConfig cluster;
  ModelConfig model;
  Plan plan;
};

absl::StatusOr<PlannedCluster> LoadAndPlan(const std::string& cluster_yaml);

// True when `address` (host:port) names this machine: loopback, 0.0.0.0, localhost or the
// host name. `layerpipe serve` starts the workers declared on this host.
bool IsLocalAddress(const std::string& address);

}  // namespace lp
