// Module weight sizes from safetensors headers or from config.json.
#include "common/weight_sizes.h"

#include <filesystem>
#include <functional>

#include "absl/strings/str_cat.h"
#include "common/checkpoint.h"
#include "common/model_layout.h"
#include "common/status.h"

namespace lp {
namespace {

// Fills every module of `out` through `size_of` (one module's tensors -> its size).
absl::Status FillModules(
    const ModelConfig& c,
    const std::function<absl::StatusOr<ModuleSize>(const std::vector<ExpectedTensor>&)>& size_of,
    WeightSizes* out) {
  ASSIGN_OR_RETURN(out->embed, size_of(EmbedTensors(c)));
  out->layers.clear();
  for (int64_t l = 0; l < c.num_layers; ++l) {
    ASSIGN_OR_RETURN(ModuleSize s, size_of(LayerTensors(c, l)));
    out->layers.push_back(s);
  }
  ASSIGN_OR_RETURN(out->norm, size_of(NormTensors(c)));
  ASSIGN_OR_RETURN(out->head, size_of(HeadTensors(c)));  // empty when tied
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<uint64_t> TorchDtypeSize(const std::string& torch_dtype) {
  if (torch_dtype == "bfloat16" || torch_dtype == "float16") return 2;
  if (torch_dtype == "float32") return 4;
  return absl::InvalidArgumentError(absl::StrCat("config.json: torch_dtype '", torch_dtype,
                                                 "' is not bfloat16, float16 or float32"));
}

absl::StatusOr<WeightSizes> EstimateWeightSizes(const ModelConfig& config) {
  ASSIGN_OR_RETURN(uint64_t element, TorchDtypeSize(config.torch_dtype));
  WeightSizes sizes;
  auto size_of = [&](const std::vector<ExpectedTensor>& ts) -> absl::StatusOr<ModuleSize> {
    ModuleSize s{uint64_t(NumElements(ts)), 0};
    for (const ExpectedTensor& t : ts) {  // packed Int4 parts have their own dtypes
      uint64_t n = 1;
      for (int64_t d : t.shape) n *= uint64_t(d);
      s.bytes += n * (t.dtype ? DTypeSize(*t.dtype) : element);
    }
    return s;
  };
  RETURN_IF_ERROR(FillModules(config, size_of, &sizes));
  return sizes;
}

absl::StatusOr<WeightSizes> ReadWeightSizes(const std::string& model_dir,
                                            const ModelConfig& config) {
  namespace fs = std::filesystem;
  if (!fs::exists(fs::path(model_dir) / "model.safetensors") &&
      !fs::exists(fs::path(model_dir) / "model.safetensors.index.json")) {
    return EstimateWeightSizes(config);
  }
  ASSIGN_OR_RETURN(auto ckpt, Checkpoint::Open(model_dir));
  WeightSizes sizes;
  sizes.from_headers = true;
  auto size_of = [&](const std::vector<ExpectedTensor>& ts) -> absl::StatusOr<ModuleSize> {
    ModuleSize s;
    for (const ExpectedTensor& t : ts) {
      ASSIGN_OR_RETURN(TensorView view, ckpt->Get(t));  // maps the shard, reads no tensor data
      s.elements += uint64_t(NumElements({t}));
      s.bytes += view.info->num_bytes();
    }
    return s;
  };
  RETURN_IF_ERROR(FillModules(config, size_of, &sizes));
  // The same completeness check as check-model's: plan, coordinator and workers all come here.
  RETURN_IF_ERROR(ckpt->CheckNothingUnexpected().status());
  return sizes;
}

}  // namespace lp
