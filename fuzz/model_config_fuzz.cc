// Fuzz target: config.json (ParseModelConfig) and generation_config.json
// (ParseGenerationConfig), both on every input. A config.json it accepts must give the model
// positive dimensions that the layout code can multiply without overflow.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (64 << 10)) return 0;  // a config is a few KB of JSON
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)lp::ParseGenerationConfig(text);
  auto config = lp::ParseModelConfig(text);
  if (!config.ok()) return 0;
  const lp::ModelConfig& c = *config;
  if (c.hidden_size <= 0 || c.intermediate_size <= 0 || c.num_layers <= 0 || c.num_heads <= 0 ||
      c.num_kv_heads <= 0 || c.head_dim <= 0 || c.vocab_size <= 0) {
    std::abort();
  }
  if (c.q_dim() <= 0 || c.kv_dim() <= 0) std::abort();
  return 0;
}
