// `layerpipe init-model`: writes a random-weight checkpoint of a known shape (config.json,
// generation_config.json, sharded safetensors with an index), for benchmarks and the demo.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/util.h"
#include "common/model_layout.h"
#include "common/presets.h"
#include "common/random.h"
#include "common/safetensors_writer.h"

namespace lp::cli {
namespace {

namespace fs = std::filesystem;

uint64_t HashName(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Element i of a tensor depends only on (seed, name, i), so any chunking writes the same file.
// Norm weights are 1 (as at initialization); everything else uniform with std 0.02.
constexpr float kAmplitude = 0.02f * 1.7320508f;

// The parts of a packed Int4 linear (common/int4.h): random codes, every zero 8, scales that
// give the same amplitude as the dense weights, groups in order (no act order).
TensorToWrite RandomInt4Part(const ExpectedTensor& t, const QuantConfig& q, uint64_t seed) {
  TensorToWrite w;
  w.name = t.name;
  w.dtype = *t.dtype;
  w.shape = t.shape;
  const uint64_t key = SplitMix64(seed ^ HashName(t.name));
  const std::string part = t.name.substr(t.name.rfind('.') + 1);
  const uint32_t zeros = q.method == QuantMethod::kGptq && !q.gptq_v2 ? 0x77777777u : 0x88888888u;
  const uint16_t scale = F32ToF16(kAmplitude / 8);
  const int64_t group = q.GroupSize(t.shape[0]);  // for g_idx, whose shape is [in]
  w.fill = [=](uint64_t first, uint64_t count, void* out) {
#pragma omp parallel for if (count > 65536)
    for (uint64_t i = 0; i < count; ++i) {
      if (part == "qweight") {
        static_cast<uint32_t*>(out)[i] = uint32_t(SplitMix64(key + first + i));
      } else if (part == "qzeros") {
        static_cast<uint32_t*>(out)[i] = zeros;
      } else if (part == "scales") {
        static_cast<uint16_t*>(out)[i] = scale;
      } else {  // g_idx
        static_cast<int32_t*>(out)[i] = int32_t(int64_t(first + i) / group);
      }
    }
  };
  return w;
}

TensorToWrite RandomTensor(const ExpectedTensor& t, DType dtype, uint64_t seed) {
  TensorToWrite w;
  w.name = t.name;
  w.dtype = dtype;
  w.shape = t.shape;
  const bool is_norm = t.name.find("norm") != std::string::npos;
  const uint64_t key = SplitMix64(seed ^ HashName(t.name));
  const float amplitude = kAmplitude;
  w.fill = [=](uint64_t first, uint64_t count, void* out) {
#pragma omp parallel for if (count > 65536)
    for (uint64_t i = 0; i < count; ++i) {
      const float u = UniformFloat(SplitMix64(key + (first + i) * kSplitMixGamma));
      const float v = is_norm ? 1.0f : (2.0f * u - 1.0f) * amplitude;
      switch (dtype) {
        case DType::kBF16:
          static_cast<uint16_t*>(out)[i] = F32ToBf16(v);
          break;
        case DType::kF16:
          static_cast<uint16_t*>(out)[i] = F32ToF16(v);
          break;
        default:
          static_cast<float*>(out)[i] = v;
          break;
      }
    }
  };
  return w;
}

void CopyTokenizer(const std::string& from, const std::string& to) {
  bool any = false;
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    const fs::path src = fs::path(from) / name;
    if (!fs::exists(src)) continue;
    std::error_code ec;
    fs::copy_file(src, fs::path(to) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) Fail(absl::InternalError(absl::StrCat(src.string(), ": ", ec.message())));
    any = true;
  }
  if (!any) Fail(absl::NotFoundError(absl::StrCat(from, ": no tokenizer.json to copy")));
}

}  // namespace

void AddInitModelCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("init-model", "write a random-weight checkpoint of a known shape");
  struct Options {
    std::string preset, out, dtype, tokenizer;
    bool force = false;
    uint64_t seed = 0;
    double shard_mb = 0;
  };
  auto o = std::make_shared<Options>();
  std::string names;
  for (const auto& p : Presets()) names += "\n  " + p.name + ": " + p.description;
  cmd->add_option("--preset", o->preset, "model shape:" + names)->required();
  cmd->add_option("--out", o->out, "output directory (created; must be empty or absent)")
      ->required();
  cmd->add_flag("--force", o->force, "replace a non-empty --out (once the new model is complete)");
  cmd->add_option("--seed", o->seed, "random seed")->capture_default_str();
  cmd->add_option("--dtype", o->dtype,
                  "type of the unquantized weights (default: bf16; f16 for Int4 presets)")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  cmd->add_option("--shard-mb", o->shard_mb, "shard size in MiB (default: the preset's)");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "copy tokenizer.json / tokenizer_config.json from this directory");
  cmd->callback([o] {
    auto preset = FindPreset(o->preset);
    if (!preset.ok()) Fail(preset.status(), 2);
    ModelConfig c = preset->config;
    if (o->dtype.empty()) o->dtype = c.quant.quantized() ? "f16" : "bf16";
    const DType dtype = o->dtype == "bf16"  ? DType::kBF16
                        : o->dtype == "f16" ? DType::kF16
                                            : DType::kF32;
    c.torch_dtype = o->dtype == "bf16" ? "bfloat16" : o->dtype == "f16" ? "float16" : "float32";
    std::error_code ec;
    fs::path out = fs::path(o->out).lexically_normal();
    if (!out.has_filename()) out = out.parent_path();  // "DIR/" names DIR
    if (fs::exists(out) && !(fs::is_directory(out) && fs::is_empty(out)) && !o->force) {
      Fail(absl::AlreadyExistsError(
          absl::StrCat(o->out, " exists and is not empty (a model in use?): --force replaces it")));
    }
    // Everything goes to a folder beside the target, renamed into place at the end: an error
    // leaves no partial model, and a model being read is replaced only once complete.
    const fs::path tmp = out.string() + ".partial-" + std::to_string(getpid());
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp, ec);
    if (ec) Fail(absl::PermissionDeniedError(absl::StrCat(tmp.string(), ": ", ec.message())));
    struct RemoveOnError {
      fs::path dir;
      bool done = false;
      ~RemoveOnError() {
        std::error_code ignored;
        if (!done) fs::remove_all(dir, ignored);
      }
    } cleanup{tmp};

    std::vector<TensorToWrite> tensors;
    for (const auto& t : AllTensors(c)) {
      tensors.push_back(t.dtype ? RandomInt4Part(t, c.quant, o->seed)
                                : RandomTensor(t, dtype, o->seed));
    }
    const uint64_t shard =
        o->shard_mb > 0 ? uint64_t(o->shard_mb * (1 << 20)) : preset->shard_bytes;
    std::fprintf(stderr, "writing %s (%s) to %s ...\n", preset->name.c_str(),
                 preset->description.c_str(), o->out.c_str());
    if (auto s = WriteShardedCheckpoint(tmp.string(), tensors, shard); !s.ok()) Fail(s);
    std::ofstream(tmp / "config.json") << ModelConfigToJson(c);
    std::ofstream(tmp / "generation_config.json")
        << "{\n  \"bos_token_id\": 151643,\n  \"eos_token_id\": [151645, 151643],\n"
           "  \"pad_token_id\": 151643,\n  \"do_sample\": true,\n  \"temperature\": 0.6,\n"
           "  \"top_k\": 20,\n  \"top_p\": 0.95\n}\n";
    if (!o->tokenizer.empty()) CopyTokenizer(o->tokenizer, tmp.string());
    const fs::path old = out.string() + ".old-" + std::to_string(getpid());
    const bool replacing = fs::exists(out);
    if (replacing) fs::rename(out, old, ec);
    if (!ec) fs::rename(tmp, out, ec);
    if (ec) {
      std::error_code ignored;
      if (replacing && !fs::exists(out)) fs::rename(old, out, ignored);  // put the old one back
      Fail(absl::InternalError(
          absl::StrCat("cannot move ", tmp.string(), " to ", o->out, ": ", ec.message())));
    }
    cleanup.done = true;
    fs::remove_all(old, ec);
    std::printf("wrote %s: %lld parameters\n", o->out.c_str(),
                (long long)NumElements(AllTensors(c)));
  });
}

}  // namespace lp::cli
