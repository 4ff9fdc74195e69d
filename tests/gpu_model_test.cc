// The fixtures (tests/fixtures/) on the CUDA backend, through 1 and 3 slices, within the bf16
// tolerances of fixtures/README.md (the GPTQ and AWQ fixtures with their linears kept in 4
// bits): relative error of the last-position logits below 2e-2 and the same argmax on every
// case; the reference's greedy tokens reproduced step by step (fed the reference's own tokens,
// with the KV cache and recorded decode steps) wherever the float32 CPU backend's top-2 margin
// at that step is clear (>= kClearMargin); a step recorded as a CUDA graph giving what the
// same step gives unrecorded; and with batch_invariant on, a sequence's logits the same bits
// whatever it is batched with.
#include <algorithm>
#include <cmath>
#include <functional>

#include "common/checkpoint.h"
#include "engine/local_chain.h"
#include "fixture_util.h"
#include "gpu_util.h"

namespace lp {
namespace {

using lp::testing::FixtureDir;
using lp::testing::LoadJson;
using lp::testing::LoadLogits;
constexpr double kClearMargin = 0.05;

struct Param {
  std::string fixture;
  int64_t slices;
};

void PrintTo(const Param& p, std::ostream* os) { *os << p.fixture << " in " << p.slices; }

std::vector<int32_t> Ids(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

double Margin(std::span<const float> v) {
  float a = -INFINITY, b = -INFINITY;
  for (float x : v) {
    if (x > a) {
      b = a;
      a = x;
    } else if (x > b) {
      b = x;
    }
  }
  return double(a) - b;
}

class GpuModelTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device visible: GPU tests skipped";
    dir_ = FixtureDir(GetParam().fixture);
    expected_ = LoadJson(dir_ + "/expected.json");
    auto ckpt = Checkpoint::Open(dir_);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    ckpt_ = std::move(*ckpt);
  }

  std::unique_ptr<LocalChain> Chain(bool gpu, int64_t seqs = 1, bool graphs = true,
                                    bool batch_invariant = false, int64_t step_tokens = 256,
                                    int64_t max_context = 256) {
    SliceLimits limits{seqs, max_context, step_tokens};
    BackendFactory f = [] { return MakeCpuBackend(); };
    if (gpu) {
      f = [graphs, batch_invariant] {
        CudaBackendOptions o;
        o.graphs = graphs;
        o.batch_invariant = batch_invariant;
        return MakeCudaBackend(0, o);
      };
    }
    auto chain = LocalChain::Load(*ckpt_, EvenSlices(ckpt_->config().num_layers, GetParam().slices),
                                  limits, f);
    EXPECT_TRUE(chain.ok()) << chain.status();
    return chain.ok() ? std::move(*chain) : nullptr;
  }

  std::string dir_;
  nlohmann::json expected_;
  std::unique_ptr<Checkpoint> ckpt_;
};

TEST_P(GpuModelTest, LogitsWithinBf16Tolerance) {
  const auto& cases = expected_["cases"];
  const int64_t vocab = ckpt_->config().vocab_size;
  const auto ref = LoadLogits(dir_, cases.size(), size_t(vocab));
  auto chain = Chain(true);
  ASSERT_NE(chain, nullptr);
  for (size_t c = 0; c < cases.size(); ++c) {
    const auto prompt = Ids(cases[c]["prompt"]);
    StepLayout layout{{{0, 0, int32_t(prompt.size())}}};
    std::vector<float> logits;
    ASSERT_TRUE(chain->Step(layout, prompt, &logits).ok());
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      const double d = logits[size_t(i)] - ref[c * vocab + i];
      diff += d * d;
      norm += double(ref[c * vocab + i]) * ref[c * vocab + i];
    }
    const double rel = std::sqrt(diff / norm);
    std::printf("%s case %zu (%zu tokens): relative error %.2e\n", GetParam().fixture.c_str(), c,
                prompt.size(), rel);
    EXPECT_LT(rel, 2e-2) << "case " << c;
    EXPECT_EQ(ArgMax(logits), cases[c]["argmax"].get<int32_t>()) << "case " << c;
  }
}

// Teacher-forced: both chains are fed the reference's greedy tokens, so every one of the 20
// steps is compared even after an unclear step.
TEST_P(GpuModelTest, GreedyTokensWhereTheMarginIsClear) {
  auto gpu = Chain(true), cpu = Chain(false);
  ASSERT_NE(gpu, nullptr);
  ASSERT_NE(cpu, nullptr);
  int compared = 0, skipped = 0;
  for (const auto& c : expected_["cases"]) {
    const auto prompt = Ids(c["prompt"]);
    if (std::find(prompt.begin(), prompt.end(), 0) != prompt.end()) continue;  // see model_test
    const auto want = Ids(c["greedy20"]);
    StepLayout layout{{{0, 0, int32_t(prompt.size())}}};
    std::vector<int32_t> in = prompt;
    std::vector<float> lg, lc;
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_TRUE(gpu->Step(layout, in, &lg).ok());
      ASSERT_TRUE(cpu->Step(layout, in, &lc).ok());
      if (Margin(lc) >= kClearMargin) {
        EXPECT_EQ(ArgMax(lg), want[i]) << "prompt of " << prompt.size() << ", token " << i;
        ++compared;
      } else {
        ++skipped;
      }
      layout.seqs = {{0, int32_t(prompt.size() + i), 1}};
      in = {want[i]};
    }
  }
  std::printf("%s: %d greedy tokens compared, %d with an unclear margin skipped\n",
              GetParam().fixture.c_str(), compared, skipped);
  EXPECT_GE(compared, 50);
}

// The fixture's prompts 1 to 3 prefilled together through `a` and `b`, then 6 greedy decode
// steps (b's tokens fed to both); `before(i)` runs before each step of chain i (0: a, 1: b).
// With `b_tables`, chain b's sequences keep their KV cache in those blocks. Returns the largest
// difference between their logits at any step.
double LargestDifference(
    LocalChain& a, LocalChain& b, const nlohmann::json& cases,
    const std::function<void(int)>& before = [](int) {},
    const std::vector<std::vector<int32_t>>& b_tables = {}) {
  StepLayout layout;
  std::vector<int32_t> ids;
  for (int32_t s = 0; s < 3; ++s) {
    const auto prompt = Ids(cases[size_t(s) + 1]["prompt"]);
    layout.seqs.push_back({s, 0, int32_t(prompt.size())});
    ids.insert(ids.end(), prompt.begin(), prompt.end());
  }
  const int64_t vocab = a.vocab_size();
  std::vector<float> la, lb;
  double max_diff = 0;
  for (int step = 0; step <= 6; ++step) {
    if (step > 0) {
      ids.clear();
      for (auto& s : layout.seqs) {
        s.start_pos += s.n_tokens;
        s.n_tokens = 1;
        ids.push_back(
            ArgMax(std::span<const float>(lb).subspan(size_t(s.slot * vocab), size_t(vocab))));
      }
    }
    before(0);
    EXPECT_TRUE(a.Step(layout, ids, &la).ok());
    before(1);
    StepLayout b_layout = layout;
    for (size_t s = 0; s < b_tables.size(); ++s) b_layout.seqs[s].blocks = b_tables[s];
    EXPECT_TRUE(b.Step(b_layout, ids, &lb).ok());
    for (size_t i = 0; i < la.size(); ++i)
      max_diff = std::max(max_diff, double(std::fabs(la[i] - lb[i])));
  }
  return max_diff;
}

// Decode steps of 3 sequences at different positions, recorded once and replayed, give the same
// logits as the same steps issued op by op.
TEST_P(GpuModelTest, RecordedDecodeStepsEqualUnrecorded) {
  auto with = Chain(true, 3, true), without = Chain(true, 3, false);
  ASSERT_NE(with, nullptr);
  ASSERT_NE(without, nullptr);
  EXPECT_LT(LargestDifference(*with, *without, expected_["cases"]), 1e-4);
}

// The paged KV cache: sequences whose blocks are scattered over the pool, out of order and
// interleaved with each other's, get the same bits as each in its own contiguous run (every
// kernel finds each key through the block table; the arithmetic is the same). The CPU backend
// follows the same tables (scheduler_test's preemption and prefix tests).
TEST_P(GpuModelTest, ScatteredKvBlocksGiveTheSameBits) {
  auto contiguous = Chain(true, 3), scattered = Chain(true, 3);
  ASSERT_NE(contiguous, nullptr);
  ASSERT_NE(scattered, nullptr);
  const int64_t per_seq = 256 / kDefaultKvBlockTokens, pool = 3 * per_seq;
  std::vector<std::vector<int32_t>> tables(3);
  for (int64_t s = 0; s < 3; ++s) {
    for (int64_t i = 0; i < per_seq; ++i)
      tables[size_t(s)].push_back(int32_t(pool - 1 - (i * 3 + s)));
  }
  EXPECT_EQ(LargestDifference(
                *contiguous, *scattered, expected_["cases"], [](int) {}, tables),
            0.0);
  // And through recorded decode steps with the scattered tables against op-by-op ones.
  auto unrecorded = Chain(true, 3, false);
  ASSERT_NE(unrecorded, nullptr);
  EXPECT_LT(LargestDifference(
                *contiguous, *unrecorded, expected_["cases"], [](int) {}, tables),
            1e-4);
}

// Chained launches (kernels starting while the one before ends) change when a kernel starts,
// never what it computes: the same bits as launching each after the one before has ended, in
// prefill and recorded decode steps. A kernel reading before its wait would show here.
TEST_P(GpuModelTest, ChainedLaunchesGiveTheSameBits) {
  auto chained = Chain(true, 3), plain = Chain(true, 3);
  ASSERT_NE(chained, nullptr);
  ASSERT_NE(plain, nullptr);
  if (!cuda::ChainedLaunches()) GTEST_SKIP() << "this GPU cannot chain launches (sm_90+ can)";
  const double diff = LargestDifference(*chained, *plain, expected_["cases"],
                                        [](int i) { cuda::SetChainedLaunches(i == 0); });
  cuda::SetChainedLaunches(true);
  EXPECT_EQ(diff, 0.0);
}

// A prompt's last chunk after a long prefix (what a request whose system prompt is cached
// prefills), in one step with another sequence's decode row: a short step, whose attention cuts
// the keys into chunks for the tensor-core kernel and merges them per query tile. Both
// sequences' logits agree with the float32 CPU backend within the bf16 tolerance.
TEST_P(GpuModelTest, ShortChunkAfterALongPrefixAgreesWithTheCpu) {
  constexpr int32_t kLong = 600, kLast = 32;
  auto first = Ids(expected_["cases"][0]["prompt"]);
  std::vector<int32_t> prompt = first;
  for (int32_t i = int32_t(prompt.size()); i < kLong; ++i)
    prompt.push_back(int32_t((prompt[size_t(i) % first.size()] + 7 * i) % 1000));
  const auto other = Ids(expected_["cases"][1]["prompt"]);
  auto gpu = Chain(true, 2, true, false, 1024, 1024),
       cpu = Chain(false, 2, true, false, 1024, 1024);
  ASSERT_NE(gpu, nullptr);
  ASSERT_NE(cpu, nullptr);
  const int64_t vocab = gpu->vocab_size();
  // Step 1: the long prompt but its last chunk, and the other prompt. Step 2: the last chunk and
  // the other sequence's first decode token (the CPU's argmax, fed to both).
  StepLayout layout{{{0, 0, kLong - kLast}, {1, 0, int32_t(other.size())}}};
  std::vector<int32_t> ids(prompt.begin(), prompt.end() - kLast);
  ids.insert(ids.end(), other.begin(), other.end());
  std::vector<float> lg, lc;
  ASSERT_TRUE(gpu->Step(layout, ids, &lg).ok());
  ASSERT_TRUE(cpu->Step(layout, ids, &lc).ok());
  const int32_t next = ArgMax(std::span<const float>(lc).subspan(size_t(vocab), size_t(vocab)));
  layout.seqs = {{0, kLong - kLast, kLast}, {1, int32_t(other.size()), 1}};
  ids.assign(prompt.end() - kLast, prompt.end());
  ids.push_back(next);
  ASSERT_TRUE(gpu->Step(layout, ids, &lg).ok());
  ASSERT_TRUE(cpu->Step(layout, ids, &lc).ok());
  for (size_t s = 0; s < 2; ++s) {
    const auto g = std::span<const float>(lg).subspan(s * size_t(vocab), size_t(vocab));
    const auto c = std::span<const float>(lc).subspan(s * size_t(vocab), size_t(vocab));
    double diff = 0, norm = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      diff += double(g[i] - c[i]) * (g[i] - c[i]);
      norm += double(c[i]) * c[i];
    }
    std::printf("%s sequence %zu: relative error %.2e\n", GetParam().fixture.c_str(), s,
                std::sqrt(diff / norm));
    EXPECT_LT(std::sqrt(diff / norm), 2e-2) << "sequence " << s;
    if (Margin(c) >= kClearMargin) EXPECT_EQ(ArgMax(g), ArgMax(c)) << "sequence " << s;
  }
}

// A worker warms its slice up at start (Slice::WarmUp: made-up steps in KV slot 0, the decode
// graph of one sequence recorded): what requests then get is the same bits as without.
TEST_P(GpuModelTest, WarmUpLeavesNoTrace) {
  auto warm = Chain(true, 3), cold = Chain(true, 3);
  ASSERT_NE(warm, nullptr);
  ASSERT_NE(cold, nullptr);
  for (const auto& slice : warm->slices()) ASSERT_TRUE(slice->WarmUp().ok());
  EXPECT_EQ(LargestDifference(*warm, *cold, expected_["cases"]), 0.0);
}

// Sequences run through `chain` with continuous batching as the scheduler does it: sequence s
// joins at step join[s] (its own KV slot s), its prompt goes in chunks of at most `chunk`
// tokens, then greedy decode tokens. Returns each sequence's logits at every step that
// samples (the prompt's last chunk, then every decode step), `steps` of them.
std::vector<std::vector<std::vector<float>>> RunBatched(
    LocalChain& chain, const std::vector<std::vector<int32_t>>& prompts,
    const std::vector<int>& join, int chunk, int steps) {
  const size_t n = prompts.size();
  const int64_t vocab = chain.vocab_size();
  std::vector<std::vector<std::vector<float>>> out(n);
  std::vector<int32_t> fed(n, 0), next(n, -1);
  for (int step = 0;; ++step) {
    StepLayout layout;
    std::vector<int32_t> ids;
    std::vector<size_t> who;
    for (size_t s = 0; s < n; ++s) {
      if (join[s] > step || int(out[s].size()) == steps) continue;
      const auto& p = prompts[s];
      const int32_t len = int32_t(p.size());
      if (fed[s] < len) {
        const int32_t c = std::min<int32_t>(chunk, len - fed[s]);
        layout.seqs.push_back({int32_t(s), fed[s], c});
        ids.insert(ids.end(), p.begin() + fed[s], p.begin() + fed[s] + c);
        fed[s] += c;
      } else {
        layout.seqs.push_back({int32_t(s), fed[s], 1});
        ids.push_back(next[s]);
        ++fed[s];
      }
      who.push_back(s);
    }
    if (who.empty()) {
      bool done = true;
      for (size_t s = 0; s < n; ++s) done = done && int(out[s].size()) == steps;
      if (done) return out;
      continue;  // some join later
    }
    std::vector<float> logits;
    EXPECT_TRUE(chain.Step(layout, ids, &logits).ok());
    for (size_t i = 0; i < who.size(); ++i) {
      const size_t s = who[i];
      if (fed[s] < int32_t(prompts[s].size())) continue;  // a chunk that does not end the prompt
      std::vector<float> row(logits.begin() + int64_t(i) * vocab,
                             logits.begin() + int64_t(i + 1) * vocab);
      next[s] = ArgMax(row);
      out[s].push_back(std::move(row));
    }
  }
}

// batch_invariant on: a sequence's logits at every step are the same bits alone as among 12
// sequences prefilled together, and as when they join one after another while others decode
// with their prompts cut into chunks of 5 (4-bit fixtures included: they take the same path).
TEST_P(GpuModelTest, BatchInvariantLogitsDoNotDependOnTheBatch) {
  constexpr int kSeqs = 12, kSteps = 6;
  const auto& cases = expected_["cases"];
  std::vector<std::vector<int32_t>> prompts;
  for (int s = 0; s < kSeqs; ++s) {
    auto p = Ids(cases[size_t(s) % cases.size()]["prompt"]);
    for (int i = 0; i < 3 * s; ++i) p.push_back(int32_t((p[size_t(i) % p.size()] + 7 * s) % 1000));
    prompts.push_back(p);
  }
  auto chain = Chain(true, kSeqs, true, true, 1024);
  ASSERT_NE(chain, nullptr);
  std::vector<std::vector<std::vector<float>>> alone;
  for (int s = 0; s < kSeqs; ++s) {
    auto one = RunBatched(*chain, {prompts[size_t(s)]}, {0}, 256, kSteps);
    alone.push_back(std::move(one[0]));
  }
  std::vector<int> at_once(kSeqs, 0), staggered;
  for (int s = 0; s < kSeqs; ++s) staggered.push_back(s / 3 * 2);
  const auto together = RunBatched(*chain, prompts, at_once, 256, kSteps);
  const auto chunked = RunBatched(*chain, prompts, staggered, 5, kSteps);
  for (const auto* run : {&together, &chunked}) {
    for (int s = 0; s < kSeqs; ++s) {
      for (int t = 0; t < kSteps; ++t) {
        const auto& a = alone[size_t(s)][size_t(t)];
        const auto& b = (*run)[size_t(s)][size_t(t)];
        double max_diff = 0;
        for (size_t i = 0; i < a.size(); ++i)
          max_diff = std::max(max_diff, double(std::fabs(a[i] - b[i])));
        EXPECT_EQ(max_diff, 0.0) << (run == &together ? "at once" : "staggered, chunks of 5")
                                 << ": sequence " << s << ", step " << t;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, GpuModelTest,
    ::testing::Values(Param{"qwen3-tiny", 1}, Param{"qwen3-tiny", 3},
                      Param{"qwen3-small-sharded", 1}, Param{"qwen3-small-sharded", 3},
                      Param{"qwen2-small", 1}, Param{"qwen2-small", 3},
                      Param{"qwen2-gptq-small", 1}, Param{"qwen2-gptq-small", 3},
                      Param{"qwen3-awq-small", 1}, Param{"qwen3-awq-small", 3}),
    [](const auto& info) {
      std::string n = info.param.fixture + "_" + std::to_string(info.param.slices) + "slices";
      std::replace(n.begin(), n.end(), '-', '_');
      return n;
    });

}  // namespace
}  // namespace lp
