// Reading and planning the cluster file (see planned_cluster.h).
#include "common/planned_cluster.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/plan_loader.h"
#include "common/status.h"

namespace lp {

absl::StatusOr<PlannedCluster> LoadAndPlan(const std::string& cluster_yaml) {
  PlannedCluster out;
  ASSIGN_OR_RETURN(out.cluster, LoadClusterConfig(cluster_yaml));
  ASSIGN_OR_RETURN(LoadedPlan loaded, LoadPlan(out.cluster));
  out.model = loaded.model;
  out.plan = std::move(loaded.plan);
  return out;
}

bool IsLocalAddress(const std::string& address) {
  const std::string host = HostOf(address);
  if (host == "127.0.0.1" || host == "localhost" || host == "0.0.0.0" || host == "[::1]" ||
      host == "[::]" || host.empty()) {
    return true;
  }
  char name[256] = {};
  return ::gethostname(name, sizeof(name) - 1) == 0 && host == name;
}

}  // namespace lp
