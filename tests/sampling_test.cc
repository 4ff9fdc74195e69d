// Token selection (engine/sampling.h), which the CPU backend runs and the CUDA sampling kernel is
// tested against (gpu_ops_test.cc): the one generator, greedy, log-probabilities, the top-k /
// top-p / min-p cuts, the repetition penalty, draws that follow the distribution, and a sequence
// that gets the same tokens for the same seed whatever it is batched with.
#include "engine/sampling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "common/random.h"
#include "engine/cpu/cpu_backend.h"

namespace lp {
namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.5f};

SampleResult One(const SampleInput& in, const std::vector<float>& logits = kLogits) {
  SampleScratch scratch;
  return SampleRow(logits.data(), int64_t(logits.size()), in, &scratch);
}

TEST(Sampling, OneSplitMix64) {
  // The published first outputs of SplitMix64 from state 0.
  EXPECT_EQ(SplitMix64(0), 0xe220a8397b1dcdafull);
  EXPECT_EQ(SplitMix64(kSplitMixGamma), 0x6e789e6aa1b965f4ull);
  // The draw of (seed, position) as the backends' sampling has always made it.
  const uint64_t draw = SplitMix64(SplitMix64(7) ^ uint64_t(11));
  EXPECT_EQ(SampleUniform(7, 11), float(SplitMix64(draw) >> 40) / 16777216.0f);
  for (int64_t pos = 0; pos < 1000; ++pos) {
    const float u = SampleUniform(3, pos);
    EXPECT_GE(u, 0.0f);
    EXPECT_LT(u, 1.0f);
  }
}

TEST(Sampling, GreedyIsTheFirstLargestWithNormalizedLogprobs) {
  SampleInput in;
  in.params.logprobs = 4;
  const auto r = One(in);
  EXPECT_EQ(r.id, 1);
  double sum = 0;
  for (float l : kLogits) sum += std::exp(double(l));
  EXPECT_NEAR(r.logprob, 3.0 - std::log(sum), 1e-5);
  ASSERT_EQ(r.top.size(), 4u);
  EXPECT_EQ(r.top[0].id, 1);  // ties: lower id first
  EXPECT_EQ(r.top[1].id, 3);
  EXPECT_EQ(r.top[2].id, 2);
  EXPECT_EQ(r.top[3].id, 0);
}

// Draws at positions 0..n-1 of one seed.
std::map<int32_t, int> Draws(SampleInput in, int n) {
  std::map<int32_t, int> count;
  for (int i = 0; i < n; ++i) {
    in.position = i;
    ++count[One(in).id];
  }
  return count;
}

TEST(Sampling, DrawsFollowTheSoftmax) {
  SampleInput in;
  in.params.temperature = 1.0f;
  const int n = 20000;
  const auto count = Draws(in, n);
  double sum = 0;
  for (float l : kLogits) sum += std::exp(double(l));
  for (size_t i = 0; i < kLogits.size(); ++i) {
    const double want = std::exp(double(kLogits[i])) / sum;
    const double got = double(count.count(int32_t(i)) ? count.at(int32_t(i)) : 0) / n;
    EXPECT_NEAR(got, want, 0.015) << "token " << i;
  }
}

std::set<int32_t> Drawn(const SampleInput& in) {
  std::set<int32_t> ids;
  for (const auto& [id, n] : Draws(in, 2000)) ids.insert(id);
  return ids;
}

TEST(Sampling, TopKTopPAndMinPCutTheTail) {
  SampleInput in;
  in.params.temperature = 1.0f;
  in.params.top_k = 2;  // the two tied 3.0s
  EXPECT_EQ(Drawn(in), (std::set<int32_t>{1, 3}));
  in.params.top_k = 0;
  in.params.top_p = 0.8f;  // 3.0, 3.0 hold ~0.67; with 2.0 (~0.91) the set reaches 0.8
  EXPECT_EQ(Drawn(in), (std::set<int32_t>{1, 2, 3}));
  in.params.top_p = 0.1f;  // ties at the threshold stay in
  EXPECT_EQ(Drawn(in), (std::set<int32_t>{1, 3}));
  in.params.top_p = 1.0f;
  in.params.min_p = 0.5f;  // 2.0 is e^-1 ~ 0.37 times as likely as 3.0
  EXPECT_EQ(Drawn(in), (std::set<int32_t>{1, 3}));
  in.params.min_p = 0.3f;
  EXPECT_EQ(Drawn(in), (std::set<int32_t>{1, 2, 3}));
  in.params.temperature = 2.0f;  // min-p after temperature: 2.0 is now e^-0.5 ~ 0.61 as likely
  in.params.min_p = 0.5f;
  EXPECT_EQ(Drawn(in), (std::set<int32_t>{1, 2, 3}));
  in.params.top_k = 2;  // cuts combine
  EXPECT_EQ(Drawn(in), (std::set<int32_t>{1, 3}));
}

TEST(Sampling, WhenNoTokenPassesTheCutsTheGreedyOneIsTaken) {
  // min_p above 1 (refused by the coordinator and the worker; fuzz/corpus/worker_step) leaves
  // nothing to draw from; NaN logits (from a hidden state not to be trusted) still give an id.
  SampleInput in;
  in.params.temperature = 0.5f;
  in.params.min_p = 2.0f;
  EXPECT_EQ(One(in).id, 1);
  in.params.min_p = 0.0f;
  const std::vector<float> nan(kLogits.size(), std::nanf(""));
  const int32_t id = One(in, nan).id;
  EXPECT_TRUE(id >= 0 && id < int32_t(kLogits.size())) << id;
}

TEST(Sampling, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOnce) {
  SampleInput in;
  in.params.repetition_penalty = 2.0f;
  in.params.logprobs = 2;
  const std::vector<int32_t> one = {1}, both = {3, 1, 3, 1, 1}, negative = {0, 1, 2, 3, 5};
  in.seen = one;  // 3.0 -> 1.5: the other 3.0 wins
  auto r = One(in);
  EXPECT_EQ(r.id, 3);
  // Log-probabilities stay those of the model's own distribution.
  EXPECT_FLOAT_EQ(r.logprob, One(SampleInput{}).logprob);
  ASSERT_EQ(r.top.size(), 2u);
  EXPECT_EQ(r.top[0].id, 1);
  in.seen = both;  // both 3.0s -> 1.5 (repeats count once): 2.0 wins
  EXPECT_EQ(One(in).id, 2);
  in.seen = negative;  // every positive one halved: 1.5, 1.5 > 1.0; -1.0 stays last
  EXPECT_EQ(One(in).id, 1);
  const std::vector<float> low = {-1.0f, -1.5f};
  const std::vector<int32_t> first = {0};
  in.seen = first;  // -1.0 -> -2.0
  EXPECT_EQ(One(in, low).id, 1);
  in.params.repetition_penalty = 1.0f;  // off
  EXPECT_EQ(One(in, low).id, 0);
  // With temperature, a penalized token is drawn less often.
  in.params.temperature = 1.0f;
  in.params.repetition_penalty = 4.0f;
  in.seen = one;
  const auto count = Draws(in, 4000);
  EXPECT_LT(count.count(1) ? count.at(1) : 0, count.at(3) / 5);
}

// ---- one sequence, any batch

// Logits of a made-up model: a function of (sequence, previous token) only.
std::vector<float> ModelLogits(int64_t vocab, int32_t seq, int32_t prev) {
  std::vector<float> l(static_cast<size_t>(vocab));
  const uint64_t key = SplitMix64(uint64_t(seq) * 1000003u + uint64_t(prev));
  for (int64_t i = 0; i < vocab; ++i) {
    l[size_t(i)] = 6.0f * UniformFloat(SplitMix64(key + uint64_t(i) * kSplitMixGamma)) - 3.0f;
  }
  return l;
}

struct Sequence {
  int32_t id = 0;  // picks its logits
  SamplingParams params;
  std::vector<int32_t> tokens = {0};  // a one-token prompt
};

// Generates `steps` tokens for every sequence, all in one batch per step through `backend`.
void Generate(Backend& backend, std::vector<Sequence>& seqs, int64_t vocab, int steps) {
  const int64_t n = int64_t(seqs.size());
  Tensor logits = backend.Alloc(n, vocab);
  std::vector<float> host(static_cast<size_t>(n * vocab));
  std::vector<SampleInput> in(static_cast<size_t>(n));
  std::vector<SampleResult> out(static_cast<size_t>(n));
  for (int step = 0; step < steps; ++step) {
    for (int64_t r = 0; r < n; ++r) {
      const Sequence& s = seqs[size_t(r)];
      const auto row = ModelLogits(vocab, s.id, s.tokens.back());
      std::copy(row.begin(), row.end(), host.begin() + r * vocab);
      in[size_t(r)] = {s.params, int64_t(s.tokens.size()), s.tokens};
    }
    backend.Upload(host, logits);
    backend.Sample(logits, in, out);
    for (int64_t r = 0; r < n; ++r) seqs[size_t(r)].tokens.push_back(out[size_t(r)].id);
  }
}

std::vector<Sequence> Kinds() {
  std::vector<Sequence> kinds(6);
  for (size_t k = 0; k < kinds.size(); ++k) {
    kinds[k].id = int32_t(k);
    kinds[k].params.seed = 100 + k;
    kinds[k].params.logprobs = int32_t(k % 3);
  }
  kinds[1].params.temperature = 1.0f;  // plain temperature
  kinds[2].params.temperature = 0.8f;  // min-p
  kinds[2].params.min_p = 0.2f;
  kinds[3].params.temperature = 1.2f;  // repetition penalty, top-k, top-p
  kinds[3].params.repetition_penalty = 1.3f;
  kinds[3].params.top_k = 40;
  kinds[3].params.top_p = 0.9f;
  kinds[4].params.repetition_penalty = 1.5f;  // greedy with a penalty
  kinds[5].params.temperature = 0.7f;         // everything
  kinds[5].params.top_k = 20;
  kinds[5].params.top_p = 0.95f;
  kinds[5].params.min_p = 0.05f;
  kinds[5].params.repetition_penalty = 1.2f;
  return kinds;
}

TEST(Sampling, ASequenceGetsTheSameTokensWhateverItIsBatchedWith) {
  const int64_t vocab = 500;
  const int steps = 24;
  auto backend = MakeCpuBackend();
  const auto kinds = Kinds();
  std::vector<std::vector<int32_t>> alone;
  for (const Sequence& k : kinds) {
    std::vector<Sequence> one = {k};
    Generate(*backend, one, vocab, steps);
    alone.push_back(one[0].tokens);
  }
  // Together, in two orders, and with copies of each other under other parameters: the
  // neighbours' greedy, temperature, min-p and penalty rows must not move anyone's tokens.
  for (int order = 0; order < 2; ++order) {
    std::vector<Sequence> batch;
    for (size_t i = 0; i < kinds.size(); ++i) {
      batch.push_back(kinds[order == 0 ? i : kinds.size() - 1 - i]);
      Sequence other = kinds[(i + 1) % kinds.size()];
      other.id = kinds[i].id;  // same logits, other parameters and seed
      other.params.seed += 1000;
      batch.push_back(other);
    }
    Generate(*backend, batch, vocab, steps);
    for (size_t i = 0; i < kinds.size(); ++i) {
      const size_t k = order == 0 ? i : kinds.size() - 1 - i;
      EXPECT_EQ(batch[2 * i].tokens, alone[k]) << "kind " << k << ", order " << order;
    }
  }
  // Sampling really happened, and differently per kind.
  EXPECT_NE(alone[1], alone[2]);
  EXPECT_NE(alone[3], alone[5]);
  std::set<int32_t> distinct(alone[1].begin(), alone[1].end());
  EXPECT_GT(distinct.size(), 5u);
}

TEST(Sampling, TheBackendAndSampleRowAgreeAndLeaveTheLogitsAlone) {
  const int64_t vocab = 3001;
  auto backend = MakeCpuBackend();
  std::vector<Sequence> seqs = Kinds();
  const int64_t n = int64_t(seqs.size());
  std::vector<float> host;
  std::vector<int32_t> seen = {5, 17, 17, 3000, 42, 5, 999};
  std::vector<SampleInput> in;
  for (int64_t r = 0; r < n; ++r) {
    const auto row = ModelLogits(vocab, int32_t(r), 7);
    host.insert(host.end(), row.begin(), row.end());
    in.push_back({seqs[size_t(r)].params, 3 + r, seen});
  }
  Tensor logits = backend->Alloc(n, vocab);
  backend->Upload(host, logits);
  std::vector<SampleResult> out(static_cast<size_t>(n));
  backend->Sample(logits, in, out);
  std::vector<float> after(host.size());
  backend->Download(logits, after);
  EXPECT_EQ(after, host);
  SampleScratch scratch;
  for (int64_t r = 0; r < n; ++r) {
    const auto want = SampleRow(host.data() + r * vocab, vocab, in[size_t(r)], &scratch);
    EXPECT_EQ(out[size_t(r)].id, want.id) << "row " << r;
    EXPECT_EQ(out[size_t(r)].logprob, want.logprob) << "row " << r;
    EXPECT_EQ(out[size_t(r)].top.size(), want.top.size()) << "row " << r;
  }
}

}  // namespace
}  // namespace lp
