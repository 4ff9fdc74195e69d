// The model hyper-parameters layerpipe needs, read from a Hugging Face `config.json`, and the
// sampling defaults of `generation_config.json`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace lp {

enum class Architecture { kQwen3, kQwen2 };

struct ModelConfig {
  Architecture arch = Architecture::kQwen3;
  std::string architecture_name;  // as in config.json, e.g. "Qwen3ForCausalLM"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // Qwen3: its own field; Qwen2: hidden_size / num_heads
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (Qwen2 always has them)
  bool qk_norm = false;         // per-head RMSNorm on q and k (Qwen3)
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  std::string torch_dtype = "bfloat16";

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
};

// Parses config.json text; refuses any architecture other than Qwen3 / Qwen2 by name.
absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text);
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir);
// config.json text for `config` (what init-model writes).
std::string ModelConfigToJson(const ModelConfig& config);

struct GenerationConfig {
  std::vector<int64_t> eos_token_ids;  // stop ids; eos_token_id may be a list
  int64_t bos_token_id = -1;
  int64_t pad_token_id = -1;
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
};

// Reads generation_config.json when present; otherwise defaults with config.json's eos id.
absl::StatusOr<GenerationConfig> LoadGenerationConfig(const std::string& model_dir);

}  // namespace lp
