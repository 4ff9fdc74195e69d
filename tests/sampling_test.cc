// Host token selection (engine/sampling.h), which the CPU backend runs and the CUDA sampling
// kernel is tested against: greedy, log-probabilities, top-k / top-p cuts, and draws that
// follow the distribution.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "engine/sampling.h"

namespace lp {
namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.5f};

TEST(Sampling, GreedyIsTheFirstLargestWithNormalizedLogprobs) {
  SampleParams p;
  p.num_logprobs = 4;
  const auto r = SampleRow(kLogits.data(), int64_t(kLogits.size()), p);
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

std::map<int32_t, int> Draws(SampleParams p, int n) {
  std::map<int32_t, int> count;
  for (int i = 0; i < n; ++i) {
    p.random = uint64_t(i);
    ++count[SampleRow(kLogits.data(), int64_t(kLogits.size()), p).id];
  }
  return count;
}

TEST(Sampling, DrawsFollowTheSoftmax) {
  SampleParams p;
  p.temperature = 1.0f;
  const int n = 20000;
  const auto count = Draws(p, n);
  double sum = 0;
  for (float l : kLogits) sum += std::exp(double(l));
  for (size_t i = 0; i < kLogits.size(); ++i) {
    const double want = std::exp(double(kLogits[i])) / sum;
    const double got = double(count.count(int32_t(i)) ? count.at(int32_t(i)) : 0) / n;
    EXPECT_NEAR(got, want, 0.015) << "token " << i;
  }
}

TEST(Sampling, TopKAndTopPCutTheTail) {
  SampleParams p;
  p.temperature = 1.0f;
  p.top_k = 2;  // the two tied 3.0s
  for (const auto& [id, n] : Draws(p, 2000)) EXPECT_TRUE(id == 1 || id == 3) << id;
  p.top_k = 0;
  p.top_p = 0.8f;  // 3.0, 3.0 hold ~0.67; with 2.0 (~0.91) the set reaches 0.8
  for (const auto& [id, n] : Draws(p, 2000)) EXPECT_TRUE(id == 1 || id == 3 || id == 2) << id;
  p.top_p = 0.1f;  // ties at the threshold stay in
  for (const auto& [id, n] : Draws(p, 2000)) EXPECT_TRUE(id == 1 || id == 3) << id;
}

}  // namespace
}  // namespace lp
