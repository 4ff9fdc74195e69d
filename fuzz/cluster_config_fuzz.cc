// Fuzz target: the cluster file (ParseClusterConfig). A file it accepts must name at least one
// worker, and limits inside their documented bounds.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/cluster_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (16 << 10)) return 0;  // a cluster file is a page of YAML
  auto config =
      lp::ParseClusterConfig(std::string(reinterpret_cast<const char*>(data), size), "/models");
  if (!config.ok()) return 0;
  const lp::ClusterLimits& l = config->limits;
  if (config->workers.empty() || l.max_batch <= 0 || l.max_batch > lp::kMaxBatch ||
      l.max_context <= 0 || l.max_step_tokens < l.max_batch) {
    std::abort();
  }
  for (const auto& e : config->device_map.entries) {
    if (e.worker < 0 || size_t(e.worker) >= config->workers.size()) std::abort();
  }
  for (size_t i = 0; i < config->workers.size(); ++i) {
    (void)lp::PlannedTransport(*config, i);
  }
  return 0;
}
