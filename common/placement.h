// Placement: the cluster file's device_map turned into one contiguous slice per worker. A pure
// function of the cluster file, config.json and the weight sizes (no I/O, no GPU needed), used
// by `layerpipe plan`, the coordinator and every worker (each finds its own stage by name).
//
// Every form ends as a pipeline: worker i holds layers [begin, end), the first worker also the
// embedding, the last also final norm + lm_head, in the order of `workers`. Strategies:
//  - auto, balanced: minimize the slowest stage's time per step, within every budget.
//  - balanced_low_0: the first worker keeps the embedding and as few layers as the budgets
//    allow (none when the rest fits); the others are balanced.
//  - sequential: fill each worker up to its budget, in order, leaving every later worker its
//    minimum (one layer; the last may hold only the head).
//  - layered: the article's get_device_map, exactly.
//  - explicit maps (Hugging Face module names, a bare device, {"": device}) are checked, not
//    changed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/byte_size.h"
#include "common/cluster_config.h"
#include "common/model_config.h"
#include "common/weight_sizes.h"
#include "nlohmann/json.hpp"

namespace lp {

// A GPU without a max_memory entry is assumed to have this much (an 80 GB H100 / A100); `plan`
// says so. A CPU worker without one is not limited (its host's RAM is not known here).
inline constexpr uint64_t kAssumedGpuBudget = 80 * kGiB;
inline constexpr uint64_t kUnlimitedBudget = UINT64_MAX;

enum class BudgetSource { kMaxMemory, kAssumedGpu, kUnlimitedCpu };

struct Stage {
  std::string worker;   // WorkerSpec::name
  std::string device;   // "cuda:N" / "cpu:N"
  std::string address;  // host:port
  int64_t begin = 0;    // decoder layers [begin, end); begin == end: no layers
  int64_t end = 0;
  bool embed = false;            // model.embed_tokens (the first stage)
  bool head = false;             // model.norm + lm_head (the last stage)
  uint64_t weight_bytes = 0;     // resident weights (a tied head's copy of the table included)
  uint64_t kv_bytes = 0;         // KV cache: Plan::kv_blocks blocks of its layers
  uint64_t workspace_bytes = 0;  // activations for limits.max_step_tokens (+ CUDA IPC ring)
  uint64_t reserve_bytes = 0;    // runtime reserve
  uint64_t budget_bytes = 0;     // kUnlimitedBudget when not limited
  BudgetSource budget_source = BudgetSource::kMaxMemory;
  // Time share: this stage's fraction of the pipeline's work per decode step, measured as the
  // weight bytes it reads per step (its layers, + norm and lm_head on the last stage; decode is
  // memory-bound, so time follows bytes read). The embedding is a row lookup: no share. In a
  // pipeline the slowest stage sets the pace, so balanced plans even these out.
  uint64_t read_bytes = 0;
  double time_share = 0;
  // KV blocks its budget holds after the rest (at most what limits.max_batch sequences of
  // limits.max_context can use).
  int64_t kv_blocks_fit = 0;

  int64_t num_layers() const { return end - begin; }
  uint64_t total_bytes() const { return weight_bytes + kv_bytes + workspace_bytes + reserve_bytes; }
};

struct Plan {
  std::vector<Stage> stages;  // pipeline order
  // KV-cache blocks of every worker (each for its own layers): limits.kv_blocks, else the
  // smallest stage's kv_blocks_fit; the coordinator hands them out.
  int64_t kv_blocks = 0;
  DeviceMapStrategy strategy = DeviceMapStrategy::kAuto;
  bool weights_from_headers = false;
  double slowest_over_mean = 1.0;  // the slowest stage's time share over the mean share
  std::vector<std::string> notes;  // assumptions the user should know about

  // The stage of the worker named `worker`, or nullptr.
  const Stage* Find(const std::string& worker) const;
};

absl::StatusOr<Plan> PlanCluster(const ClusterConfig& cluster, const ModelConfig& model,
                                 const WeightSizes& sizes);

// The plan as a Hugging Face device_map (module -> device), ready for from_pretrained: cuda:N
// as the integer N, cpu:N as "cpu".
nlohmann::json DeviceMapJson(const Plan& plan);

// The article's get_device_map(num_gpus, num_layers), translated exactly: module -> GPU index.
std::map<std::string, int> ArticleDeviceMap(int num_gpus, int num_layers);

}  // namespace lp
