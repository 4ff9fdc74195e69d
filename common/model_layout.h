// The tensors a Qwen3 / Qwen2 checkpoint holds, by Hugging Face name and shape, grouped by the
// module a device_map places (`model.embed_tokens`, `model.layers.N`, `model.norm`, `lm_head`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/model_config.h"

namespace lp {

struct ExpectedTensor {
  std::string name;            // e.g. "model.layers.3.self_attn.q_proj.weight"
  std::vector<int64_t> shape;  // as stored: [out_features, in_features] for linear weights
  std::optional<DType> dtype;  // required dtype (packed Int4 parts); unset: BF16, F16 or F32
  int64_t params = -1;         // model parameters it holds; -1: its element count (packed
                               // codes hold out x in, their scales and zeros none)
};

// A linear layer of a decoder layer, W[out, in]: stored dense as `<name>.weight`, or packed in
// 4 bits (`<name>.qweight`, ...; common/int4.h) when the checkpoint is quantized and the name
// is not in modules_to_not_convert.
struct LinearSpec {
  std::string name;  // e.g. "model.layers.3.self_attn.q_proj"
  int64_t out = 0;
  int64_t in = 0;
  bool int4 = false;
};

// The seven linears of decoder layer `layer`, in the order q, k, v, o, gate, up, down.
std::vector<LinearSpec> LayerLinears(const ModelConfig& c, int64_t layer);

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

// A module's parameter count (tied lm_head counts the table it reads).
int64_t NumElements(const std::vector<ExpectedTensor>& tensors);

}  // namespace lp
