// Reading Hugging Face config.json / generation_config.json.
#include "common/model_config.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace lp {
namespace {

using json = nlohmann::json;

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A model dimension's bound: the layout code multiplies up to three of them (layers x rows x
// columns) and the bytes of a value, which must not overflow 64 bits. Real models stay far
// below (Qwen2-72B: 29568 intermediate, 152064 vocabulary).
constexpr int64_t kMaxDimension = int64_t{1} << 20;

absl::StatusOr<int64_t> PositiveInt(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: '", key, "' must be a positive integer"));
  }
  if (it->get<int64_t>() > kMaxDimension) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: '", key, "' ", it->dump(), " is larger than ", kMaxDimension));
  }
  return it->get<int64_t>();
}

// An optional integer key (absent or null: `otherwise`). json::value would convert a float
// where an integer is meant, and one that no int64_t holds (1e31) is undefined behaviour.
absl::StatusOr<int64_t> IntOr(const json& j, const char* key, int64_t otherwise, const char* file) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return otherwise;
  if (!it->is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat(file, "'", key, "' must be an integer"));
  }
  return it->get<int64_t>();
}

void IdsFrom(const json& j, std::vector<int64_t>* out) {
  if (j.is_number_integer()) out->push_back(j.get<int64_t>());
  if (j.is_array()) {
    for (const auto& v : j) {
      if (v.is_number_integer()) out->push_back(v.get<int64_t>());
    }
  }
}

absl::StatusOr<ModelConfig> ParseModelConfigJson(const json& j);

absl::Status QuantError(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: quantization_config: ", what));
}

// quantization_config: GPTQ or AWQ in 4 bits, in the layouts common/int4.h reads; anything
// else is refused here, before a tensor is read.
absl::StatusOr<QuantConfig> ParseQuantConfig(const json& q) {
  QuantConfig c;
  if (!q.is_object()) return QuantError("not an object");
  const std::string method = q.value("quant_method", std::string());
  if (method == "gptq") {
    c.method = QuantMethod::kGptq;
  } else if (method == "awq") {
    c.method = QuantMethod::kAwq;
  } else {
    return QuantError(absl::StrCat("quant_method '", method,
                                   "' is not supported (layerpipe loads gptq and awq)"));
  }
  constexpr const char* kQuant = "config.json: quantization_config: ";
  ASSIGN_OR_RETURN(c.bits, IntOr(q, "bits", c.bits, kQuant));
  ASSIGN_OR_RETURN(c.bits, IntOr(q, "w_bit", c.bits, kQuant));  // AutoAWQ's spelling
  if (c.bits != 4) {
    return QuantError(absl::StrCat("bits ", c.bits, " is not supported (only 4)"));
  }
  ASSIGN_OR_RETURN(c.group_size, IntOr(q, "group_size", c.group_size, kQuant));
  ASSIGN_OR_RETURN(c.group_size, IntOr(q, "q_group_size", c.group_size, kQuant));
  if (c.group_size != -1 && (c.group_size <= 0 || c.group_size % 8 != 0)) {
    return QuantError(
        absl::StrCat("group_size ", c.group_size, " must be -1 or a positive multiple of 8"));
  }
  if (c.method == QuantMethod::kGptq) {
    c.sym = q.value("sym", true);
    c.desc_act = q.value("desc_act", false);
    const std::string format = q.contains("checkpoint_format") && q["checkpoint_format"].is_string()
                                   ? q["checkpoint_format"].get<std::string>()
                                   : "gptq";
    if (format == "gptq_v2") {
      c.gptq_v2 = true;
    } else if (format != "gptq") {
      return QuantError(
          absl::StrCat("checkpoint_format '", format, "' is not supported (gptq or gptq_v2)"));
    }
  } else {
    std::string version = q.value("version", std::string("gemm"));
    for (char& ch : version) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    if (version != "gemm") {
      return QuantError(absl::StrCat("AWQ version '", version, "' is not supported (gemm)"));
    }
    if (!q.value("zero_point", true)) {
      return QuantError("AWQ zero_point false is not supported (the gemm layout stores zeros)");
    }
    c.sym = false;
  }
  if (q.contains("modules_to_not_convert") && !q["modules_to_not_convert"].is_null()) {
    const json& m = q["modules_to_not_convert"];
    if (!m.is_array()) return QuantError("modules_to_not_convert must be a list of names");
    for (const auto& name : m) {
      if (!name.is_string() || name.get<std::string>().empty()) {
        return QuantError("modules_to_not_convert must be a list of non-empty names");
      }
      c.modules_to_not_convert.push_back(name.get<std::string>());
    }
  }
  return c;
}

}  // namespace

const char* QuantMethodName(QuantMethod m) {
  switch (m) {
    case QuantMethod::kGptq:
      return "gptq";
    case QuantMethod::kAwq:
      return "awq";
    case QuantMethod::kNone:
      break;
  }
  return "none";
}

absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("config.json: not a JSON object");
  }
  try {
    return ParseModelConfigJson(j);
  } catch (const json::exception& e) {  // a key of the wrong type
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", e.what()));
  }
}

namespace {

absl::StatusOr<ModelConfig> ParseModelConfigJson(const json& j) {
  ModelConfig c;
  auto archs = j.find("architectures");
  if (archs == j.end() || !archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
    return absl::InvalidArgumentError("config.json: 'architectures' is missing");
  }
  c.architecture_name = (*archs)[0].get<std::string>();
  if (c.architecture_name == "Qwen3ForCausalLM") {
    c.arch = Architecture::kQwen3;
  } else if (c.architecture_name == "Qwen2ForCausalLM") {
    c.arch = Architecture::kQwen2;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json: architecture '", c.architecture_name,
        "' is not supported (layerpipe serves Qwen3ForCausalLM and Qwen2ForCausalLM)"));
  }
  auto get = [&](const char* key, int64_t* out) -> absl::Status {
    auto v = PositiveInt(j, key);
    if (!v.ok()) return v.status();
    *out = *v;
    return absl::OkStatus();
  };
  for (auto [key, field] : {std::pair{"hidden_size", &c.hidden_size},
                            {"intermediate_size", &c.intermediate_size},
                            {"num_hidden_layers", &c.num_layers},
                            {"num_attention_heads", &c.num_heads},
                            {"vocab_size", &c.vocab_size}}) {
    if (auto s = get(key, field); !s.ok()) return s;
  }
  ASSIGN_OR_RETURN(c.num_kv_heads, IntOr(j, "num_key_value_heads", c.num_heads, "config.json: "));
  if (c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0) {
    return absl::InvalidArgumentError(
        "config.json: num_attention_heads must be a multiple of num_key_value_heads");
  }
  if (j.contains("head_dim") && j["head_dim"].is_number_integer()) {
    c.head_dim = j["head_dim"].get<int64_t>();
  } else {
    if (c.hidden_size % c.num_heads != 0) {
      return absl::InvalidArgumentError(
          "config.json: hidden_size is not a multiple of num_attention_heads and no head_dim");
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim <= 0 || c.head_dim % 2 != 0 || c.head_dim > kMaxDimension) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json: head_dim must be positive, even (RoPE) and at most ", kMaxDimension));
  }
  ASSIGN_OR_RETURN(c.max_position_embeddings,
                   IntOr(j, "max_position_embeddings", 32768, "config.json: "));
  c.tie_word_embeddings = j.value("tie_word_embeddings", false);
  c.rope_theta = j.value("rope_theta", 10000.0);
  c.rms_norm_eps = j.value("rms_norm_eps", 1e-6);
  if (j.contains("torch_dtype") && j["torch_dtype"].is_string()) {
    c.torch_dtype = j["torch_dtype"].get<std::string>();
  } else if (j.contains("dtype") && j["dtype"].is_string()) {
    c.torch_dtype = j["dtype"].get<std::string>();
  }
  if (c.arch == Architecture::kQwen3) {
    c.attention_bias = j.value("attention_bias", false);
    c.qk_norm = true;
  } else {
    c.attention_bias = true;
    c.qk_norm = false;
  }
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    return absl::UnimplementedError("config.json: rope_scaling is not supported yet");
  }
  if (j.contains("quantization_config") && !j["quantization_config"].is_null()) {
    auto quant = ParseQuantConfig(j["quantization_config"]);
    if (!quant.ok()) return quant.status();
    c.quant = *quant;
    // Every packed linear's inputs split into whole groups of whole words, outputs too.
    for (auto [key, in] : {std::pair{"hidden_size", c.hidden_size},
                           {"intermediate_size", c.intermediate_size},
                           {"num_attention_heads x head_dim", c.q_dim()}}) {
      if (in % 8 != 0 || in % c.quant.GroupSize(in) != 0) {
        return QuantError(absl::StrCat("group_size ", c.quant.group_size, " does not divide ", key,
                                       " ", in, " (a linear's inputs) into whole groups"));
      }
    }
    if (c.kv_dim() % 8 != 0) {
      return QuantError(absl::StrCat("num_key_value_heads x head_dim ", c.kv_dim(),
                                     " is not a multiple of 8 (eight outputs a packed word)"));
    }
  }
  return c;
}

}  // namespace

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  const std::string path = (std::filesystem::path(model_dir) / "config.json").string();
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  auto c = ParseModelConfig(*text);
  if (!c.ok())
    return absl::Status(c.status().code(), absl::StrCat(model_dir, "/", c.status().message()));
  return c;
}

std::string ModelConfigToJson(const ModelConfig& c) {
  json j;
  j["architectures"] = {c.architecture_name};
  j["model_type"] = c.arch == Architecture::kQwen3 ? "qwen3" : "qwen2";
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  if (c.arch == Architecture::kQwen3) {
    j["head_dim"] = c.head_dim;
    j["attention_bias"] = c.attention_bias;
  }
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["rope_theta"] = c.rope_theta;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["hidden_act"] = "silu";
  j["torch_dtype"] = c.torch_dtype;
  j["rope_scaling"] = nullptr;
  if (c.quant.quantized()) {
    json q = {{"quant_method", QuantMethodName(c.quant.method)},
              {"bits", c.quant.bits},
              {"group_size", c.quant.group_size}};
    if (c.quant.method == QuantMethod::kGptq) {
      q["sym"] = c.quant.sym;
      q["desc_act"] = c.quant.desc_act;
      q["checkpoint_format"] = c.quant.gptq_v2 ? "gptq_v2" : "gptq";
    } else {
      q["version"] = "gemm";
      q["zero_point"] = true;
    }
    if (!c.quant.modules_to_not_convert.empty()) {
      q["modules_to_not_convert"] = c.quant.modules_to_not_convert;
    }
    j["quantization_config"] = q;
  }
  j["bos_token_id"] = 151643;
  j["eos_token_id"] = 151645;
  return j.dump(2) + "\n";
}

absl::StatusOr<GenerationConfig> ParseGenerationConfig(const std::string& json_text) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("not a JSON object");
  GenerationConfig g;
  try {
    if (j.contains("eos_token_id")) IdsFrom(j["eos_token_id"], &g.eos_token_ids);
    ASSIGN_OR_RETURN(g.bos_token_id, IntOr(j, "bos_token_id", -1, ""));
    g.pad_token_id = j.contains("pad_token_id") && j["pad_token_id"].is_number_integer()
                         ? j["pad_token_id"].get<int64_t>()
                         : -1;
    g.do_sample = j.value("do_sample", false);
    g.temperature = j.value("temperature", 1.0);
    ASSIGN_OR_RETURN(g.top_k, IntOr(j, "top_k", 0, ""));
    g.top_p = j.value("top_p", 1.0);
  } catch (const json::exception& e) {  // a key of the wrong type
    return absl::InvalidArgumentError(e.what());
  }
  return g;
}

absl::StatusOr<GenerationConfig> LoadGenerationConfig(const std::string& model_dir) {
  // Without generation_config.json, config.json's eos id and the defaults.
  const auto dir = std::filesystem::path(model_dir);
  std::string path = (dir / "generation_config.json").string();
  if (!std::filesystem::exists(path)) path = (dir / "config.json").string();
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  auto g = ParseGenerationConfig(*text);
  if (!g.ok())
    return absl::Status(g.status().code(), absl::StrCat(path, ": ", g.status().message()));
  return g;
}

}  // namespace lp
