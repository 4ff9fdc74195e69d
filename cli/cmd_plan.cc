// `layerpipe plan CLUSTER.yaml [--json]`: reads the cluster file and config.json (and the
// safetensors headers when present; no tensor data, no GPU) and prints which worker holds
// which layers, what each needs against its budget, and each stage's share of the work.
#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/util.h"
#include "common/cluster_config.h"
#include "common/placement.h"
#include "common/plan_loader.h"

namespace lp::cli {
namespace {

using json = nlohmann::json;

std::string Modules(const Stage& s) {
  std::vector<std::string> m;
  if (s.embed) m.push_back("embed_tokens");
  if (s.head) m.push_back("norm, lm_head");
  return m.empty() ? "-" : absl::StrJoin(m, ", ");
}

std::string Budget(const Stage& s) {
  if (s.budget_source == BudgetSource::kUnlimitedCpu) return "unlimited";
  return absl::StrCat(FormatBytes(s.budget_bytes),
                      s.budget_source == BudgetSource::kAssumedGpu ? "*" : "");
}

std::string Percent(double fraction) { return absl::StrFormat("%.1f%%", 100.0 * fraction); }

// Prints rows with every column padded to its widest cell; numbers right-aligned.
void PrintTable(const std::vector<std::vector<std::string>>& rows,
                const std::vector<bool>& right_aligned) {
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      const std::string pad(width[c] - row[c].size(), ' ');
      line += right_aligned[c] ? pad + row[c] : row[c] + (c + 1 < row.size() ? pad : "");
      if (c + 1 < row.size()) line += "  ";
    }
    std::printf("%s\n", line.c_str());
  }
}

void PrintText(const ClusterConfig& cluster, const ModelConfig& model, const Plan& plan) {
  std::printf("model       %s\n", cluster.model_path.c_str());
  const std::string quant = model.quant.quantized()
                                ? absl::StrCat(QuantMethodName(model.quant.method), " int4 (group ",
                                               model.quant.group_size, ") + ")
                                : "";
  std::printf("            %s, %lld layers, hidden %lld, %s%s, weights from %s\n",
              model.architecture_name.c_str(), (long long)model.num_layers,
              (long long)model.hidden_size, quant.c_str(), model.torch_dtype.c_str(),
              plan.weights_from_headers ? "safetensors headers" : "config.json (estimated)");
  std::printf("device_map  %s\n", StrategyName(plan.strategy).c_str());
  std::printf("limits      max_batch %lld, max_context %lld, max_step_tokens %lld\n",
              (long long)cluster.limits.max_batch, (long long)cluster.limits.max_context,
              (long long)cluster.limits.max_step_tokens);
  const int64_t bt = cluster.limits.kv_block_tokens;
  std::printf(
      "KV cache    %lld blocks of %lld tokens on every worker: %lld tokens, %lld sequences "
      "at max_context%s\n\n",
      (long long)plan.kv_blocks, (long long)bt, (long long)(plan.kv_blocks * bt),
      (long long)(plan.kv_blocks / KvBlocksFor(cluster.limits.max_context, bt)),
      cluster.limits.kv_blocks > 0 ? " (limits.kv_blocks)" : " (the smallest stage's)");
  std::vector<std::vector<std::string>> rows = {
      {"worker", "device", "address", "layers", "n", "also", "weights", "KV cache", "KV fits",
       "workspace", "reserve", "total", "budget", "used", "time", "input by"}};
  for (size_t i = 0; i < plan.stages.size(); ++i) {
    const Stage& s = plan.stages[i];
    const bool limited = s.budget_source != BudgetSource::kUnlimitedCpu;
    rows.push_back({s.worker, s.device, s.address,
                    s.num_layers() ? absl::StrCat("[", s.begin, ", ", s.end, ")") : "-",
                    absl::StrCat(s.num_layers()), Modules(s), FormatBytes(s.weight_bytes),
                    FormatBytes(s.kv_bytes), absl::StrCat(s.kv_blocks_fit, " x ", bt),
                    FormatBytes(s.workspace_bytes), FormatBytes(s.reserve_bytes),
                    FormatBytes(s.total_bytes()), Budget(s),
                    limited ? Percent(double(s.total_bytes()) / double(s.budget_bytes)) : "-",
                    Percent(s.time_share), PlannedTransport(cluster, i)});
  }
  PrintTable(rows, {false, false, false, false, true, false, true, true, true, true, true, true,
                    true, true, true, false});
  // A decode step is memory-bound: a stage's time follows the weight bytes it reads.
  std::printf(
      "\nslowest stage: %.3fx the mean time (time = the stage's share of the weight bytes read\n"
      "per decode step; the pipeline runs at the pace of its slowest stage)\n",
      plan.slowest_over_mean);
  for (const Stage& s : plan.stages) {
    if (s.budget_source == BudgetSource::kAssumedGpu) {
      std::printf("* assumed budget: set max_memory for the real one\n");
      break;
    }
  }
  for (const std::string& note : plan.notes) std::printf("note: %s\n", note.c_str());
}

json PlanJson(const ClusterConfig& cluster, const Plan& plan) {
  json stages = json::array();
  for (size_t i = 0; i < plan.stages.size(); ++i) {
    const Stage& s = plan.stages[i];
    const bool limited = s.budget_source != BudgetSource::kUnlimitedCpu;
    stages.push_back({{"worker", s.worker},
                      {"device", s.device},
                      {"address", s.address},
                      {"layers", {s.begin, s.end}},
                      {"embed", s.embed},
                      {"head", s.head},
                      {"weight_bytes", s.weight_bytes},
                      {"kv_bytes", s.kv_bytes},
                      {"kv_blocks_fit", s.kv_blocks_fit},
                      {"workspace_bytes", s.workspace_bytes},
                      {"reserve_bytes", s.reserve_bytes},
                      {"total_bytes", s.total_bytes()},
                      {"budget_bytes", limited ? json(s.budget_bytes) : json(nullptr)},
                      {"budget_assumed", s.budget_source == BudgetSource::kAssumedGpu},
                      {"read_bytes", s.read_bytes},
                      {"time_share", s.time_share},
                      {"transport", PlannedTransport(cluster, i)}});
  }
  return {{"model", cluster.model_path},
          {"strategy", StrategyName(plan.strategy)},
          {"limits",
           {{"max_batch", cluster.limits.max_batch},
            {"max_context", cluster.limits.max_context},
            {"max_step_tokens", cluster.limits.max_step_tokens},
            {"kv_block_tokens", cluster.limits.kv_block_tokens}}},
          {"kv_blocks", plan.kv_blocks},
          {"weights_from", plan.weights_from_headers ? "safetensors" : "config.json"},
          {"device_map", DeviceMapJson(plan)},
          {"stages", stages},
          {"slowest_over_mean", plan.slowest_over_mean},
          {"notes", plan.notes}};
}

}  // namespace

void AddPlanCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "plan",
      "show which worker holds which layers, with memory against budget (needs only "
      "the model's config.json)");
  auto path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("CLUSTER", *path, "cluster file (YAML)")->required();
  cmd->add_flag("--json", *as_json,
                "print {\"device_map\": Hugging Face map, \"stages\": [...], ...} instead");
  cmd->callback([path, as_json] {
    auto cluster = LoadClusterConfig(*path);
    if (!cluster.ok()) Fail(cluster.status());
    auto loaded = LoadPlan(*cluster);
    if (!loaded.ok()) Fail(loaded.status());
    if (*as_json) {
      std::printf("%s\n", PlanJson(*cluster, loaded->plan).dump(2).c_str());
    } else {
      PrintText(*cluster, loaded->model, loaded->plan);
    }
  });
}

}  // namespace lp::cli
