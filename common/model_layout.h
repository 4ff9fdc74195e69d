// The tensors a Qwen3 / Qwen2 checkpoint holds, by Hugging Face name and shape, grouped by the
// module a device_map places (`model.embed_tokens`, `model.layers.N`, `model.norm`, `lm_head`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/model_config.h"

namespace lp {

struct ExpectedTensor {
  std::string name;            // e.g. "model.layers.3.self_attn.q_proj.weight"
  std::vector<int64_t> shape;  // as stored: [out_features, in_features] for linear weights
};

// Module names in pipeline order.
std::string EmbedModule();               // "model.embed_tokens"
std::string LayerModule(int64_t layer);  // "model.layers.N"
std::string NormModule();                // "model.norm"
std::string HeadModule();                // "lm_head"

// The tensors of one module. `lm_head` of a tied model has none of its own (it reuses the
// embedding table), so HeadTensors is empty for it.
std::vector<ExpectedTensor> EmbedTensors(const ModelConfig& c);
std::vector<ExpectedTensor> LayerTensors(const ModelConfig& c, int64_t layer);
std::vector<ExpectedTensor> NormTensors(const ModelConfig& c);
std::vector<ExpectedTensor> HeadTensors(const ModelConfig& c);
// Every tensor a complete checkpoint holds.
std::vector<ExpectedTensor> AllTensors(const ModelConfig& c);

// Element count of a module's parameters (tied lm_head counts the table it reads).
int64_t NumElements(const std::vector<ExpectedTensor>& tensors);

}  // namespace lp
