// The placements the user gives rather than asks for: an explicit device_map (Hugging Face
// module names or prefixes, a bare device, {"": device}) and the article's layered map. Both
// are checked, never changed: every module placed exactly once, each worker's modules
// contiguous, the workers in pipeline order, every worker used.
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model_layout.h"
#include "common/placement.h"
#include "common/placement_internal.h"

namespace lp::placement {
namespace {

// The placeable modules in pipeline order: embed, layers, norm, head.
std::vector<std::string> Leaves(int64_t num_layers) {
  std::vector<std::string> leaves = {EmbedModule()};
  for (int64_t l = 0; l < num_layers; ++l) leaves.push_back(LayerModule(l));
  leaves.push_back(NormModule());
  leaves.push_back(HeadModule());
  return leaves;
}

bool Covers(const std::string& key, const std::string& leaf) {
  return key.empty() || key == leaf ||
         (absl::StartsWith(leaf, key) && leaf.size() > key.size() && leaf[key.size()] == '.');
}

std::string Quoted(const DeviceMapEntry& e) {
  return absl::StrCat("device_map[\"", e.module, "\"] (line ", e.line, ")");
}

// Why an entry that covers no module is wrong; empty for entries to ignore.
std::string UselessEntryError(const DeviceMapEntry& e, const std::vector<std::string>& leaves,
                              int64_t num_layers) {
  // Recent transformers list the rotary embedding, which holds no weights, in their maps.
  if (Covers("model.rotary_emb", e.module)) return "";
  for (const std::string& leaf : leaves) {
    if (absl::StartsWith(e.module, leaf + ".")) {
      return absl::StrCat(Quoted(e), ": layerpipe places whole modules; put all of ", leaf,
                          " on one device");
    }
  }
  int64_t layer = -1;
  if (absl::StartsWith(e.module, "model.layers.") &&
      absl::SimpleAtoi(e.module.substr(13), &layer)) {
    return absl::StrCat(Quoted(e), ": the model has ", num_layers, " layers (model.layers.0 to ",
                        "model.layers.", num_layers - 1, ")");
  }
  return absl::StrCat(Quoted(e), ": unknown module; modules are model.embed_tokens, ",
                      "model.layers.0 to model.layers.", num_layers - 1,
                      ", model.norm, lm_head, or a prefix of them such as \"model\" or \"\"");
}

// The worker of every leaf, from the explicit entries.
absl::StatusOr<std::vector<int>> OwnerOfLeaves(const Context& ctx,
                                               const std::vector<std::string>& leaves) {
  const auto& entries = ctx.cluster.device_map.entries;
  std::vector<int> owner(leaves.size(), -1);
  std::vector<const DeviceMapEntry*> by(leaves.size(), nullptr);
  for (const DeviceMapEntry& e : entries) {
    bool used = false;
    for (size_t i = 0; i < leaves.size(); ++i) {
      if (!Covers(e.module, leaves[i])) continue;
      used = true;
      if (by[i] != nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(leaves[i], " is placed twice: by ",
                                                       Quoted(*by[i]), " and by ", Quoted(e)));
      }
      by[i] = &e;
      owner[i] = e.worker;
    }
    if (!used) {
      const std::string error = UselessEntryError(e, leaves, ctx.num_layers());
      if (!error.empty()) return absl::InvalidArgumentError(error);
    }
  }
  std::vector<std::string> missing;
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (owner[i] < 0) missing.push_back(leaves[i]);
  }
  if (!missing.empty()) {
    if (missing.size() > 8) {
      missing.resize(8);
      missing.push_back("...");
    }
    return absl::InvalidArgumentError(absl::StrCat("device_map places ",
                                                   absl::StrJoin(missing, ", "),
                                                   " nowhere: every module needs a device"));
  }
  return owner;
}

// From the worker of each leaf (pipeline order) to cuts, refusing what a pipeline cannot run.
absl::StatusOr<Cuts> CutsFromOwners(const Context& ctx, const std::vector<std::string>& leaves,
                                    const std::vector<int>& owner, const std::string& form) {
  const size_t n = leaves.size();
  const int norm = owner[n - 2], head = owner[n - 1];
  if (norm != head) {
    return absl::InvalidArgumentError(absl::StrCat(
        form, ": model.norm is on ", WorkerLabel(ctx, norm), " but lm_head on ",
        WorkerLabel(ctx, head), "; the last stage holds both: put them on one device"));
  }
  std::set<int> seen = {owner[0]};
  for (size_t i = 1; i < n - 1; ++i) {  // model.norm is checked above
    const int w = owner[i], prev = owner[i - 1];
    if (w == prev) continue;
    if (seen.count(w)) {
      return absl::InvalidArgumentError(absl::StrCat(
          form, ": ", leaves[i], " goes back to ", WorkerLabel(ctx, w), " after ", leaves[i - 1],
          " went to ", WorkerLabel(ctx, prev),
          "; a pipeline needs each device's modules contiguous (the hidden state passes every "
          "worker once)"));
    }
    if (w < prev) {
      return absl::InvalidArgumentError(
          absl::StrCat(form, ": ", leaves[i], " is on ", WorkerLabel(ctx, w), " but the earlier ",
                       leaves[i - 1], " on ", WorkerLabel(ctx, prev),
                       ", which comes after it in `workers`; list the workers in pipeline order"));
    }
    seen.insert(w);
  }
  seen.insert(head);
  for (int d = 0; d < ctx.num_workers(); ++d) {
    if (!seen.count(d)) {
      return absl::InvalidArgumentError(
          absl::StrCat(form, " gives ", WorkerLabel(ctx, d),
                       " no module: remove it from `workers` or give it layers"));
    }
  }
  Cuts cuts(size_t(ctx.num_workers()) + 1, 0);
  for (int d = 0; d < ctx.num_workers(); ++d) {
    int64_t count = 0;
    for (size_t i = 1; i + 2 < n; ++i) count += owner[i] == d;
    cuts[d + 1] = cuts[d] + count;
  }
  return cuts;
}

}  // namespace

absl::StatusOr<Cuts> ExplicitCuts(const Context& ctx) {
  const std::vector<std::string> leaves = Leaves(ctx.num_layers());
  auto owner = OwnerOfLeaves(ctx, leaves);
  if (!owner.ok()) return owner.status();
  return CutsFromOwners(ctx, leaves, *owner, "device_map");
}

absl::StatusOr<Cuts> LayeredCuts(const Context& ctx) {
  const std::vector<std::string> leaves = Leaves(ctx.num_layers());
  const auto article = ArticleDeviceMap(ctx.num_workers(), int(ctx.num_layers()));
  std::vector<int> owner;
  for (const std::string& leaf : leaves) owner.push_back(article.at(leaf));
  auto cuts = CutsFromOwners(ctx, leaves, owner,
                             absl::StrCat("layered (the article's get_device_map(",
                                          ctx.num_workers(), ", ", ctx.num_layers(), "))"));
  if (cuts.ok()) return cuts;
  // The article's function rounds every device up to whole layers, so with many devices and
  // few layers it runs out of layers before the last devices.
  return absl::InvalidArgumentError(
      absl::StrCat(cuts.status().message(),
                   ". The article's function leaves devices empty for this shape: "
                   "use device_map: balanced, or fewer workers"));
}

}  // namespace lp::placement

namespace lp {

std::map<std::string, int> ArticleDeviceMap(int num_gpus, int num_layers) {
  // Python's `/` is true division; `used` stays an int. Comparing an int with a double is exact
  // in both languages for these magnitudes.
  const double per_gpu_layers = double(num_layers + 2) / double(num_gpus);
  std::map<std::string, int> device_map = {
      {"model.embed_tokens", 0}, {"model.norm", num_gpus - 1}, {"lm_head", num_gpus - 1}};
  int used = 1;
  int gpu_target = 0;
  for (int i = 0; i < num_layers; ++i) {
    if (used >= per_gpu_layers) {
      gpu_target += 1;
      used = gpu_target < num_gpus - 1 ? 0 : 1;
    }
    device_map[absl::StrCat("model.layers.", i)] = gpu_target;
    used += 1;
  }
  return device_map;
}

}  // namespace lp
