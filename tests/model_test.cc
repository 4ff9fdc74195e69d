// The decoder against Hugging Face's float64 reference (tests/fixtures/): logits, every
// layer's output, greedy decoding with the KV cache, with the model in 1, 2 and 3 slices;
// and batching that changes no result.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "common/checkpoint.h"
#include "common/presets.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/local_chain.h"
#include "fixture_util.h"

namespace lp {
namespace {

using lp::testing::FixtureDir;
using lp::testing::LoadJson;
using lp::testing::LoadLogits;

struct Param {
  std::string fixture;
  int64_t slices;
};

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  std::string name = info.param.fixture + "_" + std::to_string(info.param.slices) + "slices";
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

std::vector<int32_t> Ids(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

std::vector<int32_t> TopK(const std::vector<float>& v, size_t k) {
  std::vector<int32_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int32_t a, int32_t b) { return v[a] > v[b]; });
  idx.resize(k);
  return idx;
}

double RelativeError(std::span<const float> got, const std::vector<double>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff / norm);
}

class ModelTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    dir_ = FixtureDir(GetParam().fixture);
    expected_ = LoadJson(dir_ + "/expected.json");
    auto ckpt = Checkpoint::Open(dir_);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    ckpt_ = std::move(*ckpt);
  }

  std::unique_ptr<LocalChain> Chain(const std::vector<SliceSpec>& specs, int64_t seqs = 1) {
    SliceLimits limits{seqs, 256, 256};
    auto chain = LocalChain::Load(*ckpt_, specs, limits, [] { return MakeCpuBackend(); });
    EXPECT_TRUE(chain.ok()) << chain.status();
    return chain.ok() ? std::move(*chain) : nullptr;
  }

  std::string dir_;
  nlohmann::json expected_;
  std::unique_ptr<Checkpoint> ckpt_;
};

TEST_P(ModelTest, LogitsMatchReference) {
  const auto& cases = expected_["cases"];
  const int64_t vocab = ckpt_->config().vocab_size;
  const auto ref = LoadLogits(dir_, cases.size(), size_t(vocab));
  auto chain = Chain(EvenSlices(ckpt_->config().num_layers, GetParam().slices));
  ASSERT_NE(chain, nullptr);
  for (size_t c = 0; c < cases.size(); ++c) {
    const auto prompt = Ids(cases[c]["prompt"]);
    StepLayout layout;
    layout.seqs = {{0, 0, int32_t(prompt.size())}};
    std::vector<float> logits;
    ASSERT_TRUE(chain->Step(layout, prompt, &logits).ok());
    ASSERT_EQ(logits.size(), size_t(vocab));
    double max_diff = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      max_diff = std::max(max_diff, std::fabs(double(logits[i]) - ref[c * vocab + i]));
    }
    EXPECT_LT(max_diff, 1e-3) << "case " << c;
    EXPECT_EQ(ArgMax(logits), cases[c]["argmax"].get<int32_t>()) << "case " << c;
    EXPECT_EQ(TopK(logits, 10), Ids(cases[c]["top10_ids"])) << "case " << c;
  }
}

TEST_P(ModelTest, EveryLayerOutputMatchesReference) {
  // One slice per layer, so every layer's output crosses a slice boundary and can be read.
  const int64_t layers = ckpt_->config().num_layers;
  std::vector<SliceSpec> specs;
  for (int64_t l = 0; l < layers; ++l) specs.push_back({l, l + 1, l == 0, false});
  SliceLimits limits{1, 256, 256};
  std::vector<std::unique_ptr<Slice>> slices;
  for (const auto& spec : specs) {
    auto s = Slice::Load(*ckpt_, spec, limits, MakeCpuBackend());
    ASSERT_TRUE(s.ok()) << s.status();
    slices.push_back(std::move(*s));
  }
  const int64_t h = ckpt_->config().hidden_size;
  for (const auto& c : expected_["cases"]) {
    const auto prompt = Ids(c["prompt"]);
    const int64_t n = int64_t(prompt.size());
    StepLayout layout;
    layout.seqs = {{0, 0, int32_t(n)}};
    std::vector<float> in, out;
    for (int64_t l = 0; l < layers; ++l) {
      ASSERT_TRUE(
          slices[l]
              ->Forward(layout,
                        l == 0 ? std::span<const int32_t>(prompt) : std::span<const int32_t>{}, in,
                        &out)
              .ok());
      const auto want = c["layer_out_last_pos"][l].get<std::vector<double>>();
      EXPECT_LT(RelativeError(std::span(out).subspan((n - 1) * h, h), want), 1e-4)
          << "layer " << l << ", prompt of " << n;
      if (c.contains("layer_out_all_pos")) {
        for (int64_t p = 0; p < n; ++p) {
          const auto all = c["layer_out_all_pos"][l][p].get<std::vector<double>>();
          EXPECT_LT(RelativeError(std::span(out).subspan(p * h, h), all), 1e-4)
              << "layer " << l << ", position " << p;
        }
      }
      in.swap(out);
    }
  }
}

// The reference ran `generate(..., pad_token_id=0)`, and Hugging Face then masks every prompt
// token equal to 0 as padding: its greedy20 is not the model's continuation for such a prompt
// ("Hello, world!" ends in token 0, "!"). There the first token must still be the argmax.
bool PromptHasReferencePadToken(const std::vector<int32_t>& prompt) {
  return std::find(prompt.begin(), prompt.end(), 0) != prompt.end();
}

TEST_P(ModelTest, GreedyWithKvCacheMatchesReference) {
  auto chain = Chain(EvenSlices(ckpt_->config().num_layers, GetParam().slices));
  ASSERT_NE(chain, nullptr);
  int compared = 0;
  for (const auto& c : expected_["cases"]) {
    const auto prompt = Ids(c["prompt"]);
    auto got = chain->Greedy(prompt, 20);
    ASSERT_TRUE(got.ok()) << got.status();
    if (PromptHasReferencePadToken(prompt)) {
      EXPECT_EQ((*got)[0], c["argmax"].get<int32_t>());
      continue;
    }
    EXPECT_EQ(*got, Ids(c["greedy20"])) << "prompt of " << prompt.size();
    ++compared;
  }
  EXPECT_GE(compared, 4);
}

TEST_P(ModelTest, BatchedStepEqualsSeparateSteps) {
  // Every case in one step (each its own KV slot), then one decode step mixing all sequences
  // with a fresh prefill: each sequence's logits equal what it gets alone.
  const auto& cases = expected_["cases"];
  const int64_t vocab = ckpt_->config().vocab_size;
  const int64_t n = int64_t(cases.size());
  auto chain = Chain(EvenSlices(ckpt_->config().num_layers, GetParam().slices), n + 1);
  ASSERT_NE(chain, nullptr);
  StepLayout layout;
  std::vector<int32_t> ids;
  for (int64_t c = 0; c < n; ++c) {
    const auto prompt = Ids(cases[c]["prompt"]);
    layout.seqs.push_back({int32_t(c), 0, int32_t(prompt.size())});
    ids.insert(ids.end(), prompt.begin(), prompt.end());
  }
  std::vector<float> logits;
  ASSERT_TRUE(chain->Step(layout, ids, &logits).ok());
  const auto ref = LoadLogits(dir_, cases.size(), size_t(vocab));
  StepLayout next;
  std::vector<int32_t> next_ids;
  for (int64_t c = 0; c < n; ++c) {
    std::span<const float> row(logits.data() + c * vocab, size_t(vocab));
    double max_diff = 0;
    for (int64_t i = 0; i < vocab; ++i)
      max_diff = std::max(max_diff, std::fabs(double(row[i]) - ref[c * vocab + i]));
    EXPECT_LT(max_diff, 1e-3) << "case " << c << " in a batch";
    next.seqs.push_back({int32_t(c), layout.seqs[c].n_tokens, 1});
    next_ids.push_back(ArgMax(row));
  }
  // Mixed step: one decode token for each sequence, plus case 0's prompt prefilled anew.
  const auto p0 = Ids(cases[0]["prompt"]);
  next.seqs.push_back({int32_t(n), 0, int32_t(p0.size())});
  next_ids.insert(next_ids.end(), p0.begin(), p0.end());
  ASSERT_TRUE(chain->Step(next, next_ids, &logits).ok());
  for (int64_t c = 0; c < n; ++c) {
    std::span<const float> row(logits.data() + c * vocab, size_t(vocab));
    if (PromptHasReferencePadToken(Ids(cases[c]["prompt"]))) continue;
    EXPECT_EQ(ArgMax(row), cases[c]["greedy20"][1].get<int32_t>()) << "case " << c;
  }
  std::span<const float> fresh(logits.data() + n * vocab, size_t(vocab));
  EXPECT_EQ(ArgMax(fresh), cases[0]["argmax"].get<int32_t>());
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, ModelTest,
    ::testing::Values(Param{"qwen3-tiny", 1}, Param{"qwen3-tiny", 2}, Param{"qwen3-tiny", 3},
                      Param{"qwen3-small-sharded", 1}, Param{"qwen3-small-sharded", 2},
                      Param{"qwen3-small-sharded", 3}, Param{"qwen2-small", 1},
                      Param{"qwen2-small", 2}, Param{"qwen2-small", 3},
                      Param{"qwen2-gptq-small", 1}, Param{"qwen2-gptq-small", 3},
                      Param{"qwen3-awq-small", 1}, Param{"qwen3-awq-small", 3}),
    ParamName);

TEST(SliceLoading, ReadsOnlyTheShardsOfItsLayers) {
  auto ckpt = Checkpoint::Open(FixtureDir("qwen3-small-sharded"));
  ASSERT_TRUE(ckpt.ok());
  const auto index = LoadJson(FixtureDir("qwen3-small-sharded") + "/model.safetensors.index.json");
  // The last layer and the head.
  const int64_t last = (*ckpt)->config().num_layers - 1;
  auto slice = Slice::Load(**ckpt, {last, last + 1, false, true}, {1, 16, 16}, MakeCpuBackend());
  ASSERT_TRUE(slice.ok()) << slice.status();
  std::set<std::string> needed;
  for (const auto& [name, file] : index["weight_map"].items()) {
    if (name.rfind("model.layers." + std::to_string(last) + ".", 0) == 0 ||
        name == "lm_head.weight" || name == "model.norm.weight") {
      needed.insert(file.get<std::string>());
    }
  }
  const auto opened = (*ckpt)->OpenedFiles();
  EXPECT_EQ(std::set<std::string>(opened.begin(), opened.end()), needed);
  EXPECT_LT(opened.size(), 3u);
}

TEST(SliceForward, RejectsBadSteps) {
  auto ckpt = Checkpoint::Open(FixtureDir("qwen2-small"));
  ASSERT_TRUE(ckpt.ok());
  auto slice = Slice::Load(**ckpt, {0, 4, true, true}, {2, 8, 8}, MakeCpuBackend());
  ASSERT_TRUE(slice.ok());
  std::vector<float> out;
  std::vector<int32_t> ids = {1, 2, 3};
  StepLayout too_long{{{0, 6, 3}}};
  EXPECT_EQ((*slice)->Forward(too_long, ids, {}, &out).code(), absl::StatusCode::kInvalidArgument);
  StepLayout bad_slot{{{5, 0, 3}}};
  EXPECT_EQ((*slice)->Forward(bad_slot, ids, {}, &out).code(), absl::StatusCode::kInvalidArgument);
  StepLayout ok{{{0, 0, 3}}};
  std::vector<int32_t> bad_ids = {1, 2, 99999};
  EXPECT_EQ((*slice)->Forward(ok, bad_ids, {}, &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*slice)->Forward(ok, std::span<const int32_t>(ids).first(2), {}, &out).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*slice)->Forward(ok, ids, {}, &out).ok());
}

// Warming a slice up (made-up steps in slot 0) changes nothing a request then gets: the same
// logits, to the bit, at the prompt and at every decode step, in slot 0 and in another slot;
// and a slice without the embedding or the head, or with room for only a few tokens, warms up.
TEST(RowBucket, CoversEveryRowCountWithAtMostAnEighthMore) {
  int64_t buckets = 0;
  for (int64_t n = 1; n <= 8192; ++n) {
    const int64_t b = RowBucket(n);
    EXPECT_GE(b, n);
    EXPECT_EQ(b % 16, 0) << n;
    EXPECT_EQ(RowBucket(b), b) << n;  // a bucket is its own bucket
    if (n > 256) EXPECT_LE(double(b), 1.125 * double(n)) << n;
    if (b == n) ++buckets;
  }
  EXPECT_EQ(buckets, 16 + 8 * 5);  // 16, 32, ... 256; then eight per doubling up to 8192
}

TEST(SliceWarmUp, LeavesNoTraceInWhatARequestGets) {
  auto ckpt = Checkpoint::Open(FixtureDir("qwen3-tiny"));
  ASSERT_TRUE(ckpt.ok());
  const int64_t layers = (*ckpt)->config().num_layers;
  auto run = [&](bool warm, int32_t slot) {
    auto slice = Slice::Load(**ckpt, {0, layers, true, true}, {2, 128, 128}, MakeCpuBackend());
    EXPECT_TRUE(slice.ok());
    if (warm) EXPECT_TRUE((*slice)->WarmUp().ok());
    std::vector<float> all, out;
    std::vector<int32_t> ids = {785, 3974, 13876, 38835, 916};
    StepLayout layout{{{slot, 0, int32_t(ids.size())}}};
    for (int step = 0; step < 4; ++step) {
      EXPECT_TRUE((*slice)->Forward(layout, ids, {}, &out).ok());
      all.insert(all.end(), out.begin(), out.end());
      layout.seqs[0].start_pos += layout.seqs[0].n_tokens;
      layout.seqs[0].n_tokens = 1;
      ids = {int32_t(std::max_element(out.begin(), out.end()) - out.begin())};
    }
    return all;
  };
  const auto cold = run(false, 0);
  EXPECT_EQ(run(true, 0), cold);
  EXPECT_EQ(run(true, 1), cold);
  auto middle = Slice::Load(**ckpt, {1, 2, false, false}, {1, 4, 4}, MakeCpuBackend());
  ASSERT_TRUE(middle.ok());
  EXPECT_TRUE((*middle)->WarmUp().ok());
}

}  // namespace
}  // namespace lp

namespace lp {
namespace {

// A sequence's logits must not depend on what it is batched with, to the bit: seeded sampling
// draws from them, and a draw between near-equal tokens flips on the last bit.
TEST(BatchInvariance, SixteenCopiesGetTheLogitsOfOneAlone) {
  for (const char* fixture : {"qwen3-tiny", "qwen2-small", "qwen2-gptq-small"}) {
    auto ckpt = Checkpoint::Open(FixtureDir(fixture));
    ASSERT_TRUE(ckpt.ok());
    const int64_t vocab = (*ckpt)->config().vocab_size;
    auto chain = LocalChain::Load(**ckpt, EvenSlices((*ckpt)->config().num_layers, 2),
                                  {16, 64, 512}, [] { return MakeCpuBackend(); });
    ASSERT_TRUE(chain.ok()) << chain.status();
    const std::vector<int32_t> prompt = {785, 3974, 13876, 38835, 34208, 916, 279};
    std::vector<int32_t> p(prompt);
    for (auto& id : p) id %= int32_t(vocab);
    // Alone: prefill then three decode steps in slot 0.
    auto run = [&](int64_t copies) {
      std::vector<std::vector<float>> rows;
      StepLayout layout;
      std::vector<int32_t> ids;
      for (int64_t c = 0; c < copies; ++c) {
        layout.seqs.push_back({int32_t(c), 0, int32_t(p.size())});
        ids.insert(ids.end(), p.begin(), p.end());
      }
      std::vector<float> logits;
      for (int step = 0; step < 4; ++step) {
        EXPECT_TRUE((*chain)->Step(layout, ids, &logits).ok());
        rows.emplace_back(logits.begin(), logits.begin() + vocab);
        for (int64_t c = 0; c < copies; ++c) {
          EXPECT_EQ(
              std::vector<float>(logits.begin() + c * vocab, logits.begin() + (c + 1) * vocab),
              rows.back())
              << fixture << ": copy " << c << " differs from copy 0, step " << step;
          layout.seqs[size_t(c)] = {
              int32_t(c), layout.seqs[size_t(c)].start_pos + layout.seqs[size_t(c)].n_tokens, 1};
        }
        ids.assign(size_t(copies), int32_t(step + 11));
      }
      return rows;
    };
    const auto alone = run(1);
    const auto together = run(16);
    for (size_t s = 0; s < alone.size(); ++s) {
      EXPECT_TRUE(alone[s] == together[s])
          << fixture << ": step " << s << " differs alone and in 16";
    }
  }
}

// A shape the backend cannot run is refused when the slice is built, before any weight is
// loaded (the CUDA backend's own limits are tested in gpu_ops_test.cc).
TEST(SliceBuild, RefusesAnAttentionShapeBeforeLoadingWeights) {
  auto preset = FindPreset("qwen3-0.6b");
  ASSERT_TRUE(preset.ok()) << preset.status();
  WeightSource never;
  never.tensor = [](Backend&, const ExpectedTensor& t) -> absl::StatusOr<Tensor> {
    ADD_FAILURE() << "loaded " << t.name;
    return absl::InternalError("no weights in this test");
  };
  never.int4 = [](Backend&, const LinearSpec& l) -> absl::StatusOr<Linear> {
    ADD_FAILURE() << "loaded " << l.name;
    return absl::InternalError("no weights in this test");
  };
  ModelConfig odd = preset->config;
  odd.head_dim = 15;
  auto slice = Slice::Build(odd, {0, 2, true, false}, {1, 16, 16}, MakeCpuBackend(), never);
  ASSERT_FALSE(slice.ok());
  EXPECT_EQ(slice.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(slice.status().message().find("head_dim 15"), std::string::npos) << slice.status();

  ModelConfig ungrouped = preset->config;
  ungrouped.num_kv_heads = 5;  // 16 heads do not split over 5 KV heads
  slice = Slice::Build(ungrouped, {0, 2, true, false}, {1, 16, 16}, MakeCpuBackend(), never);
  ASSERT_FALSE(slice.ok());
  EXPECT_NE(slice.status().message().find("KV heads"), std::string::npos) << slice.status();
}

}  // namespace
}  // namespace lp
