// The model hyper-parameters layerpipe needs, read from a Hugging Face `config.json`, and the
// sampling defaults of `generation_config.json`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace lp {

enum class Architecture { kQwen3, kQwen2 };

// config.json's `quantization_config`, for the 4-bit formats layerpipe loads (common/int4.h).
enum class QuantMethod { kNone, kGptq, kAwq };

struct QuantConfig {
  QuantMethod method = QuantMethod::kNone;
  int64_t bits = 4;
  int64_t group_size = 128;  // inputs per group; -1 in config.json: one group per input row
  bool sym = true;           // GPTQ: symmetric (zeros all 8); informational, zeros are stored
  bool desc_act = false;     // GPTQ act order: g_idx not monotonic
  bool gptq_v2 = false;      // GPTQ checkpoint_format gptq_v2: zeros stored exactly (v1: zero - 1)
  // Substrings of module names that stay unquantized (`<module>.weight`), as Hugging Face
  // matches them.
  std::vector<std::string> modules_to_not_convert;

  bool quantized() const { return method != QuantMethod::kNone; }
  // Inputs per group for a linear with `in` inputs.
  int64_t GroupSize(int64_t in) const { return group_size < 0 ? in : group_size; }
};

// "gptq", "awq" or "none".
const char* QuantMethodName(QuantMethod m);

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
  QuantConfig quant;

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

// Parses generation_config.json text (or config.json's, for its eos id); INVALID_ARGUMENT when
// it is not a JSON object or a key has the wrong type.
absl::StatusOr<GenerationConfig> ParseGenerationConfig(const std::string& json_text);
// Reads generation_config.json when present; otherwise defaults with config.json's eos id.
absl::StatusOr<GenerationConfig> LoadGenerationConfig(const std::string& model_dir);

}  // namespace lp
