// Checkpoint directories: index, lazy shard mapping, full validation.
#include "common/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/int4.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace lp {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Tensors some checkpoints carry that the model does not need.
bool IsExplainedExtra(const ModelConfig& c, const std::string& name) {
  if (absl::EndsWith(name, ".rotary_emb.inv_freq")) return true;  // old RoPE buffers
  return c.tie_word_embeddings && name == "lm_head.weight";       // saved copy of tied head
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ParseSafetensorsIndex(
    const std::string& json_text) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") ||
      !j["weight_map"].is_object()) {
    return absl::InvalidArgumentError("not JSON with a 'weight_map' object");
  }
  std::map<std::string, std::string> weight_map;
  for (const auto& [name, file] : j["weight_map"].items()) {
    // A shard outside the directory (or the directory itself) must never be mapped.
    const std::string* f = file.is_string() ? file.get_ptr<const std::string*>() : nullptr;
    if (f == nullptr || f->empty() || *f == "." || *f == ".." ||
        f->find_first_of(std::string_view("/\0", 2)) != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight_map['", name, "'] must be a file name in the directory"));
    }
    weight_map[name] = *f;
  }
  return weight_map;
}

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  if (!fs::is_directory(dir)) {
    return absl::NotFoundError(absl::StrCat(dir, ": not a checkpoint directory"));
  }
  auto config = LoadModelConfig(dir);
  if (!config.ok()) return config.status();
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint(dir, *config));
  {
    std::ifstream in(fs::path(dir) / "config.json", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    ckpt->config_text_ = ss.str();
  }

  const fs::path index_path = fs::path(dir) / kIndexFile;
  if (fs::exists(index_path)) {
    std::ifstream in(index_path);
    std::stringstream ss;
    ss << in.rdbuf();
    auto weight_map = ParseSafetensorsIndex(ss.str());
    if (!weight_map.ok()) {
      return absl::Status(weight_map.status().code(),
                          absl::StrCat(index_path.string(), ": ", weight_map.status().message()));
    }
    ckpt->weight_map_ = std::move(*weight_map);
    ckpt->indexed_ = true;
  } else if (fs::exists(fs::path(dir) / kSingleFile)) {
    auto file = ckpt->File(kSingleFile);
    if (!file.ok()) return file.status();
    for (const auto& [name, info] : (*file)->tensors()) ckpt->weight_map_[name] = kSingleFile;
  } else {
    return absl::NotFoundError(
        absl::StrCat(dir, ": neither ", kSingleFile, " nor ", kIndexFile, " is present"));
  }
  return ckpt;
}

absl::StatusOr<SafetensorsFile*> Checkpoint::File(const std::string& file_name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(file_name);
  if (it != files_.end()) return it->second.get();
  auto file = SafetensorsFile::Open((fs::path(dir_) / file_name).string());
  if (!file.ok()) return file.status();
  SafetensorsFile* raw = file->get();
  files_[file_name] = std::move(*file);
  return raw;
}

namespace {

// FNV-1a, 64-bit, over a sequence of strings (each followed by a separator).
class Hash {
 public:
  void Mix(std::string_view s) {
    for (unsigned char c : s) h_ = (h_ ^ c) * 1099511628211ull;
    h_ = (h_ ^ 0xff) * 1099511628211ull;
  }
  std::string Hex() const { return absl::StrFormat("%016x", h_); }

 private:
  uint64_t h_ = 1469598103934665603ull;
};

constexpr size_t kContentSample = 4096;

// The fingerprint's parts, in order, and what each covers (FingerprintDifference's words).
constexpr std::pair<const char*, const char*> kFingerprintParts[] = {
    {"config", "config.json"},
    {"generation", "generation_config.json"},
    {"tensors", "tensor names, files, dtypes or shapes"},
    {"content", "tensor contents (first and last 4 KiB of each)"},
};

}  // namespace

absl::StatusOr<std::string> Checkpoint::Fingerprint() {
  Hash config, generation, tensors, content;
  config.Mix(config_text_);
  std::ifstream gen(fs::path(dir_) / "generation_config.json", std::ios::binary);
  std::stringstream gen_text;
  if (gen) gen_text << gen.rdbuf();
  generation.Mix(gen ? gen_text.str() : "(none)");
  for (const auto& [name, file_name] : weight_map_) {
    auto file = File(file_name);
    if (!file.ok()) return file.status();
    const TensorView view = (*file)->Find(name);
    if (view.info == nullptr) {
      return absl::NotFoundError(absl::StrCat((*file)->path(), ": tensor '", name,
                                              "' is listed in the index but not in the file"));
    }
    tensors.Mix(name);
    tensors.Mix(file_name);
    tensors.Mix(DTypeName(view.info->dtype));
    tensors.Mix(absl::StrCat(ShapeString(view.info->shape), " ", view.info->num_bytes()));
    const size_t n = view.info->num_bytes(), sample = std::min(n, kContentSample);
    content.Mix(std::string_view(reinterpret_cast<const char*>(view.data), sample));
    content.Mix(std::string_view(reinterpret_cast<const char*>(view.data) + n - sample, sample));
  }
  const Hash* parts[] = {&config, &generation, &tensors, &content};
  std::vector<std::string> out;
  for (size_t i = 0; i < 4; ++i) {
    out.push_back(absl::StrCat(kFingerprintParts[i].first, "=", parts[i]->Hex()));
  }
  return absl::StrJoin(out, " ");
}

std::string FingerprintDifference(const std::string& a, const std::string& b) {
  std::vector<std::string> differ;
  for (const auto& [key, words] : kFingerprintParts) {
    auto part = [&, key = key](const std::string& f) {
      const size_t at = f.find(absl::StrCat(key, "="));
      return at == std::string::npos ? std::string() : f.substr(at, f.find(' ', at) - at);
    };
    if (part(a) != part(b) || part(a).empty()) differ.push_back(words);
  }
  return a == b ? "" : absl::StrJoin(differ, ", ");
}

std::vector<std::string> Checkpoint::OpenedFiles() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> names;
  for (const auto& [name, file] : files_) names.push_back(name);
  return names;
}

absl::StatusOr<TensorView> Checkpoint::Get(const ExpectedTensor& expected) {
  auto where = weight_map_.find(expected.name);
  if (where == weight_map_.end()) {
    return absl::NotFoundError(absl::StrCat(dir_, ": tensor '", expected.name, "' is missing"));
  }
  auto file = File(where->second);
  if (!file.ok()) return file.status();
  TensorView view = (*file)->Find(expected.name);
  if (view.info == nullptr) {
    return absl::NotFoundError(absl::StrCat((*file)->path(), ": tensor '", expected.name,
                                            "' is listed in the index but not in the file"));
  }
  if (view.info->shape != expected.shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        (*file)->path(), ": tensor '", expected.name, "' has shape ", ShapeString(view.info->shape),
        " but config.json implies ", ShapeString(expected.shape)));
  }
  if (expected.dtype && view.info->dtype != *expected.dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat((*file)->path(), ": tensor '", expected.name, "' has dtype ",
                     std::string(DTypeName(view.info->dtype)), " but quantization_config (",
                     QuantMethodName(config_.quant.method), ") implies ",
                     std::string(DTypeName(*expected.dtype))));
  }
  if (!expected.dtype && !IsFloatWeightType(view.info->dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        (*file)->path(), ": tensor '", expected.name, "' has dtype ",
        std::string(DTypeName(view.info->dtype)), "; weights must be BF16, F16 or F32"));
  }
  return view;
}

absl::StatusOr<CheckpointSummary> Checkpoint::Validate() {
  CheckpointSummary summary;
  summary.architecture = config_.architecture_name;
  summary.num_layers = config_.num_layers;

  std::set<std::string> file_names;
  for (const auto& [name, file] : weight_map_) file_names.insert(file);
  // Every file well-formed, and with an index, index and files agree both ways.
  std::set<std::string> in_files;
  for (const auto& file_name : file_names) {
    auto file = File(file_name);
    if (!file.ok()) return file.status();
    summary.files.push_back(file_name);
    for (const auto& [name, info] : (*file)->tensors()) {
      in_files.insert(name);
      auto listed = weight_map_.find(name);
      if (indexed_ && (listed == weight_map_.end() || listed->second != file_name)) {
        return absl::InvalidArgumentError(absl::StrCat(
            (*file)->path(), ": tensor '", name, "' is not listed for this file in ", kIndexFile));
      }
    }
  }
  for (const auto& [name, file_name] : weight_map_) {
    if (!in_files.count(name)) {
      return absl::NotFoundError(absl::StrCat(dir_, "/", file_name, ": tensor '", name,
                                              "' is listed in the index but not in the file"));
    }
  }
  // Every expected tensor present with its shape; nothing unexplained.
  for (const auto& expected : AllTensors(config_)) {
    auto view = Get(expected);
    if (!view.ok()) return view.status();
    summary.num_parameters += NumElements({expected});
    summary.bytes_by_dtype[std::string(DTypeName(view->info->dtype))] += view->info->num_bytes();
  }
  // GPTQ group indices: in range, equal groups (what a worker checks when it loads them).
  for (int64_t l = 0; l < config_.num_layers && config_.quant.quantized(); ++l) {
    for (const LinearSpec& linear : LayerLinears(config_, l)) {
      ++(linear.int4 ? summary.packed_linears : summary.dense_linears);
      if (!linear.int4 || config_.quant.method != QuantMethod::kGptq) continue;
      ASSIGN_OR_RETURN(TensorView g_idx, Get(Int4Tensors(config_.quant, linear).back()));
      auto order = GroupOrder(config_.quant, linear, g_idx);
      if (!order.ok()) {
        return absl::Status(order.status().code(),
                            absl::StrCat(dir_, ": ", order.status().message()));
      }
      if (!order->empty()) ++summary.act_order_linears;
    }
  }
  ASSIGN_OR_RETURN(summary.ignored, CheckNothingUnexpected());
  return summary;
}

absl::StatusOr<std::vector<std::string>> Checkpoint::CheckNothingUnexpected() const {
  std::set<std::string> expected;
  for (const auto& t : AllTensors(config_)) expected.insert(t.name);
  std::vector<std::string> ignored;
  for (const auto& [name, file_name] : weight_map_) {
    if (expected.count(name)) continue;
    if (IsExplainedExtra(config_, name)) {
      ignored.push_back(name);
      continue;
    }
    return absl::InvalidArgumentError(absl::StrCat(
        dir_, "/", file_name, ": tensor '", name, "' is not part of a ", config_.architecture_name,
        " with this config.json (", config_.num_layers, " layers)"));
  }
  return ignored;
}

}  // namespace lp
