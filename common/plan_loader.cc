// Reading the model's config and weight sizes, then planning.
#include "common/plan_loader.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace lp {

namespace {

// A model.path without config.json: say which key, resolved from where, and that nothing is
// downloaded (a "Qwen/Qwen3-8B" Hub id is a relative path to us).
absl::Status CheckModelPath(const ClusterConfig& cluster) {
  namespace fs = std::filesystem;
  if (fs::exists(fs::path(cluster.model_path) / "config.json")) return absl::OkStatus();
  const std::string& written = cluster.model_path_written;
  std::string message = absl::StrCat("model.path '", written, "'");
  if (fs::path(written).is_relative()) {
    absl::StrAppend(&message, " (relative to the cluster file's folder ", cluster.base_dir, ")");
  }
  absl::StrAppend(
      &message, " is ", cluster.model_path, ", which ",
      fs::is_directory(cluster.model_path) ? "has no config.json" : "is not a directory");
  const size_t slash = written.find('/');
  const bool hub_id = !written.empty() && written[0] != '/' && written[0] != '.' &&
                      slash != std::string::npos &&
                      written.find('/', slash + 1) == std::string::npos;
  if (hub_id) {
    absl::StrAppend(&message,
                    ". It looks like a Hugging Face Hub id: layerpipe does not download "
                    "models; fetch it first (e.g. `huggingface-cli download ",
                    written, " --local-dir DIR`) and set model.path to DIR");
  }
  return absl::NotFoundError(message);
}

}  // namespace

absl::StatusOr<LoadedPlan> LoadPlan(const ClusterConfig& cluster) {
  RETURN_IF_ERROR(CheckModelPath(cluster));
  LoadedPlan loaded;
  ASSIGN_OR_RETURN(loaded.model, LoadModelConfig(cluster.model_path));
  ASSIGN_OR_RETURN(loaded.sizes, ReadWeightSizes(cluster.model_path, loaded.model));
  ASSIGN_OR_RETURN(loaded.plan, PlanCluster(cluster, loaded.model, loaded.sizes));
  return loaded;
}

}  // namespace lp
