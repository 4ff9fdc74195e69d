// Tensor names and shapes of the Qwen3 / Qwen2 checkpoint layout.
#include "common/model_layout.h"

#include "absl/strings/str_cat.h"

namespace lp {

std::string EmbedModule() { return "model.embed_tokens"; }
std::string LayerModule(int64_t layer) { return absl::StrCat("model.layers.", layer); }
std::string NormModule() { return "model.norm"; }
std::string HeadModule() { return "lm_head"; }

std::vector<ExpectedTensor> EmbedTensors(const ModelConfig& c) {
  return {{"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}}};
}

std::vector<ExpectedTensor> LayerTensors(const ModelConfig& c, int64_t layer) {
  const std::string p = LayerModule(layer) + ".";
  const int64_t h = c.hidden_size;
  std::vector<ExpectedTensor> t = {
      {p + "input_layernorm.weight", {h}},
      {p + "self_attn.q_proj.weight", {c.q_dim(), h}},
      {p + "self_attn.k_proj.weight", {c.kv_dim(), h}},
      {p + "self_attn.v_proj.weight", {c.kv_dim(), h}},
      {p + "self_attn.o_proj.weight", {h, c.q_dim()}},
      {p + "post_attention_layernorm.weight", {h}},
      {p + "mlp.gate_proj.weight", {c.intermediate_size, h}},
      {p + "mlp.up_proj.weight", {c.intermediate_size, h}},
      {p + "mlp.down_proj.weight", {h, c.intermediate_size}},
  };
  if (c.attention_bias) {
    t.push_back({p + "self_attn.q_proj.bias", {c.q_dim()}});
    t.push_back({p + "self_attn.k_proj.bias", {c.kv_dim()}});
    t.push_back({p + "self_attn.v_proj.bias", {c.kv_dim()}});
  }
  if (c.qk_norm) {
    t.push_back({p + "self_attn.q_norm.weight", {c.head_dim}});
    t.push_back({p + "self_attn.k_norm.weight", {c.head_dim}});
  }
  return t;
}

std::vector<ExpectedTensor> NormTensors(const ModelConfig& c) {
  return {{"model.norm.weight", {c.hidden_size}}};
}

std::vector<ExpectedTensor> HeadTensors(const ModelConfig& c) {
  if (c.tie_word_embeddings) return {};
  return {{"lm_head.weight", {c.vocab_size, c.hidden_size}}};
}

std::vector<ExpectedTensor> AllTensors(const ModelConfig& c) {
  std::vector<ExpectedTensor> all = EmbedTensors(c);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    auto t = LayerTensors(c, l);
    all.insert(all.end(), t.begin(), t.end());
  }
  for (auto& t : NormTensors(c)) all.push_back(t);
  for (auto& t : HeadTensors(c)) all.push_back(t);
  return all;
}

int64_t NumElements(const std::vector<ExpectedTensor>& tensors) {
  int64_t n = 0;
  for (const auto& t : tensors) {
    int64_t e = 1;
    for (int64_t d : t.shape) e *= d;
    n += e;
  }
  return n;
}

}  // namespace lp
