// `layerpipe plan` as users run it: a table by default, Hugging Face's device_map with --json,
// only config.json needed, and a clean failure (exit 1, the reason) on a bad cluster file.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/presets.h"
#include "fixture_util.h"
#include "run_command.h"

namespace lp {
namespace {

namespace fs = std::filesystem;
using lp::testing::FixtureDir;

using Result = lp::testing::CommandResult;
using lp::testing::RunLayerpipe;

// A folder of this test process: /tmp is shared with other checkouts running the same tests.
fs::path TempPath(const std::string& name) {
  return fs::path(::testing::TempDir()) / ("lp_plan_" + std::to_string(getpid())) / name;
}

// A cluster file in a fresh folder, three CPU workers over `model_dir`.
std::string WriteCluster(const std::string& name, const std::string& model_dir,
                         const std::string& device_map) {
  const fs::path dir = TempPath(name);
  fs::create_directories(dir);
  const fs::path file = dir / "cluster.yaml";
  std::ofstream(file) << "model: {path: " << model_dir << "}\n"
                      << "device_map: " << device_map << "\n"
                      << "limits: {max_batch: 4, max_context: 256, max_step_tokens: 64}\n"
                      << "workers:\n"
                      << "  - {name: c0, device: cpu:0, address: \"127.0.0.1:7101\"}\n"
                      << "  - {name: c1, device: cpu:1, address: \"127.0.0.1:7102\"}\n"
                      << "  - {name: c2, device: cpu:2, address: \"127.0.0.1:7103\"}\n";
  return file.string();
}

TEST(PlanCli, PrintsATableOfStages) {
  Result r = RunLayerpipe("plan " + WriteCluster("plan_table", FixtureDir("qwen3-tiny"), "auto"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* part : {"worker", "KV cache", "budget", "c0", "cpu:2", "embed_tokens",
                           "norm, lm_head", "unlimited", "slowest stage", "safetensors headers"}) {
    EXPECT_NE(r.out.find(part), std::string::npos) << part << "\n" << r.out;
  }
}

TEST(PlanCli, JsonHasHuggingFaceDeviceMapAndStages) {
  Result r =
      RunLayerpipe("plan --json " + WriteCluster("plan_json", FixtureDir("qwen3-tiny"), "layered"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["device_map"].size(), 6u + 3u);  // six layers, embed, norm, head
  EXPECT_EQ(j["device_map"]["model.embed_tokens"], "cpu");
  ASSERT_EQ(j["stages"].size(), 3u);
  // get_device_map(3, 6): 2 / 3 / 1 layers.
  EXPECT_EQ(j["stages"][0]["layers"], nlohmann::json({0, 2}));
  EXPECT_EQ(j["stages"][1]["layers"], nlohmann::json({2, 5}));
  EXPECT_EQ(j["stages"][2]["layers"], nlohmann::json({5, 6}));
  EXPECT_TRUE(j["stages"][2]["head"].get<bool>());
  EXPECT_EQ(j["strategy"], "layered");
  EXPECT_EQ(j["weights_from"], "safetensors");
}

TEST(PlanCli, NeedsOnlyConfigJson) {
  const fs::path model = TempPath("config_only");
  fs::create_directories(model);
  fs::copy_file(FixtureDir("qwen3-small-sharded") + "/config.json", model / "config.json",
                fs::copy_options::overwrite_existing);
  Result r = RunLayerpipe("plan --json " +
                          WriteCluster("plan_config_only_cluster", model.string(), "balanced"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["weights_from"], "config.json");
  EXPECT_GT(j["stages"][0]["weight_bytes"].get<uint64_t>(), 0u);
}

class PlanEstimate : public ::testing::TestWithParam<std::string> {};

TEST_P(PlanEstimate, MatchesTheHeaders) {
  // The same model planned from its safetensors headers and from config.json alone (for the
  // Int4 fixtures: packed codes, zeros, scales and g_idx counted from quantization_config).
  const std::string fixture = GetParam();
  const fs::path model = TempPath("estimate_" + fixture);
  fs::create_directories(model);
  fs::copy_file(FixtureDir(fixture) + "/config.json", model / "config.json",
                fs::copy_options::overwrite_existing);
  Result from_config = RunLayerpipe(
      "plan --json " + WriteCluster("plan_est_a_" + fixture, model.string(), "balanced"));
  Result from_headers = RunLayerpipe(
      "plan --json " + WriteCluster("plan_est_b_" + fixture, FixtureDir(fixture), "balanced"));
  ASSERT_EQ(from_config.exit_code, 0) << from_config.out;
  ASSERT_EQ(from_headers.exit_code, 0) << from_headers.out;
  auto a = nlohmann::json::parse(from_config.out);
  auto b = nlohmann::json::parse(from_headers.out);
  EXPECT_EQ(b["weights_from"], "safetensors");
  EXPECT_EQ(a["device_map"], b["device_map"]);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(a["stages"][i]["weight_bytes"], b["stages"][i]["weight_bytes"]) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PlanEstimate,
                         ::testing::Values("qwen3-small-sharded", "qwen2-gptq-small",
                                           "qwen3-awq-small"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// The article's case: Qwen2-72B in GPTQ Int4 on 24 GB cards with the default limits.
std::string Write72bCluster(const std::string& name, int gpus) {
  const fs::path model = TempPath(name + "_model");
  fs::create_directories(model);
  std::ofstream(model / "config.json") << ModelConfigToJson(FindPreset("qwen2-72b-gptq")->config);
  const fs::path file = TempPath(name) / "cluster.yaml";
  fs::create_directories(file.parent_path());
  std::ofstream out(file);
  out << "model: {path: " << model.string() << "}\ndevice_map: layered\nmax_memory: {";
  for (int i = 0; i < gpus; ++i) out << (i ? ", " : "") << "gpu" << i << ": 24GiB";
  out << "}\nworkers:\n";
  for (int i = 0; i < gpus; ++i) {
    out << "  - {name: gpu" << i << ", device: \"cuda:" << i
        << "\", address: \"127.0.0.1:" << 7001 + i << "\"}\n";
  }
  return file.string();
}

TEST(PlanCli, Int4SeventyTwoBillionFitsFourCardsOf24GiB) {
  Result r = RunLayerpipe("plan --json " + Write72bCluster("plan_72b_four", 4));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["stages"].size(), 4u);
  // get_device_map(4, 80): 20 / 21 / 21 / 18 layers.
  const std::vector<std::pair<int, int>> want = {{0, 20}, {20, 41}, {41, 62}, {62, 80}};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(j["stages"][i]["layers"], nlohmann::json({want[i].first, want[i].second})) << i;
    EXPECT_LE(j["stages"][i]["total_bytes"].get<uint64_t>(), 24ull << 30) << i;
  }
  // ~4.25 bits per weight: 20 layers of 0.87 B parameters each in about 9 GiB, not 32.
  EXPECT_LT(j["stages"][0]["weight_bytes"].get<uint64_t>(), 12ull << 30);
}

TEST(PlanCli, Int4SeventyTwoBillionOnTwoCardsHasRoomForFewSequences) {
  // The weights fit two 24 GiB cards; the KV cache gets the 2 GiB left on the fuller one:
  // 813 blocks of 16 tokens, three sequences of 4096 tokens (four cards hold 16 and more).
  Result r = RunLayerpipe("plan " + Write72bCluster("plan_72b_two", 2));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("KV cache    813 blocks of 16 tokens on every worker: 13008 tokens, 3 "
                       "sequences at max_context (the smallest stage's)"),
            std::string::npos)
      << r.out;
  r = RunLayerpipe("plan " + Write72bCluster("plan_72b_one", 1));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("worker gpu0) cannot hold"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("but has 24.00 GiB (max_memory)"), std::string::npos) << r.out;
}

TEST(PlanCli, ConfigWithFewerLayersThanTheCheckpointIsRefusedEverywhere) {
  // config.json says 3 layers, the checkpoint holds 4: plan, a worker and the coordinator all
  // refuse it (before, only check-model did, and the cluster served a truncated model).
  const fs::path model = TempPath("fewer_layers");
  fs::create_directories(model);
  fs::copy_file(FixtureDir("qwen2-small") + "/model.safetensors", model / "model.safetensors",
                fs::copy_options::overwrite_existing);
  auto config = lp::testing::LoadJson(FixtureDir("qwen2-small") + "/config.json");
  config["num_hidden_layers"] = 3;
  std::ofstream(model / "config.json") << config.dump(2);
  const std::string file = WriteCluster("fewer_layers_cluster", model.string(), "balanced");
  const std::string bin = fs::path(LP_LAYERPIPE_BIN).parent_path().string();
  for (const std::string& cmd :
       {std::string(LP_LAYERPIPE_BIN) + " plan " + file,
        bin + "/layerpipe-worker " + file + " --name c0", bin + "/layerpipe-coordinator " + file}) {
    Result r = lp::testing::RunCommand(cmd);
    EXPECT_EQ(r.exit_code, 1) << cmd << "\n" << r.out;
    EXPECT_NE(r.out.find("tensor 'model.layers.3."), std::string::npos) << cmd << "\n" << r.out;
    EXPECT_NE(r.out.find("with this config.json (3 layers)"), std::string::npos) << r.out;
  }
}

TEST(PlanCli, AMissingModelPathNamesTheKeyTheFolderAndTheHub) {
  const fs::path dir = TempPath("hub_id");
  fs::create_directories(dir);
  std::ofstream(dir / "cluster.yaml")
      << "model: {path: Qwen/Qwen3-8B}\nworkers:\n  - {name: c0, device: cpu, address: "
         "\"127.0.0.1:7101\"}\n";
  Result r = RunLayerpipe("plan " + (dir / "cluster.yaml").string());
  EXPECT_EQ(r.exit_code, 1) << r.out;
  for (const std::string& part :
       {std::string("model.path 'Qwen/Qwen3-8B' (relative to the cluster file's folder ") +
            dir.string(),
        std::string("which is not a directory"), std::string("looks like a Hugging Face Hub id"),
        std::string("huggingface-cli download Qwen/Qwen3-8B")}) {
    EXPECT_NE(r.out.find(part), std::string::npos) << part << "\n" << r.out;
  }
}

TEST(PlanCli, BadClusterFileFailsWithTheReason) {
  Result r = RunLayerpipe("plan " + WriteCluster("plan_bad", FixtureDir("qwen3-tiny"), "fastest"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("cluster.yaml: line 2, device_map: unknown strategy 'fastest'"),
            std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace lp
