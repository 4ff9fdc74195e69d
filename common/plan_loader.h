// What every process does to learn the plan: read config.json (and the safetensors headers when
// present) of the cluster file's model, then PlanCluster. Kept apart from placement.h, which
// does no I/O.
#pragma once

#include "absl/status/statusor.h"
#include "common/cluster_config.h"
#include "common/placement.h"

namespace lp {

struct LoadedPlan {
  ModelConfig model;
  WeightSizes sizes;
  Plan plan;
};

absl::StatusOr<LoadedPlan> LoadPlan(const ClusterConfig& cluster);

}  // namespace lp
