// Tensor names and shapes of the Qwen3 / Qwen2 checkpoint layout.
#include "common/model_layout.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/int4.h"

namespace lp {

std::string EmbedModule() { return "model.embed_tokens"; }
std::string LayerModule(int64_t layer) { return absl::StrCat("model.layers.", layer); }
std::string NormModule() { return "model.norm"; }
std::string HeadModule() { return "lm_head"; }

std::vector<ExpectedTensor> EmbedTensors(const ModelConfig& c) {
  return {{"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}}};
}

std::vector<LinearSpec> LayerLinears(const ModelConfig& c, int64_t layer) {
  const std::string p = LayerModule(layer) + ".";
  const int64_t h = c.hidden_size;
  std::vector<LinearSpec> linears = {
      {p + "self_attn.q_proj", c.q_dim(), h},        {p + "self_attn.k_proj", c.kv_dim(), h},
      {p + "self_attn.v_proj", c.kv_dim(), h},       {p + "self_attn.o_proj", h, c.q_dim()},
      {p + "mlp.gate_proj", c.intermediate_size, h}, {p + "mlp.up_proj", c.intermediate_size, h},
      {p + "mlp.down_proj", h, c.intermediate_size},
  };
  for (LinearSpec& l : linears) {
    l.int4 = c.quant.quantized();
    for (const std::string& keep : c.quant.modules_to_not_convert) {
      if (absl::StrContains(l.name, keep)) l.int4 = false;
    }
  }
  return linears;
}

std::vector<ExpectedTensor> LayerTensors(const ModelConfig& c, int64_t layer) {
  const std::string p = LayerModule(layer) + ".";
  const int64_t h = c.hidden_size;
  std::vector<ExpectedTensor> t = {
      {p + "input_layernorm.weight", {h}},
      {p + "post_attention_layernorm.weight", {h}},
  };
  for (const LinearSpec& l : LayerLinears(c, layer)) {
    if (l.int4) {
      for (ExpectedTensor& packed : Int4Tensors(c.quant, l)) t.push_back(std::move(packed));
    } else {
      t.push_back({l.name + ".weight", {l.out, l.in}});
    }
  }
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
    n += t.params >= 0 ? t.params : e;
  }
  return n;
}

}  // namespace lp
