// The `layerpipe` program as users run it: exact flags, exit codes, JSON output, and clean
// failures (exit 1 with a message, never a crash) on every kind of broken checkpoint.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>

#include "broken_checkpoints.h"
#include "fixture_util.h"
#include "run_command.h"

namespace lp {
namespace {

using lp::testing::FixtureDir;

using Result = lp::testing::CommandResult;
using lp::testing::RunLayerpipe;

TEST(Cli, LogitsJsonMatchesReference) {
  const auto expected = lp::testing::LoadJson(FixtureDir("qwen3-tiny") + "/expected.json");
  const auto& c = expected["cases"][1];
  std::string ids;
  for (const auto& id : c["prompt"])
    ids += (ids.empty() ? "" : ",") + std::to_string(id.get<int>());
  const std::string dump =
      ::testing::TempDir() + "/lp_cli_logits_" + std::to_string(getpid()) + ".f32";
  Result r = RunLayerpipe("logits --model " + FixtureDir("qwen3-tiny") + " --prompt-ids " + ids +
                          " --slices 3 --top 10 --json --dump " + dump);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["argmax"], c["argmax"]);
  ASSERT_EQ(j["top"].size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(j["top"][i]["id"], c["top10_ids"][i]);
    EXPECT_NEAR(j["top"][i]["logit"].get<double>(), c["top10_logits"][i].get<double>(), 1e-3);
  }
  EXPECT_EQ(std::filesystem::file_size(dump), 151936u * 4);
}

TEST(Cli, CheckModelSummarizesAValidCheckpoint) {
  Result r = RunLayerpipe("check-model " + FixtureDir("qwen3-small-sharded"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("Qwen3ForCausalLM"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("BF16"), std::string::npos) << r.out;
}

TEST(Cli, CheckModelSummarizesAnInt4Checkpoint) {
  Result r = RunLayerpipe("check-model " + FixtureDir("qwen2-gptq-small"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  for (const char* part : {"quantization  gptq (gptq format), 4 bits, group size 32, symmetric "
                           "zeros, act order off (0 linears with g_idx out of order)",
                           "linears       21 packed in 4 bits, 0 dense", "I32", "F16"}) {
    EXPECT_NE(r.out.find(part), std::string::npos) << part << "\n" << r.out;
  }
  r = RunLayerpipe("check-model " + FixtureDir("qwen3-awq-small"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("awq (gemm), 4 bits, group size 32, asymmetric zeros"), std::string::npos)
      << r.out;
}

class InitModel : public ::testing::TestWithParam<std::string> {};

TEST_P(InitModel, WritesACheckpointThatChecksAndRuns) {
  const std::string dir =
      ::testing::TempDir() + "/lp_cli_" + GetParam() + "_" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  Result init = RunLayerpipe("init-model --preset " + GetParam() + " --out " + dir +
                             " --seed 7 --shard-mb 20");
  ASSERT_EQ(init.exit_code, 0) << init.out;
  EXPECT_TRUE(std::filesystem::exists(dir + "/model.safetensors.index.json"));
  int shards = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    shards += e.path().extension() == ".safetensors";
  }
  EXPECT_GE(shards, 2) << "sharded";
  Result check = RunLayerpipe("check-model " + dir);
  EXPECT_EQ(check.exit_code, 0) << check.out;
  Result one = RunLayerpipe("greedy --model " + dir + " --prompt-ids 1,2,3 --max-tokens 5 --json");
  Result three = RunLayerpipe("greedy --model " + dir +
                              " --prompt-ids 1,2,3 --max-tokens 5 --slices 3 --json");
  ASSERT_EQ(one.exit_code, 0) << one.out;
  ASSERT_EQ(three.exit_code, 0) << three.out;
  EXPECT_EQ(nlohmann::json::parse(one.out)["token_ids"],
            nlohmann::json::parse(three.out)["token_ids"]);
  std::filesystem::remove_all(dir);
}

// demo-gptq: the demo's shape with packed random GPTQ weights (init-model's Int4 writer).
INSTANTIATE_TEST_SUITE_P(Presets, InitModel, ::testing::Values("demo", "demo-gptq"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(Cli, CheckModelSaysWhenThereIsNoTokenizer) {
  Result r = RunLayerpipe("check-model " + FixtureDir("qwen2-small"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("accepts token-id prompts only"), std::string::npos) << r.out;
  r = RunLayerpipe("check-model " + FixtureDir("qwen3-tiny"));
  EXPECT_EQ(r.out.find("tokenizer     none"), std::string::npos) << r.out;
}

TEST(Cli, VersionAndOneExitCodeScheme) {
  const std::string bin = std::filesystem::path(LP_LAYERPIPE_BIN).parent_path().string();
  for (const std::string program : {"layerpipe", "layerpipe-worker", "layerpipe-coordinator"}) {
    Result v = lp::testing::RunCommand(bin + "/" + program + " --version");
    EXPECT_EQ(v.exit_code, 0) << v.out;
    EXPECT_EQ(v.out.rfind(program + " ", 0), 0u) << v.out;
    // Usage errors are 2 (CLI11's own codes are 100 and up).
    EXPECT_EQ(lp::testing::RunCommand(bin + "/" + program + " --no-such-flag").exit_code, 2);
  }
  EXPECT_EQ(RunLayerpipe("").exit_code, 2);  // no subcommand
  EXPECT_EQ(RunLayerpipe("plan").exit_code, 2);
  EXPECT_EQ(RunLayerpipe("check-model /nonexistent").exit_code, 1);  // a runtime error
}

TEST(Cli, TheProgramNeedsNoCudaLibrary) {
  // Client commands must start at once: CUDA (cuBLAS alone is hundreds of MB) lives in
  // layerpipe-cuda, which `bench` and `--backend cuda` run in layerpipe's place.
  Result ldd = lp::testing::RunCommand(std::string("ldd ") + LP_LAYERPIPE_BIN);
  ASSERT_EQ(ldd.exit_code, 0) << ldd.out;
  for (const char* lib : {"cublas", "cudart", "libcuda"}) {
    EXPECT_EQ(ldd.out.find(lib), std::string::npos) << lib << "\n" << ldd.out;
  }
  const auto cuda = std::filesystem::path(LP_LAYERPIPE_BIN).parent_path() / "layerpipe-cuda";
  Result bench = RunLayerpipe("bench --help");
  if (std::filesystem::exists(cuda)) {
    EXPECT_EQ(bench.exit_code, 0) << bench.out;
    EXPECT_NE(bench.out.find("layerpipe-cuda bench"), std::string::npos) << bench.out;
  } else {
    EXPECT_EQ(bench.exit_code, 1) << bench.out;
    EXPECT_NE(bench.out.find("needs the CUDA backend"), std::string::npos) << bench.out;
  }
}

TEST(Cli, ClientFlagsAreCheckedBeforeDialing) {
  Result r = RunLayerpipe("generate --endpoint localhost --prompt hi");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("needs host:port"), std::string::npos) << r.out;
  r = RunLayerpipe("status --endpoint 127.0.0.1");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  r = RunLayerpipe("generate --endpoint 127.0.0.1:1 --prompt-ids ''");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("no token ids given"), std::string::npos) << r.out;
  r = RunLayerpipe("load-test --endpoint 127.0.0.1:1 --concurrency 0");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_LT(r.out.size(), 300u) << r.out;
  // Well-formed endpoints pass the check and fail only at dialing (nothing listens): exit 1.
  for (const char* endpoint : {"127.0.0.1:1", "localhost:1", "[::1]:1"}) {
    r = RunLayerpipe(std::string("status --endpoint ") + endpoint);
    EXPECT_EQ(r.exit_code, 1) << endpoint << ": " << r.out;
    EXPECT_EQ(r.out.find("needs host:port"), std::string::npos) << r.out;
  }
}

TEST(Cli, InitModelNeverLeavesAPartialModelNorOverwritesWithoutForce) {
  namespace fs = std::filesystem;
  const fs::path root =
      fs::path(::testing::TempDir()) / ("lp_cli_init_" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "taken");
  std::ofstream(root / "taken" / "config.json") << "{}";
  Result r = RunLayerpipe("init-model --preset demo --out " + (root / "taken").string());
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("--force replaces it"), std::string::npos) << r.out;
  // A failure half-way (no tokenizer to copy) leaves nothing behind.
  r = RunLayerpipe("init-model --preset demo --out " + (root / "new").string() +
                   " --tokenizer /nonexistent");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_FALSE(fs::exists(root / "new"));
  int leftovers = 0;
  for (const auto& e : fs::directory_iterator(root)) leftovers += e.path().filename() != "taken";
  EXPECT_EQ(leftovers, 0) << "no partial folder";
  r = RunLayerpipe("init-model --preset demo --out " + (root / "taken").string() + "/ --force");
  EXPECT_EQ(r.exit_code, 0) << "a trailing slash names the folder: " << r.out;
  EXPECT_EQ(RunLayerpipe("check-model " + (root / "taken").string()).exit_code, 0);
  fs::remove_all(root);
}

TEST(Cli, BadArgumentsAreUsageErrors) {
  EXPECT_NE(
      RunLayerpipe("logits --model " + FixtureDir("qwen2-small") + " --prompt-ids 1,x").exit_code,
      0);
  EXPECT_NE(
      RunLayerpipe("logits --model " + FixtureDir("qwen2-small") + " --prompt-ids 1 --slices 9")
          .exit_code,
      0);
  EXPECT_NE(RunLayerpipe("init-model --preset nope --out /tmp/x").exit_code, 0);
  EXPECT_NE(RunLayerpipe("logits --model /nonexistent --prompt-ids 1").exit_code, 0);
  EXPECT_NE(
      RunLayerpipe("logits --model " + FixtureDir("qwen2-small") + " --prompt-ids 99999").exit_code,
      0);
}

class CliBroken : public ::testing::TestWithParam<lp::testing::Defect> {};

TEST_P(CliBroken, CheckModelExitsOneWithAMessage) {
  const std::string dir = lp::testing::MakeBroken(
      ::testing::TempDir() + "/lp_cli_broken_" + std::to_string(getpid()), GetParam().name);
  Result r = RunLayerpipe("check-model " + dir);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("error: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(GetParam().message), std::string::npos) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Defects, CliBroken, ::testing::ValuesIn(lp::testing::Defects()),
                         [](const auto& info) { return info.param.name; });

TEST(Cli, TokenizeTextStdinAndJson) {
  const std::string model = "--model " + FixtureDir("qwen3-tiny");
  Result r = RunLayerpipe("tokenize " + model + " --text 'Hello, world!' --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["ids"], nlohmann::json({9707, 11, 1879, 0}));
  // Standard input is read as is: the trailing newline is text too (198 is "\n").
  r = RunLayerpipe("tokenize " + model + " < /dev/null");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "\n");
  const std::string cmd =
      "printf 'hi\\n' | " + std::string(LP_LAYERPIPE_BIN) + " tokenize " + model + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 256> buf{};
  size_t n = fread(buf.data(), 1, buf.size() - 1, p);
  pclose(p);
  EXPECT_EQ(std::string(buf.data(), n), "6023,198\n");
}

TEST(Cli, DetokenizeIdsAndRejectsBadOnes) {
  const std::string model = "--model " + FixtureDir("qwen3-tiny");
  Result r = RunLayerpipe("detokenize " + model + " --ids 151644,872,198,6023,151645");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "<|im_start|>user\nhi<|im_end|>");
  r = RunLayerpipe("detokenize " + model + " --ids 1,x");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("'x' is not a token id"), std::string::npos) << r.out;
  r = RunLayerpipe("tokenize --model /nonexistent --text hi");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("tokenizer.json"), std::string::npos) << r.out;
}

TEST(Cli, BenchTokenizerReportsThroughput) {
  Result r = RunLayerpipe("bench-tokenizer --model " + FixtureDir("qwen3-tiny") +
                          " --mb 0.2 --repeat 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["mb_per_s"].get<double>(), 0);
  EXPECT_GT(j["tokens"].get<int64_t>(), 10000);
}

}  // namespace
}  // namespace lp
