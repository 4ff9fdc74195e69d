// Damaged copies of a fixture checkpoint, one defect each, for the error-path tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fixture_util.h"

namespace lp::testing {

struct Defect {
  std::string name;
  std::string message;  // a substring the error must contain
};

inline const std::vector<Defect>& Defects() {
  static const std::vector<Defect> defects = {
      {"truncated", "truncated"},
      {"header_past_end", "runs past the end"},
      {"header_too_large", "100 MB"},
      {"garbled_header", "JSON"},
      {"overlapping_offsets", "overlapping"},
      {"unknown_dtype", "unknown dtype"},
      {"shape_disagrees_with_bytes", "data_offsets span"},
      {"missing_tensor", "is missing"},
      {"config_disagrees", "config.json implies"},
      {"empty_file", "too short"},
      {"unknown_architecture", "LlamaForCausalLM"},
      // Int4 (a copy of qwen2-gptq-small)
      {"int4_bits_8", "bits 8 is not supported"},
      {"int4_unknown_method", "quant_method 'exl2'"},
      {"int4_group_size_disagrees", "config.json implies [2, 16]"},
      {"int4_group_size_not_dividing", "group_size 48 does not divide"},
      {"int4_qweight_dtype", "has dtype F32 but quantization_config (gptq) implies I32"},
      {"int4_g_idx_out_of_range", "self_attn.q_proj.g_idx': entry 5 is 77"},
      {"int4_modules_not_a_list", "modules_to_not_convert must be a list"},
  };
  return defects;
}

inline std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

// Rebuilds a safetensors image with header text `header` and the data section of `bytes`.
inline std::vector<uint8_t> WithHeader(const std::vector<uint8_t>& bytes,
                                       const std::string& header) {
  uint64_t old_n;
  std::memcpy(&old_n, bytes.data(), 8);
  std::vector<uint8_t> out(8);
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), bytes.begin() + 8 + std::ptrdiff_t(old_n), bytes.end());
  return out;
}

inline std::string HeaderOf(const std::vector<uint8_t>& bytes) {
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  return std::string(bytes.begin() + 8, bytes.begin() + 8 + std::ptrdiff_t(n));
}

// A copy of qwen2-small (qwen2-gptq-small for the int4_ defects) under `root`/`defect` with
// that defect applied; returns its path.
inline std::string MakeBroken(const std::string& root, const std::string& defect) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(root) / defect;
  fs::remove_all(dir);
  fs::create_directories(dir);
  const bool int4 = defect.rfind("int4_", 0) == 0;
  const fs::path src = FixtureDir(int4 ? "qwen2-gptq-small" : "qwen2-small");
  fs::copy_file(src / "config.json", dir / "config.json");
  fs::copy_file(src / "model.safetensors", dir / "model.safetensors");
  fs::permissions(dir / "model.safetensors", fs::perms::owner_write, fs::perm_options::add);
  fs::permissions(dir / "config.json", fs::perms::owner_write, fs::perm_options::add);
  const std::string file = (dir / "model.safetensors").string();
  auto bytes = ReadBytes(file);
  auto header = nlohmann::ordered_json::parse(HeaderOf(bytes));
  auto set_header = [&] { bytes = WithHeader(bytes, header.dump()); };

  if (defect == "truncated") {
    bytes.resize(bytes.size() - 100);
  } else if (defect == "header_past_end") {
    const uint64_t n = bytes.size();
    std::memcpy(bytes.data(), &n, 8);
  } else if (defect == "header_too_large") {
    const uint64_t n = 200'000'000;
    std::memcpy(bytes.data(), &n, 8);
  } else if (defect == "garbled_header") {
    bytes[8 + 10] = '}';
    bytes[8 + 11] = '"';
  } else if (defect == "overlapping_offsets") {
    auto& t = header["model.layers.0.input_layernorm.weight"];
    auto& u = header["model.layers.0.mlp.down_proj.weight"];
    // Swap in an overlap: the norm's range starts inside the down projection's.
    const uint64_t b = u["data_offsets"][0].get<uint64_t>() + 2;
    const uint64_t len =
        t["data_offsets"][1].get<uint64_t>() - t["data_offsets"][0].get<uint64_t>();
    t["data_offsets"] = {b, b + len};
    set_header();
  } else if (defect == "unknown_dtype") {
    header["model.norm.weight"]["dtype"] = "Q4_K";
    set_header();
  } else if (defect == "shape_disagrees_with_bytes") {
    header["model.norm.weight"]["shape"] = {65};
    set_header();
  } else if (defect == "missing_tensor") {
    // Rename it, so the file stays well-formed but the model lacks it.
    header["model.layers.2.self_attn.q_norm_renamed.weight"] =
        header["model.layers.2.mlp.up_proj.weight"];
    header.erase("model.layers.2.mlp.up_proj.weight");
    set_header();
  } else if (defect == "config_disagrees") {
    auto config = LoadJson((src / "config.json").string());
    config["intermediate_size"] = 96;
    std::ofstream(dir / "config.json") << config.dump(2);
  } else if (defect == "empty_file") {
    bytes.clear();
  } else if (defect == "unknown_architecture") {
    auto config = LoadJson((src / "config.json").string());
    config["architectures"] = {"LlamaForCausalLM"};
    std::ofstream(dir / "config.json") << config.dump(2);
  } else if (int4 && defect != "int4_qweight_dtype" && defect != "int4_g_idx_out_of_range") {
    auto config = LoadJson((src / "config.json").string());
    auto& q = config["quantization_config"];
    if (defect == "int4_bits_8") q["bits"] = 8;
    if (defect == "int4_unknown_method") q["quant_method"] = "exl2";
    if (defect == "int4_group_size_disagrees") q["group_size"] = 64;
    if (defect == "int4_group_size_not_dividing") q["group_size"] = 48;
    if (defect == "int4_modules_not_a_list") q["modules_to_not_convert"] = "lm_head";
    std::ofstream(dir / "config.json") << config.dump(2);
  } else if (defect == "int4_qweight_dtype") {
    header["model.layers.1.mlp.up_proj.qweight"]["dtype"] = "F32";  // same size, wrong type
    set_header();
  } else if (defect == "int4_g_idx_out_of_range") {
    const auto& t = header["model.layers.0.self_attn.q_proj.g_idx"];
    uint64_t n;
    std::memcpy(&n, bytes.data(), 8);
    const int32_t bad = 77;
    std::memcpy(bytes.data() + 8 + n + t["data_offsets"][0].get<uint64_t>() + 5 * 4, &bad, 4);
  }
  WriteBytes(file, bytes);
  return dir.string();
}

}  // namespace lp::testing
