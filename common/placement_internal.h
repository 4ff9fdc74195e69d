// Shared between the placement files (placement.cc, placement_search.cc,
// placement_explicit.cc); not for other modules. A split of the layers is `cuts`: worker d holds
// layers [cuts[d], cuts[d + 1]), cuts.front() == 0, cuts.back() == num_layers; the first worker
// also holds the embedding, the last the head.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/cluster_config.h"
#include "common/device.h"
#include "common/model_config.h"
#include "common/stage_memory.h"

namespace lp::placement {

using Cuts = std::vector<int64_t>;

// What every strategy needs to price and check a stage.
struct Context {
  const ClusterConfig& cluster;
  const ModelConfig& model;
  StageCost cost;
  std::vector<uint64_t> budgets;          // per worker
  std::vector<std::string> budget_notes;  // per worker: "max_memory", "assumed", "unlimited"
  int num_workers() const { return int(cluster.workers.size()); }
  int64_t num_layers() const { return model.num_layers; }
  bool cuda(int d) const { return IsCudaDevice(cluster.workers[d].device); }
  bool last(int d) const { return d == num_workers() - 1; }

  StageBytes Bytes(int d, int64_t begin, int64_t end) const {
    return cost.Bytes(cuda(d), begin, end, d == 0, last(d),
                      !last(d) && PlannedCudaIpc(cluster, size_t(d) + 1));
  }
  bool Fits(int d, int64_t begin, int64_t end) const {
    return Bytes(d, begin, end).total() <= budgets[d];
  }
  // Per-step time of a stage, in bytes read.
  uint64_t Time(int d, int64_t begin, int64_t end) const {
    return cost.LayerReads(cuda(d), begin, end) + (last(d) ? cost.HeadReads(cuda(d)) : 0);
  }
  // The fewest layers worker d may hold: one, except the last (the head is work enough) and a
  // single worker (all of them).
  int64_t MinLayers(int d) const { return last(d) && d > 0 ? 0 : 1; }
};

// "cuda:1 (worker gpu1)".
std::string WorkerLabel(const Context& ctx, int d);
// "layers [4, 9) + lm_head": what worker d would hold.
std::string StageContents(const Context& ctx, int d, int64_t begin, int64_t end);
// "needs 30.2 GiB (weights .., KV cache .., workspace .., reserve ..) but has 24 GiB (max_memory)"
std::string NeedVersusBudget(const Context& ctx, int d, int64_t begin, int64_t end);

// Strategies (placement_search.cc). Each returns a split within every budget or an error that
// names the device that cannot hold its part.
absl::StatusOr<Cuts> BalancedCuts(const Context& ctx);
absl::StatusOr<Cuts> BalancedLow0Cuts(const Context& ctx);
absl::StatusOr<Cuts> SequentialCuts(const Context& ctx);

// Given forms (placement_explicit.cc): checked for completeness and order; budgets are
// checked afterwards by the caller.
absl::StatusOr<Cuts> ExplicitCuts(const Context& ctx);
absl::StatusOr<Cuts> LayeredCuts(const Context& ctx);

}  // namespace lp::placement
