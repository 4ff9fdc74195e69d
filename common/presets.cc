// Known model shapes (values from the published Hugging Face config.json of each model).
#include "common/presets.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace lp {
namespace {

ModelConfig Qwen3(int64_t hidden, int64_t inter, int64_t layers, int64_t heads, int64_t kv_heads,
                  int64_t head_dim, bool tied, int64_t max_pos) {
  ModelConfig c;
  c.arch = Architecture::kQwen3;
  c.architecture_name = "Qwen3ForCausalLM";
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.vocab_size = 151936;
  c.max_position_embeddings = max_pos;
  c.tie_word_embeddings = tied;
  c.qk_norm = true;
  c.rope_theta = 1000000.0;
  c.rms_norm_eps = 1e-6;
  return c;
}

ModelConfig Qwen2(int64_t hidden, int64_t inter, int64_t layers, int64_t heads, int64_t kv_heads,
                  int64_t vocab, bool tied, int64_t max_pos) {
  ModelConfig c;
  c.arch = Architecture::kQwen2;
  c.architecture_name = "Qwen2ForCausalLM";
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.vocab_size = vocab;
  c.max_position_embeddings = max_pos;
  c.tie_word_embeddings = tied;
  c.attention_bias = true;
  c.rope_theta = 1000000.0;
  c.rms_norm_eps = 1e-6;
  return c;
}

constexpr uint64_t kGiB = 1ull << 30;

// `base` as Qwen's 4-bit releases ship it: group 128, f16 for what stays unquantized.
ModelConfig Int4(ModelConfig base, QuantMethod method) {
  base.torch_dtype = "float16";
  base.quant.method = method;
  base.quant.group_size = 128;
  base.quant.sym = method == QuantMethod::kGptq;
  return base;
}

}  // namespace

const std::vector<Preset>& Presets() {
  static const std::vector<Preset> presets = {
      {"demo", "small Qwen3 (hidden 256, 6 layers) with the real vocabulary, for the demo",
       Qwen3(256, 768, 6, 4, 2, 64, true, 4096), 32ull << 20},
      {"demo-gptq", "the demo model in GPTQ Int4 (group 128), for tests",
       Int4(Qwen3(256, 768, 6, 4, 2, 64, true, 4096), QuantMethod::kGptq), 32ull << 20},
      {"qwen3-0.6b", "Qwen3-0.6B", Qwen3(1024, 3072, 28, 16, 8, 128, true, 40960), 2 * kGiB},
      {"qwen3-8b", "Qwen3-8B", Qwen3(4096, 12288, 36, 32, 8, 128, false, 40960), 4 * kGiB},
      {"qwen3-32b", "Qwen3-32B", Qwen3(5120, 25600, 64, 64, 8, 128, false, 40960), 4 * kGiB},
      {"qwen2-72b", "Qwen2-72B (the article's 80-layer shape)",
       Qwen2(8192, 29568, 80, 64, 8, 152064, false, 32768), 4 * kGiB},
      {"qwen2-0.5b", "Qwen2-0.5B", Qwen2(896, 4864, 24, 14, 2, 151936, true, 32768), 2 * kGiB},
      {"qwen3-8b-awq", "Qwen3-8B-AWQ (AWQ Int4, group 128)",
       Int4(Qwen3(4096, 12288, 36, 32, 8, 128, false, 40960), QuantMethod::kAwq), 4 * kGiB},
      {"qwen3-8b-gptq", "Qwen3-8B in GPTQ Int4 (group 128, symmetric)",
       Int4(Qwen3(4096, 12288, 36, 32, 8, 128, false, 40960), QuantMethod::kGptq), 4 * kGiB},
      // Qwen2-72B-Instruct-GPTQ-Int4 pads intermediate_size to 29696 (bf16: 29568).
      {"qwen2-72b-gptq", "Qwen2-72B-Instruct-GPTQ-Int4 (group 128, intermediate 29696)",
       Int4(Qwen2(8192, 29696, 80, 64, 8, 152064, false, 32768), QuantMethod::kGptq), 4 * kGiB},
  };
  return presets;
}

absl::StatusOr<Preset> FindPreset(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& p : Presets()) {
    if (p.name == name) return p;
    names.push_back(p.name);
  }
  return absl::NotFoundError(
      absl::StrCat("unknown preset '", name, "' (known: ", absl::StrJoin(names, ", "), ")"));
}

}  // namespace lp
