// Placement (common/placement.h): the article's get_device_map reproduced exactly, every
// strategy on real Qwen shapes, explicit maps in every Hugging Face form, and every refusal.
#include "common/placement.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/presets.h"
#include "common/protocol.h"
#include "common/stage_memory.h"

namespace lp {
namespace {

ModelConfig Preset(const std::string& name) { return FindPreset(name)->config; }

// A cluster file with `n` workers "w0".."w{n-1}" on devices kind:0..kind:n-1.
std::string ClusterYaml(int n, const std::string& kind, const std::string& device_map,
                        const std::string& extra = "") {
  std::string y =
      absl::StrCat("model: {path: m}\ndevice_map: ", device_map, "\n", extra, "\nworkers:\n");
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&y, "  - {name: w", i, ", device: \"", kind, ":", i,
                    "\", address: \"127.0.0.1:", 7001 + i, "\"}\n");
  }
  return y;
}

ClusterConfig Cluster(const std::string& yaml) {
  auto c = ParseClusterConfig(yaml, "/models");
  EXPECT_TRUE(c.ok()) << c.status() << "\n" << yaml;
  return c.ok() ? *c : ClusterConfig{};
}

absl::StatusOr<Plan> PlanFor(const std::string& yaml, const ModelConfig& model) {
  return PlanCluster(Cluster(yaml), model, *EstimateWeightSizes(model));
}

std::vector<int64_t> LayerCounts(const Plan& plan) {
  std::vector<int64_t> counts;
  for (const Stage& s : plan.stages) counts.push_back(s.num_layers());
  return counts;
}

// Structural invariants of every plan: contiguous, complete, embed first, head last, in budget.
void ExpectWellFormed(const Plan& plan, const ModelConfig& model) {
  ASSERT_FALSE(plan.stages.empty());
  int64_t next = 0;
  double shares = 0;
  for (size_t i = 0; i < plan.stages.size(); ++i) {
    const Stage& s = plan.stages[i];
    EXPECT_EQ(s.begin, next) << s.worker;
    EXPECT_LE(s.begin, s.end) << s.worker;
    EXPECT_EQ(s.embed, i == 0) << s.worker;
    EXPECT_EQ(s.head, i + 1 == plan.stages.size()) << s.worker;
    EXPECT_TRUE(s.num_layers() > 0 || s.embed || s.head) << s.worker << " holds nothing";
    EXPECT_LE(s.total_bytes(), s.budget_bytes) << s.worker;
    next = s.end;
    shares += s.time_share;
  }
  EXPECT_EQ(next, model.num_layers);
  EXPECT_NEAR(shares, 1.0, 1e-9);
}

// ---- the article's get_device_map

struct ArticleCase {
  int gpus, layers;
  std::vector<int> counts;  // layers per GPU, from running the article's Python function
};

TEST(ArticleDeviceMap, MatchesThePythonFunction) {
  const std::vector<ArticleCase> cases = {
      {4, 80, {20, 21, 21, 18}},
      {2, 36, {18, 18}},
      {3, 28, {9, 10, 9}},
      {8, 64, {8, 9, 9, 9, 9, 9, 9, 2}},
      {4, 28, {7, 8, 8, 5}},
      {1, 6, {6}},
      {3, 6, {2, 3, 1}},
      {2, 24, {12, 12}},
      {4, 64, {16, 17, 17, 14}},
      {3, 80, {27, 28, 25}},
      {5, 80, {16, 17, 17, 17, 13}},
      {6, 94, {15, 16, 16, 16, 16, 15}},
      {7, 48, {7, 8, 8, 8, 8, 8, 1}},
      {2, 1, {1, 0}},
      {4, 2, {0, 1, 1, 0}},
      {3, 40, {13, 14, 13}},
      {8, 80, {10, 11, 11, 11, 11, 11, 11, 4}},
      {6, 28, {4, 5, 5, 5, 5, 4}},
      {5, 36, {7, 8, 8, 8, 5}},
  };
  for (const ArticleCase& c : cases) {
    // The Python function assigns layers in order, so per-GPU counts fix the whole map.
    std::map<std::string, int> expected = {
        {"model.embed_tokens", 0}, {"model.norm", c.gpus - 1}, {"lm_head", c.gpus - 1}};
    int layer = 0;
    for (int g = 0; g < c.gpus; ++g) {
      for (int i = 0; i < c.counts[g]; ++i) expected[absl::StrCat("model.layers.", layer++)] = g;
    }
    EXPECT_EQ(ArticleDeviceMap(c.gpus, c.layers), expected) << c.gpus << ", " << c.layers;
  }
}

TEST(ArticleDeviceMap, SameMapAsPythonForEveryShapeUpTo16GpusAnd200Layers) {
  // The same hash computed over the Python function's maps (sorted keys, every character and
  // device) for num_gpus 1..16 and num_layers 1..200.
  constexpr uint64_t kMod = (1ull << 61) - 1;
  uint64_t h = 0;
  for (int g = 1; g <= 16; ++g) {
    for (int l = 1; l <= 200; ++l) {
      for (const auto& [key, device] : ArticleDeviceMap(g, l)) {
        for (char ch : key) h = uint64_t(((unsigned __int128)h * 131 + uint64_t(ch)) % kMod);
        h = uint64_t(((unsigned __int128)h * 131 + uint64_t(device + 7)) % kMod);
      }
    }
  }
  EXPECT_EQ(h, 34542412582980670ull);
}

// ---- layered

TEST(Layered, PlansTheArticleSplitOnRealShapes) {
  const std::vector<std::tuple<std::string, int, std::vector<int64_t>>> cases = {
      {"qwen2-72b", 4, {20, 21, 21, 18}}, {"qwen3-8b", 2, {18, 18}},
      {"qwen3-0.6b", 3, {9, 10, 9}},      {"qwen3-32b", 8, {8, 9, 9, 9, 9, 9, 9, 2}},
      {"qwen3-0.6b", 4, {7, 8, 8, 5}},
  };
  for (const auto& [preset, gpus, counts] : cases) {
    const ModelConfig model = Preset(preset);
    auto plan = PlanFor(ClusterYaml(gpus, "cuda", "layered", "limits: {max_batch: 4}"), model);
    ASSERT_TRUE(plan.ok()) << preset << ": " << plan.status();
    ExpectWellFormed(*plan, model);
    EXPECT_EQ(LayerCounts(*plan), counts) << preset;
    nlohmann::json expected(ArticleDeviceMap(gpus, int(model.num_layers)));
    EXPECT_EQ(DeviceMapJson(*plan), expected) << preset;
  }
}

TEST(Layered, RefusesShapesWhereTheArticleLeavesADeviceEmpty) {
  // get_device_map(16, 64) rounds each GPU up to 5 layers and runs out at GPU 12.
  auto plan = PlanFor(ClusterYaml(16, "cuda", "layered"), Preset("qwen3-32b"));
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("cuda:13 (worker w13) no module"), std::string::npos)
      << plan.status();
  EXPECT_NE(plan.status().message().find("balanced"), std::string::npos) << plan.status();
}

// ---- balanced / auto

TEST(Balanced, SlowestStageWithin5PercentOfTheMeanOnRealShapes) {
  for (const std::string preset : {"qwen3-8b", "qwen3-32b", "qwen2-72b"}) {
    const ModelConfig model = Preset(preset);
    for (int gpus = 2; gpus <= 4; ++gpus) {
      for (const std::string strategy : {"balanced", "auto"}) {
        auto plan = PlanFor(ClusterYaml(gpus, "cuda", strategy, "limits: {max_batch: 4}"), model);
        ASSERT_TRUE(plan.ok()) << preset << " on " << gpus << ": " << plan.status();
        ExpectWellFormed(*plan, model);
        EXPECT_LE(plan->slowest_over_mean, 1.05) << preset << " on " << gpus;
        for (const Stage& s : plan->stages) EXPECT_GT(s.num_layers(), 0) << preset;
      }
    }
  }
}

TEST(Balanced, SmallTiedModelUsesEveryDevice) {
  // Qwen3-0.6B: the tied head reads the whole embedding table, about ten layers' worth, so
  // the last stage gets few layers; Hugging Face leaves GPU 0 empty here.
  const ModelConfig model = Preset("qwen3-0.6b");
  auto two = PlanFor(ClusterYaml(2, "cuda", "balanced"), model);
  ASSERT_TRUE(two.ok()) << two.status();
  ExpectWellFormed(*two, model);
  EXPECT_LE(two->slowest_over_mean, 1.05);
  EXPECT_GT(two->stages[0].num_layers(), two->stages[1].num_layers());
  // On four, whole layers allow no better than 10 layers' worth against a mean of 9.5.
  auto four = PlanFor(ClusterYaml(4, "cuda", "balanced"), model);
  ASSERT_TRUE(four.ok()) << four.status();
  ExpectWellFormed(*four, model);
  EXPECT_LE(four->slowest_over_mean, 1.06);
}

TEST(Balanced, HeterogeneousBudgetsShiftLayersToTheBiggerCards) {
  const ModelConfig model = Preset("qwen3-32b");
  auto plan = PlanFor(
      ClusterYaml(3, "cuda", "balanced", "max_memory: {\"cuda:0\": 24GiB, 1: 48GiB, w2: 80GiB}"),
      model);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWellFormed(*plan, model);
  EXPECT_EQ(plan->stages[0].budget_bytes, 24 * kGiB);
  EXPECT_EQ(plan->stages[1].budget_bytes, 48 * kGiB);
  EXPECT_EQ(plan->stages[2].budget_bytes, 80 * kGiB);
  EXPECT_LT(plan->stages[0].num_layers(), plan->stages[1].num_layers());
}

TEST(Balanced, CountsTheKvCacheAgainstTheBudget) {
  // Qwen3-8B's weights (15.3 GiB) fit two 12 GiB cards with room for the KV blocks of one
  // sequence of 4096 tokens, not two 8.5 GiB cards.
  const ModelConfig model = Preset("qwen3-8b");
  auto tight =
      PlanFor(ClusterYaml(2, "cuda", "balanced", "max_memory: {0: 8.5GiB, 1: 8.5GiB}\n"), model);
  ASSERT_FALSE(tight.ok());
  const std::string msg(tight.status().message());
  EXPECT_NE(msg.find("needs"), std::string::npos) << msg;
  EXPECT_NE(msg.find("KV cache"), std::string::npos) << msg;
  EXPECT_NE(msg.find("but has 8.50 GiB (max_memory)"), std::string::npos) << msg;
  // On 12 GiB cards the KV cache gets what the budgets leave: more than one sequence of 4096
  // tokens, fewer than the 16 of max_batch; every stage holds the same blocks.
  auto plan =
      PlanFor(ClusterYaml(2, "cuda", "balanced", "max_memory: {0: 12GiB, 1: 12GiB}\n"), model);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWellFormed(*plan, model);
  EXPECT_GT(plan->kv_blocks, 4096 / 16);
  EXPECT_LT(plan->kv_blocks, 16 * 4096 / 16);
  EXPECT_EQ(plan->kv_blocks,
            std::min(plan->stages[0].kv_blocks_fit, plan->stages[1].kv_blocks_fit));
  for (const Stage& s : plan->stages) {
    EXPECT_LE(s.total_bytes(), 12ull << 30) << s.worker;
    EXPECT_EQ(s.kv_bytes, uint64_t(plan->kv_blocks) * uint64_t(s.num_layers()) * 2 * 1024 * 16 * 2)
        << s.worker;
  }
  // Unlimited (CPU) budgets: enough for max_batch sequences of max_context, no more.
  auto cpu = PlanFor(ClusterYaml(2, "cpu", "balanced", "limits: {max_batch: 4, max_context: 100}"),
                     Preset("demo"));
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  EXPECT_EQ(cpu->kv_blocks, 4 * 7);
  // limits.kv_blocks sets the count, within every budget.
  auto fixed = PlanFor(ClusterYaml(2, "cuda", "balanced",
                                   "max_memory: {0: 12GiB, 1: 12GiB}\nlimits: {kv_blocks: 300}"),
                       model);
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_EQ(fixed->kv_blocks, 300);
  auto over = PlanFor(ClusterYaml(2, "cuda", "balanced",
                                  "max_memory: {0: 12GiB, 1: 12GiB}\nlimits: {kv_blocks: 100000}"),
                      model);
  ASSERT_FALSE(over.ok());
  EXPECT_NE(std::string(over.status().message()).find("limits.kv_blocks 100000 is more than"),
            std::string::npos)
      << over.status();
}

TEST(Balanced, CpuWorkersAreUnlimitedByDefault) {
  const ModelConfig model = Preset("demo");
  auto plan = PlanFor(ClusterYaml(3, "cpu", "auto"), model);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWellFormed(*plan, model);
  for (const Stage& s : plan->stages) {
    EXPECT_EQ(s.budget_source, BudgetSource::kUnlimitedCpu);
    EXPECT_EQ(s.reserve_bytes, kCpuReserve);
  }
  EXPECT_EQ(DeviceMapJson(*plan)["lm_head"], "cpu");
}

TEST(Balanced, RefusesMoreWorkersThanLayers) {
  auto plan = PlanFor(ClusterYaml(8, "cpu", "balanced"), Preset("demo"));
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("8 workers for 6 layers"), std::string::npos)
      << plan.status();
}

TEST(Budgets, ACudaIpcRingIsCountedWhereTheNextLinkUsesIt) {
  // Each GPU worker whose next worker is on its host exports kIpcRing activation buffers.
  const ModelConfig model = Preset("qwen3-8b");
  const std::string limits = "limits: {max_batch: 4, max_step_tokens: 1024}\n";
  auto ipc = PlanFor(ClusterYaml(3, "cuda", "balanced", limits), model);
  auto grpc = PlanFor(ClusterYaml(3, "cuda", "balanced", limits + "transport: grpc"), model);
  ASSERT_TRUE(ipc.ok()) << ipc.status();
  ASSERT_TRUE(grpc.ok()) << grpc.status();
  const uint64_t ring = uint64_t(kIpcRing) * 1024 * uint64_t(model.hidden_size) * 4;
  for (size_t d = 0; d < 3; ++d) {
    const uint64_t extra = d < 2 ? ring : 0;  // the last worker sends no activations
    EXPECT_EQ(ipc->stages[d].workspace_bytes, grpc->stages[d].workspace_bytes + extra) << d;
  }
}

// ---- balanced_low_0

TEST(BalancedLow0, FirstDeviceKeepsOnlyTheEmbeddingWhenTheRestFits) {
  const ModelConfig model = Preset("qwen3-8b");
  auto plan = PlanFor(ClusterYaml(3, "cuda", "balanced_low_0"), model);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWellFormed(*plan, model);
  EXPECT_EQ(plan->stages[0].num_layers(), 0);
  EXPECT_TRUE(plan->stages[0].embed);
  EXPECT_NEAR(plan->stages[1].time_share, plan->stages[2].time_share, 0.03);
}

TEST(BalancedLow0, Qwen2_72bOnTwo80GBCardsSpillsNothing) {
  // Hugging Face sends lm_head to disk here; layerpipe gives GPU 0 the fewest layers that let
  // GPU 1 hold the rest.
  const ModelConfig model = Preset("qwen2-72b");
  const std::string yaml = ClusterYaml(2, "cuda", "balanced_low_0",
                                       "max_memory: {0: 80GB, 1: 80GB}\n"
                                       "limits: {max_batch: 4}");
  auto plan = PlanFor(yaml, model);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWellFormed(*plan, model);
  const Stage& s0 = plan->stages[0];
  const Stage& s1 = plan->stages[1];
  EXPECT_GT(s0.num_layers(), 0);
  EXPECT_LT(s0.num_layers(), s1.num_layers());
  // One layer fewer on GPU 0 would overflow GPU 1.
  const StageCost cost(model, *EstimateWeightSizes(model), Cluster(yaml).limits);
  EXPECT_GT(cost.Bytes(true, s1.begin - 1, s1.end, false, true, false).total(), s1.budget_bytes);
}

// ---- sequential

TEST(Sequential, FillsEachDeviceUpToItsBudgetInOrder) {
  const ModelConfig model = Preset("qwen3-8b");
  const std::string yaml = ClusterYaml(3, "cuda", "sequential", "max_memory: {0: 8GiB, 1: 8GiB}");
  auto plan = PlanFor(yaml, model);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWellFormed(*plan, model);
  const StageCost cost(model, *EstimateWeightSizes(model), Cluster(yaml).limits);
  const Stage& s0 = plan->stages[0];
  const Stage& s1 = plan->stages[1];
  EXPECT_GT(cost.Bytes(true, 0, s0.end + 1, true, false, true).total(), s0.budget_bytes);
  EXPECT_GT(cost.Bytes(true, s1.begin, s1.end + 1, false, false, true).total(), s1.budget_bytes);
  EXPECT_EQ(plan->stages[2].budget_source, BudgetSource::kAssumedGpu);
  EXPECT_FALSE(plan->notes.empty());
}

TEST(Sequential, LeavesEveryLaterWorkerItsMinimum) {
  const ModelConfig model = Preset("demo");
  auto plan = PlanFor(ClusterYaml(3, "cpu", "sequential"), model);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWellFormed(*plan, model);
  EXPECT_EQ(LayerCounts(*plan), (std::vector<int64_t>{5, 1, 0}));
}

// ---- explicit maps

TEST(Explicit, FullHuggingFaceMapWithIntegersAndStrings) {
  const ModelConfig model = Preset("demo");  // 6 layers
  const std::string map =
      "{model.embed_tokens: 0, model.layers.0: 0, model.layers.1: \"cuda:0\", "
      "model.layers.2: 1, model.layers.3: w1, model.layers.4: cuda:2, model.layers.5: 2, "
      "model.norm: 2, lm_head: \"cuda:2\", model.rotary_emb: 0}";
  auto plan = PlanFor(ClusterYaml(3, "cuda", map), model);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWellFormed(*plan, model);
  EXPECT_EQ(LayerCounts(*plan), (std::vector<int64_t>{2, 2, 2}));
  EXPECT_EQ(plan->strategy, DeviceMapStrategy::kExplicit);
  const nlohmann::json hf = DeviceMapJson(*plan);
  EXPECT_EQ(hf.size(), 9u);
  EXPECT_EQ(hf["model.layers.3"], 1);
  EXPECT_EQ(hf["lm_head"], 2);
}

TEST(Explicit, WholeModelOnOneDevice) {
  const ModelConfig model = Preset("demo");
  const std::string one_worker =
      "model: {path: m}\nworkers:\n  - {name: g, device: \"cuda:1\", address: \"h:1\"}\n";
  for (const std::string form : {"\"cuda:1\"", "1", "{\"\": \"cuda:1\"}", "{\"\": g}"}) {
    auto plan = PlanFor(one_worker + "device_map: " + form + "\n", model);
    ASSERT_TRUE(plan.ok()) << form << ": " << plan.status();
    ExpectWellFormed(*plan, model);
    ASSERT_EQ(plan->stages.size(), 1u);
    EXPECT_EQ(plan->stages[0].num_layers(), 6);
    EXPECT_EQ(DeviceMapJson(*plan)["model.layers.5"], 1) << form;
  }
}

TEST(Explicit, PrefixesPlaceGroupsOfModules) {
  const ModelConfig model = Preset("demo");
  auto plan = PlanFor(ClusterYaml(2, "cpu",
                                  "{model.embed_tokens: cpu:0, model.layers: cpu:0, "
                                  "model.norm: cpu:1, lm_head: cpu:1}"),
                      model);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectWellFormed(*plan, model);
  EXPECT_EQ(LayerCounts(*plan), (std::vector<int64_t>{6, 0}));
}

TEST(Explicit, TiedHeadOnAnotherDeviceCountsItsOwnCopyOfTheTable) {
  const ModelConfig model = Preset("qwen3-0.6b");  // tied embeddings
  const WeightSizes sizes = *EstimateWeightSizes(model);
  uint64_t layers = 0;
  for (const ModuleSize& l : sizes.layers) layers += l.bytes;
  auto one = PlanFor(ClusterYaml(1, "cuda", "auto"), model);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->stages[0].weight_bytes, sizes.embed.bytes + layers + sizes.norm.bytes);
  auto two = PlanFor(ClusterYaml(2, "cuda", "balanced"), model);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->stages[0].weight_bytes + two->stages[1].weight_bytes,
            2 * sizes.embed.bytes + layers + sizes.norm.bytes);
}

struct Refusal {
  std::string device_map;
  std::string message;  // a part of the error
};

TEST(Explicit, RefusesWhatAPipelineCannotRun) {
  const ModelConfig model = Preset("demo");
  const std::string rest =
      "model.layers.2: 1, model.layers.3: 1, model.layers.4: 1, "
      "model.layers.5: 1, model.norm: 1, lm_head: 1";
  const std::vector<Refusal> cases = {
      {"{\"\": 0, lm_head: 1}",
       "lm_head is placed twice: by device_map[\"\"] (line 2) and by "
       "device_map[\"lm_head\"] (line 2)"},
      {"{model.embed_tokens: 0, model.layers.0: 0, model.layers.0: 0, model.layers.1: 0, " + rest +
           "}",
       "model.layers.0 is placed twice"},
      {"{model.embed_tokens: 0, model.layers.0: 0, " + rest + "}", "places model.layers.1 nowhere"},
      {"{model.embed_tokens: 0, model.layers.0: 0, model.layers.1: 1, model.layers.2: 0, "
       "model.layers.3: 1, model.layers.4: 1, model.layers.5: 1, model.norm: 1, lm_head: 1}",
       "model.layers.2 goes back to cuda:0 (worker w0) after model.layers.1 went to cuda:1"},
      {"{model.embed_tokens: 1, model.layers.0: 1, model.layers.1: 0, model.layers.2: 0, "
       "model.layers.3: 0, model.layers.4: 0, model.layers.5: 0, model.norm: 0, lm_head: 0}",
       "list the workers in pipeline order"},
      {"{\"\": 1}", "gives cuda:0 (worker w0) no module"},
      {"{model.embed_tokens: 0, model.layers.0: 0, model.layers.1.mlp: 0, " + rest + "}",
       "places whole modules; put all of model.layers.1 on one device"},
      {"{model.embed_tokens: 0, model.layers.0: 0, model.layers.1: 0, model.layers.9: 0, " + rest +
           "}",
       "the model has 6 layers"},
      {"{model.embed: 0, model.layers.0: 0, model.layers.1: 0, " + rest + "}",
       "device_map[\"model.embed\"] (line 2): unknown module"},
      {"{model.embed_tokens: 0, model.layers.0: 0, model.layers.1: 0, model.layers.2: 1, "
       "model.layers.3: 1, model.layers.4: 1, model.layers.5: 1, model.norm: 0, lm_head: 1}",
       "model.norm is on cuda:0 (worker w0) but lm_head on cuda:1 (worker w1)"},
  };
  for (const Refusal& c : cases) {
    auto plan = PlanFor(ClusterYaml(2, "cuda", c.device_map), model);
    ASSERT_FALSE(plan.ok()) << c.device_map;
    EXPECT_NE(plan.status().message().find(c.message), std::string::npos)
        << c.device_map << "\n  got: " << plan.status().message();
  }
}

TEST(Explicit, RefusesAMapOverBudgetNamingDeviceNeedAndBudget) {
  auto over =
      PlanFor(ClusterYaml(1, "cuda", "\"cuda:0\"", "max_memory: {0: 10GiB}"), Preset("qwen3-8b"));
  ASSERT_FALSE(over.ok());
  const std::string msg(over.status().message());
  EXPECT_NE(msg.find("cuda:0 (worker w0) cannot hold"), std::string::npos) << msg;
  EXPECT_NE(msg.find("needs"), std::string::npos) << msg;
  EXPECT_NE(msg.find("but has 10.00 GiB (max_memory)"), std::string::npos) << msg;
}

// ---- inputs and lookups

TEST(PlanCluster, RefusesAContextLongerThanTheModelKnows) {
  auto plan = PlanFor(ClusterYaml(2, "cpu", "auto", "limits: {max_context: 8192}"),
                      Preset("demo"));  // max_position_embeddings 4096
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("limits.max_context 8192 exceeds"), std::string::npos)
      << plan.status();
}

TEST(PlanCluster, WorkersFindTheirStageByName) {
  auto plan = PlanFor(ClusterYaml(3, "cpu", "balanced"), Preset("demo"));
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_NE(plan->Find("w1"), nullptr);
  EXPECT_EQ(plan->Find("w1")->device, "cpu:1");
  EXPECT_EQ(plan->Find("w1")->address, "127.0.0.1:7002");
  EXPECT_EQ(plan->Find("nobody"), nullptr);
}

}  // namespace
}  // namespace lp
