// How many bytes each placeable module's weights take: read from the safetensors headers when
// the checkpoint has its weights, else computed from config.json and torch_dtype (so `plan`
// works on a directory holding only config.json).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"

namespace lp {

struct ModuleSize {
  uint64_t elements = 0;  // parameters (a packed Int4 linear counts out x in)
  uint64_t bytes = 0;     // as stored in the checkpoint
};

struct WeightSizes {
  ModuleSize embed;                // model.embed_tokens
  std::vector<ModuleSize> layers;  // model.layers.N
  ModuleSize norm;                 // model.norm
  ModuleSize head;                 // lm_head; zero for a tied model (its head reads embed)
  bool from_headers = false;       // false: estimated from config.json
};

// Bytes per element of a config.json torch_dtype ("bfloat16", "float16", "float32").
absl::StatusOr<uint64_t> TorchDtypeSize(const std::string& torch_dtype);

// From the shapes config.json implies and its torch_dtype; no I/O.
absl::StatusOr<WeightSizes> EstimateWeightSizes(const ModelConfig& config);

// From the safetensors headers of `model_dir` when it holds model.safetensors or an index (each
// tensor checked for the shape config.json implies, and none that config.json does not imply),
// else EstimateWeightSizes.
absl::StatusOr<WeightSizes> ReadWeightSizes(const std::string& model_dir,
                                            const ModelConfig& config);

}  // namespace lp
