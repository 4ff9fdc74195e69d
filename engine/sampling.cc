// Host token selection (see sampling.h).
#include "engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace lp {

SampleResult SampleRow(const float* l, int64_t vocab, const SampleParams& p) {
  SampleResult r;
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i) {
    if (l[i] > l[best]) best = i;
  }
  const float m = l[best];
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(l[i]) - m);
  const float lse = m + float(std::log(sum));
  const int64_t n_top = std::min<int64_t>(std::clamp(p.num_logprobs, 0, kMaxLogprobs), vocab);
  if (n_top > 0) {
    std::vector<int32_t> idx(static_cast<size_t>(vocab));
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + n_top, idx.end(), [&](int32_t a, int32_t b) {
      return l[a] != l[b] ? l[a] > l[b] : a < b;
    });
    for (int64_t i = 0; i < n_top; ++i) r.top.push_back({idx[size_t(i)], l[idx[size_t(i)]] - lse});
  }
  r.id = int32_t(best);
  if (p.temperature > 0.0f) {
    // Threshold of top-k: the k-th largest value (ties at it stay in).
    float lo = -INFINITY;
    if (p.top_k > 0 && p.top_k < vocab) {
      std::vector<float> v(l, l + vocab);
      std::nth_element(v.begin(), v.begin() + (p.top_k - 1), v.end(), std::greater<float>());
      lo = v[size_t(p.top_k - 1)];
    }
    const float inv_t = 1.0f / p.temperature;
    auto weight = [&](int64_t i) { return std::exp((l[i] - m) * inv_t); };
    if (p.top_p < 1.0f) {
      std::vector<int32_t> cand;
      float total = 0.0f;
      for (int64_t i = 0; i < vocab; ++i) {
        if (l[i] >= lo) {
          cand.push_back(int32_t(i));
          total += weight(i);
        }
      }
      // One fixed order (ties: lower id first), whatever the sort does with equal keys.
      std::sort(cand.begin(), cand.end(),
                [&](int32_t a, int32_t b) { return l[a] != l[b] ? l[a] > l[b] : a < b; });
      float acc = 0.0f;
      for (int32_t i : cand) {
        acc += weight(i);
        if (acc >= p.top_p * total) {
          lo = l[i];
          break;
        }
      }
    }
    float mass = 0.0f;
    for (int64_t i = 0; i < vocab; ++i) mass += l[i] >= lo ? weight(i) : 0.0f;
    const float target = SampleUniform(p.random) * mass;
    float acc = 0.0f;
    int64_t pick = -1;
    for (int64_t i = 0; i < vocab; ++i) {
      if (l[i] < lo) continue;
      acc += weight(i);
      pick = i;
      if (acc > target) break;
    }
    r.id = int32_t(pick);
  }
  r.logprob = l[r.id] - lse;
  return r;
}

}  // namespace lp
