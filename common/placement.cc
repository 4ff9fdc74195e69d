// PlanCluster: budgets per worker, the strategy's split, the stages with their memory and time
// shares, and the plan as a Hugging Face device_map.
#include "common/placement.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/device.h"
#include "common/kv_pages.h"
#include "common/model_layout.h"
#include "common/placement_internal.h"
#include "common/status.h"

namespace lp {
namespace placement {

std::string WorkerLabel(const Context& ctx, int d) {
  const WorkerSpec& w = ctx.cluster.workers[d];
  return absl::StrCat(w.device, " (worker ", w.name, ")");
}

std::string StageContents(const Context& ctx, int d, int64_t begin, int64_t end) {
  std::vector<std::string> parts;
  if (d == 0) parts.push_back(EmbedModule());
  if (end > begin) parts.push_back(absl::StrCat("layers [", begin, ", ", end, ")"));
  if (ctx.last(d)) parts.push_back("model.norm + lm_head");
  return absl::StrJoin(parts, " + ");
}

std::string NeedVersusBudget(const Context& ctx, int d, int64_t begin, int64_t end) {
  const StageBytes b = ctx.Bytes(d, begin, end);
  return absl::StrCat("needs ", FormatBytes(b.total()), " (weights ", FormatBytes(b.weight),
                      ", KV cache ", FormatBytes(b.kv), " for one sequence of ",
                      ctx.cluster.limits.max_context, " tokens, workspace ",
                      FormatBytes(b.workspace), ", reserve ", FormatBytes(b.reserve), ") but has ",
                      FormatBytes(ctx.budgets[d]), " (", ctx.budget_notes[d], ")");
}

}  // namespace placement

namespace {

using placement::Context;
using placement::Cuts;

// A worker's budget: max_memory by worker name, else by device, else the default.
uint64_t BudgetOf(const ClusterConfig& cluster, const WorkerSpec& w, BudgetSource* source) {
  *source = BudgetSource::kMaxMemory;
  if (auto it = cluster.max_memory.find(w.name); it != cluster.max_memory.end()) return it->second;
  if (auto it = cluster.max_memory.find(w.device); it != cluster.max_memory.end()) {
    return it->second;
  }
  *source = IsCudaDevice(w.device) ? BudgetSource::kAssumedGpu : BudgetSource::kUnlimitedCpu;
  return IsCudaDevice(w.device) ? kAssumedGpuBudget : kUnlimitedBudget;
}

absl::Status CheckInputs(const ClusterConfig& cluster, const ModelConfig& model,
                         const WeightSizes& sizes) {
  if (int64_t(sizes.layers.size()) != model.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat("weight sizes cover ", sizes.layers.size(),
                                                   " layers, config.json has ", model.num_layers));
  }
  if (cluster.limits.max_context > model.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "limits.max_context ", cluster.limits.max_context,
        " exceeds the model's max_position_embeddings ", model.max_position_embeddings));
  }
  const bool strategy = cluster.device_map.strategy != DeviceMapStrategy::kExplicit &&
                        cluster.device_map.strategy != DeviceMapStrategy::kLayered;
  if (strategy && int64_t(cluster.workers.size()) - 1 > model.num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat(cluster.workers.size(), " workers for ", model.num_layers,
                     " layers: every worker but the last needs at least one layer"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Cuts> Split(const Context& ctx) {
  switch (ctx.cluster.device_map.strategy) {
    case DeviceMapStrategy::kAuto:
    case DeviceMapStrategy::kBalanced:
      return placement::BalancedCuts(ctx);
    case DeviceMapStrategy::kBalancedLow0:
      return placement::BalancedLow0Cuts(ctx);
    case DeviceMapStrategy::kSequential:
      return placement::SequentialCuts(ctx);
    case DeviceMapStrategy::kLayered:
      return placement::LayeredCuts(ctx);
    case DeviceMapStrategy::kExplicit:
      return placement::ExplicitCuts(ctx);
  }
  return absl::InternalError("unknown strategy");
}

// Notes on what the plan assumed, for the user.
std::vector<std::string> Notes(const ClusterConfig& cluster, const ModelConfig& model,
                               const Plan& plan) {
  std::vector<std::string> notes, assumed, unlimited;
  for (const Stage& s : plan.stages) {
    if (s.budget_source == BudgetSource::kAssumedGpu) assumed.push_back(s.worker);
    if (s.budget_source == BudgetSource::kUnlimitedCpu) unlimited.push_back(s.worker);
  }
  if (!plan.weights_from_headers) {
    notes.push_back(absl::StrCat(
        "weights estimated from config.json (",
        model.quant.quantized()
            ? absl::StrCat(QuantMethodName(model.quant.method), " 4-bit packed linears, ")
            : "",
        model.torch_dtype, "): no safetensors in ", cluster.model_path));
  }
  if (!assumed.empty()) {
    notes.push_back(absl::StrCat("no max_memory for ", absl::StrJoin(assumed, ", "),
                                 ": each GPU assumed to have ", FormatBytes(kAssumedGpuBudget)));
  }
  if (!unlimited.empty()) {
    notes.push_back(absl::StrCat("no max_memory for CPU worker(s) ", absl::StrJoin(unlimited, ", "),
                                 ": their memory is not limited"));
  }
  return notes;
}

}  // namespace

const Stage* Plan::Find(const std::string& worker) const {
  for (const Stage& s : stages) {
    if (s.worker == worker) return &s;
  }
  return nullptr;
}

// Every worker's KV cache: the blocks each budget holds after weights, workspace and reserve
// (the placement left room for one sequence at the context limit), no more than max_batch
// sequences of max_context can use; every worker gets the smallest stage's count (or
// limits.kv_blocks), since a block holds the same positions on every stage.
absl::Status SizeKvCaches(const Context& ctx, Plan* plan) {
  const ClusterLimits& limits = ctx.cluster.limits;
  const int64_t most = limits.max_batch * KvBlocksFor(limits.max_context, limits.kv_block_tokens);
  int64_t fewest = most;
  std::vector<int64_t> room(size_t(ctx.num_workers()), INT64_MAX);  // blocks each budget holds
  for (int d = 0; d < ctx.num_workers(); ++d) {
    Stage& s = plan->stages[size_t(d)];
    const uint64_t block = ctx.cost.KvBlockBytes(ctx.cuda(d), s.begin, s.end);
    const uint64_t fixed = s.weight_bytes + s.workspace_bytes + s.reserve_bytes;
    if (block > 0 && s.budget_bytes != kUnlimitedBudget) {
      room[size_t(d)] = int64_t((s.budget_bytes - fixed) / block);
    }
    s.kv_blocks_fit = std::min(most, room[size_t(d)]);
    fewest = std::min(fewest, s.kv_blocks_fit);
  }
  plan->kv_blocks = limits.kv_blocks > 0 ? limits.kv_blocks : fewest;
  for (int d = 0; d < ctx.num_workers(); ++d) {
    Stage& s = plan->stages[size_t(d)];
    if (plan->kv_blocks > room[size_t(d)]) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "limits.kv_blocks ", limits.kv_blocks, " is more than ", placement::WorkerLabel(ctx, d),
          " holds after its weights, workspace and reserve (", room[size_t(d)], " blocks within ",
          FormatBytes(s.budget_bytes), ")"));
    }
    s.kv_bytes = uint64_t(plan->kv_blocks) * ctx.cost.KvBlockBytes(ctx.cuda(d), s.begin, s.end);
  }
  return absl::OkStatus();
}

absl::StatusOr<Plan> PlanCluster(const ClusterConfig& cluster, const ModelConfig& model,
                                 const WeightSizes& sizes) {
  RETURN_IF_ERROR(CheckInputs(cluster, model, sizes));
  Context ctx{cluster, model, StageCost(model, sizes, cluster.limits), {}, {}};
  std::vector<BudgetSource> sources;
  for (const WorkerSpec& w : cluster.workers) {
    BudgetSource source;
    ctx.budgets.push_back(BudgetOf(cluster, w, &source));
    sources.push_back(source);
    ctx.budget_notes.push_back(source == BudgetSource::kMaxMemory    ? "max_memory"
                               : source == BudgetSource::kAssumedGpu ? "assumed: no max_memory"
                                                                     : "unlimited");
  }
  ASSIGN_OR_RETURN(Cuts cuts, Split(ctx));
  Plan plan;
  plan.strategy = cluster.device_map.strategy;
  plan.weights_from_headers = sizes.from_headers;
  uint64_t total_read = 0, max_read = 0;
  for (int d = 0; d < ctx.num_workers(); ++d) {
    const WorkerSpec& w = cluster.workers[d];
    const StageBytes b = ctx.Bytes(d, cuts[d], cuts[d + 1]);
    if (b.total() > ctx.budgets[d]) {  // given forms are checked here; strategies fit already
      return absl::ResourceExhaustedError(
          absl::StrCat(placement::WorkerLabel(ctx, d), " cannot hold ",
                       placement::StageContents(ctx, d, cuts[d], cuts[d + 1]), ": it ",
                       placement::NeedVersusBudget(ctx, d, cuts[d], cuts[d + 1])));
    }
    Stage s{w.name,      w.device,
            w.address,   cuts[d],
            cuts[d + 1], d == 0,
            ctx.last(d), b.weight,
            b.kv,        b.workspace,
            b.reserve,   ctx.budgets[d],
            sources[d],  ctx.Time(d, cuts[d], cuts[d + 1]),
            0.0};
    total_read += s.read_bytes;
    max_read = std::max(max_read, s.read_bytes);
    plan.stages.push_back(s);
  }
  for (Stage& s : plan.stages) s.time_share = total_read ? double(s.read_bytes) / total_read : 0;
  RETURN_IF_ERROR(SizeKvCaches(ctx, &plan));
  plan.slowest_over_mean =
      total_read ? double(max_read) * double(plan.stages.size()) / double(total_read) : 1.0;
  plan.notes = Notes(cluster, model, plan);
  for (const Stage& s : plan.stages) {
    if (s.read_bytes == max_read && plan.slowest_over_mean > 1.05 && s.num_layers() <= 1) {
      plan.notes.push_back(absl::StrCat(
          "the slowest stage (", s.worker, ") holds ", s.head ? "lm_head" : "one layer",
          s.head && s.num_layers() == 1 ? " and one layer" : "",
          ": it cannot be split finer (layerpipe places whole modules)"));
      break;
    }
  }
  return plan;
}

nlohmann::json DeviceMapJson(const Plan& plan) {
  nlohmann::json map = nlohmann::json::object();
  for (const Stage& s : plan.stages) {
    nlohmann::json device = "cpu";
    if (auto d = Device::Parse(s.device); d.ok() && d->cuda()) device = d->index;
    if (s.embed) map[EmbedModule()] = device;
    for (int64_t l = s.begin; l < s.end; ++l) map[LayerModule(l)] = device;
    if (s.head) {
      map[NormModule()] = device;
      map[HeadModule()] = device;
    }
  }
  return map;
}

}  // namespace lp
