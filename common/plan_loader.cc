// Reading the model's config and weight sizes, then planning.
#include "common/plan_loader.h"

#include "common/status.h"

namespace lp {

absl::StatusOr<LoadedPlan> LoadPlan(const ClusterConfig& cluster) {
  LoadedPlan loaded;
  ASSIGN_OR_RETURN(loaded.model, LoadModelConfig(cluster.model_path));
  ASSIGN_OR_RETURN(loaded.sizes, ReadWeightSizes(cluster.model_path, loaded.model));
  ASSIGN_OR_RETURN(loaded.plan, PlanCluster(cluster, loaded.model, loaded.sizes));
  return loaded;
}

}  // namespace lp
