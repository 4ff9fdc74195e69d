// Checkpoint directories: config.json, single files and shards, and every kind of damage
// reported as a clear error naming the file and the tensor.
#include "common/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "broken_checkpoints.h"
#include "common/model_config.h"
#include "common/presets.h"

namespace lp {
namespace {

using lp::testing::FixtureDir;

TEST(Checkpoint, ValidFixturesPass) {
  for (const char* name : {"qwen3-tiny", "qwen3-small-sharded", "qwen2-small"}) {
    auto ckpt = Checkpoint::Open(FixtureDir(name));
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    auto summary = (*ckpt)->Validate();
    ASSERT_TRUE(summary.ok()) << name << ": " << summary.status();
    EXPECT_GT(summary->num_parameters, 0);
    EXPECT_TRUE(summary->bytes_by_dtype.count("BF16"));
  }
}

TEST(Checkpoint, ConfigFieldsAreRead) {
  auto q3 = LoadModelConfig(FixtureDir("qwen3-tiny"));
  ASSERT_TRUE(q3.ok());
  EXPECT_EQ(q3->arch, Architecture::kQwen3);
  EXPECT_EQ(q3->head_dim, 16);  // its own field, here 4 heads * 16 != hidden 32
  EXPECT_TRUE(q3->tie_word_embeddings);
  EXPECT_TRUE(q3->qk_norm);
  auto q2 = LoadModelConfig(FixtureDir("qwen2-small"));
  ASSERT_TRUE(q2.ok());
  EXPECT_EQ(q2->head_dim, 16);  // hidden 64 / 4 heads
  EXPECT_TRUE(q2->attention_bias);
  EXPECT_FALSE(q2->qk_norm);
}

TEST(Checkpoint, GenerationConfigEosMayBeAList) {
  auto g = LoadGenerationConfig(FixtureDir("qwen3-tiny"));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->eos_token_ids, (std::vector<int64_t>{151645, 151643}));
  auto fallback = LoadGenerationConfig(FixtureDir("qwen2-small"));  // none: config.json's eos
  ASSERT_TRUE(fallback.ok());
  EXPECT_EQ(fallback->eos_token_ids, (std::vector<int64_t>{151645}));
}

TEST(Checkpoint, WrongTypeInConfigIsAnErrorNotACrash) {
  auto c = ParseModelConfig(R"({"architectures": ["Qwen3ForCausalLM"], "hidden_size": 8,
      "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
      "vocab_size": 10, "rope_theta": "fast"})");
  EXPECT_FALSE(c.ok());
}

// Found by fuzz/model_config_fuzz.cc: a float where an integer is meant (1e31 fits no int64),
// dimensions whose products overflow, and generation_config.json of the wrong types.
TEST(Checkpoint, OutOfRangeNumbersInConfigAreErrors) {
  const std::string base = R"({"architectures": ["Qwen3ForCausalLM"], "intermediate_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 10, )";
  EXPECT_TRUE(ParseModelConfig(base + R"("hidden_size": 8})").ok());
  for (const char* bad :
       {R"("hidden_size": 8, "num_key_value_heads": 1e31})",
        R"("hidden_size": 8, "max_position_embeddings": 2.5})", R"("hidden_size": 1099511627776})",
        R"("hidden_size": 8, "head_dim": 4611686018427387904})"}) {
    EXPECT_EQ(ParseModelConfig(base + bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_TRUE(ParseGenerationConfig(R"({"bos_token_id": null, "top_k": 20})").ok());
  for (const char* bad : {R"({"bos_token_id": 1.51e31})", R"({"top_k": "20"})",
                          R"({"temperature": []})", "[]", "{"}) {
    EXPECT_EQ(ParseGenerationConfig(bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(Checkpoint, PresetConfigsRoundTrip) {
  for (const auto& p : Presets()) {
    auto c = ParseModelConfig(ModelConfigToJson(p.config));
    ASSERT_TRUE(c.ok()) << p.name << ": " << c.status();
    EXPECT_EQ(c->num_layers, p.config.num_layers);
    EXPECT_EQ(c->head_dim, p.config.head_dim);
    EXPECT_EQ(c->tie_word_embeddings, p.config.tie_word_embeddings);
  }
}

TEST(Checkpoint, FingerprintNamesWhatDiffers) {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(::testing::TempDir()) / ("lp_fp_" + std::to_string(getpid()));
  fs::remove_all(root);
  auto copy = [&](const std::string& name) {
    const fs::path dir = root / name;
    fs::create_directories(dir);
    for (const char* f : {"config.json", "model.safetensors"}) {
      fs::copy_file(FixtureDir("qwen2-small") + "/" + f, dir / f);
      fs::permissions(dir / f, fs::perms::owner_write, fs::perm_options::add);
    }
    return dir;
  };
  auto fingerprint = [](const fs::path& dir) {
    auto ckpt = Checkpoint::Open(dir.string());
    EXPECT_TRUE(ckpt.ok()) << ckpt.status();
    auto f = (*ckpt)->Fingerprint();
    EXPECT_TRUE(f.ok()) << f.status();
    return *f;
  };
  const std::string same = fingerprint(copy("a"));
  EXPECT_EQ(same, fingerprint(copy("b")));
  EXPECT_EQ(FingerprintDifference(same, same), "");

  const fs::path weights = copy("weights");  // one byte of the last tensor's last 4 KiB
  auto bytes = lp::testing::ReadBytes((weights / "model.safetensors").string());
  bytes[bytes.size() - 10] ^= 1;
  lp::testing::WriteBytes((weights / "model.safetensors").string(), bytes);
  EXPECT_EQ(FingerprintDifference(fingerprint(weights), same),
            "tensor contents (first and last 4 KiB of each)");

  const fs::path generation = copy("generation");
  std::ofstream(generation / "generation_config.json") << R"({"eos_token_id": 7})";
  EXPECT_EQ(FingerprintDifference(fingerprint(generation), same), "generation_config.json");

  const fs::path config = copy("config");
  std::ofstream(config / "config.json", std::ios::app) << "\n";
  EXPECT_EQ(FingerprintDifference(fingerprint(config), same), "config.json");
  fs::remove_all(root);
}

class BrokenCheckpoint : public ::testing::TestWithParam<lp::testing::Defect> {};

TEST_P(BrokenCheckpoint, IsRefusedWithAClearMessage) {
  const std::string root = ::testing::TempDir() + "/lp_broken_ckpt_" + std::to_string(getpid());
  const std::string dir = lp::testing::MakeBroken(root, GetParam().name);
  auto ckpt = Checkpoint::Open(dir);
  absl::Status status = ckpt.status();
  if (ckpt.ok()) {
    auto summary = (*ckpt)->Validate();
    status = summary.status();
  }
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find(GetParam().message), std::string::npos) << status;
  EXPECT_NE(status.message().find(dir), std::string::npos) << "names the file: " << status;
}

INSTANTIATE_TEST_SUITE_P(Defects, BrokenCheckpoint, ::testing::ValuesIn(lp::testing::Defects()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace lp
