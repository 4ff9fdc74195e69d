// Model shapes layerpipe knows by name: real Qwen3 / Qwen2 configurations for random-weight
// benchmarks, and the small demo model.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"

namespace lp {

struct Preset {
  std::string name;
  std::string description;
  ModelConfig config;
  uint64_t shard_bytes;  // init-model's default shard size for this preset
};

const std::vector<Preset>& Presets();
absl::StatusOr<Preset> FindPreset(const std::string& name);

}  // namespace lp
